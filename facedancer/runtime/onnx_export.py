"""Export the (rewritten) generator to ONNX once and keep it in a cache keyed by the model and the options.

Converting config C takes about a minute (tf2onnx's graph optimiser), so the file is kept under
`~/.cache/facedancer/onnx/<key>/` ($FACEDANCER_ONNX_CACHE or $XDG_CACHE_HOME move it), where the key hashes
the model file's bytes (or, for a model built in memory, its config and weights) together with everything
that changes the exported graph. Files are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from facedancer.atomic import atomic_path

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAMES = ("target", "identity")


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facedancer" / "onnx"
    return Path(os.environ.get("FACEDANCER_ONNX_CACHE", default))


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_digest(model) -> str:
    """A hash of a Keras model's architecture and weights, for models that were not loaded from a file."""
    h = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weight in model.get_weights():
        h.update(np.ascontiguousarray(weight).tobytes())
    return h.hexdigest()


def graph_outline(model) -> list[tuple[str, str, str]]:
    """(class, name, output shape) of every layer: changes when the inference rewrites change the graph
    (their fused layers hold constants, not serializable configs, so get_config() cannot describe them)."""
    outline = []
    for layer in model.layers:
        try:
            shape = str(layer.output.shape)
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            shape = "shared"
        outline.append((type(layer).__name__, layer.name, shape))
    return outline


def cache_key(model_hash: str, **options) -> str:
    """Short hash of the model hash and the export options (versions of the converters included)."""
    text = json.dumps({"model": model_hash, **options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def export_onnx(model, path: Path, opset: int = OPSET) -> Path:
    """Write `model` ([target crops, identity] -> float32 crops) as an ONNX file with a dynamic batch size."""
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    size = int(model.inputs[0].shape[1])
    width = int(model.inputs[1].shape[-1])
    signature = [
        tf.TensorSpec([None, size, size, 3], tf.float32, name=INPUT_NAMES[0]),
        tf.TensorSpec([None, width], tf.float32, name=INPUT_NAMES[1]),
    ]
    function = tf.function(lambda target, identity: tf.cast(model([target, identity], training=False), tf.float32))
    # tf2onnx deep-copies the whole graph, weights included, before each optimiser pass so that it can undo a
    # failing one; with this variable set it does not (a third of the export time). A broken pass then raises,
    # and the exported model is checked against TensorFlow before it is used in any case.
    previous = os.environ.get("TF2ONNX_CATCH_ERRORS")
    os.environ["TF2ONNX_CATCH_ERRORS"] = "FALSE"
    try:
        with atomic_path(path) as tmp:
            tf2onnx.convert.from_function(function, input_signature=signature, opset=opset, output_path=str(tmp))
    finally:
        if previous is None:
            os.environ.pop("TF2ONNX_CATCH_ERRORS", None)
        else:
            os.environ["TF2ONNX_CATCH_ERRORS"] = previous
    return path


def cached_float_model(model, model_hash: str, cache_dir: Path | None = None) -> Path:
    """The float32 ONNX file of `model` (the graph to export: the stored generator, rewritten for inference
    or not), exported on first use and reused after. `model_hash` names the weights (the generator file's
    bytes); the exported graph's architecture and the converter versions are part of the key too."""
    import onnx
    import tf2onnx

    graph = hashlib.sha256(repr(graph_outline(model)).encode()).hexdigest()
    key = cache_key(model_hash, graph=graph, opset=OPSET, tf2onnx=tf2onnx.__version__, onnx=onnx.__version__)
    path = (cache_dir or cache_root()) / key / "generator_float32.onnx"
    if path.exists():
        log.debug("ONNX generator from the cache: %s", path)
        return path
    log.info("exporting the generator to ONNX (once; cached in %s)", path.parent)
    return export_onnx(model, path)
