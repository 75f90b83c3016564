"""`facedancer prepare`: photos to aligned crops to TFRecord shards as one Apache Beam pipeline (any runner)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields

from facedancer.cli import types
from facedancer.cli.align import add_align_flags
from facedancer.cli.common import add_device_flag
from facedancer.cli.shard import add_naming_flags, add_split_flags

log = logging.getLogger("facedancer.prepare")

RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner", "PrismRunner")
# Flags here that Beam's PipelineOptions also reads (handed on to it as well).
BEAM_FLAGS = ("runner",)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prepare",
        help="align and shard a photo dataset in one Apache Beam pipeline (DirectRunner, Dataflow, Flink, Spark)",
        description="One Apache Beam pipeline from photos (DATASET/identity/image, local or any filesystem Beam "
        "reads, e.g. gs://) to NAME_TYPE_XXXXX-of-YYYYY.records shards: the same crops, records, labels and "
        "split as `align` then `shard`. Aligned PNGs go to TARGET/aligned; the skip report and NAME_index.json "
        "to TARGET. A rerun resumes. Flags this command does not know are Beam pipeline options "
        "(--direct_num_workers, --project, --region, --temp_location, --spark_master_url …).",
        epilog="Needs Apache Beam: pip install 'facedancer[beam]'.",
    )
    add_arguments(p)
    p.set_defaults(func=run, pipeline_args_allowed=True)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data_dir", required=True, help="input photos DATASET/identity/image: a folder or gs://… URL")
    p.add_argument(
        "--target_dir", required=True, help="output: shards, NAME_index.json, the skip report, aligned/ crops"
    )
    add_naming_flags(p)
    add_split_flags(p)
    add_align_flags(p)
    p.add_argument(
        "--crops",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write the aligned PNGs to TARGET/aligned (default on; a rerun reads them back instead of "
        "detecting again; --no-crops keeps only the shards)",
    )
    p.add_argument(
        "--detector_threads",
        type=types.NON_NEGATIVE_INT,
        default=1,
        help="TensorFlow threads per worker process; runners start one process per core (1; 0: all cores)",
    )
    p.add_argument(
        "--runner",
        default="DirectRunner",
        choices=RUNNERS,
        help="Beam runner (DirectRunner); its own options follow as further flags",
    )
    add_device_flag(p)


def _dataclass_from(cls, args: argparse.Namespace, **extra):
    """Build an options dataclass from the flags of the same names (new option fields follow by name)."""
    values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
    return cls(**{**values, **extra})


def run(args: argparse.Namespace) -> int:
    from facedancer.align_dataset import AlignOptions
    from facedancer.prepare import PrepareOptions, prepare
    from facedancer.shards import ShardOptions

    if "://" not in args.data_dir and "://" not in args.target_dir:  # local: align's folder checks, before Beam
        from pathlib import Path

        from facedancer.align_dataset import check_folders

        check_folders(Path(args.data_dir), Path(args.target_dir))
    if not getattr(args, "verbose", False):
        logging.getLogger("apache_beam").setLevel(logging.WARNING)  # its import and runner chatter
    options = PrepareOptions(
        align=_dataclass_from(AlignOptions, args),
        shards=_dataclass_from(ShardOptions, args, shuffle=True),
        crops=args.crops,
        detector_threads=args.detector_threads,
        max_pixels=args.max_pixels,
    )
    pipeline_args = [f"--{name}={getattr(args, name)}" for name in BEAM_FLAGS] + list(args.pipeline_args or [])
    result = prepare(args.data_dir, args.target_dir, options, pipeline_args)
    log.info(
        "pipeline %s; counters: %s", result.state, ", ".join(f"{k} {v}" for k, v in sorted(result.counters.items()))
    )
    if result.index is not None:
        for data_type, split in result.index["splits"].items():
            log.info(
                "%s: %d images of %d identities in %d shards (%s)",
                data_type,
                split["images"],
                len(split["identities"]),
                len(split["shards"]),
                split["glob"],
            )
        counts = result.index["align"]["counts"]
        log.info("photos: %s", ", ".join(f"{k.replace('_', '-')} {v}" for k, v in counts.items()))
        if any(counts[k] for k in ("no_face", "small_image", "small_face", "multi_face", "unreadable")):
            log.info("skipped files and reasons: %s/crop_align_skipped.csv", args.target_dir)
    return 0
