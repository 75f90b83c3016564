"""Small stand-in models with the layouts of the real ones, built in tests (no weights are downloaded)."""

from __future__ import annotations

from pathlib import Path

import keras


def arcface_layout_standin(seed: int = 0) -> keras.Model:
    """An ArcFace-Res50-shaped identity model with random weights (the demo's; see facedancer.demo)."""
    from facedancer.demo import random_arcface_layout

    return random_arcface_layout(seed)


def arcface_resnet50_layout() -> keras.Model:
    """An ArcFace-Res50-like model at full size: layers[1] is a keras.applications ResNet50 backbone."""
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(112, 112, 3))
    inputs = keras.Input((112, 112, 3))
    x = keras.layers.BatchNormalization()(backbone(inputs))
    x = keras.layers.Flatten()(keras.layers.Dropout(0.4)(x))
    x = keras.layers.BatchNormalization()(keras.layers.Dense(512)(x))
    return keras.Model(inputs, x, name="ArcFaceLayout")


def vgg16_notop_file(path: Path, size: int) -> Path:
    """VGG16 notop weights in the Keras 2 .h5 layout of the ImageNet file (random values: no downloads)."""
    from facedancer.legacy import save_legacy_checkpoint

    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(size, size, 3))
    save_legacy_checkpoint(vgg, path.with_suffix(".json"), path)
    return path


def save_arcface_standin(path: Path, seed: int = 0) -> Path:
    """Written in the original's Keras 2 format, as the published ArcFace-Res50.h5 is."""
    from facedancer.legacy import save_legacy_h5

    save_legacy_h5(arcface_layout_standin(seed), path)
    return path


def pixel_identity_encoder(seed: int = 0) -> keras.Model:
    """An identity encoder whose embedding is a random projection of the centred, pooled aligned face.

    Unlike a randomly initialised CNN (whose embeddings of all faces nearly coincide), this one tells
    two different photos apart, which tests of identity-based selection need.
    """
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((112, 112, 3))
    x = keras.layers.Rescaling(1.0, offset=-0.5)(inputs)
    x = keras.layers.AveragePooling2D(8)(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(512, use_bias=False, kernel_initializer="orthogonal")(x)
    return keras.Model(inputs, out, name="PixelIdentity")


def trained_like_norms(model: keras.Model, seed: int = 0, spread: float = 0.1) -> keras.Model:
    """Instance-norm scales ~ 1 ± spread and offsets ~ ± spread, as in a trained file, instead of the initial
    exact 1 and 0 (which TensorFlow's graph optimiser folds away, taking another path than real models)."""
    import numpy as np

    from facedancer.nn import InstanceNormalization

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, InstanceNormalization):
            gamma, beta = layer.get_weights()
            layer.set_weights([1 + spread * rng.standard_normal(gamma.shape), spread * rng.standard_normal(beta.shape)])
    return model
