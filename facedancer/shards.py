"""TFRecord shards of aligned faces: the record format, writing a dataset tree, and verifying shards.

Each record holds the encoded image bytes unchanged under `face` (the original's key, so the original's
shards read too), the identity `label` (subfolder index) and `identity` (its name), and the `path`
relative to the dataset folder. Files are named `NAME_TYPE_XXXXX-of-YYYYY.records`.

A run owns its `NAME_TYPE_*` set: an older set of that name is refused (or removed with `overwrite`), the
shards go first and `NAME_index.json` last, so the index is the commit mark: a set without one, or with
files the index does not list, is partial or mixed, and `verify_set` says so. Images are packed byte for
byte when TensorFlow decodes them as Pillow does (PNG, JPEG, BMP, GIF, WebP); others (TIFF, …) are
converted to PNG and listed in the index, so training never meets an image it cannot decode.
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from facedancer.atomic import atomic_path, write_text_atomic
from facedancer.errors import FaceDancerError
from facedancer.images import IMAGE_SUFFIXES, ImageReadError, read_image

log = logging.getLogger(__name__)

SHARD_SUFFIX = ".records"


class ShardError(FaceDancerError):
    """A shard that cannot be read back (truncated, corrupted, not a TFRecord file)."""


def shard_name(name: str, data_type: str, index: int, total: int) -> str:
    """`NAME_TYPE_XXXXX-of-YYYYY.records`, numbered from 0, as the original's glob expects."""
    return f"{name}_{data_type}_{index:05d}-of-{total:05d}{SHARD_SUFFIX}"


def shard_glob(name: str, data_type: str) -> str:
    return f"{name}_{data_type}_*-of-*{SHARD_SUFFIX}"


SHARD_NAME = re.compile(r"^(?P<set>.+)_(?P<index>\d{5})-of-(?P<total>\d{5})" + re.escape(SHARD_SUFFIX) + "$")


def index_name(name: str) -> str:
    return f"{name}_index.json"


@dataclass(frozen=True)
class Sample:
    path: Path  # absolute
    relative: str
    identity: str
    label: int


def list_identities(data_dir: Path) -> list[tuple[str, list[Path]]]:
    """[(identity name, sorted image files)]: subfolders of data_dir; a flat folder is one identity."""

    def images_in(folder: Path) -> list[Path]:
        return sorted(
            p
            for p in folder.rglob("*")
            if p.is_file()
            and not p.name.startswith(".")
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )

    subdirs = sorted(d for d in data_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = sorted(p for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not subdirs:
        return [(data_dir.name, images_in(data_dir))]
    if loose:
        log.warning(
            "%d image files directly in %s are ignored: with identity subfolders present, images belong in them",
            len(loose),
            data_dir,
        )
    return [(d.name, images_in(d)) for d in subdirs]


def identity_of(relative: str, flat_name: str | None) -> str | None:
    """The identity of a file at `relative` (POSIX) below a dataset folder, by list_identities' rule: its
    first folder; `flat_name` (the folder's own name) when the dataset has no subfolders; None for a file
    directly in a folder that has identity subfolders (ignored)."""
    parts = relative.split("/")
    if any(part.startswith(".") for part in parts):
        return None
    if flat_name is not None:
        return flat_name
    return parts[0] if len(parts) > 1 else None


def label_map(identities) -> dict[str, int]:
    """{identity: label}: labels number the identities in sorted order, as the subfolders are listed."""
    return {name: label for label, name in enumerate(sorted(identities))}


def index_document(
    data_dir: str, options: ShardOptions, labels: dict, splits: dict, skipped: list, converted: list | None = None
) -> dict:
    """`NAME_index.json`: where the data came from, the options, the label map, per-split counts, skipped files,
    images packed as PNG because TensorFlow does not decode their format."""
    return {
        "data_dir": data_dir,
        "options": {k: v for k, v in vars(options).items() if k != "overwrite"},
        "labels": labels,
        "splits": splits,
        "skipped": skipped,
        "converted": converted or [],
    }


def encode_example(image_bytes: bytes, label: int, identity: str, relative: str) -> bytes:
    import tensorflow as tf

    feature = {
        "face": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_bytes])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "identity": tf.train.Feature(bytes_list=tf.train.BytesList(value=[identity.encode()])),
        "path": tf.train.Feature(bytes_list=tf.train.BytesList(value=[relative.encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def decode_example(record: bytes) -> dict:
    """A record as a dict (Python side; the training pipeline parses records in-graph)."""
    import tensorflow as tf

    example = tf.train.Example.FromString(record)
    features = example.features.feature

    def first(key, kind, default):
        if key not in features:
            return default
        values = getattr(features[key], kind).value
        return values[0] if values else default

    return {
        "face": first("face", "bytes_list", b""),
        "label": int(first("label", "int64_list", -1)),
        "identity": first("identity", "bytes_list", b"").decode(),
        "path": first("path", "bytes_list", b"").decode(),
    }


@dataclass
class ShardOptions:
    data_name: str = "dataset"
    data_type: str = "train"
    images_per_shard: int = 1000
    shuffle: bool = True
    seed: int = 0
    val_fraction: float = 0.0
    workers: int = 2
    overwrite: bool = False

    def __post_init__(self):
        if self.images_per_shard < 1:
            raise FaceDancerError(f"--images_per_shard must be at least 1, got {self.images_per_shard}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise FaceDancerError(f"--val_fraction must be in [0, 1), got {self.val_fraction}")
        if not self.data_name or "/" in self.data_name:
            raise FaceDancerError(f"--data_name must be a plain file-name prefix, got {self.data_name!r}")


@dataclass
class ShardReport:
    splits: dict[str, dict] = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    converted: list[dict] = field(default_factory=list)


def split_identities(identities: list[str], fraction: float, rng: random.Random) -> set[str]:
    """Identities that go to validation: round(fraction * n), at least one when fraction > 0 and n > 1."""
    if fraction <= 0 or len(identities) < 2:
        if fraction > 0:
            log.warning("--val_fraction needs at least two identities; writing no validation split")
        return set()
    count = min(len(identities) - 1, max(1, round(fraction * len(identities))))
    return set(rng.sample(sorted(identities), count))


# Formats whose bytes go into a shard unchanged: TensorFlow's decode_image reads them (by magic bytes).
TF_FORMATS = {b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"GIF8": "gif", b"BM": "bmp"}


def tf_decodes(data: bytes) -> bool:
    """True when the training pipeline's tf.io.decode_image reads these bytes as 8-bit RGB."""
    import tensorflow as tf

    known = any(data.startswith(magic) for magic in TF_FORMATS) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    if not known:
        return False
    try:
        return tf.io.decode_image(data, channels=3, expand_animations=False).dtype == tf.uint8
    except (tf.errors.OpError, ValueError):
        return False


def _png_bytes(image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _validated(samples: list[Sample], workers: int, report: ShardReport) -> Iterator[tuple[Sample, bytes]]:
    """(sample, bytes to pack) for images that decode; others are reported and skipped, and images
    TensorFlow cannot decode (TIFF …) are converted to PNG and listed."""

    def check(sample: Sample) -> tuple[Sample, bytes | None, str]:
        try:
            data = sample.path.read_bytes()
            image = read_image(sample.path)
            if not tf_decodes(data):
                return sample, _png_bytes(image), "converted"
            return sample, data, ""
        except (ImageReadError, OSError) as exc:
            return sample, None, str(exc).split(": ", 1)[-1]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for sample, data, reason in pool.map(check, samples):
            if data is None:
                report.skipped.append({"path": sample.relative, "reason": reason})
                log.warning("skipping %s: %s", sample.relative, reason)
                continue
            if reason == "converted":
                report.converted.append(
                    {"path": sample.relative, "reason": "not decodable by TensorFlow; packed as PNG"}
                )
            yield sample, data


def _write_split(
    samples: list[Sample],
    target_dir: Path,
    options: ShardOptions,
    data_type: str,
    report: ShardReport,
    bar,
    written: list[Path],
) -> dict:
    import tensorflow as tf

    valid = list(_validated(samples, options.workers, report))
    bar.update(len(samples) - len(valid))
    total = max(1, -(-len(valid) // options.images_per_shard))
    shards, identities = {}, {}
    for index in range(total):
        chunk = valid[index * options.images_per_shard : (index + 1) * options.images_per_shard]
        name = shard_name(options.data_name, data_type, index, total)
        written.append(target_dir / name)
        with atomic_path(target_dir / name) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
            for sample, data in chunk:
                writer.write(encode_example(data, sample.label, sample.identity, sample.relative))
                entry = identities.setdefault(sample.identity, {"label": sample.label, "count": 0})
                entry["count"] += 1
                bar.update()
        shards[name] = len(chunk)
    return split_summary(options.data_name, data_type, shards, identities)


def split_summary(data_name: str, data_type: str, shards: dict[str, int], identities: dict[str, dict]) -> dict:
    """One split's entry in the index: {shard file: records}, {identity: {label, count}}, totals, the glob."""
    return {
        "images": sum(shards.values()),
        "shards": shards,
        "identities": identities,
        "glob": shard_glob(data_name, data_type),
    }


def write_shards(
    data_dir: str | Path, target_dir: str | Path, options: ShardOptions, progress: bool = True
) -> ShardReport:
    """Shard DATASET/identity/images into TFRecords (+ a validation split by identity) and an index JSON."""
    from facedancer.progress import bar as progress_bar

    data_dir, target_dir = Path(data_dir), Path(target_dir)
    if not data_dir.is_dir():
        raise FaceDancerError(f"--data_dir {data_dir} is not a folder")
    target_dir.mkdir(parents=True, exist_ok=True)
    identities = list_identities(data_dir)
    samples = [
        Sample(p, str(p.relative_to(data_dir)), name, label)
        for label, (name, files) in enumerate(identities)
        for p in files
    ]
    if not samples:
        raise FaceDancerError(f"--data_dir {data_dir} holds no images")
    rng = random.Random(options.seed)
    val_ids = split_identities([name for name, _ in identities], options.val_fraction, rng)
    if options.shuffle:
        rng.shuffle(samples)
    splits = {options.data_type: [s for s in samples if s.identity not in val_ids]}
    if val_ids:
        splits["val"] = [s for s in samples if s.identity in val_ids]

    claim_sets(target_dir, options.data_name, list(splits), options.overwrite)
    report = ShardReport()
    written: list[Path] = []
    try:
        with progress_bar(total=len(samples), unit="img", desc="sharding", enabled=progress) as bar:
            for data_type, split in splits.items():
                report.splits[data_type] = _write_split(split, target_dir, options, data_type, report, bar, written)
        labels = {name: label for label, (name, _) in enumerate(identities)}
        index = index_document(str(data_dir), options, labels, report.splits, report.skipped, report.converted)
        write_text_atomic(target_dir / index_name(options.data_name), json.dumps(index, indent=2))
    except BaseException:  # failed or interrupted: no half set under final names
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return report


def existing_set(target_dir: Path, name: str, data_type: str) -> list[Path]:
    return sorted(target_dir.glob(shard_glob(name, data_type)))


def claim_sets(target_dir: Path, name: str, data_types: list[str], overwrite: bool) -> None:
    """Make room for a new NAME_* set: refuse an older one, or (overwrite) remove its index, then its shards."""
    old = [p for t in data_types for p in existing_set(target_dir, name, t)]
    index = target_dir / index_name(name)
    if not old and not index.exists():
        return
    if not overwrite:
        what = f"{len(old)} {name}_* shard files" + (f" and {index.name}" if index.exists() else " (no index: partial)")
        raise FaceDancerError(
            f"--target_dir {target_dir} already holds a shard set: {what}; pass --overwrite to replace it "
            "or choose another --data_name / --target_dir"
        )
    index.unlink(missing_ok=True)  # uncommit first: an interruption from here on leaves a visibly partial set
    for path in old:
        path.unlink()
    log.info("removed the earlier %s set (%d shards)", name, len(old))


def check_framing(path: str | Path) -> int:
    """Walk a TFRecord file's length headers (no CRC or decode): the record count, or ShardError.

    Cheap enough to run on every shard before training, so a truncated file is named up front.
    """
    path = Path(path)
    with open(path, "rb") as f:
        return count_framed_records(f, path.stat().st_size, str(path))


def count_framed_records(f, size: int, name: str) -> int:
    """check_framing on an open binary file of `size` bytes (any filesystem); `name` names it in errors."""
    count = 0
    offset = 0
    while offset < size:
        header = f.read(12)
        if len(header) < 12:
            raise ShardError(f"{name}: truncated shard (record {count} header cut off); re-create it")
        (length,) = struct.unpack("<Q", header[:8])
        offset += 12 + length + 4
        if offset > size:
            raise ShardError(f"{name}: truncated shard (record {count} cut off); re-create it")
        f.seek(offset)
        count += 1
    return count


def verify_shard(path: str | Path, decode: bool = True) -> dict:
    """Read every record of a shard with CRC checks and decode every image; raises ShardError naming the file."""
    import tensorflow as tf

    path = Path(path)
    check_framing(path)
    count, labels = 0, {}
    try:
        for raw in tf.data.TFRecordDataset(str(path)):
            record = decode_example(raw.numpy())
            if not record["face"]:
                raise ShardError(f"{path}: record {count} has no 'face' image bytes")
            if decode:
                tf.io.decode_image(record["face"], channels=3, expand_animations=False)
            labels[record["label"]] = labels.get(record["label"], 0) + 1
            count += 1
    except tf.errors.OpError as exc:
        message = exc.message.split("}}")[-1].strip() if exc.message else type(exc).__name__
        raise ShardError(f"{path}: damaged at record {count} ({message}); re-create this shard") from exc
    except Exception as exc:  # protobuf DecodeError for a record that is not an Example
        if isinstance(exc, ShardError):
            raise
        raise ShardError(f"{path}: record {count} is not a face record ({exc})") from exc
    return {"path": str(path), "records": count, "labels": labels}


def _set_key(path: Path) -> tuple[Path, str] | None:
    match = SHARD_NAME.match(path.name)
    return (path.parent, match.group("set")) if match else None


def find_index(folder: Path, set_name: str) -> tuple[Path, dict, str] | None:
    """(index path, index, split) of the `NAME_index.json` in folder whose splits list set_name (NAME_TYPE)."""
    for candidate in sorted(folder.glob("*_index.json")):
        try:
            index = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        name = candidate.name.removesuffix("_index.json")
        for split in index.get("splits", {}) if isinstance(index, dict) else {}:
            if f"{name}_{split}" == set_name:
                return candidate, index, split
    return None


def check_sets(files: list[Path], require_index: bool = True) -> list[str]:
    """Problems of the shard sets these files belong to, judged against each set's index: missing index
    (partial write), files the index does not list (a stale or mixed set), listed files missing,
    inconsistent -of-YYYYY totals. Record counts are checked by `verify_set`."""
    problems = []
    sets: dict[tuple[Path, str], list[Path]] = {}
    for path in files:
        key = _set_key(path)
        if key is not None:
            sets.setdefault(key, []).append(path)
    for (folder, set_name), members in sorted(sets.items()):
        totals = sorted({SHARD_NAME.match(p.name).group("total") for p in members})
        if len(totals) > 1:
            problems.append(
                f"{folder}/{set_name}_*: mixed set, shards of {len(totals)} runs (-of-{', -of-'.join(totals)}); "
                "re-create it with `facedancer shard --overwrite`"
            )
        found = find_index(folder, set_name)
        if found is None:
            if not require_index:
                continue
            problems.append(
                f"{folder}/{set_name}_*: no index lists this set (an interrupted write; shards of the original code "
                "have none: pass --allow_unindexed); re-create it with `facedancer shard --overwrite`"
            )
            continue
        index_path, index, split = found
        listed = set(index["splits"][split].get("shards", {}))
        present = {p.name for p in folder.glob(f"{set_name}_*-of-*{SHARD_SUFFIX}")}
        extra, missing = sorted(present - listed), sorted(listed - present)
        if extra:
            problems.append(
                f"{folder}/{set_name}_*: {len(extra)} files not in {index_path.name} (e.g. {extra[0]}): "
                "stale shards of another run; delete them or re-shard with --overwrite"
            )
        if missing:
            problems.append(
                f"{folder}/{set_name}_*: {len(missing)} files listed in {index_path.name} are missing "
                f"(e.g. {missing[0]}); re-shard with --overwrite"
            )
    return problems


def expected_records(path: Path) -> int | None:
    """The record count the set's index promises for this shard (None: no index lists it)."""
    key = _set_key(path)
    found = find_index(path.parent, key[1]) if key else None
    if found is None:
        return None
    _, index, split = found
    return index["splits"][split].get("shards", {}).get(path.name)
