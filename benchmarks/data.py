"""Data throughput: sharding images/s, and training-pipeline batches/s at batch 10, 256² (with augmentation).

Uses aligned crops of the real test photos (face_recognition==1.3.0 archive), copied to --images files.

    python benchmarks/data.py --images 400 --batches 60
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_aligned(root: Path, count: int) -> None:
    import numpy as np
    from photos import OBAMA, photo_dir

    from facedancer.alignment import align
    from facedancer.detection import detect
    from facedancer.images import read_image, write_image

    folder = photo_dir()
    crops = []
    for name in (*OBAMA, "biden.jpg"):
        image = read_image(folder / name)
        crops.append(align(image, detect(image)[0].landmarks, 256)[0])
    rng = np.random.default_rng(0)
    for i in range(count):
        noisy = np.clip(crops[i % len(crops)] + rng.integers(-3, 4, crops[0].shape), 0, 255).astype(np.uint8)
        write_image(root / f"id{i % 20:02d}" / f"{i:05d}.png", noisy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="aligned images to shard")
    parser.add_argument("--batches", type=int, default=60, help="pipeline batches timed per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs (median reported)")
    parser.add_argument("--batch_size", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from facedancer.data import PipelineOptions, make_dataset
    from facedancer.shards import ShardOptions, write_shards

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "aligned"
        make_aligned(data, args.images)
        rates = []
        for run in range(args.repeats):
            out = Path(tmp) / f"shards{run}"
            start = time.perf_counter()
            write_shards(data, out, ShardOptions(data_name="bench", images_per_shard=100), progress=False)
            rates.append(args.images / (time.perf_counter() - start))
        print(
            f"sharding: {statistics.median(rates):.0f} images/s (validate + write; runs "
            f"{', '.join(f'{r:.0f}' for r in rates)}), {os.cpu_count()} cores"
        )

        pattern = str(Path(tmp) / "shards0" / "bench_train_*-of-*.records")
        rates = []
        for run in range(args.repeats):
            ds = make_dataset(pattern, PipelineOptions(batch_size=args.batch_size, image_size=256, seed=run))
            iterator = iter(ds)
            for _ in range(5):
                next(iterator)  # warm-up: file opening, shuffle buffer fill
            start = time.perf_counter()
            for _ in range(args.batches):
                next(iterator)
            rates.append(args.batches / (time.perf_counter() - start))
        print(
            f"pipeline: {statistics.median(rates):.1f} batches/s at batch {args.batch_size}, 256² "
            f"(= {statistics.median(rates) * args.batch_size * 2:.0f} decoded images/s; runs "
            f"{', '.join(f'{r:.1f}' for r in rates)})"
        )


if __name__ == "__main__":
    main()
