"""Real face photos for tests (see facedancer.samples); cached in .cache/test-photos or $FACEDANCER_TEST_CACHE."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facedancer import samples

REPO = Path(__file__).resolve().parents[1]
OBAMA = samples.OBAMA
ALL = samples.ALL


def photo_dir() -> Path:
    return samples.photo_dir(Path(os.environ.get("FACEDANCER_TEST_CACHE", REPO / ".cache" / "test-photos")))


def astronaut() -> np.ndarray:
    image = samples.astronaut()
    assert image is not None, "scikit-image is needed for the astronaut photo"
    return image
