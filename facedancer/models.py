"""`load_model`: one front door for every model file a user has (native or the original's)."""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras

from facedancer import legacy
from facedancer.errors import ModelFileError
from facedancer.nn.layers import custom_objects

log = logging.getLogger(__name__)

KINDS = ("generator", "identity", "discriminator")
KIND_DESCRIPTIONS = {
    "generator": "a FaceDancer generator (target image + 512-d identity -> image)",
    "identity": "an identity encoder such as ArcFace (face image -> embedding vector)",
    "discriminator": "a FaceDancer discriminator (image -> realness logit)",
    "unknown": "a model of unknown kind",
}


@dataclass
class LoadedModel:
    """A model and where it came from (`info` prints this)."""

    model: keras.Model
    kind: str
    format: str
    path: Path
    weights: Path | None = None


def model_kind(model: keras.Model) -> str:
    """Tell generators, identity encoders and discriminators apart by their input/output shapes."""
    ins = [tuple(t.shape) for t in model.inputs]
    outs = [tuple(t.shape) for t in model.outputs]
    if len(outs) != 1:
        return "unknown"
    out = outs[0]
    if len(ins) == 2 and sorted(len(s) for s in ins) == [2, 4] and len(out) == 4 and out[-1] == 3:
        return "generator"
    if len(ins) == 1 and len(ins[0]) == 4:
        if len(out) == 2 and (out[-1] or 0) > 1:
            return "identity"
        if out[-1] == 1:
            return "discriminator"
    return "unknown"


def _latest_checkpoint_weights(json_path: Path) -> Path | None:
    """`gen.json` -> the `gen_N.h5` beside it with the largest N (the original's naming)."""
    pattern = re.compile(rf"^{re.escape(json_path.stem)}_(\d+)\.h5$")
    found = [(int(m.group(1)), p) for p in json_path.parent.iterdir() if (m := pattern.match(p.name))]
    return max(found)[1] if found else None


def _load_native(path: Path) -> keras.Model:
    try:
        return keras.saving.load_model(path, custom_objects=custom_objects(), compile=False)
    except (TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: cannot rebuild this Keras model: {first}") from exc


def _check_exists(path: Path, what: str) -> None:
    if not path.exists():
        raise ModelFileError(f"{what} not found: {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give the path of the {what} itself")


def _load_any(path: Path, weights: Path | None) -> tuple[keras.Model, str, Path | None]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        if "config.json" not in names or "model.weights.h5" not in names:
            raise ModelFileError(f"{path} is a zip archive but not a Keras .keras model")
        if path.suffix != ".keras":
            raise ModelFileError(f"{path} is a Keras 3 model archive; Keras reads it only under a .keras name")
        model = _load_native(path)
        if weights is not None:
            model.load_weights(weights)
        return model, "keras (native .keras archive)", weights
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as h5:
            config = legacy.read_h5_model_config(h5)
            version = legacy.keras_version_of(h5)
            has_weights = "layer_names" in h5.attrs or "model_weights" in h5
        if config is None:
            if has_weights:
                raise ModelFileError(
                    f"{path} holds weights only, without an architecture; load it with its JSON: "
                    f"load_model('…/gen.json', weights='{path}')"
                )
            raise ModelFileError(f"{path} is an HDF5 file but not a Keras model")
        if version.startswith("3"):
            model = _load_native(path)
            fmt = f"h5 (Keras {version})"
        else:
            model = legacy.build_from_config(config, str(path))
            legacy.load_weights_into(model, path)
            fmt = f"legacy h5 whole model (Keras {version or 'unknown'}, original FaceDancer format)"
        if weights is not None:
            legacy.load_weights_into(model, weights)
        return model, fmt, weights
    head = path.read_bytes()[:64].lstrip()
    if path.suffix.lower() == ".json" or head.startswith(b"{"):
        if weights is None:
            weights = _latest_checkpoint_weights(path)
            if weights is None:
                raise ModelFileError(
                    f"{path} holds only an architecture and no {path.stem}_N.h5 lies beside it; "
                    f"pass its weights: load_model('{path}', weights='…/{path.stem}_N.h5')"
                )
            log.info("using weights %s for %s", weights, path)
        _check_exists(weights, "weights file")
        model, version = legacy.load_legacy_json(path, weights)
        return model, f"legacy checkpoint json + weights h5 (Keras {version})", weights
    raise ModelFileError(
        f"{path} is not a model file (expected a .keras archive, a Keras .h5 model, or a gen.json/dis.json "
        "architecture with its weights)"
    )


def load(path: str | Path, weights: str | Path | None = None, kind: str | None = None) -> LoadedModel:
    """Load any supported model file; raise ModelFileError with one clear line on failure."""
    path = Path(path)
    weights = Path(weights) if weights is not None else None
    _check_exists(path, "model file")
    if weights is not None:
        _check_exists(weights, "weights file")
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    try:
        model, fmt, used_weights = _load_any(path, weights)
    except ModelFileError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read this model file ({type(exc).__name__}: {exc})") from exc
    found = model_kind(model)
    if kind is not None and found != kind:
        raise ModelFileError(f"{path} is {KIND_DESCRIPTIONS[found]}, but {KIND_DESCRIPTIONS[kind]} is expected here")
    return LoadedModel(model=model, kind=found, format=fmt, path=path, weights=used_weights)


def load_model(path: str | Path, weights: str | Path | None = None, kind: str | None = None) -> keras.Model:
    """A Keras model from a .keras file, an original FaceDancer/ArcFace .h5, or gen.json + gen_N.h5.

    `kind` ("generator", "identity", "discriminator") rejects a model of another kind with a clear error.
    """
    return load(path, weights=weights, kind=kind).model
