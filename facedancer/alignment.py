"""Five-point face alignment: the ArcFace template, similarity fits, warps and their inverses."""

from __future__ import annotations

import numpy as np

# ArcFace template at 112x112: left eye, right eye, nose tip, left mouth corner, right mouth corner.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
TEMPLATE_SIZE = 112


def template(size: int, shrink_factor: float = 1.0) -> np.ndarray:
    """Template landmarks for a size x size crop; shrink_factor < 1 pulls them to the centre (more background)."""
    points = ARCFACE_TEMPLATE_112 * shrink_factor + (1.0 - shrink_factor) * TEMPLATE_SIZE / 2
    return points * (size / TEMPLATE_SIZE)


def estimate_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking src points onto dst: 2x3 matrix.

    Closed form (Umeyama 1991): centre both sets, take the SVD of their covariance, reject reflections.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two matching Nx2 point sets (N >= 2), got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s == 0:
        raise ValueError("source points coincide; no similarity transform is defined")
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (sigma * sign).sum() / var_s
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mu_d - matrix[:, :2] @ mu_s
    return matrix


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (crop coordinates back to image coordinates)."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to Nx2 points."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def alignment_matrix(landmarks: np.ndarray, size: int, shrink_factor: float = 1.0) -> np.ndarray:
    """The 2x3 matrix that maps image pixels into the aligned size x size crop."""
    return estimate_similarity(landmarks, template(size, shrink_factor))


def warp(image: np.ndarray, matrix: np.ndarray, size: int | tuple[int, int], border: str = "constant") -> np.ndarray:
    """Warp `image` by a 2x3 matrix into a crop of `size` (an int for square, or (width, height))."""
    import cv2

    width, height = (size, size) if isinstance(size, int) else size
    mode = {"constant": cv2.BORDER_CONSTANT, "reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE}
    if border not in mode:
        raise ValueError(f"border must be one of {sorted(mode)}, got {border!r}")
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=mode[border])


def align(
    image: np.ndarray, landmarks: np.ndarray, size: int = 256, shrink_factor: float = 1.0, border: str = "constant"
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned size x size crop of the face with these five landmarks, and the matrix that made it."""
    matrix = alignment_matrix(landmarks, size, shrink_factor)
    return warp(image, matrix, size, border), matrix


def paste_back(crop: np.ndarray, matrix: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Warp an aligned crop back into image coordinates (zeros outside the crop's footprint)."""
    height, width = image_shape[:2]
    return warp(crop, invert(matrix), (width, height))
