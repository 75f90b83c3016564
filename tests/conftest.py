"""Shared fixtures: the original FaceDancer's files (from ../shared), small models."""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
LEGACY_ARCHIVE = "legacy_facedancer_c.tar.gz"


def _shared_dir() -> Path:
    return Path(os.environ.get("FACEDANCER_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def legacy_dir(tmp_path_factory) -> Path:
    """The original code's files (export, checkpoint, identity model, reference outputs), extracted."""
    archive = _shared_dir() / "fixtures" / LEGACY_ARCHIVE
    if not archive.exists():
        pytest.skip(f"{archive} is absent (it ships beside the repo in ../shared, not in a user's clone)")
    target = tmp_path_factory.mktemp("legacy")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "legacy_facedancer_c"


@pytest.fixture(scope="session")
def legacy_train_step_dir(tmp_path_factory) -> Path:
    """One recorded train_step of the original code: its G, D, ArcFace stand-in, VGG16 file, config, numbers."""
    archive = _shared_dir() / "fixtures" / "legacy_train_step.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (it ships beside the repo in ../shared, not in a user's clone)")
    target = tmp_path_factory.mktemp("legacy_train_step")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "legacy_train_step"


@pytest.fixture(scope="session")
def reference(legacy_dir):
    import numpy as np

    with np.load(legacy_dir / "reference.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def photos() -> Path:
    """Folder of real face photos (obama*.jpg, biden.jpg), fetched from PyPI once and cached."""
    from photos import photo_dir

    try:
        return photo_dir()
    except Exception as exc:  # no registry reachable: a user's offline machine
        pytest.skip(f"test photos unavailable (pip download of face_recognition==1.3.0 failed: {exc})")


@pytest.fixture(scope="session")
def detector():
    from facedancer.detection import RetinaFaceDetector

    return RetinaFaceDetector()


@pytest.fixture(scope="session")
def aligned_tree(photos, detector, tmp_path_factory) -> Path:
    """Aligned 256² crops of the real photos: obama/ (5 photos), biden/ (1), astronaut/ (1)."""
    from photos import OBAMA, astronaut

    from facedancer.alignment import align
    from facedancer.images import read_image, write_image

    root = tmp_path_factory.mktemp("aligned")
    sources = [("obama", name, read_image(photos / name)) for name in OBAMA]
    sources += [("biden", "biden.jpg", read_image(photos / "biden.jpg")), ("astronaut", "a.png", astronaut())]
    for identity, name, image in sources:
        face = detector.detect(image)[0]
        crop, _ = align(image, face.landmarks, 256)
        write_image(root / identity / (Path(name).stem + ".png"), crop)
    return root
