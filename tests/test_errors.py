"""Every bad model file gives one line that names the file and what was expected."""

import json
import subprocess
import sys

import pytest

import facedancer
from facedancer import ModelFileError


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match=r"model file not found: .*nothing\.h5"):
        facedancer.load_model(tmp_path / "nothing.h5")


def test_text_file_is_not_a_model(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ModelFileError, match=r"notes\.txt is not a model file"):
        facedancer.load_model(path)


def test_zip_that_is_not_a_keras_archive(tmp_path):
    import numpy as np

    path = tmp_path / "arrays.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ModelFileError, match=r"arrays\.npz is a zip archive but not a Keras"):
        facedancer.load_model(path)


def test_unknown_layer_is_named(legacy_dir, tmp_path):
    config = json.loads((legacy_dir / "checkpoints/gen/gen.json").read_text())
    config["config"]["layers"][5]["class_name"] = "FancyLayer"
    path = tmp_path / "gen.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ModelFileError, match=r"gen\.json: unknown layer class 'FancyLayer' \(layer 'conv2d_1'\)"):
        facedancer.load_model(path, weights=legacy_dir / "checkpoints/gen/gen_3.h5")


def test_weights_only_file_says_to_pass_the_json(legacy_dir):
    with pytest.raises(ModelFileError, match=r"gen_3\.h5 holds weights only.*gen\.json"):
        facedancer.load_model(legacy_dir / "checkpoints/gen/gen_3.h5")


def test_json_without_weights_beside_it(legacy_dir, tmp_path):
    path = tmp_path / "gen.json"
    path.write_bytes((legacy_dir / "checkpoints/gen/gen.json").read_bytes())
    with pytest.raises(ModelFileError, match=r"no gen_N\.h5 lies beside it"):
        facedancer.load_model(path)


def test_weights_of_another_model_are_refused(legacy_dir):
    with pytest.raises(ModelFileError, match=r"identity_nested_small\.h5: no weights for layer"):
        facedancer.load_model(legacy_dir / "checkpoints/gen/gen.json", weights=legacy_dir / "identity_nested_small.h5")


def test_wrong_kind_names_both_kinds(legacy_dir):
    with pytest.raises(ModelFileError, match=r"identity_nested_small\.h5 is an identity encoder.*generator"):
        facedancer.load_model(legacy_dir / "identity_nested_small.h5", kind="generator")
    with pytest.raises(ModelFileError, match=r"facedancer_export\.h5 is a FaceDancer generator.*identity"):
        facedancer.load_model(legacy_dir / "facedancer_export.h5", kind="identity")


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "facedancer.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_user_errors_are_one_line_without_traceback(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"\x00garbage")
    for target in (tmp_path / "missing.keras", tmp_path / "junk.h5"):
        result = _cli("info", str(target))
        assert result.returncode == 1
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert str(target) in lines[0]


def test_cli_info_describes_an_original_export(legacy_dir):
    result = _cli("info", str(legacy_dir / "facedancer_export.h5"), "--json")
    assert result.returncode == 0, result.stderr
    desc = json.loads(result.stdout)
    assert desc["kind"] == "generator"
    assert desc["inputs"] == [[None, 256, 256, 3], [None, 512]]
    assert desc["parameters"] == 24505894
    assert desc["decoder"]["up_types"] == ["no_skip", "no_skip", "affa", "affa", "affa", "concat"]
    assert "legacy h5" in desc["format"]
