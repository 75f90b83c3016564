"""Photos in every common storage form read as upright 8-bit RGB; bad files raise a clear error."""

import numpy as np
import pytest
from PIL import Image

from facedancer.images import ImageReadError, read_image, write_image


@pytest.fixture(scope="module")
def face(photos):
    return read_image(photos / "obama2.jpg")


def test_exif_rotated_jpeg_reads_upright(face, tmp_path):
    sideways = Image.fromarray(face).rotate(90, expand=True)  # stored turned left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    sideways.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "rot.jpg")
    assert image.shape == face.shape
    assert np.abs(image.astype(float) - face).mean() < 4


@pytest.mark.parametrize("mode", ["CMYK", "L", "RGBA", "P", "I;16"])
def test_modes_become_rgb8(face, tmp_path, mode):
    pil = Image.fromarray(face)
    if mode == "I;16":
        grey = np.asarray(pil.convert("L")).astype(np.uint16) * 257
        pil = Image.fromarray(grey)
        path = tmp_path / "16bit.png"
    elif mode == "RGBA":
        pil = pil.convert("RGBA")
        path = tmp_path / "alpha.png"
    else:
        pil = pil.convert(mode)
        path = tmp_path / f"{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    pil.save(path)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == face.shape
    grey_truth = np.asarray(Image.fromarray(face).convert("L"), float)
    assert np.abs(image.astype(float).mean(2) - grey_truth).mean() < 12


def test_bad_files_raise_with_the_path(photos, tmp_path):
    (tmp_path / "notes.jpg").write_text("not an image")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes((photos / "obama.jpg").read_bytes()[:4000])
    for path, reason in [
        (tmp_path / "notes.jpg", "not an image"),
        (truncated, "unreadable"),
        (tmp_path / "none.png", "not found"),
    ]:
        with pytest.raises(ImageReadError, match=reason) as info:
            read_image(path)
        assert str(path) in str(info.value)


def test_write_image_leaves_no_temporary_files(face, tmp_path):
    write_image(tmp_path / "a" / "b.png", face)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.png"]
    np.testing.assert_array_equal(read_image(tmp_path / "a" / "b.png"), face)
