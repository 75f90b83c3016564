"""`facedancer prepare` (Apache Beam) on real photos: the same records, labels and split as `align` + `shard`,
bad inputs counted and listed, Beam counters, and a rerun that resumes and duplicates nothing.

The multi-process DirectRunner (2 workers, each loading TensorFlow and the detector) starts slowly, so it runs
once, through the CLI, and the tests below read its output; the rerun uses the in-process DirectRunner.
"""

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("apache_beam", reason="Apache Beam is an optional extra: pip install 'facedancer[beam]'")

from facedancer.align_dataset import AlignOptions, align_dataset  # noqa: E402
from facedancer.images import read_image  # noqa: E402
from facedancer.shards import ShardOptions, decode_example, verify_shard, write_shards  # noqa: E402

FLAGS = ["--data_name", "faces", "--val_fraction", "0.5", "--seed", "1", "--im_size", "128", "--min_size", "64"]
ALIGN = AlignOptions(im_size=128, min_size=64)
SHARD = ShardOptions(data_name="faces", val_fraction=0.5, seed=1)
NAME_RE = re.compile(r"^faces_(train|val)_\d{5}-of-\d{5}\.records$")
BAD = {"broken.jpg": "unreadable", "notes.txt": "unreadable", "tiny.jpg": "small-image", "wall.png": "no-face"}


@pytest.fixture(scope="module")
def tree(photos, tmp_path_factory):
    """Two identities; photos in CMYK, 16-bit, EXIF-rotated; a corrupt file, a text file, a tiny face, a wall."""
    root = tmp_path_factory.mktemp("photos")
    (root / "obama").mkdir()
    (root / "biden").mkdir()
    shutil.copy(photos / "obama.jpg", root / "obama" / "a.jpg")
    shutil.copy(photos / "biden.jpg", root / "biden" / "a.jpg")
    face = Image.open(photos / "obama2.jpg")
    face.convert("CMYK").save(root / "obama" / "cmyk.jpg")
    Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257).save(root / "obama" / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": the pixels are stored turned left
    face.transpose(Image.Transpose.ROTATE_90).save(root / "obama" / "rotated.jpg", exif=exif, quality=95)
    (root / "obama" / "broken.jpg").write_bytes((photos / "obama.jpg").read_bytes()[:5000])
    (root / "biden" / "notes.txt").write_text("a text file among the photos")
    face.resize((50, 96)).save(root / "biden" / "tiny.jpg")
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(root / "biden" / "wall.png")
    return root


def _records(folder):
    """{split: sorted [(path, identity, label, sha256 of the face bytes)]} of every shard in folder."""
    import tensorflow as tf

    out = {}
    for shard in sorted(folder.glob("faces_*-of-*.records")):
        assert NAME_RE.match(shard.name), shard.name
        split = shard.name.split("_")[1]
        for raw in tf.data.TFRecordDataset(str(shard)):
            r = decode_example(raw.numpy())
            out.setdefault(split, []).append(
                (r["path"], r["identity"], r["label"], hashlib.sha256(r["face"]).hexdigest())
            )
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def reference(tree, detector, tmp_path_factory):
    """The one-machine path: align, then shard."""
    out = tmp_path_factory.mktemp("reference")
    align_dataset(tree, out / "aligned", ALIGN, detector=detector, progress=False)
    write_shards(out / "aligned", out / "shards", SHARD, progress=False)
    return out


@pytest.fixture(scope="module")
def prepared(tree, tmp_path_factory):
    """One multi-process DirectRunner run through the CLI: (output folder, the CLI's stderr)."""
    out = tmp_path_factory.mktemp("prepared")
    command = [sys.executable, "-m", "facedancer.cli.main", "prepare", "--data_dir", str(tree), "--target_dir"]
    command += [str(out), *FLAGS, "--direct_num_workers", "2", "--direct_running_mode", "multi_processing"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result.stderr


def _counters(stderr: str) -> dict:
    line = re.search(r"counters: (.*)", stderr).group(1)
    return {k: int(v) for k, v in (item.rsplit(" ", 1) for item in line.split(", "))}


def test_pipeline_records_equal_align_then_shard(prepared, reference):
    out, _ = prepared
    ours, theirs = _records(out), _records(reference / "shards")
    assert set(ours) == {"train", "val"}
    assert ours == theirs  # crop bytes, paths, identities, labels and the split by identity
    index = json.loads((out / "faces_index.json").read_text())
    assert index["labels"] == json.loads((reference / "shards" / "faces_index.json").read_text())["labels"]
    for split, entry in index["splits"].items():
        assert entry["images"] == len(ours[split])
        for name, count in entry["shards"].items():
            assert verify_shard(out / name)["records"] == count  # CRCs and every image decode
    # The aligned PNGs beside the shards are the files `align` writes.
    crops = {p.relative_to(out / "aligned"): p.read_bytes() for p in (out / "aligned").rglob("*.png")}
    assert crops == {
        p.relative_to(reference / "aligned"): p.read_bytes() for p in (reference / "aligned").rglob("*.png")
    }
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or "beam-temp" in p.name]


def test_bad_inputs_counted_and_listed_good_ones_upright(prepared, reference):
    out, stderr = prepared
    with open(out / "crop_align_skipped.csv") as f:
        reasons = {row["path"].split("/")[-1]: row["reason"] for row in csv.DictReader(f)}
    assert reasons == BAD
    assert json.loads((out / "crop_align_report.json").read_text())["skipped"] == sorted(
        json.loads((reference / "aligned" / "crop_align_report.json").read_text())["skipped"], key=lambda e: e["path"]
    )
    assert _counters(stderr) == {
        "images": 9,
        "processed": 7,
        "faces": 5,
        "unreadable": 2,
        "small_image": 1,
        "too_small": 1,  # small_image + small_face
        "no_face": 1,
    }
    # CMYK, 16-bit and EXIF-rotated versions of one photo give (nearly) the same upright crop.
    cmyk, deep, rotated = (
        read_image(out / "aligned" / p).astype(float)
        for p in ("obama/cmyk.png", "obama/deep16.png", "obama/rotated.png")
    )
    assert np.abs(cmyk - rotated).mean() < 12
    assert np.abs(cmyk.mean(axis=2) - deep.mean(axis=2)).mean() < 12


def test_rerun_resumes_and_replaces_an_older_set(tree, prepared, reference, tmp_path):
    from facedancer.prepare import PrepareOptions, prepare

    out = tmp_path / "out"
    shutil.copytree(prepared[0], out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "aligned").rglob("*.png")}
    (out / "aligned" / "obama" / "a.png").unlink()  # as if the first run died before this photo
    del stamps[out / "aligned" / "obama" / "a.png"]
    (out / "faces_train_00002-of-00003.records").write_bytes(b"older set")  # another shard count
    (out / "beam-temp-faces_train-0123").mkdir()  # a killed run's temp folder
    (out / "beam-temp-faces_train-0123" / "part").write_bytes(b"x")

    # In-process DirectRunner replaying every bundle once first, as a runner retrying a failed worker does:
    # the discarded attempt detects obama/a.jpg again and writes its crop and shard parts; the committed
    # attempt then finds the crop (already done) and its counters alone are reported. Skips come from the report.
    result = prepare(tree, out, PrepareOptions(ALIGN, SHARD), ["--direct_runner_bundle_repeat=1"])
    expected = {"images": 9, "already_done": 5, "unreadable": 2, "small_image": 1, "no_face": 1}
    # the replay registers faces, processed at 0
    assert {k: v for k, v in result.counters.items() if v} == {**expected, "too_small": 1}
    assert {k: v for k, v in result.index["align"]["counts"].items() if v} == expected
    assert _records(out) == _records(reference / "shards")  # each record once, the older set gone
    assert sorted(p.name for p in out.glob("*.records")) == sorted(p.name for p in prepared[0].glob("*.records"))
    assert not [p for p in out.rglob("*") if p.name.startswith(".") or "beam-temp" in p.name]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # crops that existed were read, not rewritten
    assert (out / "aligned" / "obama" / "a.png").read_bytes() == (
        reference / "aligned" / "obama" / "a.png"
    ).read_bytes()


def test_shards_feed_the_training_pipeline(prepared):
    from facedancer.data import PipelineOptions, make_dataset

    out, _ = prepared
    batch = next(
        iter(
            make_dataset(str(out / "faces_train_*-of-*.records"), PipelineOptions(batch_size=2, image_size=64, seed=0))
        )
    )
    target, source, same = batch
    assert target.shape == (2, 64, 64, 3) and source.shape == (2, 64, 64, 3) and same.shape == (2,)


def test_shard_verify_accepts_the_pipelines_sets(prepared):
    """`facedancer shard --verify` (the one-machine check) reads the pipeline's shards against its index."""
    from facedancer.cli.main import main

    out, _ = prepared
    for split in ("train", "val"):
        assert main(["shard", "--verify", str(out / f"faces_{split}_*-of-*.records")]) == 0


def test_unknown_flags_are_usage_errors_outside_prepare():
    from facedancer.cli.main import parse_args

    with pytest.raises(SystemExit) as exc:
        parse_args(["align", "--data_dir", "a", "--target_dir", "b", "--direct_num_workers", "2"])
    assert exc.value.code == 2
    args = parse_args(["prepare", "--data_dir", "a", "--target_dir", "b", "--direct_num_workers", "2"])
    assert args.pipeline_args == ["--direct_num_workers", "2"] and args.runner == "DirectRunner"


def test_faces_all_in_a_flat_folder_names_and_resumes_as_align(photos, detector, tmp_path):
    import cv2

    from facedancer.prepare import PrepareOptions, prepare

    group = np.full((620, 900, 3), 200, np.uint8)
    group[20:588, 10:465] = cv2.resize(read_image(photos / "obama.jpg"), (455, 568))
    group[15:605, 600:860] = cv2.resize(read_image(photos / "biden.jpg"), (260, 590))
    data = tmp_path / "people"
    data.mkdir()
    Image.fromarray(group).save(data / "group.png")
    shutil.copy(photos / "obama3.jpg", data / "solo.jpg")
    options = AlignOptions(faces="all", min_size=64, im_size=96)
    align_dataset(data, tmp_path / "aligned", options, detector=detector, progress=False)
    expected = {p.name: p.read_bytes() for p in (tmp_path / "aligned").glob("*.png")}
    assert sorted(expected) == ["group_0.png", "group_1.png", "solo_0.png"]

    out = tmp_path / "out"
    for run in range(2):  # the second run reads all three crops back
        result = prepare(data, out, PrepareOptions(options, ShardOptions(data_name="faces")))
        assert {p.name: p.read_bytes() for p in (out / "aligned").glob("*.png")} == expected
        records = _records(out)["train"]
        assert sorted((r[0], r[1], r[2]) for r in records) == [(n, "people", 0) for n in sorted(expected)]
        assert result.counters.get("already_done", 0) == (2 if run else 0)
        assert result.counters.get("faces", 0) == (0 if run else 3)


def test_max_pixels_reaches_the_workers(photos, tmp_path):
    """`--max_pixels` is set in each worker's own process (a global of the launching process would not travel)."""
    from facedancer.images import DEFAULT_MAX_PIXELS, set_max_pixels
    from facedancer.prepare import PrepareOptions, prepare

    data = tmp_path / "people" / "obama"
    data.mkdir(parents=True)
    shutil.copy(photos / "obama.jpg", data / "a.jpg")
    try:
        options = PrepareOptions(ALIGN, ShardOptions(data_name="faces"), crops=False, max_pixels=10_000)
        result = prepare(tmp_path / "people", tmp_path / "out", options)
    finally:
        set_max_pixels(DEFAULT_MAX_PIXELS)  # the in-process runner's worker is this process
    assert {k: v for k, v in result.counters.items() if v} == {"images": 1, "unreadable": 1}
    with open(tmp_path / "out" / "crop_align_skipped.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["reason"] == "unreadable" and "--max_pixels" in row["detail"]
