"""Which ONNX Runtime execution providers run the generator, best first, and the CPU features that matter."""

from __future__ import annotations

from pathlib import Path

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The SIMD flags of this (Linux) CPU that decide float32 / bf16 / int8 speed, in CPU_FLAGS order."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    present = set(line.split())
                    return [flag for flag in CPU_FLAGS if flag in present]
    except OSError:
        pass
    return []


def cpu_has_vnni(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """VNNI computes u8*s8 dot products without the 16-bit saturation of AVX2's VPMADDUBSW."""
    return any("vnni" in flag for flag in cpu_flags(cpuinfo))


def select_providers(
    available: list[str], use_gpu: bool = True, engine_cache: Path | None = None
) -> list[str | tuple[str, dict]]:
    """TensorRT, then CUDA, then the CPU, keeping only what this onnxruntime build offers.

    `use_gpu=False` (e.g. --device_id -1) keeps the CPU only. TensorRT builds an engine per input shape on
    first use; `engine_cache` keeps the built engines beside the cached ONNX file.
    """
    chosen: list[str | tuple[str, dict]] = []
    if use_gpu and TENSORRT in available:
        options = {"trt_engine_cache_enable": "True"}
        if engine_cache is not None:
            options["trt_engine_cache_path"] = str(engine_cache)
        chosen.append((TENSORRT, options))
    if use_gpu and CUDA in available:
        chosen.append(CUDA)
    chosen.append(CPU)
    return chosen


def provider_names(providers: list[str | tuple[str, dict]]) -> list[str]:
    return [p[0] if isinstance(p, tuple) else p for p in providers]
