"""IFSR margins: the published ones, reading/writing the margins file, and computing margins for an encoder."""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facedancer.atomic import write_text_atomic
from facedancer.errors import FaceDancerError

# The same numbers, so an installed package works without the repository folder.
PUBLISHED = {
    "conv4_block6_out": 0.121357,
    "conv4_block5_out": 0.128827,
    "conv4_block4_out": 0.117972,
    "conv4_block3_out": 0.109391,
    "conv4_block2_out": 0.097296,
    "conv4_block1_out": 0.089046,
    "conv3_block4_out": 0.044928,
    "conv3_block3_out": 0.048719,
    "conv3_block2_out": 0.047487,
    "conv3_block1_out": 0.047970,
    "conv2_block3_out": 0.035144,
}

IFSR_BLOCKS: tuple[str, ...] = tuple(PUBLISHED)  # deepest block first, the published order


@dataclass(frozen=True)
class Margins:
    blocks: tuple[str, ...]
    values: tuple[float, ...]

    def select(self, blocks: list[str] | tuple[str, ...]) -> Margins:
        missing = [b for b in blocks if b not in self.blocks]
        if missing:
            raise FaceDancerError(f"no IFSR margin for block(s) {missing}; margins exist for {', '.join(self.blocks)}")
        lookup = dict(zip(self.blocks, self.values, strict=True))
        return Margins(tuple(blocks), tuple(lookup[b] for b in blocks))


def published() -> Margins:
    return Margins(tuple(PUBLISHED), tuple(PUBLISHED.values()))


def load_margins(path: str | Path | None = None) -> Margins:
    """Margins from a JSON file ({"blocks": [...], "margins": [...]}); None: the published ones."""
    if path is None:
        return published()
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        blocks, values = data["blocks"], data["margins"]
    except FileNotFoundError as exc:
        raise FaceDancerError(f"IFSR margins file not found: {path}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise FaceDancerError(f"{path} is not an IFSR margins file (needs 'blocks' and 'margins' lists)") from exc
    if len(blocks) != len(values):
        raise FaceDancerError(f"{path}: {len(blocks)} blocks but {len(values)} margins")
    return Margins(tuple(blocks), tuple(float(v) for v in values))


def save_margins(margins: Margins, path: str | Path, **extra) -> None:
    path = Path(path)
    data = {**extra, "blocks": list(margins.blocks), "margins": [round(v, 6) for v in margins.values]}
    write_text_atomic(path, json.dumps(data, indent=2))


def same_identity_pairs(groups: dict[str, list], max_pairs: int, seed: int = 0) -> list[tuple]:
    """Up to max_pairs (a, b) pairs of different items within each group, sampled evenly over groups."""
    rng = random.Random(seed)
    per_group = [list(itertools.combinations(items, 2)) for _, items in sorted(groups.items()) if len(items) > 1]
    for pairs in per_group:
        rng.shuffle(pairs)
    out = []
    while len(out) < max_pairs and any(per_group):
        for pairs in per_group:
            if pairs and len(out) < max_pairs:
                out.append(pairs.pop())
    return out


def compute_margins(
    identity_model,
    images_by_identity: dict[str, list[np.ndarray]],
    blocks: list[str],
    max_pairs: int = 2000,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[Margins, int]:
    """Mean per-block cosine distance over same-identity image pairs (112² RGB in [0, 1]); and the pair count."""
    import tensorflow as tf

    from facedancer.identity import feature_model
    from facedancer.losses import cosine_similarity

    features = feature_model(identity_model, blocks)
    keyed = {name: [(name, i) for i in range(len(images))] for name, images in images_by_identity.items()}
    pairs = same_identity_pairs(keyed, max_pairs, seed)
    if not pairs:
        raise FaceDancerError("IFSR margins need at least one identity with two or more images")
    sums = np.zeros(len(blocks))
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        a = np.stack([images_by_identity[n][i] for (n, i), _ in chunk]).astype(np.float32)
        b = np.stack([images_by_identity[n][i] for _, (n, i) in chunk]).astype(np.float32)
        fa, fb = features(a)[1:], features(b)[1:]
        for k, (x, y) in enumerate(zip(fa, fb, strict=True)):
            sums[k] += float(tf.reduce_sum(1.0 - cosine_similarity(x, y)))
    return Margins(tuple(blocks), tuple(float(v) for v in sums / len(pairs))), len(pairs)
