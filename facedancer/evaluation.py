"""Evaluating swaps: identity (ours and an independent dlib judge), head pose, expression, reconstruction.

The independent judge is dlib's ResNet face descriptor (128-d; two photos of one person are usually
closer than 0.6) and its 68-point landmark model, both from PyPI (`dlib-bin`, `face-recognition-models`:
the `[eval]` extra). Pose is solved from 6 of the 68 landmarks against a generic 3-D face with
cv2.solvePnP; expression is the landmark distance left after removing pose and scale (Procrustes).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from pathlib import Path

import numpy as np

from facedancer.atomic import atomic_path, write_text_atomic
from facedancer.errors import FaceDancerError
from facedancer.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

JUDGE_INSTALL = "pip install dlib-bin face-recognition-models   (or: pip install 'facedancer[eval]')"
SAME_PERSON_DISTANCE = 0.6
# A generic head (millimetres): nose tip, chin, left/right eye outer corners, left/right mouth corners.
HEAD_3D = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, -63.6, -12.5],
        [-43.3, 32.7, -26.0],
        [43.3, 32.7, -26.0],
        [-28.9, -28.9, -24.1],
        [28.9, -28.9, -24.1],
    ]
)
HEAD_68 = [30, 8, 36, 45, 48, 54]  # the matching dlib landmark indices


class Judge:
    """dlib's face descriptor and 68-point landmarks, placed by our RetinaFace boxes."""

    def __init__(self):
        try:
            import dlib
            import face_recognition_models as models
        except ImportError as exc:
            raise FaceDancerError(f"the dlib identity judge is not installed: {JUDGE_INSTALL}") from exc
        self._dlib = dlib
        self._shape = dlib.shape_predictor(models.pose_predictor_model_location())
        self._descriptor = dlib.face_recognition_model_v1(models.face_recognition_model_location())

    def analyse(self, image: np.ndarray, box) -> tuple[np.ndarray, np.ndarray]:
        """(128-d descriptor, 68x2 landmarks) of the face in `box` (x1, y1, x2, y2)."""
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        rect = self._dlib.rectangle(x1, y1, x2, y2)
        image = np.ascontiguousarray(image)
        shape = self._shape(image, rect)
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        descriptor = np.array(self._descriptor.compute_face_descriptor(image, shape), np.float64)
        return descriptor, landmarks


def head_pose(landmarks68: np.ndarray, image_shape) -> np.ndarray:
    """(yaw, pitch, roll) in degrees from 68 landmarks, with a pinhole camera of focal length = image width."""
    import cv2

    height, width = image_shape[:2]
    points = landmarks68[HEAD_68].astype(np.float64)
    # The principal point sits on the face, so angles are relative to the ray through the face and do not
    # change when the face moves across the frame (a roll in the image plane stays a pure roll).
    cx, cy = points.mean(0)
    camera = np.array([[width, 0, cx], [0, width, cy], [0, 0, 1]], np.float64)
    ok, rvec, _ = cv2.solvePnP(HEAD_3D, points, camera, np.zeros(4), flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise FaceDancerError("head pose could not be solved from the landmarks")
    rotation, _ = cv2.Rodrigues(rvec)
    # Camera y points down, model y points up: flip to a right-handed face frame before reading angles.
    r = rotation @ np.diag([1.0, -1.0, -1.0])
    yaw = math.degrees(math.asin(-np.clip(r[2, 0], -1, 1)))
    pitch = math.degrees(math.atan2(r[2, 1], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    return np.array([yaw, pitch, -roll])


def in_plane_roll(landmarks68: np.ndarray) -> float:
    """Roll from the eye line alone (degrees, clockwise positive in image coordinates)."""
    left, right = landmarks68[36:42].mean(0), landmarks68[42:48].mean(0)
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def expression_distance(a68: np.ndarray, b68: np.ndarray) -> float:
    """Mean distance between inner-face landmarks (brows, eyes, nose, mouth) after a similarity fit of b onto a,
    in units of a's inter-ocular distance: 0 for the same expression whatever the pose in the image plane."""
    from facedancer.alignment import estimate_similarity, transform_points

    inner = slice(17, 68)
    matrix = estimate_similarity(b68[inner], a68[inner])
    fitted = transform_points(b68[inner], matrix)
    ocular = np.linalg.norm(a68[36:42].mean(0) - a68[42:48].mean(0))
    return float(np.linalg.norm(fitted - a68[inner], axis=1).mean() / max(ocular, 1e-6))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


class Evaluator:
    """Scores (source, target, swap) image triples."""

    def __init__(self, identity_model=None, judge: bool = True, detector=None):
        from facedancer.detection import default_detector

        self.detector = detector or default_detector()
        self.judge = Judge() if judge else None
        self.identity = identity_model
        if identity_model is None and not judge:
            raise FaceDancerError("evaluation needs an identity model, the dlib judge, or both")

    def _face(self, image: np.ndarray, what: str):
        faces = self.detector.detect(image)
        if not faces:
            raise FaceDancerError(f"no face found in the {what} image")
        return faces[0]

    def _embed(self, image, face) -> np.ndarray:
        from facedancer.alignment import align

        size = int(self.identity.inputs[0].shape[1])
        crop = align(image, face.landmarks, size)[0][None].astype(np.float32) / 255.0
        z = np.asarray(self.identity(crop))[0].astype(np.float64)
        return z / max(np.linalg.norm(z), 1e-12)

    def describe(self, image: np.ndarray, what: str) -> dict:
        face = self._face(image, what)
        out = {"face": face}
        if self.identity is not None:
            out["embedding"] = self._embed(image, face)
        if self.judge is not None:
            out["descriptor"], out["landmarks68"] = self.judge.analyse(image, face.box)
            out["pose"] = head_pose(out["landmarks68"], image.shape)
        return out

    def score(
        self, source: dict, target: dict, swap: dict, same_pair: bool, swap_image=None, target_image=None
    ) -> dict:
        values: dict[str, float] = {}
        if self.identity is not None:
            values["id_cos_source"] = float(swap["embedding"] @ source["embedding"])
            values["id_cos_target"] = float(swap["embedding"] @ target["embedding"])
        if self.judge is not None:
            values["judge_dist_source"] = float(np.linalg.norm(swap["descriptor"] - source["descriptor"]))
            values["judge_dist_target"] = float(np.linalg.norm(swap["descriptor"] - target["descriptor"]))
            yaw, pitch, roll = np.abs((swap["pose"] - target["pose"] + 180.0) % 360.0 - 180.0)  # wrap at ±180°
            values.update(
                yaw_error=float(yaw),
                pitch_error=float(pitch),
                roll_error=float(roll),
                pose_error=float((yaw + pitch + roll) / 3),
            )
            values["expression_error"] = expression_distance(target["landmarks68"], swap["landmarks68"])
        if same_pair and swap_image is not None and target_image is not None:
            values["reconstruction_l1"] = float(np.abs(swap_image.astype(float) - target_image).mean() / 255.0)
            values["reconstruction_psnr"] = psnr(swap_image, target_image)
        return values


def retrieval_top1(
    swaps: list[np.ndarray], sources: list[np.ndarray], truth: list[int], higher_is_closer: bool
) -> float:
    """Share of swaps whose closest source identity (among all sources) is their own source."""
    hits = 0
    for vector, own in zip(swaps, truth, strict=True):
        scores = np.array([vector @ s if higher_is_closer else -np.linalg.norm(vector - s) for s in sources])
        hits += int(np.argmax(scores) == own)
    return hits / max(len(swaps), 1)


def evaluate_triples(
    evaluator: Evaluator, triples: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], progress: bool = True
) -> dict:
    """triples: (name, source image, target image, swap image) -> {"items": [...], "summary": {...}}."""
    from facedancer.progress import bar

    items, source_desc, swap_desc = [], {}, []
    for name, source, target, swap in bar(triples, desc="evaluating", unit="pair", enabled=progress):
        # Sources are told apart by all their pixels: photos sharing their first rows are still different.
        key = hashlib.sha1(np.ascontiguousarray(source).tobytes() + str(source.shape).encode()).hexdigest()
        if key not in source_desc:
            source_desc[key] = evaluator.describe(source, f"source of {name}")
        s = source_desc[key]
        t = evaluator.describe(target, f"target of {name}")
        w = evaluator.describe(swap, f"swap {name}")
        same = source.shape == target.shape and np.array_equal(source, target)
        values = evaluator.score(s, t, w, same, swap, target)
        items.append({"name": name, **values})
        swap_desc.append((list(source_desc).index(key), w))
    summary = {}
    for metric in sorted({k for item in items for k in item if k != "name"}):
        vals = [item[metric] for item in items if metric in item and math.isfinite(item[metric])]
        if vals:
            summary[metric] = float(np.mean(vals))
    sources = list(source_desc.values())
    truth = [i for i, _ in swap_desc]
    if evaluator.identity is not None:
        summary["id_retrieval_top1"] = retrieval_top1(
            [w["embedding"] for _, w in swap_desc], [s["embedding"] for s in sources], truth, True
        )
    if evaluator.judge is not None:
        summary["judge_retrieval_top1"] = retrieval_top1(
            [w["descriptor"] for _, w in swap_desc], [s["descriptor"] for s in sources], truth, False
        )
        summary["judge_same_as_source_rate"] = float(
            np.mean([item["judge_dist_source"] < SAME_PERSON_DISTANCE for item in items])
        )
    summary["items"] = len(items)
    summary["source_identities"] = len(sources)
    return {"items": items, "summary": summary}


def write_reports(result: dict, out_dir: Path) -> dict[str, Path]:
    """results.json, results.csv and chart.png in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "csv": out_dir / "results.csv", "chart": out_dir / "chart.png"}
    write_text_atomic(paths["json"], json.dumps(result, indent=2))
    columns = ["name", *sorted({k for item in result["items"] for k in item if k != "name"})]
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(result["items"])
    draw_chart(result["summary"], paths["chart"])
    return paths


def summary_table(summary: dict) -> str:
    width = max(len(k) for k in summary)
    return "\n".join(
        f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}" for k, v in summary.items()
    )


# Every summary metric: (unit group, True when higher is better). Counts (items, source_identities) are no scores.
METRIC_GROUPS = {
    "identity similarity (cosine / rate, 0..1)": {
        "id_cos_source": True,
        "id_cos_target": False,
        "id_retrieval_top1": True,
        "judge_retrieval_top1": True,
        "judge_same_as_source_rate": True,
    },
    "identity distance (dlib descriptor, same person < 0.6)": {
        "judge_dist_source": False,
        "judge_dist_target": True,
    },
    "head pose error (degrees)": {
        "yaw_error": False,
        "pitch_error": False,
        "roll_error": False,
        "pose_error": False,
    },
    "expression error (landmark distance / inter-ocular distance)": {"expression_error": False},
    "reconstruction L1 (0..1)": {"reconstruction_l1": False},
    "reconstruction PSNR (dB)": {"reconstruction_psnr": True},
}


def grouped_metrics(summary: dict) -> list[tuple[str, list[tuple[str, float, bool]]]]:
    """The summary's scores as (group, [(metric, value, higher_is_better)]), groups that have none left out."""
    groups = []
    for group, metrics in METRIC_GROUPS.items():
        rows = [
            (name, float(summary[name]), higher)
            for name, higher in metrics.items()
            if isinstance(summary.get(name), float) and math.isfinite(summary[name])
        ]
        if rows:
            groups.append((group, rows))
    return groups


def direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def draw_chart(summary: dict, path: Path) -> None:
    """The summary means as bar panels, one per unit (similarities, distances, degrees, ...), each on its own
    scale and each bar labelled with its direction."""
    from facedancer.charts import bar_panels

    panels = [(group, [(n, v, direction(h)) for n, v, h in rows]) for group, rows in grouped_metrics(summary)]
    bar_panels(panels, "FaceDancer evaluation (summary means)", path)


def _images(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def folder_triples(source: Path, target: Path, swap: Path) -> list:
    from facedancer.images import read_image

    targets, swaps = _images(target), _images(swap)
    sources = _images(source) if source.is_dir() else None
    names = sorted(set(targets) & set(swaps) & (set(sources) if sources is not None else set(targets)))
    if not names:
        raise FaceDancerError(f"no file names common to {source}, {target} and {swap}")
    gaps = [(swap, set(targets) - set(swaps)), (target, set(swaps) - set(targets))]
    if sources is not None:
        gaps.append((source, (set(targets) & set(swaps)) - set(sources)))
    for folder, missing in gaps:
        if missing:
            log.warning(
                "%d images have no counterpart in %s (e.g. %s); they are left out of the scores",
                len(missing),
                folder,
                sorted(missing)[0],
            )
    single = None if sources is not None else read_image(source)
    return [
        (n, single if single is not None else read_image(sources[n]), read_image(targets[n]), read_image(swaps[n]))
        for n in names
    ]


def video_triples(source: Path, target_video: Path, swap_video: Path, every: int, allow_partial: bool = False) -> list:
    """Every `every`-th frame pair; a truncated or damaged video is refused unless `allow_partial`, which
    compares the pairs that decode and warns."""
    from facedancer.images import read_image
    from facedancer.video import probe, read_frames

    photo = read_image(source)
    a, b = probe(target_video, allow_partial), probe(swap_video, allow_partial)
    damage = {info.path: info.damage for info in (a, b) if info.damage}
    frames = [
        read_frames(
            info, every=every, on_damage=(lambda why, p=info.path: damage.setdefault(p, why)) if allow_partial else None
        )
        for info in (a, b)
    ]
    triples = []
    for i, (t, s) in enumerate(zip(*frames, strict=False)):
        triples.append((f"frame_{i * every:06d}", photo, t, s))
    if not triples:
        raise FaceDancerError(f"{target_video} / {swap_video}: no frames to compare")
    for path, why in damage.items():
        info = a if path == a.path else b
        log.warning(
            "%s: %s; --allow_partial: compared %d frame pairs (--every %d) of %d expected frames",
            path,
            why,
            len(triples),
            every,
            info.expected_frames,
        )
    if damage:
        return triples
    if a.estimated_frames != b.estimated_frames:
        log.warning(
            "%s has %d frames, %s has %d: only the first %d frames are compared (a truncated or resampled swap?)",
            target_video,
            a.estimated_frames,
            swap_video,
            b.estimated_frames,
            min(a.estimated_frames, b.estimated_frames),
        )
    return triples
