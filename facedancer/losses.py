"""Every FaceDancer loss as a small pure function of tensors (weights are applied by the trainer).

Each follows the original's `train/train.py` and `utils/loss.py`: per-sample losses are averaged over the
batch; the self-pair losses (reconstruction, perceptual) take the original's flagged mean
Σ flags·loss / (Σ flags + 0.001) (0 when no sample is flagged); IFSR applies its relu to the batch mean.
"""

from __future__ import annotations

import tensorflow as tf


def _mean_per_sample(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


FLAG_SMOOTHING = 0.001  # the original's denominator Σ flags + 0.001


def flagged_mean(values: tf.Tensor, flags: tf.Tensor) -> tf.Tensor:
    """The original's self-pair mean: Σ flags·values / (Σ flags + 0.001)."""
    flags = tf.cast(flags, values.dtype)
    return tf.reduce_sum(values * flags) / (tf.reduce_sum(flags) + FLAG_SMOOTHING)


def d_adversarial_terms(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The discriminator's two non-saturating GAN terms: (mean softplus(-D(real)), mean softplus(D(fake)))."""
    return tf.reduce_mean(tf.nn.softplus(-real_logits)), tf.reduce_mean(tf.nn.softplus(fake_logits))


def d_adversarial(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating GAN loss of the discriminator: softplus(-D(real)) + softplus(D(fake))."""
    real, fake = d_adversarial_terms(real_logits, fake_logits)
    return real + fake


def g_adversarial(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating GAN loss of the generator: softplus(-D(fake))."""
    return tf.reduce_mean(tf.nn.softplus(-fake_logits))


def r1_penalty(real_gradients: tf.Tensor) -> tf.Tensor:
    """E[‖∇_x D(x)‖²] over real images; the trainer multiplies by gamma/2 (the original: 10 · 0.5)."""
    return tf.reduce_mean(
        tf.reduce_sum(tf.reshape(tf.square(real_gradients), [tf.shape(real_gradients)[0], -1]), axis=1)
    )


def reconstruction(target: tf.Tensor, swap: tf.Tensor, same: tf.Tensor, clip: float = 5.0) -> tf.Tensor:
    """The original's `fs_reconstruction_loss_l1`: flagged mean L1 over self pairs, clipped at 100, halved;
    then clipped at `clip` as its trainer does."""
    per_sample = _mean_per_sample(tf.abs(tf.cast(target, tf.float32) - tf.cast(swap, tf.float32)))
    halved = tf.clip_by_value(flagged_mean(per_sample, same), 0.0, 100.0) / 2.0
    return tf.clip_by_value(halved, 0.0, clip)


def perceptual(
    target_features: list[tf.Tensor], swap_features: list[tf.Tensor], same: tf.Tensor, scale: float = 0.85
) -> tf.Tensor:
    """Σ over feature blocks of the flagged mean of mean|scale·f_target − scale·f_swap| (the original's
    `perceptual_loss_flagged`, smooth 0.85, block weights 1)."""
    total = 0.0
    for t, s in zip(target_features, swap_features, strict=True):
        per_sample = _mean_per_sample(tf.abs(tf.cast(t, tf.float32) * scale - tf.cast(s, tf.float32) * scale))
        total += flagged_mean(per_sample, same)
    return total


def cosine_similarity(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """Per-sample cosine similarity of flattened tensors."""
    a = tf.reshape(tf.cast(a, tf.float32), [tf.shape(a)[0], -1])
    b = tf.reshape(tf.cast(b, tf.float32), [tf.shape(b)[0], -1])
    return tf.reduce_sum(tf.math.l2_normalize(a, 1) * tf.math.l2_normalize(b, 1), axis=1)


def identity(source_embedding: tf.Tensor, swap_embedding: tf.Tensor) -> tf.Tensor:
    """1 − cos(z_source, ArcFace(swap)), averaged over the batch."""
    return tf.reduce_mean(1.0 - cosine_similarity(source_embedding, swap_embedding))


def cycle(target: tf.Tensor, cycled: tf.Tensor) -> tf.Tensor:
    """L1 between the target and G(swap, z_target)."""
    return tf.reduce_mean(tf.abs(tf.cast(target, tf.float32) - tf.cast(cycled, tf.float32)))


def ifsr_distances(target_features: list[tf.Tensor], swap_features: list[tf.Tensor]) -> tf.Tensor:
    """Per-block mean cosine distance between target and swap identity-encoder features: shape (blocks,)."""
    return tf.stack(
        [tf.reduce_mean(1.0 - cosine_similarity(t, s)) for t, s in zip(target_features, swap_features, strict=True)]
    )


def ifsr(
    target_features: list[tf.Tensor],
    swap_features: list[tf.Tensor],
    margins,
    scale: float = 1.2,
    per_sample: bool = False,
) -> tf.Tensor:
    """IFSR as the original: Σ_b relu(mean_batch cos_distance_b(target, swap) − scale · margin_b).

    Keeps the swap's intermediate identity-encoder features as close to the target's as two photos of
    one person are (the margins), preserving pose, expression and occlusions. `per_sample` (a deviation,
    --ifsr_per_sample) applies the relu to each sample's distance before the batch mean instead.
    """
    total = 0.0
    for t, s, m in zip(target_features, swap_features, list(margins), strict=True):
        distance = 1.0 - cosine_similarity(t, s)
        if per_sample:
            total += tf.reduce_mean(tf.nn.relu(distance - scale * m))
        else:
            total += tf.nn.relu(tf.reduce_mean(distance) - scale * m)
    return total
