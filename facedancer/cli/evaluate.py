"""`facedancer evaluate`: identity, pose, expression and reconstruction scores of swaps (folders or videos)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facedancer.cli import types
from facedancer.cli.common import add_max_pixels_flag
from facedancer.errors import FaceDancerError

log = logging.getLogger("facedancer.evaluate")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="score swaps: identity (your encoder and the dlib judge), pose, expression, reconstruction",
        description="Folders: --source, --target and --swap hold files with the same names (swap/X made from "
        "source/X and target/X; --source may be one photo for all). Videos: --target_video and --swap_video "
        "with one --source photo, every --every-th frame. Writes results.json, results.csv and chart.png.",
    )
    p.add_argument("--source", required=True, help="source folder, or one source photo")
    p.add_argument("--target", help="target folder")
    p.add_argument("--swap", help="swap folder")
    p.add_argument("--target_video", help="target (input) video")
    p.add_argument("--swap_video", help="swapped (output) video")
    p.add_argument("--every", type=types.POSITIVE_INT, default=5, help="with videos: evaluate every N-th frame (5)")
    p.add_argument(
        "--allow_partial",
        action="store_true",
        help="with videos: a truncated or damaged --target_video/--swap_video is compared as far as its frames "
        "decode, with a warning (off: refused with exit 1)",
    )
    p.add_argument("--arcface_path", help="your identity encoder for id_cos_* and id_retrieval (optional)")
    p.add_argument(
        "--judge",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use the independent dlib judge (default on; needs dlib-bin + face-recognition-models)",
    )
    p.add_argument("--output", required=True, help="folder for results.json, results.csv and chart.png")
    add_max_pixels_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facedancer.evaluation import (
        Evaluator,
        evaluate_triples,
        folder_triples,
        summary_table,
        video_triples,
        write_reports,
    )
    from facedancer.models import load
    from facedancer.paths import check_output_folder, refuse_output_over_inputs

    source = Path(args.source)
    if not source.exists():
        raise FaceDancerError(f"--source {source} not found; check the path")
    for flag in ("target", "swap", "target_video", "swap_video", "arcface_path"):
        value = getattr(args, flag)
        if value and not Path(value).exists():
            raise FaceDancerError(f"--{flag} {value} not found; check the path")
    inputs = [(f"--{f}", getattr(args, f)) for f in ("source", "target", "swap", "target_video", "swap_video")]
    refuse_output_over_inputs(args.output, [*inputs, ("--arcface_path", args.arcface_path)])
    check_output_folder(args.output)
    if args.target_video or args.swap_video:
        if not (args.target_video and args.swap_video) or source.is_dir():
            raise FaceDancerError("video evaluation needs --target_video, --swap_video and one --source photo")
        triples = video_triples(
            source, Path(args.target_video), Path(args.swap_video), args.every, allow_partial=args.allow_partial
        )
    else:
        if not (args.target and args.swap):
            raise FaceDancerError("give --target and --swap folders (or --target_video and --swap_video)")
        triples = folder_triples(source, Path(args.target), Path(args.swap))
    from facedancer.progress import stage

    with stage("loading the models" + (" and the dlib judge" if args.judge else ""), log):
        identity = load(args.arcface_path, kind="identity").model if args.arcface_path else None
        evaluator = Evaluator(identity, judge=args.judge)
    with stage(f"scoring {len(triples)} (source, target, swap) triples", log):
        result = evaluate_triples(evaluator, triples)
    paths = write_reports(result, Path(args.output))
    print(summary_table(result["summary"]))
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
