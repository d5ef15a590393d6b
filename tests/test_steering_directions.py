"""Latent directions of physical quantities (solarjax.steering.directions)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import LATENT_DIM, toy_apply, toy_generator

from solarjax import physics
from solarjax.steering.directions import (
    Directions,
    DirectionsFileError,
    GeneratorMismatchError,
    LatentGenerator,
    as_generator,
    fit_directions,
    latent_quantities,
    load_directions,
    map_generated,
    sample_latents,
)

N = 2000


@pytest.fixture(scope="module")
def directions() -> Directions:
    return fit_directions(toy_generator(), n=N)


def _cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_fit_finds_the_known_axes(directions):
    assert directions.names == physics.QUANTITY_NAMES
    assert directions.normals.shape == (9, LATENT_DIM)
    np.testing.assert_allclose(np.linalg.norm(directions.normals, axis=1), 1.0, atol=1e-12)
    e = np.eye(LATENT_DIM)
    # Flux grows with the amplitude z[0] and the width z[3]; separation with z[1], tilt with z[2]
    # (see test_steering_toy).
    tuf = directions.normal("tuf")
    assert np.hypot(tuf[0], tuf[3]) > 0.9 and tuf[0] > 0.3 and tuf[3] > 0.3
    assert _cosine(directions.normal("psep"), e[1]) > 0.9
    assert _cosine(directions.normal("tilt"), e[2]) > 0.9
    # Ignored latent dimensions carry (almost) no weight.
    assert np.abs(directions.normals[:, 22:]).max() < 0.1
    for name in ("tuf", "psep", "tilt"):
        assert directions.test_accuracy[name] > 0.9, (name, directions.test_accuracy[name])
        assert directions.r2[name] > 0.5, (name, directions.r2[name])
    assert directions.counts["tuf"]["defined"] == N
    assert directions.counts["tuf"]["train"] + directions.counts["tuf"]["test"] == N
    assert directions.counts["tuf"]["test"] == N // 5


def test_decision_function_separates_median_labels(directions):
    z = sample_latents(400, LATENT_DIM, seed=99)
    tuf = latent_quantities(toy_generator(), z)["tuf"]
    high = tuf > directions.label_thresholds["tuf"][0]
    side = directions.decision(z)[:, directions.names.index("tuf")] > 0
    assert np.mean(side == high) > 0.9
    assert directions.label_thresholds["tuf"][0] == directions.label_thresholds["tuf"][1]


def _polarity_flipping_apply(params, z):
    """The toy with its field's sign set by z[0]: flux grows with |z[0]| and |z[3]|, so G(-z) = -G(z)
    up to the bipole's geometry and TUF is even in z, as in a GAN trained on both polarities."""
    magnitudes = z.at[:, 0].set(jnp.abs(z[:, 0])).at[:, 3].set(jnp.abs(z[:, 3]))
    return toy_apply(params, magnitudes) * jnp.sign(z[:, 0])[:, None, None, None]


def test_sign_symmetry_flags_quantities_no_linear_boundary_can_order(directions):
    # The toy's flux grows monotonically along +e0 and +e3: TUF at z and -z anti-correlate.
    assert directions.sign_symmetry["tuf"] < -0.9
    assert directions.sign_symmetry["psep"] < -0.9
    toy = toy_generator()
    flipping = LatentGenerator(_polarity_flipping_apply, toy.params, "toy-polarity-flipping", LATENT_DIM)
    d = fit_directions(flipping, quantities=("tuf", "lead_polarity"), n=N)
    assert d.sign_symmetry["tuf"] > 0.8  # even in z (up to the bipole geometry)
    assert d.test_accuracy["tuf"] < 0.65 and d.r2["tuf"] < 0.05
    assert d.sign_symmetry["lead_polarity"] < -0.9  # the polarity itself is odd, and linear
    assert d.test_accuracy["lead_polarity"] > 0.95


def test_seed_and_determinism():
    a = fit_directions(toy_generator(), quantities=("tuf",), n=500)
    b = fit_directions(toy_generator(), quantities=("tuf",), n=500)
    np.testing.assert_array_equal(a.normals, b.normals)
    np.testing.assert_array_equal(sample_latents(5, 3, 23), sample_latents(5, 3, 23))
    assert not np.array_equal(sample_latents(5, 3, 23), sample_latents(5, 3, 24))


@pytest.mark.parametrize("method", ["logistic", "ridge"])
def test_alternative_methods_agree_with_svm(directions, method):
    other = fit_directions(toy_generator(), quantities=("tuf", "psep"), n=N // 2, method=method)
    for name in ("tuf", "psep"):
        assert _cosine(other.normal(name), directions.normal(name)) > 0.95
        assert other.test_accuracy[name] > 0.9
    assert other.settings["method"] == method


def test_percentile_labels_leave_out_the_middle():
    d = fit_directions(toy_generator(), quantities=("psep",), n=N // 2, labels=("percentile", 25))
    low, high = d.label_thresholds["psep"]
    assert low < high
    assert d.counts["psep"]["train"] + d.counts["psep"]["test"] == pytest.approx(N / 4, abs=4)
    assert d.test_accuracy["psep"] > 0.95  # extremes are easier to separate than a median split
    assert _cosine(d.normal("psep"), np.eye(LATENT_DIM)[1]) > 0.9


def test_nan_quantities_are_dropped():
    # A weak generator: small amplitudes leave many patches with an empty polarity (all NaN).
    weak = toy_generator(amplitude=0.17)
    z = sample_latents(N // 2, LATENT_DIM, 23)
    defined = int(np.isfinite(latent_quantities(weak, z)["tuf"]).sum())
    assert 100 < defined < N // 2 - 100
    d = fit_directions(weak, quantities=("tuf",), n=N // 2)
    assert d.counts["tuf"]["defined"] == defined
    assert d.counts["tuf"]["train"] + d.counts["tuf"]["test"] == defined
    assert np.isfinite(d.normals).all()


def test_conditional_direction_from_directions(directions):
    n = directions.direction("tuf", hold=("psep", "tilt"))
    assert abs(n @ directions.normal("psep")) < 1e-6 and abs(n @ directions.normal("tilt")) < 1e-6
    assert n @ directions.normal("tuf") > 0.9
    np.testing.assert_allclose(directions.direction("tuf"), directions.normal("tuf"), atol=1e-6)


def test_save_load_roundtrip_and_fingerprint(directions, tmp_path):
    folder = directions.save(tmp_path / "dirs")
    loaded = load_directions(folder, toy_generator())
    np.testing.assert_array_equal(loaded.normals, directions.normals)
    np.testing.assert_array_equal(loaded.intercepts, directions.intercepts)
    assert loaded.names == directions.names
    assert loaded.test_accuracy == directions.test_accuracy and loaded.r2 == directions.r2
    assert loaded.sign_symmetry == directions.sign_symmetry
    assert loaded.counts == directions.counts and loaded.settings == directions.settings
    assert load_directions(folder, directions.fingerprint).fingerprint == directions.fingerprint
    other = toy_generator(amplitude=0.5)
    with pytest.raises(GeneratorMismatchError, match="toy-bipole-v1-amplitude-0.5") as err:
        load_directions(folder, other)
    assert directions.fingerprint in str(err.value)


def test_load_reports_broken_folders(directions, tmp_path):
    folder = directions.save(tmp_path / "dirs")
    arrays = folder / "directions.npz"
    arrays.write_bytes(arrays.read_bytes()[:-10])
    with pytest.raises(DirectionsFileError, match="directions.npz.*partial or corrupted"):
        load_directions(folder, toy_generator())
    arrays.unlink()
    with pytest.raises(DirectionsFileError, match="directions.npz: missing"):
        load_directions(folder, toy_generator())
    (folder / "directions.json").write_text("{not json")
    with pytest.raises(DirectionsFileError, match="directions.json: not valid JSON"):
        load_directions(folder, toy_generator())
    (folder / "directions.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DirectionsFileError, match="format"):
        load_directions(folder, toy_generator())
    with pytest.raises(DirectionsFileError, match="missing"):
        load_directions(tmp_path / "nowhere", toy_generator())


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown quantities"):
        fit_directions(toy_generator(), quantities=("flux",), n=100)
    with pytest.raises(ValueError, match="method"):
        fit_directions(toy_generator(), n=100, method="tree")
    with pytest.raises(ValueError, match="labels"):
        fit_directions(toy_generator(), n=100, labels=("percentile", 60))
    with pytest.raises(ValueError, match="labelled"):
        fit_directions(toy_generator(), quantities=("tuf",), n=20)
    with pytest.raises(TypeError, match="generator"):
        as_generator(object())
    with pytest.raises(ValueError, match=r"\[N, 100\]"):
        latent_quantities(toy_generator(), np.zeros((3, 5)))


def test_sharded_batches_match_one_call():
    generator = as_generator((toy_apply, toy_generator().params, "toy"))
    z = sample_latents(37, LATENT_DIM, 1)  # not a multiple of the batch or device count
    batched = map_generated(generator, z, batch_size=8)
    np.testing.assert_allclose(batched, np.asarray(generator(z)), atol=1e-6)
    q = latent_quantities(generator, z, batch_size=12)
    np.testing.assert_allclose(q["psep"], np.asarray(physics.quantities(generator(z))["psep"]), rtol=1e-5)


def test_functions_of_one_batch_shape_share_one_generator_program():
    from solarjax.models.gan import apply_generator

    def apply(params, z):  # a function of its own, so the cache entries counted here are this test's
        return toy_apply(params, z)

    generator = as_generator((apply, toy_generator().params, "toy-shared"))
    z = sample_latents(5, LATENT_DIM, 2)
    before = apply_generator._cache_size()
    images = map_generated(generator, z)
    values = latent_quantities(generator, z[:3])  # the same batch bucket (8 latents)
    assert apply_generator._cache_size() == before + 1
    np.testing.assert_allclose(values["tuf"], np.asarray(physics.quantities(images[:3])["tuf"]), rtol=1e-6)


@pytest.mark.parametrize("count", [1, 7, 8, 9, 37, 400])
def test_latents_of_any_count_are_the_first_rows_of_one_draw(count):
    import jax

    direct = np.asarray(jax.random.normal(jax.random.key(3), (count, LATENT_DIM), jnp.float32))
    np.testing.assert_array_equal(sample_latents(count, LATENT_DIM, 3), direct)
    assert sample_latents(count, LATENT_DIM, 3).dtype == np.float32


def test_trained_generator_objects_are_accepted():
    # `solarjax.gan.load` returns a TrainedGenerator: steering takes it as it is.
    from solarjax.gan import TrainedGenerator

    trained = TrainedGenerator(
        apply_fn=toy_apply,
        params=toy_generator().params,
        fingerprint="run-abc",
        latent_dim=LATENT_DIM,
        step=100,
        config={},
        workdir="runs/x",
    )
    generator = as_generator(trained)
    assert generator.fingerprint == "run-abc" and generator.latent_dim == LATENT_DIM
    z = sample_latents(3, LATENT_DIM, 2)
    np.testing.assert_allclose(np.asarray(generator(z)), np.asarray(trained.generate(z)), atol=1e-6)
