"""Test videos made from the real photos: a face moving and zooming, two people, with an AAC audio track."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from facedancer import samples
from facedancer.images import read_image


def portrait(photo: Path, height: int) -> np.ndarray:
    return samples.portrait(read_image(photo), height)


def moving_face_frames(photo: Path, count: int = 24, size=(320, 240)) -> list[np.ndarray]:
    """A portrait sliding right and zooming in over a grey-gradient background."""
    return samples.moving_face_frames(read_image(photo), count, size)


def two_people_frames(left: Path, right: Path, count: int = 12, size=(480, 240)) -> list[np.ndarray]:
    width, height = size
    frame = np.full((height, width, 3), 110, np.uint8)
    a, b = portrait(left, height - 20), portrait(right, height - 20)
    a, b = a[:, : width // 2 - 10], b[:, : width // 2 - 10]
    frame[10 : 10 + a.shape[0], 5 : 5 + a.shape[1]] = a
    frame[10 : 10 + b.shape[0], width // 2 + 5 : width // 2 + 5 + b.shape[1]] = b
    return [frame.copy() for _ in range(count)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 12.0, audio: bool = True) -> Path:
    return samples.write_video(path, frames, fps, audio)


def stream_info(path: Path) -> dict:
    """Frame count, fps, size and audio duration, read back with ffmpeg."""
    import re

    import imageio_ffmpeg

    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path), "-map", "0:a?", "-f", "null", "-"],
        capture_output=True,
        text=True,
    ).stderr
    times = re.findall(r"time=(\d+):(\d+):([\d.]+)", probe)
    audio = None
    if meta.get("audio_codec") and times:
        h, m, s = times[-1]
        audio = int(h) * 3600 + int(m) * 60 + float(s)
    return {
        "frames": frames,
        "fps": meta["fps"],
        "size": tuple(meta["size"]),
        "audio_seconds": audio,
        "audio_codec": meta.get("audio_codec"),
    }


def decode(path: Path) -> list[np.ndarray]:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]
