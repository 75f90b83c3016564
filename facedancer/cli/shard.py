"""`facedancer shard` (also dataset/dataset_sharding.py): aligned faces into TFRecord shards; `--verify`."""

from __future__ import annotations

import argparse
import logging

from facedancer.errors import FaceDancerError

log = logging.getLogger("facedancer.shard")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "shard",
        help="write aligned faces (DATASET/identity/images) into TFRecord shards, or --verify shards",
        description="Write NAME_TYPE_XXXXX-of-YYYYY.records shards holding each image's bytes unchanged "
        "('face'), its identity label and relative path, plus NAME_index.json. Images are decoded "
        "first; unreadable ones are skipped and reported. With --verify GLOB, read every record back.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data_dir", help="aligned faces: DATASET/identity/images (a flat folder is one identity)")
    p.add_argument("--target_dir", help="output folder for the shards and the index")
    p.add_argument("--data_name", default="dataset", help="file name prefix NAME (dataset)")
    p.add_argument("--data_type", default="train", help="split name TYPE in the file names (train)")
    p.add_argument(
        "--images_per_shard",
        "--num_shards",
        dest="images_per_shard",
        type=int,
        default=1000,
        help="images per shard file (1000); --num_shards is the original's name for it",
    )
    p.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shuffle images across shards (default on; --no-shuffle keeps folder order)",
    )
    p.add_argument(
        "--val_fraction", type=float, default=0.0, help="share of identities written as a separate NAME_val_* split (0)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for shuffling and the validation split (0)")
    p.add_argument("--workers", type=int, default=2, help="threads validating images (2)")
    p.add_argument(
        "--verify", metavar="GLOB", help="instead of writing, read back every record of the shards matching GLOB"
    )


def run(args: argparse.Namespace) -> int:
    if args.verify:
        return verify(args.verify)
    if not args.data_dir or not args.target_dir:
        raise FaceDancerError("--data_dir and --target_dir are required (or --verify GLOB)")
    from facedancer.shards import ShardOptions, write_shards

    options = ShardOptions(
        data_name=args.data_name,
        data_type=args.data_type,
        images_per_shard=args.images_per_shard,
        shuffle=args.shuffle,
        seed=args.seed,
        val_fraction=args.val_fraction,
        workers=args.workers,
    )
    report = write_shards(args.data_dir, args.target_dir, options)
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
    return 0


def verify(pattern: str) -> int:
    from facedancer.data import resolve_shards
    from facedancer.progress import bar as progress_bar
    from facedancer.shards import ShardError, verify_shard

    files = resolve_shards(pattern)
    damaged, records = [], 0
    for path in progress_bar(files, unit="shard", desc="verifying"):
        try:
            records += verify_shard(path)["records"]
        except ShardError as exc:
            damaged.append(str(exc))
            log.error("%s", exc)
    if damaged:
        log.error("%d of %d shards are damaged", len(damaged), len(files))
        return 1
    log.info("all %d shards read back: %d records", len(files), records)
    return 0
