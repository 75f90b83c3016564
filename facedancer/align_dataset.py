"""Detect and align every face photo of a dataset tree (DATASET/identity/image) into aligned PNG crops.

Decoding runs in worker threads ahead of detection; outputs are written atomically, so an interrupted
run resumes by skipping crops that already exist.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from facedancer.alignment import align
from facedancer.atomic import atomic_path, write_text_atomic
from facedancer.errors import FaceDancerError
from facedancer.images import ImageReadError, read_image, write_image

log = logging.getLogger(__name__)

FACE_MODES = ("largest", "all", "skip-multi")
REPORT_JSON = "crop_align_report.json"
REPORT_CSV = "crop_align_skipped.csv"


@dataclass(frozen=True)
class AlignOptions:
    im_size: int = 256
    min_size: int = 128  # the original's: skip photos whose width or height is not above it
    min_face_size: int = 0  # ours: skip faces whose box is smaller (0: off, as the original has no such filter)
    shrink_factor: float = 1.0
    faces: str = "largest"
    score: float = 0.9
    max_side: int = 640
    workers: int = 2

    def __post_init__(self):
        if self.faces not in FACE_MODES:
            raise FaceDancerError(f"--faces must be one of {', '.join(FACE_MODES)}, got {self.faces!r}")
        if self.im_size < 16:
            raise FaceDancerError(f"--im_size must be at least 16, got {self.im_size}")
        if not 0 < self.shrink_factor <= 2:
            raise FaceDancerError(f"--shrink_factor must be in (0, 2], got {self.shrink_factor}")


@dataclass
class AlignSummary:
    images: int = 0
    processed: int = 0
    written: int = 0
    already_done: int = 0
    no_face: int = 0
    small_image: int = 0
    small_face: int = 0
    multi_face: int = 0
    unreadable: int = 0
    skipped: list[dict] = field(default_factory=list)

    def skip(self, path: Path, reason: str, detail: str = "") -> None:
        setattr(self, reason.replace("-", "_"), getattr(self, reason.replace("-", "_")) + 1)
        self.skipped.append({"path": str(path), "reason": reason, "detail": detail})

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k != "skipped"}


def list_images(data_dir: Path, exclude: Path | None = None) -> list[Path]:
    """Every non-hidden file below data_dir, sorted (non-images are reported, not silently dropped)."""
    files = []
    for root, dirs, names in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if exclude is not None and Path(root).resolve().is_relative_to(exclude):
            dirs[:] = []
            continue
        files.extend(Path(root) / n for n in sorted(names) if not n.startswith("."))
    return sorted(files)


def output_paths(target_dir: Path, relative: Path, count: int, faces: str) -> list[Path]:
    """Where the crops of one photo go: same relative path as PNG; name_0, name_1 … for --faces all."""
    base = target_dir / relative.with_suffix(".png")
    if faces != "all":
        return [base]
    return [base.with_name(f"{base.stem}_{i}.png") for i in range(count)]


def _already_done(target_dir: Path, relative: Path, faces: str) -> bool:
    return output_paths(target_dir, relative, 1, faces)[0].exists()


def _prefetch(fn: Callable, items: Iterable, workers: int) -> Iterator[tuple[object, Future]]:
    """Run fn over items in a thread pool, keeping a bounded number in flight, yielding in order."""
    ahead = max(1, workers) * 2
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue: deque = deque()
        for item in items:
            queue.append((item, pool.submit(fn, item)))
            if len(queue) >= ahead:
                yield queue.popleft()
        while queue:
            yield queue.popleft()


def _select(faces: list, mode: str) -> list:
    if mode == "largest":
        return faces[:1]
    return faces


def align_dataset(
    data_dir: str | Path, target_dir: str | Path, options: AlignOptions, detector=None, progress: bool = True
) -> AlignSummary:
    """Align every face photo below data_dir into target_dir; returns counts and the skipped files."""
    from tqdm import tqdm

    data_dir, target_dir = Path(data_dir), Path(target_dir)
    if not data_dir.is_dir():
        raise FaceDancerError(f"--data_dir {data_dir} is not a folder")
    target_dir.mkdir(parents=True, exist_ok=True)
    inside = target_dir.resolve() if target_dir.resolve().is_relative_to(data_dir.resolve()) else None
    files = list_images(data_dir, exclude=inside)
    if not files:
        raise FaceDancerError(f"--data_dir {data_dir} holds no files")
    if detector is None:
        from facedancer.detection import default_detector

        detector = default_detector()

    summary = AlignSummary(images=len(files))
    known_skips = previous_skips(target_dir, options)
    todo = []
    for path in files:
        if _already_done(target_dir, path.relative_to(data_dir), options.faces):
            summary.already_done += 1
        elif str(path) in known_skips:
            entry = known_skips[str(path)]
            summary.skip(path, entry["reason"], entry.get("detail", ""))
        else:
            todo.append(path)
    if summary.already_done or known_skips:
        log.info(
            "resuming: %d photos already aligned, %d skipped by the last run with these options",
            summary.already_done,
            len(summary.skipped),
        )

    bar = tqdm(total=len(todo), unit="img", desc="aligning", disable=not progress)
    for path, future in _prefetch(read_image, todo, options.workers):
        relative = path.relative_to(data_dir)
        try:
            image = future.result()
        except ImageReadError as exc:
            summary.skip(path, "unreadable", str(exc).split(": ", 1)[-1])
            bar.update()
            continue
        height, width = image.shape[:2]
        if not (height > options.min_size and width > options.min_size):
            summary.skip(path, "small-image", f"{width}x{height} px, not above --min_size {options.min_size}")
            bar.update()
            continue
        summary.processed += 1
        faces = detector.detect(image, score=options.score, max_side=options.max_side)
        if not faces:
            summary.skip(path, "no-face")
        elif options.faces == "skip-multi" and len(faces) > 1:
            summary.skip(path, "multi-face", f"{len(faces)} faces")
        else:
            chosen = [f for f in _select(faces, options.faces) if f.size >= options.min_face_size]
            if not chosen:
                summary.skip(
                    path,
                    "small-face",
                    f"largest face {faces[0].size:.0f}px < --min_face_size {options.min_face_size}",
                )
            else:
                for out, face in zip(
                    output_paths(target_dir, relative, len(chosen), options.faces), chosen, strict=True
                ):
                    crop, _ = align(image, face.landmarks, options.im_size, options.shrink_factor)
                    write_image(out, crop)
                    summary.written += 1
        bar.update()
        bar.set_postfix(written=summary.written, skipped=len(summary.skipped), refresh=False)
    bar.close()
    write_report(target_dir, summary, options)
    return summary


def previous_skips(target_dir: Path, options: AlignOptions) -> dict[str, dict]:
    """Files the last run over target_dir skipped, if it ran with the same options (so resume skips them)."""
    path = target_dir / REPORT_JSON
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    same = {k: v for k, v in asdict(options).items() if k != "workers"}
    if {k: v for k, v in report.get("options", {}).items() if k != "workers"} != same:
        return {}
    return {entry["path"]: entry for entry in report.get("skipped", [])}


def write_report(target_dir: Path, summary: AlignSummary, options: AlignOptions) -> None:
    """`crop_align_report.json` (options, counts, skipped files) and `crop_align_skipped.csv` beside the crops."""
    report = {"options": asdict(options), "counts": summary.counts(), "skipped": summary.skipped}
    write_text_atomic(target_dir / REPORT_JSON, json.dumps(report, indent=2))
    with atomic_path(target_dir / REPORT_CSV) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "reason", "detail"])
        writer.writeheader()
        writer.writerows(summary.skipped)
