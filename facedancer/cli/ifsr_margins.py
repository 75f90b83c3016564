"""`facedancer ifsr-margins`: per-block IFSR margins for your identity encoder from same-identity image pairs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facedancer.cli import types
from facedancer.cli.common import add_max_pixels_flag

log = logging.getLogger("facedancer.ifsr")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "ifsr-margins",
        help="compute IFSR margins for an identity encoder from aligned images of several identities",
        description="Margin of a block = mean cosine distance between that block's outputs for two different "
        "images of one identity, over same-identity pairs from identity folders (DATASET/identity/images) or "
        "shard labels. Writes the same JSON format as arcface_model/ifsr_margins.json.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data_dir", help="aligned faces in identity folders")
    src.add_argument("--shards", help="shard glob(s) with identity labels (written by facedancer shard)")
    p.add_argument("--arcface_path", required=True, help="identity encoder file (e.g. ArcFace-Res50.h5)")
    p.add_argument("--blocks", default=None, help="comma-separated block names (default: the 11 published blocks)")
    p.add_argument("--output", required=True, help="margins JSON to write")
    p.add_argument(
        "--max_pairs", type=types.POSITIVE_INT, default=2000, help="same-identity pairs to average over (2000)"
    )
    p.add_argument("--max_images", type=types.int_at_least(2), default=50, help="images used per identity (50)")
    p.add_argument("--batch_size", type=types.POSITIVE_INT, default=16, help="images per encoder call (16)")
    p.add_argument("--seed", type=int, default=0, help="seed for pair sampling (0)")
    add_max_pixels_flag(p)
    p.set_defaults(func=run)


def _from_folders(data_dir: str, max_images: int) -> dict[str, list[bytes]]:
    from facedancer.shards import list_identities

    return {name: [p.read_bytes() for p in files[:max_images]] for name, files in list_identities(Path(data_dir))}


def _from_shards(pattern: str, max_images: int) -> dict[str, list[bytes]]:
    import tensorflow as tf

    from facedancer.data import resolve_shards
    from facedancer.shards import decode_example

    groups: dict[str, list[bytes]] = {}
    for raw in tf.data.TFRecordDataset(resolve_shards(pattern)):
        record = decode_example(raw.numpy())
        if record["label"] < 0:
            continue
        key = record["identity"] or str(record["label"])
        if len(groups.setdefault(key, [])) < max_images:
            groups[key].append(record["face"])
    return groups


def run(args: argparse.Namespace) -> int:
    import tensorflow as tf

    from facedancer.errors import FaceDancerError
    from facedancer.identity import IFSR_BLOCKS
    from facedancer.ifsr import compute_margins, save_margins
    from facedancer.models import load
    from facedancer.paths import check_output_file, refuse_output_over_inputs

    inputs = [("--arcface_path", args.arcface_path), ("--data_dir", args.data_dir)]
    if args.shards:
        from facedancer.data import resolve_shards

        inputs += [("--shards", f) for f in resolve_shards(args.shards)]
    elif not Path(args.data_dir).is_dir():
        raise FaceDancerError(f"--data_dir {args.data_dir} is not a folder; give the aligned faces' folder")
    refuse_output_over_inputs(args.output, inputs)
    check_output_file(args.output)
    encoder = load(args.arcface_path, kind="identity").model
    size = int(encoder.inputs[0].shape[1])
    blocks = [b.strip() for b in args.blocks.split(",")] if args.blocks else list(IFSR_BLOCKS)
    raw = _from_folders(args.data_dir, args.max_images) if args.data_dir else _from_shards(args.shards, args.max_images)

    def prepare(data: bytes):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32) / 255.0, [size, size], antialias=True).numpy()

    try:
        images = {name: [prepare(d) for d in items] for name, items in raw.items() if len(items) > 1}
    except tf.errors.InvalidArgumentError as exc:
        raise FaceDancerError(f"an input image cannot be decoded ({exc.message})") from exc
    margins, pairs = compute_margins(encoder, images, blocks, args.max_pairs, args.batch_size, args.seed)
    save_margins(
        margins,
        args.output,
        description=f"IFSR margins of {args.arcface_path} from {pairs} same-identity pairs of {len(images)} identities",
        source=args.data_dir or args.shards,
    )
    for block, value in zip(margins.blocks, margins.values, strict=True):
        log.info("%-20s %.6f", block, value)
    log.info("wrote %s (%d pairs, %d identities)", args.output, pairs, len(images))
    return 0
