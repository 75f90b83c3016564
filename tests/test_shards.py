"""Sharding real aligned faces: bytes round-trip, labels, names, index, skipped files, --verify."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from facedancer.shards import ShardError, ShardOptions, check_framing, decode_example, verify_shard, write_shards

NAME_RE = re.compile(r"^faces_(train|val)_(\d{5})-of-(\d{5})\.records$")


def _records(path):
    import tensorflow as tf

    return [decode_example(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


def test_round_trip_bytes_labels_counts_and_names(aligned_tree, tmp_path):
    report = write_shards(
        aligned_tree, tmp_path, ShardOptions(data_name="faces", images_per_shard=3, seed=1), progress=False
    )
    shards = sorted(tmp_path.glob("faces_train_*-of-*.records"))  # the original's glob
    assert len(shards) == 3 and all(NAME_RE.match(p.name) for p in shards)
    assert [NAME_RE.match(p.name).group(2, 3) for p in shards] == [
        ("00000", "00003"),
        ("00001", "00003"),
        ("00002", "00003"),
    ]
    index = json.loads((tmp_path / "faces_index.json").read_text())
    assert index["labels"] == {"astronaut": 0, "biden": 1, "obama": 2}
    seen = {}
    for shard in shards:
        records = _records(shard)
        assert len(records) == index["splits"]["train"]["shards"][shard.name]
        for record in records:
            assert record["face"] == (aligned_tree / record["path"]).read_bytes()
            assert record["label"] == index["labels"][record["identity"]]
            assert record["path"].startswith(record["identity"] + "/")
            seen[record["identity"]] = seen.get(record["identity"], 0) + 1
    assert seen == {"obama": 5, "biden": 1, "astronaut": 1}
    assert {k: v["count"] for k, v in index["splits"]["train"]["identities"].items()} == seen
    assert report.skipped == []
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_validation_split_is_by_identity(aligned_tree, tmp_path):
    write_shards(aligned_tree, tmp_path, ShardOptions(data_name="faces", val_fraction=0.34, seed=3), progress=False)
    train = {r["identity"] for p in tmp_path.glob("faces_train_*.records") for r in _records(p)}
    val = {r["identity"] for p in tmp_path.glob("faces_val_*.records") for r in _records(p)}
    assert len(val) == 1 and train and not train & val
    assert train | val == {"obama", "biden", "astronaut"}


def test_flat_folder_is_one_identity_and_shuffle_flag(aligned_tree, tmp_path):
    flat = tmp_path / "flat"
    shutil.copytree(aligned_tree / "obama", flat)
    out = tmp_path / "out"
    write_shards(flat, out, ShardOptions(data_name="faces", shuffle=False), progress=False)
    records = _records(next(out.glob("faces_train_*.records")))
    assert {r["identity"] for r in records} == {"flat"}
    assert [r["path"] for r in records] == sorted(r["path"] for r in records)


def _cli(*args):
    return subprocess.run(
        [sys.executable, "dataset/dataset_sharding.py", *args], capture_output=True, text=True, timeout=300
    )


def test_corrupt_image_is_skipped_and_reported(aligned_tree, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(aligned_tree, data)
    (data / "biden" / "broken.png").write_bytes((data / "biden" / "biden.png").read_bytes()[:300])
    result = _cli(
        "--data_dir",
        str(data),
        "--target_dir",
        str(tmp_path / "out"),
        "--data_name",
        "faces",
        "--num_shards",
        "4",
        "--no-shuffle",
    )
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "out" / "faces_index.json").read_text())
    assert [s["path"] for s in index["skipped"]] == ["biden/broken.png"]
    assert index["splits"]["train"]["images"] == 7
    assert "broken.png" in result.stderr


def test_verify_catches_a_damaged_shard(aligned_tree, tmp_path):
    write_shards(aligned_tree, tmp_path, ShardOptions(data_name="faces", images_per_shard=4), progress=False)
    shards = sorted(tmp_path.glob("faces_train_*.records"))
    ok = _cli("--verify", str(tmp_path / "faces_train_*-of-*.records"))
    assert ok.returncode == 0 and "7 records" in ok.stderr
    data = bytearray(shards[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    shards[1].write_bytes(bytes(data))
    bad = _cli("--verify", str(tmp_path / "faces_train_*-of-*.records"))
    assert bad.returncode == 1
    assert shards[1].name in bad.stderr and shards[0].name not in bad.stderr.replace(shards[1].name, "")
    with pytest.raises(ShardError, match=shards[1].name):
        verify_shard(shards[1])


def test_truncated_shard_is_named(aligned_tree, tmp_path):
    write_shards(aligned_tree, tmp_path, ShardOptions(data_name="faces"), progress=False)
    shard = next(tmp_path.glob("faces_train_*.records"))
    assert check_framing(shard) == 7
    shard.write_bytes(shard.read_bytes()[:-1000])
    with pytest.raises(ShardError, match=rf"{shard.name}: truncated shard"):
        check_framing(shard)
