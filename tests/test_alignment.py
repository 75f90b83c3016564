"""Similarity fits, warps and inverse warps, checked on real photos."""

import cv2
import numpy as np
import pytest
from photos import OBAMA

from facedancer.alignment import (
    align,
    estimate_similarity,
    invert,
    paste_back,
    template,
    transform_points,
)
from facedancer.images import read_image


def test_similarity_fit_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(30), 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = np.random.default_rng(0).uniform(0, 100, (5, 2))
    dst = src @ rot.T + shift
    matrix = estimate_similarity(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)
    np.testing.assert_allclose(transform_points(dst, invert(matrix)), src, atol=1e-9)


def test_similarity_fit_never_reflects():
    src = template(112)
    mirrored = src * [-1, 1]
    matrix = estimate_similarity(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_template_scaling_and_shrink():
    np.testing.assert_allclose(template(224), template(112) * 2)
    shrunk = template(112, 0.5)
    np.testing.assert_allclose(shrunk.mean(0), template(112).mean(0) * 0.5 + 28)


@pytest.mark.parametrize("name", [*OBAMA, "biden.jpg"])
def test_redetected_landmarks_fall_on_the_template(name, photos, detector):
    image = read_image(photos / name)
    face = detector.detect(image)[0]
    crop, _ = align(image, face.landmarks, 256)
    again = detector.detect(crop, max_side=None)
    assert len(again) == 1
    error = np.linalg.norm(again[0].landmarks - template(256), axis=1).mean()
    assert error < 14, f"{name}: re-detected landmarks {error:.1f}px from the template"  # wrong fits give 30+


def _rotate_and_scale(image, degrees, scale):
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)


def test_crops_of_one_photo_match_across_scale_and_rotation(photos, detector):
    image = read_image(photos / "obama.jpg")
    reference, _ = align(image, detector.detect(image)[0].landmarks, 256)
    other_face = read_image(photos / "biden.jpg")
    unrelated, _ = align(other_face, detector.detect(other_face)[0].landmarks, 256)
    baseline = np.abs(reference.astype(float) - unrelated).mean()
    for degrees, scale in [(15, 1.0), (-20, 0.7), (8, 0.85)]:
        moved = _rotate_and_scale(image, degrees, scale)
        crop, _ = align(moved, detector.detect(moved)[0].landmarks, 256)
        diff = np.abs(reference.astype(float) - crop)[32:224, 32:224].mean()
        assert diff < 0.45 * baseline, (degrees, scale, diff, baseline)


def test_inverse_warp_puts_the_crop_back_within_a_pixel(photos, detector):
    image = read_image(photos / "obama2.jpg")
    face = detector.detect(image)[0]
    crop, matrix = align(image, face.landmarks, 512)  # 512² keeps the face's resolution (~260 px wide)
    # Geometry: crop template points map back onto the photo's landmarks' fit exactly.
    back = transform_points(template(512), invert(matrix))
    np.testing.assert_allclose(transform_points(back, matrix), template(512), atol=1e-6)
    assert np.abs(back - face.landmarks).mean() < 0.05 * face.size  # the fit lands on the landmarks
    # Pixels: the pasted-back crop equals the photo inside the face, and a 1 px shift is clearly worse.
    pasted = paste_back(crop, matrix, image.shape).astype(float)
    x1, y1, x2, y2 = face.box.astype(int)
    region = (slice(y1 + 40, y2 - 40), slice(x1 + 40, x2 - 40))
    err = np.abs(pasted[region] - image[region]).mean()
    shifted = np.abs(pasted[region] - np.roll(image, 1, axis=1)[region]).mean()
    assert err < 3.0 and err < 0.6 * shifted, (err, shifted)
