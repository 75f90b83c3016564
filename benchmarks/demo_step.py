"""Where a demo training step's time goes: the demo's own settings (64², batch 4, the small ArcFace-layout
stand-in, no VGG, the light discriminator) timed with one part changed at a time (the default-width
discriminator, no cycle pass, no IFSR taps, XLA), and with TensorFlow's thread settings.

Each variant is built in a fresh process (thread settings are fixed at TensorFlow's start). Run it on an
AVX2-only CPU, or restrict oneDNN to AVX2:

    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/demo_step.py --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's facedancer, not an installed one

VARIANTS = {
    "demo (all demo losses, light D)": {},
    "default D widths (512 from 64² on)": {"d_channels": None},
    "no cycle pass (c_lambda 0)": {"c_lambda": 0.0},
    "no IFSR taps (ifsr_lambda 0)": {"ifsr_lambda": 0.0},
    "no cycle, no IFSR": {"c_lambda": 0.0, "ifsr_lambda": 0.0},
    "XLA (--jit)": {"jit": True},
}
THREADS = {"default threads": None, "intra 2 / inter 1": (2, 1), "intra 1 / inter 2": (1, 2)}


def time_variant(overrides: dict, threads, steps: int, size: int, batch: int) -> dict:
    """Build the demo's trainer with `overrides` in this process and time `steps` steps after a warm-up."""
    import numpy as np
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    from facedancer.demo import demo_train_options, random_arcface_layout
    from facedancer.legacy import save_legacy_h5
    from facedancer.training import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        arcface = Path(tmp) / "arcface.h5"
        save_legacy_h5(random_arcface_layout(0), arcface)
        options = demo_train_options(
            "unused", str(arcface), Path(tmp) / "runs", image_size=size, batch_size=batch, steps=steps, seed=0
        )
        options.__dict__.update(overrides)
        trainer = Trainer(options, Path(tmp) / "run")
        rng = np.random.default_rng(0)
        data = (
            tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")),
            tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")),
            tf.constant(np.eye(1, batch, dtype="float32")[0]),
        )
        step = trainer.train_function()
        start = time.perf_counter()
        float(step(data)["g_total"])
        first = time.perf_counter() - start
        times, cpu = [], []
        for _ in range(steps):
            start, cpu_start = time.perf_counter(), time.process_time()
            float(step(data)["g_total"])
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    return {"first_step_s": first, "step_s": statistics.median(times), "step_cpu_s": statistics.median(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant (median reported)")
    parser.add_argument("--image_size", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--only", help="run one variant in this process and print JSON (internal)")
    parser.add_argument("--threads", help="intra,inter (internal)")
    parser.add_argument("--variants", type=int, default=len(VARIANTS), help="only the first N variants")
    parser.add_argument("--no_threads", action="store_true", help="skip the thread-setting runs")
    args = parser.parse_args()
    if args.only is not None:
        threads = tuple(int(t) for t in args.threads.split(",")) if args.threads else None
        result = time_variant(VARIANTS[args.only], threads, args.steps, args.image_size, args.batch_size)
        print(json.dumps(result))
        return
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "all")
    print(
        f"demo train step, {args.image_size}², batch {args.batch_size}, {os.cpu_count()} cores, "
        f"ONEDNN_MAX_CPU_ISA={isa}; median of {args.steps} steps after the first (tracing) step; CPU s counts "
        "all threads (a busy machine inflates wall time, not CPU time)"
    )
    runs = [(name, None) for name in list(VARIANTS)[: args.variants]]
    if not args.no_threads:
        runs += [(next(iter(VARIANTS)), t) for t in list(THREADS)[1:]]
    for name, thread_name in runs:
        command = [sys.executable, __file__, "--only", name, "--steps", str(args.steps)]
        command += ["--image_size", str(args.image_size), "--batch_size", str(args.batch_size)]
        if thread_name:
            command += ["--threads", ",".join(map(str, THREADS[thread_name]))]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{name}: failed\n{done.stderr[-2000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        label = f"{name} [{thread_name or 'default threads'}]"
        print(
            f"{label:<56} {result['step_s']:6.2f} s/step  {args.batch_size / result['step_s']:6.2f} images/s  "
            f"{result['step_cpu_s']:6.2f} CPU s/step  first step {result['first_step_s']:5.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
