"""Synthetic CME difference images and the JAX CME quantities: the truth is recovered, and the quantities
follow the image's rotations and mirror images."""

import numpy as np
import pytest

from solarjax import cme_physics
from solarjax.data import cme_synthetic


@pytest.fixture(scope="module")
def batch():
    return cme_synthetic.generate(120, seed=3)


@pytest.fixture(scope="module")
def measured(batch):
    return {k: np.asarray(v) for k, v in cme_physics.quantities(batch.images).items()}


def test_generation_is_seeded_and_bounded(batch):
    again = cme_synthetic.generate(120, seed=3)
    np.testing.assert_array_equal(again.images, batch.images)
    assert batch.images.shape == (120, 128, 128) and batch.images.dtype == np.float32
    assert np.abs(batch.images).max() <= 1.0
    radius, _ = cme_synthetic.polar_grid()
    assert (batch.images[:, radius < cme_synthetic.OCCULTER_RSUN] == 0).all()  # behind the occulter
    assert 0.0 < (batch.width_deg >= 360).mean() < 0.15  # a few halos


def test_quantities_recover_the_truth(batch, measured):
    assert not np.isnan(measured["cpa_deg"]).any()
    partial = (batch.width_deg < 360) & ~batch.rare  # a planted double CME has two position angles
    cpa_error = cme_physics.angle_difference_deg(measured["cpa_deg"], batch.cpa_deg)[partial]
    assert np.percentile(np.abs(cpa_error), 99) < 1.5
    ratio = (measured["width_deg"] / batch.width_deg)[partial]
    assert 0.9 < np.percentile(ratio, 5) and np.percentile(ratio, 95) < 1.3
    assert (measured["width_deg"][batch.width_deg >= 360] >= 330).all()
    assert np.abs(measured["front_height_rsun"] - batch.front_height_rsun)[~batch.rare].max() < 0.15
    assert np.corrcoef(np.log(measured["excess"]), np.log(batch.excess))[0, 1] > 0.98


def test_quantities_follow_rotations_and_mirrors(batch, measured):
    images = batch.images[:20]
    turned = {k: np.asarray(v) for k, v in cme_physics.quantities(np.rot90(images, 1, axes=(1, 2))).items()}
    # A quarter turn counter-clockwise carries north (top) to east (left): PA + 90 deg.
    np.testing.assert_allclose(
        cme_physics.angle_difference_deg(turned["cpa_deg"], measured["cpa_deg"][:20] + 90), 0, atol=0.5
    )
    mirrored = {k: np.asarray(v) for k, v in cme_physics.quantities(images[:, :, ::-1, None]).items()}
    np.testing.assert_allclose(
        cme_physics.angle_difference_deg(mirrored["cpa_deg"], -measured["cpa_deg"][:20]), 0, atol=0.5
    )
    for name in ("width_deg", "front_height_rsun"):
        np.testing.assert_allclose(turned[name], measured[name][:20], atol=3.0 if name == "width_deg" else 0.11)


def test_an_empty_image_has_no_cme():
    values = cme_physics.quantities(np.zeros((2, 128, 128), np.float32))
    assert np.isnan(np.asarray(values["cpa_deg"])).all() and (np.asarray(values["excess"]) == 0).all()


def test_examples_do_not_depend_on_how_the_set_is_cut(batch):
    first, rest = cme_synthetic.generate(4, seed=3), cme_synthetic.generate(6, seed=3, start=4)
    np.testing.assert_array_equal(np.concatenate([first.images, rest.images]), batch.images[:10])
    np.testing.assert_array_equal(rest.width_deg, batch.width_deg[4:10])
    assert not np.array_equal(cme_synthetic.generate(1, seed=4).images[0], batch.images[0])


def test_a_rare_tail_of_double_cmes_is_planted_without_changing_the_others():
    batch = cme_synthetic.generate(600, seed=5)
    assert 0.003 <= batch.rare.mean() <= 0.03  # ~1%
    rare = np.flatnonzero(batch.rare)
    measured = {k: np.asarray(v) for k, v in cme_physics.quantities(batch.images[rare]).items()}
    # Two fronts in opposite hemispheres: excess on both sides of the first CME's position angle.
    radius, angle = cme_synthetic.polar_grid()
    for row, i in enumerate(rare):
        offset = np.abs(cme_physics.angle_difference_deg(angle, batch.cpa_deg[i]))
        image = batch.images[i]
        assert image[(offset > 120) & (image > 0.1)].sum() > 0.1 * image[(offset < 60) & (image > 0.1)].sum()
        assert measured["width_deg"][row] > 0.0
    # A plain example is the same image whether or not its neighbours are rare.
    plain = int(np.flatnonzero(~batch.rare)[-1])
    np.testing.assert_array_equal(cme_synthetic.generate(1, seed=5, start=plain).images[0], batch.images[plain])
