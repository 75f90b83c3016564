"""What an uploaded file is, decided by its content (never its name or declared type), and the limits on it.

Every refusal is a ServeError carrying the HTTP status and a one-line message saying what to change.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer.errors import FaceDancerError
from facedancer.serve.settings import ServeSettings

# Formats a swapped image is written back in; anything else Pillow reads comes back as PNG.
SAVE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp"}
SAVE_FORMATS |= {"TIFF": "image/tiff", "GIF": "image/gif"}
SAME_AS = {"MPO": "JPEG", "JPEG2000": "PNG"}


class ServeError(FaceDancerError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, eq=False)  # holds arrays: no value equality by accident
class UploadedImage:
    pixels: np.ndarray  # HxWx3 uint8 RGB, upright
    format: str  # the format to answer in (Pillow's name)

    @property
    def media_type(self) -> str:
        return SAVE_FORMATS[self.format]


def _pil_format(path: Path) -> tuple[str, tuple[int, int], int] | None:
    """(format, size, frames) when Pillow recognises the content as an image, else None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return str(image.format), image.size, int(getattr(image, "n_frames", 1))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def is_image(path: Path) -> bool:
    found = _pil_format(path)
    return found is not None and found[2] == 1


def read_image_upload(path: Path, settings: ServeSettings, field: str) -> UploadedImage:
    """Decode an uploaded still image; 415 when it is none, 413 when it has too many pixels."""
    from facedancer.images import ImageReadError, read_image

    found = _pil_format(path)
    if found is None or found[2] != 1:
        hint = " (a video? send it to POST /v1/jobs)" if found is None and field == "target" else ""
        raise ServeError(415, f"{field}: not an image Pillow can read{hint}")
    fmt, (width, height), _ = found
    if width * height > settings.max_pixels:
        raise ServeError(
            413, f"{field}: {width}x{height} is {width * height} pixels; the limit is {settings.max_pixels}"
        )
    try:
        pixels = read_image(path)
    except ImageReadError as exc:
        raise ServeError(415, f"{field}: unreadable image ({str(exc).split(': ', 1)[-1]})") from exc
    fmt = SAME_AS.get(fmt, fmt)
    return UploadedImage(pixels, fmt if fmt in SAVE_FORMATS else "PNG")


def encode_image(image: UploadedImage, pixels: np.ndarray) -> bytes:
    """The swapped pixels in the upload's format (JPEG at quality 95)."""
    from PIL import Image

    buffer = io.BytesIO()
    extra = {"quality": 95} if image.format in ("JPEG", "WEBP") else {}
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format=image.format, **extra)
    return buffer.getvalue()


def check_video_upload(path: Path, settings: ServeSettings):
    """Probe an uploaded video (ffmpeg decides by content); 415 when it is none, 413 over the limits."""
    from facedancer.video import VideoError, probe

    if is_image(path):
        raise ServeError(415, "target: this is a still image; send it to POST /v1/swap")
    try:
        info = probe(path)
    except VideoError as exc:
        raise ServeError(415, "target: not a video ffmpeg can read") from exc
    if info.width * info.height > settings.max_pixels:
        raise ServeError(
            413, f"target: {info.width}x{info.height} frames exceed the limit of {settings.max_pixels} pixels"
        )
    if info.duration > settings.max_video_seconds:
        raise ServeError(
            413, f"target: the video lasts {info.duration:.1f} s; the limit is {settings.max_video_seconds:g} s"
        )
    return info
