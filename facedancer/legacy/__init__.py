"""The original FaceDancer's file formats (TF 2.x, Keras 2, tensorflow-addons): reading and writing.

The one package that knows old formats; everything else goes through `facedancer.load_model`.
"""

from facedancer.legacy.reader import (
    LegacyFormatError,
    build_from_config,
    keras_version_of,
    load_legacy_h5,
    load_legacy_json,
    load_weights_into,
    read_h5_model_config,
)
from facedancer.legacy.writer import legacy_model_config, save_legacy_checkpoint, save_legacy_h5

__all__ = [
    "LegacyFormatError",
    "build_from_config",
    "keras_version_of",
    "load_legacy_h5",
    "load_legacy_json",
    "load_weights_into",
    "legacy_model_config",
    "read_h5_model_config",
    "save_legacy_checkpoint",
    "save_legacy_h5",
]
