"""--runtime / --precision: ONNX Runtime float32 and int8 against float32 TensorFlow on real aligned faces,
the export cache, fallbacks below the bars, and provider selection (no GPU here: the list is injected)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from standins import pixel_identity_encoder, trained_like_norms

from facedancer.errors import FaceDancerError
from facedancer.runtime import generator_runner
from facedancer.runtime import select as runtime_select
from facedancer.runtime.providers import CPU, CUDA, TENSORRT, cpu_flags, select_providers

pytest.importorskip("onnxruntime", reason="the onnx extra (scripts/install.sh installs it)")
pytest.importorskip("tf2onnx", reason="the onnx extra (scripts/install.sh installs it)")

SIZE = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory, photos, detector):
    """A small generator file (trained-like norms), real aligned calibration faces, and a shared export cache."""
    from facedancer.nn import GeneratorConfig, build_generator
    from facedancer.runtime.int8 import calibration_set
    from facedancer.swap import FaceSwapper

    root = tmp_path_factory.mktemp("runtime")
    generator = trained_like_norms(build_generator(GeneratorConfig(image_size=SIZE, mapping_depth=1, mapping_size=64)))
    path = root / "generator.keras"
    generator.save(path)
    swapper = FaceSwapper(generator, pixel_identity_encoder(), detector)
    x, z = calibration_set(detector, swapper.embed_faces, SIZE, folder=photos)
    return {
        "generator": generator,
        "path": path,
        "cache": root / "cache",
        "calibration": (x, z),
        "reference": generator_runner(generator, "tensorflow", "float32"),
        "photos": photos,
        "identity": swapper.identity,
    }


def _runner(setup, runtime, precision, **kwargs):
    return generator_runner(
        setup["generator"],
        runtime,
        precision,
        model_file=setup["path"],
        calibration=lambda: setup["calibration"],
        cache_dir=setup["cache"],
        **kwargs,
    )


def test_calibration_crops_are_real_aligned_faces(setup):
    x, z = setup["calibration"]
    assert x.shape == (8, SIZE, SIZE, 3) and z.shape == (8, 512)
    assert -1 <= x.min() < -0.5 and 0.5 < x.max() <= 1 and x.std() > 0.2  # photos, not blank
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1, atol=1e-5)
    assert len({crop.tobytes() for crop in x}) == len(x)


def test_onnx_float32_matches_tensorflow_and_is_exported_once(setup, monkeypatch):
    from facedancer.runtime import onnx_export

    exports = []
    real_export = onnx_export.export_onnx
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a, **k: exports.append(1) or real_export(*a, **k))
    first = _runner(setup, "onnxruntime", "float32")
    second = _runner(setup, "onnxruntime", "float32")
    assert len(exports) == 1, "the second load must reuse the cached ONNX file"
    assert first.path == second.path and first.path.is_relative_to(setup["cache"])
    assert not list(first.path.parent.glob(".*tmp*")), "no temporary files left behind"
    assert (first.runtime, first.precision) == ("onnxruntime", "float32")
    x, z = setup["calibration"]
    expected = setup["reference"](x, z)
    assert np.abs(second(x, z) - expected).max() <= 1e-4
    assert first.psnr_db >= runtime_select.FLOAT32_MIN_DB


def test_int8_is_calibrated_per_channel_and_close_on_real_faces(setup):
    import onnx

    from facedancer.runtime.int8 import KEEP_FLOAT

    runner = _runner(setup, "onnxruntime", "int8")
    assert (runner.runtime, runner.precision) == ("onnxruntime", "int8")
    assert runner.psnr_db >= runtime_select.EXPLICIT_MIN_DB["int8"]
    print(f"int8 vs float32 TensorFlow on real aligned faces: {runner.psnr_db:.1f} dB; float: {runner.kept_float}")
    assert len(runner.kept_float) == KEEP_FLOAT
    graph = onnx.load(str(runner.path)).graph
    names = {n.name for n in graph.node}
    assert set(runner.kept_float) <= names
    # int8 weights with one scale per output channel, dequantized right before each quantized conv
    weights = {t.name: t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8}
    conv_inputs = {i for n in graph.node if n.op_type == "Conv" and n.name not in runner.kept_float for i in n.input}
    dequantized = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights]
    per_channel = [n for n in dequantized if n.output[0] in conv_inputs]
    assert per_channel and all(len(weights[n.input[0]].dims) == 4 for n in per_channel)
    scales = {t.name: t for t in graph.initializer}
    assert all(len(scales[n.input[1]].dims) == 1 and scales[n.input[1]].dims[0] > 1 for n in per_channel)
    # the same faces through TensorFlow float32: the int8 outputs are close, not equal
    x, z = setup["calibration"]
    expected, got = setup["reference"](x, z), runner(x, z)
    assert 0 < np.abs(got - expected).max() < 0.5


def test_below_the_bar_falls_back_with_one_warning(setup, monkeypatch, caplog):
    monkeypatch.setitem(runtime_select.EXPLICIT_MIN_DB, "int8", 200.0)
    with caplog.at_level(logging.WARNING, logger="facedancer.runtime"):
        runner = _runner(setup, "onnxruntime", "int8")
    assert (runner.runtime, runner.precision) == ("onnxruntime", "float32")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("facedancer")]
    assert len(warnings) == 1 and "int8" in warnings[0].getMessage() and "dB" in warnings[0].getMessage()


def test_auto_takes_only_what_passes_the_strict_bar(setup, monkeypatch):
    monkeypatch.setattr(runtime_select, "AUTO_MIN_DB", 200.0)  # int8 cannot pass; float32 has its own bar
    runner = _runner(setup, "onnxruntime", "auto")
    assert (runner.runtime, runner.precision) == ("onnxruntime", "float32")


@pytest.mark.slow
def test_auto_times_the_choices_that_pass(setup, monkeypatch):
    runner = _runner(setup, "auto", "auto")
    assert runner.psnr_db is None or runner.psnr_db >= runtime_select.AUTO_MIN_DB
    monkeypatch.setattr(runtime_select, "AUTO_MIN_DB", 200.0)
    assert _runner(setup, "auto", "auto").precision == "float32"


@pytest.mark.slow
def test_face_swapper_runs_int8_from_the_cache(setup, detector, monkeypatch):
    from facedancer.images import read_image
    from facedancer.runtime import int8, onnx_export
    from facedancer.swap import FaceSwapper, SwapOptions

    _runner(setup, "onnxruntime", "int8")  # in the cache (as after the tests above)
    monkeypatch.setenv("FACEDANCER_ONNX_CACHE", str(setup["cache"]))
    for module, name in ((onnx_export, "export_onnx"), (int8, "quantize")):
        monkeypatch.setattr(module, name, lambda *a, name=name, **k: pytest.fail(f"{name} again: cache not reused"))
    image = read_image(setup["photos"] / "obama.jpg")
    out = {}
    for runtime, precision in (("tensorflow", "float32"), ("onnxruntime", "int8")):
        options = SwapOptions(runtime=runtime, precision=precision, calibration_dir=str(setup["photos"]))
        swapper = FaceSwapper(setup["path"], setup["identity"], detector, options)
        assert (swapper.runtime, swapper.precision) == (runtime, precision)
        swapper.set_source(setup["photos"] / "biden.jpg")
        out[precision], count = swapper.swap_counted(image)
        assert count == 1
    mse = np.mean((out["float32"].astype(float) - out["int8"]) ** 2)
    assert 0 < mse and 10 * np.log10(255**2 / mse) > 30


def test_provider_selection_prefers_tensorrt_then_cuda():
    gpu_build = [TENSORRT, CUDA, CPU]
    chosen = select_providers(gpu_build, engine_cache=None)
    assert [p[0] if isinstance(p, tuple) else p for p in chosen] == [TENSORRT, CUDA, CPU]
    assert chosen[0][1]["trt_engine_cache_enable"] == "True"
    assert select_providers([CUDA, CPU]) == [CUDA, CPU]
    assert select_providers(gpu_build, use_gpu=False) == [CPU]
    assert select_providers([CPU, "AzureExecutionProvider"]) == [CPU]


def test_injected_gpu_providers_reach_the_session(setup, tmp_path):
    runner = _runner(setup, "onnxruntime", "float32", available_providers=[TENSORRT, CUDA, CPU])
    assert runner.detail == "Tensorrt, CUDA, CPU"
    assert runner.providers[-1] == CPU  # this machine's build has only the CPU provider; it runs there
    cpu_only = _runner(setup, "onnxruntime", "float32", available_providers=[TENSORRT, CUDA, CPU], use_gpu=False)
    assert cpu_only.detail == "CPU"


def test_impossible_combinations_and_a_missing_extra_say_what_to_do(setup, monkeypatch):
    with pytest.raises(FaceDancerError, match="--runtime onnxruntime"):
        _runner(setup, "tensorflow", "int8")
    with pytest.raises(FaceDancerError, match="bfloat16"):
        _runner(setup, "onnxruntime", "bfloat16")
    with pytest.raises(FaceDancerError, match="--runtime"):
        _runner(setup, "tensorrt", "float32")
    monkeypatch.setattr(runtime_select, "onnx_available", lambda: False)
    with pytest.raises(FaceDancerError, match=r"\.\[onnx\]"):
        _runner(setup, "onnxruntime", "float32")
    runner = _runner(setup, "auto", "float32")  # TensorFlow only, nothing to check
    assert (runner.runtime, runner.precision) == ("tensorflow", "float32")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor: 0\nflags\t\t: fpu sse avx avx2 fma avx512f avx512_vnni\n")
    assert cpu_flags(str(info)) == ["avx2", "avx512f", "avx512_vnni"]
    assert cpu_flags(str(tmp_path / "missing")) == []


@pytest.mark.slow
def test_config_c_onnx_float32_matches_tensorflow(tmp_path):
    """Config C at full size (slow: the export takes a minute or more)."""
    from facedancer.nn import build_generator, preset

    generator = trained_like_norms(build_generator(preset("C")), spread=0.2)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 256, 256, 3)).astype(np.float32)
    z = rng.standard_normal((2, 512)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    runner = generator_runner(
        generator, "onnxruntime", "float32", calibration=lambda: (x, z), cache_dir=tmp_path, batch_size=2
    )
    assert runner.runtime == "onnxruntime"
    assert np.abs(runner(x, z) - generator_runner(generator, "tensorflow", "float32")(x, z)).max() <= 1e-4


def test_swap_command_passes_runtime_precision_and_calibration_folder():
    import argparse

    from facedancer.cli.swap import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--target", "t.mp4", "--swap_source", "s.jpg", "--output", "o.mp4", "--facedancer_path", "g.h5"]
    args = parser.parse_args([*base, "--runtime", "onnxruntime", "--precision", "int8", "--calibration_dir", "faces"])
    assert (args.runtime, args.precision, args.calibration_dir) == ("onnxruntime", "int8", "faces")
    defaults = parser.parse_args(base)
    assert (defaults.runtime, defaults.precision, defaults.calibration_dir) == ("tensorflow", "auto", None)
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--runtime", "tensorrt"])


def test_a_onednn_isa_cap_below_bf16_means_no_native_bf16(tmp_path, monkeypatch):
    from facedancer.nn.precision import cpu_has_native_bf16

    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: avx2 avx512f avx512_bf16\n")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    assert cpu_has_native_bf16(str(info))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # oneDNN aborts on bf16 convolutions then
    assert not cpu_has_native_bf16(str(info))
