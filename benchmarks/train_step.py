"""Training-step throughput: steps/s and images/s for config C at 256², batch 4, XLA off/on (and mixed
precision on a GPU), with every loss on: a ResNet50 ArcFace-layout identity encoder and VGG16 (random
weights, same cost as the real ones).

    python benchmarks/train_step.py --steps 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def arcface_resnet50(path: Path) -> str:
    from standins import arcface_resnet50_layout

    from facedancer.legacy import save_legacy_h5

    save_legacy_h5(arcface_resnet50_layout(), path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting (median reported)")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from standins import vgg16_notop_file

    from facedancer.train_options import TrainOptions
    from facedancer.training import Trainer

    gpu = bool(tf.config.list_physical_devices("GPU"))
    settings = [("fp32", False, False), ("fp32+XLA", False, True)]
    if gpu:
        settings += [("mixed", True, False), ("mixed+XLA", True, True)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        arcface = arcface_resnet50(tmp / "arcface.h5")
        vgg = str(vgg16_notop_file(tmp / "vgg.h5", args.image_size))
        rng = np.random.default_rng(0)
        b, s = args.batch_size, args.image_size
        batch = (
            tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype("float32")),
            tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype("float32")),
            tf.constant(np.eye(1, b, dtype="float32")[0]),
        )
        print(
            f"train step, config C {s}², batch {b}, {'GPU' if gpu else f'CPU ({os.cpu_count()} cores)'}; "
            f"median of {args.steps} steps after 2 warm-up steps"
        )
        for name, mixed, jit in settings:
            options = TrainOptions(
                arcface_path=arcface,
                perceptual_weights=vgg,
                image_size=s,
                batch_size=b,
                mixed_precision=mixed,
                jit=jit,
                config="C",
            )
            trainer = Trainer(options, tmp / name)
            step = trainer.train_function()
            times = []
            for i in range(args.steps + 2):
                start = time.perf_counter()
                out = step(batch)
                float(out["g_total"])
                if i >= 2:
                    times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            print(
                f"{name:<10} {1 / seconds:6.3f} steps/s  {b / seconds:6.2f} images/s  ({seconds:.2f} s/step)",
                flush=True,
            )


if __name__ == "__main__":
    main()
