"""Small stand-in models with the layouts of the real ones, built in tests (no weights are downloaded)."""

from __future__ import annotations

from pathlib import Path

import keras

from facedancer.ifsr import IFSR_BLOCKS


def arcface_layout_standin(seed: int = 0) -> keras.Model:
    """An ArcFace-Res50-shaped identity model: layers[1] is a backbone named like ResNet50 whose blocks
    carry the IFSR names (conv2_block3_out … conv4_block6_out); input 112² in [0, 1], output 512-d."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((112, 112, 3))
    x = keras.layers.Conv2D(8, 3, strides=4, padding="same", activation="relu", name="conv1_conv")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2_block3_out")(x)  # 28²
    for i in range(1, 5):
        x = keras.layers.Conv2D(
            16, 3, strides=2 if i == 1 else 1, padding="same", activation="relu", name=f"conv3_block{i}_out"
        )(x)  # 14²
    for i in range(1, 7):
        x = keras.layers.Conv2D(
            24, 3, strides=2 if i == 1 else 1, padding="same", activation="relu", name=f"conv4_block{i}_out"
        )(x)  # 7²
    backbone = keras.Model(inputs, x, name="resnet50")
    outer_in = keras.Input((112, 112, 3))
    h = backbone(outer_in)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(512)(h)
    out = keras.layers.BatchNormalization()(h)
    model = keras.Model(outer_in, out, name="ArcFaceStandin")
    assert all(backbone.get_layer(b) for b in IFSR_BLOCKS)
    return model


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
