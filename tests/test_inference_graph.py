"""The inference rewrites of the generator graph compute the same function with less work."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

import facedancer
from facedancer.nn import GeneratorConfig, InstanceNormalization, build_generator, preset
from facedancer.nn.inference import (
    FusedInstanceNorm,
    agreement_db,
    optimize_checked,
    optimize_for_inference,
    pooled_kernel,
)
from facedancer.nn.precision import cpu_has_native_bf16, with_dtype_policy

TOLERANCE = 1e-4


def _trained_like(model: keras.Model) -> keras.Model:
    from standins import trained_like_norms

    return trained_like_norms(model, spread=0.2)


def _inputs(size: int, n: int = 2, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
    z = rng.standard_normal((n, 512)).astype(np.float32)
    return x, z / np.linalg.norm(z, axis=1, keepdims=True)


def _count(model: keras.Model, cls) -> int:
    return sum(type(layer) is cls for layer in model.layers)


def test_config_c_rewrite_matches_and_removes_the_work():
    model = _trained_like(build_generator(preset("C")))
    fast = optimize_for_inference(model)
    x, z = _inputs(256)
    expected = np.asarray(model([x, z]))
    assert np.abs(np.asarray(fast([x, z])) - expected).max() <= TOLERANCE
    # every conv+pool pair of the encoder is gone, every sum of two upsamplings has one left, every
    # instance norm is fused (with what follows it)
    assert _count(model, layers.AveragePooling2D) == 10
    assert _count(fast, layers.AveragePooling2D) == 5  # now before the 1x1 skip convs, on fewer pixels
    assert _count(model, layers.UpSampling2D) == 10 and _count(fast, layers.UpSampling2D) == 5
    assert _count(fast, InstanceNormalization) == 0
    assert _count(fast, FusedInstanceNorm) == _count(model, InstanceNormalization)
    strided = [lyr for lyr in fast.layers if type(lyr) is layers.Conv2D and lyr.strides == (2, 2)]
    assert len(strided) == 5 and all(lyr.kernel_size == (4, 4) for lyr in strided)


def test_untrained_norms_and_other_fusion_types_match():
    config = GeneratorConfig(up_types=("d_affa", "do_affa", "add", "concat", "affa", "no_skip"), image_size=64)
    model = build_generator(config)  # instance norms exactly 1/0: TensorFlow may fold them, still equal
    fast = optimize_for_inference(model)
    x, z = _inputs(64, n=3)
    assert np.abs(np.asarray(fast([x, z])) - np.asarray(model([x, z]))).max() <= TOLERANCE


def test_legacy_generator_rewritten_reproduces_the_original_outputs(legacy_dir, reference):
    loaded = facedancer.load_model(legacy_dir / "facedancer_export.h5", kind="generator")
    fast = optimize_for_inference(loaded)
    assert _count(fast, FusedInstanceNorm) > 0
    y = np.asarray(fast([reference["x"], reference["z"]]))
    assert np.abs(y - reference["y"]).max() <= TOLERANCE


def test_bf16_rewritten_stays_within_40_db_of_float32(photos):
    from facedancer.images import read_image
    from facedancer.nn.precision import bf16_convolutions_run

    if not bf16_convolutions_run():
        pytest.skip("this CPU (or ONEDNN_MAX_CPU_ISA) runs no bf16 convolutions")
    model = _trained_like(build_generator(preset("C")))
    fast_bf16 = optimize_for_inference(with_dtype_policy(model, "mixed_bfloat16"))
    face = read_image(photos / "obama.jpg")
    crops = np.stack([face[:256, :256], face[-256:, -256:]]).astype(np.float32) / 127.5 - 1.0
    _, z = _inputs(256)
    expected = np.asarray(model([crops, z]))
    got = np.asarray(fast_bf16([crops, z])).astype(np.float32)
    mse = np.mean((got - expected) ** 2)
    peak = expected.max() - expected.min()
    assert 10 * np.log10(peak**2 / mse) >= 40.0


def test_checked_rewrite_is_used_only_when_it_agrees(caplog):
    config = GeneratorConfig(image_size=64)
    model = _trained_like(build_generator(config))
    fast = optimize_checked(model, min_db=90.0)
    assert fast is not model and _count(fast, FusedInstanceNorm) > 0
    # float32 round-off makes the rewrite agree to ~130 dB, not exactly: an impossible bar falls back
    with caplog.at_level("WARNING"):
        assert optimize_checked(model, min_db=float("inf")) is model
    assert "running it as stored" in caplog.text
    a = np.zeros((2, 4))
    assert agreement_db(a, a) == float("inf")
    assert agreement_db(a, a + 0.02) == pytest.approx(20 * np.log10(2 / 0.02))


def test_pooled_kernel_is_conv_then_average_pool():
    import tensorflow as tf

    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 10, 12, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 5)).astype(np.float32)
    expected = tf.nn.avg_pool2d(tf.nn.conv2d(x, kernel, 1, "SAME"), 2, 2, "VALID")
    got = tf.nn.conv2d(x, pooled_kernel(kernel), 2, "SAME")
    assert np.abs(np.asarray(got) - np.asarray(expected)).max() <= 1e-5


def _rewrite_of(build, shape):
    inputs = keras.Input(shape)
    model = keras.Model(inputs, build(inputs))
    fast = optimize_for_inference(model)
    x = np.random.default_rng(3).standard_normal((2, *shape)).astype(np.float32)
    assert np.abs(np.asarray(fast(x)) - np.asarray(model(x))).max() <= TOLERANCE
    return model, fast


def test_rewrites_only_where_they_are_exact():
    def conv_pool(activation=None):
        return lambda x: layers.AveragePooling2D(2)(layers.Conv2D(4, 3, padding="same", activation=activation)(x))

    # odd height: a stride-2 "same" conv would keep one more row than the pool does -> left alone
    model, fast = _rewrite_of(conv_pool(), (9, 8, 3))
    assert fast is model
    # a non-linear conv (pool does not commute with its activation) -> left alone
    model, fast = _rewrite_of(conv_pool("relu"), (8, 8, 3))
    assert fast is model

    # the conv's output read twice: the pool cannot swallow it
    def read_twice(x):
        h = layers.Conv2D(4, 3, padding="same")(x)
        return layers.Concatenate()([layers.AveragePooling2D(2)(h), layers.AveragePooling2D(2)(h)])

    model, fast = _rewrite_of(read_twice, (8, 8, 3))
    assert fast is model

    # 1x1 conv + pool commute for any size, odd included
    model, fast = _rewrite_of(lambda x: layers.AveragePooling2D(2)(layers.Conv2D(4, 1)(x)), (9, 7, 3))
    assert fast is not model and _count(fast, layers.AveragePooling2D) == 1

    # upsamplings of different kinds are not merged
    def mixed_upsampling(x):
        a = layers.UpSampling2D(interpolation="bilinear")(x)
        b = layers.UpSampling2D(interpolation="nearest")(x)
        return layers.Add()([a, b])

    model, fast = _rewrite_of(mixed_upsampling, (5, 5, 2))
    assert fast is model


def test_cpu_bf16_flag_read_from_cpuinfo(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)  # a cap below bf16 would answer False for any CPU
    with_bf16 = tmp_path / "a"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    without = tmp_path / "b"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert cpu_has_native_bf16(str(with_bf16))
    assert not cpu_has_native_bf16(str(without))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


@pytest.mark.parametrize("rewrite", [True, False])
def test_swapper_runs_rewritten_or_plain(rewrite, photos, detector, tmp_path):
    from standins import pixel_identity_encoder

    from facedancer.images import read_image
    from facedancer.swap import FaceSwapper, SwapOptions

    model = _trained_like(build_generator(preset("C")))
    options = SwapOptions(precision="float32", rewrite_graph=rewrite, batch_size=2)
    swapper = FaceSwapper(model, pixel_identity_encoder(), detector, options)
    swapper.set_source(photos / "biden.jpg")
    image = read_image(photos / "obama.jpg")
    out = swapper.swap(image)
    if rewrite:
        plain = FaceSwapper(model, swapper.identity, detector, SwapOptions(precision="float32", rewrite_graph=False))
        plain.set_source(photos / "biden.jpg")
        assert np.abs(out.astype(int) - plain.swap(image).astype(int)).max() <= 1
    assert out.shape == image.shape and not np.array_equal(out, image)


def test_bfloat16_where_oneDNN_cannot_run_it_is_one_line(photos, tmp_path):
    """--precision bfloat16 on a CPU without bf16 convolutions (here: oneDNN capped to AVX2, as an AVX2-only
    CPU) ends in one line naming the flag, exit 1, not in oneDNN's abort."""
    import os
    import subprocess
    import sys

    from standins import save_arcface_standin

    generator = tmp_path / "g.keras"
    build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64)).save(generator)
    arcface = save_arcface_standin(tmp_path / "ArcFace-Res50.h5")
    command = [sys.executable, "-m", "facedancer", "swap", "--target", str(photos / "obama.jpg")]
    command += ["--output", str(tmp_path / "o.jpg"), "--swap_source", str(photos / "biden.jpg")]
    command += ["--facedancer_path", str(generator), "--arcface_path", str(arcface), "--precision", "bfloat16"]
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
    assert result.returncode == 1, result.stderr[-2000:]
    assert len(errors) == 1 and "--precision bfloat16" in errors[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "o.jpg").exists()
