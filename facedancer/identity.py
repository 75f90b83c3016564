"""ArcFace identity encoder helpers: embeddings and the backbone block outputs IFSR compares.

The published ArcFace-Res50.h5 is a whole model whose `layers[1]` is a keras.applications ResNet50;
the IFSR taps are named layers inside that backbone.
"""

from __future__ import annotations

import keras

from facedancer.ifsr import IFSR_BLOCKS

IDENTITY_INPUT_SIZE = 112


def _single(tensors: list):
    return tensors[0] if len(tensors) == 1 else tensors


def find_backbone(model: keras.Model) -> keras.Model:
    """The nested backbone model (ArcFace-Res50 layout), or the model itself when it is flat."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    return model


def block_names(model: keras.Model) -> list[str]:
    """Names of the layers inside the backbone, for error messages and discovery."""
    return [layer.name for layer in find_backbone(model).layers]


def feature_model(model: keras.Model, blocks: tuple[str, ...] | list[str] = IFSR_BLOCKS) -> keras.Model:
    """A model sharing `model`'s weights that returns `[embedding, *block outputs]` for `blocks`."""
    backbone = find_backbone(model)
    known = {layer.name for layer in backbone.layers}
    missing = [b for b in blocks if b not in known]
    if missing:
        raise ValueError(
            f"identity model {model.name!r} has no block(s) {missing} in its backbone {backbone.name!r}; "
            f"IFSR needs an ArcFace with a ResNet50 backbone (blocks {', '.join(IFSR_BLOCKS)})"
        )
    taps = keras.Model(
        _single(backbone.inputs),
        [backbone.get_layer(b).output for b in blocks] + list(backbone.outputs),
        name=f"{backbone.name}_taps",
    )
    if backbone is model:
        outs = taps.outputs
        return keras.Model(_single(model.inputs), [outs[-1], *outs[:-1]], name=f"{model.name}_features")

    captured: list = []

    def call_function(layer, *args, **kwargs):
        if layer is backbone:
            outs = taps(*args, **kwargs)
            captured.extend(outs[:-1])
            return outs[-1]
        return layer(*args, **kwargs)

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call_function)
    return keras.Model(_single(clone.inputs), [clone.outputs[0], *captured], name=f"{model.name}_features")
