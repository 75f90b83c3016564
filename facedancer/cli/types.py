"""argparse `type=` functions that check a flag's range when the command line is parsed.

A bad value is a usage error (exit 2, one line naming the flag) before any model or data is touched.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _number(text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer >= low."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    """An integer in [low, high]."""

    def parse(text: str) -> int:
        value = _number(text, int)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    parse.__name__ = f"integer in [{low}, {high}]"
    return parse


def float_in(low: float, high: float | None = None, low_open: bool = False, high_open: bool = False):
    """A finite number in the interval low..high (open or closed at each end; high None: unbounded)."""

    def parse(text: str) -> float:
        value = float(_number(text, float))
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        below = value <= low if low_open else value < low
        above = high is not None and (value >= high if high_open else value > high)
        if below or above:
            left, right = "(" if low_open else "[", ")" if high_open or high is None else "]"
            interval = f"{left}{low}, {'inf' if high is None else high}{right}"
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


POSITIVE_INT = int_at_least(1)
NON_NEGATIVE_INT = int_at_least(0)
NON_NEGATIVE = float_in(0.0)
POSITIVE = float_in(0.0, low_open=True)
FRACTION = float_in(0.0, 1.0)


def image_size(text: str) -> int:
    """A generator resolution: a multiple of 32, at least 64 (what the encoder/decoder stride allows)."""
    value = _number(text, int)
    if value < 64 or value % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32 and at least 64, got {value}")
    return value


def megapixels(text: str) -> int:
    """`--max_pixels`: a pixel count, or megapixels written as e.g. 200M / 200MP."""
    raw = text.strip().upper().removesuffix("P").removesuffix("M")
    scale = 1_000_000 if raw != text.strip().upper() else 1
    try:
        value = float(raw) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a pixel count or megapixels like 300M, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive pixel count (e.g. 200M), got {text}")
    return int(value)


def generator_preset(text: str) -> str:
    """`--config`: a known generator preset name (C, c, config_c)."""
    from facedancer.nn.generator import PRESETS, preset

    try:
        preset(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown preset {text!r}; known: {', '.join(sorted(PRESETS))}") from None
    return text


def fusion_types(text: str) -> list[str]:
    """`--up_types`: six comma-separated decoder fusion types."""
    from facedancer.nn.generator import DECODER_CHANNELS, FUSION_TYPES

    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in FUSION_TYPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fusion type {unknown[0]!r}; choose from {', '.join(FUSION_TYPES)}")
    if len(items) != len(DECODER_CHANNELS) + 1:
        raise argparse.ArgumentTypeError(f"needs {len(DECODER_CHANNELS) + 1} comma-separated types, got {len(items)}")
    return items
