"""FaceDancer face swapping in TensorFlow 2 / Keras 3.

Heavy modules (TensorFlow) load on first use, so `facedancer --help` and error paths stay fast.
"""

from __future__ import annotations

import importlib

from facedancer.errors import FaceDancerError, ModelFileError

__version__ = "0.1.0"
__all__ = ["FaceDancerError", "ModelFileError", "__version__", "load", "load_model", "model_kind"]

_LAZY = {"load": "facedancer.models", "load_model": "facedancer.models", "model_kind": "facedancer.models"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'facedancer' has no attribute {name!r}")
