"""Writer of the original's formats, so models trained here run with the original FaceDancer code.

`save_legacy_h5` writes what Keras 2 `model.save("x.h5")` writes (the published FaceDancer files);
`save_legacy_checkpoint` writes the original trainer's `gen.json` + `gen_N.h5` pair. Layer classes
go back to their Keras 2 names: our InstanceNormalization becomes tensorflow-addons' and AdaIN /
AdaptiveAttention the original's `networks.layers` classes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from facedancer.atomic import atomic_path, write_text_atomic
from facedancer.nn.layers import AdaIN, AdaptiveAttention, InstanceNormalization, TFOpLayer

KERAS2_VERSION = "2.15.0"
# Config keys Keras 3 writes that Keras 2's constructors would reject.
KERAS3_ONLY_KEYS = {"lora_rank", "lora_alpha", "quantization_config", "optional", "input_axes", "output_axes"}
ORIGINAL_CUSTOM = {
    InstanceNormalization: ("tensorflow_addons.layers.normalizations", "Addons>InstanceNormalization"),
    AdaIN: ("networks.layers", "AdaIN"),
    AdaptiveAttention: ("networks.layers", "AdaptiveAttention"),
}


def _clean(value: Any) -> Any:
    """Drop Keras-3-only keys and Keras 3 serialisation wrappers Keras 2 cannot read, recursively."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value["config"]["name"]
        return {k: _clean(v) for k, v in value.items() if k not in KERAS3_ONLY_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _tensor_ref(value: dict) -> list:
    return list(value["config"]["keras_history"])


def _flat_tensors(arg: Any) -> list[dict]:
    if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        return [arg]
    if isinstance(arg, (list, tuple)):
        return [t for item in arg for t in _flat_tensors(item)]
    return []


def _node(node: dict, layer: keras.layers.Layer) -> list:
    """Keras 3 `{"args", "kwargs"}` node -> Keras 2 `[[layer, node, tensor, kwargs], ...]`."""
    tensors = _flat_tensors(node.get("args", []))
    kwargs = {k: v for k, v in node.get("kwargs", {}).items() if not _flat_tensors(v) and v is not None}
    if isinstance(layer, TFOpLayer):
        spec = layer.call_spec
        first = tensors[spec["args"][0]["tensor"]]
        op_kwargs = {
            key: (_tensor_ref(tensors[s["tensor"]]) if "tensor" in s else s["value"])
            for key, s in spec.get("kwargs", {}).items()
        }
        # Keras 2 writes a TF op layer's one call as a single flat entry, not a list of entries.
        return [*_tensor_ref(first), {**op_kwargs, "name": None}]
    return [[*_tensor_ref(t), dict(kwargs)] for t in tensors]


def tf_op_names(model: keras.Model) -> dict[str, str]:
    """Our name -> Keras 2's name for each TF op layer: `tf.math.multiply`, `tf.math.multiply_1`, … in
    layer order, as Keras 2 names them (ours have no dots: Keras 3 refuses them in names)."""
    names: dict[str, str] = {}
    counts: dict[str, int] = {}
    for layer in model.layers:
        if isinstance(layer, TFOpLayer):
            n = counts.get(layer.function, 0)
            counts[layer.function] = n + 1
            names[layer.name] = f"tf.{layer.function}" + (f"_{n}" if n else "")
    return names


def _layer_config(layer: keras.layers.Layer, spec: dict) -> dict:
    config = _clean(spec["config"])
    class_name = spec["class_name"]
    module = "keras.layers"
    registered = None
    if class_name == "InputLayer":
        config = {
            "batch_input_shape": config["batch_shape"],
            "dtype": config.get("dtype", "float32"),
            "sparse": False,
            "ragged": False,
            "name": config["name"],
        }
    elif isinstance(layer, TFOpLayer):
        function = config["function"]
        return {
            "class_name": "TFOpLambda",
            "config": {
                "name": f"tf.{function}",
                "trainable": True,
                "dtype": config.get("dtype", "float32"),
                "function": function,
            },
            "module": "keras.src.layers.core.tf_op_layer",
            "registered_name": "TFOpLambda",
        }
    elif type(layer) in ORIGINAL_CUSTOM:
        module, registered = ORIGINAL_CUSTOM[type(layer)]
        if isinstance(layer, InstanceNormalization):
            config["groups"] = int(layer.gamma.shape[0]) if layer.scale else int(layer.beta.shape[0])
        else:
            config = {k: config[k] for k in ("name", "trainable", "dtype") if k in config}
    elif class_name == "LeakyReLU":
        config["alpha"] = config.pop("negative_slope")
    elif class_name == "Dense":
        config.setdefault("activity_regularizer", None)  # Keras 2 always writes it
    return {"class_name": class_name, "config": config, "module": module, "registered_name": registered}


def _endpoint_refs(refs: list) -> list[list]:
    """Keras 3 writes a single endpoint as a flat [name, node, index]; Keras 2 always nests."""
    if refs and isinstance(refs[0], str):
        refs = [refs]
    return [list(r) for r in refs]


def _graph_config(model: keras.Model) -> dict:
    """The Keras 2 `config` of a functional model, nested models included."""
    k3 = model.get_config()
    renamed = tf_op_names(model)
    layers = []
    for spec in k3["layers"]:
        layer = model.get_layer(spec["config"]["name"])
        name = spec["config"]["name"]
        if isinstance(layer, keras.Model):
            entry = {
                "class_name": "Functional",
                "config": _graph_config(layer),
                "module": "keras.src.engine.functional",
                "registered_name": None,
            }
        else:
            entry = _layer_config(layer, spec)
            name = renamed.get(name, name)
            entry["config"]["name"] = name
        entry["name"] = name
        entry["inbound_nodes"] = [_node(node, layer) for node in spec.get("inbound_nodes", [])]
        layers.append(entry)
    # TF op layers carry Keras 2's dotted names there ("tf_math_multiply" -> "tf.math.multiply"), and Keras 2 counts
    # a nested model's calls from 1 where Keras 3 counts from 0: rewrite every tensor reference.
    nested = {layer.name for layer in model.layers if isinstance(layer, keras.Model)}

    def fix(ref: list) -> None:
        if ref[0] in nested:
            ref[1] += 1
        ref[0] = renamed.get(ref[0], ref[0])

    outputs = _endpoint_refs(k3["output_layers"])
    for ref in outputs:
        fix(ref)
    for entry in layers:
        for node in entry["inbound_nodes"]:
            for ref in [node] if isinstance(node[0], str) else node:  # a TF op layer's node is one flat entry
                fix(ref)
                for value in ref[3].values():
                    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
                        fix(value)
    return {
        "name": model.name,
        "trainable": model.trainable,
        "layers": layers,
        "input_layers": _endpoint_refs(k3["input_layers"]),
        "output_layers": outputs,
    }


def legacy_model_config(model: keras.Model) -> dict:
    """`{"class_name": "Functional", "config": …}` as Keras 2 `model.get_config` would write it."""
    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential):
        raise ValueError("only functional models can be written in the original's format")
    return {"class_name": "Functional", "config": _graph_config(model)}


def _layer_weights(layer: keras.layers.Layer) -> list[tuple[str, np.ndarray]]:
    """[(Keras 2 weight name, value)] in Keras 2 order: trainable first, then non-trainable."""
    if isinstance(layer, keras.Model):
        subs = [(sub, f"{sub.name}/") for sub in layer.layers]
    else:
        subs = [(layer, f"{layer.name}/")]
    out: list[tuple[str, np.ndarray]] = []
    for trainable in (True, False):
        for sub, prefix in subs:
            nested = getattr(sub, "_layers", [])
            owners = [(s, f"{prefix}{s.name}/") for s in nested] if nested else [(sub, prefix)]
            for owner, owner_prefix in owners:
                for var in owner.weights:
                    if bool(var.trainable) == trainable:
                        out.append((f"{owner_prefix}{var.name}:0", keras.ops.convert_to_numpy(var)))
    return out


def _set_names(attrs: h5py.AttributeManager, key: str, names: list[str]) -> None:
    if names:
        attrs.create(key, names, dtype=h5py.string_dtype())
    else:
        attrs.create(key, np.array([], "S1"))


def _write_weights(root: h5py.Group, model: keras.Model) -> None:
    renamed = tf_op_names(model)
    _set_names(root.attrs, "layer_names", [renamed.get(layer.name, layer.name) for layer in model.layers])
    root.attrs["backend"] = "tensorflow"
    root.attrs["keras_version"] = KERAS2_VERSION
    for layer in model.layers:
        group = root.create_group(renamed.get(layer.name, layer.name))
        weights = _layer_weights(layer)
        _set_names(group.attrs, "weight_names", [name for name, _ in weights])
        for name, value in weights:
            group.create_dataset(name, data=value)


def _atomic_h5(path: Path, write) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        write(h5)


def save_legacy_h5(model: keras.Model, path: str | Path) -> None:
    """Write `model` as a Keras 2 whole-model .h5 (the published FaceDancer files' format)."""
    config = legacy_model_config(model)

    def write(h5: h5py.File) -> None:
        h5.attrs["backend"] = "tensorflow"
        h5.attrs["keras_version"] = KERAS2_VERSION
        h5.attrs["model_config"] = json.dumps(config)
        _write_weights(h5.create_group("model_weights"), model)

    _atomic_h5(Path(path), write)


def save_legacy_checkpoint(model: keras.Model, json_path: str | Path, weights_path: str | Path) -> None:
    """Write the original trainer's checkpoint pair: `model.to_json()` and `model.save_weights()`."""
    config = {**legacy_model_config(model), "keras_version": KERAS2_VERSION, "backend": "tensorflow"}
    write_text_atomic(json_path, json.dumps(config))
    _atomic_h5(Path(weights_path), lambda h5: _write_weights(h5, model))
