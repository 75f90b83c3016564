"""Run an existing model at another precision (bf16/fp16 compute, float32 weights) without retraining."""

from __future__ import annotations

import os

import keras

from facedancer.nn.layers import custom_objects

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def onednn_isa_allows_bf16() -> bool:
    """False when ONEDNN_MAX_CPU_ISA caps oneDNN below the bf16 instructions (e.g. AVX2, AVX512_CORE): it then
    cannot create bf16 primitives at all, whatever the CPU's flags say."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).strip().upper()
    return isa in ("", "ALL", "DEFAULT") or any(part in isa for part in ("BF16", "FP16", "AMX", "AVX10"))


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this (Linux) CPU computes bfloat16 dot products natively, where bf16 inference pays off.

    Without AVX512-BF16 or AMX, oneDNN emulates bf16 and it is slower than float32. ONEDNN_MAX_CPU_ISA capped
    below bf16 (e.g. AVX2, to measure as on an AVX2-only CPU) counts as no bf16: oneDNN then aborts on bf16.
    """
    if not onednn_isa_allows_bf16():
        return False
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in BF16_CPU_FLAGS)
    except OSError:
        pass
    return False


def bf16_convolutions_run() -> bool:
    """Whether TensorFlow can run a bfloat16 convolution here at all: oneDNN emulates bf16 on AVX-512, but an
    AVX2-only CPU (or one capped by ONEDNN_MAX_CPU_ISA=AVX2) aborts; a GPU runs it."""
    import tensorflow as tf

    try:
        tf.nn.conv2d(tf.zeros([1, 8, 8, 3], tf.bfloat16), tf.zeros([3, 3, 3, 4], tf.bfloat16), 1, "SAME")
    except (tf.errors.AbortedError, tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
        return False
    return True


def _set_policy(layer_configs: list, policy: str) -> None:
    for spec in layer_configs:
        config = spec.get("config", {})
        if spec.get("class_name") in ("Functional", "Model", "Sequential"):
            _set_policy(config.get("layers", []), policy)
        elif spec.get("class_name") != "InputLayer" and "dtype" in config:
            config["dtype"] = policy


def with_dtype_policy(model: keras.Model, policy: str) -> keras.Model:
    """A copy of functional `model` whose layers compute under `policy`; same weights."""
    if policy not in POLICIES:
        raise ValueError(f"precision policy must be one of {POLICIES}, got {policy!r}")
    config = model.get_config()
    _set_policy(config["layers"], policy)
    with keras.saving.custom_object_scope(custom_objects()):
        clone = model.__class__.from_config(config)
    clone.set_weights(model.get_weights())
    return clone
