"""Following faces from frame to frame, and smoothing their landmarks to remove detector jitter."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from facedancer.detection import Face


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    landmarks: np.ndarray
    box: np.ndarray


class LandmarkSmoother:
    """Exponential smoothing of each persisting face's landmarks.

    A face is the same as one in the previous frame when their boxes overlap (IoU >= `match_iou`).
    `strength` in [0, 1): 0 is off; higher holds landmarks steadier. Large moves (more than
    `reset_fraction` of the face size) bypass the smoothing so fast motion does not lag.
    """

    def __init__(self, strength: float = 0.6, match_iou: float = 0.3, reset_fraction: float = 0.15):
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"smoothing strength must be in [0, 1), got {strength}")
        self.strength = strength
        self.match_iou = match_iou
        self.reset_fraction = reset_fraction
        self._tracks: list[_Track] = []

    def reset(self) -> None:
        self._tracks = []

    def __call__(self, faces: list[Face]) -> list[Face]:
        if self.strength == 0:
            return faces
        out, tracks, free = [], [], list(self._tracks)
        for face in faces:
            best = max(free, key=lambda t: iou(t.box, face.box), default=None)
            landmarks = face.landmarks
            if best is not None and iou(best.box, face.box) >= self.match_iou:
                free.remove(best)
                move = np.abs(face.landmarks - best.landmarks).max()
                if move < self.reset_fraction * face.size:
                    landmarks = self.strength * best.landmarks + (1.0 - self.strength) * face.landmarks
            tracks.append(_Track(landmarks, face.box))
            out.append(replace(face, landmarks=landmarks))
        self._tracks = tracks
        return out
