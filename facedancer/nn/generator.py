"""The FaceDancer generator: target encoder, identity mapping network, decoder with fusion blocks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import keras
from keras import layers

from facedancer.nn.layers import AdaIN, AdaptiveAttention, InstanceNormalization, TFOpLayer

FUSION_TYPES = ("no_skip", "concat", "add", "affa", "d_affa", "do_affa")
ENCODER_CHANNELS = (128, 256, 512, 512, 512)
DECODER_CHANNELS = (512, 512, 256, 128, 64)
IDENTITY_SIZE = 512


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything that decides the generator's architecture; saved with training runs."""

    up_types: tuple[str, ...] = ("no_skip", "no_skip", "affa", "affa", "affa", "concat")
    mapping_depth: int = 4
    mapping_size: int = 512
    image_size: int = 256

    def __post_init__(self):
        object.__setattr__(self, "up_types", tuple(self.up_types))
        if len(self.up_types) != len(DECODER_CHANNELS) + 1:
            raise ValueError(
                f"up_types needs {len(DECODER_CHANNELS) + 1} entries (one per decoder block), "
                f"got {len(self.up_types)}: {','.join(self.up_types)}"
            )
        unknown = [t for t in self.up_types if t not in FUSION_TYPES]
        if unknown:
            raise ValueError(f"unknown fusion type(s) {unknown}; choose from {', '.join(FUSION_TYPES)}")
        if self.mapping_depth < 0 or self.mapping_size < 1:
            raise ValueError("mapping_depth must be >= 0 and mapping_size >= 1")
        if self.image_size % 32 or self.image_size < 64:
            raise ValueError(f"image_size must be a multiple of 32 and at least 64, got {self.image_size}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["up_types"] = list(self.up_types)
        return d


@dataclass(frozen=True)
class _Preset:
    config: GeneratorConfig
    description: str = field(default="")


PRESETS: dict[str, _Preset] = {
    "C": _Preset(
        GeneratorConfig(),
        "the paper's config C: AFFA at 32-128, concat at 256, mapping 4x512",
    ),
}


def preset(name: str) -> GeneratorConfig:
    """Config by preset name ("C", "c" or "config_c")."""
    key = name.strip().upper().removeprefix("CONFIG_").removeprefix("CONFIG")
    if key not in PRESETS:
        raise ValueError(f"unknown generator preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[key].config


def _conv(filters: int, size: int, name: str, activation: str | None = None) -> layers.Conv2D:
    return layers.Conv2D(filters, size, padding="same", activation=activation, name=name)


def _res_down(x, channels: int, name: str, downsample: bool = True):
    """IN > LeakyReLU > 3x3 conv (+ avg-pool), plus a 1x1 conv skip (+ avg-pool)."""
    skip = _conv(channels, 1, f"{name}_skip")(x)
    h = InstanceNormalization(name=f"{name}_in")(x)
    h = layers.LeakyReLU(0.2, name=f"{name}_act")(h)
    h = _conv(channels, 3, f"{name}_conv")(h)
    if downsample:
        skip = layers.AveragePooling2D(2, name=f"{name}_skip_pool")(skip)
        h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    return layers.Add(name=name)([h, skip])


def _res_up(x, z, channels: int, name: str, upsample: bool = True):
    """IN > AdaIN(z) > LeakyReLU > 3x3 conv (+ bilinear up), plus a 1x1 conv skip (+ bilinear up)."""
    skip = _conv(channels, 1, f"{name}_skip")(x)
    h = InstanceNormalization(name=f"{name}_in")(x)
    h = AdaIN(name=f"{name}_adain")([h, z])
    h = layers.LeakyReLU(0.2, name=f"{name}_act")(h)
    h = _conv(channels, 3, f"{name}_conv")(h)
    if upsample:
        skip = layers.UpSampling2D(interpolation="bilinear", name=f"{name}_skip_up")(skip)
        h = layers.UpSampling2D(interpolation="bilinear", name=f"{name}_up")(h)
    return layers.Add(name=name)([h, skip])


def _attention_branch(features, hidden: int, out: int, name: str):
    """sigmoid(1x1 conv -> out (IN(LeakyReLU(3x3 conv -> hidden (features))))): one attention mask."""
    h = _conv(hidden, 3, f"{name}_conv")(features)
    h = layers.LeakyReLU(0.2, name=f"{name}_act")(h)
    h = InstanceNormalization(name=f"{name}_in")(h)
    return _conv(out, 1, f"{name}_mask", activation="sigmoid")(h)


def _affa(x_t, x_s, name: str):
    """The original's `adaptive_attention`: a C-channel mask m from concat(x_t, x_s) with a C/4 hidden
    layer (C = x_t's channels); out = (1 - m)·x_t + m·x_s."""
    channels = int(x_t.shape[-1])
    features = layers.Concatenate(name=f"{name}_cat")([x_t, x_s])
    mask = _attention_branch(features, max(channels // 4, 1), channels, name)
    return AdaptiveAttention(name=name)([mask, x_t, x_s])


def _double_affa(x_t, x_s, name: str):
    """The original's `adaptive_attention_double`: two full branches from concat(x_t, x_s), each with a
    C-channel hidden layer; m̂ (1 channel, `_hat`, built first) and m (C channels); the mask is m·m̂.

    The product is the TensorFlow op the original's files record (`TFOpLambda` `tf.math.multiply(m, y=m̂)`),
    so the graph, its weight order and its Keras 2 export are the original's.
    """
    channels = int(x_t.shape[-1])
    features = layers.Concatenate(name=f"{name}_cat")([x_t, x_s])
    mask_hat = _attention_branch(features, channels, 1, f"{name}_hat")
    mask = _attention_branch(features, channels, channels, name)
    product = TFOpLayer(
        function="math.multiply",
        call_spec={"args": [{"tensor": 0}], "kwargs": {"y": {"tensor": 1}}},
        name=f"{name}_product",
    )([mask, mask_hat])
    return AdaptiveAttention(name=name)([product, x_t, x_s])


def _fuse(kind: str, x_t, x_s, name: str):
    """Merge the encoder feature x_t into the decoder feature x_s as fusion type `kind` says."""
    if kind == "no_skip":
        return x_s
    if kind == "concat":
        return layers.Concatenate(name=name)([x_t, x_s])
    if kind == "add":
        return layers.Add(name=name)([x_t, x_s])
    if kind == "affa":
        return _affa(x_t, x_s, name)
    if kind == "do_affa":
        return _double_affa(x_t, x_s, name)
    if kind == "d_affa":  # affa twice, the second on (x_t, the first's result)
        first = _affa(x_t, x_s, f"{name}_0")
        return _affa(x_t, first, f"{name}_1")
    raise ValueError(f"unknown fusion type {kind!r}")


def build_generator(config: GeneratorConfig | None = None, name: str = "facedancer_generator") -> keras.Model:
    """G(target image in [-1, 1], identity vector) -> swapped image (linear output, ~[-1, 1])."""
    config = config or GeneratorConfig()
    size = config.image_size
    target = keras.Input((size, size, 3), name="target")
    identity = keras.Input((IDENTITY_SIZE,), name="identity")

    z = identity
    for i in range(config.mapping_depth):
        z = layers.Dense(config.mapping_size, name=f"mapping_{i}")(z)
        if i < config.mapping_depth - 1:
            z = layers.LeakyReLU(0.2, name=f"mapping_{i}_act")(z)

    x = _conv(64, 3, "enc_stem")(target)
    skips = [x]
    for i, channels in enumerate(ENCODER_CHANNELS):
        x = _res_down(x, channels, f"enc_down{i + 1}")
        skips.append(x)
    x = _res_down(x, ENCODER_CHANNELS[-1], "enc_bottleneck", downsample=False)
    x = _res_up(x, z, DECODER_CHANNELS[0], "dec_bottleneck", upsample=False)

    # The fusion of block i happens at its input resolution, with the encoder feature of that size.
    for i, (kind, channels) in enumerate(zip(config.up_types, DECODER_CHANNELS, strict=False)):
        x_t = skips[-1 - i]
        x = _fuse(kind, x_t, x, f"dec_fuse{i + 1}_{kind}")
        x = _res_up(x, z, channels, f"dec_up{i + 1}")
    x = _fuse(config.up_types[-1], skips[0], x, f"dec_fuse_out_{config.up_types[-1]}")
    out = _res_up(x, z, 3, "output", upsample=False)
    return keras.Model([target, identity], out, name=name)
