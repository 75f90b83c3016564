"""The custom layers compute what the original's layers computed (checked against numpy)."""

import keras
import numpy as np

from facedancer.nn.layers import AdaIN, AdaptiveAttention, InstanceNormalization


def test_instance_norm_normalises_each_channel_of_each_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (2, 8, 8, 5)).astype("float32")
    layer = InstanceNormalization()
    y = keras.ops.convert_to_numpy(layer(x))
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), atol=1e-5)
    assert layer.epsilon == 1e-3


def test_instance_norm_accepts_the_legacy_groups_argument():
    x = np.random.default_rng(1).normal(size=(1, 4, 4, 6)).astype("float32")
    a = keras.ops.convert_to_numpy(InstanceNormalization(groups=6)(x))
    b = keras.ops.convert_to_numpy(InstanceNormalization()(x))
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_adain_scales_and_shifts_by_two_dense_projections():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    z = rng.normal(size=(2, 5)).astype("float32")
    layer = AdaIN()
    layer([x, z])
    wg, bg, wb, bb = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    gamma = z @ wg + bg
    beta = z @ wb + bb
    expected = gamma[:, None, None, :] * x + beta[:, None, None, :]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer([x, z])), expected, atol=1e-5)


def test_adaptive_attention_blends_target_and_source_by_mask():
    x_t = np.full((1, 2, 2, 1), 10.0, "float32")
    x_s = np.full((1, 2, 2, 1), -2.0, "float32")
    mask = np.array([0.0, 0.25, 0.5, 1.0], "float32").reshape(1, 2, 2, 1)
    y = keras.ops.convert_to_numpy(AdaptiveAttention()([mask, x_t, x_s]))
    np.testing.assert_allclose(y.ravel(), [10.0, 7.0, 4.0, -2.0])
