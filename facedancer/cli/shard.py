"""`facedancer shard` (also dataset/dataset_sharding.py): aligned faces into TFRecord shards; `--verify`."""

from __future__ import annotations

import argparse
import logging

from facedancer.cli import types
from facedancer.cli.common import add_max_pixels_flag
from facedancer.errors import FaceDancerError

log = logging.getLogger("facedancer.shard")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "shard",
        help="write aligned faces (DATASET/identity/images) into TFRecord shards, or --verify shards",
        description="Write NAME_TYPE_XXXXX-of-YYYYY.records shards holding each image's bytes unchanged "
        "('face'), its identity label and relative path, plus NAME_index.json. Images are decoded "
        "first; unreadable ones are skipped and reported, ones TensorFlow cannot decode (TIFF) are packed as PNG. "
        "An older set of the same NAME is refused unless --overwrite; the index is written last. With --verify "
        "GLOB, read every record back and check each set against its index.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data_dir", help="aligned faces: DATASET/identity/images (a flat folder is one identity)")
    p.add_argument("--target_dir", help="output folder for the shards and the index")
    add_naming_flags(p)
    p.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shuffle images across shards (default on; --no-shuffle keeps folder order)",
    )
    add_split_flags(p)
    p.add_argument("--workers", type=types.POSITIVE_INT, default=2, help="threads validating images (2)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier NAME_* shard set in --target_dir (off: such a set is refused)",
    )
    p.add_argument(
        "--verify",
        metavar="GLOB",
        help="instead of writing, read back every record of the shards matching GLOB and check each set against "
        "its NAME_index.json (count, names, records): a partial or mixed set fails",
    )
    p.add_argument(
        "--allow_unindexed",
        action="store_true",
        help="with --verify: accept sets without an index (shards written by the original code)",
    )
    add_max_pixels_flag(p)


def add_naming_flags(p: argparse.ArgumentParser) -> None:
    """Shard file names and sizes (`shard` and `prepare` take the same ones)."""
    p.add_argument("--data_name", default="dataset", help="file name prefix NAME (dataset)")
    p.add_argument("--data_type", default="train", help="split name TYPE in the file names (train)")
    p.add_argument(
        "--images_per_shard",
        "--num_shards",
        dest="images_per_shard",
        type=types.POSITIVE_INT,
        default=1000,
        help="images per shard file (1000); --num_shards is the original's name for it",
    )


def add_split_flags(p: argparse.ArgumentParser) -> None:
    """The validation split by identity (`shard` and `prepare`)."""
    p.add_argument(
        "--val_fraction",
        type=types.float_in(0.0, 1.0, high_open=True),
        default=0.0,
        help="share of identities written as a separate NAME_val_* split (0)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for shuffling and the validation split (0)")


def run(args: argparse.Namespace) -> int:
    if args.verify:
        return verify(args.verify, require_index=not args.allow_unindexed)
    if not args.data_dir or not args.target_dir:
        raise FaceDancerError("--data_dir and --target_dir are required (or --verify GLOB)")
    from facedancer.paths import check_output_folder, refuse_output_over_inputs

    refuse_output_over_inputs(args.target_dir, [("--data_dir", args.data_dir)], "--target_dir")
    check_output_folder(args.target_dir, "--target_dir")
    from facedancer.shards import ShardOptions, write_shards

    options = ShardOptions(
        data_name=args.data_name,
        data_type=args.data_type,
        images_per_shard=args.images_per_shard,
        shuffle=args.shuffle,
        seed=args.seed,
        val_fraction=args.val_fraction,
        workers=args.workers,
        overwrite=args.overwrite,
    )
    from facedancer.progress import stage

    with stage("shard", log) as done:
        report = write_shards(args.data_dir, args.target_dir, options)
        done.note = f"{sum(split['images'] for split in report.splits.values())} images"
    for data_type, split in report.splits.items():
        log.info(
            "%s: %d images of %d identities in %d shards (%s)",
            data_type,
            split["images"],
            len(split["identities"]),
            len(split["shards"]),
            split["glob"],
        )
    if report.skipped:
        log.info(
            "skipped %d unreadable images; see %s/%s_index.json", len(report.skipped), args.target_dir, args.data_name
        )
    if report.converted:
        log.info("%d images TensorFlow cannot decode were packed as PNG (listed in the index)", len(report.converted))
    return 0


def verify(pattern: str, require_index: bool = True) -> int:
    """Read back every record, and check each set against its index; exit 1 naming every problem."""
    from pathlib import Path

    from facedancer.data import resolve_shards
    from facedancer.progress import bar as progress_bar
    from facedancer.shards import ShardError, check_sets, expected_records, verify_shard

    files = resolve_shards(pattern, check_sets=False)
    problems = check_sets([Path(f) for f in files], require_index=require_index)
    for problem in problems:
        log.error("%s", problem)
    damaged, records = [], 0
    for path in progress_bar(files, unit="shard", desc="verifying"):
        try:
            count = verify_shard(path)["records"]
        except ShardError as exc:
            damaged.append(str(exc))
            log.error("%s", exc)
            continue
        records += count
        promised = expected_records(Path(path))
        if promised is not None and promised != count:
            damaged.append(path)
            log.error("%s: %d records, its index lists %d; re-create the set with --overwrite", path, count, promised)
    if damaged or problems:
        log.error("%d of %d shards are damaged; %d set problems", len(damaged), len(files), len(problems))
        return 1
    log.info("all %d shards read back and match their index: %d records", len(files), records)
    return 0
