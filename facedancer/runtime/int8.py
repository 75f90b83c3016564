"""int8 generator: ONNX Runtime static QDQ quantization calibrated on real aligned faces.

Weights are int8 per output channel, activations uint8 per tensor (ranges from the calibration crops);
only convolutions and matrix products are quantized, so instance norms, AdaIN and resizes stay float.
Quantization noise is measured per layer (the signal-to-noise drop from a layer's input to its output
when every layer is quantized) and the layers that add the most are kept in float.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from facedancer.atomic import atomic_path
from facedancer.errors import FaceDancerError

log = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
KEEP_FLOAT = 4  # layers kept in float: see the README's int8 section for how this was measured
SQNR_CAP = 120.0  # dB; exact tensors (graph inputs) have infinite SQNR


def calibration_set(
    detector,
    embed_faces: Callable,
    crop_size: int,
    folder: str | Path | None = None,
    count: int = 8,
    score: float = 0.9,
    max_side: int | None = 640,
) -> tuple[np.ndarray, np.ndarray]:
    """Aligned face crops in [-1, 1] (N, S, S, 3) and, for each, the unit identity of another crop (N, 512).

    Faces come from the photos in `folder` (--calibration_dir) or the face_recognition sample photos;
    mirrored copies fill the set up to `count` crops. Every crop is swapped to another crop's identity, as a
    real swap does.
    """
    from facedancer import samples
    from facedancer.alignment import align
    from facedancer.images import IMAGE_SUFFIXES, ImageReadError, read_image

    if folder is None:
        try:
            folder = samples.photo_dir()
        except FaceDancerError as exc:
            raise FaceDancerError(f"{exc}; pass --calibration_dir FOLDER with a few face photos instead") from exc
    folder = Path(folder)
    if not folder.is_dir():
        raise FaceDancerError(f"calibration folder not found: {folder}; pass a folder of face photos")
    crops, identities = [], []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            image = read_image(path)
        except ImageReadError:
            continue
        faces = detector.detect(image, score=score, max_side=max_side)[:2]
        if not faces:
            continue
        identities.extend(embed_faces(image, faces))
        crops.extend(align(image, face.landmarks, crop_size)[0] for face in faces)
        if len(crops) >= count:
            break
    if not crops:
        raise FaceDancerError(f"no face found in the photos of {folder}; calibration needs face photos")
    found = len(crops)
    for k in range(count - found):  # mirrored copies: same statistics, other pixels
        crops.append(crops[k % found][:, ::-1])
        identities.append(identities[k % found])
    x = np.stack(crops[:count]).astype(np.float32) / 127.5 - 1.0
    z = np.roll(np.stack(identities[:count]).astype(np.float32), 1, axis=0)
    return x, z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)


def calibration_digest(x: np.ndarray, z: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(z).tobytes()).hexdigest()[:16]


def _reader(x: np.ndarray, z: np.ndarray, names: list[str]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.rewind()

        def get_next(self):
            return next(self.items, None)

        def rewind(self):
            self.items = iter([{names[0]: x[i : i + 1], names[1]: z[i : i + 1]} for i in range(len(x))])

    return Reader()


def _input_names(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]


def quantize(float_path: Path, out_path: Path, x, z, exclude: list[str], reduce_range: bool) -> Path:
    """Static QDQ quantization of the convs and matmuls of `float_path`, except the nodes in `exclude`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    names = _input_names(float_path)
    root = logging.getLogger()
    advice = _DropAdvice()
    root.addFilter(advice)  # onnxruntime logs "consider pre-processing" on the root logger at every call
    try:
        with atomic_path(out_path) as tmp:
            quantize_static(
                str(float_path),
                str(tmp),
                _reader(x, z, names),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(exclude),
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        root.removeFilter(advice)
    return out_path


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


def _with_outputs(path: Path, tensors: list[str]) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    existing = {o.name for o in model.graph.output}
    model.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in tensors if name not in existing
    )
    return model.SerializeToString()


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(np.sum((reference.astype(np.float64) - other) ** 2))
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return SQNR_CAP if noise == 0 else min(SQNR_CAP, 10 * np.log10(max(signal, 1e-30) / noise))


def layer_sensitivity(float_path: Path, qdq_path: Path, x, z) -> dict[str, float]:
    """Node name -> dB of signal-to-quantization-noise ratio that the node loses between its input and its
    output in the fully quantized model (float model as the reference), largest first."""
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(float_path), load_external_data=False).graph
    nodes = [n for n in graph.node if n.op_type in QUANTIZED_OPS]
    tensors = sorted({n.input[0] for n in nodes} | {n.output[0] for n in nodes})
    names = _input_names(float_path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sqnr: dict[str, list[float]] = {t: [] for t in tensors}
    float_run = ort.InferenceSession(_with_outputs(float_path, tensors), options, providers=["CPUExecutionProvider"])
    qdq_run = ort.InferenceSession(_with_outputs(qdq_path, tensors), options, providers=["CPUExecutionProvider"])
    for i in range(len(x)):
        feed = {names[0]: x[i : i + 1], names[1]: z[i : i + 1]}
        ref = dict(zip([o.name for o in float_run.get_outputs()], float_run.run(None, feed), strict=True))
        got = dict(zip([o.name for o in qdq_run.get_outputs()], qdq_run.run(None, feed), strict=True))
        for t in tensors:
            if t in ref and t in got:
                sqnr[t].append(sqnr_db(ref[t], got[t]))
            elif t in names:
                sqnr[t].append(SQNR_CAP)
    mean = {t: float(np.mean(v)) for t, v in sqnr.items() if v}
    drops = {n.name: mean.get(n.input[0], SQNR_CAP) - mean[n.output[0]] for n in nodes if n.output[0] in mean}
    return dict(sorted(drops.items(), key=lambda item: -item[1]))


def quantized_model(
    float_path: Path, out_path: Path, x, z, keep_float: int = KEEP_FLOAT, reduce_range: bool = False
) -> tuple[Path, list[str]]:
    """The int8 model (cached at `out_path`) and the names of the layers kept in float.

    Quantizes every conv and matmul, measures each one's noise on the calibration crops, then quantizes
    again with the `keep_float` noisiest left in float.
    """
    import json

    kept_path = out_path.with_suffix(".kept.json")
    if out_path.exists() and kept_path.exists():
        return out_path, json.loads(kept_path.read_text())
    log.info("quantizing the generator to int8 on %d calibration crops (once; cached)", len(x))
    full = out_path.with_name(out_path.stem + ".all.onnx")
    quantize(float_path, full, x, z, [], reduce_range)
    kept: list[str] = []
    if keep_float > 0:
        ranking = layer_sensitivity(float_path, full, x, z)
        kept = list(ranking)[:keep_float]
        log.info("int8: kept in float (dB of noise added): %s", ", ".join(f"{k} {ranking[k]:.1f}" for k in kept))
        quantize(float_path, out_path, x, z, kept, reduce_range)
        full.unlink(missing_ok=True)
    else:
        full.replace(out_path)
    from facedancer.atomic import write_text_atomic

    write_text_atomic(kept_path, json.dumps(kept))
    return out_path, kept
