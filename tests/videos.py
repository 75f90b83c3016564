"""Test videos made from the real photos: a face moving and zooming, two people, with an AAC audio track."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

from facedancer.images import read_image


def portrait(photo: Path, height: int) -> np.ndarray:
    image = read_image(photo)
    scale = height / image.shape[0]
    return cv2.resize(image, (max(2, int(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


def moving_face_frames(photo: Path, count: int = 24, size=(320, 240)) -> list[np.ndarray]:
    """A portrait sliding right and zooming in over a grey-gradient background."""
    width, height = size
    background = np.tile(np.linspace(60, 180, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        face = portrait(photo, int(height * (0.8 + 0.15 * t)))
        frame = background.copy()
        x = int(10 + 60 * t)
        w = min(face.shape[1], width - x)
        h = min(face.shape[0], height)
        frame[:h, x : x + w] = face[:h, :w]
        frames.append(frame)
    return frames


def two_people_frames(left: Path, right: Path, count: int = 12, size=(480, 240)) -> list[np.ndarray]:
    width, height = size
    frame = np.full((height, width, 3), 110, np.uint8)
    a, b = portrait(left, height - 20), portrait(right, height - 20)
    a, b = a[:, : width // 2 - 10], b[:, : width // 2 - 10]
    frame[10 : 10 + a.shape[0], 5 : 5 + a.shape[1]] = a
    frame[10 : 10 + b.shape[0], width // 2 + 5 : width // 2 + 5 + b.shape[1]] = b
    return [frame.copy() for _ in range(count)]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 12.0, audio: bool = True) -> Path:
    """Encode frames (lossless-ish x264) and, if asked, add a 440 Hz AAC tone as long as the video."""
    import imageio_ffmpeg

    height, width = frames[0].shape[:2]
    silent = path.with_name(path.stem + "_silent" + path.suffix) if audio else path
    even = width % 2 == 0 and height % 2 == 0
    writer = imageio_ffmpeg.write_frames(
        str(silent),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p" if even else "yuv444p",
        macro_block_size=1,
        quality=None,
        output_params=["-crf", "12"],
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame).tobytes())
    writer.close()
    if audio:
        duration = len(frames) / fps
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                "-y",
                "-loglevel",
                "error",
                "-i",
                str(silent),
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency=440:sample_rate=44100:duration={duration}",
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-c:v",
                "copy",
                "-c:a",
                "aac",
                str(path),
            ],
            check=True,
        )
        silent.unlink()
    return path


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
