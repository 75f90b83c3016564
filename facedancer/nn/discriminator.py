"""The FaceDancer discriminator: residual down-sampling to 4x4, then a 4x4 valid conv to one logit.

Layer for layer the original's `get_discriminator()` (checked against a file it wrote, see
tests/test_parity_networks.py), so `native.set_weights(original.get_weights())` gives its outputs.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from facedancer.nn.layers import InstanceNormalization

CHANNELS = (128, 256, 512, 512, 512, 512)


def _block(x, channels: int, name: str):
    """IN > LReLU > 3x3 conv > avg-pool > IN > LReLU > 3x3 conv, plus a 1x1 conv + avg-pool skip."""
    skip = layers.Conv2D(channels, 1, padding="same", name=f"{name}_skip")(x)
    skip = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(skip)
    h = InstanceNormalization(name=f"{name}_in1")(x)
    h = layers.LeakyReLU(0.2, name=f"{name}_act1")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv1")(h)
    h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    h = InstanceNormalization(name=f"{name}_in2")(h)
    h = layers.LeakyReLU(0.2, name=f"{name}_act2")(h)
    h = layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv2")(h)
    return layers.Add(name=name)([h, skip])


def build_discriminator(
    image_size: int = 256, name: str = "facedancer_discriminator", channels: tuple[int, ...] | None = None
) -> keras.Model:
    """D(image in [-1, 1]) -> (batch, 1) realness logit (before softplus), as the original.

    At 256² it is the original's network (six down blocks); smaller powers of two drop the first blocks (the
    same width per resolution, so 512 channels already at the input resolution below 256²). `channels` replaces
    the blocks' widths, one per block (log2(image_size) - 2 of them): a lighter D for small runs (the demo).
    """
    blocks = int(math.log2(image_size)) - 2 if image_size > 0 else 0
    if image_size < 16 or 4 * 2**blocks != image_size or blocks > len(CHANNELS):
        raise ValueError(f"the discriminator needs a power-of-two image size from 16 to 256, got {image_size}")
    widths = tuple(CHANNELS[len(CHANNELS) - blocks :]) if channels is None else tuple(int(c) for c in channels)
    if len(widths) != blocks or min(widths) < 1:
        raise ValueError(f"a {image_size}² discriminator has {blocks} blocks; got channels {list(widths)}")
    image = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Conv2D(64, 3, padding="same", name="stem")(image)
    for i, width in enumerate(widths):
        x = _block(x, width, f"down{i + 1}")
    x = layers.Conv2D(512, 4, padding="valid", name="head_conv")(x)
    x = layers.LeakyReLU(0.2, name="head_act")(x)
    x = layers.Conv2D(1, 1, name="head_logit")(x)
    logit = layers.Reshape((1,), name="logit")(x)
    return keras.Model(image, logit, name=name)
