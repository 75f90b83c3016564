"""Real sample photos and videos for the demo and the tests, from registry packages (nothing is committed).

- `face_recognition==1.3.0` source archive on PyPI: tests/test_images/ holds five photos of one man
  (obama*.jpg), one of another (biden.jpg), and 32bit.png. Fetched with pip once and cached.
- scikit-image ships `astronaut()`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from facedancer.errors import FaceDancerError

PACKAGE = "face_recognition==1.3.0"
OBAMA = ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg")
ALL = (*OBAMA, "biden.jpg", "32bit.png")


def cache_dir() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facedancer" / "sample-photos"
    return Path(os.environ.get("FACEDANCER_SAMPLE_CACHE", default))


def photo_dir(folder: Path | None = None) -> Path:
    """The folder holding the face_recognition sample photos, fetched from PyPI with pip on first use."""
    folder = folder or cache_dir()
    if all((folder / name).exists() for name in ALL):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", PACKAGE, "-d", tmp],
            capture_output=True,
            text=True,
            timeout=300,
        )
        archives = list(Path(tmp).glob("face_recognition-*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise FaceDancerError(
                f"could not fetch the sample photos ({PACKAGE} from PyPI): "
                f"{result.stderr.strip()[-200:] or 'no archive'}"
            )
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if "/tests/test_images/" in member.name and name in ALL:
                    part = folder / f".{name}.part"
                    part.write_bytes(tar.extractfile(member).read())
                    part.replace(folder / name)
    return folder


def astronaut() -> np.ndarray | None:
    """scikit-image's astronaut photo, or None when scikit-image is not installed."""
    try:
        from skimage import data
    except ImportError:
        return None
    return np.ascontiguousarray(data.astronaut())


def portrait(image: np.ndarray, height: int) -> np.ndarray:
    import cv2

    scale = height / image.shape[0]
    return cv2.resize(image, (max(2, int(image.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


def moving_face_frames(image: np.ndarray, count: int = 24, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """A portrait sliding right and zooming in over a grey gradient."""
    width, height = size
    background = np.tile(np.linspace(60, 180, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        face = portrait(image, int(height * (0.8 + 0.15 * t)))
        frame = background.copy()
        x = int(10 + 60 * t)
        w, h = min(face.shape[1], width - x), min(face.shape[0], height)
        frame[:h, x : x + w] = face[:h, :w]
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 12.0, audio: bool = True) -> Path:
    """Encode frames with x264 and, if asked, add a 440 Hz AAC tone as long as the video."""
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
