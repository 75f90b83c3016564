"""`facedancer align` (also dataset/crop_align.py): detect and align the faces of a photo dataset."""

from __future__ import annotations

import argparse
import logging

from facedancer.cli import types
from facedancer.cli.common import add_device_flag, add_max_pixels_flag

log = logging.getLogger("facedancer.align")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "align",
        help="detect and align faces of a dataset (DATASET/identity/image) into aligned PNG crops",
        description="Detect faces with RetinaFace, align them to the ArcFace 5-point template, and write "
        "PNG crops under --target_dir with the same relative paths (photos whose names differ only in the "
        "extension keep it: face_jpg.png, face_png.png; crop_align_names.json records the mapping). Re-running "
        "resumes: existing crops and files the last run skipped (with the same options) are not processed again.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data_dir", required=True, help="input tree DATASET/identity/image (a flat folder works too)")
    p.add_argument("--target_dir", required=True, help="output folder for the aligned PNG crops and the report")
    add_align_flags(p)
    p.add_argument(
        "--workers", type=types.POSITIVE_INT, default=2, help="threads decoding photos ahead of detection (2)"
    )
    add_device_flag(p)


def add_align_flags(p: argparse.ArgumentParser) -> None:
    """The crop and detection flags (`align` and `prepare` take the same ones)."""
    from facedancer.align_dataset import FACE_MODES, AlignOptions

    d = AlignOptions()
    p.add_argument(
        "--im_size", type=types.int_at_least(16), default=256, help="side of the aligned square crop in pixels (256)"
    )
    p.add_argument(
        "--min_size",
        type=types.NON_NEGATIVE_INT,
        default=128,
        help="skip photos whose width or height is not above this many pixels, as the original (128)",
    )
    p.add_argument(
        "--min_face_size",
        type=types.NON_NEGATIVE_INT,
        default=0,
        help="also skip faces whose detected box is smaller than this many pixels in the photo (0: off)",
    )
    p.add_argument(
        "--shrink_factor",
        type=types.float_in(0.0, 2.0, low_open=True),
        default=1.0,
        help="template scale; below 1 keeps more background around the face (1.0)",
    )
    p.add_argument(
        "--faces",
        choices=FACE_MODES,
        default=d.faces,
        help="which faces to keep: first = the detector's best-scored face, as the original; largest; all "
        "(name_0, name_1 …); or skip-multi = skip photos with several (first)",
    )
    p.add_argument(
        "--score",
        type=types.FRACTION,
        default=d.score,
        help="minimum detection score, 0.5..1; the detector itself drops faces below 0.5, and the original "
        f"keeps everything it returns ({d.score})",
    )
    p.add_argument(
        "--max_side",
        type=types.NON_NEGATIVE_INT,
        default=d.max_side,
        help="detect on a copy downscaled so its longer side is at most this; 0 = full size, as the original "
        f"({d.max_side}; 640 is ~3x faster on large photos, a deviation)",
    )
    add_max_pixels_flag(p)


def run(args: argparse.Namespace) -> int:
    from facedancer.align_dataset import AlignOptions, align_dataset

    options = AlignOptions(
        im_size=args.im_size,
        min_size=args.min_size,
        min_face_size=args.min_face_size,
        shrink_factor=args.shrink_factor,
        faces=args.faces,
        score=args.score,
        max_side=args.max_side,
        workers=args.workers,
    )
    from facedancer.progress import stage

    with stage("align", log) as done:
        summary = align_dataset(args.data_dir, args.target_dir, options)
        counts = summary.counts()
        done.note = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in counts.items())
    if summary.skipped:
        log.info("skipped files and reasons: %s/crop_align_skipped.csv", args.target_dir)
    return 0
