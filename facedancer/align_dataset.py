"""Detect and align every face photo of a dataset tree (DATASET/identity/image) into aligned PNG crops.

Decoding runs in worker threads ahead of detection; outputs are written atomically, so an interrupted
run resumes by skipping crops that already exist.
"""

from __future__ import annotations

import csv
import io
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

FACE_MODES = ("first", "largest", "all", "skip-multi")
REPORT_JSON = "crop_align_report.json"
REPORT_CSV = "crop_align_skipped.csv"
NAMES_JSON = "crop_align_names.json"  # input path (relative) -> crop name (relative), kept across runs


@dataclass(frozen=True)
class AlignOptions:
    im_size: int = 256
    min_size: int = 128  # the original's: skip photos whose width or height is not above it
    min_face_size: int = 0  # ours: skip faces whose box is smaller (0: off, as the original has no such filter)
    shrink_factor: float = 1.0
    faces: str = "first"  # the original writes the detector's first answer (its best-scored face)
    score: float = 0.5  # the original keeps what the graph keeps (its own floor: 0.5)
    max_side: int = 0  # the original detects at full size (0); a downscaled copy is faster on large photos
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


def crop_names(relatives: list[Path], previous: dict[str, str] | None = None) -> dict[str, str]:
    """A crop name (relative, .png) for every input such that no two inputs share one.

    An input keeps the same relative path with a .png suffix (the original's naming) unless another input
    would get the same name (face.jpg and face.png): then each of them keeps its extension in the name
    (face_jpg.png, face_png.png), with ~2, ~3 … if even that is taken. Names from `previous` (an earlier
    run over the same output folder) are kept, so adding a photo never renames crops already written.
    """
    names = dict(previous or {})
    taken = {name.lower() for name in names.values()}
    fresh = [r for r in relatives if str(r) not in names]
    plain: dict[str, set[str]] = {}
    for relative in {*relatives, *map(Path, names)}:
        plain.setdefault(str(relative.with_suffix(".png")).lower(), set()).add(str(relative))
    for relative in fresh:
        candidate = relative.with_suffix(".png")
        if len(plain[str(candidate).lower()]) > 1 or str(candidate).lower() in taken:
            extension = relative.suffix.lstrip(".").lower() or "noext"
            candidate = relative.with_name(f"{relative.stem}_{extension}.png")
        number = 2
        stem = candidate.stem
        while str(candidate).lower() in taken:
            candidate = candidate.with_name(f"{stem}~{number}.png")
            number += 1
        taken.add(str(candidate).lower())
        names[str(relative)] = str(candidate)
    return names


def output_paths(target_dir: Path, name: str, count: int, faces: str) -> list[Path]:
    """Where the crops of one photo go: its crop name; name_0, name_1 … for --faces all."""
    base = target_dir / name
    if faces != "all":
        return [base]
    return [base.with_name(f"{base.stem}_{i}.png") for i in range(count)]


def _already_done(target_dir: Path, name: str, faces: str) -> bool:
    return output_paths(target_dir, name, 1, faces)[0].exists()


def load_names(target_dir: Path) -> dict[str, str]:
    try:
        names = json.loads((target_dir / NAMES_JSON).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}


def check_folders(data_dir: Path, target_dir: Path) -> None:
    """--target_dir may lie inside --data_dir (it is left out of the walk) but must not be it or hold it."""
    from facedancer.paths import refuse_output_over_inputs

    if not data_dir.is_dir():
        raise FaceDancerError(f"--data_dir {data_dir} is not a folder; give the folder of photos")
    if target_dir.exists() and not target_dir.is_dir():
        raise FaceDancerError(f"--target_dir {target_dir} is a file; give a folder for the crops")
    refuse_output_over_inputs(
        target_dir, [("--data_dir", data_dir)], "--target_dir", allow_inside=True, hint="choose a separate folder"
    )


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
    """faces come largest first; `first` is the detector's first answer, its best-scored face (the original)."""
    if mode == "first":
        return [max(faces, key=lambda f: f.score)]
    if mode == "largest":
        return faces[:1]
    return faces


@dataclass(frozen=True, eq=False)  # holds arrays: no value equality by accident
class PhotoOutcome:
    """What one decoded photo gives: its aligned crops in output order, or the reason it is skipped."""

    crops: list = field(default_factory=list)  # HxWx3 uint8 crops
    reason: str = ""  # "" when aligned; else small-image, no-face, multi-face, small-face
    detail: str = ""


def align_photo(image, detector, options: AlignOptions) -> PhotoOutcome:
    """Detect, select and align the faces of one photo (shared by `align` and the Beam `prepare` pipeline)."""
    height, width = image.shape[:2]
    if not (height > options.min_size and width > options.min_size):  # the original's --min_size: the photo's size
        return PhotoOutcome(
            reason="small-image", detail=f"{width}x{height} px, not above --min_size {options.min_size}"
        )
    faces = detector.detect(image, score=options.score, max_side=options.max_side)
    if not faces:
        return PhotoOutcome(reason="no-face")
    if options.faces == "skip-multi" and len(faces) > 1:
        return PhotoOutcome(reason="multi-face", detail=f"{len(faces)} faces")
    selected = _select(faces, options.faces)
    chosen = [f for f in selected if f.size >= options.min_face_size]
    if not chosen:
        detail = f"face {max(f.size for f in selected):.0f}px < --min_face_size {options.min_face_size}"
        return PhotoOutcome(reason="small-face", detail=detail)
    return PhotoOutcome(crops=[align(image, f.landmarks, options.im_size, options.shrink_factor)[0] for f in chosen])


def unreadable_detail(exc: Exception) -> str:
    """The skip report's detail for a file that does not decode (the message without the path)."""
    return str(exc).split(": ", 1)[-1]


def align_dataset(
    data_dir: str | Path, target_dir: str | Path, options: AlignOptions, detector=None, progress: bool = True
) -> AlignSummary:
    """Align every face photo below data_dir into target_dir; returns counts and the skipped files."""
    from facedancer.progress import bar as progress_bar

    data_dir, target_dir = Path(data_dir), Path(target_dir)
    check_folders(data_dir, target_dir)
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
    names = crop_names([p.relative_to(data_dir) for p in files], load_names(target_dir))
    write_text_atomic(target_dir / NAMES_JSON, json.dumps(names, indent=2, ensure_ascii=False))
    renamed = {k: v for k, v in names.items() if Path(v) != Path(k).with_suffix(".png")}
    if renamed:
        log.warning(
            "%d photos share a name with another photo (e.g. %s); their crops keep the extension: %s (mapping in %s)",
            len(renamed),
            next(iter(renamed)),
            ", ".join(list(renamed.values())[:3]),
            NAMES_JSON,
        )
    todo = []
    for path in files:
        if _already_done(target_dir, names[str(path.relative_to(data_dir))], options.faces):
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

    written: set[Path] = set()
    bar = progress_bar(total=len(todo), unit="img", desc="aligning", enabled=progress)
    for path, future in _prefetch(read_image, todo, options.workers):
        relative = path.relative_to(data_dir)
        try:
            image = future.result()
        except ImageReadError as exc:
            summary.skip(path, "unreadable", unreadable_detail(exc))
            bar.update()
            continue
        height, width = image.shape[:2]
        if not (height > options.min_size and width > options.min_size):
            summary.skip(path, "small-image", f"{width}x{height} px, not above --min_size {options.min_size}")
            bar.update()
            continue
        summary.processed += 1
        outcome = align_photo(image, detector, options)
        if outcome.reason:
            summary.skip(path, outcome.reason, outcome.detail)
        else:
            for out, crop in zip(
                output_paths(target_dir, names[str(relative)], len(outcome.crops), options.faces),
                outcome.crops,
                strict=True,
            ):
                write_image(out, crop)
                written.add(out)
        bar.update()
        summary.written = len(written)
        bar.set_postfix(written=summary.written, skipped=len(summary.skipped), refresh=False)
    bar.close()
    summary.written = sum(1 for out in written if out.is_file())  # only crops that exist count
    write_report(target_dir, summary, options, renamed)
    return summary


def previous_skips(target_dir: Path, options: AlignOptions) -> dict[str, dict]:
    """Files the last run over target_dir skipped, if it ran with the same options (so resume skips them)."""
    try:
        text = (target_dir / REPORT_JSON).read_text()
    except OSError:
        return {}
    return skips_in_report(text, options)


def skips_in_report(text: str, options: AlignOptions) -> dict[str, dict]:
    """{path: entry} of a skip report's text, if written with the same options (else {}: nothing to reuse)."""
    try:
        report = json.loads(text)
    except ValueError:
        return {}
    same = {k: v for k, v in asdict(options).items() if k != "workers"}
    if {k: v for k, v in report.get("options", {}).items() if k != "workers"} != same:
        return {}
    return {entry["path"]: entry for entry in report.get("skipped", [])}


def report_texts(summary: AlignSummary, options: AlignOptions, renamed: dict[str, str] | None = None) -> dict[str, str]:
    """{file name: text} of the skip report: `crop_align_report.json` (options, counts, skipped files, photos
    whose crop name keeps the extension) and `crop_align_skipped.csv`."""
    report = {"options": asdict(options), "counts": summary.counts(), "skipped": summary.skipped}
    report["renamed"] = renamed or {}
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=["path", "reason", "detail"])
    writer.writeheader()
    writer.writerows(summary.skipped)
    return {REPORT_JSON: json.dumps(report, indent=2), REPORT_CSV: table.getvalue()}


def write_report(
    target_dir: Path, summary: AlignSummary, options: AlignOptions, renamed: dict[str, str] | None = None
) -> None:
    """The skip report (see report_texts) beside the crops."""
    for name, text in report_texts(summary, options, renamed).items():
        with atomic_path(target_dir / name) as tmp, open(tmp, "w", newline="") as f:
            f.write(text)
