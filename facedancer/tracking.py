"""Following faces from frame to frame: tracks that keep their person through crossings, occlusions and
scene cuts, and smooth their landmarks against detector jitter.

A track is matched to a detection by box overlap; where overlap is ambiguous (two faces near each other,
a face coming back after being hidden, a scene cut) the match is decided by an identity descriptor, which is
computed when a track starts, when a match is ambiguous and every `refresh_every` frames, never per frame.
Tracks are plain objects compared by identity (`eq=False`): they hold arrays, and list bookkeeping must
never compare arrays.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from facedancer.detection import Face
from facedancer.smoothing import DISAGREEMENT, FrameMotion, blend

# describe(frame, faces) -> (N, D) descriptors; distance(a, b) -> float; same person when distance <= threshold.
Describe = Callable[[np.ndarray, Sequence[Face]], np.ndarray]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class IdentityCheck:
    """How tracks tell people apart: a descriptor function, its distance and the same-person threshold."""

    describe: Describe
    distance: Callable[[np.ndarray, np.ndarray], float]
    threshold: float


@dataclass(eq=False)
class Track:
    """One person followed across frames (compared by identity, never by value)."""

    id: int
    box: np.ndarray
    landmarks: np.ndarray  # smoothed: what gets pasted
    last_frame: int
    first_frame: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre motion, pixels per frame
    gallery: list[np.ndarray] = field(default_factory=list)  # descriptors of this person: first + latest views
    described_frame: int = -(10**9)
    drift: np.ndarray = field(default_factory=lambda: np.zeros(2))  # landmark motion, pixels per frame
    patch: np.ndarray | None = None  # a tiny normalised grey thumbnail of the face: its look, for change checks

    def predicted_box(self, frame: int) -> np.ndarray:
        steps = min(frame - self.last_frame, 5)  # a short extrapolation; a long-hidden face is found by identity
        return self.box + np.tile(self.velocity * steps, 2)

    @property
    def descriptor(self) -> np.ndarray | None:
        return self.gallery[-1] if self.gallery else None

    def remember(self, descriptor: np.ndarray, keep: int = 8) -> None:
        """Keep the first view and the latest ones: a half-hidden view must not replace the person's face."""
        self.gallery = ([*self.gallery[:1], *self.gallery[1:][-(keep - 2) :]] if self.gallery else []) + [descriptor]

    def distance_to(self, descriptor: np.ndarray, distance) -> float:
        """The closest of this track's views to `descriptor`."""
        return min(distance(descriptor, view) for view in self.gallery)

    @property
    def size(self) -> float:
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """A face of the current frame (landmarks smoothed) and the track it belongs to."""

    face: Face
    track: Track
    detected: bool = True  # False: carried forward without a detection (FaceTracker.carry)
    prior: np.ndarray | None = None  # the track's prediction mixed into the landmarks (None: not smoothed)


def _face_patch(frame: np.ndarray | None, face: Face) -> np.ndarray | None:
    """16x16 grey thumbnail of the face box, zero mean and unit spread: compares looks, not lighting."""
    if frame is None or frame.ndim != 3:
        return None
    import cv2

    height, width = frame.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in face.box)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    grey = cv2.cvtColor(np.ascontiguousarray(frame[y1:y2, x1:x2, :3]), cv2.COLOR_RGB2GRAY)
    patch = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float32)
    return (patch - patch.mean()) / (patch.std() + 1e-6)


def _scene_signature(frame: np.ndarray | None) -> np.ndarray | None:
    if frame is None:
        return None
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame
    return cv2.resize(grey, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


class FaceTracker:
    """Tracks faces across frames and smooths each track's landmarks.

    `update(frame, faces)` takes one frame's detections and returns them, in the same order, as TrackedFace
    (landmarks smoothed with their own track only); `carry()` advances one frame without detections (tracks
    move on by their velocity). `smoothing` in [0, 1) is the strength: 0 is off, otherwise each face's
    landmarks are `smoothing` × the track's prediction (its last landmarks carried by the image's measured motion,
    facedancer/smoothing.py) + the rest from the detection; a detection farther than `reset_fraction` of the face
    size from the prediction is taken as is, so nothing the prediction missed can lag. A track not seen for
    more than `max_missing` frames ends. With `identity`, a hidden person who comes back within `max_missing`
    frames gets their track back, and a different person never takes over a track.
    """

    def __init__(
        self,
        smoothing: float = 0.7,
        match_iou: float = 0.3,
        reset_fraction: float = 0.15,
        max_missing: int = 24,
        identity: IdentityCheck | None = None,
        refresh_every: int = 12,
        cut_threshold: float = 40.0,
        look_change: float = 0.5,
    ):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing strength must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing
        self.match_iou = match_iou
        self.reset_fraction = reset_fraction
        self.max_missing = max_missing
        self.identity = identity
        self.refresh_every = max(1, refresh_every)
        self.cut_threshold = cut_threshold
        self.look_change = look_change  # a face's thumbnail changing more than this in one frame: check who it is
        self.frame = -1
        self.tracks: list[Track] = []
        self.descriptors_computed = 0  # faces described so far: the cost of identity tracking
        self.started = 0  # tracks started so far
        self._ids = itertools.count()
        self._signature: np.ndarray | None = None
        self.motion = FrameMotion()  # the image's motion between frames: what smoothing must not hold back

    def reset(self) -> None:
        self.tracks = []
        self._signature = None
        self.motion.reset()

    # -- one frame -------------------------------------------------------------------------------

    def _is_cut(self, frame: np.ndarray | None) -> bool:
        signature = _scene_signature(frame)
        previous, self._signature = self._signature, signature
        if signature is None or previous is None or previous.shape != signature.shape:
            return False
        return float(np.abs(signature - previous).mean()) > self.cut_threshold

    def _describe(self, frame: np.ndarray | None, faces: list[Face], wanted: set[int]) -> dict[int, np.ndarray]:
        if self.identity is None or frame is None or not wanted:
            return {}
        order = sorted(wanted)
        vectors = self.identity.describe(frame, [faces[i] for i in order])
        self.descriptors_computed += len(order)
        return {i: np.asarray(v) for i, v in zip(order, vectors, strict=True)}

    def update(self, frame: np.ndarray | None, faces: Sequence[Face], cut: bool | None = None) -> list[TrackedFace]:
        """Assign this frame's faces to tracks; `cut` (None: detected from the frame) marks a scene cut."""
        self.frame += 1
        now, faces = self.frame, list(faces)
        seen_cut = self._is_cut(frame)  # always called: it keeps the previous frame's signature
        if self.smoothing > 0:
            self.motion.advance(frame)  # always called: it keeps the previous frame
        cut = seen_cut if cut is None else cut
        if cut and self.identity is None:
            self.tracks = []  # nothing can tell who is who across a cut
        self.tracks = [t for t in self.tracks if now - t.last_frame - 1 <= self.max_missing]
        tracks = self.tracks
        predicted = [t.predicted_box(now) for t in tracks]
        overlap = np.array([[iou(f.box, p) for p in predicted] for f in faces]).reshape(len(faces), len(tracks))
        near = overlap > 0.0

        # Which faces need a descriptor: new or returning faces, ambiguous overlaps, stale tracks, cuts, and a
        # face whose look changed at once (a cut to another person in the same place).
        wanted: set[int] = set()
        patches = [_face_patch(frame, f) for f in faces] if self.identity is not None else [None] * len(faces)

        def look_changed(i: int, track: Track) -> bool:
            if patches[i] is None or track.patch is None:
                return False
            return float(np.abs(patches[i] - track.patch).mean()) > self.look_change

        lost = any(t.last_frame < now - 1 and t.descriptor is not None for t in tracks)
        if self.identity is not None:
            for i in range(len(faces)):
                candidates = np.flatnonzero(overlap[i] >= self.match_iou)
                if (
                    cut
                    or near[i].sum() != 1
                    or len(candidates) != 1
                    or near[:, candidates[0]].sum() != 1
                    or tracks[candidates[0]].last_frame != now - 1
                    or tracks[candidates[0]].descriptor is None
                    or now - tracks[candidates[0]].described_frame >= self.refresh_every
                    or look_changed(i, tracks[candidates[0]])
                    or (lost and now - tracks[candidates[0]].first_frame < self.refresh_every)
                ):
                    wanted.add(i)
        described = self._describe(frame, faces, wanted)

        # Score every allowed pair; assign greedily, best first (deterministic tie-break by index).
        pairs = []
        for i, j in itertools.product(range(len(faces)), range(len(tracks))):
            track, score = tracks[j], overlap[i, j]
            known = i in described and track.descriptor is not None
            if known:
                distance = track.distance_to(described[i], self.identity.distance)
                if distance > self.identity.threshold:
                    continue  # another person: never share a track
                score += 1.0 + (self.identity.threshold - distance) / max(self.identity.threshold, 1e-9)
            elif cut or overlap[i, j] < self.match_iou:
                continue
            pairs.append((-score, i, j))
        pairs.sort()
        face_track: dict[int, int] = {}
        used: set[int] = set()
        for _, i, j in pairs:
            if i not in face_track and j not in used:
                face_track[i] = j
                used.add(j)

        # A young track (begun while its person was half hidden, too unlike their own track then) gives its
        # face back to the older track of the same person once the descriptor says so.
        dropped: list[Track] = []
        for i, j in sorted(face_track.items()):
            young = tracks[j]
            if i not in described or now - young.first_frame >= self.refresh_every:
                continue
            older = [
                (t.distance_to(described[i], self.identity.distance), k)
                for k, t in enumerate(tracks)
                if k not in used and t.first_frame < young.first_frame and t.descriptor is not None
            ]
            older = [(d, k) for d, k in older if d <= self.identity.threshold]
            if older:
                k = min(older)[1]
                face_track[i] = k
                used.add(k)
                used.discard(j)
                dropped.append(young)
        self.tracks = [t for t in self.tracks if not any(t is d for d in dropped)]

        out = []
        for i, face in enumerate(faces):
            matched = i in face_track
            prior = None
            if matched:
                track = tracks[face_track[i]]
                landmarks, prior = face.landmarks, None
                steady = not cut and track.last_frame == now - 1
                if steady:
                    # predict where the face is now: carried by the image's own motion (facedancer/smoothing.py),
                    # or by the track's landmark velocity (alpha-beta) where the image cannot say; the detection
                    # then only corrects the prediction, so noise is averaged and true motion passes at once
                    moved = self.motion.move(track.landmarks, track.box) if self.smoothing > 0 else None
                    guess = track.landmarks + track.drift if moved is None else moved
                    error = face.landmarks - guess
                    limit = self.reset_fraction if moved is None else min(self.reset_fraction, DISAGREEMENT)
                    # the image is at hand but cannot say how this face moved: trust the detection alone
                    blind = moved is None and self.motion.available
                    if self.smoothing > 0 and not blind and np.abs(error).max() < limit * face.size:
                        prior, gain = guess, 1.0 - self.smoothing
                        landmarks = blend(guess, face.landmarks, self.smoothing)
                        if moved is None:
                            track.drift = track.drift + gain * gain / (2.0 - gain) * error.mean(0)
                        else:
                            track.drift = (moved - track.landmarks).mean(0)  # the measured motion (for carry)
                    else:
                        track.drift = (face.landmarks - track.landmarks).mean(0)
                else:
                    track.drift = np.zeros(2)
                centre_move = (face.box[:2] + face.box[2:] - track.box[:2] - track.box[2:]) / 2
                steps = max(now - track.last_frame, 1)
                track.velocity = 0.5 * track.velocity + 0.5 * centre_move / steps if steady else np.zeros(2)
                track.box, track.landmarks, track.last_frame = np.asarray(face.box, float), landmarks, now
            else:
                track = Track(next(self._ids), np.asarray(face.box, float), face.landmarks, now, now)
                self.started += 1
                self.tracks.append(track)
            if i in described:
                track.remember(described[i])
                track.described_frame = now
            track.patch = patches[i]
            out.append(TrackedFace(replace(face, landmarks=track.landmarks), track, prior=prior))
        return out

    def carry(
        self, moved: Sequence[tuple[Track, np.ndarray, np.ndarray]] | None = None, frame: np.ndarray | None = None
    ) -> list[TrackedFace]:
        """Advance one frame without detections: every live track moves on by its velocity; or, with `moved`
        ((track, box, landmarks) measured in this frame, e.g. by optical flow: facedancer.flow), exactly those
        tracks move there and the others wait unseen (a hidden face must not be pasted). With `frame`, the
        next detection's smoothing predicts from this frame (without it, from no frame: never a stale one)."""
        self.frame += 1
        self.tracks = [t for t in self.tracks if self.frame - t.last_frame - 1 <= self.max_missing]
        if frame is not None and self.smoothing > 0:
            self.motion.advance(frame)  # the carried landmarks sit on this frame: the next flow starts here
        else:
            self.motion.reset()  # no frame seen here: the next frame's flow would start from a stale one
        if moved is None:
            moved = [(t, t.box + np.tile(t.velocity, 2), t.landmarks + t.drift) for t in self.tracks]
        else:
            moved = [(t, np.asarray(b, float), np.asarray(lm, float)) for t, b, lm in moved]
            for track, box, landmarks in moved:
                centre_move = (box[:2] + box[2:] - track.box[:2] - track.box[2:]) / 2
                track.velocity = 0.5 * track.velocity + 0.5 * centre_move
                track.drift = (landmarks - track.landmarks).mean(0)
        out = []
        for track, box, landmarks in moved:
            track.box, track.landmarks, track.last_frame = box, landmarks, self.frame
            face = Face(box=track.box.copy(), landmarks=track.landmarks.copy(), score=0.0)
            out.append(TrackedFace(face, track, detected=False))
        return out


class LandmarkSmoother:
    """Landmark smoothing by box overlap alone (no identity): faces in, smoothed faces out, in order."""

    def __init__(self, strength: float = 0.7, match_iou: float = 0.3, reset_fraction: float = 0.15):
        self.strength = strength
        self._tracker = FaceTracker(strength, match_iou, reset_fraction, max_missing=0)

    def reset(self) -> None:
        self._tracker.reset()

    def __call__(self, faces: list[Face], frame: np.ndarray | None = None) -> list[Face]:
        if self.strength == 0:
            return faces
        return [t.face for t in self._tracker.update(frame, faces)]
