"""--detect_every N on videos made from the real photos: the real detector runs on every N-th frame only (its
calls counted by a wrapper around it), faces are followed by optical flow in between, a scene cut or a lost
face detects at once, a person entering is picked up at the next detection, tracks keep their identity."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from standins import pixel_identity_encoder
from videos import Walk, decode, moving_face_frames, scene_frames, stream_info, write_video

from facedancer.flow import FaceFollower
from facedancer.images import read_image
from facedancer.tracking import FaceTracker


class CountingDetector:
    """The real detector, recording every frame it is called on."""

    def __init__(self, detector, cache: dict | None = None):
        self.detector = detector
        self.frames: list[np.ndarray] = []
        self.cache = cache  # frame id -> faces: the same real detections again, at no cost (hypothesis)

    def detect(self, image, **kwargs):
        self.frames.append(image)
        if self.cache is not None and id(image) in self.cache:
            return self.cache[id(image)]
        return self.detector.detect(image, **kwargs)

    def called_on(self, frames: list[np.ndarray]) -> list[int]:
        ids = {id(f): i for i, f in enumerate(frames)}
        return [ids[id(f)] for f in self.frames]


@pytest.fixture(scope="module")
def moving(photos):
    return moving_face_frames(photos / "obama.jpg", 12)


@pytest.fixture(scope="module")
def other_shot(moving):
    """6 frames of another scene and person: the astronaut photo, panning slowly."""
    import cv2
    from photos import astronaut

    height, width = moving[0].shape[:2]
    other = cv2.resize(astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    return [np.roll(other, 2 * k, axis=1) for k in range(6)]


@pytest.fixture(scope="module")
def cut_clip(moving, other_shot):
    """6 frames of the moving portrait, then a cut to the other shot."""
    return [*moving[:6], *other_shot]


@pytest.fixture(scope="module")
def known_faces(moving, other_shot, detector):
    """The real detector's faces on every frame of both shots, by frame object id."""
    return {id(f): detector.detect(f, score=0.9) for f in [*moving, *other_shot]}


def run(frames, detector, every, smoothing=0.0):
    counting = CountingDetector(detector) if not isinstance(detector, CountingDetector) else detector
    tracker = FaceTracker(smoothing)
    follower = FaceFollower(lambda f: counting.detect(f, score=0.9), tracker, every)
    rows = [follower(frame) for frame in frames]
    return rows, counting, follower


def test_detects_every_nth_frame_and_follows_within_a_few_pixels(moving, detector):
    every_frame, _, _ = run(moving, detector, 1)
    followed, counting, follower = run(moving, detector, 3)
    assert counting.called_on(moving) == [0, 3, 6, 9]
    assert follower.lost == follower.cuts == 0
    for per_frame, row in zip(every_frame, followed, strict=True):
        assert len(row) == len(per_frame) == 1  # a face on every frame
        error = np.abs(row[0].face.landmarks - per_frame[0].face.landmarks).max()
        assert error < 3.0, error  # pixels, on a 320x240 face sliding and zooming
    assert len({id(row[0].track) for row in followed}) == 1  # one track all along


def test_scene_cut_detects_at_once(cut_clip, detector):
    rows, counting, follower = run(cut_clip, detector, 10)
    assert counting.called_on(cut_clip) == [0, 6]
    assert follower.cuts == 1
    assert rows[6][0].detected and not rows[5][0].detected and not rows[7][0].detected


def test_person_entering_is_picked_up_at_the_next_detection_and_tracks_keep_identity(photos, detector):
    walks = [Walk(photos / "obama.jpg", 10, 60, 30, 150), Walk(photos / "biden.jpg", 300, 260, 40, 150, (5, 11))]
    frames, _ = scene_frames(walks, 12, (480, 240))
    rows, counting, follower = run(frames, detector, 4)
    assert counting.called_on(frames) == [0, 4, 8]
    assert [len(row) for row in rows] == [1] * 8 + [2] * 4  # enters at 5, found at the detection of frame 8
    first = rows[0][0].track
    assert all(any(t.track is first for t in row) for row in rows)
    centre = [(t.face.box[0] + t.face.box[2]) / 2 for row in rows for t in row if t.track is first]
    assert np.all(np.diff(centre) > -3)  # the first person walks right: its track never jumps to the other


def test_face_leaving_the_frame_detects_at_once(photos, detector):
    walks = [Walk(photos / "obama.jpg", 20, 330, 30, 150)]  # walks right, out of a 400 px wide frame
    frames, _ = scene_frames(walks, 12, (400, 240))
    rows, counting, follower = run(frames, detector, 20)
    assert follower.lost >= 1
    assert len(counting.frames) == 1 + follower.lost
    followed = [t.face.box for row in rows for t in row if not t.detected]
    assert followed and all(box[2] - 0.4 * (box[2] - box[0]) <= 400 for box in followed)  # mostly inside


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(every=st.integers(1, 6), cut=st.integers(2, 11))
def test_schedule_detects_at_most_every_n_frames_and_at_every_cut(moving, other_shot, known_faces, every, cut):
    frames = [*moving[:cut], *other_shot]
    rows, counting, _ = run(frames, CountingDetector(None, known_faces), every)
    called = counting.called_on(frames)
    assert called[0] == 0 and cut in called
    assert np.all(np.diff([*called, len(frames)]) <= every)
    assert all(len(row) == 1 for row in rows)


def test_swap_video_detect_every_swaps_every_frame_and_keeps_count_and_size(photos, detector, tmp_path):
    import facedancer
    from facedancer.nn import GeneratorConfig, build_generator
    from facedancer.swap import FaceSwapper, SwapOptions
    from facedancer.swap_video import VideoOptions, swap_video

    frames = moving_face_frames(photos / "obama.jpg", 12)
    video = write_video(tmp_path / "in.mp4", frames)
    generator = build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64))
    generator.save(tmp_path / "generator.keras")
    counting = CountingDetector(detector)
    swapper = FaceSwapper(
        facedancer.load_model(tmp_path / "generator.keras", kind="generator"),
        pixel_identity_encoder(),
        counting,
        SwapOptions(select="largest"),
    )
    swapper.set_source(read_image(photos / "biden.jpg"))
    before = len(counting.frames)
    stats = swap_video(swapper, video, tmp_path / "out.mp4", VideoOptions(detect_every=4), progress=False)
    assert len(counting.frames) - before == 3 == stats["detections"]
    assert stats["frames"] == stats["frames_with_faces"] == stats["faces_swapped"] == 12
    assert stream_info(tmp_path / "out.mp4")["frames"] == stream_info(video)["frames"] == 12
    assert stream_info(tmp_path / "out.mp4")["size"] == stream_info(video)["size"]
    source, out = decode(video), decode(tmp_path / "out.mp4")
    for i, (a, b) in enumerate(zip(source, out, strict=True)):
        x1, y1, x2, y2 = (int(v) for v in detector.detect(a, score=0.9)[0].box)
        assert np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2]).mean() > 5, i  # swapped on every frame


def test_crossing_never_pastes_a_hidden_face(photos, detector):
    side = 198  # Obama walks right behind Biden, who walks left and hides him for a few frames
    walks = [
        Walk(photos / "obama.jpg", 10, 620 - 1.1 * side, 40, int(1.1 * side)),
        Walk(photos / "biden.jpg", 422, 10, 60, side),
    ]
    frames, _ = scene_frames(walks, 24, (640, 360))
    counting = CountingDetector(detector)
    rows, counting, follower = run(frames, counting, 4)
    per_frame = [detector.detect(f, score=0.9) for f in frames]
    assert len(counting.frames) < len(frames)  # detection still skipped on some frames
    for i, (row, found) in enumerate(zip(rows, per_frame, strict=True)):
        assert len(row) == len(found), i  # a face hidden behind the other is not followed onto it
        for t in row:
            offset = min(np.abs(t.face.landmarks - d.landmarks).mean() for d in found)
            assert offset < 4.0, (i, offset)
