"""`facedancer evaluate`: identity, pose, expression and reconstruction scores of swaps (folders or videos)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facedancer.errors import FaceDancerError

log = logging.getLogger("facedancer.evaluate")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


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
    p.add_argument("--every", type=int, default=5, help="with videos: evaluate every N-th frame (5)")
    p.add_argument("--arcface_path", help="your identity encoder for id_cos_* and id_retrieval (optional)")
    p.add_argument(
        "--judge",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use the independent dlib judge (default on; needs dlib-bin + face-recognition-models)",
    )
    p.add_argument("--output", required=True, help="folder for results.json, results.csv and chart.png")
    p.set_defaults(func=run)


def _images(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def folder_triples(source: Path, target: Path, swap: Path) -> list:
    from facedancer.images import read_image

    targets, swaps = _images(target), _images(swap)
    sources = _images(source) if source.is_dir() else None
    names = sorted(set(targets) & set(swaps) & (set(sources) if sources is not None else set(targets)))
    if not names:
        raise FaceDancerError(f"no file names common to {source}, {target} and {swap}")
    single = None if sources is not None else read_image(source)
    return [
        (n, single if single is not None else read_image(sources[n]), read_image(targets[n]), read_image(swaps[n]))
        for n in names
    ]


def video_triples(source: Path, target_video: Path, swap_video: Path, every: int) -> list:
    from facedancer.images import read_image
    from facedancer.video import probe, read_frames

    photo = read_image(source)
    a, b = probe(target_video), probe(swap_video)
    triples = []
    for i, (t, s) in enumerate(zip(read_frames(a, every=every), read_frames(b, every=every), strict=False)):
        triples.append((f"frame_{i * every:06d}", photo, t, s))
    if not triples:
        raise FaceDancerError(f"{target_video} / {swap_video}: no frames to compare")
    return triples


def run(args: argparse.Namespace) -> int:
    from facedancer.evaluation import Evaluator, evaluate_triples, summary_table, write_reports
    from facedancer.models import load

    source = Path(args.source)
    if not source.exists():
        raise FaceDancerError(f"source not found: {source}")
    if args.target_video or args.swap_video:
        if not (args.target_video and args.swap_video) or source.is_dir():
            raise FaceDancerError("video evaluation needs --target_video, --swap_video and one --source photo")
        triples = video_triples(source, Path(args.target_video), Path(args.swap_video), args.every)
    else:
        if not (args.target and args.swap):
            raise FaceDancerError("give --target and --swap folders (or --target_video and --swap_video)")
        triples = folder_triples(source, Path(args.target), Path(args.swap))
    identity = load(args.arcface_path, kind="identity").model if args.arcface_path else None
    result = evaluate_triples(Evaluator(identity, judge=args.judge), triples)
    paths = write_reports(result, Path(args.output))
    print(summary_table(result["summary"]))
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return 0
