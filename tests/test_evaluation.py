"""Evaluation on real photos with the independent dlib judge."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from facedancer.evaluation import Evaluator, evaluate_triples, expression_distance, in_plane_roll
from facedancer.images import read_image, write_image


@pytest.fixture(scope="module")
def evaluator(detector):
    from standins import pixel_identity_encoder

    return Evaluator(pixel_identity_encoder(), judge=True, detector=detector)


def test_identical_images_score_as_identical(evaluator, photos):
    image = read_image(photos / "obama2.jpg")
    result = evaluate_triples(evaluator, [("same", image, image, image)])
    item = result["items"][0]
    assert item["id_cos_source"] == pytest.approx(1.0, abs=1e-5)
    assert item["judge_dist_source"] == pytest.approx(0.0, abs=1e-6)
    assert item["pose_error"] == pytest.approx(0.0, abs=1e-6)
    assert item["expression_error"] == pytest.approx(0.0, abs=1e-9)
    assert item["reconstruction_l1"] == 0.0 and item["reconstruction_psnr"] == float("inf")


def test_judge_tells_same_and_different_people(evaluator, photos):
    a, b, c = (evaluator.describe(read_image(photos / n), n) for n in ("obama.jpg", "obama2.jpg", "biden.jpg"))
    assert np.linalg.norm(a["descriptor"] - b["descriptor"]) < 0.6
    assert np.linalg.norm(a["descriptor"] - c["descriptor"]) > 0.6


@pytest.mark.parametrize("degrees", [12.0, -20.0])
def test_head_rotated_in_the_image_plane_gives_that_roll(evaluator, photos, degrees):
    image = read_image(photos / "obama.jpg")
    before = evaluator.describe(image, "upright")
    centre = tuple(float(v) for v in before["face"].landmarks.mean(0))  # turn the head about itself
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    turned = cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT_101)
    after = evaluator.describe(turned, "turned")
    roll = after["pose"][2] - before["pose"][2]
    assert abs(roll - degrees) <= 3.0, roll
    assert abs(-(in_plane_roll(after["landmarks68"]) - in_plane_roll(before["landmarks68"])) - degrees) <= 3.0
    assert expression_distance(before["landmarks68"], after["landmarks68"]) < 0.05


def test_retrieval_and_cli_reports(photos, tmp_path):
    folders = {k: tmp_path / k for k in ("source", "target", "swap")}
    # "Swaps" that are perfect: each swap is its source photo; targets are other photos.
    triples = {"a": ("obama.jpg", "biden.jpg", "obama.jpg"), "b": ("biden.jpg", "obama3.jpg", "biden.jpg")}
    for name, (src, tgt, swp) in triples.items():
        for folder, photo in zip(folders.values(), (src, tgt, swp), strict=True):
            write_image(folder / f"{name}.png", read_image(photos / photo))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "facedancer.cli.main",
            "evaluate",
            "--source",
            str(folders["source"]),
            "--target",
            str(folders["target"]),
            "--swap",
            str(folders["swap"]),
            "--output",
            str(tmp_path / "report"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "report" / "results.json").read_text())
    assert data["summary"]["judge_retrieval_top1"] == 1.0 and data["summary"]["judge_same_as_source_rate"] == 1.0
    assert {i["name"] for i in data["items"]} == {"a", "b"}
    assert (tmp_path / "report" / "results.csv").read_text().startswith("name,")
    assert read_image(tmp_path / "report" / "chart.png").shape[1] == 760
    assert "judge_retrieval_top1" in result.stdout


def test_sources_with_identical_first_rows_stay_different_identities(evaluator, photos):
    def framed(name):
        image = cv2.resize(read_image(photos / name), (600, 750))  # same shape for both
        border = np.full((40, 600, 3), 255, np.uint8)  # > 4 KB of identical leading pixels
        return np.concatenate([border, image], axis=0)

    a, b = framed("obama.jpg"), framed("biden.jpg")
    result = evaluate_triples(evaluator, [("a", a, b, a), ("b", b, a, b)])
    assert result["summary"]["source_identities"] == 2
    assert result["summary"]["judge_retrieval_top1"] == 1.0
