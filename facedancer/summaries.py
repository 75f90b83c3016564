"""TensorBoard helpers: image grids of any batch size, and scalar tags named as paths."""

from __future__ import annotations

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
