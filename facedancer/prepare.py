"""Dataset preparation as one Apache Beam pipeline: photos ► aligned crops ► TFRecord shards and their index.

The pipeline runs the one-machine path's own functions, so the two give the same records: per photo
`align_dataset.align_photo` (detect, select, align), `align_dataset.output_paths` (crop names) and the skip
report; per crop `shards.encode_example`, `shards.identity_of`, `shards.label_map` and
`shards.split_identities` (labels and the validation split by identity). Any Beam runner runs it: the
DirectRunner on one machine, Dataflow, Flink or Spark across many.

Resumable and idempotent: crops are written under a temporary name and renamed (same name, same bytes on a
retry); a rerun reads crops that exist back instead of detecting again, and reuses the skip report of a run
with the same options. Shards go through `WriteToTFRecord`, whose temp-then-rename protocol commits one
attempt of each bundle, so a worker retried by the runner duplicates nothing. The index is written last.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import uuid
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath

from facedancer.align_dataset import (
    NAMES_JSON,
    REPORT_JSON,
    AlignOptions,
    AlignSummary,
    align_photo,
    list_images,
    load_names,
    output_paths,
    report_texts,
    skips_in_report,
    unreadable_detail,
)
from facedancer.align_dataset import crop_names as align_crop_names
from facedancer.atomic import write_text_atomic
from facedancer.errors import FaceDancerError
from facedancer.images import DEFAULT_MAX_PIXELS, ImageReadError, encode_image, read_image, set_max_pixels
from facedancer.shards import (
    SHARD_SUFFIX,
    ShardOptions,
    count_framed_records,
    encode_example,
    identity_of,
    index_document,
    index_name,
    label_map,
    shard_glob,
    shard_name,
    split_identities,
    split_summary,
)

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "facedancer[beam]"'
COUNTER_NAMESPACE = "facedancer.prepare"
# Beam metrics counters by the skip report's count they follow: one per photo; faces: one per crop aligned now.
COUNTERS = {
    "images": "images",
    "processed": "processed",
    "written": "faces",
    "already_done": "already_done",
    "no_face": "no_face",
    "small_image": "small_image",
    "small_face": "small_face",
    "multi_face": "multi_face",
    "unreadable": "unreadable",
}
TOO_SMALL = ("small_image", "small_face")  # both also count in the `too_small` counter
CROPS_FOLDER = "aligned"
VAL_TYPE = "val"


@dataclass
class PrepareOptions:
    """Everything `facedancer prepare` takes besides paths and pipeline options."""

    align: AlignOptions = field(default_factory=AlignOptions)
    shards: ShardOptions = field(default_factory=ShardOptions)
    crops: bool = True  # write the aligned PNGs under TARGET/aligned (a rerun reads them back)
    detector_threads: int = 1  # TensorFlow threads per worker process (0: TensorFlow's default, all cores)
    max_pixels: int = DEFAULT_MAX_PIXELS  # largest photo a worker reads (--max_pixels; set in each worker process)


@dataclass(frozen=True)
class PhotoResult:
    """One photo's result as it travels through the pipeline."""

    relative: str  # POSIX path below --data_dir
    identity: str | None  # None: a loose file beside identity folders (aligned, not sharded; as `shard`)
    crops: tuple = ()  # ((crop path relative to the crops folder, PNG bytes), ...)
    skipped: dict | None = None  # the skip report's entry
    counts: dict = field(default_factory=dict)


def _beam():
    try:
        import apache_beam as beam
    except ImportError as exc:
        raise FaceDancerError(f"`facedancer prepare` needs Apache Beam; install it with: {INSTALL_HINT}") from exc
    return beam


def _filesystems():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _is_local(path: str) -> bool:
    return _filesystems().get_scheme(path) is None


def _join(root: str, relative: str) -> str:
    """`root/relative` on any filesystem; for local paths exactly as `align` spells them (str of a Path)."""
    if _is_local(root):
        return str(Path(root) / relative)
    return _filesystems().join(root, relative)


def _read_bytes(path: str) -> bytes:
    from apache_beam.io.filesystem import CompressionTypes

    with _filesystems().open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def _write_atomic(path: str, data: bytes) -> None:
    """Write under a temporary name beside `path`, then rename: readers never see half a file."""
    from apache_beam.io.filesystem import CompressionTypes

    fs = _filesystems()
    folder, name = fs.split(path)
    tmp = fs.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")
    with fs.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        f.write(data)
    try:
        fs.rename([tmp], [path])
    except Exception:
        fs.delete([tmp])
        raise


def list_photos(data_dir: str, target_dir: str) -> list[str]:
    """Relative POSIX paths of every non-hidden file below data_dir, sorted (the same walk as `align`)."""
    if _is_local(data_dir):
        root = Path(data_dir)
        if not root.is_dir():
            raise FaceDancerError(f"--data_dir {data_dir} is not a folder")
        target = Path(target_dir).resolve() if _is_local(target_dir) else None
        inside = target if target is not None and target.is_relative_to(root.resolve()) else None
        return [p.relative_to(root).as_posix() for p in list_images(root, exclude=inside)]
    fs = _filesystems()
    prefix = data_dir.rstrip("/") + "/"
    matches = fs.match([prefix + "**"])[0].metadata_list
    relative = (m.path[len(prefix) :] for m in matches if m.path.startswith(prefix))
    target = target_dir.rstrip("/") + "/"
    return sorted(
        r
        for r in relative
        if r and not any(part.startswith(".") for part in r.split("/")) and not (prefix + r).startswith(target)
    )


def crop_names(name: str, count: int, faces: str) -> list[str]:
    """Crop paths (relative to the crops folder) of a photo whose crop name (from `align_dataset.crop_names`,
    unique across the input) is `name`: `align`'s naming, unchanged."""
    return [p.as_posix() for p in output_paths(Path(), name, count, faces)]


def previous_skips(target_dir: str, options: AlignOptions) -> dict[str, dict]:
    """The last run's skipped photos, if it ran with the same options (read from TARGET/crop_align_report.json)."""
    path = _join(target_dir, REPORT_JSON)
    try:
        if not _filesystems().exists(path):
            return {}
        return skips_in_report(_read_bytes(path).decode(), options)
    except OSError:
        return {}


def _load_detector(threads: int):
    """The worker's detector. Runners start one worker process per core, so each gets `threads` TensorFlow
    threads (1: no oversubscription); a process whose TensorFlow already runs keeps its setting."""
    import tensorflow as tf

    from facedancer.detection import RetinaFaceDetector

    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            log.debug("TensorFlow already initialised in this process; keeping its thread settings")
    return RetinaFaceDetector()


def _align_fn_class():
    beam = _beam()
    from apache_beam.utils import shared

    class AlignPhotoFn(beam.DoFn):
        """Per photo: reuse its crops or its skip entry from a previous run, or decode, detect and align it.

        The detector is loaded once per worker process (shared by its threads) and runs one image per graph
        call: the RetinaFace graph answers only for the first image of a batch.
        """

        def __init__(
            self,
            data_dir: str,
            crops_dir: str | None,
            options: AlignOptions,
            flat_name: str | None,
            threads: int,
            max_pixels: int = DEFAULT_MAX_PIXELS,
        ):
            self.data_dir, self.crops_dir, self.options, self.flat_name = data_dir, crops_dir, options, flat_name
            self.threads, self.max_pixels = threads, max_pixels
            self._detector_handle = shared.Shared()

        def setup(self):
            from apache_beam.metrics import Metrics

            self._detector = self._detector_handle.acquire(functools.partial(_load_detector, self.threads))
            self._counters = {key: Metrics.counter(COUNTER_NAMESPACE, name) for key, name in COUNTERS.items()}
            self._too_small = Metrics.counter(COUNTER_NAMESPACE, "too_small")
            set_max_pixels(self.max_pixels)  # the worker's own process: the flag does not travel as a global

        def _result(self, relative: str, counts: dict, crops=(), skipped=None) -> PhotoResult:
            counts = {"images": 1, **counts}
            for name, value in counts.items():
                self._counters[name].inc(value)
                if name in TOO_SMALL:
                    self._too_small.inc(value)
            return PhotoResult(relative, identity_of(relative, self.flat_name), tuple(crops), skipped, counts)

        def _skip(self, relative: str, path: str, reason: str, detail: str, counts: dict | None = None):
            entry = {"path": path, "reason": reason, "detail": detail}
            return self._result(relative, {**(counts or {}), reason.replace("-", "_"): 1}, skipped=entry)

        def _existing_crops(self, crop_name: str) -> list[tuple[str, bytes]]:
            found: list[tuple[str, bytes]] = []
            fs = _filesystems()
            while True:
                names = crop_names(crop_name, len(found) + 1, self.options.faces)
                if len(names) <= len(found) or not fs.exists(_join(self.crops_dir, names[len(found)])):
                    return found
                name = names[len(found)]
                found.append((name, _read_bytes(_join(self.crops_dir, name))))

        def process(self, line: str):
            item = json.loads(line)
            relative, path = item["relative"], _join(self.data_dir, item["relative"])
            crop_name = item["name"]
            if item.get("skip"):
                entry = item["skip"]
                yield self._skip(relative, path, entry["reason"], entry.get("detail", ""))
                return
            if self.crops_dir is not None:
                done = self._existing_crops(crop_name)
                if done:
                    yield self._result(relative, {"already_done": 1}, crops=done)
                    return
            try:
                image = read_image(path, _read_bytes(path))
            except ImageReadError as exc:
                yield self._skip(relative, path, "unreadable", unreadable_detail(exc))
                return
            except OSError as exc:
                yield self._skip(relative, path, "unreadable", f"cannot read ({exc})")
                return
            outcome = align_photo(image, self._detector, self.options)
            if outcome.reason:
                yield self._skip(relative, path, outcome.reason, outcome.detail, {"processed": 1})
                return
            crops = []
            for name, crop in zip(
                crop_names(crop_name, len(outcome.crops), self.options.faces), outcome.crops, strict=True
            ):
                data = encode_image(crop, PurePosixPath(name).suffix)
                if self.crops_dir is not None:
                    _write_atomic(_join(self.crops_dir, name), data)
                crops.append((name, data))
            yield self._result(relative, {"processed": 1, "written": len(crops)}, crops=crops)

    return AlignPhotoFn


def _crops_of(result: PhotoResult) -> list[tuple[str, str, bytes]]:
    """(identity, crop name, PNG bytes) of the crops that go into shards (not loose files beside identities)."""
    if result.identity is None:
        return []
    return [(result.identity, name, data) for name, data in result.crops]


def _skip_of(result: PhotoResult) -> list[dict]:
    return [result.skipped] if result.skipped else []


def _counts_of(result: PhotoResult) -> dict:
    return result.counts


def _identity_of_crop(crop: tuple) -> str:
    return crop[0]


def _val_identities(labels: dict, fraction: float, seed: int) -> list[str]:
    """The validation identities, drawn as `shard` draws them: the first use of random.Random(seed)."""
    return sorted(split_identities(list(labels), fraction, random.Random(seed)))


def _records_of_split(record: tuple[str, bytes], data_type: str) -> list[bytes]:
    return [record[1]] if record[0] == data_type else []


def _sum_counts(dicts) -> dict:
    total: dict[str, int] = {}
    for counts in dicts:
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total


def _split_of(identity: str, val_ids, data_type: str) -> str:
    return VAL_TYPE if identity in val_ids else data_type


def _to_record(crop: tuple, labels: dict, val_ids, data_type: str) -> tuple[str, bytes]:
    identity, name, data = crop
    return _split_of(identity, val_ids, data_type), encode_example(data, labels[identity], identity, name)


def _shard_count(photos: int, share: float, images_per_shard: int) -> int:
    """Shards of a split, fixed before the run (WriteToTFRecord needs it): the listed photos' share / per shard."""
    return max(1, math.ceil(photos * share / images_per_shard))


def _index_writer(*args):
    """The pipeline's last step as a DoFn (the class is made once Beam is imported): see _IndexWriter."""
    beam = _beam()

    class IndexWriterFn(_IndexWriter, beam.DoFn):
        pass

    return IndexWriterFn(*args)


class _IndexWriter:
    """The pipeline's last step: the skip report, stale shards of an older set removed, then the index."""

    def __init__(self, data_dir: str, target_dir: str, options: PrepareOptions, shard_counts: dict[str, int]):
        self.data_dir, self.target_dir, self.options, self.shard_counts = data_dir, target_dir, options, shard_counts

    def process(self, _, labels, val_ids, per_identity, skipped, counts, *written):
        from apache_beam.io.filesystem import CompressionTypes

        fs = _filesystems()
        summary = AlignSummary(**{f.name: counts.get(f.name, 0) for f in fields(AlignSummary) if f.name != "skipped"})
        summary.skipped = sorted(skipped, key=lambda entry: entry["path"])
        for name, text in report_texts(summary, self.options.align).items():
            _write_atomic(_join(self.target_dir, name), text.encode())

        shard_options = self.options.shards
        splits = {}
        for data_type, total in self.shard_counts.items():
            names = [shard_name(shard_options.data_name, data_type, i, total) for i in range(total)]
            members = {
                i: n for i, n in per_identity.items() if _split_of(i, val_ids, shard_options.data_type) == data_type
            }
            keep = bool(members) or data_type != VAL_TYPE
            shards = {}
            for name in names:
                path = _join(self.target_dir, name)
                if keep:
                    with fs.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                        shards[name] = count_framed_records(f, fs.match([path])[0].metadata_list[0].size_in_bytes, path)
            if keep:
                identities = {i: {"label": labels[i], "count": n} for i, n in sorted(members.items())}
                splits[data_type] = split_summary(shard_options.data_name, data_type, shards, identities)
            self._remove_stale(data_type, set(shards))
        for data_type in (shard_options.data_type, VAL_TYPE):
            if data_type not in self.shard_counts:
                self._remove_stale(data_type, set())

        index = index_document(self.data_dir, shard_options, labels, splits, [])
        index["align"] = {"options": asdict(self.options.align), "counts": summary.counts()}
        _write_atomic(_join(self.target_dir, index_name(shard_options.data_name)), json.dumps(index, indent=2).encode())
        listing = _join(self.target_dir, _listing_name(shard_options.data_name))
        if fs.exists(listing):
            fs.delete([listing])
        yield index

    def _remove_stale(self, data_type: str, keep: set[str]) -> None:
        """Shards of this split from an older run (another shard count), and temp folders of killed runs."""
        fs = _filesystems()
        name = self.options.shards.data_name
        pattern = _join(self.target_dir, shard_glob(name, data_type))
        stale = [m.path for m in fs.match([pattern])[0].metadata_list if fs.split(m.path)[1] not in keep]
        temp = f"beam-temp-{name}_{data_type}-*"
        if _is_local(self.target_dir):
            stale += [str(p) for p in sorted(Path(self.target_dir).glob(temp))]
        else:  # object stores have no folders: the temp folder is its objects
            stale += [m.path for m in fs.match([_join(self.target_dir, temp + "/*")])[0].metadata_list]
        if stale:
            log.info("removing %d files of an older or interrupted run: %s", len(stale), ", ".join(stale))
            fs.delete(stale)


def _listing_name(data_name: str) -> str:
    return f".{data_name}_prepare_photos.jsonl"


def build_pipeline(pipeline, data_dir: str, target_dir: str, options: PrepareOptions):
    """Add the prepare transforms to `pipeline`; returns the PCollection holding the index (one element)."""
    beam = _beam()
    from apache_beam.io.tfrecordio import WriteToTFRecord

    shard_options = options.shards
    photos = list_photos(data_dir, target_dir)
    if not photos:
        raise FaceDancerError(f"--data_dir {data_dir} holds no files")
    folder_name = Path(data_dir).resolve().name if _is_local(data_dir) else PurePosixPath(data_dir.rstrip("/")).name
    flat_name = None if any("/" in r for r in photos) else folder_name  # a flat folder is one identity
    if _is_local(target_dir):
        Path(target_dir).mkdir(parents=True, exist_ok=True)
    known = previous_skips(target_dir, options.align)
    listing = _join(target_dir, _listing_name(shard_options.data_name))
    # Crop names unique across the input, as `align` gives them (kept from an earlier local run's mapping).
    crops_local = options.crops and _is_local(target_dir)
    previous = load_names(Path(target_dir) / CROPS_FOLDER) if crops_local else {}
    names = align_crop_names([Path(r) for r in photos], previous)
    if crops_local:
        (Path(target_dir) / CROPS_FOLDER).mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(target_dir) / CROPS_FOLDER / NAMES_JSON, json.dumps(names, indent=2, ensure_ascii=False))
    lines = (
        json.dumps({"relative": r, "name": Path(names[str(Path(r))]).as_posix(), "skip": known.get(_join(data_dir, r))})
        for r in photos
    )
    _write_atomic(listing, ("\n".join(lines) + "\n").encode())
    log.info("%d photos listed (%d skipped by the last run with these options)", len(photos), len(known))

    crops_dir = _join(target_dir, CROPS_FOLDER) if options.crops else None
    results = (
        pipeline
        | "ReadListing" >> beam.io.ReadFromText(listing)
        | "Reshuffle" >> beam.Reshuffle()  # spread photos over workers (one listing file is one split)
        | "AlignPhotos"
        >> beam.ParDo(
            _align_fn_class()(
                data_dir, crops_dir, options.align, flat_name, options.detector_threads, options.max_pixels
            )
        )
    )
    crops = results | "Crops" >> beam.FlatMap(_crops_of)
    skipped = results | "Skipped" >> beam.FlatMap(_skip_of)
    counts = results | "Counts" >> beam.Map(_counts_of) | "SumCounts" >> beam.CombineGlobally(_sum_counts)
    per_identity = (
        crops
        | "Identity" >> beam.Map(_identity_of_crop)
        | "CountPerIdentity" >> beam.combiners.Count.PerElement()
        | "AsDict" >> beam.combiners.ToDict()
    )
    labels = per_identity | "Labels" >> beam.Map(label_map)
    val_ids = labels | "ValSplit" >> beam.Map(_val_identities, shard_options.val_fraction, shard_options.seed)
    records = crops | "Encode" >> beam.Map(
        _to_record, beam.pvalue.AsSingleton(labels), beam.pvalue.AsSingleton(val_ids), shard_options.data_type
    )
    shard_counts = {
        shard_options.data_type: _shard_count(
            len(photos), 1 - shard_options.val_fraction, shard_options.images_per_shard
        )
    }
    if shard_options.val_fraction > 0:
        shard_counts[VAL_TYPE] = _shard_count(len(photos), shard_options.val_fraction, shard_options.images_per_shard)
    written = []
    for data_type, total in shard_counts.items():
        files = (
            records
            | f"Only_{data_type}" >> beam.FlatMap(_records_of_split, data_type)
            | f"Write_{data_type}"
            >> WriteToTFRecord(
                _join(target_dir, f"{shard_options.data_name}_{data_type}"),
                file_name_suffix=SHARD_SUFFIX,
                num_shards=total,
                shard_name_template="_SSSSS-of-NNNNN",
            )
        )
        written.append(beam.pvalue.AsList(files))
    return (
        pipeline
        | "Start" >> beam.Create([None])
        | "WriteIndex"
        >> beam.ParDo(
            _index_writer(data_dir, target_dir, options, shard_counts),
            beam.pvalue.AsSingleton(labels),
            beam.pvalue.AsSingleton(val_ids),
            beam.pvalue.AsSingleton(per_identity),
            beam.pvalue.AsList(skipped),
            beam.pvalue.AsSingleton(counts),
            *written,
        )
    )


@dataclass
class PrepareResult:
    index: dict | None  # NAME_index.json as written (None when the runner does not hand it back)
    counters: dict[str, int]  # Beam metrics (committed where the runner reports them)
    state: str


def prepare(
    data_dir: str | Path, target_dir: str | Path, options: PrepareOptions, pipeline_args: list[str] | None = None
) -> PrepareResult:
    """Run the pipeline with the runner and options in `pipeline_args` (default: the DirectRunner) and wait."""
    beam = _beam()
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    data_dir, target_dir = str(data_dir), str(target_dir)
    pipeline_options = PipelineOptions(pipeline_args or [])
    standard = pipeline_options.view_as(StandardOptions)
    if standard.runner in (None, "DirectRunner"):
        # The DirectRunner would hand this pipeline to Prism, downloading its binary first where a network is
        # reachable; its own engine (FnApiRunner) runs offline and honours --direct_num_workers/_running_mode.
        standard.runner = "FnApiRunner"
    pipeline = beam.Pipeline(options=pipeline_options)
    build_pipeline(pipeline, data_dir, target_dir, options)
    result = pipeline.run()
    state = result.wait_until_finish()
    counters = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(COUNTER_NAMESPACE))["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + (value or 0)
    index = None
    index_path = _join(target_dir, index_name(options.shards.data_name))
    if _filesystems().exists(index_path):
        index = json.loads(_read_bytes(index_path))
    return PrepareResult(index=index, counters=counters, state=str(state))
