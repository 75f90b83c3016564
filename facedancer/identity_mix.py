"""What identity the generator is asked to paint on a face: the source's, the target's own, a blend, or a
synthetic one (anonymisation). Pure functions on the encoder's embeddings, one row per face.

- `blend(source, target, strength)`: strength 0 is the target's own embedding (G reconstructs the face),
  1 the source's (the plain swap), values between interpolate and values above 1 (up to 1.5) push past the
  source, away from the target.
- `anonymize(target, percent, seed)`: the target's embedding moved `percent` of the way towards a fixed random
  direction scaled to the target's length, so 100 gives every face the same made-up identity and the distance
  from the target grows monotonically with the percentage (as the original's web demo slider does).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facedancer.errors import FaceDancerError

MAX_STRENGTH = 1.5
DEFAULT_ANONYMIZE_SEED = 0


def blend(source: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """(1 - strength) * target + strength * source, rows broadcast: (512,) or (N, 512) each."""
    source, target = np.asarray(source, np.float32), np.asarray(target, np.float32)
    return ((1.0 - strength) * target + strength * source).astype(np.float32)


def random_direction(size: int = 512, seed: int = DEFAULT_ANONYMIZE_SEED) -> np.ndarray:
    """A unit vector drawn from a seeded normal distribution: the same synthetic identity every run."""
    vector = np.random.default_rng(seed).standard_normal(size)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def anonymize(target: np.ndarray, percent: float, seed: int = DEFAULT_ANONYMIZE_SEED) -> np.ndarray:
    """Each row moved percent/100 of the way from itself to the random direction at the row's own length."""
    target = np.asarray(target, np.float32)
    rows = np.atleast_2d(target)
    direction = random_direction(rows.shape[-1], seed)
    lengths = np.linalg.norm(rows, axis=-1, keepdims=True)
    weight = percent / 100.0
    out = (1.0 - weight) * rows + weight * lengths * direction
    return out.reshape(target.shape).astype(np.float32)


@dataclass(frozen=True)
class IdentityMix:
    """Per-face identity options: strength (1 = plain swap) and anonymize percent (None = off)."""

    strength: float = 1.0
    anonymize: float | None = None
    seed: int = DEFAULT_ANONYMIZE_SEED

    def __post_init__(self):
        check(self.strength, self.anonymize)

    @property
    def needs_target(self) -> bool:
        """Whether each face's own embedding enters the mix (otherwise every face gets the source)."""
        return self.strength != 1.0 or self.anonymize is not None

    @property
    def needs_source(self) -> bool:
        return self.anonymize is None

    def __call__(self, source: np.ndarray | None, targets: np.ndarray) -> np.ndarray:
        """The embeddings (N, 512) to feed the generator for faces whose own embeddings are `targets`."""
        if self.anonymize is not None:
            return anonymize(targets, self.anonymize, self.seed)
        if source is None:
            raise FaceDancerError("set the source identity first (set_source)")
        return blend(source, targets, self.strength)


def check(strength: float, anonymize_percent: float | None) -> None:
    """One-line errors for values outside the documented ranges."""
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise FaceDancerError(f"--identity_strength must be in [0, {MAX_STRENGTH}], got {strength}")
    if anonymize_percent is not None and not 0.0 <= anonymize_percent <= 100.0:
        raise FaceDancerError(f"--anonymize is a percentage in [0, 100], got {anonymize_percent}")
