"""Reading any photo as 8-bit RGB, and writing images without leaving half-written files."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import numpy as np

from facedancer.atomic import atomic_path
from facedancer.errors import FaceDancerError

# Files the dataset, swap and evaluation commands treat as images.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})

# Largest photo read (pixels). Pillow's default (~89 MP) refuses ordinary 108 MP phone photos; 200 MP still
# stops decompression bombs (a few KB of PNG that would expand to gigabytes). `--max_pixels` changes it.
DEFAULT_MAX_PIXELS = 200_000_000
_max_pixels = DEFAULT_MAX_PIXELS


def set_max_pixels(limit: int) -> None:
    """Largest image (width x height) read_image accepts; larger ones are refused naming --max_pixels."""
    global _max_pixels
    _max_pixels = int(limit)


class ImageReadError(FaceDancerError):
    """A file that cannot be read as an image (corrupt, truncated, not an image)."""


def _to_rgb8(image) -> np.ndarray:
    """PIL image of any mode (CMYK, greyscale, palette, alpha, 16/32-bit) -> HxWx3 uint8 RGB."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        if mode == "F" and array.max() <= 1.0:
            top = 1.0
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(array[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[:, :, 3:] / 255.0
        return (rgba[:, :, :3] * alpha + 0.5).astype(np.uint8)  # transparent pixels become black
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _too_large(path: Path, pixels: int) -> ImageReadError:
    need = f"{-(-pixels // 1_000_000)}M" if pixels else "a larger value"
    return ImageReadError(
        f"{path}: {pixels / 1e6:.0f} MP is above --max_pixels {_max_pixels / 1e6:.0f}M "
        f"(a guard against decompression bombs); pass --max_pixels {need} to read it"
    )


def read_image(path: str | Path, data: bytes | None = None) -> np.ndarray:
    """An HxWx3 uint8 RGB array, upright as the camera's EXIF orientation says.

    `data`: the file's bytes when the caller has read them already (a remote filesystem); `path` then only
    names the file in errors.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path) if data is None else path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = _max_pixels  # Pillow raises only above twice this; we refuse above it
            with Image.open(path if data is None else io.BytesIO(data)) as image:
                if image.size[0] * image.size[1] > _max_pixels:
                    raise _too_large(path, image.size[0] * image.size[1])
                image.load()
                image = ImageOps.exif_transpose(image)
                return _to_rgb8(image)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _too_large(path, int(found.group(1)) if found else 0) from exc
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{path}: not an image file") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError(f"{path}: unreadable image ({exc})") from exc


def encode_image(image: np.ndarray, suffix: str = ".png") -> bytes:
    """The bytes `write_image` writes for this suffix (so a pipeline that stores bytes stores the same file)."""
    from PIL import Image

    extra = {"quality": 95} if suffix.lower() in (".jpg", ".jpeg") else {}
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(
        buffer, format=Image.registered_extensions()[suffix.lower()], **extra
    )
    return buffer.getvalue()


def write_image(path: str | Path, image: np.ndarray) -> None:
    """Write an RGB uint8 image (format from the suffix) under a temporary name, then rename it."""
    data = encode_image(image, Path(path).suffix)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
