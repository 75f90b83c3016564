"""Files written by the original FaceDancer code load and reproduce the original's outputs."""

import json

import h5py
import keras
import numpy as np
import pytest
from standins import arcface_resnet50_layout

import facedancer
from facedancer.identity import IFSR_BLOCKS, feature_model
from facedancer.legacy import legacy_model_config, save_legacy_checkpoint, save_legacy_h5
from facedancer.nn.describe import generator_config_of

TOLERANCE = 1e-4


def test_original_export_reproduces_reference(legacy_dir, reference):
    loaded = facedancer.load(legacy_dir / "facedancer_export.h5", kind="generator")
    assert "legacy h5" in loaded.format
    y = np.asarray(loaded.model([reference["x"], reference["z"]]))
    assert np.abs(y - reference["y"]).max() <= TOLERANCE
    config = generator_config_of(loaded.model)
    assert config.up_types == ("no_skip", "no_skip", "affa", "affa", "affa", "concat")
    assert (config.mapping_depth, config.mapping_size) == (4, 512)


def test_original_checkpoint_reproduces_reference(legacy_dir, reference):
    ckpt = legacy_dir / "checkpoints" / "gen"
    model = facedancer.load_model(ckpt / "gen.json", weights=ckpt / "gen_3.h5", kind="generator")
    y = np.asarray(model([reference["x"], reference["z"]]))
    assert np.abs(y - reference["y"]).max() <= TOLERANCE


def test_checkpoint_json_finds_its_newest_weights(legacy_dir, tmp_path):
    ckpt = tmp_path / "gen"
    ckpt.mkdir()
    (ckpt / "gen.json").write_bytes((legacy_dir / "checkpoints/gen/gen.json").read_bytes())
    for step in (3, 12):
        (ckpt / f"gen_{step}.h5").symlink_to(legacy_dir / "checkpoints/gen/gen_3.h5")
    loaded = facedancer.load(ckpt / "gen.json")
    assert loaded.weights == ckpt / "gen_12.h5"


def test_native_generator_preset_c_has_the_original_parameter_count(legacy_dir):
    from facedancer.nn import build_generator, preset

    original = facedancer.load_model(legacy_dir / "facedancer_export.h5")
    assert build_generator(preset("C")).count_params() == original.count_params()


def test_original_nested_identity_model_reproduces_reference(legacy_dir, reference):
    loaded = facedancer.load(legacy_dir / "identity_nested_small.h5", kind="identity")
    embedding = np.asarray(loaded.model(reference["xs"]))
    assert np.abs(embedding - reference["es"]).max() <= TOLERANCE
    features = feature_model(loaded.model, ["block_5_add"])
    emb, feat = (np.asarray(t) for t in features(reference["xs"]))
    assert np.abs(emb - reference["es"]).max() <= TOLERANCE
    assert np.abs(feat - reference["feat_block_5_add"]).max() <= TOLERANCE


def test_legacy_model_resaves_as_native_keras(legacy_dir, reference, tmp_path):
    model = facedancer.load_model(legacy_dir / "facedancer_export.h5")
    model.save(tmp_path / "converted.keras")
    again = facedancer.load_model(tmp_path / "converted.keras", kind="generator")
    y = np.asarray(again([reference["x"], reference["z"]]))
    assert np.abs(y - reference["y"]).max() <= TOLERANCE


@pytest.fixture(scope="module")
def arcface_files(tmp_path_factory):
    """The same ArcFace-layout model saved by Keras 3 (.h5) and in the original's Keras 2 format."""
    model = arcface_resnet50_layout()
    folder = tmp_path_factory.mktemp("arcface")
    model.save(folder / "keras3.h5")
    save_legacy_h5(model, folder / "ArcFace-Res50.h5")
    return model, {"keras3": folder / "keras3.h5", "legacy": folder / "ArcFace-Res50.h5"}


@pytest.mark.parametrize("variant", ["legacy", "keras3"])
def test_arcface_layout_h5_exposes_the_ifsr_blocks(arcface_files, variant):
    original, paths = arcface_files
    loaded = facedancer.load(paths[variant], kind="identity")
    assert ("legacy" in loaded.format) == (variant == "legacy")
    assert loaded.model.layers[1].name == original.layers[1].name
    images = np.random.default_rng(3).uniform(0, 1, (2, 112, 112, 3)).astype("float32")
    outputs = feature_model(loaded.model)(images)
    assert len(outputs) == 1 + len(IFSR_BLOCKS)
    np.testing.assert_allclose(np.asarray(outputs[0]), np.asarray(original(images)), atol=1e-5)
    shapes = {name: tuple(o.shape) for name, o in zip(IFSR_BLOCKS, outputs[1:], strict=True)}
    assert shapes["conv4_block6_out"] == (2, 7, 7, 1024)
    assert shapes["conv3_block1_out"] == (2, 14, 14, 512)
    assert shapes["conv2_block3_out"] == (2, 28, 28, 256)
    taps = keras.Model(original.layers[1].inputs[0], original.layers[1].get_layer("conv3_block2_out").output)
    np.testing.assert_allclose(
        np.asarray(outputs[1 + IFSR_BLOCKS.index("conv3_block2_out")]), np.asarray(taps(images)), atol=1e-5
    )


def test_feature_model_names_missing_blocks(legacy_dir):
    model = facedancer.load_model(legacy_dir / "identity_nested_small.h5")
    with pytest.raises(ValueError, match="conv4_block6_out"):
        feature_model(model)


def test_written_legacy_architecture_equals_the_originals(legacy_dir):
    """Writing a model read from the original's files gives back the original's JSON, key for key."""
    original = json.loads((legacy_dir / "checkpoints/gen/gen.json").read_text())
    model = facedancer.load_model(legacy_dir / "facedancer_export.h5")
    ours = json.loads(json.dumps(legacy_model_config(model)))
    assert ours["config"]["input_layers"] == original["config"]["input_layers"]
    assert ours["config"]["output_layers"] == original["config"]["output_layers"]
    assert [layer["name"] for layer in ours["config"]["layers"]] == [
        layer["name"] for layer in original["config"]["layers"]
    ]
    for mine, theirs in zip(ours["config"]["layers"], original["config"]["layers"], strict=True):
        for key in ("class_name", "module", "registered_name", "inbound_nodes", "config"):
            assert mine.get(key) == theirs.get(key), (theirs["name"], key)


def test_legacy_h5_written_here_reads_back_with_the_originals_weight_layout(legacy_dir, reference, tmp_path):
    model = facedancer.load_model(legacy_dir / "facedancer_export.h5")
    save_legacy_h5(model, tmp_path / "export.h5")
    loaded = facedancer.load(tmp_path / "export.h5", kind="generator")
    assert "legacy h5" in loaded.format
    y = np.asarray(loaded.model([reference["x"], reference["z"]]))
    assert np.abs(y - reference["y"]).max() <= TOLERANCE
    with h5py.File(legacy_dir / "facedancer_export.h5") as a, h5py.File(tmp_path / "export.h5") as b:
        names = [str(n) for n in a["model_weights"].attrs["layer_names"]]
        assert [str(n) for n in b["model_weights"].attrs["layer_names"]] == names
        for name in names:
            assert list(a["model_weights"][name].attrs["weight_names"]) == list(
                b["model_weights"][name].attrs["weight_names"]
            )
    assert not list(tmp_path.glob(".*tmp*"))


def test_legacy_checkpoint_round_trip_for_every_fusion_type(tmp_path):
    from facedancer.nn import GeneratorConfig, build_generator

    config = GeneratorConfig(
        up_types=("d_affa", "do_affa", "add", "affa", "concat", "no_skip"), mapping_depth=2, mapping_size=64
    )
    model = build_generator(config)
    save_legacy_checkpoint(model, tmp_path / "gen.json", tmp_path / "gen_7.h5")
    loaded = facedancer.load(tmp_path / "gen.json", kind="generator")
    assert loaded.weights == tmp_path / "gen_7.h5"
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype("float32")
    z = rng.normal(size=(1, 512)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded.model([x, z])), np.asarray(model([x, z])), atol=1e-5)
    assert generator_config_of(loaded.model) == config
