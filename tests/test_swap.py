"""Face swapping in images and videos made from the real photos, with a small random generator and a
stand-in ArcFace (quality is not the point here: frames, audio, regions, selection and errors are)."""

import subprocess
import sys

import numpy as np
import pytest
from standins import pixel_identity_encoder, save_arcface_standin
from videos import decode, moving_face_frames, stream_info, two_people_frames, write_video

from facedancer.images import read_image, write_image
from facedancer.swap import FaceSwapper, SwapOptions, unit


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from facedancer.nn import GeneratorConfig, build_generator

    root = tmp_path_factory.mktemp("swap_models")
    generator = build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64))
    generator.save(root / "generator.keras")
    return {"generator": root / "generator.keras", "arcface": save_arcface_standin(root / "ArcFace-Res50.h5")}


@pytest.fixture(scope="module")
def moving(photos, tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("videos") / "moving.mp4", moving_face_frames(photos / "obama.jpg"))


def _swap_cli(models, target, output, source, *extra, script="multi_face_single_source.py", target_flag="--vid_path"):
    args = [
        sys.executable,
        f"video_swap/{script}",
        "--facedancer_path",
        str(models["generator"]),
        "--arcface_path",
        str(models["arcface"]),
        target_flag,
        str(target),
        "--swap_source",
        str(source),
        "--output",
        str(output),
        *extra,
    ]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def _face_boxes(frame, margin=0.25):
    from facedancer.detection import detect

    boxes = []
    for face in detect(frame):
        x1, y1, x2, y2 = face.box
        dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
        boxes.append((int(max(0, x1 - dx)), int(max(0, y1 - dy)), int(x2 + dx), int(y2 + dy)))
    return boxes


def _outside(shape, boxes):
    keep = np.ones(shape[:2], bool)
    for x1, y1, x2, y2 in boxes:
        keep[y1:y2, x1:x2] = False
    return keep


def test_video_keeps_frames_fps_size_and_audio_and_only_faces_change(models, moving, photos, tmp_path):
    out = tmp_path / "out.mp4"
    result = _swap_cli(models, moving, out, photos / "biden.jpg")
    assert result.returncode == 0, result.stderr[-2000:]
    src, dst = stream_info(moving), stream_info(out)
    assert (dst["frames"], dst["fps"], dst["size"]) == (src["frames"], src["fps"], src["size"])
    assert dst["audio_codec"] == "aac" and abs(dst["audio_seconds"] - src["audio_seconds"]) < 0.05
    before, after = decode(moving), decode(out)
    changed_inside, changed_outside = [], []
    for a, b in zip(before, after, strict=True):
        keep = _outside(a.shape, _face_boxes(a))
        diff = np.abs(a.astype(float) - b).mean(axis=2)
        changed_outside.append(diff[keep].mean())
        changed_inside.append(diff[~keep].mean())
    assert max(changed_outside) < 2.5, changed_outside  # codec error only
    assert min(changed_inside) > 5.0, changed_inside  # the face was replaced
    assert not [p for p in tmp_path.iterdir() if p.name != "out.mp4"]


def test_compare_sample_rate_and_length(models, moving, photos, tmp_path):
    out = tmp_path / "cmp.mp4"
    result = _swap_cli(models, moving, out, photos / "biden.jpg", "--compare", "--sample_rate", "2", "--length", "0.5")
    assert result.returncode == 0, result.stderr[-2000:]
    info = stream_info(out)
    assert info["size"] == (640, 240) and info["fps"] == pytest.approx(6.0) and info["frames"] == 6
    left = decode(out)[0][:, :320]
    assert np.abs(left.astype(float) - decode(moving)[0]).mean() < 2.5  # the original half is untouched


def test_target_without_faces_comes_out_equal_and_without_audio(models, photos, tmp_path):
    empty = [np.tile(np.linspace(0, 255, 321, dtype=np.uint8)[None, :, None], (241, 1, 3)) for _ in range(6)]
    video = write_video(tmp_path / "empty.mp4", empty, audio=False)  # odd size, no audio track
    out = tmp_path / "empty_out.mp4"
    result = _swap_cli(models, video, out, photos / "biden.jpg")
    assert result.returncode == 0, result.stderr[-2000:]
    info = stream_info(out)
    assert info["size"] == (321, 241) and info["frames"] == 6 and info["audio_codec"] is None
    for a, b in zip(decode(video), decode(out), strict=True):
        assert np.abs(a.astype(float) - b).mean() < 1.5


def test_image_without_faces_is_written_unchanged(models, photos, tmp_path):
    blank = np.full((200, 300, 3), 77, np.uint8)
    write_image(tmp_path / "blank.png", blank)
    result = _swap_cli(models, tmp_path / "blank.png", tmp_path / "blank_out.png", photos / "biden.jpg")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "blank_out.png"), blank)


def test_image_folder(models, photos, tmp_path):
    folder = tmp_path / "in"
    for name in ("obama2.jpg", "obama3.jpg"):
        write_image(folder / "sub" / name.replace(".jpg", ".png"), read_image(photos / name))
    result = _swap_cli(
        models, folder, tmp_path / "out", photos / "biden.jpg", script="image_swap.py", target_flag="--img_path"
    )
    assert result.returncode == 0, result.stderr
    outs = sorted(p.name for p in (tmp_path / "out" / "sub").iterdir())
    assert outs == ["obama2.png", "obama3.png"]
    for name in outs:
        a, b = read_image(folder / "sub" / name), read_image(tmp_path / "out" / "sub" / name)
        assert a.shape == b.shape and np.abs(a.astype(float) - b).mean() > 0.5


def test_reference_selection_changes_only_the_chosen_person(models, photos, detector):
    frame = two_people_frames(photos / "obama.jpg", photos / "biden.jpg", count=1)[0]
    swapper = FaceSwapper(models["generator"], pixel_identity_encoder(), detector, SwapOptions(selector="arcface"))
    swapper.set_source(photos / "obama2.jpg")
    reference = swapper.set_reference(photos / "obama.jpg")
    faces = swapper.detect(frame)
    assert len(faces) == 2
    distances = 1.0 - unit(swapper.embed_faces(frame, faces)) @ unit(reference)
    left = int(np.argmin([f.box[0] for f in faces]))
    assert distances[left] < distances[1 - left]
    threshold = float(distances.mean())
    swapper.options = SwapOptions(select="reference", reference_distance=threshold, selector="arcface")
    out = swapper.swap(frame)
    half = frame.shape[1] // 2
    np.testing.assert_array_equal(out[:, half:], frame[:, half:])  # the other person: untouched
    assert np.abs(out[:, :half].astype(float) - frame[:, :half]).mean() > 1.0
    swapper.options = SwapOptions(select="largest")
    assert len(swapper.select(frame, faces)) == 1


def test_reference_selection_by_dlib_tells_the_two_men_apart(models, photos, detector):
    """The default selector: dlib's descriptor, calibrated (same person < 0.6), whatever the swap encoder."""
    frame = two_people_frames(photos / "biden.jpg", photos / "obama.jpg", count=1)[0]
    swapper = FaceSwapper(models["generator"], pixel_identity_encoder(), detector, SwapOptions(select="reference"))
    swapper.set_source(photos / "obama3.jpg")
    swapper.set_reference([photos / "obama2.jpg", photos / "obama3.jpg"])
    chosen = swapper.select(frame, swapper.detect(frame))
    assert len(chosen) == 1 and chosen[0].box[0] > frame.shape[1] // 2  # Obama, on the right


def test_landmark_smoothing_steadies_a_still_face(photos, detector):
    from facedancer.tracking import LandmarkSmoother

    still = moving_face_frames(photos / "obama2.jpg", count=1)[0]
    rng = np.random.default_rng(0)
    frames = [np.clip(still + rng.normal(0, 6, still.shape), 0, 255).astype(np.uint8) for _ in range(20)]
    raw = [detector.detect(f)[0] for f in frames]

    def jitter(faces):
        points = np.stack([f.landmarks for f in faces])
        return np.abs(np.diff(points, axis=0)).mean()

    smoother = LandmarkSmoother(0.7)
    smoothed = [smoother([f])[0] for f in raw]
    assert jitter(raw) > 0.05  # the detector does jitter on noisy frames
    assert jitter(smoothed) < 0.6 * jitter(raw)


@pytest.mark.parametrize("case", ["missing", "not_video", "no_video_stream", "source_without_face", "no_models"])
def test_bad_inputs_give_one_line_and_leave_nothing(case, models, moving, photos, tmp_path):
    import imageio_ffmpeg

    target, source, extra = moving, photos / "biden.jpg", []
    expected = ""
    if case == "missing":
        target, expected = tmp_path / "nope.mp4", "nope.mp4 not found"
    elif case == "not_video":
        target = tmp_path / "text.mp4"
        target.write_text("not a video")
        expected = "not a readable video"
    elif case == "no_video_stream":
        target = tmp_path / "sound.m4a"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "sine=duration=1",
                "-c:a",
                "aac",
                str(target),
            ],
            check=True,
        )
        expected = "sound.m4a"
    elif case == "source_without_face":
        source = tmp_path / "wall.png"
        write_image(source, np.full((200, 200, 3), 128, np.uint8))
        expected = "no face found in source photo"
    elif case == "no_models":
        models = {"generator": models["generator"], "arcface": tmp_path / "ArcFace-Res50.h5"}
        expected = "arcface_model/README.md"
    out = tmp_path / "out.mp4"
    result = _swap_cli(models, target, out, source, *extra)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and "swapping:" not in line and not line.startswith("INFO ")
    ]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_variable_frame_rate_input_keeps_its_duration_and_audio(models, photos, tmp_path):
    import imageio_ffmpeg

    steady = write_video(tmp_path / "steady.mp4", moving_face_frames(photos / "obama.jpg", count=12))
    vfr = tmp_path / "vfr.mp4"
    # Frames 0-5 at 12 fps, then a half-second hold: timestamps no longer evenly spaced.
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(steady),
            "-vf",
            "setpts='if(lt(N,6),N/12/TB,(N+6)/12/TB)'",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-c:a",
            "copy",
            str(vfr),
        ],
        check=True,
    )
    out = tmp_path / "vfr_out.mp4"
    result = _swap_cli(models, vfr, out, photos / "biden.jpg")
    assert result.returncode == 0, result.stderr[-2000:]
    src, dst = stream_info(vfr), stream_info(out)
    _, src_seconds = imageio_ffmpeg.count_frames_and_secs(str(vfr))
    assert abs(dst["frames"] / dst["fps"] - src_seconds) <= 2.0 / dst["fps"]
    assert dst["audio_codec"] == "aac" and abs(dst["audio_seconds"] - src["audio_seconds"]) < 0.05


def test_generator_gets_the_mean_raw_arcface_embedding_of_the_source_photos(legacy_train_step_dir, photos, detector):
    """As the original's swap_func.py: z = ArcFace(aligned 112² source / 255) as it comes out (its last layer is a
    BatchNorm: not unit length), the mean over several source photos; the original's G and ArcFace-layout files."""
    import facedancer
    from facedancer.alignment import align
    from facedancer.blending import paste

    arcface = facedancer.load_model(legacy_train_step_dir / "ArcFace-standin.h5", kind="identity")
    generator = facedancer.load_model(legacy_train_step_dir / "generator.h5", kind="generator")
    swapper = FaceSwapper(generator, arcface, detector, SwapOptions(precision="float32", rewrite_graph=False))
    names = ["obama.jpg", "obama2.jpg"]
    z = swapper.set_source([photos / name for name in names])
    raw = []
    for name in names:
        image = read_image(photos / name)
        crop, _ = align(image, swapper.detect(image)[0].landmarks, 112)
        raw.append(np.asarray(arcface(crop[None].astype(np.float32) / 255.0))[0])
    expected = np.mean(raw, axis=0)
    np.testing.assert_allclose(z, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    assert abs(np.linalg.norm(expected) - 1.0) > 0.1  # so a unit-length identity fails the line above

    frame = read_image(photos / "biden.jpg")
    faces = swapper.detect(frame)[:1]
    target, matrix = align(frame, faces[0].landmarks, swapper.crop_size)
    x = target[None].astype(np.float32) / 127.5 - 1.0

    def pasted(identity):
        y = np.asarray(generator([x, identity[None].astype(np.float32)]))[0]
        return paste(frame, np.clip((y + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8), matrix, swapper.mask)

    out = swapper.swap_frames([frame], [faces])[0].astype(float)
    assert np.abs(out - pasted(expected)).max() <= 1.0
    assert np.abs(out - pasted(expected / np.linalg.norm(expected))).max() > 3.0  # G tells the two apart

    unit_swapper = FaceSwapper(generator, arcface, detector, SwapOptions(normalize_identity=True, rewrite_graph=False))
    unit_z = unit_swapper.set_source([photos / name for name in names])
    np.testing.assert_allclose(unit_z, unit(unit(np.array(raw)).mean(axis=0)), atol=1e-5)
