"""Diagnosis of latent geometry and piecewise boundaries (solarjax.steering.diagnosis, directions)."""

import numpy as np
import pytest
from helpers import toy_generator

from solarjax.steering import diagnosis
from solarjax.steering.directions import _fit_piecewise, fit_directions, load_directions

D = 20


@pytest.fixture(scope="module")
def latents():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3000, D))
    train = np.zeros(len(z), bool)
    train[:2400] = True
    return z, train, ~train


def test_odd_fraction_and_correlations_known_answers():
    x = np.random.default_rng(1).normal(size=500)
    assert diagnosis.odd_fraction(x, -x) == pytest.approx(1.0)  # odd: q(-z) = -q(z)
    assert diagnosis.odd_fraction(x**2, x**2) == pytest.approx(0.0)  # even
    assert diagnosis.odd_fraction(np.stack([x, x]).T, -np.stack([x, x]).T) == pytest.approx(1.0)  # patches
    assert diagnosis.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert np.isnan(diagnosis.pearson(x[:2], x[:2]))
    q = diagnosis.random_rotation(6, np.random.default_rng(2))
    np.testing.assert_allclose(q @ q.T, np.eye(6), atol=1e-12)


def test_feature_sets_name_the_structure(latents):
    z, train, test = latents
    side = np.where(z[:, 1] >= 0, 1.0, -1.0)  # the split boundary: z1 = 0
    cases = {
        "z": z[:, 0] + 0.1 * z[:, 2],  # linear
        "z_norm": np.linalg.norm(z, axis=1),  # radial
        "folded": z[:, 0] * side,  # even under z -> -z
    }
    for expected, values in cases.items():
        high = values > np.median(values)
        accuracy = {
            name: diagnosis.boundary_accuracy(f, high, train, test, seed=0)
            for name, f in diagnosis.feature_sets(z, side).items()
        }
        assert diagnosis.name_structure(accuracy) == expected, accuracy
        assert accuracy[expected] > 0.9
    assert (
        diagnosis.name_structure({"z": 0.6, "z_norm": 0.6, "folded": 0.55, "folded_norm": 0.7, "quadratic": 0.6})
        == "none"
    )


def test_piecewise_boundaries_of_a_sign_symmetric_quantity(latents):
    z, train, test = latents
    side = z[:, 1] >= 0
    values = z[:, 0] * np.where(side, 1.0, -1.0)  # grows along +e0 above, -e0 below
    high = values > np.median(values)
    fit = {"high": high, "train": train, "test": test, "normal": np.eye(D)[0], "intercept": 0.0}
    pieces = _fit_piecewise("q", z, side, fit, "svm", seed=0)
    assert pieces["normals"][1] @ np.eye(D)[0] > 0.95
    assert pieces["normals"][0] @ np.eye(D)[0] < -0.95
    assert pieces["test_accuracy"] > 0.9


def test_fit_directions_saves_diagnosis_and_piecewise(tmp_path):
    generator = toy_generator()
    directions = fit_directions(generator, n=600, symmetry_latents=64, rotations=1)
    assert directions.split == "lead_polarity" and directions.piecewise_normals.shape == (2, 9, 100)
    tuf = directions.diagnosis["quantities"]["tuf"]
    assert tuf["structure"] == "z" and tuf["accuracy"]["z"] > 0.85  # the toy's TUF is linear in z[0]
    assert 0.0 <= directions.diagnosis["generator_odd_fraction"] <= 1.0
    z = np.random.default_rng(3).normal(size=(5, 100))
    np.testing.assert_allclose(np.linalg.norm(directions.piecewise_direction("tuf", z, ("psep",)), axis=1), 1.0)
    directions.save(tmp_path)
    loaded = load_directions(tmp_path, generator)
    np.testing.assert_array_equal(loaded.piecewise_normals, directions.piecewise_normals)
    np.testing.assert_array_equal(loaded.side(z), directions.side(z))
    assert loaded.diagnosis["quantities"]["tuf"]["structure"] == "z"
    assert loaded.piecewise_accuracy == pytest.approx(directions.piecewise_accuracy)
    # the polarity statistics of the 128 x 128 patches: 7 statistics x 16 blocks, saved with the rest
    assert directions.diagnosis["polarity_statistics_features"] == 7 * 16
    for name in ("tuf", "area"):  # the toy's flux and area are read off its blocks' field magnitudes
        assert directions.diagnosis["quantities"][name]["accuracy"]["polarity_statistics"] > 0.9
    assert loaded.diagnosis["quantities"]["tuf"]["accuracy"]["polarity_statistics"] == pytest.approx(
        directions.diagnosis["quantities"]["tuf"]["accuracy"]["polarity_statistics"]
    )


def test_polarity_statistics_name_a_quantity_linear_in_the_patch_not_in_z(latents):
    """q = |z0 + z1| + |z2 - z3| is even and not axis-aligned (no set of z orders it), but a sum of two
    patch statistics: the 'polarity_statistics' set, standardised (one column scaled by 1e4), names it."""
    z, train, test = latents
    rng = np.random.default_rng(5)
    values = np.abs(z[:, 0] + z[:, 1]) + np.abs(z[:, 2] - z[:, 3])
    polarity = np.column_stack(
        [1e4 * np.abs(z[:, 0] + z[:, 1]), np.abs(z[:, 2] - z[:, 3]), rng.normal(size=(len(z), 6))]
    )
    high = values > np.median(values)
    side = np.where(z[:, 5] >= 0, 1.0, -1.0)
    sets = diagnosis.feature_sets(z, side, polarity=polarity)
    assert "hidden" not in sets and sets["polarity_statistics"].shape == (len(z), 8)
    accuracy = {
        name: diagnosis.boundary_accuracy(f, high, train, test, seed=0, standardise=name in diagnosis.STANDARDISED)
        for name, f in sets.items()
    }
    others = max(v for k, v in accuracy.items() if k != "polarity_statistics")
    assert accuracy["polarity_statistics"] > 0.97 and others < 0.85, accuracy
    assert diagnosis.name_structure(accuracy) == "polarity_statistics"
    # a set of z at 0.85 or above is named even when the patch's statistics do better
    assert diagnosis.name_structure(accuracy | {"quadratic": 0.86}) == "quadratic"
    assert diagnosis.name_structure({"z": 0.6, "polarity_statistics": 0.7}) == "none"


def test_polarity_statistics_known_answers_and_jax_parity():
    import jax
    import jax.numpy as jnp

    half = np.arctanh(0.5)
    image = np.zeros((1, 64, 64, 1))
    image[0, :32, 32:] = -0.5  # top-right 32-pixel block negative, the rest quiet
    stats = diagnosis.polarity_statistics(image, grid=2, fine=16).reshape(7, 2, 2)
    np.testing.assert_allclose(stats[0], [[0.0, -half], [0.0, 0.0]], atol=1e-12)  # block means of arctanh(s)
    np.testing.assert_allclose(stats[1:3], [[[0.0, half], [0.0, 0.0]]] * 2, atol=1e-12)
    np.testing.assert_allclose(stats[3], 0.0)  # no strong positive pixel
    np.testing.assert_allclose(stats[4], [[0.0, 1.0], [0.0, 0.0]])  # the negative block is all strong
    np.testing.assert_allclose(stats[5:], 0.0)  # one polarity per sub-block: no mixing, no coexistence
    assert diagnosis.polarity_statistics_fit(128, 128) and not diagnosis.polarity_statistics_fit(128, 100)
    images = np.tanh(np.random.default_rng(6).normal(size=(3, 128, 128, 1))).astype(np.float32)
    on_device = jax.jit(lambda x: diagnosis.polarity_statistics(x, xp=jnp))(images)
    np.testing.assert_allclose(np.asarray(on_device), diagnosis.polarity_statistics(images), rtol=1e-4, atol=1e-5)


def test_hidden_features_find_a_quantity_bent_by_the_first_layer(latents):
    """q = |z0 + z1| + |z2 - z3| is even in z and not axis-aligned, but linear in the first layer's
    activations h1 = LeakyReLU(z W + b) when W holds the units +-(z0 + z1), +-(z2 - z3)
    (LeakyReLU(u) + LeakyReLU(-u) = 0.8 |u|): only the 'hidden' feature set orders it."""
    z, train, test = latents
    rng = np.random.default_rng(4)
    units = np.zeros((D, 4))
    units[[0, 1], 0], units[[2, 3], 2] = 1.0, (1.0, -1.0)
    units[:, 1], units[:, 3] = -units[:, 0], -units[:, 2]
    kernel = np.hstack([units, 0.2 * rng.normal(size=(D, 60))]).astype(np.float32)  # units lead the PCs
    bias = np.concatenate([np.zeros(4), rng.normal(size=60)]).astype(np.float32)
    layer = diagnosis.first_dense_layer({"Dense_0": {"kernel": kernel, "bias": bias}, "Conv_0": {}})
    np.testing.assert_array_equal(layer[0], kernel)
    assert diagnosis.first_dense_layer({"amplitude": 1.0}) is None  # no dense layer: no set
    hidden = diagnosis.hidden_features(*layer, z, train, components=32)
    assert hidden.shape == (len(z), 32)
    np.testing.assert_allclose(np.cov(hidden[train][: diagnosis.HIDDEN_FIT_LATENTS].T), np.eye(32), atol=1e-3)
    values = np.abs(z[:, 0] + z[:, 1]) + np.abs(z[:, 2] - z[:, 3])
    high = values > np.median(values)
    side = np.where(z[:, 5] >= 0, 1.0, -1.0)
    sets = diagnosis.feature_sets(z, side, hidden)
    assert set(sets) == set(diagnosis.FEATURE_SETS) - {"polarity_statistics"}  # no patch statistics given
    accuracy = {name: diagnosis.boundary_accuracy(f, high, train, test, seed=0) for name, f in sets.items()}
    assert accuracy["hidden"] > 0.95 and accuracy["z"] < 0.65 and accuracy["quadratic"] < accuracy["hidden"] - 0.05, (
        accuracy
    )
    assert diagnosis.name_structure(accuracy) == "hidden"
    assert "hidden" not in diagnosis.feature_sets(z, side)  # left out without h1


def test_quadratic_features_name_an_axis_aligned_second_order_quantity(latents):
    z, train, test = latents
    values = z[:, 0] ** 2 - z[:, 1] ** 2  # even, axis-aligned
    high = values > np.median(values)
    side = np.where(z[:, 5] >= 0, 1.0, -1.0)
    accuracy = {
        name: diagnosis.boundary_accuracy(f, high, train, test, seed=0)
        for name, f in diagnosis.feature_sets(z, side).items()
    }
    assert accuracy["quadratic"] > 0.95 and accuracy["z"] < 0.65, accuracy
    assert diagnosis.name_structure(accuracy) == "quadratic"
