"""Generator and discriminator: every fusion type builds and runs; native .keras round-trips exactly."""

import numpy as np
import pytest

import facedancer
from facedancer.nn import FUSION_TYPES, GeneratorConfig, build_discriminator, build_generator, preset
from facedancer.nn.describe import generator_config_of

RNG = np.random.default_rng(0)
X = RNG.uniform(-1, 1, (2, 256, 256, 3)).astype("float32")
Z = RNG.normal(size=(2, 512)).astype("float32")
Z /= np.linalg.norm(Z, axis=1, keepdims=True)


@pytest.mark.parametrize("fusion", FUSION_TYPES)
def test_each_fusion_type_builds_and_runs_at_256(fusion):
    config = GeneratorConfig(up_types=(fusion,) * 6, mapping_depth=2, mapping_size=128)
    model = build_generator(config)
    y = np.asarray(model([X, Z]))
    assert y.shape == (2, 256, 256, 3)
    assert np.isfinite(y).all()
    # Linear output as the original (no tanh): at initialisation it sits near the input range.
    assert 0.01 < y.std() < 10.0
    # The output depends on the identity, and the architecture reads back from the graph.
    other = np.asarray(model([X, Z[::-1]]))
    assert np.abs(other - y).max() > 1e-4
    assert generator_config_of(model) == config


def test_config_c_preset_matches_the_original_layout():
    config = preset("C")
    assert config.up_types == ("no_skip", "no_skip", "affa", "affa", "affa", "concat")
    assert (config.mapping_depth, config.mapping_size) == (4, 512)
    assert preset("config_c") == config
    with pytest.raises(ValueError, match="unknown generator preset"):
        preset("Z")


def test_bad_configs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown fusion type"):
        GeneratorConfig(up_types=("affa",) * 5 + ("magic",))
    with pytest.raises(ValueError, match="needs 6 entries"):
        GeneratorConfig(up_types=("affa",) * 3)


def test_native_keras_round_trip_is_exact(tmp_path):
    config = GeneratorConfig(
        up_types=("d_affa", "do_affa", "affa", "add", "concat", "concat"), mapping_depth=3, mapping_size=256
    )
    model = build_generator(config)
    path = tmp_path / "gen.keras"
    model.save(path)
    loaded = facedancer.load(path, kind="generator")
    assert loaded.kind == "generator" and "native" in loaded.format
    np.testing.assert_array_equal(np.asarray(loaded.model([X, Z])), np.asarray(model([X, Z])))
    assert generator_config_of(loaded.model) == config


def test_discriminator_gives_one_logit_and_round_trips(tmp_path):
    model = build_discriminator()
    logits = np.asarray(model(X))
    assert logits.shape == (2, 1) and np.isfinite(logits).all()  # the original reshapes to (B, 1)
    model.save(tmp_path / "dis.keras")
    loaded = facedancer.load(tmp_path / "dis.keras", kind="discriminator")
    np.testing.assert_array_equal(np.asarray(loaded.model(X)), logits)
