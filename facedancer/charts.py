"""Small PNG charts drawn with Pillow (no plotting dependency): line charts of training scalars and
bar panels that keep each unit on its own axis."""

from __future__ import annotations

import math
from pathlib import Path

from facedancer.atomic import atomic_path

INK, GRID, LINE, BAR, NEGATIVE = (30, 30, 30), (225, 225, 225), (40, 90, 190), (70, 110, 200), (200, 80, 70)


def _save(image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


def line_chart(points: list[tuple[int, float]], title: str, path: Path, size: tuple[int, int] = (320, 180)) -> Path:
    """One series (step, value) as a line with its first and last step and its value range labelled."""
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 4), title, fill=INK)
    points = [(s, v) for s, v in points if math.isfinite(v)]
    left, right, top, bottom = 52, width - 10, 22, height - 22
    draw.rectangle([left, top, right, bottom], outline=GRID)
    if not points:
        draw.text((left + 8, top + 8), "no values", fill=INK)
        return _save(image, path)
    steps, values = [s for s, _ in points], [v for _, v in points]
    low, high = min(values), max(values)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    first, last = min(steps), max(steps)
    span = max(last - first, 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return (
            left + (right - left) * (step - first) / span,
            bottom - (bottom - top) * (value - low) / (high - low),
        )

    for fraction in (0.25, 0.5, 0.75):
        y = bottom - (bottom - top) * fraction
        draw.line([left + 1, y, right - 1, y], fill=GRID)
    draw.text((4, top - 2), _number(high), fill=INK)
    draw.text((4, bottom - 10), _number(low), fill=INK)
    draw.text((left, bottom + 4), f"step {first}", fill=INK)
    draw.text((right - 70, bottom + 4), f"step {last}", fill=INK)
    coords = [xy(s, v) for s, v in points]
    if len(coords) == 1:
        x, y = coords[0]
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=LINE)
    else:
        draw.line(coords, fill=LINE, width=2)
    return _save(image, path)


def bar_panels(panels: list[tuple[str, list[tuple[str, float, str]]]], title: str, path: Path) -> Path:
    """One panel per unit: (panel title, [(label, value, direction note)]), each panel scaled on its own."""
    from PIL import Image, ImageDraw

    row, width, label_w, bar_w = 24, 760, 300, 340
    height = 34 + sum(30 + row * len(bars) for _, bars in panels)
    image = Image.new("RGB", (width, max(height, 60)), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 8), title, fill=INK)
    y = 34
    for panel_title, bars in panels:
        draw.line([10, y + 2, width - 10, y + 2], fill=GRID)
        draw.text((10, y + 8), panel_title, fill=INK)
        y += 30
        scale = max([abs(v) for _, v, _ in bars if math.isfinite(v)] + [1e-12])
        for label, value, note in bars:
            draw.text((20, y + 5), f"{label} ({note})", fill=INK)
            length = int(bar_w * abs(value) / scale) if math.isfinite(value) else 0
            draw.rectangle([label_w, y + 4, label_w + length, y + row - 5], fill=BAR if value >= 0 else NEGATIVE)
            draw.text((label_w + length + 8, y + 5), _number(value), fill=INK)
            y += row
    return _save(image, path)
