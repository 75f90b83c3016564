"""Generator throughput: faces/s and achieved GFLOP/s at several batch sizes and precisions.

Compares a compiled `tf.function` (with and without XLA, fp32 and bf16, graph as stored and rewritten for
inference by `facedancer.nn.inference`) against `model.predict` called once per face, which is what the
original's swap scripts do. GFLOP/s counts the stored graph's work, so rewritten rows read as "effective".
A freshly built generator gets trained-like instance-norm scales (see tests/standins.trained_like_norms).

    python benchmarks/generator.py                       # config C, batches 1 8 32, 3 repeats
    python benchmarks/generator.py --model FaceDancer_config_c_HQ.h5 --batches 1 8 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GFLOP_PER_FACE_C = 58.0  # config C forward pass at 256², multiply-adds counted as 2 FLOP


def time_calls(fn, repeats: int) -> list[float]:
    fn()  # warm-up: tracing, XLA compilation, oneDNN primitive creation
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR for images in [-1, 1] (peak-to-peak 2)."""
    mse = float(np.mean((np.clip(a, -1, 1) - np.clip(b, -1, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="generator file (default: a freshly built config C)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="batch sizes")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per setting (median reported)")
    parser.add_argument("--predict_faces", type=int, default=8, help="faces for the predict-per-face baseline")
    parser.add_argument("--no_xla", action="store_true", help="skip the XLA (jit_compile) runs")
    parser.add_argument("--no_bf16", action="store_true", help="skip the bf16 runs")
    parser.add_argument("--gflop", type=float, default=GFLOP_PER_FACE_C, help="GFLOP per face forward")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from standins import trained_like_norms

    import facedancer
    from facedancer.nn import build_generator, preset
    from facedancer.nn.inference import optimize_for_inference
    from facedancer.nn.precision import cpu_has_native_bf16, with_dtype_policy

    tf.keras.utils.set_random_seed(args.seed)
    if args.model:
        model = facedancer.load_model(args.model, kind="generator")
    else:
        model = trained_like_norms(build_generator(preset("C")))
    size = int(model.inputs[0].shape[1])
    rng = np.random.default_rng(args.seed)

    variants = [("fp32", model, False), ("fp32 rw", optimize_for_inference(model), False)]
    if not args.no_xla:
        variants.append(("fp32+XLA", model, True))
    bf16_model = None
    if not args.no_bf16 and (cpu_has_native_bf16() or tf.config.list_physical_devices("GPU")):
        bf16_model = optimize_for_inference(with_dtype_policy(model, "mixed_bfloat16"))
        variants.append(("bf16", with_dtype_policy(model, "mixed_bfloat16"), False))
        variants.append(("bf16 rw", bf16_model, False))
        if not args.no_xla:
            variants.append(("bf16+XLA", with_dtype_policy(model, "mixed_bfloat16"), True))

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; TensorFlow {tf.__version__}; {args.gflop:.0f} GFLOP/face; median of {args.repeats} calls")
    print("rw: graph rewritten for inference (facedancer.nn.inference)")
    print(f"{'variant':<10} {'batch':>5} {'s/call':>8} {'faces/s':>8} {'GFLOP/s':>8}")
    results: dict[tuple[str, int], float] = {}
    for batch in args.batches:
        x = tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"))
        z = rng.normal(size=(batch, 512)).astype("float32")
        z = tf.constant(z / np.linalg.norm(z, axis=1, keepdims=True))
        for name, net, jit in variants:
            fn = tf.function(lambda x, z, net=net: tf.cast(net([x, z], training=False), tf.float32), jit_compile=jit)
            seconds = statistics.median(time_calls(lambda fn=fn, x=x, z=z: fn(x, z).numpy(), args.repeats))
            results[(name, batch)] = batch / seconds
            print(
                f"{name:<10} {batch:>5} {seconds:>8.3f} {batch / seconds:>8.2f} {batch * args.gflop / seconds:>8.0f}",
                flush=True,
            )

    # The original's path: model.predict on one face at a time.
    faces = rng.uniform(-1, 1, (args.predict_faces, 1, size, size, 3)).astype("float32")
    zs = rng.normal(size=(args.predict_faces, 1, 512)).astype("float32")
    model.predict([faces[0], zs[0]], verbose=0)
    start = time.perf_counter()
    for face, z in zip(faces, zs, strict=True):
        model.predict([face, z], verbose=0)
    predict_fps = args.predict_faces / (time.perf_counter() - start)
    print(
        f"{'predict':<10} {1:>5} {1 / predict_fps:>8.3f} {predict_fps:>8.2f} {predict_fps * args.gflop:>8.0f}"
        "   (model.predict per face, the original's path)"
    )
    best_name, best_batch = max(results, key=results.get)
    print(
        f"best: {best_name} at batch {best_batch}: {results[(best_name, best_batch)]:.2f} faces/s = "
        f"{results[(best_name, best_batch)] / predict_fps:.2f}x predict-per-face"
    )

    if bf16_model is not None:
        x = rng.uniform(-1, 1, (4, size, size, 3)).astype("float32")
        z = rng.normal(size=(4, 512)).astype("float32")
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        ref = np.asarray(model([x, z]))
        low = np.asarray(tf.cast(bf16_model([x, z]), tf.float32))
        print(f"bf16 rewritten vs fp32 output PSNR: {psnr(ref, low):.1f} dB (images in [-1, 1])")


if __name__ == "__main__":
    main()
