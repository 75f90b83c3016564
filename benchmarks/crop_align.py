"""crop_align throughput: images/s on real photos at 640x480 and 1920x1080 (decode + detect + align + write).

Photos come from the face_recognition==1.3.0 source archive (fetched with pip, cached like the tests').

    python benchmarks/crop_align.py                  # 24 images per size, 3 runs, median reported
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_tree(root: Path, size: tuple[int, int], count: int) -> None:
    """`count` JPEGs of `size`, each a real portrait placed on a canvas of that size."""
    import cv2
    import numpy as np
    from photos import OBAMA, photo_dir

    from facedancer.images import read_image, write_image

    folder = photo_dir()
    width, height = size
    sources = [read_image(folder / name) for name in (*OBAMA, "biden.jpg")]
    for i in range(count):
        image = sources[i % len(sources)]
        scale = min(width / image.shape[1], height / image.shape[0])
        resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
        canvas = np.full((height, width, 3), 128, np.uint8)
        y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
        canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
        write_image(root / f"id{i % 3}" / f"img{i:03d}.jpg", canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="images per size")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size (median reported)")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from facedancer.align_dataset import AlignOptions, align_dataset
    from facedancer.detection import default_detector

    detector = default_detector()
    print(f"crop_align: {args.images} images per size, median of {args.repeats} runs, {os.cpu_count()} cores")
    for size, max_side in [((640, 480), 0), ((1920, 1080), 0), ((1920, 1080), 640)]:
        # max_side 0: the default, full-size detection as the original; 640: the faster downscaled copy
        options = AlignOptions(min_size=32, workers=args.workers, max_side=max_side)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            make_tree(data, size, args.images)
            rates = []
            for run in range(args.repeats + 1):
                out = Path(tmp) / "out"
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                summary = align_dataset(data, out, options, detector=detector, progress=False)
                elapsed = time.perf_counter() - start
                if run:  # the first run warms the detector up
                    rates.append(args.images / elapsed)
            assert summary.written == args.images, summary.counts()
            print(
                f"{size[0]}x{size[1]}, --max_side {max_side}: {statistics.median(rates):.1f} images/s "
                f"(runs: {', '.join(f'{r:.1f}' for r in rates)})"
            )


if __name__ == "__main__":
    main()
