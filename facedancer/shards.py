"""TFRecord shards of aligned faces: the record format, writing a dataset tree, and verifying shards.

Each record holds the encoded image bytes unchanged under `face` (the original's key, so the original's
shards read too), the identity `label` (subfolder index) and `identity` (its name), and the `path`
relative to the dataset folder. Files are named `NAME_TYPE_XXXXX-of-YYYYY.records`.
"""

from __future__ import annotations

import json
import logging
import random
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


def _split_identities(identities: list[str], fraction: float, rng: random.Random) -> set[str]:
    """Identities that go to validation: round(fraction * n), at least one when fraction > 0 and n > 1."""
    if fraction <= 0 or len(identities) < 2:
        if fraction > 0:
            log.warning("--val_fraction needs at least two identities; writing no validation split")
        return set()
    count = min(len(identities) - 1, max(1, round(fraction * len(identities))))
    return set(rng.sample(sorted(identities), count))


def _validated(samples: list[Sample], workers: int, report: ShardReport) -> Iterator[tuple[Sample, bytes]]:
    """(sample, file bytes) for images that decode; the rest are reported and skipped."""

    def check(sample: Sample) -> tuple[Sample, bytes | None, str]:
        try:
            data = sample.path.read_bytes()
            read_image(sample.path)
            return sample, data, ""
        except (ImageReadError, OSError) as exc:
            return sample, None, str(exc).split(": ", 1)[-1]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for sample, data, reason in pool.map(check, samples):
            if data is None:
                report.skipped.append({"path": sample.relative, "reason": reason})
                log.warning("skipping %s: %s", sample.relative, reason)
            else:
                yield sample, data


def _write_split(
    samples: list[Sample], target_dir: Path, options: ShardOptions, data_type: str, report: ShardReport, bar
) -> dict:
    import tensorflow as tf

    valid = list(_validated(samples, options.workers, report))
    bar.update(len(samples) - len(valid))
    total = max(1, -(-len(valid) // options.images_per_shard))
    shards, identities = {}, {}
    for index in range(total):
        chunk = valid[index * options.images_per_shard : (index + 1) * options.images_per_shard]
        name = shard_name(options.data_name, data_type, index, total)
        with atomic_path(target_dir / name) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
            for sample, data in chunk:
                writer.write(encode_example(data, sample.label, sample.identity, sample.relative))
                entry = identities.setdefault(sample.identity, {"label": sample.label, "count": 0})
                entry["count"] += 1
                bar.update()
        shards[name] = len(chunk)
    return {
        "images": len(valid),
        "shards": shards,
        "identities": identities,
        "glob": shard_glob(options.data_name, data_type),
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
    val_ids = _split_identities([name for name, _ in identities], options.val_fraction, rng)
    if options.shuffle:
        rng.shuffle(samples)
    splits = {options.data_type: [s for s in samples if s.identity not in val_ids]}
    if val_ids:
        splits["val"] = [s for s in samples if s.identity in val_ids]

    report = ShardReport()
    with progress_bar(total=len(samples), unit="img", desc="sharding", enabled=progress) as bar:
        for data_type, split in splits.items():
            report.splits[data_type] = _write_split(split, target_dir, options, data_type, report, bar)
    index = {
        "data_dir": str(data_dir),
        "options": {k: v for k, v in vars(options).items()},
        "labels": {name: label for label, (name, _) in enumerate(identities)},
        "splits": report.splits,
        "skipped": report.skipped,
    }
    write_text_atomic(target_dir / f"{options.data_name}_index.json", json.dumps(index, indent=2))
    return report


def check_framing(path: str | Path) -> int:
    """Walk a TFRecord file's length headers (no CRC or decode): the record count, or ShardError.

    Cheap enough to run on every shard before training, so a truncated file is named up front.
    """
    path = Path(path)
    count = 0
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                raise ShardError(f"{path}: truncated shard (record {count} header cut off); re-create it")
            (length,) = struct.unpack("<Q", header[:8])
            offset += 12 + length + 4
            if offset > size:
                raise ShardError(f"{path}: truncated shard (record {count} cut off); re-create it")
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
