"""Identity strength and anonymisation: the pure embedding functions (property-based) and what the swapper
feeds the generator with them, on real photos with a small random generator and a pixel identity encoder."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from standins import pixel_identity_encoder

from facedancer.errors import FaceDancerError
from facedancer.identity_mix import IdentityMix, anonymize, blend
from facedancer.images import read_image, write_image
from facedancer.swap import FaceSwapper, SwapOptions

finite = st.floats(-10, 10, allow_nan=False, width=32)
embedding = arrays(np.float32, 512, elements=finite).filter(lambda v: np.linalg.norm(v) > 1e-2)


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@settings(max_examples=40, deadline=None)
@given(embedding, embedding)
def test_blend_ends_are_target_and_source(source, target):
    np.testing.assert_array_equal(blend(source, target, 0.0), target)
    np.testing.assert_array_equal(blend(source, target, 1.0), source)
    half = blend(source, target, 0.5)
    np.testing.assert_allclose(half - target, source - half, atol=1e-4)


@settings(max_examples=40, deadline=None)
@given(embedding, st.integers(0, 2**16), st.lists(st.floats(0, 100), min_size=2, max_size=6, unique=True))
def test_anonymized_embedding_moves_away_monotonically(target, seed, percents):
    percents = sorted(percents)
    moved = [anonymize(target, p, seed) for p in percents]
    distances = [float(np.linalg.norm(m - target)) for m in moved]
    cosines = [_cos(m, target) for m in moved]
    assert all(b >= a - 1e-4 for a, b in zip(distances, distances[1:], strict=False))
    assert all(b <= a + 1e-5 for a, b in zip(cosines, cosines[1:], strict=False))
    np.testing.assert_allclose(anonymize(target, 0, seed), target, atol=1e-6)


def test_anonymize_100_is_one_identity_for_everyone_and_fixed():
    rng = np.random.default_rng(1)
    faces = rng.standard_normal((3, 512)).astype(np.float32)
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    full = anonymize(faces, 100)
    assert max(_cos(full[0], f) for f in full[1:]) > 0.9999  # the same synthetic identity
    assert max(abs(_cos(full[0], f)) for f in faces) < 0.3  # and none of the real ones
    np.testing.assert_array_equal(anonymize(faces, 100), full)  # fixed across calls
    assert _cos(anonymize(faces[0], 100, seed=1), full[0]) < 0.3  # another seed, another identity


def test_out_of_range_values_are_refused():
    for kwargs in ({"identity_strength": -0.1}, {"identity_strength": 1.6}, {"anonymize": 120.0}):
        with pytest.raises(FaceDancerError, match="identity_strength|anonymize"):
            SwapOptions(**kwargs)
    with pytest.raises(FaceDancerError, match="set the source"):
        IdentityMix(strength=0.5)(None, np.ones((1, 512), np.float32))


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory):
    from facedancer.nn import GeneratorConfig, build_generator

    path = tmp_path_factory.mktemp("mix") / "generator.keras"
    build_generator(GeneratorConfig(image_size=64, mapping_depth=1, mapping_size=64)).save(path)
    return path


@pytest.fixture(scope="module")
def swapper(generator_file, detector):
    return FaceSwapper(generator_file, pixel_identity_encoder(), detector, SwapOptions(rewrite_graph=False))


def test_strength_zero_is_the_targets_own_reconstruction_and_one_the_plain_swap(swapper, photos):
    from facedancer.alignment import align

    image = read_image(photos / "obama.jpg")
    face = swapper.detect(image)[0]
    swapper.options = SwapOptions()
    swapper.set_source(photos / "biden.jpg")
    plain = swapper.swap(image)
    swapper.options = SwapOptions(identity_strength=1.0)
    np.testing.assert_array_equal(swapper.swap(image), plain)
    swapper.options = SwapOptions(identity_strength=0.0)
    own = swapper.swap(image)
    swapper.options = SwapOptions(identity_strength=0.5)
    half = swapper.swap(image)
    # The reconstruction path: G fed the embedding of the target face itself (its aligned crop as "source").
    swapper.options = SwapOptions()
    swapper.set_source([align(image, face.landmarks, swapper.crop_size)[0]], aligned=True)
    reconstruction = swapper.swap(image)
    assert np.abs(own.astype(int) - reconstruction).max() <= 1
    differs = [np.abs(a.astype(float) - b).mean() for a, b in ((own, plain), (half, plain), (half, own))]
    assert min(differs) > 0.05, differs  # the embedding reaches the generator: three different faces


def test_anonymize_needs_no_source_and_gives_two_people_one_identity(swapper, photos):
    swapper.source = None
    swapper.options = SwapOptions(anonymize=100.0)
    crops = []
    for name in ("obama.jpg", "biden.jpg"):
        image = read_image(photos / name)
        out, count = swapper.swap_counted(image)
        assert count == 1 and np.abs(out.astype(float) - image).mean() > 0.05
        from facedancer.alignment import align

        crops.append(align(image, swapper.detect(image)[0].landmarks, swapper.crop_size)[0])
    z = swapper.face_identities(np.stack(crops))
    assert _cos(z[0], z[1]) > 0.9999
    swapper.options = SwapOptions(anonymize=0.0)
    own = swapper.face_identities(np.stack(crops))
    assert _cos(own[0], own[1]) < 0.99  # the two people's own identities differ; 100 % replaced both


def test_swap_command_flags(generator_file, photos, tmp_path, caplog):
    """`facedancer swap --anonymize / --identity_strength`, run in this process through the command's main()."""
    from standins import save_arcface_standin

    from facedancer.cli.main import main

    arcface = save_arcface_standin(tmp_path / "ArcFace-Res50.h5")
    target = tmp_path / "target.png"
    write_image(target, read_image(photos / "obama2.jpg"))
    base = ["swap", "--facedancer_path", str(generator_file), "--arcface_path", str(arcface), "--target", str(target)]
    base += ["--precision", "float32", "--plain_graph"]
    out = tmp_path / "anon.png"
    assert main([*base, "--output", str(out), "--anonymize", "70"]) == 0
    before, after = read_image(target), read_image(out)
    assert after.shape == before.shape and np.abs(after.astype(float) - before).mean() > 0.05
    source = ["--swap_source", str(photos / "biden.jpg")]
    half = tmp_path / "half.png"
    assert main([*base, "--output", str(half), *source, "--identity_strength", "0.5"]) == 0
    assert np.abs(read_image(half).astype(float) - before).mean() > 0.05
    with pytest.raises(SystemExit) as usage:  # a range argparse checks: exit 2 before anything is loaded
        main([*base, "--output", str(tmp_path / "x.png"), *source, "--identity_strength", "2"])
    assert usage.value.code == 2 and not (tmp_path / "x.png").exists()
    assert main([*base, "--output", str(tmp_path / "y.png")]) == 1
    assert "--swap_source PHOTO is required" in caplog.text
