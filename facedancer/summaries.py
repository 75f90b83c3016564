"""TensorBoard helpers: image grids of any batch size, and scalar tags named as paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GRID_COLUMNS = ("target", "source", "swap", "self-reconstruction")


def image_grid(columns: list[np.ndarray], max_rows: int = 8) -> np.ndarray:
    """One (1, rows·H, cols·W, 3) image in [0, 1]: a row per sample, a column per array ([-1, 1] inputs)."""
    rows = min(max_rows, columns[0].shape[0])
    strips = [np.concatenate([np.asarray(c[i], np.float32) for c in columns], axis=1) for i in range(rows)]
    grid = np.concatenate(strips, axis=0)
    return np.clip((grid + 1.0) / 2.0, 0.0, 1.0)[None]


def write_scalars(writer, scalars: dict[str, float], step: int) -> None:
    import tensorflow as tf

    with writer.as_default(step=step):
        for tag, value in scalars.items():
            tf.summary.scalar(tag, value)
    writer.flush()


def write_image(writer, tag: str, grid: np.ndarray, step: int, description: str = "") -> None:
    import tensorflow as tf

    with writer.as_default(step=step):
        tf.summary.image(tag, grid, step=step, max_outputs=1, description=description)
    writer.flush()


def read_scalars(log_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar written under log_dir (all event files, sorted), as tag -> [(step, value)] in step order."""
    import tensorflow as tf

    series: dict[str, dict[int, float]] = {}
    for events in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars" or value.HasField("simple_value"):
                    number = value.simple_value if value.HasField("simple_value") else tf.make_ndarray(value.tensor)
                    series.setdefault(value.tag, {})[int(event.step)] = float(number)
    return {tag: sorted(points.items()) for tag, points in sorted(series.items())}
