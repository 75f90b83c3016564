"""Each loss on inputs whose value is known by hand."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from facedancer import losses


def sp(x):
    return math.log1p(math.exp(x))


def test_adversarial_losses_are_softplus():
    real = tf.constant([[2.0], [0.0]])
    fake = tf.constant([[-1.0], [3.0]])
    expected_d = (sp(-2.0) + sp(0.0)) / 2 + (sp(-1.0) + sp(3.0)) / 2
    assert float(losses.d_adversarial(real, fake)) == pytest.approx(expected_d, rel=1e-6)
    assert float(losses.g_adversarial(fake)) == pytest.approx((sp(1.0) + sp(-3.0)) / 2, rel=1e-6)


def test_r1_is_the_mean_squared_gradient_norm():
    grads = tf.constant(np.stack([np.full((2, 2, 1), 1.0), np.full((2, 2, 1), 2.0)]), tf.float32)
    assert float(losses.r1_penalty(grads)) == pytest.approx((4 * 1 + 4 * 4) / 2)


def test_reconstruction_counts_only_self_pairs_halves_and_clips():
    """The original's fs_reconstruction_loss_l1: Σ flags·L1 / (Σ flags + 0.001), halved; clipped at 5."""
    target = tf.zeros((3, 2, 2, 3))
    swap = tf.constant(np.stack([np.full((2, 2, 3), v) for v in (0.5, 1.0, 12.0)]), tf.float32)
    same = tf.constant([1.0, 1.0, 0.0])
    assert float(losses.reconstruction(target, swap, same)) == pytest.approx(1.5 / 2.001 / 2, rel=1e-6)
    assert float(losses.reconstruction(target, swap, tf.constant([0.0, 0.0, 1.0]), clip=100)) == pytest.approx(
        12.0 / 1.001 / 2, rel=1e-6
    )
    assert float(losses.reconstruction(target, swap, tf.constant([0.0, 0.0, 1.0]))) == pytest.approx(5.0)
    assert float(losses.reconstruction(target, swap, tf.zeros(3))) == 0.0


def test_perceptual_sums_blocks_on_self_pairs():
    t = [tf.zeros((2, 4, 4, 2)), tf.zeros((2, 2, 2, 3))]
    s = [tf.ones((2, 4, 4, 2)), tf.fill((2, 2, 2, 3), 3.0)]
    same = tf.constant([1.0, 0.0])
    assert float(losses.perceptual(t, s, same, scale=0.85)) == pytest.approx(0.85 * (1.0 + 3.0) / 1.001, rel=1e-6)


def test_identity_and_cosine():
    a = tf.constant([[1.0, 0.0], [0.0, 2.0]])
    b = tf.constant([[1.0, 1.0], [0.0, -5.0]])
    np.testing.assert_allclose(losses.cosine_similarity(a, b).numpy(), [1 / math.sqrt(2), -1.0], rtol=1e-6)
    assert float(losses.identity(a, b)) == pytest.approx(((1 - 1 / math.sqrt(2)) + 2.0) / 2, rel=1e-6)
    assert float(losses.identity(a, a)) == pytest.approx(0.0, abs=1e-6)


def test_cycle_is_l1():
    assert float(losses.cycle(tf.zeros((1, 2, 2, 3)), tf.fill((1, 2, 2, 3), -0.25))) == pytest.approx(0.25)


def test_ifsr_applies_the_relu_to_the_batch_mean_per_block():
    t = [tf.constant([[1.0, 0.0], [1.0, 0.0]]), tf.constant([[1.0, 0.0], [1.0, 0.0]])]
    s = [tf.constant([[0.0, 1.0], [1.0, 0.0]]), tf.constant([[1.0, 0.0], [1.0, 0.0]])]  # distances (1, 0), (0, 0)
    assert float(losses.ifsr(t, s, margins=[0.25, 0.25], scale=1.2)) == pytest.approx(0.5 - 0.3)
    per_sample = losses.ifsr(t, s, margins=[0.25, 0.25], scale=1.2, per_sample=True)  # the opt-in deviation
    assert float(per_sample) == pytest.approx((1.0 - 0.3) / 2)
    np.testing.assert_allclose(losses.ifsr_distances(t, s).numpy(), [0.5, 0.0], atol=1e-6)


def test_published_margins_file_matches_the_package():
    from facedancer.ifsr import IFSR_BLOCKS, PUBLISHED, load_margins

    path = Path(__file__).resolve().parents[1] / "arcface_model" / "ifsr_margins.json"
    data = json.loads(path.read_text())
    assert data["blocks"] == list(IFSR_BLOCKS)
    assert dict(zip(data["blocks"], data["margins"], strict=True)) == PUBLISHED
    assert load_margins(path).select(["conv2_block3_out"]).values == (0.035144,)


def test_perceptual_caffe_input_is_kerass_own_vgg16_preprocessing(tmp_path):
    """--perceptual_caffe_input (a deviation): VGG16 sees what keras.applications.vgg16.preprocess_input makes
    of the 0..255 RGB image; by default (the original) it sees the [-1, 1] image itself."""
    import keras
    from standins import vgg16_notop_file

    from facedancer.perceptual import perceptual_model

    weights = vgg16_notop_file(tmp_path / "vgg16_notop.h5", 32)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    plain = perceptual_model(weights, ("block1_pool", "block2_pool"), 32)
    caffe = perceptual_model(weights, ("block1_pool", "block2_pool"), 32, caffe_input=True)
    expected = plain(keras.applications.vgg16.preprocess_input((images + 1.0) * 127.5))
    for ours, theirs, own in zip(caffe(images), expected, plain(images), strict=True):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-3)
        assert np.abs(np.asarray(ours) - np.asarray(own)).max() > 1.0  # the default differs
