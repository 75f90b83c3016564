"""Pasting a generated face back: a soft face mask that follows the landmarks, and colour matching."""

from __future__ import annotations

import functools

import numpy as np

from facedancer.alignment import invert, template, warp


@functools.lru_cache(maxsize=8)
def crop_mask(size: int, feather: float = 0.08) -> np.ndarray:
    """Soft mask (size x size, float32 in [0, 1]) of the face in an aligned crop.

    An ellipse through the template's eye and mouth points (forehead to chin, cheek to cheek),
    feathered by a Gaussian of `feather` × size, so the seam fades into the original skin.
    """
    import cv2

    points = template(size)
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    centre = (eyes + mouth) / 2 + [0, 0.04 * size]
    eye_distance = np.linalg.norm(points[1] - points[0])
    axes = (int(round(1.05 * eye_distance)), int(round(1.45 * np.linalg.norm(mouth - eyes) + 0.1 * size)))
    mask = np.zeros((size, size), np.float32)
    cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))), axes, 0, 0, 360, 1.0, -1)
    sigma = max(feather * size, 0.5)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return np.clip(mask / max(mask.max(), 1e-6), 0.0, 1.0)


def match_colour(generated: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Shift the generated crop's colour statistics (LAB mean/std inside the mask) to the target's skin."""
    import cv2

    weights = mask[..., None].astype(np.float64)
    total = weights.sum()
    if total < 1:
        return generated
    src = cv2.cvtColor(generated, cv2.COLOR_RGB2LAB).astype(np.float64)
    ref = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB).astype(np.float64)

    def stats(lab):
        mean = (lab * weights).sum((0, 1)) / total
        std = np.sqrt((((lab - mean) ** 2) * weights).sum((0, 1)) / total) + 1e-6
        return mean, std

    (m_src, s_src), (m_ref, s_ref) = stats(src), stats(ref)
    out = (src - m_src) / s_src * s_ref + m_ref
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def paste(frame: np.ndarray, crop: np.ndarray, matrix: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend an aligned crop back into `frame` through the inverse of `matrix`, weighted by the crop mask."""
    height, width = frame.shape[:2]
    inverse = invert(matrix)
    face = warp(crop, inverse, (width, height), border="replicate").astype(np.float32)
    alpha = warp(mask, inverse, (width, height))[..., None]
    out = frame.astype(np.float32) * (1.0 - alpha) + face * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
