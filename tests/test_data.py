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
    for target, source, same in _batches(shards, 5, batch_size=4, image_size=128, seed=0):
        assert target.shape == source.shape == (4, 128, 128, 3) and target.dtype == np.float32
        assert -1.0 <= target.min() and target.max() <= 1.0
        assert same.shape == (4,)
        for i in range(4):
            identical = np.array_equal(target[i], source[i])
            assert identical == bool(same[i])


def test_at_least_one_self_pair_per_batch_even_at_ratio_zero(shards):
    for _, _, same in _batches(shards, 8, batch_size=3, image_size=64, same_ratio=0.0, seed=1):
        assert same.tolist() == [1.0, 0.0, 0.0]


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


def test_augmentation_jitters_colour_within_the_originals_ranges(shards):
    plain = _batches(shards, 1, batch_size=6, image_size=64, augment=False, repeat=False, seed=0)[0][0]
    jittered = _batches(shards, 1, batch_size=6, image_size=64, augment=True, repeat=False, seed=0)[0][0]
    shift = np.abs(jittered.mean(axis=(1, 2, 3)) - plain.mean(axis=(1, 2, 3)))
    assert shift.max() > 0.01  # something changed
    assert shift.max() < 2 * 0.3 + 0.1  # brightness 0.3 on [0, 1] is 0.6 on [-1, 1]


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
    assert target.shape == (3, 64, 64, 3) and same[0] == 1.0


def test_bad_inputs_name_the_problem(shards, tmp_path):
    with pytest.raises(FaceDancerError, match="no shard files match"):
        make_dataset(str(tmp_path / "none_*.records"))
    broken = tmp_path / "cut_train_00000-of-00001.records"
    first = sorted(__import__("glob").glob(shards))[0]
    broken.write_bytes(open(first, "rb").read()[:-500])
    with pytest.raises(ShardError, match=broken.name):
        make_dataset(str(broken))
