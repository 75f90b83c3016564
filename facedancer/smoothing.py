"""Landmark smoothing that separates detector noise from true motion.

A detector's landmarks wobble by a pixel or so from frame to frame even on a still face; a low-pass filter on
the landmarks alone cannot tell that wobble from a real move (a turn of the head, camera shake) and makes the
pasted face lag the real one. The image itself can: sparse optical flow of the face region between the
previous and the current frame measures how the face really moved, to a fraction of a pixel. The track's last
smoothed landmarks, carried by that measured motion (a similarity transform: shift, scale, rotation), are the
prediction; the new detection only corrects the prediction by `1 - strength` of their difference, so the
detector's noise is averaged over several frames while the true motion passes at once. Where the image cannot
say (no frame, too few trackable points, a flat image), the prediction falls back to the track's own landmark
velocity (an alpha-beta filter), as before.
"""

from __future__ import annotations

import numpy as np

_GRID = 6  # flow points per side of the face box
_MIN_POINTS = 8  # fewer reliable points than this: the image cannot say how the face moved
_ROUND_TRIP = 0.5  # pixels: a point tracked forward then back must land this close to where it started
# A flow prediction farther than this share of the face size from the detection is not trusted (flow misled by
# an occluder or a very fast move): the detection is taken as is. Detector noise is about 1 % of the face size.
DISAGREEMENT = 0.06


def grey(frame: np.ndarray | None) -> np.ndarray | None:
    """The frame as 8-bit grey (None for None or a frame too small to hold a face's flow)."""
    if frame is None or min(frame.shape[:2]) < 32:
        return None
    import cv2

    image = np.ascontiguousarray(frame[..., :3]) if frame.ndim == 3 else frame
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image.astype(np.uint8)


class FrameMotion:
    """How image regions moved between the previous frame and the current one (sparse Lucas-Kanade flow).

    `advance(frame)` once per frame; `move(landmarks, box)` carries points of the previous frame inside
    `box` to where the image says they are now, or returns None when it cannot tell.
    """

    def __init__(self) -> None:
        self._previous: np.ndarray | None = None
        self._current: np.ndarray | None = None

    def reset(self) -> None:
        self._previous = self._current = None

    def advance(self, frame: np.ndarray | None) -> None:
        current = grey(frame)
        same = self._current is not None and current is not None and current.shape == self._current.shape
        self._previous, self._current = (self._current if same else None), current

    @property
    def available(self) -> bool:
        """Two consecutive frames are at hand: the image can be asked how things moved."""
        return self._previous is not None and self._current is not None

    def transform(self, box: np.ndarray) -> np.ndarray | None:
        """2x3 similarity transform of the image inside `box` (previous-frame pixels) from the previous frame
        to this one, or None."""
        if self._previous is None or self._current is None:
            return None
        import cv2

        x1, y1, x2, y2 = (float(v) for v in box)
        if x2 - x1 < 8 or y2 - y1 < 8:
            return None
        steps = (np.arange(_GRID) + 0.5) / _GRID
        xs, ys = x1 + (x2 - x1) * (0.1 + 0.8 * steps), y1 + (y2 - y1) * (0.1 + 0.8 * steps)
        points = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 1, 2).astype(np.float32)
        height, width = self._current.shape
        inside = (
            (points[:, 0, 0] >= 0) & (points[:, 0, 0] < width) & (points[:, 0, 1] >= 0) & (points[:, 0, 1] < height)
        )
        points = points[inside]
        if len(points) < _MIN_POINTS:
            return None
        window = int(np.clip(0.25 * (x2 - x1), 9, 31)) | 1
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.01)
        ahead, found, _ = cv2.calcOpticalFlowPyrLK(
            self._previous, self._current, points, None, winSize=(window, window), maxLevel=3, criteria=criteria
        )
        back, found_back, _ = cv2.calcOpticalFlowPyrLK(
            self._current, self._previous, ahead, None, winSize=(window, window), maxLevel=3, criteria=criteria
        )
        good = (found[:, 0] == 1) & (found_back[:, 0] == 1)
        good &= np.linalg.norm((back - points)[:, 0], axis=1) < _ROUND_TRIP
        if good.sum() < _MIN_POINTS:
            return None
        matrix, kept = cv2.estimateAffinePartial2D(
            points[good], ahead[good], method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=200, refineIters=10
        )
        if matrix is None or kept is None or kept.sum() < _MIN_POINTS:
            return None
        return matrix

    def move(self, landmarks: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        matrix = self.transform(box)
        if matrix is None:
            return None
        return landmarks @ matrix[:, :2].T + matrix[:, 2]


def blend(prior: np.ndarray, detected: np.ndarray, strength: float) -> np.ndarray:
    """The smoothed landmarks: `strength` of the prediction, the rest from the detection."""
    return strength * prior + (1.0 - strength) * detected
