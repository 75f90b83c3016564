"""VGG16 perceptual features (block1..block5 pool), from weights the user brings — never random weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from facedancer.errors import FaceDancerError

VGG_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
DEFAULT_BLOCKS = ("block1_pool", "block2_pool", "block3_pool", "block4_pool", "block5_pool")
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

if TYPE_CHECKING:
    import keras


def keras_cache_path() -> Path:
    """Where keras.applications caches downloaded weights ($KERAS_HOME/models or ~/.keras/models)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models" / VGG_FILE


def find_vgg_weights(path: str | Path | None) -> Path:
    """The VGG16 notop ImageNet weights: the given file, or Keras' cache; a clear error otherwise."""
    candidates = [Path(path)] if path else [keras_cache_path()]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = f"{path}" if path else f"Keras' cache ({keras_cache_path()})"
    raise FaceDancerError(
        f"VGG16 ImageNet weights for the perceptual loss not found at {where}: put {VGG_FILE} there or pass "
        "--perceptual_weights PATH, or train without the perceptual loss with --p_lambda 0"
    )


def perceptual_model(
    weights: str | Path | None,
    blocks: tuple[str, ...] = DEFAULT_BLOCKS,
    image_size: int = 256,
    caffe_input: bool = False,
) -> keras.Model:
    """Frozen VGG16 taking images in [-1, 1] (RGB) and returning the `blocks` outputs.

    As the original, VGG16 sees the [-1, 1] images as they are. `caffe_input` (a deviation,
    --perceptual_caffe_input) first converts them to the BGR 0..255 mean-subtracted input ImageNet VGG16
    was trained on.
    """
    import keras

    path = find_vgg_weights(weights)
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    try:
        vgg.load_weights(path)
    except (ValueError, OSError) as exc:
        raise FaceDancerError(f"{path} is not a Keras VGG16 notop weights file ({exc})") from exc
    unknown = [b for b in blocks if b not in {layer.name for layer in vgg.layers}]
    if unknown:
        raise FaceDancerError(f"unknown VGG16 block(s) {unknown} in --p_blocks")
    vgg.trainable = False
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    if caffe_input:  # keras.applications.vgg16.preprocess_input: RGB [-1, 1] -> BGR 0..255 minus mean
        x = keras.ops.flip((inputs + 1.0) * 127.5, axis=-1) - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR)
    taps = keras.Model(vgg.inputs, [vgg.get_layer(b).output for b in blocks])
    return keras.Model(inputs, taps(x), name="perceptual_vgg16")
