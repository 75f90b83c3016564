"""Read a generator's architecture (fusion types, mapping network) back from its layer graph.

Works on models we build and on models rebuilt from the original's files, whose layer names differ:
only layer classes and connections are used.
"""

from __future__ import annotations

import keras

from facedancer.nn.generator import GeneratorConfig
from facedancer.nn.layers import AdaIN, AdaptiveAttention, InstanceNormalization, TFOpLayer


def _producer(tensor) -> keras.layers.Layer:
    return tensor._keras_history[0]


def _inputs(layer: keras.layers.Layer) -> list:
    node = layer._inbound_nodes[0]
    return list(node.input_tensors)


def _fusion_type(tensor) -> str:
    layer = _producer(tensor)
    if isinstance(layer, AdaptiveAttention):
        mask, _, x_s = _inputs(layer)
        if isinstance(_producer(x_s), AdaptiveAttention):
            return "d_affa"
        if isinstance(_producer(mask), (keras.layers.Multiply, TFOpLayer)):
            return "do_affa"
        return "affa"
    if isinstance(layer, keras.layers.Concatenate):
        return "concat"
    if isinstance(layer, keras.layers.Add) and any(isinstance(_producer(t), keras.layers.Add) for t in _inputs(layer)):
        return "add"
    return "no_skip"


def generator_config_of(model: keras.Model) -> GeneratorConfig | None:
    """The GeneratorConfig that builds `model`'s architecture, or None if it is not a FaceDancer generator."""
    block_inputs = []
    for layer in model.layers:
        if isinstance(layer, InstanceNormalization):
            users = [n.operation for n in layer._outbound_nodes]
            if any(isinstance(u, AdaIN) for u in users):
                block_inputs.append(_inputs(layer)[0])
    if len(block_inputs) != 7:
        return None
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    try:
        return GeneratorConfig(
            up_types=tuple(_fusion_type(t) for t in block_inputs[1:]),
            mapping_depth=len(dense),
            mapping_size=int(dense[-1].units) if dense else 512,
            image_size=int(model.inputs[0].shape[1])
            if len(model.inputs[0].shape) == 4
            else int(model.inputs[1].shape[1]),
        )
    except ValueError:
        return None
