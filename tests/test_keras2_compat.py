"""Slow: files facedancer writes in the original's format load in the original's stack (TF 2.15, Keras 2,
tensorflow-addons) and compute the same outputs. Builds a separate venv once (.cache/tf215-venv).

    .venv/bin/python -m pytest -m slow
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import facedancer
from facedancer.legacy import save_legacy_h5
from facedancer.nn import GeneratorConfig, build_discriminator, build_generator

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".cache" / "tf215-venv"


@pytest.fixture(scope="module")
def keras2_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "tensorflow-cpu==2.15.1", "tensorflow-addons==0.23.0"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot install TF 2.15 for the check: {result.stderr[-300:]}")
    return python


def test_legacy_exports_run_in_keras2(keras2_python, legacy_dir, reference, tmp_path):
    original = facedancer.load_model(legacy_dir / "facedancer_export.h5")
    save_legacy_h5(original, tmp_path / "export.h5")
    np.savez(tmp_path / "ref_in.npz", x=reference["x"], z=reference["z"])
    native = build_generator(
        GeneratorConfig(
            up_types=("d_affa", "do_affa", "add", "affa", "concat", "no_skip"), mapping_depth=2, mapping_size=64
        )
    )
    save_legacy_h5(native, tmp_path / "native.h5")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype("float32")
    z = rng.normal(size=(1, 512)).astype("float32")
    np.savez(tmp_path / "native_in.npz", x=x, z=z)
    discriminator = build_discriminator()
    save_legacy_h5(discriminator, tmp_path / "dis.h5")
    np.savez(tmp_path / "dis_in.npz", x=x)
    result = subprocess.run(
        [
            str(keras2_python),
            str(REPO / "tests" / "keras2" / "load_in_keras2.py"),
            str(tmp_path / "export.h5"),
            str(tmp_path / "ref_in.npz"),
            str(tmp_path / "a.npz"),
            str(tmp_path / "native.h5"),
            str(tmp_path / "native_in.npz"),
            str(tmp_path / "b.npz"),
            str(tmp_path / "dis.h5"),
            str(tmp_path / "dis_in.npz"),
            str(tmp_path / "c.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "keras 2.15" in result.stdout
    assert np.abs(np.load(tmp_path / "a.npz")["y"] - reference["y"]).max() <= 1e-4
    assert np.abs(np.load(tmp_path / "b.npz")["y"] - np.asarray(native([x, z]))).max() <= 1e-4
    assert np.abs(np.load(tmp_path / "c.npz")["y"] - np.asarray(discriminator(x))).max() <= 1e-4
