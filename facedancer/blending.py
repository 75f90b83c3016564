"""Pasting a generated face back: a soft face mask that follows the landmarks, and colour matching."""

from __future__ import annotations

import functools

import numpy as np

from facedancer.alignment import invert, template, transform_points, warp


@functools.lru_cache(maxsize=8)
def crop_mask(size: int, feather: float = 0.08) -> np.ndarray:
    """Soft mask (size x size, float32 in [0, 1]) of the face in an aligned crop; exactly 0 along the border.

    An ellipse through the template's eye and mouth points (forehead to chin, cheek to cheek), clipped to
    the crop and feathered by a Gaussian of `feather` × size so the seam fades into the original skin, then
    faded to zero over a band at the crop's edge: the crop's border never shows as a line, whatever the
    feather, crop size or face placement (the original's blurred rectangle also stays inside the crop).
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
    mask = cv2.GaussianBlur(mask, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    mask = mask / max(mask.max(), 1e-6)
    return np.clip(mask * border_fade(size), 0.0, 1.0).astype(np.float32)


def border_fade(size: int, zero: float = 0.03, ramp: float = 0.06) -> np.ndarray:
    """1 inside, 0 on a band of `zero` × size at each edge, with a smooth ramp of `ramp` × size between."""
    distance = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float32)
    band, width = max(2.0, zero * size), max(2.0, ramp * size)
    t = np.clip((distance - band) / width, 0.0, 1.0)
    fade = t * t * (3 - 2 * t)  # smoothstep: no visible edge where the ramp starts or ends
    return np.outer(fade, fade)


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
    """Blend an aligned crop back into `frame` through the inverse of `matrix`, weighted by the crop mask.

    Only the crop's footprint in the frame is warped and blended; the rest of the frame is copied.
    """
    height, width = frame.shape[:2]
    size = crop.shape[0]
    inverse = invert(matrix)
    corners = transform_points(np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64), inverse)
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - 1, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [width, height])
    out = frame.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    shifted = inverse.copy()
    shifted[:, 2] -= (x0, y0)  # warp straight into the region of interest
    face = warp(crop, shifted, (x1 - x0, y1 - y0), border="replicate").astype(np.float32)
    alpha = warp(mask, shifted, (x1 - x0, y1 - y0))[..., None]
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region * (1.0 - alpha) + face * alpha + 0.5, 0, 255).astype(np.uint8)
    return out
