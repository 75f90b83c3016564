"""Flags shared by several sub-commands."""

from __future__ import annotations

import argparse
import os


def add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device_id", type=int, default=None, help="GPU index to use (sets CUDA_VISIBLE_DEVICES); -1 forces the CPU"
    )


def apply_device(args: argparse.Namespace) -> None:
    """Must run before TensorFlow is imported."""
    device = getattr(args, "device_id", None)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = "" if device < 0 else str(device)


def add_max_pixels_flag(p: argparse.ArgumentParser) -> None:
    from facedancer.cli.types import megapixels
    from facedancer.images import DEFAULT_MAX_PIXELS

    p.add_argument(
        "--max_pixels",
        type=megapixels,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help=f"largest photo read, in pixels or megapixels like 300M ({DEFAULT_MAX_PIXELS // 1_000_000}M; "
        "Pillow's own limit, 89M, refuses 108 MP phone photos); a guard against decompression bombs",
    )


def apply_max_pixels(args: argparse.Namespace) -> None:
    limit = getattr(args, "max_pixels", None)
    if limit is not None:
        from facedancer.images import set_max_pixels

        set_max_pixels(limit)
