"""Telling people apart for --select reference and for tracks: dlib's face descriptor (default, independent
of the swap encoder, calibrated: the same person is closer than 0.6) or the swap's ArcFace encoder
(--selector arcface); and choosing which tracked faces to swap.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from facedancer.detection import Face
from facedancer.errors import FaceDancerError
from facedancer.tracking import IdentityCheck, Track, TrackedFace

SELECTORS = ("dlib", "arcface")


class DlibDescriptor:
    """dlib's 128-d ResNet descriptor of each face (placed by its RetinaFace box); Euclidean distance."""

    def __init__(self):
        from facedancer.evaluation import Judge

        self._judge = Judge()
        self._lock = threading.Lock()  # dlib's networks keep their activations: one call at a time

    def describe(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        if not faces:
            return np.zeros((0, 128))
        with self._lock:
            return np.stack([self._judge.analyse(image, face.box)[0] for face in faces])

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


class ArcFaceDescriptor:
    """The swap's identity encoder; cosine distance (1 - cosine similarity)."""

    def __init__(self, swapper):
        self._swapper = swapper

    def describe(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        return np.asarray(self._swapper.embed_faces(image, list(faces)), np.float64)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> float:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def make_descriptor(selector: str, swapper):
    if selector == "dlib":
        return DlibDescriptor()
    if selector == "arcface":
        return ArcFaceDescriptor(swapper)
    raise FaceDancerError(f"--selector must be one of {', '.join(SELECTORS)}, got {selector!r}")


def identity_check(descriptor, threshold: float) -> IdentityCheck:
    return IdentityCheck(descriptor.describe, descriptor.distance, threshold)


class TrackSelection:
    """Which tracked faces to swap, decided per track so a choice survives crossings and occlusions.

    all: every face of at least `min_face` pixels. largest: the person whose face was largest when the
    choice was made, for as long as their track lives (hidden: nobody is swapped). reference: tracks whose
    identity descriptor is within `threshold` of `reference`.
    """

    def __init__(
        self,
        mode: str,
        min_face: float,
        reference: np.ndarray | None = None,
        distance=None,
        threshold: float = 0.6,
    ):
        if mode == "reference" and reference is None:
            raise FaceDancerError("--select reference needs --reference_face photo(s)")
        self.mode, self.min_face = mode, min_face
        self.reference, self.distance, self.threshold = reference, distance, threshold
        self.chosen: Track | None = None

    def is_reference(self, track: Track) -> bool:
        return bool(track.gallery) and track.distance_to(self.reference, self.distance) <= self.threshold

    def __call__(self, tracked: Sequence[TrackedFace], live: Sequence[Track]) -> list[Face]:
        big = [t for t in tracked if t.face.size >= self.min_face]
        if self.mode == "all":
            return [t.face for t in big]
        if self.mode == "reference":
            return [t.face for t in big if self.is_reference(t.track)]
        if self.chosen is not None and not any(track is self.chosen for track in live):
            self.chosen = None  # the chosen person left for good: choose again
        if self.chosen is None and big:
            self.chosen = max(big, key=lambda t: t.face.width * t.face.height).track
        return [t.face for t in big if t.track is self.chosen]
