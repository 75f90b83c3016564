"""Real face photos for tests, fetched from registry packages once and cached.

- `face_recognition==1.3.0` source archive (PyPI): tests/test_images/ holds obama*.jpg (five photos of
  one man), biden.jpg and 32bit.png.
- scikit-image ships `astronaut()`.
Nothing is committed; the cache lives in .cache/test-photos (or $FACEDANCER_TEST_CACHE).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "face_recognition==1.3.0"
OBAMA = ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg")
ALL = (*OBAMA, "biden.jpg", "32bit.png")


def cache_dir() -> Path:
    return Path(os.environ.get("FACEDANCER_TEST_CACHE", REPO / ".cache" / "test-photos"))


def photo_dir() -> Path:
    """The folder holding the face_recognition test photos, downloading them on first use."""
    folder = cache_dir()
    if all((folder / name).exists() for name in ALL):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", PACKAGE, "-d", tmp],
            check=True,
            capture_output=True,
            timeout=300,
        )
        archive = next(Path(tmp).glob("face_recognition-*.tar.gz"))
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if "/tests/test_images/" in member.name and name in ALL:
                    data = tar.extractfile(member).read()
                    part = folder / f".{name}.part"
                    part.write_bytes(data)
                    part.replace(folder / name)
    return folder


def astronaut() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut())
