"""The paste mask is zero along the whole border of the aligned crop (so a pasted face never leaves a seam
where the crop ends) while it still covers the face from forehead to chin and cheek to cheek."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facedancer.alignment import align
from facedancer.blending import crop_mask


@settings(max_examples=40, deadline=None)
@given(st.integers(32, 512), st.floats(0.0, 0.5))
def test_mask_is_zero_along_the_border_and_covers_the_face(size, feather):
    mask = crop_mask(size, feather)
    band = max(2, int(0.03 * size))
    assert mask.shape == (size, size) and mask.dtype == np.float32
    for edge in (mask[:band], mask[-band:], mask[:, :band], mask[:, -band:]):
        assert edge.max() == 0.0
    centre = size // 2
    assert mask[centre, centre] > 0.95
    assert mask[int(0.25 * size), centre] > 0.5  # forehead
    assert mask[int(0.85 * size), centre] > 0.5  # chin
    assert min(mask[centre, int(0.25 * size)], mask[centre, int(0.75 * size)]) > 0.3  # cheeks


@pytest.fixture(scope="module", params=[0.0, 0.08, 0.3], ids=lambda f: f"feather{f}")
def swapper(detector, request):
    from standins import pixel_identity_encoder

    from facedancer.nn import GeneratorConfig, build_generator
    from facedancer.swap import FaceSwapper, SwapOptions

    generator = build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64))
    return FaceSwapper(generator, pixel_identity_encoder(), detector, SwapOptions(feather=request.param))


def _images(photos):
    from photos import astronaut
    from videos import two_people_frames

    from facedancer.images import read_image

    yield "obama", read_image(photos / "obama.jpg")
    yield "biden", read_image(photos / "biden.jpg")
    yield "astronaut", astronaut()
    yield "two people", two_people_frames(photos / "obama2.jpg", photos / "biden.jpg", count=1)[0]


def test_swapped_photos_are_unchanged_along_each_face_crop_border(swapper, photos):
    """Swap real photos with a random generator; warp input and output into each face's aligned crop: the
    border band is unchanged, the centre changed."""
    swapper.set_source(photos / "obama3.jpg")
    size = swapper.crop_size
    ring = np.zeros((size, size), bool)
    ring[:2], ring[-2:], ring[:, :2], ring[:, -2:] = True, True, True, True
    centre = (slice(size // 3, 2 * size // 3),) * 2
    for name, image in _images(photos):
        faces = swapper.select(image, swapper.detect(image))
        assert faces, name
        out = swapper.swap(image)
        for face in faces:
            before, matrix = align(image, face.landmarks, size)
            after, _ = align(out, face.landmarks, size)
            diff = np.abs(before.astype(float) - after).mean(axis=2)
            assert diff[ring].mean() < 0.5, f"{name}: the crop border shows ({diff[ring].mean():.2f} levels)"
            assert diff[ring].max() < 2.0, f"{name}: the crop border changes by {diff[ring].max():.1f} levels"
            assert diff[centre].mean() > 5.0, f"{name}: the face was not replaced"
