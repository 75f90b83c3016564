"""Detection every N frames: between detections faces are followed by sparse optical flow.

Detection (RetinaFace at <= 640 px) is about a quarter of a CPU frame's time. With `every` > 1 the detector runs
on every N-th frame only; on the frames between, each face seen in the previous frame is moved by pyramidal
Lucas-Kanade flow of a few points on and around it (its landmarks and a grid over its box), tracked forwards
and backwards on a downscaled grey frame; a similarity transform fitted to the points that agree moves the
landmarks and the box. Detection runs at once, off schedule, on a scene cut (the frame's grey thumbnail changes
a lot) or a lost track (too few points agree, the forward-backward error is high, the face leaves the frame, its
look changed since its detection, two heads touch: one may be about to hide the other).
Tracks keep their identity: the carried faces stay on their FaceTracker tracks (`FaceTracker.carry`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facedancer.detection import Face
from facedancer.tracking import FaceTracker, Track, TrackedFace, iou

FLOW_MAX_SIDE = 640  # flow runs on the frame scaled to at most this side, as detection does
GRID = 4  # GRID x GRID points over the inner face box, besides the 5 landmarks
WINDOW = (15, 15)
LEVELS = 3


@dataclass(eq=False)  # holds arrays: no value equality by accident
class Moved:
    """Where optical flow puts one track in the current frame."""

    track: Track
    box: np.ndarray
    landmarks: np.ndarray


def small_grey(frame: np.ndarray, max_side: int = FLOW_MAX_SIDE) -> tuple[np.ndarray, float]:
    """The frame as grey, scaled to at most `max_side` pixels, and the scale used."""
    import cv2

    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    grey = cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    if scale < 1.0:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return grey, scale


def scene_change(previous: np.ndarray, current: np.ndarray) -> float:
    """Mean absolute difference (0-255) of 32x18 thumbnails of two grey frames: large at a scene cut."""
    import cv2

    a = cv2.resize(previous, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    b = cv2.resize(current, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)
    return float(np.abs(a - b).mean())


def face_look(grey: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """16x16 thumbnail of the (scaled) face box, zero mean and unit spread: compares looks, not lighting."""
    import cv2

    height, width = grey.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    patch = cv2.resize(grey[y1:y2, x1:x2], (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (patch - patch.mean()) / (patch.std() + 1e-6)


def follow(
    previous: np.ndarray, current: np.ndarray, scale: float, box: np.ndarray, landmarks: np.ndarray, max_error: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """Move one face (full-resolution `box`, `landmarks`) from grey frame `previous` to `current` (both scaled
    by `scale`); None when the track is lost. `max_error`: the largest forward-backward error a point may
    have, as a fraction of the face size."""
    import cv2

    height, width = current.shape[:2]
    small_box = np.asarray(box, np.float64) * scale
    side = float(max(small_box[2] - small_box[0], small_box[3] - small_box[1]))
    if side < 8:
        return None
    # A window around the face, wide enough for fast motion: flow runs on it only.
    margin = 0.6 * side
    x0, y0 = int(max(small_box[0] - margin, 0)), int(max(small_box[1] - margin, 0))
    x1, y1 = int(min(small_box[2] + margin, width)), int(min(small_box[3] + margin, height))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    before, after = previous[y0:y1, x0:x1], current[y0:y1, x0:x1]
    inner = np.linspace(0.15, 0.85, GRID)
    grid = np.stack(np.meshgrid(inner, inner), -1).reshape(-1, 2)
    grid = small_box[:2] + grid * (small_box[2:] - small_box[:2])
    points = np.concatenate([np.asarray(landmarks, np.float64) * scale, grid]) - (x0, y0)
    points = points.astype(np.float32).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)
    ahead, ok, _ = cv2.calcOpticalFlowPyrLK(
        before, after, points, None, winSize=WINDOW, maxLevel=LEVELS, criteria=criteria
    )
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(
        after, before, ahead, None, winSize=WINDOW, maxLevel=LEVELS, criteria=criteria
    )
    error = np.linalg.norm(back - points, axis=-1).ravel()
    good = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (error < max(0.5, max_error * side))
    if good.sum() < max(6, len(points) // 2):
        return None
    matrix, _ = cv2.estimateAffinePartial2D(points[good], ahead[good], method=cv2.LMEDS)
    if matrix is None:
        return None
    zoom = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if not 0.8 < zoom < 1.25:  # a face does not grow or shrink by a quarter in one frame: a bad fit
        return None

    def move(xy: np.ndarray) -> np.ndarray:
        small = np.asarray(xy, np.float64) * scale - (x0, y0)
        return ((small @ matrix[:, :2].T + matrix[:, 2]) + (x0, y0)) / scale

    new_landmarks = move(landmarks)
    centre = move(((box[:2] + box[2:]) / 2)[None])[0]
    half = (np.asarray(box[2:], np.float64) - box[:2]) / 2 * zoom
    new_box = np.concatenate([centre - half, centre + half])
    # Leaving the frame: less than 60% of the box is inside it.
    full_w, full_h = width / scale, height / scale
    inside_w = max(0.0, min(new_box[2], full_w) - max(new_box[0], 0.0))
    inside_h = max(0.0, min(new_box[3], full_h) - max(new_box[1], 0.0))
    if inside_w * inside_h < 0.6 * (2 * half[0]) * (2 * half[1]):
        return None
    return new_box, new_landmarks


def _grown(box: np.ndarray, factor: float) -> np.ndarray:
    centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * factor
    return np.concatenate([centre - half, centre + half])


class FaceFollower:
    """frame -> this frame's TrackedFace list, detecting on every `every`-th frame (1: every frame, exactly the
    tracker's per-frame behaviour) and following faces by optical flow in between.

    `detect(frame) -> list[Face]` is the detector; `tracker` keeps the tracks (and their identities).
    Counts `detections`, `cuts` (detections forced by a scene cut) and `lost` (forced by a lost track).
    """

    def __init__(
        self,
        detect: Callable[[np.ndarray], list[Face]],
        tracker: FaceTracker,
        every: int = 1,
        cut_threshold: float = 40.0,
        max_error: float = 0.02,
        look_change: float = 0.5,
        near: float = 2.0,
    ):
        if every < 1:
            raise ValueError(f"detect every N frames needs N >= 1, got {every}")
        self.detect = detect
        self.tracker = tracker
        self.every = every
        self.cut_threshold = cut_threshold
        self.max_error = max_error
        self.look_change = look_change
        self.near = near  # faces whose boxes, grown this many times, touch: heads that may hide each other
        self.detections = self.cuts = self.lost = 0
        self._since = 0  # frames since the last detection
        self._grey: np.ndarray | None = None
        self._scale = 1.0
        self._looks: dict[int, np.ndarray | None] = {}  # track id -> its face's look at the last detection

    def __call__(self, frame: np.ndarray) -> list[TrackedFace]:
        if self.every == 1:
            return self._detect(frame, None)
        grey, scale = small_grey(frame)
        previous, self._grey, self._scale = self._grey, grey, scale
        if previous is None or previous.shape != grey.shape:
            return self._detect(frame, None)
        cut = scene_change(previous, grey) > self.cut_threshold
        if cut:
            self.cuts += 1
            return self._detect(frame, True)
        if self._since >= self.every:
            return self._detect(frame, False)
        moved = self._follow(previous, grey, scale)
        if moved is None:
            self.lost += 1
            return self._detect(frame, False)
        self._since += 1
        return self.tracker.carry([(m.track, m.box, m.landmarks) for m in moved], frame)

    def _detect(self, frame: np.ndarray, cut: bool | None) -> list[TrackedFace]:
        self.detections += 1
        self._since = 1
        tracked = self.tracker.update(frame, self.detect(frame), cut=cut)
        if self.every > 1:
            self._looks = {t.track.id: face_look(self._grey, t.face.box * self._scale) for t in tracked}
        return tracked

    def _follow(self, previous: np.ndarray, current: np.ndarray, scale: float) -> list[Moved] | None:
        """Every face of the previous frame moved to this one; None when any of them is lost, when two of
        them overlap (one may be about to hide the other: only a detection can tell) or when a face no longer
        looks like it did at its last detection (something moved in front of it). Heads are about twice their
        face box: faces whose boxes grown `near` times touch are treated as overlapping."""
        out = []
        for track in self.tracker.tracks:
            if track.last_frame != self.tracker.frame:
                continue  # not in the previous frame (hidden): it waits for a detection
            moved = follow(previous, current, scale, track.box, track.landmarks, self.max_error)
            if moved is None:
                return None
            look = self._looks.get(track.id)
            now = face_look(current, moved[0] * scale)
            if look is None or now is None or float(np.abs(now - look).mean()) > self.look_change:
                return None
            out.append(Moved(track, *moved))
        for a, b in itertools.combinations(out, 2):
            if iou(_grown(a.box, self.near), _grown(b.box, self.near)) > 0:
                return None
        return out
