"""Native networks are the original's networks, proven on files the original code wrote.

For each recorded network (config C, a generator with every fusion type and a 3×384 mapping network, the
discriminator of the recorded training step) we build ours with the same configuration, check that its
layers with weights come in the original's order with the original's classes and shapes (the order the
original's HDF5 file lists them, which is Keras 2's `get_weights()` order), hand it the original's weights
with `set_weights` and compare its outputs with the outputs the original code recorded.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

import facedancer
from facedancer.legacy import legacy_model_config, save_legacy_h5
from facedancer.nn import GeneratorConfig, build_discriminator, build_generator, preset
from facedancer.nn.describe import generator_config_of
from facedancer.nn.inference import FusedInstanceNorm, optimize_checked, optimize_for_inference

TOLERANCE = 1e-4
ALL_FUSIONS = GeneratorConfig(
    up_types=("do_affa", "d_affa", "affa", "add", "concat", "no_skip"), mapping_depth=3, mapping_size=384
)
# Parameter counts of the original's networks, as its files hold them.
ORIGINAL_PARAMS = {"config_c": 24_505_894, "all_fusions": 35_227_783, "discriminator": 23_972_353}


def _extract(tmp_path_factory, archive: str, members: tuple[str, ...] | None = None) -> Path:
    """A fixture archive from ../shared/fixtures, extracted (only `members`, when given)."""
    path = Path(os.environ.get("FACEDANCER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    path = path / "fixtures" / archive
    if not path.exists():
        pytest.skip(f"{path} is absent (it ships beside the repo in ../shared, not in a user's clone)")
    target = tmp_path_factory.mktemp(archive.split(".")[0])
    with tarfile.open(path) as tar:
        chosen = [m for m in tar.getmembers() if members is None or m.name.endswith(members)]
        tar.extractall(target, members=chosen, filter="data")
    return target / archive.split(".")[0]


@pytest.fixture(scope="module")
def all_fusions_dir(tmp_path_factory) -> Path:
    return _extract(tmp_path_factory, "legacy_all_fusions.tar.gz")


@pytest.fixture(scope="module")
def train_step_dir(tmp_path_factory) -> Path:
    return _extract(tmp_path_factory, "legacy_train_step.tar.gz", ("discriminator.h5", "train_step.npz"))


@pytest.fixture(scope="module")
def all_fusions_export(all_fusions_dir) -> keras.Model:
    """The original's do_affa,d_affa,affa,add,concat,no_skip export, read once for the tests below."""
    return facedancer.load_model(all_fusions_dir / "facedancer_export.h5", kind="generator")


def _npz(path: Path) -> dict:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _h5_weight_order(path: Path) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(layer, weight shapes) of every layer with weights, in the order the original's file lists them."""
    with h5py.File(path, "r") as h5:
        root = h5["model_weights"] if "model_weights" in h5 else h5
        out = []
        for raw in root.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            weights = [w.decode() if isinstance(w, bytes) else str(w) for w in root[name].attrs["weight_names"]]
            if weights:
                out.append((name, [tuple(root[name][w].shape) for w in weights]))
    return out


def _layout(model: keras.Model) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(class, weight shapes) of every layer with weights, in `get_weights()` order."""
    return [(type(layer).__name__, [tuple(w.shape) for w in layer.weights]) for layer in model.layers if layer.weights]


def _assert_native_is_the_original(
    native: keras.Model, original: keras.Model, original_file: Path, inputs, expected: np.ndarray, params: int
):
    recorded = _h5_weight_order(original_file)
    # Our reading of the original keeps its layer order: layer for layer the file's order.
    assert [layer.name for layer in original.layers if layer.weights] == [name for name, _ in recorded]
    # The native network has the same layers with weights, in the same order, with the same shapes.
    assert _layout(native) == _layout(original)
    assert [shapes for _, shapes in _layout(native)] == [shapes for _, shapes in recorded]
    assert native.count_params() == original.count_params() == params
    native.set_weights(original.get_weights())
    got = np.asarray(native(inputs))
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE


def test_native_config_c_takes_the_originals_weights(legacy_dir, reference):
    _assert_native_is_the_original(
        build_generator(preset("C")),
        facedancer.load_model(legacy_dir / "facedancer_export.h5"),
        legacy_dir / "facedancer_export.h5",
        [reference["x"], reference["z"]],
        reference["y"],
        ORIGINAL_PARAMS["config_c"],
    )


def test_native_generator_with_every_fusion_type_takes_the_originals_weights(all_fusions_dir, all_fusions_export):
    reference = _npz(all_fusions_dir / "reference.npz")
    _assert_native_is_the_original(
        build_generator(ALL_FUSIONS),
        all_fusions_export,
        all_fusions_dir / "facedancer_export.h5",
        [reference["x"], reference["z"]],
        reference["y"],
        ORIGINAL_PARAMS["all_fusions"],
    )


def test_native_discriminator_takes_the_originals_weights(train_step_dir):
    """Fails on a discriminator without the original's instance norms or with another block order."""
    step = _npz(train_step_dir / "train_step.npz")
    _assert_native_is_the_original(
        build_discriminator(),
        facedancer.load_model(train_step_dir / "discriminator.h5", kind="discriminator"),
        train_step_dir / "discriminator.h5",
        step["x_probe"],
        step["d_before"],
        ORIGINAL_PARAMS["discriminator"],
    )


@pytest.mark.parametrize("form", ["export", "checkpoint"])
def test_original_do_affa_generator_loads_and_reproduces_reference(all_fusions_dir, all_fusions_export, form):
    """The original writes do_affa's mask product as a TFOpLambda whose node is one flat entry."""
    reference = _npz(all_fusions_dir / "reference.npz")
    if form == "export":
        model = all_fusions_export
    else:
        loaded = facedancer.load(all_fusions_dir / "checkpoints" / "gen" / "gen.json", kind="generator")
        assert loaded.weights.name == "gen_3.h5"
        model = loaded.model
    y = np.asarray(model([reference["x"], reference["z"]]))
    assert np.abs(y - reference["y"]).max() <= TOLERANCE
    assert generator_config_of(model) == ALL_FUSIONS


def test_do_affa_legacy_graph_rewrites_for_inference(all_fusions_dir, all_fusions_export):
    reference = _npz(all_fusions_dir / "reference.npz")
    model = all_fusions_export
    fast = optimize_for_inference(model)
    assert any(type(layer) is FusedInstanceNorm for layer in fast.layers)
    assert np.abs(np.asarray(fast([reference["x"], reference["z"]])) - reference["y"]).max() <= TOLERANCE
    assert optimize_checked(model, min_db=80.0) is not model  # the checked path keeps the rewrite too


def test_do_affa_generator_written_back_equals_the_originals_files(all_fusions_dir, all_fusions_export, tmp_path):
    """Our writer gives back the original's JSON key for key (the TFOpLambda's flat node included)."""
    original = json.loads((all_fusions_dir / "checkpoints/gen/gen.json").read_text())
    model = all_fusions_export
    ours = json.loads(json.dumps(legacy_model_config(model)))
    assert [layer["name"] for layer in ours["config"]["layers"]] == [
        layer["name"] for layer in original["config"]["layers"]
    ]
    for mine, theirs in zip(ours["config"]["layers"], original["config"]["layers"], strict=True):
        for key in ("class_name", "module", "registered_name", "inbound_nodes", "config"):
            assert mine.get(key) == theirs.get(key), (theirs["name"], key)
    save_legacy_h5(model, tmp_path / "export.h5")
    with h5py.File(all_fusions_dir / "facedancer_export.h5") as a, h5py.File(tmp_path / "export.h5") as b:
        assert list(b["model_weights"].attrs["layer_names"]) == list(a["model_weights"].attrs["layer_names"])
    again = facedancer.load_model(tmp_path / "export.h5")
    for mine, theirs in zip(again.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
