"""Generator throughput: faces/s and achieved GFLOP/s at several batch sizes and precisions.

Compares a compiled `tf.function` (with and without XLA, fp32 and bf16, graph as stored and rewritten for
inference by `facedancer.nn.inference`) against `model.predict` called once per face, which is what the
original's swap scripts do. GFLOP/s counts the stored graph's work, so rewritten rows read as "effective".
A freshly built generator gets trained-like instance-norm scales (see tests/standins.trained_like_norms).

Then every --runtime x --precision of `facedancer.runtime` (TensorFlow float32/bfloat16, ONNX Runtime
float32/int8; int8 calibrated on the aligned sample faces) with its PSNR against float32 TensorFlow on those
faces. ONNX Runtime picks its kernels from CPUID and ignores ONEDNN_MAX_CPU_ISA (which restricts TensorFlow's
oneDNN only); there is no switch to hold it to AVX2.

    python benchmarks/generator.py                       # config C, batches 1 8 32, 3 repeats
    python benchmarks/generator.py --model FaceDancer_config_c_HQ.h5 --batches 1 8 --repeats 5
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/generator.py --batches 1 8 --no_xla   # TensorFlow as on AVX2
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
    parser.add_argument("--no_runtimes", action="store_true", help="skip the runtime x precision table")
    parser.add_argument("--only_runtimes", action="store_true", help="only the runtime x precision table")
    parser.add_argument("--onnx_cache", help="ONNX export cache (default ~/.cache/facedancer/onnx)")
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

    from facedancer.runtime.providers import cpu_flags

    device = "GPU" if tf.config.list_physical_devices("GPU") else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; TensorFlow {tf.__version__}; {args.gflop:.0f} GFLOP/face; median of {args.repeats} calls")
    print(f"CPU flags: {' '.join(cpu_flags()) or '?'}; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '-')}")
    if not args.no_runtimes:
        runtime_table(model, args)
    if args.only_runtimes:
        return
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


def runtime_table(model, args) -> None:
    """faces/s of every runtime x precision choice, and its PSNR vs float32 TensorFlow on real aligned faces."""
    from standins import pixel_identity_encoder

    from facedancer.detection import default_detector
    from facedancer.nn.inference import agreement_db
    from facedancer.runtime import generator_runner
    from facedancer.runtime.int8 import calibration_set
    from facedancer.runtime.select import onnx_available, run_batched, seconds_per_batch
    from facedancer.swap import FaceSwapper, SwapOptions

    detector = default_detector()
    embedder = FaceSwapper(model, pixel_identity_encoder(), detector, SwapOptions(precision="float32"))
    x, z = calibration_set(detector, embedder.embed_faces, int(model.inputs[0].shape[1]))
    from facedancer.nn.precision import cpu_has_native_bf16

    combos = [("tensorflow", "float32")]
    if cpu_has_native_bf16():
        combos.append(("tensorflow", "bfloat16"))
    else:  # emulated bf16 is slower than float32; under ONEDNN_MAX_CPU_ISA=AVX2 oneDNN aborts on it
        print("tensorflow bfloat16 skipped: no native bf16 (or ONEDNN_MAX_CPU_ISA below it)")
    if onnx_available():
        combos += [("onnxruntime", "float32"), ("onnxruntime", "int8")]
    else:
        print("onnxruntime/tf2onnx/onnx not installed: TensorFlow rows only")
    reference = generator_runner(model, "tensorflow", "float32")
    expected = run_batched(reference, x, z, 8)
    print(f"runtime x precision ({len(x)} aligned sample faces; PSNR vs float32 TensorFlow on them)")
    print(
        f"{'runtime':<12} {'precision':<9} " + " ".join(f"{'b' + str(b) + ' f/s':>8}" for b in args.batches) + "   PSNR"
    )
    for runtime, precision in combos:
        try:
            runner = generator_runner(
                model, runtime, precision, calibration=lambda: (x, z), cache_dir=args.onnx_cache, batch_size=8
            )
            if (runner.runtime, runner.precision) != (runtime, precision):
                print(f"{runtime:<12} {precision:<9} fell back to {runner.describe()}")
                continue
            rates = [b / seconds_per_batch(runner, x, z, b, args.repeats) for b in args.batches]
            db = agreement_db(expected, run_batched(runner, x, z, 8))
        except Exception as exc:  # noqa: BLE001 - e.g. bf16 under ONEDNN_MAX_CPU_ISA=AVX2: report, go on
            print(f"{runtime:<12} {precision:<9} failed: {str(exc).splitlines()[0][:100]}", flush=True)
            continue
        kept = f"; float layers: {len(runner.kept_float)}" if getattr(runner, "kept_float", None) else ""
        print(
            f"{runtime:<12} {precision:<9} " + " ".join(f"{r:>8.2f}" for r in rates) + f"   {db:.1f} dB{kept}",
            flush=True,
        )


if __name__ == "__main__":
    main()
