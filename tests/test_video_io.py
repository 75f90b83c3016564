"""Video decoding keeps every frame of constant-rate inputs (23.976, 25, 29.97 and 30 fps in AVI, MP4 and MKV),
resamples only real variable-rate ones, reads rotated phone videos upright, and refuses damaged files."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from videos import crossing_frames, write_video

from facedancer.video import VideoError, probe, read_frames

RATES = [24000 / 1001, 25.0, 30000 / 1001, 30.0]


@pytest.fixture(scope="module")
def clip(photos):
    """19 frames, 160x120, two people moving: an odd count, so a duplicated or dropped frame shows."""
    return crossing_frames([photos / "obama.jpg", photos / "biden.jpg"], count=19, size=(160, 120))


@pytest.mark.parametrize("suffix", [".avi", ".mp4", ".mkv"])
@pytest.mark.parametrize("rate", RATES, ids=["23.976", "25", "29.97", "30"])
def test_constant_rate_input_gives_exactly_its_frames(clip, rate, suffix, tmp_path):
    path = write_video(tmp_path / f"clip{suffix}", clip, fps=rate, audio=suffix != ".mkv")
    info = probe(path)
    assert info.frames == len(clip) and not info.variable_rate
    assert info.fps == pytest.approx(rate, rel=1e-6)
    decoded = list(read_frames(info))
    assert len(decoded) == len(clip)
    for a, b in zip(clip, decoded, strict=True):  # the same frames, in order (x264 at crf 12)
        assert np.abs(a.astype(float) - b).mean() < 4.0


def _ffmpeg(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *map(str, args)], check=True)


def test_variable_rate_input_is_resampled_to_its_average_rate(clip, tmp_path):
    steady = write_video(tmp_path / "steady.mp4", clip[:12], fps=12.0)
    vfr = tmp_path / "vfr.mp4"
    _ffmpeg("-i", steady, "-vf", "setpts='if(lt(N,6),N/12/TB,(N+6)/12/TB)'", "-fps_mode", "vfr", vfr)
    info = probe(vfr)
    assert info.variable_rate and info.frames == 12
    decoded = len(list(read_frames(info)))
    assert decoded > 12 and abs(decoded / info.fps - info.duration) <= 2 / info.fps  # the hold is kept in time


def test_rotated_phone_video_is_read_upright(clip, tmp_path):
    plain = write_video(tmp_path / "plain.mp4", clip, fps=25.0, audio=False)
    rotated = tmp_path / "rotated.mp4"
    _ffmpeg("-display_rotation", "90", "-i", plain, "-c", "copy", rotated)
    info = probe(rotated)
    assert (info.width, info.height) == (120, 160) and info.frames == len(clip)
    first = next(iter(read_frames(info)))
    upright = np.rot90(clip[0], k=1)  # 90° counter-clockwise display rotation
    assert first.shape == upright.shape and np.abs(first.astype(float) - upright).mean() < 4.0


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_file_is_refused(clip, suffix, damage, tmp_path):
    path = write_video(tmp_path / f"clip{suffix}", clip, fps=25.0, audio=False)
    if suffix == ".mp4":  # index first, as phones and editors write it: the frames are what is lost
        _ffmpeg("-i", path, "-c", "copy", "-movflags", "+faststart", tmp_path / "fs.mp4")
        path = (tmp_path / "fs.mp4").replace(path)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) * 6 // 10]
    else:
        noise = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8)
        start = len(data) // 3
        data[start : start + 3000] = noise.tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(VideoError, match="damaged|truncated|not a readable video"):
        probe(path)
