"""dataset/crop_align.py on a small real tree: good photos aligned, bad ones reported, resume is a no-op."""

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facedancer.images import read_image

REPO_SCRIPT = "dataset/crop_align.py"


@pytest.fixture(scope="module")
def tree(photos, tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    (root / "obama").mkdir()
    (root / "biden").mkdir()
    shutil.copy(photos / "obama.jpg", root / "obama" / "a.jpg")
    shutil.copy(photos / "obama3.jpg", root / "obama" / "b.jpg")
    shutil.copy(photos / "biden.jpg", root / "biden" / "a.jpg")
    face = Image.open(photos / "obama2.jpg")
    face.convert("CMYK").save(root / "obama" / "cmyk.jpg")
    face.convert("L").save(root / "obama" / "grey.png")
    Image.fromarray(np.asarray(face.convert("L")).astype(np.uint16) * 257).save(root / "obama" / "deep16.png")
    face.convert("RGBA").save(root / "obama" / "alpha.png")
    (root / "obama" / "broken.jpg").write_bytes((photos / "obama.jpg").read_bytes()[:5000])
    (root / "biden" / "notes.txt").write_text("a text file among the photos")
    face.resize((50, 96)).save(root / "biden" / "tiny.jpg")
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(root / "biden" / "wall.png")
    return root


def _run(*args):
    return subprocess.run([sys.executable, REPO_SCRIPT, *args], capture_output=True, text=True, timeout=600)


def test_cli_aligns_good_photos_and_reports_the_rest(tree, tmp_path):
    out = tmp_path / "aligned"
    result = _run("--data_dir", str(tree), "--target_dir", str(out), "--im_size", "128", "--min_size", "64")
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == [
        "biden/a.png",
        "obama/a.png",
        "obama/alpha.png",
        "obama/b.png",
        "obama/cmyk.png",
        "obama/deep16.png",
        "obama/grey.png",
    ]
    for path in out.rglob("*.png"):
        assert read_image(path).shape == (128, 128, 3)
    with open(out / "crop_align_skipped.csv") as f:
        reasons = {row["path"].split("/")[-1]: row["reason"] for row in csv.DictReader(f)}
    assert reasons == {
        "broken.jpg": "unreadable",
        "notes.txt": "unreadable",
        "tiny.jpg": "small-image",
        "wall.png": "no-face",
    }
    counts = json.loads((out / "crop_align_report.json").read_text())["counts"]
    assert counts["written"] == 7 and counts["unreadable"] == 2 and counts["small_image"] == 1
    # one line as the stage starts, one with its time and counts as it ends
    assert re.search(r"align …", result.stderr) and re.search(r"align done in [\d.]+ s \(.*written 7", result.stderr)
    assert "written 7" in result.stderr

    # A second run is a no-op: nothing decoded, nothing rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = _run("--data_dir", str(tree), "--target_dir", str(out), "--im_size", "128", "--min_size", "64")
    assert again.returncode == 0, again.stderr
    assert "processed 0" in again.stderr and "written 0" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


def test_faces_all_writes_one_crop_per_face(photos, tmp_path):
    import cv2

    group = np.full((620, 900, 3), 200, np.uint8)
    group[20:588, 10:465] = cv2.resize(read_image(photos / "obama.jpg"), (455, 568))
    group[15:605, 600:860] = cv2.resize(read_image(photos / "biden.jpg"), (260, 590))
    data = tmp_path / "flat"
    data.mkdir()
    Image.fromarray(group).save(data / "group.png")
    for mode, expected in [
        ("all", ["group_0.png", "group_1.png"]),
        ("skip-multi", []),
        ("largest", ["group.png"]),
        ("first", ["group.png"]),
    ]:
        out = tmp_path / mode
        result = _run("--data_dir", str(data), "--target_dir", str(out), "--faces", mode, "--min_size", "64")
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in out.glob("*.png")) == expected


def test_default_keeps_the_detectors_first_answer_as_the_original():
    """The original writes the detector's first row (its best score after NMS) and detects at full size with no
    score floor of its own; `--faces largest`, `--score`, `--max_side` are ours."""
    from facedancer.align_dataset import AlignOptions, _select
    from facedancer.detection import GRAPH_FLOOR, Face

    big = Face(box=np.array([0.0, 0, 200, 200]), landmarks=np.zeros((5, 2)), score=0.80)
    small = Face(box=np.array([300.0, 0, 380, 80]), landmarks=np.zeros((5, 2)), score=0.99)
    faces = [big, small]  # the detector lists faces largest first
    assert _select(faces, AlignOptions().faces) == [small]
    assert _select(faces, "largest") == [big]
    assert (AlignOptions().score, AlignOptions().max_side) == (GRAPH_FLOOR, 0)


def test_min_size_skips_photos_not_above_it_and_min_face_size_skips_small_faces(photos, detector, tmp_path):
    """--min_size as the original: the PHOTO's width and height must both be above it (a big photo with a
    small face passes); --min_face_size is the separate face-box filter."""
    from facedancer.align_dataset import AlignOptions, align_dataset

    data = tmp_path / "data" / "obama"
    data.mkdir(parents=True)
    photo = read_image(photos / "obama.jpg")
    height, width = photo.shape[:2]
    shutil.copy(photos / "obama.jpg", data / "full.jpg")
    small_face = np.full((height * 2, width * 2, 3), 128, np.uint8)  # a large photo, the face a quarter of it
    small_face[:height, :width] = photo
    Image.fromarray(small_face).save(data / "padded.png")
    face = detector.detect(photo)[0].size
    side = min(height, width)

    def reasons(**kw):
        out = tmp_path / "out" / "_".join(f"{k}{v}" for k, v in kw.items())
        summary = align_dataset(tmp_path / "data", out, AlignOptions(im_size=64, **kw), detector, progress=False)
        return {Path(e["path"]).name: e["reason"] for e in summary.skipped}, sorted(p.name for p in out.rglob("*.png"))

    assert reasons(min_size=side) == ({"full.jpg": "small-image"}, ["padded.png"])  # equal is not above
    assert reasons(min_size=side - 1) == ({}, ["full.png", "padded.png"])
    assert face < side - 1  # the face box is smaller than the photo: the original's filter is not a face filter
    assert reasons(min_size=side - 1, min_face_size=int(face * 1.25)) == (
        {"full.jpg": "small-face", "padded.png": "small-face"},
        [],
    )
    assert reasons(min_size=side - 1, min_face_size=int(face * 0.8)) == ({}, ["full.png", "padded.png"])


def test_missing_data_dir_is_one_line_and_exit_1(tmp_path):
    result = _run("--data_dir", str(tmp_path / "nope"), "--target_dir", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "nope is not a folder" in result.stderr and "Traceback" not in result.stderr
