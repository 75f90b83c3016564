"""The tf.data training pipeline on shards of real faces."""

import numpy as np
import pytest

from facedancer.data import PipelineOptions, make_dataset
from facedancer.errors import FaceDancerError
from facedancer.shards import ShardError, ShardOptions, write_shards


@pytest.fixture(scope="module")
def shards(aligned_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    write_shards(aligned_tree, out, ShardOptions(data_name="faces", images_per_shard=3), progress=False)
    return str(out / "faces_train_*-of-*.records")


def _batches(pattern, n, **kw):
    ds = make_dataset(pattern, PipelineOptions(**kw))
    return [tuple(np.asarray(t) for t in batch) for batch in ds.take(n)]


def test_batches_shapes_range_and_self_pairs(shards):
    different = others = 0
    for target, source, same in _batches(shards, 5, batch_size=4, image_size=128, augment=False, seed=0):
        assert target.shape == source.shape == (4, 128, 128, 3) and target.dtype == np.float32
        assert -1.0 <= target.min() and target.max() <= 1.0
        assert same.shape == (4,)
        for i in range(4):
            identical = np.array_equal(target[i], source[i])
            assert identical or not same[i]
            others += not same[i]
            different += not identical
    assert different >= 0.7 * others  # (7 photos: a random source is sometimes the target's own photo)


def test_at_least_one_self_pair_per_batch_even_at_ratio_zero(shards):
    for _, _, same in _batches(shards, 8, batch_size=3, image_size=64, same_ratio=0.0, seed=1):
        assert same.sum() == 1.0  # one, at a random place


def test_the_forced_self_pair_is_at_a_random_place_as_the_original():
    """At ratio 0 the original sets one random sample of the batch to a self pair, not always the first."""
    import tensorflow as tf

    from facedancer.data import PipelineOptions, pair_batch

    images = tf.zeros([5, 8, 8, 3])
    options = PipelineOptions(same_ratio=0.0, augment=False)
    rng = np.random.default_rng(0)
    places = []
    for _ in range(200):
        uniform = tf.constant(rng.uniform(size=5), tf.float32)
        same = np.asarray(pair_batch(images, images, uniform, tf.zeros([2, 2], tf.int32), options)[2])
        assert same.sum() == 1
        places.append(int(np.argmax(same)))
    counts = np.bincount(places, minlength=5)
    assert counts.min() >= 20, counts  # every place, about 40 times each


def test_same_ratio_is_per_sample(shards):
    flags = np.concatenate(
        [s for _, _, s in _batches(shards, 60, batch_size=5, image_size=32, same_ratio=0.5, augment=False, seed=2)]
    )
    assert 0.4 < flags.mean() < 0.62
    ones = np.concatenate([s for _, _, s in _batches(shards, 5, batch_size=5, image_size=32, same_ratio=1.0, seed=2)])
    assert ones.all()


def test_seed_makes_batches_reproducible(shards):
    a = _batches(shards, 2, batch_size=2, image_size=64, seed=7)
    b = _batches(shards, 2, batch_size=2, image_size=64, seed=7)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


def _grey_faces(aligned_tree, size=64) -> np.ndarray:
    """Real aligned faces as grey RGB in [0, 1]: saturation leaves them alone, so the original's jitter on
    them is exactly y = f·(x − mean x) + mean x + δ per image, and (f, δ) can be read back."""
    import tensorflow as tf

    from facedancer.images import read_image

    faces = [read_image(p) for p in sorted(aligned_tree.rglob("*.png"))]
    images = tf.image.resize(np.stack(faces).astype(np.float32) / 255.0, [size, size], antialias=True)
    return np.repeat(np.asarray(tf.image.rgb_to_grayscale(images)), 3, axis=-1)


def _contrast_and_delta(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per image (f, δ) with after = f·(before − mean) + mean + δ, by least squares; checks the fit is exact."""
    out = []
    for x, y in zip(before, after, strict=True):
        centred = (x - x.mean()).ravel()
        f = float(centred @ (y - x.mean()).ravel() / (centred @ centred))
        delta = float((y - f * (x - x.mean()) - x.mean()).mean())
        np.testing.assert_allclose(y, f * (x - x.mean()) + x.mean() + delta, atol=2e-5)
        out.append((f, delta))
    return np.array(out)


def test_jitter_is_one_draw_per_batch_in_the_originals_ranges(aligned_tree):
    """As the original's train_step: brightness ±0.3 on [-1, 1] images, contrast and saturation 0.9–1.1, one
    draw for the whole batch, its three factors from one seed (one uniform draw), no clipping."""
    import tensorflow as tf

    from facedancer.data import jitter

    images = _grey_faces(aligned_tree) * 2 - 1
    options = PipelineOptions()
    draws = []
    for k in range(24):
        out = np.asarray(jitter(tf.constant(images), tf.constant([k, 7 * k + 1], tf.int32), options))
        fd = _contrast_and_delta(images, out)
        np.testing.assert_allclose(fd, np.broadcast_to(fd[0], fd.shape), atol=1e-5)  # one draw per batch
        draws.append(fd[0])
    f, delta = np.array(draws).T
    assert 0.9 <= f.min() and f.max() <= 1.1 and -0.3 <= delta.min() and delta.max() <= 0.3
    assert delta.max() > 0.15 and delta.min() < -0.15  # the full ±0.3 is used on the [-1, 1] scale
    np.testing.assert_allclose((f - 0.9) / 0.2, (delta + 0.3) / 0.6, atol=1e-4)  # one seed for all three


def test_per_sample_augment_draws_per_image(aligned_tree):
    import tensorflow as tf

    from facedancer.data import jitter_per_sample

    images = _grey_faces(aligned_tree) * 2 - 1
    out = np.asarray(jitter_per_sample(tf.constant(images), tf.constant([3, 4], tf.int32), PipelineOptions()))
    f, delta = _contrast_and_delta(images, out).T
    assert np.ptp(delta) > 0.05 and np.ptp(f) > 0.01
    assert 0.9 <= f.min() and f.max() <= 1.1 and -0.3 <= delta.min() and delta.max() <= 0.3


def test_self_pairs_are_formed_before_the_jitter_with_separate_target_and_source_draws(aligned_tree):
    """A self pair's source is its target BEFORE the jitter, jittered with the sources' draw (the original
    sets source = target in its loop, then its step jitters targets and sources with different seeds)."""
    import tensorflow as tf

    from facedancer.data import pair_batch

    faces = _grey_faces(aligned_tree)
    targets, sources = faces[:3], faces[3:6]
    uniform = tf.constant([0.9, 0.05, 0.9])  # with same_ratio 0.2: only the second is a self pair
    seeds = tf.constant([[11, 12], [13, 14]], tf.int32)
    t, s, same = (np.asarray(v) for v in pair_batch(targets, sources, uniform, seeds, PipelineOptions()))
    assert same.tolist() == [0.0, 1.0, 0.0]
    target_draws = _contrast_and_delta(targets * 2 - 1, t)
    source_draws = _contrast_and_delta(np.stack([sources[0], targets[1], sources[2]]) * 2 - 1, s)
    np.testing.assert_allclose(target_draws, np.broadcast_to(target_draws[0], (3, 2)), atol=1e-5)
    np.testing.assert_allclose(source_draws, np.broadcast_to(source_draws[0], (3, 2)), atol=1e-5)
    assert np.abs(target_draws[0] - source_draws[0]).max() > 1e-3  # separate seeds: other jitter
    assert not np.allclose(t[1], s[1])
    plain = pair_batch(targets, sources, uniform, seeds, PipelineOptions(augment=False))
    np.testing.assert_array_equal(np.asarray(plain[1])[1], targets[1] * 2 - 1)


@pytest.mark.parametrize("per_sample", [False, True], ids=["per_batch", "per_sample"])
def test_pipeline_jitters_self_pairs_apart(shards, per_sample):
    """The pipeline's batches: the same pairs and flags with and without the jitter; with it, a self pair's
    source differs from its target (the sources' draw is not the targets')."""
    plain = _batches(shards, 2, batch_size=4, image_size=64, augment=False, same_ratio=0.5, seed=5)
    jittered = _batches(shards, 2, batch_size=4, image_size=64, same_ratio=0.5, seed=5, per_sample_augment=per_sample)
    for (t0, s0, same0), (t1, s1, same1) in zip(plain, jittered, strict=True):
        np.testing.assert_array_equal(same0, same1)
        assert np.abs(t1 - t0).mean() > 0.005 and np.abs(s1 - s0).mean() > 0.005
        for i in np.flatnonzero(same1):
            assert np.array_equal(t0[i], s0[i]) and np.abs(t1[i] - s1[i]).mean() > 0.005
            assert np.corrcoef(t1[i].ravel(), s1[i].ravel())[0, 1] > 0.9


def test_same_identity_pairs_use_the_labels(shards, aligned_tree):
    import tensorflow as tf

    from facedancer.images import read_image

    known = {}
    for path in sorted(aligned_tree.rglob("*.png")):
        image = tf.image.resize(read_image(path)[None].astype(np.float32) / 255.0, [32, 32], antialias=True)
        known[path] = np.asarray(image[0]) * 2 - 1
    paths = list(known)

    def identity_of(image):
        best = min(paths, key=lambda p: np.abs(known[p] - image).mean())
        return best.parent.name, best

    pairs = 0
    for target, source, same in _batches(
        shards, 12, batch_size=2, image_size=32, augment=False, same_identity_ratio=1.0, same_ratio=0.0, seed=4
    ):
        for i in np.flatnonzero(same == 0):
            (id_t, p_t), (id_s, p_s) = identity_of(target[i]), identity_of(source[i])
            assert id_t == id_s == "obama" and p_t != p_s
            pairs += 1
    assert pairs >= 8


def test_original_format_records_with_only_face_read(aligned_tree, tmp_path):
    import tensorflow as tf

    path = tmp_path / "orig_train_00000-of-00001.records"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for png in sorted(aligned_tree.rglob("*.png")):
            feature = {"face": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png.read_bytes()]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    target, source, same = _batches(
        str(tmp_path / "orig_train_*-of-*.records"), 1, batch_size=3, image_size=64, seed=0
    )[0]
    assert target.shape == (3, 64, 64, 3) and same.sum() >= 1.0


def test_bad_inputs_name_the_problem(shards, tmp_path):
    with pytest.raises(FaceDancerError, match="no shard files match"):
        make_dataset(str(tmp_path / "none_*.records"))
    broken = tmp_path / "cut_train_00000-of-00001.records"
    first = sorted(__import__("glob").glob(shards))[0]
    broken.write_bytes(open(first, "rb").read()[:-500])
    with pytest.raises(ShardError, match=broken.name):
        make_dataset(str(broken))
