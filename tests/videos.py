"""Test videos made from the real photos: a face moving and zooming, two people, people crossing (one hiding
another), entering and leaving, camera shake; with an AAC audio track."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
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


_HEADS: dict = {}


def head(photo: Path) -> np.ndarray:
    """The photo cut to its face and some hair and shoulders (square around the detected face)."""
    if photo not in _HEADS:
        from facedancer.detection import detect

        image = read_image(photo)
        x1, y1, x2, y2 = detect(image)[0].box
        side = 1.9 * max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.05 * side
        left, top = int(max(cx - side / 2, 0)), int(max(cy - side / 2, 0))
        _HEADS[photo] = image[top : int(top + side), left : int(left + side)]
    return _HEADS[photo]


@dataclass
class Walk:
    """One person: a head of `height` pixels going from x0 to x1 at height y over the clip (None: not in it)."""

    photo: Path
    x0: float
    x1: float
    y: float
    height: int
    frames: tuple[int, int] | None = None  # first and last frame on screen (None: all)


def scene_frames(
    walks: list[Walk], count: int, size=(480, 240), shake: float = 0.0, seed: int = 0
) -> tuple[list[np.ndarray], list[list[tuple[float, float] | None]]]:
    """Frames of people walking past each other (later walks are drawn in front, hiding earlier ones), and
    the true top-left (x, y) of each person's head in each frame (None when off screen), camera shake
    included: the motion a tracker should follow."""
    import cv2

    width, height = size
    rng = np.random.default_rng(seed)
    background = np.tile(np.linspace(50, 190, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    heads = [cv2.resize(head(w.photo), (w.height, w.height), interpolation=cv2.INTER_AREA) for w in walks]
    frames, truth = [], []
    for i in range(count):
        t = i / max(count - 1, 1)
        jolt = rng.normal(0, shake, 2) if shake else np.zeros(2)
        frame, where = background.copy(), []
        for walk, image in zip(walks, heads, strict=True):
            first, last = walk.frames or (0, count - 1)
            if not first <= i <= last:
                where.append(None)
                continue
            x, y = walk.x0 + (walk.x1 - walk.x0) * t + jolt[0], walk.y + jolt[1]
            shift = np.float64([[1, 0, x], [0, 1, y]])  # sub-pixel placement, like a real camera
            placed = cv2.warpAffine(image, shift, size, flags=cv2.INTER_LINEAR, borderValue=0)
            inside = cv2.warpAffine(np.ones(image.shape[:2], np.float32), shift, size, flags=cv2.INTER_LINEAR)
            frame = (frame * (1 - inside[..., None]) + placed * inside[..., None] + 0.5).astype(np.uint8)
            where.append((float(x), float(y)))
        frames.append(frame)
        truth.append(where)
    return frames, truth


def crossing_frames(photos: list[Path], count: int = 24, size=(480, 240)) -> list[np.ndarray]:
    """Two or three people crossing: the first walks right, the second walks left in front of it (hiding
    it for a few frames), a third (if given) stands on the right."""
    width, height = size
    side = int(height * 0.75)
    walks = [
        Walk(photos[0], 0.02 * width, width - side - 0.02 * width, 0.1 * height, side),
        Walk(photos[1], width - side - 0.02 * width, 0.02 * width, 0.12 * height, side),
    ]
    if len(photos) > 2:
        walks.insert(0, Walk(photos[2], width - side, width - side - 0.05 * width, 0.05 * height, side))
    return scene_frames(walks, count, size)[0]


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


def truncated_copy(video: Path, out: Path, keep: float = 0.5) -> Path:
    """`video` cut off after `keep` of its bytes, as a download or copy that stopped: remuxed first with the
    index (moov) at the front, as web and streaming MP4s have it, so the frames before the cut can be read."""
    import imageio_ffmpeg

    whole = out.with_name(out.stem + "_whole" + out.suffix)
    args = ["-y", "-loglevel", "error", "-i", str(video), "-c", "copy", "-movflags", "+faststart", str(whole)]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), *args], check=True)
    data = whole.read_bytes()
    whole.unlink()
    out.write_bytes(data[: int(len(data) * keep)])
    return out
