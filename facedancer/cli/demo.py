"""`facedancer demo`: the end-to-end demo on bundled defaults (the README's main command)."""

from __future__ import annotations

import argparse
import logging

from facedancer.cli import types

log = logging.getLogger("facedancer.demo")


def add_parser(sub) -> None:
    from facedancer.demo import DemoOptions

    d = DemoOptions()
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on sample photos: align, shard, train, export, swap a video, evaluate",
        description="Builds a small dataset from real photos shipped in PyPI packages, trains briefly on the CPU, "
        "swaps a generated video with sound, evaluates it, and writes OUTPUT/report.html.",
    )
    p.add_argument("--output", "--out", dest="output", default=d.output, help=f"output folder ({d.output})")
    p.add_argument(
        "--train_minutes",
        type=types.POSITIVE,
        default=d.train_minutes,
        help=f"training time budget in minutes, the first step's tracing included; the report gives the steps "
        f"done ({d.train_minutes:g}: the whole demo stays under 5 minutes on a 2-core AVX2 CPU)",
    )
    p.add_argument(
        "--steps",
        type=types.POSITIVE_INT,
        default=None,
        help="train exactly this many steps instead of for --train_minutes (reproducible runs)",
    )
    p.add_argument(
        "--image_size", type=types.image_size, default=d.image_size, help=f"training resolution ({d.image_size})"
    )
    p.add_argument("--frames", type=types.POSITIVE_INT, default=d.frames, help=f"frames of the demo video ({d.frames})")
    p.add_argument(
        "--arcface_path",
        help="ArcFace file (default arcface_model/ArcFace-Res50.h5 if present, else a random ArcFace-layout model)",
    )
    p.add_argument("--quick", action="store_true", help="minimal work per stage (what the tests run)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from facedancer.demo import DemoOptions, run_demo
    from facedancer.paths import check_output_folder, refuse_output_over_inputs

    refuse_output_over_inputs(args.output, [("--arcface_path", args.arcface_path)])
    check_output_folder(args.output)

    if args.quick:
        options = DemoOptions.quick(args.output, progress=not args.quiet)
    else:
        options = DemoOptions(
            output=args.output,
            train_minutes=args.train_minutes,
            steps=args.steps,
            image_size=args.image_size,
            frames=args.frames,
            seed=args.seed,
            arcface_path=args.arcface_path,
            progress=not args.quiet,
        )
    report = run_demo(options)
    log.info("demo finished: open %s", report)
    print(report)
    return 0
