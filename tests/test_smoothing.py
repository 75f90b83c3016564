"""Landmark smoothing against the truth: a real photo moved through a clip with known placement (slow walk,
camera shake, then a fast move), the real detector on every frame. Smoothing must cut the frame-to-frame
wobble of the landmarks around the true face to at most half of the raw detector's, and follow the fast
move within a few frames (the true motion is what the pasted face must follow)."""

from __future__ import annotations

import numpy as np
import pytest
from videos import head

from facedancer.smoothing import FrameMotion
from facedancer.tracking import FaceTracker, LandmarkSmoother

FRAMES, FAST = 30, range(16, 20)  # frames 16..19: the head moves 9 px per frame


def _clip(photo, shake: float):
    """Frames of a head over a gradient and the true top-left of the head in each (shake included)."""
    import cv2

    width, height, side = 360, 240, 150
    image = cv2.resize(head(photo), (side, side), interpolation=cv2.INTER_AREA)
    background = np.tile(np.linspace(50, 190, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    rng = np.random.default_rng(3)
    x, frames, truth = 40.0, [], []
    for i in range(FRAMES):
        x += 9.0 if i in FAST else 0.6
        jolt = rng.normal(0, shake, 2)
        where = np.array([x + jolt[0], 45 + 0.3 * i + jolt[1]])
        shift = np.float64([[1, 0, where[0]], [0, 1, where[1]]])
        placed = cv2.warpAffine(image, shift, (width, height), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(np.ones((side, side), np.float32), shift, (width, height), flags=cv2.INTER_LINEAR)
        frames.append((background * (1 - inside[..., None]) + placed * inside[..., None] + 0.5).astype(np.uint8))
        truth.append(where)
    return frames, np.array(truth)


@pytest.fixture(scope="module")
def clips(photos, detector):
    out = {}
    for shake in (0.0, 1.5):
        frames, truth = _clip(photos / "obama.jpg", shake)
        raw = [detector.detect(f, score=0.9) for f in frames]
        assert all(len(faces) == 1 for faces in raw)
        out[shake] = frames, truth, raw
    return out


def _residuals(landmarks: list[np.ndarray], truth: np.ndarray) -> np.ndarray:
    return np.stack(landmarks) - truth[:, None, :]  # landmarks relative to the true placement


def _jitter(residuals: np.ndarray) -> float:
    return float(np.abs(np.diff(residuals, axis=0)).mean())


@pytest.mark.parametrize("shake", [0.0, 1.5])
def test_smoothing_halves_jitter_around_the_truth_and_follows_a_fast_move(clips, shake):
    frames, truth, raw = clips[shake]
    tracker = FaceTracker(0.7)
    smoothed = [tracker.update(f, faces)[0].face.landmarks for f, faces in zip(frames, raw, strict=True)]
    raw_residual = _residuals([faces[0].landmarks for faces in raw], truth)
    residual = _residuals(smoothed, truth)
    assert _jitter(raw_residual) > 0.2  # the detector does wobble around the true face
    assert _jitter(residual) <= 0.5 * _jitter(raw_residual), (_jitter(residual), _jitter(raw_residual))

    true_offset = np.median(raw_residual, axis=0)  # where the landmarks sit on the head
    raw_error = np.abs(raw_residual - true_offset).max(axis=(1, 2))
    error = np.abs(residual - true_offset).max(axis=(1, 2))
    settled = FAST.start + 3
    assert error[settled:].max() <= max(2.0, raw_error.max()), error.round(2)  # followed within 3 frames


def test_strength_zero_returns_the_detections(clips):
    frames, _, raw = clips[1.5]
    tracker = FaceTracker(0.0)
    for frame, faces in zip(frames, raw, strict=True):
        np.testing.assert_array_equal(tracker.update(frame, faces)[0].face.landmarks, faces[0].landmarks)
    smoother = LandmarkSmoother(0.0)
    assert smoother(raw[0], frames[0]) is raw[0]


def test_frame_motion_measures_a_known_shift(clips):
    """The flow's similarity fit recovers the head's true sub-pixel shift between two frames."""
    frames, truth, raw = clips[1.5]
    motion = FrameMotion()
    for i in (4, 5):
        motion.advance(frames[i])
    matrix = motion.transform(raw[4][0].box)
    assert matrix is not None
    np.testing.assert_allclose(matrix[:, :2], np.eye(2), atol=0.02)
    np.testing.assert_allclose(matrix[:, 2], truth[5] - truth[4], atol=0.25)
    motion.advance(None)  # no frame: nothing to measure, no error
    assert motion.transform(raw[4][0].box) is None


@pytest.mark.parametrize("shake", [0.0, 1.5])
def test_detecting_every_third_frame_does_not_raise_the_jitter(clips, shake):
    """--detect_every 3: faces are followed by flow between detections, and each detection is smoothed against
    the flow from the frame before it (a followed frame): the pasted landmarks wobble no more than with a
    detection on every frame. (Predicting from no frame after followed ones doubled the jitter under shake.)"""
    from facedancer.flow import FaceFollower

    frames, truth, raw = clips[shake]
    by_frame = {id(f): faces for f, faces in zip(frames, raw, strict=True)}
    jitter = {}
    for every in (1, 3):
        follower = FaceFollower(lambda f: by_frame[id(f)], FaceTracker(0.7), every)
        pasted = [follower(f)[0].face.landmarks for f in frames]
        jitter[every] = _jitter(_residuals(pasted, truth))
        assert follower.detections < FRAMES or every == 1
    raw_jitter = _jitter(_residuals([faces[0].landmarks for faces in raw], truth))
    assert jitter[3] <= max(jitter[1], 0.5 * raw_jitter), (jitter, raw_jitter)
