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
