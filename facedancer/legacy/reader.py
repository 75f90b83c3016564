"""Reader for model files written by the original FaceDancer code (TF 2.x, Keras 2, tensorflow-addons).

The one module that knows old formats. It rebuilds the functional graph from the Keras 2 JSON
(`model_config` of a whole-model .h5, or a `model.to_json()` file), layer by layer with today's
classes, then copies the weights from the HDF5 groups by layer name. Nothing is imported from
tensorflow-addons or the original code base.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from facedancer.errors import ModelFileError
from facedancer.nn.layers import AdaIN, AdaptiveAttention, InstanceNormalization, TFOpLayer

log = logging.getLogger(__name__)

MODEL_CLASSES = ("Functional", "Model")
# Classes the original's files name that are not in keras.layers, by their serialised names.
LEGACY_CLASSES: dict[str, type] = {
    "AdaIN": AdaIN,
    "AdaptiveAttention": AdaptiveAttention,
    "InstanceNormalization": InstanceNormalization,
    "Addons>InstanceNormalization": InstanceNormalization,
    "GroupNormalization": keras.layers.GroupNormalization,
    "Addons>GroupNormalization": keras.layers.GroupNormalization,
}
TF_OP_CLASSES = ("TFOpLambda", "SlicingOpLambda")
BASE_LAYER_KEYS = {"name", "trainable", "dtype", "activity_regularizer"}


class LegacyFormatError(ModelFileError):
    """The file is a Keras 2 model, but something in it cannot be rebuilt."""


def read_h5_model_config(h5: h5py.File) -> dict | None:
    """The Keras architecture JSON stored in a whole-model .h5, or None for weights-only files."""
    raw = h5.attrs.get("model_config")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def keras_version_of(h5: h5py.File) -> str:
    raw = h5.attrs.get("keras_version", b"")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


# ----------------------------------------------------------------------------------------------
# Architecture


def build_from_config(model_config: dict, source: str) -> keras.Model:
    """A Keras 3 model with the topology described by a Keras 2 `{"class_name", "config"}` dict."""
    cls = model_config.get("class_name")
    if cls in MODEL_CLASSES:
        return _build_functional(model_config["config"], source)
    if cls == "Sequential":
        return _build_sequential(model_config["config"], source)
    raise LegacyFormatError(f"{source}: the architecture is a {cls!r}, not a Keras Functional/Sequential model")


def _layer_class(class_name: str, layer_name: str, source: str) -> type:
    if class_name in LEGACY_CLASSES:
        return LEGACY_CLASSES[class_name]
    if class_name == "Lambda":
        raise LegacyFormatError(
            f"{source}: layer {layer_name!r} is a Python Lambda layer, whose code cannot be read safely; "
            "re-export the model without Lambda layers"
        )
    cls = getattr(keras.layers, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, keras.layers.Layer)):
        raise LegacyFormatError(
            f"{source}: unknown layer class {class_name!r} (layer {layer_name!r}); facedancer reads Keras "
            "layers and the original FaceDancer layers (AdaIN, AdaptiveAttention, InstanceNormalization)"
        )
    return cls


def _accepted_keys(cls: type) -> set[str]:
    keys = set(BASE_LAYER_KEYS)
    for klass in cls.__mro__:
        if klass is keras.layers.Layer or not issubclass(klass, keras.layers.Layer):
            break
        params = inspect.signature(klass.__init__).parameters.values()
        keys |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return keys - {"self"}


def _convert_dtype(dtype: Any) -> Any:
    # Keras 2 writes mixed-precision policies as dicts; we load every legacy model in float32.
    if isinstance(dtype, dict):
        return "float32"
    return dtype


def _convert_layer_config(class_name: str, cls: type, config: dict) -> dict:
    """Keras 2 layer config -> keyword arguments today's class accepts."""
    config = dict(config)
    if "dtype" in config:
        config["dtype"] = _convert_dtype(config["dtype"])
    if class_name == "InputLayer":
        if "batch_input_shape" in config:
            config["batch_shape"] = tuple(config.pop("batch_input_shape"))
        config.pop("ragged", None)
    if class_name == "LeakyReLU" and "alpha" in config:
        config["negative_slope"] = config.pop("alpha")
    if class_name == "BatchNormalization" and isinstance(config.get("axis"), (list, tuple)):
        if len(config["axis"]) != 1:
            raise ValueError(f"BatchNormalization over several axes {config['axis']} is not supported")
        config["axis"] = config["axis"][0]
    accepted = _accepted_keys(cls)
    dropped = sorted(k for k in config if k not in accepted)
    if dropped:
        log.debug("%s %s: ignoring Keras 2 config keys %s", class_name, config.get("name"), dropped)
    return {k: v for k, v in config.items() if k in accepted}


def _make_layer(spec: dict, source: str) -> keras.layers.Layer:
    class_name = spec["class_name"]
    name = spec.get("config", {}).get("name", spec.get("name"))
    if class_name in MODEL_CLASSES or class_name == "Sequential":
        return build_from_config(spec, source)
    cls = _layer_class(class_name, name, source)
    try:
        return cls(**_convert_layer_config(class_name, cls, spec["config"]))
    except (TypeError, ValueError) as exc:
        raise LegacyFormatError(f"{source}: cannot rebuild layer {name!r} ({class_name}): {exc}") from exc


def _is_tensor_ref(value: Any, known: Callable[[str], bool]) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and isinstance(value[2], int)
        and known(value[0])
    )


def _keras_history(value: Any) -> list | None:
    """A tensor reference as Keras 2.13+ may write it inside call kwargs."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return value["config"]["keras_history"]
    return None


def _build_functional(config: dict, source: str) -> keras.Model:
    specs = {spec["config"].get("name", spec.get("name")): spec for spec in config["layers"]}
    layers: dict[str, keras.layers.Layer | None] = {}
    outputs: dict[tuple[str, int], Any] = {}  # (layer, node index) -> output tensor(s)

    def tensor(ref) -> Any:
        name, node, index = ref[0], ref[1], ref[2]
        out = outputs[(name, node)]
        return out[index] if isinstance(out, (list, tuple)) else out

    def ready(ref) -> bool:
        return (ref[0], ref[1]) in outputs

    for name, spec in specs.items():
        if spec["class_name"] == "InputLayer":
            cfg = _convert_layer_config("InputLayer", keras.layers.InputLayer, spec["config"])
            shape = cfg.get("batch_shape")
            outputs[(name, 0)] = keras.Input(batch_shape=shape, dtype=cfg.get("dtype") or "float32", name=name)

    pending = [
        (name, i, node)
        for name, spec in specs.items()
        if spec["class_name"] != "InputLayer"
        for i, node in enumerate(_nodes(spec), start=_first_node_index(spec))
    ]
    while pending:
        progressed = False
        for item in list(pending):
            name, node_index, node = item
            refs = [entry for entry in node]
            if not all(ready(r) for r in refs) or not all(ready(r) for r in _kwarg_refs(node, specs)):
                continue
            if name not in layers:  # a TF op layer is made where it is called, from the call's arguments
                layers[name] = None if specs[name]["class_name"] in TF_OP_CLASSES else _make_layer(specs[name], source)
            outputs[(name, node_index)] = _call_node(layers[name], specs[name], node, tensor, specs, source)
            pending.remove(item)
            progressed = True
        if not progressed:
            missing = sorted(
                {r[0] for _, _, node in pending for r in [*node, *_kwarg_refs(node, specs)] if not ready(r)}
            )
            raise LegacyFormatError(f"{source}: the graph refers to layers it never defines: {missing}")

    def endpoints(key: str) -> list:
        refs = config[key]
        if refs and isinstance(refs[0], str):  # a single [name, node, index]
            refs = [refs]
        return [tensor(r) for r in refs]

    ins, outs = endpoints("input_layers"), endpoints("output_layers")
    return keras.Model(ins[0] if len(ins) == 1 else ins, outs[0] if len(outs) == 1 else outs, name=config.get("name"))


def _first_node_index(spec: dict) -> int:
    """Keras 2 numbers a nested graph model's calls from 1: its node 0 is its own input wiring."""
    if spec["class_name"] in MODEL_CLASSES:
        return 1
    if spec["class_name"] == "Sequential":
        config = spec["config"]
        first = (config.get("layers") or [{}])[0]
        return int(first.get("class_name") == "InputLayer" or "batch_input_shape" in first.get("config", {}))
    return 0


def _is_entry(value: Any) -> bool:
    """One `[layer, node, tensor(, kwargs)]` reference (as opposed to a list of them)."""
    return isinstance(value, (list, tuple)) and len(value) in (3, 4) and isinstance(value[0], str)


def _nodes(spec: dict) -> list[list]:
    """The layer's calls, each as a list of `[layer, node, tensor, kwargs]` entries.

    Keras 2 writes a node as a list of entries, except for a `TFOpLambda` (a raw TensorFlow op between
    Keras tensors, e.g. `m * m_hat`), whose node is one flat entry: `[layer, node, tensor, {"y": …}]`.
    """
    nodes = spec.get("inbound_nodes", [])
    return [[list(node)] if _is_entry(node) else [list(entry) for entry in node] for node in nodes]


def _kwarg_refs(node: list, specs: dict) -> list:
    kwargs = node[0][3] if node and len(node[0]) > 3 else {}
    refs = []
    for value in (kwargs or {}).values():
        history = _keras_history(value)
        if history is not None:
            refs.append(history)
        elif _is_tensor_ref(value, lambda n: n in specs):
            refs.append(value)
    return refs


def _call_node(layer, spec: dict, node: list, tensor: Callable, specs: dict, source: str):
    inputs = [tensor(entry) for entry in node]
    kwargs = dict(node[0][3]) if len(node[0]) > 3 and node[0][3] else {}
    if spec["class_name"] in TF_OP_CLASSES:
        return _call_tf_op(spec, inputs, kwargs, tensor, specs, source)
    call_kwargs = {k: v for k, v in kwargs.items() if k == "training" and isinstance(v, bool)}
    return layer(inputs[0] if len(inputs) == 1 else inputs, **call_kwargs)


def _call_tf_op(spec: dict, inputs: list, kwargs: dict, tensor: Callable, specs: dict, source: str):
    """Rebuild a Keras 2 `TFOpLambda` (a raw TensorFlow op between Keras tensors) as a TFOpLayer."""
    function = spec["config"].get("function")
    name = spec["config"].get("name")
    if len(inputs) != 1:
        raise LegacyFormatError(f"{source}: TF op layer {name!r} takes a list of tensors, which is not supported")
    tensors = list(inputs)
    call_spec: dict[str, Any] = {"args": [{"tensor": 0}], "kwargs": {}}
    for key, value in kwargs.items():
        if key == "name":
            continue
        history = _keras_history(value)
        ref = history if history is not None else (value if _is_tensor_ref(value, lambda n: n in specs) else None)
        if ref is not None:
            call_spec["kwargs"][key] = {"tensor": len(tensors)}
            tensors.append(tensor(ref))
        else:
            call_spec["kwargs"][key] = {"value": value}
    try:
        layer = TFOpLayer(function=function, call_spec=call_spec, name=name.replace(".", "_"))
    except ValueError as exc:
        raise LegacyFormatError(f"{source}: layer {name!r}: {exc}") from exc
    return layer(tensors if len(tensors) > 1 else tensors[0])


def _build_sequential(config: dict, source: str) -> keras.Model:
    entries = config["layers"] if isinstance(config, dict) else config
    model = keras.Sequential(name=config.get("name") if isinstance(config, dict) else None)
    for spec in entries:
        if spec["class_name"] == "InputLayer":
            cfg = _convert_layer_config("InputLayer", keras.layers.InputLayer, spec["config"])
            model.add(keras.Input(batch_shape=cfg.get("batch_shape"), name=cfg.get("name")))
        else:
            model.add(_make_layer(spec, source))
    return model


# ----------------------------------------------------------------------------------------------
# Weights


def read_weight_groups(h5: h5py.File) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Layer name -> [(weight name, value)] in the order Keras 2 wrote them."""
    root = h5["model_weights"] if "model_weights" in h5 else h5
    names = root.attrs.get("layer_names")
    if names is None:
        raise LegacyFormatError(f"{h5.filename}: no Keras weights in this HDF5 file")
    groups = {}
    for raw in names:
        layer = raw.decode() if isinstance(raw, bytes) else str(raw)
        group = root[layer]
        weight_names = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])]
        groups[layer] = [(w, np.asarray(group[w])) for w in weight_names]
    return groups


def _strip(name: str, prefix: str) -> str:
    name = name.removesuffix(":0")
    return name[len(prefix) + 1 :] if name.startswith(prefix + "/") else name


def _assign(layer: keras.layers.Layer, entries: list[tuple[str, np.ndarray]], source: str) -> None:
    if isinstance(layer, keras.Model):
        for sub in layer.layers:
            prefix = sub.name + "/"
            _assign(sub, [(n[len(prefix) :], v) for n, v in entries if n.startswith(prefix)], source)
        return
    variables = layer.weights
    if len(variables) != len(entries):
        raise LegacyFormatError(
            f"{source}: layer {layer.name!r} has {len(variables)} weights but the file holds {len(entries)}; "
            "the weights do not belong to this architecture"
        )
    short = [n.rsplit("/", 1)[-1].removesuffix(":0") for n, _ in entries]
    ours = [v.name.rsplit("/", 1)[-1] for v in variables]
    if len(set(ours)) == len(ours) and sorted(ours) == sorted(short):
        by_name = dict(zip(short, (v for _, v in entries), strict=True))
        values = [by_name[n] for n in ours]
    else:
        values = [v for _, v in entries]
    for var, value in zip(variables, values, strict=True):
        if tuple(var.shape) != tuple(value.shape):
            raise LegacyFormatError(
                f"{source}: weight {layer.name}/{var.name} has shape {tuple(var.shape)} in the architecture "
                f"but {tuple(value.shape)} in the file; the weights do not belong to this architecture"
            )
        var.assign(value)


def load_weights_into(model: keras.Model, weights_path: str | Path) -> None:
    """Copy Keras 2 HDF5 weights (whole-model file or save_weights file) into `model` by layer name."""
    source = str(weights_path)
    with h5py.File(weights_path, "r") as h5:
        groups = read_weight_groups(h5)
    layer_names = {layer.name for layer in model.layers}
    missing = [layer.name for layer in model.layers if layer.weights and layer.name not in groups]
    if missing:
        raise LegacyFormatError(
            f"{source}: no weights for layer(s) {missing[:5]} of the architecture; the weights belong to another model"
        )
    extra = [n for n, entries in groups.items() if entries and n not in layer_names]
    if extra:
        raise LegacyFormatError(f"{source}: weights for layer(s) {extra[:5]} that the architecture does not have")
    for layer in model.layers:
        if layer.weights:
            _assign(
                layer,
                groups[layer.name]
                if isinstance(layer, keras.Model)
                else [(_strip(n, layer.name), v) for n, v in groups[layer.name]],
                source,
            )


def load_legacy_h5(path: str | Path) -> tuple[keras.Model, str]:
    """A whole model saved by Keras 2 `model.save("x.h5")`; returns (model, Keras version)."""
    with h5py.File(path, "r") as h5:
        config = read_h5_model_config(h5)
        version = keras_version_of(h5)
    if config is None:
        raise LegacyFormatError(f"{path}: holds weights only (no architecture)")
    model = build_from_config(config, str(path))
    load_weights_into(model, path)
    return model, version


def load_legacy_json(json_path: str | Path, weights_path: str | Path) -> tuple[keras.Model, str]:
    """An original training checkpoint: `model.to_json()` file + `model.save_weights()` .h5."""
    try:
        config = json.loads(Path(json_path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{json_path}: not a Keras architecture JSON ({exc})") from exc
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ModelFileError(f"{json_path}: not a Keras architecture JSON (no class_name/config)")
    model = build_from_config(config, str(json_path))
    load_weights_into(model, weights_path)
    return model, str(config.get("keras_version", "unknown"))
