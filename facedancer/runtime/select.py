"""Build the function that runs the generator, for a --runtime / --precision choice, checked against float32.

Every choice other than float32 TensorFlow is run at start-up on calibration crops (real aligned faces) next
to float32 TensorFlow; one that agrees less than its bar (PSNR, outputs in [-1, 1]) is replaced by float32
with one warning, as the graph rewrites of facedancer.nn.inference are. `auto` keeps every candidate that
passes the strict bar (AUTO_MIN_DB) and times them on this machine; the fastest runs.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facedancer.errors import FaceDancerError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "tensorflow", "onnxruntime")
PRECISIONS = ("auto", "float32", "bfloat16", "int8")
AUTO_MIN_DB = 40.0  # `auto` only takes what is indistinguishable from float32 by eye
FLOAT32_MIN_DB = 80.0  # ONNX Runtime float32 agrees with TensorFlow to ~95-130 dB; below 80 something is wrong
EXPLICIT_MIN_DB = {"bfloat16": 35.0, "int8": 25.0}  # asked for by name: a looser bar, the PSNR is logged
SUPPORTED = {"tensorflow": ("float32", "bfloat16"), "onnxruntime": ("float32", "int8")}


class Output(np.ndarray):
    """A numpy array that also answers `.numpy()`, so callers written for TensorFlow's eager tensors work."""

    def numpy(self) -> np.ndarray:
        return np.asarray(self)


class GeneratorRunner:
    """(crops (N, S, S, 3) in [-1, 1], unit identities (N, 512)) -> float32 crops (numpy arrays, `Output`)."""

    runtime = "tensorflow"
    precision = "float32"
    psnr_db: float | None = None  # agreement with float32 TensorFlow on the calibration crops (None: not checked)
    detail = ""

    def __call__(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        checked = f", {self.psnr_db:.1f} dB vs float32 TensorFlow" if self.psnr_db not in (None, float("inf")) else ""
        return f"{self.runtime} {self.precision}{f' ({self.detail})' if self.detail else ''}{checked}"


class TensorFlowRunner(GeneratorRunner):
    def __init__(self, net, precision: str, rewritten: bool):
        import tensorflow as tf

        self.net, self.precision = net, precision
        self.detail = "graph rewritten" if rewritten else "graph as stored"
        size = int(net.inputs[0].shape[1])
        self._fn = tf.function(
            lambda x, z: tf.cast(net([x, z], training=False), tf.float32),
            input_signature=[
                tf.TensorSpec([None, size, size, 3], tf.float32),
                tf.TensorSpec([None, int(net.inputs[1].shape[-1])], tf.float32),
            ],
        )

    def __call__(self, x, z):
        return self._fn(x, z).numpy().view(Output)


class OnnxRunner(GeneratorRunner):
    runtime = "onnxruntime"

    def __init__(self, path: Path, precision: str, providers: list, kept_float: list[str] | None = None):
        import onnxruntime as ort

        from facedancer.runtime.providers import provider_names

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path, self.precision, self.kept_float = Path(path), precision, kept_float or []
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.providers = self.session.get_providers()
        self.detail = ", ".join(p.removesuffix("ExecutionProvider") for p in provider_names(providers))
        self._names = [i.name for i in self.session.get_inputs()]

    def __call__(self, x, z):
        x, z = np.ascontiguousarray(x, np.float32), np.ascontiguousarray(z, np.float32)
        return self.session.run(None, {self._names[0]: x, self._names[1]: z})[0].view(Output)


def onnx_available() -> bool:
    """Whether the `onnx` extra (onnxruntime, tf2onnx, onnx) is installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError:
        return False
    return True


def run_batched(runner: Callable, x: np.ndarray, z: np.ndarray, batch: int) -> np.ndarray:
    """Run in fixed-size batches (the last one padded with zeros), as FaceSwapper does."""
    out = []
    for start in range(0, len(x), batch):
        xs, zs = x[start : start + batch], z[start : start + batch]
        filled = len(xs)
        if filled < batch:
            xs = np.concatenate([xs, np.zeros((batch - filled, *xs.shape[1:]), xs.dtype)])
            zs = np.concatenate([zs, np.zeros((batch - filled, *zs.shape[1:]), zs.dtype)])
        out.append(np.asarray(runner(xs, zs), np.float32)[:filled])
    return np.concatenate(out)


def seconds_per_batch(runner: Callable, x: np.ndarray, z: np.ndarray, batch: int, repeats: int = 3) -> float:
    xs, zs = np.resize(x, (batch, *x.shape[1:])), np.resize(z, (batch, *z.shape[1:]))
    runner(xs, zs)  # warm-up: tracing, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(xs, zs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _tensorflow(generator, precision: str, rewrite_graph: bool) -> TensorFlowRunner:
    net = generator
    if precision == "bfloat16":
        from facedancer.nn.precision import bf16_convolutions_run, with_dtype_policy

        if not bf16_convolutions_run():
            raise FaceDancerError(
                "--precision bfloat16: TensorFlow runs no bfloat16 convolutions on this CPU (it needs AVX-512, "
                "or is capped by ONEDNN_MAX_CPU_ISA); use --precision float32 or auto"
            )

        net = with_dtype_policy(generator, "mixed_bfloat16")
    stored = net
    if rewrite_graph:
        from facedancer.nn.inference import optimize_checked

        # float32 rewrites agree with the stored graph to ~120-130 dB, bf16 ones (rounding in both) to
        # ~45-70 dB; a wrong rewrite (a layout no test has seen) would be far below either bar
        net = optimize_checked(net, min_db=80.0 if precision == "float32" else 30.0)
    return TensorFlowRunner(net, precision, rewritten=net is not stored)


class _Builder:
    """Builds ONNX Runtime runners from one cached float32 export of the float32 TensorFlow graph."""

    def __init__(self, reference: TensorFlowRunner, model_hash: str, settings: dict):
        self.reference, self.model_hash, self.settings = reference, model_hash, settings
        self._float_path: Path | None = None

    def float_path(self) -> Path:
        from facedancer.runtime.onnx_export import cached_float_model

        if self._float_path is None:
            self._float_path = cached_float_model(self.reference.net, self.model_hash, self.settings["cache_dir"])
        return self._float_path

    def providers(self, folder: Path) -> list:
        import onnxruntime as ort

        from facedancer.runtime.providers import select_providers

        available = self.settings["available_providers"]
        available = ort.get_available_providers() if available is None else available
        return select_providers(list(available), self.settings["use_gpu"], folder / "tensorrt")

    def build(self, precision: str, calibration: tuple[np.ndarray, np.ndarray] | None) -> OnnxRunner:
        import onnxruntime as ort

        from facedancer.runtime.int8 import calibration_digest, quantized_model
        from facedancer.runtime.providers import cpu_has_vnni

        path = self.float_path()
        if precision == "float32":
            return OnnxRunner(path, "float32", self.providers(path.parent))
        x, z = calibration
        keep, reduce_range = self.settings["keep_float"], not cpu_has_vnni()
        name = f"generator_int8-{calibration_digest(x, z)}-keep{keep}-rr{int(reduce_range)}-ort{ort.__version__}.onnx"
        int8_path, kept = quantized_model(path, path.parent / name, x, z, keep, reduce_range)
        return OnnxRunner(int8_path, "int8", self.providers(path.parent), kept)


def _candidates(runtime: str, precision: str) -> list[tuple[str, str]]:
    from facedancer.nn.precision import cpu_has_native_bf16

    runtimes = ["tensorflow", "onnxruntime"] if runtime == "auto" else [runtime]
    if runtime == "auto" and not onnx_available():
        log.info("--runtime auto: onnxruntime/tf2onnx/onnx are not installed (the onnx extra); TensorFlow only")
        runtimes = ["tensorflow"]
    if precision != "auto":
        return [(r, precision) for r in runtimes if precision in SUPPORTED[r]]
    out = []
    for r in runtimes:
        for p in SUPPORTED[r]:
            if p == "bfloat16" and not cpu_has_native_bf16():  # emulated bf16 is slower than float32: not a choice
                continue
            out.append((r, p))
    return out


def generator_runner(
    generator,
    runtime: str = "tensorflow",
    precision: str = "auto",
    *,
    rewrite_graph: bool = True,
    model_file: str | Path | None = None,
    calibration: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    available_providers: list[str] | None = None,
    use_gpu: bool | None = None,
    keep_float: int | None = None,
) -> GeneratorRunner:
    """The generator runner for a --runtime / --precision choice (see the module docstring).

    `runtime="tensorflow"` keeps the TensorFlow behaviour (precision auto: bfloat16 on CPUs with native bf16,
    else float32) and needs nothing else. The ONNX choices export once to `cache_dir` (default
    ~/.cache/facedancer/onnx) keyed by `model_file`'s bytes (or the model's weights), and are checked on
    `calibration()`: (aligned crops in [-1, 1], unit identities), e.g. from runtime.int8.calibration_set.
    `available_providers` and `use_gpu` override what onnxruntime reports (tests, --device_id -1).
    """
    from facedancer.runtime.int8 import KEEP_FLOAT

    if runtime not in RUNTIMES:
        raise FaceDancerError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if precision not in PRECISIONS:
        raise FaceDancerError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if runtime == "tensorflow":
        if precision == "int8":
            raise FaceDancerError("--precision int8 runs on ONNX Runtime: add --runtime onnxruntime (or auto)")
        from facedancer.swap import resolve_precision

        return _tensorflow(generator, resolve_precision(precision), rewrite_graph)
    if runtime == "onnxruntime" and not onnx_available():
        raise FaceDancerError(
            "--runtime onnxruntime needs onnxruntime, tf2onnx and onnx: pip install -e '.[onnx]' "
            "(scripts/install.sh installs them)"
        )
    if runtime == "onnxruntime" and precision == "bfloat16":
        raise FaceDancerError("ONNX Runtime has no bfloat16 CPU convolutions: use --runtime tensorflow for bfloat16")

    reference = _tensorflow(generator, "float32", rewrite_graph)
    candidates = [c for c in _candidates(runtime, precision) if c != ("tensorflow", "float32")]
    if not candidates:
        return reference
    if calibration is None:
        raise FaceDancerError(f"--runtime {runtime} --precision {precision} needs calibration crops to check against")
    x, z = calibration()
    expected = run_batched(reference, x, z, batch_size)

    from facedancer.nn.inference import agreement_db
    from facedancer.runtime.onnx_export import file_digest, model_digest

    model_hash = file_digest(model_file) if model_file else model_digest(generator)
    settings = {
        "cache_dir": Path(cache_dir) if cache_dir else None,
        "available_providers": available_providers,
        "use_gpu": os.environ.get("CUDA_VISIBLE_DEVICES") != "" if use_gpu is None else use_gpu,
        "keep_float": KEEP_FLOAT if keep_float is None else keep_float,
    }
    builder = _Builder(reference, model_hash, settings)
    # float32 TensorFlow competes only where float32 may be chosen (an explicit bf16/int8 is kept if it passes)
    passing: list[GeneratorRunner] = [reference] if runtime == "auto" and precision in ("auto", "float32") else []
    for candidate_runtime, candidate_precision in candidates:
        if candidate_precision == "float32":
            bar = FLOAT32_MIN_DB
        else:
            bar = AUTO_MIN_DB if precision == "auto" else EXPLICIT_MIN_DB[candidate_precision]
        if candidate_runtime == "tensorflow":
            runner = _tensorflow(generator, candidate_precision, rewrite_graph)
        else:
            runner = builder.build(candidate_precision, (x, z))
        runner.psnr_db = agreement_db(expected, run_batched(runner, x, z, batch_size))
        if runner.psnr_db >= bar:
            passing.append(runner)
        elif precision != "auto":
            log.warning(
                "%s agrees with float32 TensorFlow to only %.1f dB on the calibration crops (< %.0f); using float32",
                f"{candidate_runtime} {candidate_precision}",
                runner.psnr_db,
                bar,
            )
        else:
            log.info("--precision auto: %s is below %.0f dB; not a choice", runner.describe(), bar)
    if not passing:  # an explicit choice below its bar: float32 on the same runtime if that is fine, else TF
        if runtime == "onnxruntime" and precision != "float32":
            runner = builder.build("float32", None)
            runner.psnr_db = agreement_db(expected, run_batched(runner, x, z, batch_size))
            if runner.psnr_db >= FLOAT32_MIN_DB:
                return runner
        return reference
    if len(passing) == 1:
        chosen = passing[0]
    else:
        speed = {id(r): seconds_per_batch(r, x, z, batch_size) for r in passing}
        chosen = min(passing, key=lambda r: speed[id(r)])
        log.info(
            "fastest generator here: %s (%s)",
            chosen.describe(),
            "; ".join(f"{r.runtime} {r.precision} {batch_size / speed[id(r)]:.2f} faces/s" for r in passing),
        )
    log.info("generator: %s", chosen.describe())
    return chosen
