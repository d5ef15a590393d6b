"""CME patches of LASCO sequences (FITS files written with sunpy's real LASCO C2 level-1 header around an
analytic r^-3 corona and a moving front at a known position angle and height) and the polar view of
synthetic CMEs: the measured quantities land where the front was put."""

import numpy as np
import pytest
from lasco_replay import FRONT_PA_DEG, FRONT_WIDTH_DEG, write_sequence

from solarjax import cme_physics
from solarjax.data import cme_prep, cme_synthetic, lasco


def test_base_difference_patch_measures_the_front_where_it_was_put(tmp_path):
    files = write_sequence(tmp_path, (None, 3.5, 4.5))
    images = [lasco.read_lasco(path) for path in files]
    patches = cme_prep.sequence_patches(images, "base")
    assert [p.source for p in patches] == [f"{files[0].name};{files[1].name}", f"{files[0].name};{files[2].name}"]
    assert patches[1].reference_t_obs == images[0].meta["date_obs"] and patches[1].t_obs == images[2].meta["date_obs"]
    stack = np.stack([p.image for p in patches])
    assert stack.shape == (2, 128, 128) and np.abs(stack).max() <= 1.0
    measured = {k: np.asarray(v) for k, v in cme_physics.quantities(stack).items()}
    np.testing.assert_allclose(cme_physics.angle_difference_deg(measured["cpa_deg"], FRONT_PA_DEG), 0, atol=3.0)
    np.testing.assert_allclose(measured["width_deg"], FRONT_WIDTH_DEG, rtol=0.15)
    np.testing.assert_allclose(measured["front_height_rsun"], [3.5, 4.5], atol=0.15)
    # The relative difference is 0.8 at the front's crest: the r^-3 fall is divided out.
    assert stack[1].max() == pytest.approx(0.8, abs=0.06)
    radius, _ = cme_synthetic.polar_grid()
    assert (stack[:, (radius < 2.2) | (radius > 6.0)] == 0).all()
    polar = patches[1].polar
    assert polar.shape == cme_prep.POLAR_SHAPE
    row, column = np.unravel_index(np.argmax(polar), polar.shape)
    assert 2.2 + (row + 0.5) * 3.8 / 64 == pytest.approx(4.5, abs=0.1)
    assert abs(cme_physics.angle_difference_deg((column + 0.5) * 2.0, FRONT_PA_DEG)) <= FRONT_WIDTH_DEG / 2


def test_running_differences_show_each_step_of_the_front(tmp_path):
    images = [lasco.read_lasco(p) for p in write_sequence(tmp_path, (3.0, 4.0, 5.0))]
    patches = cme_prep.sequence_patches(images, "running")
    measured = cme_physics.quantities(np.stack([p.image for p in patches]))
    np.testing.assert_allclose(np.asarray(measured["front_height_rsun"]), [4.0, 5.0], atol=0.15)
    assert all(p.kind == "running" and p.detector == "C2" for p in patches)


def test_polar_view_of_synthetic_cmes_follows_their_truth():
    batch = cme_synthetic.generate(12, seed=5)
    polar = cme_prep.grid_polar(batch.images)
    assert polar.shape == (12, *cme_prep.POLAR_SHAPE)
    for i in np.flatnonzero(batch.width_deg < 360):
        row, column = np.unravel_index(np.argmax(polar[i]), cme_prep.POLAR_SHAPE)
        assert 2.2 + (row + 0.5) * 3.8 / 64 == pytest.approx(batch.front_height_rsun[i], abs=0.2)
        assert abs(cme_physics.angle_difference_deg((column + 0.5) * 2, batch.cpa_deg[i])) <= batch.width_deg[i] / 2 + 2


def test_c3_geometry_measures_on_its_own_grid():
    # A C2-grid synthetic image read as a C3-grid image: every radius scales by 30 / 6.
    batch = cme_synthetic.generate(4, seed=6)
    keep = batch.width_deg < 360
    c3 = cme_physics.quantities(batch.images, geometry=cme_physics.Geometry(2.2 * 5, 30.0))
    np.testing.assert_allclose(np.asarray(c3["front_height_rsun"])[keep], 5 * batch.front_height_rsun[keep], atol=0.6)
