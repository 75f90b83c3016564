"""Nothing lost, nothing half-done: a table of bad inputs for every command, each asserting the exit code,
one error line naming the file or flag, unchanged input hashes, and no temporary file left behind.

Commands run in-process (facedancer.cli.main.main(argv)); every case fails before a model is loaded, so
the whole table takes seconds. Behaviour that needs real work (align's names, shard sets, resume) follows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facedancer.atomic import TEMP_NAME
from facedancer.cli.main import main

# ------------------------------------------------------------------------------------------------
# The workspace: real photos, aligned crops, a real shard set, and a few broken variants.


def _face_crops(count: int) -> list[np.ndarray]:
    """Real face crops: the astronaut's face, shifted and scaled a little (64 x 64)."""
    from photos import astronaut

    image = astronaut()
    crops = []
    for i in range(count):
        top, left, side = 20 + 3 * i, 160 + 4 * i, 200 - 5 * i
        crop = Image.fromarray(image[top : top + side, left : left + side]).resize((64, 64), Image.BILINEAR)
        crops.append(np.asarray(crop))
    return crops


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    from photos import astronaut

    from facedancer.shards import ShardOptions, write_shards

    root = tmp_path_factory.mktemp("safety")
    (root / "photos").mkdir()
    Image.fromarray(astronaut()).save(root / "photos" / "a.jpg", quality=90)
    Image.fromarray(astronaut()[::2, ::2]).save(root / "photos" / "b.png")
    Image.fromarray(astronaut()[:256, 128:384]).save(root / "src.jpg", quality=90)
    (root / "gen.h5").write_bytes(b"\x89HDF\r\n\x1a\n not really a model")
    (root / "arc.h5").write_bytes(b"\x89HDF\r\n\x1a\n not really a model either")
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 stand-in bytes")
    _videos(root)
    (root / "link").symlink_to(root / "photos", target_is_directory=True)
    (root / "out.png").mkdir()  # a folder with an image name
    for identity, crops in (("anna", _face_crops(3)), ("bert", _face_crops(2))):
        (root / "aligned" / identity).mkdir(parents=True)
        for i, crop in enumerate(crops):
            Image.fromarray(crop).save(root / "aligned" / identity / f"{i}.png")
    write_shards(root / "aligned", root / "shards", ShardOptions(data_name="faces", images_per_shard=2), progress=False)
    # a mixed set: a stale shard of an earlier run with another --images_per_shard beside the current set
    (root / "mixed").mkdir()
    for path in (root / "shards").iterdir():
        (root / "mixed" / path.name).write_bytes(path.read_bytes())
    stale = next((root / "shards").glob("faces_train_00000-of-*.records"))
    (root / "mixed" / "faces_train_00000-of-00005.records").write_bytes(stale.read_bytes())
    # a partial set: shards under their final names, no index (a run killed before its commit mark)
    (root / "partial").mkdir()
    for path in sorted((root / "shards").glob("*.records"))[:2]:
        (root / "partial" / path.name).write_bytes(path.read_bytes())
    # runs: one that failed before its first checkpoint (newest), none resumable
    (root / "runs" / "00000-failed").mkdir(parents=True)
    (root / "runs" / "00000-failed" / "options.json").write_text(json.dumps({"arcface_path": "wrong.h5"}))
    return root


def _videos(root: Path) -> None:
    """A real 12-frame clip with audio, and two copies cut off halfway: one with its index (moov) at the front
    (the frames before the cut can be read: --allow_partial applies), one with it at the end (nothing can)."""
    from photos import astronaut
    from videos import truncated_copy, write_video

    frames = [np.ascontiguousarray(np.roll(astronaut()[:128, 192:320], 4 * i, axis=1)) for i in range(12)]
    whole = write_video(root / "whole.mp4", frames)
    truncated_copy(whole, root / "cut.mp4")
    (root / "cut_index_at_end.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])


def _snapshot(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below root (symlinks followed once, as names)."""
    files = {}
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            path = Path(dirpath) / name
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
        for name in dirs:
            files[str((Path(dirpath) / name).relative_to(root)) + "/"] = "dir"
    return files


def _temps(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if TEMP_NAME.match(p.name)]


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code)


@dataclass(frozen=True)
class Case:
    name: str
    argv: str  # {ws} is the workspace folder; split on spaces
    code: int
    message: str  # regex the error line must match
    lines: int | None = 1  # error lines expected (None: at least one)


SWAP = "swap --swap_source {ws}/src.jpg --facedancer_path {ws}/gen.h5 --arcface_path {ws}/arc.h5"
ALIGN = "align --data_dir {ws}/photos"
SHARD = "shard --data_dir {ws}/aligned"
TRAIN = "train --arcface_path {ws}/arc.h5 --log_dir {ws}/runs"
EVAL = "evaluate --source {ws}/src.jpg --target {ws}/photos --swap {ws}/link --no-judge"

CASES = [
    # swap: output over an input, in every spelling
    Case("swap-output-is-target", SWAP + " --target {ws}/photos/a.jpg --output {ws}/photos/a.jpg", 1,
         r"--output .*a\.jpg is the input --target .*--in_place"),
    Case("swap-output-dot-spelling", SWAP + " --target {ws}/photos/a.jpg --output {ws}/photos/./a.jpg", 1,
         r"is the input --target"),
    Case("swap-output-dotdot-spelling", SWAP + " --target {ws}/photos/a.jpg --output {ws}/shards/../photos/a.jpg",
         1, r"is the input --target"),
    Case("swap-output-through-symlink", SWAP + " --target {ws}/photos/a.jpg --output {ws}/link/a.jpg", 1,
         r"is the input --target"),
    Case("swap-folder-output-is-target", SWAP + " --target {ws}/photos --output {ws}/photos/", 1,
         r"--output .*photos/? is the input --target"),
    Case("swap-folder-output-is-symlink", SWAP + " --target {ws}/photos --output {ws}/link", 1,
         r"link is the input --target"),
    Case("swap-folder-output-inside-target", SWAP + " --target {ws}/photos --output {ws}/photos/swapped", 1,
         r"lies inside the input --target"),
    Case("swap-output-contains-target", SWAP + " --target {ws}/photos/a.jpg --output {ws}/photos", 1,
         r"contains the input --target"),
    Case("swap-video-output-is-target", SWAP + " --target {ws}/clip.mp4 --output {ws}/./clip.mp4", 1,
         r"clip\.mp4 is the input --target"),
    Case("swap-output-is-source", SWAP + " --target {ws}/photos/a.jpg --output {ws}/src.jpg", 1,
         r"is the input --swap_source"),
    Case("swap-output-is-model", SWAP + " --target {ws}/photos/a.jpg --output {ws}/gen.h5", 1,
         r"is the input --facedancer_path"),
    Case("swap-in-place-needs-same-path", SWAP + " --target {ws}/photos/a.jpg --output {ws}/x.png --in_place", 1,
         r"--in_place needs --output to be --target"),
    # swap: output path problems found before any work
    Case("swap-unknown-extension", SWAP + " --target {ws}/photos/a.jpg --output {ws}/new/x.txt", 1,
         r"x\.txt has extension '\.txt'; an image output needs one of .*\.png"),
    Case("swap-no-extension", SWAP + " --target {ws}/photos/a.jpg --output {ws}/new/x", 1,
         r"x has no extension"),
    Case("swap-video-to-image-extension", SWAP + " --target {ws}/clip.mp4 --output {ws}/new/x.png", 1,
         r"a video output needs one of .*\.mp4"),
    Case("swap-output-is-a-folder", SWAP + " --target {ws}/photos/a.jpg --output {ws}/out.png", 1,
         r"out\.png is an existing folder"),
    Case("swap-output-under-a-file", SWAP + " --target {ws}/photos/a.jpg --output {ws}/src.jpg/x.png", 1,
         r"src\.jpg is a file, not a folder"),
    Case("swap-folder-output-is-file", SWAP + " --target {ws}/photos --output {ws}/arc.h5", 1,
         r"arc\.h5.*(file|input)"),
    Case("swap-missing-target", SWAP + " --target {ws}/nope.jpg --output {ws}/new/x.png", 1, r"nope\.jpg not found"),
    Case("swap-missing-source", "swap --swap_source {ws}/nope.jpg --facedancer_path {ws}/gen.h5 "
         "--target {ws}/photos/a.jpg --output {ws}/new/x.png", 1, r"source photo not found: .*nope\.jpg"),
    # swap: a truncated video is refused unless --allow_partial (which cannot help when the index is gone)
    Case("swap-truncated-video", SWAP + " --target {ws}/cut.mp4 --output {ws}/o.mp4", 1,
         r"cut\.mp4: the file is damaged or truncated .*; re-export or re-copy it, or pass --allow_partial"),
    Case("swap-truncated-index-gone", SWAP + " --target {ws}/cut_index_at_end.mp4 --output {ws}/o.mp4 "
         "--allow_partial", 1, r"cut_index_at_end\.mp4: not a readable video"),
    # swap: flag ranges
    Case("swap-identity-strength-2", SWAP + " --target {ws}/src.jpg --output {ws}/o.jpg --identity_strength 2", 2,
         r"--identity_strength: must be in \[0\.0, 1\.5\]"),
    Case("swap-anonymize-150", SWAP + " --target {ws}/src.jpg --output {ws}/o.jpg --anonymize 150", 2,
         r"--anonymize: must be in \[0\.0, 100\.0\]"),
    Case("swap-smoothing-1.5", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --smoothing 1.5", 2,
         r"--smoothing: must be in \[0\.0, 1\.0\)"),
    Case("swap-length-0", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --length 0", 2, r"--length"),
    Case("swap-sample-rate-0", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --sample_rate 0", 2,
         r"--sample_rate: must be at least 1"),
    Case("swap-detect-every-0", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --detect_every 0", 2,
         r"--detect_every: must be at least 1"),
    Case("swap-batch-size-neg", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --batch_size -1", 2,
         r"--batch_size"),
    Case("swap-score-nan", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --score nan", 2,
         r"--score: must be a finite number"),
    Case("swap-select-bogus", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --select bogus", 2,
         r"--select: invalid choice"),
    Case("swap-max-pixels-text", SWAP + " --target {ws}/clip.mp4 --output {ws}/o.mp4 --max_pixels lots", 2,
         r"--max_pixels"),
    # align
    Case("align-target-is-data", ALIGN + " --target_dir {ws}/photos/", 1, r"is the input --data_dir"),
    Case("align-target-symlink-to-data", ALIGN + " --target_dir {ws}/link", 1, r"is the input --data_dir"),
    Case("align-target-contains-data", ALIGN + " --target_dir {ws}", 1, r"contains the input --data_dir"),
    Case("align-target-is-file", ALIGN + " --target_dir {ws}/src.jpg", 1, r"src\.jpg is a file"),
    Case("align-missing-data", "align --data_dir {ws}/nope --target_dir {ws}/new", 1, r"nope is not a folder"),
    Case("align-min-size-neg", ALIGN + " --target_dir {ws}/new --min_size -5", 2, r"--min_size: must be at least 0"),
    Case("align-min-face-size-neg", ALIGN + " --target_dir {ws}/new --min_face_size -1", 2,
         r"--min_face_size: must be at least 0"),
    Case("align-score-2", ALIGN + " --target_dir {ws}/new --score 2", 2, r"--score: must be in \[0\.0, 1\.0\]"),
    Case("align-max-side-neg", ALIGN + " --target_dir {ws}/new --max_side -5", 2, r"--max_side: must be at least 0"),
    Case("align-im-size-8", ALIGN + " --target_dir {ws}/new --im_size 8", 2, r"--im_size"),
    Case("align-workers-0", ALIGN + " --target_dir {ws}/new --workers 0", 2, r"--workers"),
    Case("align-faces-bogus", ALIGN + " --target_dir {ws}/new --faces some", 2, r"--faces: invalid choice"),
    # shard
    Case("shard-target-is-data", SHARD + " --target_dir {ws}/aligned", 1, r"is the input --data_dir"),
    Case("shard-target-inside-data", SHARD + " --target_dir {ws}/aligned/anna/out", 1, r"lies inside"),
    Case("shard-older-set-refused", SHARD + " --target_dir {ws}/shards --data_name faces", 1,
         r"already holds a shard set: \d+ faces_\* shard files and faces_index\.json; pass --overwrite"),
    Case("shard-partial-set-refused", SHARD + " --target_dir {ws}/partial --data_name faces", 1,
         r"no index: partial.*--overwrite"),
    Case("shard-no-target", SHARD, 1, r"--data_dir and --target_dir are required"),
    Case("shard-target-is-file", SHARD + " --target_dir {ws}/src.jpg", 1, r"--target_dir .*src\.jpg is a file"),
    Case("shard-images-per-shard-0", SHARD + " --target_dir {ws}/new --images_per_shard 0", 2,
         r"--images_per_shard/--num_shards: must be at least 1"),
    Case("shard-val-fraction-1", SHARD + " --target_dir {ws}/new --val_fraction 1", 2, r"--val_fraction"),
    Case("shard-verify-folder", "shard --verify {ws}/shards", 1, r"shards is a folder; give a glob of shard files"),
    Case("shard-verify-no-match", "shard --verify {ws}/shards/nothing_*.records", 1, r"no shard files match"),
    Case("shard-verify-mixed-set", "shard --verify {ws}/mixed/faces_train_*-of-*.records", 1,
         r"mixed set|not in faces_index\.json", lines=None),
    Case("shard-verify-partial-set", "shard --verify {ws}/partial/faces_train_*-of-*.records", 1,
         r"no index lists this set", lines=None),
    # train: every check happens before a model is built or a run folder made
    Case("train-image-size-neg", TRAIN + " --data_dir x --image_size -64", 2, r"--image_size: must be a multiple"),
    Case("train-config-z", TRAIN + " --data_dir x --config Z", 2, r"--config: unknown preset 'Z'; known: C"),
    Case("train-up-types-bogus", TRAIN + " --data_dir x --up_types bogus", 2, r"unknown fusion type 'bogus'"),
    Case("train-up-types-count", TRAIN + " --data_dir x --up_types affa,affa", 2, r"needs 6 comma-separated"),
    Case("train-batch-0", TRAIN + " --data_dir x --batch_size 0", 2, r"--batch_size"),
    Case("train-same-ratio-2", TRAIN + " --data_dir x --same_ratio 2", 2, r"--same_ratio"),
    Case("train-lr-0", TRAIN + " --data_dir x --lr 0", 2, r"--lr: must be in \(0\.0, inf\)"),
    Case("train-every-0", TRAIN + " --data_dir x --ckpt_every 0", 2, r"--ckpt_every"),
    Case("train-strategy-bogus", TRAIN + " --data_dir x --strategy tpu", 2, r"--strategy: invalid choice"),
    Case("train-data-is-folder", TRAIN + " --data_dir {ws}/shards", 1, r"shards is a folder; give a glob"),
    Case("train-data-no-match", TRAIN + " --data_dir {ws}/shards/none_*.records", 1, r"no shard files match"),
    Case("train-data-mixed-set", TRAIN + " --data_dir {ws}/mixed/faces_train_*-of-*.records", 1,
         r"mixes shards of several runs.*--overwrite"),
    Case("train-data-partial-set", TRAIN + " --data_dir {ws}/partial/faces_train_*-of-*.records", 1,
         r"only 2 of 3 shards exist.*--overwrite"),
    Case("train-missing-arcface", "train --data_dir {ws}/shards/faces_train_*.records --log_dir {ws}/runs "
         "--arcface_path {ws}/nope.h5", 1, r"--arcface_path .*nope\.h5 not found"),
    Case("train-missing-init-from", TRAIN + " --data_dir {ws}/shards/faces_train_*.records --init_from {ws}/g.h5", 1,
         r"--init_from .*g\.h5 not found"),
    Case("train-resume-without-checkpoint", TRAIN + " --data_dir {ws}/shards/faces_train_*.records --resume "
         "--log_name failed", 1, r"no run named 'failed' .* has a checkpoint"),
    Case("train-resume-no-run", TRAIN + " --data_dir {ws}/shards/faces_train_*.records --resume --log_name x", 1,
         r"no run named 'x'"),
    Case("train-resume-not-a-run", TRAIN + " --data_dir {ws}/shards/faces_train_*.records --resume {ws}/photos", 1,
         r"photos is not a training run folder"),
    Case("train-log-dir-is-file", "train --data_dir {ws}/shards/faces_train_*.records --arcface_path {ws}/arc.h5 "
         "--log_dir {ws}/src.jpg/runs", 1, r"--log_dir .*src\.jpg is a file, not a folder"),
    Case("train-load-without-resume", TRAIN + " --data_dir {ws}/shards/faces_train_*.records --load 3", 1,
         r"--load STEP .* with --resume"),
    # evaluate
    Case("evaluate-every-0", EVAL + " --output {ws}/new --every 0", 2, r"--every: must be at least 1"),
    Case("evaluate-every-neg", EVAL + " --output {ws}/new --every -3", 2, r"--every: must be at least 1"),
    Case("evaluate-output-is-swap", EVAL + " --output {ws}/link/", 1, r"is the input --(target|swap)"),
    Case("evaluate-output-contains-source", EVAL + " --output {ws}", 1, r"contains the input --source"),
    Case("evaluate-output-is-file", EVAL + " --output {ws}/arc.h5", 1, r"arc\.h5 is a file, not a folder"),
    Case("evaluate-missing-target", "evaluate --source {ws}/src.jpg --target {ws}/nope --swap {ws}/photos "
         "--output {ws}/new", 1, r"--target .*nope not found"),
    Case("evaluate-missing-video", "evaluate --source {ws}/src.jpg --target_video {ws}/clip.mp4 "
         "--swap_video {ws}/gone.mp4 --output {ws}/new", 1, r"--swap_video .*gone\.mp4 not found"),
    Case("evaluate-truncated-swap-video", "evaluate --source {ws}/src.jpg --target_video {ws}/whole.mp4 "
         "--swap_video {ws}/cut.mp4 --output {ws}/new --no-judge", 1,
         r"cut\.mp4: the file is damaged or truncated .*--allow_partial"),
    # ifsr-margins, demo, info
    Case("ifsr-output-is-encoder", "ifsr-margins --data_dir {ws}/aligned --arcface_path {ws}/arc.h5 "
         "--output {ws}/arc.h5", 1, r"is the input --arcface_path"),
    Case("ifsr-output-inside-data", "ifsr-margins --data_dir {ws}/aligned --arcface_path {ws}/arc.h5 "
         "--output {ws}/aligned/anna/m.json", 1, r"lies inside the input --data_dir"),
    Case("ifsr-output-is-folder", "ifsr-margins --data_dir {ws}/aligned --arcface_path {ws}/arc.h5 "
         "--output {ws}/out.png", 1, r"out\.png is an existing folder"),
    Case("ifsr-max-pairs-0", "ifsr-margins --data_dir {ws}/aligned --arcface_path {ws}/arc.h5 --output {ws}/m.json "
         "--max_pairs 0", 2, r"--max_pairs"),
    Case("demo-steps-0", "demo --output {ws}/new --steps 0", 2, r"--steps: must be at least 1"),
    Case("demo-image-size-50", "demo --output {ws}/new --image_size 50", 2, r"--image_size"),
    Case("demo-output-is-file", "demo --output {ws}/src.jpg", 1, r"src\.jpg is a file"),
    Case("info-missing-model", "info {ws}/nope.keras", 1, r"nope\.keras"),
    # prepare (the Beam pipeline): the align/shard checks, before Beam starts
    Case("prepare-target-is-data", "prepare --data_dir {ws}/photos --target_dir {ws}/photos/ --data_name x", 1,
         r"--target_dir .*photos"),
    Case("prepare-missing-data", "prepare --data_dir {ws}/nope --target_dir {ws}/new", 1, r"nope is not a folder"),
    Case("prepare-detector-threads-neg", "prepare --data_dir {ws}/photos --target_dir {ws}/new --detector_threads -1",
         2, r"--detector_threads: must be at least 0"),
    Case("prepare-score-2", "prepare --data_dir {ws}/photos --target_dir {ws}/new --score 2", 2, r"--score"),
    Case("prepare-unknown-beam-flag-elsewhere", "align --data_dir {ws}/photos --target_dir {ws}/new --runner X", 2,
         r"unrecognized arguments"),
    # serve: flags checked and models found before the server binds
    Case("serve-missing-model", "serve --facedancer_path {ws}/nope.h5 --arcface_path {ws}/arc.h5", 1, r"nope\.h5"),
    Case("serve-workers-0", "serve --facedancer_path {ws}/gen.h5 --arcface_path {ws}/arc.h5 --workers 0", 2,
         r"--workers: must be at least 1"),
    Case("serve-port-out-of-range", "serve --facedancer_path {ws}/gen.h5 --arcface_path {ws}/arc.h5 --port 70000", 2,
         r"--port"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_touches_nothing(case, ws, caplog, capsys):
    before = _snapshot(ws)
    argv = [arg.replace("{ws}", str(ws)) for arg in case.argv.split(" ")]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        code = run_cli(argv)
    assert code == case.code, (code, caplog.text, capsys.readouterr().err[-2000:])
    if case.code == 2:  # argparse: usage, then one line naming the flag
        err = capsys.readouterr().err.strip().splitlines()
        assert re.search(case.message, err[-1]), err[-1]
        assert re.match(rf"facedancer {argv[0]}: error: (argument|unrecognized arguments)", err[-1]), err[-1]
    else:
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert "Traceback" not in caplog.text
        if case.lines is not None:
            assert len(errors) == case.lines, errors
            assert "\n" not in errors[0]
        assert any(re.search(case.message, line) for line in errors), errors
    assert _snapshot(ws) == before, "an input changed or an output appeared"
    assert not _temps(ws)


def test_every_command_has_bad_input_cases():
    from facedancer.cli.main import SUBCOMMANDS, build_parser

    names = {case.argv.split(" ")[0] for case in CASES}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == names and len(names) == len(SUBCOMMANDS)


# ------------------------------------------------------------------------------------------------
# align: no two photos map to one crop


def test_align_keeps_both_photos_whose_names_differ_in_extension(detector, tmp_path):
    from photos import astronaut

    from facedancer.align_dataset import NAMES_JSON, AlignOptions, align_dataset

    data = tmp_path / "photos"
    data.mkdir()
    image = astronaut()
    Image.fromarray(image).save(data / "face.jpg", quality=92)
    Image.fromarray(image[:, ::-1]).save(data / "face.png")  # another photo: mirrored
    options = AlignOptions(im_size=64, min_size=32, workers=1)
    out = tmp_path / "aligned"
    summary = align_dataset(data, out, options, detector=detector, progress=False)
    crops = sorted(p.name for p in out.glob("*.png"))
    assert crops == ["face_jpg.png", "face_png.png"]
    assert summary.written == 2
    names = json.loads((out / NAMES_JSON).read_text())
    assert names == {"face.jpg": "face_jpg.png", "face.png": "face_png.png"}
    report = json.loads((out / "crop_align_report.json").read_text())
    assert report["renamed"] == names and report["counts"]["written"] == 2
    a, b = (np.asarray(Image.open(out / n)) for n in crops)
    assert np.abs(a.astype(int) - b[:, ::-1].astype(int)).mean() < 40  # the two crops hold the two photos
    assert np.abs(a.astype(int) - b.astype(int)).mean() > np.abs(a.astype(int) - b[:, ::-1].astype(int)).mean()

    # A rerun finds both done; a third photo with the same stem gets its own name, old names stay.
    Image.fromarray(image[::-1]).save(data / "face.webp")
    again = align_dataset(data, out, options, detector=detector, progress=False)
    assert again.already_done == 2
    assert json.loads((out / NAMES_JSON).read_text())["face.jpg"] == "face_jpg.png"
    assert (out / "face_webp.png").exists() or again.no_face == 1
    assert not _temps(out)


# ------------------------------------------------------------------------------------------------
# shards: a run owns its set; the index is the commit mark


def _shard_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["shard", "--data_dir", str(data), "--target_dir", str(out), "--data_name", "faces", *extra]


def test_reshard_with_overwrite_replaces_the_whole_set_and_verify_agrees(ws, tmp_path, caplog):
    out = tmp_path / "shards"
    assert run_cli(_shard_argv(ws / "aligned", out, "--images_per_shard", "1")) == 0
    assert len(list(out.glob("faces_train_*-of-00005.records"))) == 5
    assert run_cli(_shard_argv(ws / "aligned", out, "--images_per_shard", "5")) == 1  # refused, set untouched
    assert len(list(out.glob("faces_train_*.records"))) == 5
    assert run_cli(_shard_argv(ws / "aligned", out, "--images_per_shard", "5", "--overwrite")) == 0
    assert sorted(p.name for p in out.glob("faces_train_*.records")) == ["faces_train_00000-of-00001.records"]
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert run_cli(["shard", "--verify", str(out / "faces_train_*-of-*.records")]) == 0
    assert "match their index: 5 records" in caplog.text

    # a record count that disagrees with the index (a shard swapped for another run's) fails verify
    index = json.loads((out / "faces_index.json").read_text())
    index["splits"]["train"]["shards"]["faces_train_00000-of-00001.records"] = 7
    (out / "faces_index.json").write_text(json.dumps(index))
    caplog.clear()
    assert run_cli(["shard", "--verify", str(out / "faces_train_*-of-*.records")]) == 1
    assert "5 records, its index lists 7" in caplog.text


def test_unindexed_sets_of_the_original_code_verify_with_allow_unindexed(ws):
    pattern = str(ws / "partial" / "faces_train_*-of-*.records")
    assert run_cli(["shard", "--verify", pattern]) == 1
    assert run_cli(["shard", "--verify", pattern, "--allow_unindexed"]) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_sharding_leaves_no_shard_and_no_temp_file(sig, ws, tmp_path, monkeypatch):
    """A real SIGTERM or Ctrl-C (SIGINT), delivered while the third record is written: nothing is left under
    final names, no temp file, exit 143 / 130."""
    import facedancer.shards as shards

    real, calls = shards.encode_example, []
    before = signal.getsignal(sig)

    def encode_then_terminate(*args):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), sig)
        return real(*args)

    monkeypatch.setattr(shards, "encode_example", encode_then_terminate)
    out = tmp_path / "shards"
    assert run_cli(_shard_argv(ws / "aligned", out, "--images_per_shard", "1")) == 128 + sig
    assert len(calls) == 3
    assert sorted(p.name for p in out.iterdir()) == []
    assert signal.getsignal(sig) is before  # the CLI put the handler back


def test_images_tensorflow_cannot_decode_are_packed_as_png(ws, tmp_path):
    import tensorflow as tf

    from facedancer.shards import decode_example

    data = tmp_path / "tiffs" / "anna"
    data.mkdir(parents=True)
    crops = _face_crops(2)
    for i, crop in enumerate(crops):
        Image.fromarray(crop).save(data / f"{i}.tif")
    out = tmp_path / "shards"
    assert run_cli(_shard_argv(tmp_path / "tiffs", out, "--no-shuffle")) == 0
    index = json.loads((out / "faces_index.json").read_text())
    assert [c["path"] for c in index["converted"]] == ["anna/0.tif", "anna/1.tif"]
    assert run_cli(["shard", "--verify", str(out / "faces_train_*-of-*.records")]) == 0
    records = [decode_example(r.numpy()) for r in tf.data.TFRecordDataset(str(next(out.glob("*.records"))))]
    for record, crop in zip(records, crops, strict=True):
        assert record["face"].startswith(b"\x89PNG") and record["path"].endswith(".tif")
        np.testing.assert_array_equal(tf.io.decode_image(record["face"], channels=3).numpy(), crop)  # lossless


# ------------------------------------------------------------------------------------------------
# temporary files: swept on the next run


def test_stale_temp_files_of_dead_processes_are_swept(tmp_path):
    from facedancer.images import write_image

    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".face.tmp-999999999.png"  # no such pid
    dead.write_bytes(b"half a png")
    alive = out / f".other.tmp-{os.getppid()}.png"  # a live process's file stays
    alive.write_bytes(b"in progress")
    write_image(out / "face.png", np.zeros((8, 8, 3), np.uint8))
    assert not dead.exists() and alive.exists()
    assert (out / "face.png").exists()


def test_max_pixels_refuses_large_photos_naming_the_flag(tmp_path, caplog):
    from facedancer.images import DEFAULT_MAX_PIXELS, ImageReadError, read_image, set_max_pixels

    assert DEFAULT_MAX_PIXELS >= 108_000_000  # today's phone photos pass by default
    path = tmp_path / "wide.png"
    Image.new("L", (4000, 3000)).save(path)  # 12 MP
    try:
        set_max_pixels(10_000_000)
        with pytest.raises(ImageReadError, match=r"wide\.png: 12 MP is above --max_pixels 10M.*--max_pixels 12M"):
            read_image(path)
        set_max_pixels(12_000_000)
        assert read_image(path).shape == (3000, 4000, 3)
        set_max_pixels(5_000_000)  # Pillow's own error (above twice its limit) gets the same message
        with pytest.raises(ImageReadError, match=r"12 MP is above --max_pixels 5M"):
            read_image(path)
    finally:
        set_max_pixels(DEFAULT_MAX_PIXELS)


def test_evaluate_warns_about_missing_swaps(ws, tmp_path, caplog):
    from facedancer.evaluation import folder_triples

    swaps = tmp_path / "swaps"
    swaps.mkdir()
    (swaps / "a.jpg").write_bytes((ws / "photos" / "a.jpg").read_bytes())
    with caplog.at_level(logging.WARNING):
        triples = folder_triples(ws / "src.jpg", ws / "photos", swaps)
    assert [t[0] for t in triples] == ["a"]
    assert re.search(r"1 images have no counterpart in .*swaps \(e\.g\. b\)", caplog.text)


# ------------------------------------------------------------------------------------------------
# training runs: resume the newest run with a checkpoint, typed flags win, no debris


def _run_folder(log_dir: Path, name: str, checkpoint: bool, **options) -> Path:
    run = log_dir / name
    (run / "checkpoints").mkdir(parents=True)
    if checkpoint:
        (run / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\n')
    (run / "options.json").write_text(json.dumps(options))
    return run


def test_resume_picks_the_newest_run_with_a_checkpoint(tmp_path):
    from facedancer.errors import FaceDancerError
    from facedancer.training import latest_run_dir

    good = _run_folder(tmp_path, "00000-exp", True)
    _run_folder(tmp_path, "00001-exp", False)  # a failed start
    _run_folder(tmp_path, "00002-other", True)
    assert latest_run_dir(tmp_path, "exp") == good
    elsewhere = tmp_path / "elsewhere"
    _run_folder(tmp_path, "00003-exp", False, chkp_dir=str(elsewhere))
    (elsewhere).mkdir()
    (elsewhere / "checkpoint").write_text("")
    assert latest_run_dir(tmp_path, "exp").name == "00003-exp"
    with pytest.raises(FaceDancerError, match=r"no run named 'nope'"):
        latest_run_dir(tmp_path, "nope")


def test_typed_flags_override_the_resumed_runs_options(caplog):
    from facedancer.cli.train import resumed_options
    from facedancer.errors import FaceDancerError
    from facedancer.train_options import TrainOptions

    saved = {**TrainOptions(arcface_path="wrong.h5", lr=0.5, max_steps=10).__dict__}
    given = TrainOptions(arcface_path="right.h5", max_steps=20, lr=1e-4)
    with caplog.at_level(logging.INFO):
        merged = resumed_options(saved, given, {"arcface_path", "max_steps", "resume"})
    assert (merged.arcface_path, merged.max_steps, merged.lr) == ("right.h5", 20, 0.5)  # lr not typed: saved
    assert "--arcface_path right.h5 overrides the run's saved wrong.h5" in caplog.text
    with pytest.raises(FaceDancerError, match=r"--image_size 128 differs from the resumed run's 256"):
        resumed_options(saved, TrainOptions(image_size=128), {"image_size"})


def test_explicit_options_are_the_typed_ones():
    from facedancer.cli.main import explicit_options

    typed = explicit_options(["train", "--data_dir", "x", "--lr", "0.1", "--resume"])
    assert typed == {"data_dir", "lr", "resume"}


def test_run_numbering_is_exclusive_under_concurrency(tmp_path):
    from facedancer.training import new_run_dir

    made, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        made.append(new_run_dir(tmp_path, "race"))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.name for p in made) == [f"{i:05d}-race" for i in range(8)]


def test_a_failed_start_leaves_no_run_folder(ws, tmp_path, caplog):
    argv = [
        "train",
        "--data_dir",
        str(ws / "shards" / "faces_train_*-of-*.records"),
        "--arcface_path",
        str(ws / "arc.h5"),  # exists, but is not a model: fails while the trainer is built
        "--image_size",
        "64",
        "--log_dir",
        str(tmp_path / "runs"),
        "--p_lambda",
        "0",
    ]
    assert run_cli(argv) == 1
    assert "arc.h5" in caplog.text
    assert list((tmp_path / "runs").iterdir()) == []


def _lock(folder: Path, locked: bool) -> None:
    """Make folder unwritable (root ignores mode bits, not the immutable attribute), or writable again."""
    import subprocess

    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if locked else "-i", str(folder)], check=True)
    else:
        folder.chmod(0o555 if locked else 0o755)


READ_ONLY_CASES = {
    "shard": "shard --data_dir {ws}/aligned --target_dir {locked}/shards",
    "align": "align --data_dir {ws}/photos --target_dir {locked}/aligned",
    "swap": SWAP + " --target {ws}/src.jpg --output {locked}/o.jpg",
    "evaluate": EVAL + " --output {locked}/scores",
    "train": TRAIN.replace("{ws}/runs", "{locked}/runs") + " --data_dir {ws}/shards/faces_train_*-of-*.records",
    "prepare": "prepare --data_dir {ws}/photos --target_dir {locked}/prepared",
    "demo": "demo --quick --out {locked}/demo",
}


@pytest.mark.parametrize("command", sorted(READ_ONLY_CASES))
def test_read_only_output_folder_is_one_line_before_any_work(command, ws, tmp_path, caplog):
    locked = tmp_path / "locked"
    locked.mkdir()
    argv = READ_ONLY_CASES[command].format(ws=ws, locked=locked).split()
    _lock(locked, True)
    try:
        code = run_cli(argv)
    finally:
        _lock(locked, False)
    assert code == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and str(locked) in errors[0], errors
    assert re.search(r"not writable|not permitted|permission denied", errors[0], re.I), errors
    assert list(locked.iterdir()) == []


def test_os_errors_become_one_line_naming_the_file(tmp_path):
    from facedancer.cli.main import os_error_line

    try:
        (tmp_path / "a-folder").mkdir()
        open(tmp_path / "a-folder", "w")  # noqa: SIM115
    except OSError as exc:
        line = os_error_line(exc)
    assert line.startswith(str(tmp_path / "a-folder")) and "it is a folder; give a file path" in line


def test_sigterm_inside_an_atomic_write_removes_the_temp_file(tmp_path):
    """What swap and shard rely on: the CLI turns SIGTERM into an exception, so atomic_path cleans up."""
    import argparse

    from facedancer.atomic import atomic_path
    from facedancer.cli.main import run_command

    seen = []

    def write_then_get_killed(args):
        with atomic_path(tmp_path / "out.mp4") as tmp:
            tmp.write_bytes(b"half a video")
            seen.append(tmp.exists())
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("not reached: SIGTERM raises")

    assert run_command(write_then_get_killed, argparse.Namespace()) == 128 + signal.SIGTERM
    assert seen == [True]
    assert list(tmp_path.iterdir()) == []


def test_evaluate_warns_when_the_videos_differ_in_length(tmp_path, caplog):
    from photos import astronaut
    from videos import write_video

    from facedancer.evaluation import video_triples

    frames = [np.ascontiguousarray(np.roll(astronaut()[:256, 128:384], 4 * i, axis=1)) for i in range(12)]
    write_video(tmp_path / "target.mp4", frames, audio=False)
    write_video(tmp_path / "swap.mp4", frames[:6], audio=False)
    Image.fromarray(frames[0]).save(tmp_path / "src.png")
    with caplog.at_level(logging.WARNING):
        triples = video_triples(tmp_path / "src.png", tmp_path / "target.mp4", tmp_path / "swap.mp4", every=3)
    assert len(triples) == 2
    assert re.search(r"target\.mp4 has 12 frames, .*swap\.mp4 has 6: only the first 6", caplog.text)


@pytest.mark.slow  # ~1.5 min on a busy 2-core CPU (model build, detector, graph rewrite)
def test_in_place_replaces_the_target_only_when_asked(photos, tmp_path):
    """--in_place is the one way to write over the target; the swap then really replaces it (small generator)."""
    from standins import save_arcface_standin

    from facedancer.nn import GeneratorConfig, build_generator

    build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64)).save(tmp_path / "g.keras")
    arcface = save_arcface_standin(tmp_path / "ArcFace-Res50.h5")
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "obama.jpg").write_bytes((photos / "obama.jpg").read_bytes())
    before = _snapshot(folder)
    argv = ["swap", "--target", str(folder), "--output", f"{folder}/", "--swap_source", str(photos / "biden.jpg")]
    argv += ["--facedancer_path", str(tmp_path / "g.keras"), "--arcface_path", str(arcface)]
    assert run_cli(argv) == 1 and _snapshot(folder) == before
    assert run_cli([*argv, "--in_place"]) == 0
    after = _snapshot(folder)
    assert after.keys() == before.keys() and after != before
    assert not _temps(tmp_path)
