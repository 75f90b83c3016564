"""The training input pipeline: shards -> batches of (target, source, same) for the GAN step.

`same` is 1.0 where the source is the target itself (a self-reconstruction pair, which the
reconstruction and perceptual losses use). Images are float32 in [-1, 1] before the colour jitter.

The jitter is the original trainer's (train/train.py, which applies it inside its step; here it belongs to
the input pipeline, so the step takes the batch as given): after the self pairs are formed, the targets
and the sources each get ONE random draw per batch, from different seeds, on the [-1, 1] images: brightness
delta in ±0.3, contrast and saturation factors in 0.9–1.1, not clipped. As in the original, the three
operations of one image set share their seed, so their three factors come from one uniform draw.
`per_sample_augment` (a deviation) draws independent factors per sample and per operation instead.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass
from pathlib import Path

from facedancer.errors import FaceDancerError
from facedancer.shards import check_framing


@dataclass(frozen=True)
class PipelineOptions:
    batch_size: int = 10
    image_size: int = 256
    same_ratio: float = 0.2
    same_identity_ratio: float = 0.0
    augment: bool = True
    per_sample_augment: bool = False
    brightness: float = 0.3
    contrast: tuple[float, float] = (0.9, 1.1)
    saturation: tuple[float, float] = (0.9, 1.1)
    shuffle_buffer: int = 1000
    repeat: bool = True
    seed: int | None = None
    check_shards: bool = True

    def __post_init__(self):
        if self.batch_size < 1:
            raise FaceDancerError(f"batch size must be at least 1, got {self.batch_size}")
        for name in ("same_ratio", "same_identity_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FaceDancerError(f"{name} must be in [0, 1], got {getattr(self, name)}")


def resolve_shards(patterns: str | list[str], check_sets: bool = True) -> list[str]:
    """Sorted shard files matching one or several globs (comma-separated allowed).

    Folders are refused with the glob to use, and (check_sets) so is a glob matching a mixed set
    (shards of two runs side by side, which would feed images twice).
    """
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    matches = sorted({f for p in patterns for f in globlib.glob(str(Path(p.strip()).expanduser()))})
    folders = [f for f in matches if Path(f).is_dir()]
    files = [f for f in matches if not Path(f).is_dir()]
    if folders and not files:
        example = Path(folders[0]) / "NAME_train_*-of-*.records"
        raise FaceDancerError(f"{folders[0]} is a folder; give a glob of shard files, e.g. '{example}'")
    if not files:
        raise FaceDancerError(f"no shard files match {', '.join(patterns)}")
    if check_sets:
        from facedancer.shards import SHARD_NAME, SHARD_SUFFIX

        totals: dict[tuple[str, str], set[str]] = {}
        for f in files:
            match = SHARD_NAME.match(Path(f).name)
            if match:
                totals.setdefault((str(Path(f).parent), match.group("set")), set()).add(match.group("total"))
        mixed = [f"{folder}/{name}_*" for (folder, name), found in sorted(totals.items()) if len(found) > 1]
        if mixed:
            raise FaceDancerError(
                f"{mixed[0]} mixes shards of several runs (different -of- totals); re-create the set with "
                "`facedancer shard --overwrite` or delete the stale files (`facedancer shard --verify` lists them)"
            )
        for (folder, name), (total,) in sorted(totals.items()):
            on_disk = len(list(Path(folder).glob(f"{globlib.escape(name)}_*-of-{total}{SHARD_SUFFIX}")))
            if on_disk < int(total):  # shards are renamed into place one by one: an interrupted run left part
                raise FaceDancerError(
                    f"{folder}/{name}_*-of-{total}{SHARD_SUFFIX}: only {on_disk} of {int(total)} shards exist "
                    "(an interrupted or partly copied set); re-create it with `facedancer shard --overwrite`"
                )
    return files


def _parse(record):
    import tensorflow as tf

    features = tf.io.parse_single_example(
        record,
        {
            "face": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
        },
    )
    return features["face"], features["label"]


def _decode(face_bytes, size: int):
    import tensorflow as tf

    image = tf.io.decode_image(face_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    image = tf.image.resize(tf.cast(image, tf.float32) / 255.0, [size, size], antialias=True)
    return tf.clip_by_value(image, 0.0, 1.0)


def jitter(images, seed, options: PipelineOptions):
    """The original's colour jitter of a batch in [-1, 1]: one brightness, contrast and saturation draw for
    the whole batch, all three from `seed` (shape [2] int32), as its train_step does; no clipping."""
    import tensorflow as tf

    images = tf.image.stateless_random_brightness(images, options.brightness, seed)
    images = tf.image.stateless_random_contrast(images, *options.contrast, seed)
    return tf.image.stateless_random_saturation(images, *options.saturation, seed)


def jitter_per_sample(images, seed, options: PipelineOptions):
    """Deviation (--per_sample_augment): independent factors per sample and per operation."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, tf.shape(images)[0] * 3)
    seeds = tf.reshape(seeds, [-1, 3, 2])

    def one(args):
        image, s = args
        image = tf.image.stateless_random_brightness(image, options.brightness, s[0])
        image = tf.image.stateless_random_contrast(image, *options.contrast, s[1])
        return tf.image.stateless_random_saturation(image, *options.saturation, s[2])

    return tf.map_fn(one, (images, seeds), fn_output_signature=tf.float32)


def pair_batch(target, source, uniform, seeds, options: PipelineOptions):
    """(target, source, same) from a batch of decoded [0, 1] images, as the original's loop and step do:
    flag self pairs (share same_ratio, at least one: a random one when the draw picks none), set their source
    to the target, map to [-1, 1], then jitter targets with seeds[0] and sources with seeds[1]."""
    import tensorflow as tf

    n = tf.shape(target)[0]
    same = uniform[:n] < options.same_ratio
    # none drawn: one at a random place, as the original (`source_same[np.random.randint(batch)] = 1`); the
    # argmax of the batch's i.i.d. uniform draws is such a place, with no further draw
    forced = tf.cast(tf.argmax(uniform[:n]), tf.int32)
    same = tf.logical_or(same, tf.logical_and(tf.logical_not(tf.reduce_any(same)), tf.range(n) == forced))
    source = tf.where(same[:, None, None, None], target, source)
    target, source = target * 2.0 - 1.0, source * 2.0 - 1.0
    if options.augment:
        augment = jitter_per_sample if options.per_sample_augment else jitter
        target, source = augment(target, seeds[0], options), augment(source, seeds[1], options)
    return target, source, tf.cast(same, tf.float32)


def _records(files: list[str], options: PipelineOptions, stream: int):
    """An endless (or single-pass) stream of (encoded face, label); `stream` decorrelates the copies."""
    import tensorflow as tf

    seed = None if options.seed is None else options.seed * 1000 + stream
    deterministic = options.seed is not None
    ds = tf.data.Dataset.from_tensor_slices(files)
    if options.repeat:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 8),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    # A single pass (validation) keeps targets in file order but still shuffles the sources, so that
    # target/source pairs are not all self pairs.
    if (options.repeat or stream == 1) and options.shuffle_buffer > 1:
        ds = ds.shuffle(options.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.map(_parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)


def _seeds(options: PipelineOptions, stream: int, per_element: int):
    """Per-element stateless seeds: shape (per_element, 2) int32, reproducible under options.seed."""
    import tensorflow as tf

    seed = None if options.seed is None else options.seed * 1000 + 500 + stream
    return tf.data.Dataset.random(seed=seed).batch(2).map(lambda r: tf.cast(r % 2**31, tf.int32)).batch(per_element)


def _images(files: list[str], options: PipelineOptions, stream: int):
    """Decoded images in [0, 1]."""
    import tensorflow as tf

    return _records(files, options, stream).map(
        lambda face, label: _decode(face, options.image_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=options.seed is not None,
    )


def _same_identity_pairs(files: list[str], options: PipelineOptions):
    """(target, source): two different images of one identity, paired within a shuffle window by label."""
    import tensorflow as tf

    records = _records(files, options, stream=2).filter(lambda face, label: label >= 0)
    pairs = records.group_by_window(
        key_func=lambda face, label: label,
        reduce_func=lambda key, window: window.batch(2, drop_remainder=True),
        window_size=2,
    ).filter(lambda faces, labels: faces[0] != faces[1])
    return pairs.map(
        lambda faces, labels: (_decode(faces[0], options.image_size), _decode(faces[1], options.image_size)),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=options.seed is not None,
    )


def _check_identity_pairs_possible(files: list[str]) -> None:
    """Same-identity pairs need an identity with two images; the index JSON beside our shards tells."""
    import json

    for index in sorted({p for f in files for p in Path(f).parent.glob("*_index.json")}):
        try:
            splits = json.loads(index.read_text()).get("splits", {})
        except (OSError, ValueError):
            continue
        counts = [v["count"] for split in splits.values() for v in split.get("identities", {}).values()]
        if counts and max(counts) >= 2:
            return
        if counts:
            raise FaceDancerError(f"same-identity pairs need an identity with two or more images; {index} has none")


def make_dataset(patterns: str | list[str], options: PipelineOptions | None = None):
    """tf.data.Dataset of (target, source, same) batches from TFRecord shards (ours or the original's)."""
    import tensorflow as tf

    options = options or PipelineOptions()
    files = resolve_shards(patterns)
    if options.check_shards:
        for f in files:
            check_framing(f)
    pairs = tf.data.Dataset.zip((_images(files, options, 0), _images(files, options, 1)))
    if options.same_identity_ratio > 0:
        _check_identity_pairs_possible(files)
        weights = [1.0 - options.same_identity_ratio, options.same_identity_ratio]
        pairs = tf.data.Dataset.sample_from_datasets(
            [pairs, _same_identity_pairs(files, options)],
            weights=weights,
            seed=options.seed,
            stop_on_empty_dataset=False,
        )
    pairs = pairs.batch(options.batch_size, drop_remainder=options.repeat)
    flags = tf.data.Dataset.random(seed=options.seed).map(lambda r: tf.cast(r % 2**31, tf.float32) / 2.0**31)
    flags = flags.batch(options.batch_size)
    jitter_seeds = _seeds(options, 0, 2)  # per batch: [target seed, source seed]

    ds = tf.data.Dataset.zip((pairs, flags, jitter_seeds)).map(
        lambda batch, uniform, seeds: pair_batch(batch[0], batch[1], uniform, seeds, options),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
