"""CME steering on an analytic generator whose latent axes are known CME properties, and the CME physics head."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from solarjax import cme_physics, cme_steering
from solarjax.data import cme_synthetic
from solarjax.steering import directions as directions_lib
from solarjax.train import simsiam as trainer

SIZE = 64
LATENT_DIM = 6
_RADIUS, _ANGLE = (jnp.asarray(g, jnp.float32) for g in cme_synthetic.polar_grid(SIZE, 6.0 / (SIZE / 2)))


def analytic_cmes(params, z):
    """[N, 64, 64, 1] one CME per latent: width 70 + 25 z0 deg, CPA 230 + 30 z1 deg, front height
    4 + 0.5 z2 Rsun, brightness 0.5 exp(0.3 z3); z4, z5 change nothing."""
    width = jnp.clip(70.0 + 25.0 * z[:, 0], 15.0, 200.0)[:, None, None]
    cpa = (230.0 + 30.0 * z[:, 1])[:, None, None]
    height = jnp.clip(4.0 + 0.5 * z[:, 2], 3.0, 5.7)[:, None, None]
    brightness = (params["scale"] * jnp.exp(0.3 * z[:, 3]))[:, None, None]
    offset = (_ANGLE - cpa + 180.0) % 360.0 - 180.0
    across = jax.nn.sigmoid((width / 2 - jnp.abs(offset)) / 2.0)
    front = jnp.exp(-0.5 * ((_RADIUS - height) / 0.25) ** 2)
    seen = (_RADIUS >= cme_synthetic.OCCULTER_RSUN) & (_RADIUS <= cme_synthetic.FIELD_STOP_RSUN)
    return jnp.where(seen, brightness * across * front, 0.0)[..., None]


GENERATOR = directions_lib.LatentGenerator(analytic_cmes, {"scale": jnp.float32(0.5)}, "analytic-cme", LATENT_DIM)


@pytest.fixture(scope="module")
def fitted():
    return cme_steering.fit_paper_directions(GENERATOR, n=256, seed=1)


def test_paper_directions_find_the_latent_axes(fitted):
    assert fitted["width_deg"]["normal"][0] > 0.9 and fitted["width_deg"]["test_accuracy"] > 0.9
    assert fitted["front_height_rsun"]["normal"][2] > 0.9
    # Near CPA 230 deg, sin(CPA) falls as the CPA grows: its normal points along -z1.
    assert fitted["sin_cpa"]["normal"][1] < -0.9
    for fit in fitted.values():
        assert np.linalg.norm(fit["normal"]) == pytest.approx(1.0)


def test_median_labels_split_tied_values_evenly():
    heights = np.array([3.05, 3.05, 3.15, 3.15, 3.15, 3.25, np.nan])  # median 3.15, tied three times
    # '> median' labels 1 of 6 high, '>= median' 4 of 6: the latter is nearer an even split.
    np.testing.assert_array_equal(cme_steering.median_labels(heights), [0, 0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(cme_steering.median_labels(np.array([1.0, 2.0, 3.0, 4.0])), [0, 0, 1, 1])


def test_local_paths_change_their_quantity_monotonically_and_hold_others():
    z = directions_lib.sample_latents(3, LATENT_DIM, 7)  # the shape evaluate_families compiles
    path, alphas = cme_steering.local_traversals(GENERATOR, z, "width_deg", num_steps=2, step=0.5)
    assert path.shape == (3, 5, LATENT_DIM) and np.allclose(alphas, [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(path[:, 2], z, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.diff(path, axis=1), axis=-1), 0.5, rtol=1e-4)
    width = cme_steering.traversal_values(GENERATOR, path, "width_deg")
    assert (np.diff(width, axis=1) > 0).all()
    held, _ = cme_steering.local_traversals(GENERATOR, z, "excess", num_steps=1, step=0.5, hold=("width_deg",))
    # Holding the width, the excess path moves the brightness axis, not the width axis.
    move = held[:, -1] - held[:, 1]
    assert (np.abs(move[:, 3]) > np.abs(move[:, 0])).all()
    cpa = cme_steering.traversal_values(
        GENERATOR, cme_steering.local_traversals(GENERATOR, z, "cpa_deg", 2, 0.5)[0], "cpa_deg"
    )
    assert (np.diff(cpa, axis=1) > 0).all()


def test_steer_until_reaches_each_target_in_turn_and_leaves_latents_already_there():
    z = np.array(directions_lib.sample_latents(3, LATENT_DIM, 7))
    z[0, 0], z[0, 3] = 2.5, 2.5  # already wide (132 deg) and bright: never moved
    base = cme_steering.generated_quantities(GENERATOR, z)
    targets = {"width_deg": 120.0, "excess": float(base["excess"][0]) * 0.9}
    steered, reached = cme_steering.steer_until(GENERATOR, z, targets, step=0.5, max_steps=16)
    values = cme_steering.generated_quantities(GENERATOR, steered)
    assert reached.all() and (values["width_deg"] >= 120.0).all() and (values["excess"] >= targets["excess"]).all()
    np.testing.assert_array_equal(steered[0], z[0])
    # width went up along z0; the excess steps held the width (it stays above its target)
    assert (steered[1:, 0] > z[1:, 0]).all()
    unreachable, reached = cme_steering.steer_until(GENERATOR, z, {"width_deg": 1e4}, step=0.5, max_steps=2)
    assert not reached.any()
    moved = np.linalg.norm(unreachable - z, axis=1)
    assert ((moved > 0.5) & (moved <= 1.0 + 1e-4)).all()  # 2 unit steps of 0.5 on a curving path, then stopped


def test_families_are_scored_with_intervals(fitted):
    report = cme_steering.evaluate_families(GENERATOR, fitted, n_latents=3, num_steps=2, resamples=200)
    for family in cme_steering.FAMILIES:
        for name in cme_steering.STEERED:
            row = report["results"][family][name]
            assert row["low"] <= row["monotonicity"] <= row["high"]
    for name in ("width_deg", "front_height_rsun", "cpa_deg"):
        assert report["results"]["local"][name]["monotonicity"] > 0.9
    assert report["results"]["paper"]["width_deg"]["monotonicity"] > 0.9
    assert set(report["best_method"]) == set(cme_steering.STEERED)
    assert "local" in cme_steering.monotonicity_table(report)
    np.testing.assert_allclose(report["alphas"], cme_steering.LOCAL_STEP * np.arange(-2, 3))


def test_smooth_quantities_track_the_exact_ones_and_have_gradients():
    batch = cme_synthetic.generate(24, seed=8)
    exact = {k: np.asarray(v) for k, v in cme_physics.quantities(batch.images).items()}
    smooth = {k: np.asarray(v) for k, v in cme_physics.smooth_quantities(batch.images).items()}
    assert np.corrcoef(exact["width_deg"], smooth["width_deg"])[0, 1] > 0.98
    assert np.corrcoef(exact["excess"], smooth["excess"])[0, 1] > 0.99
    partial = batch.width_deg < 360
    assert np.abs(cme_physics.angle_difference_deg(smooth["cpa_deg"], exact["cpa_deg"]))[partial].max() < 2.0
    gradient = jax.grad(lambda x: cme_physics.smooth_quantities(x)["width_deg"].sum())(jnp.asarray(batch.images[:2]))
    assert np.isfinite(np.asarray(gradient)).all() and float(jnp.abs(gradient).sum()) > 0


def test_ssl_targets_rotate_with_the_view():
    images = cme_synthetic.generate(6, seed=9).images[..., None]
    targets = np.asarray(cme_physics.ssl_targets(images))
    turned = np.asarray(cme_physics.ssl_targets(np.rot90(images, 1, axes=(1, 2))))
    # A quarter turn counter-clockwise adds 90 deg to the CPA: (cos, sin) -> (-sin, cos).
    np.testing.assert_allclose(turned[:, 0], -targets[:, 1], atol=0.02)
    np.testing.assert_allclose(turned[:, 1], targets[:, 0], atol=0.02)
    np.testing.assert_allclose(turned[:, 2:], targets[:, 2:], atol=3.0)
    assert targets.shape == (6, len(cme_physics.SSL_TARGETS))


def test_the_cme_target_set_sizes_the_head_and_is_checked():
    config = ml_collections.ConfigDict({"model": {"width": 4}, "physics_aux_weight": 1.0, "physics_targets": "cme"})
    assert trainer.with_physics_head(config).model.physics_head == len(cme_physics.SSL_TARGETS)
    assert trainer.target_function("cme") is cme_physics.ssl_targets
    with pytest.raises(ValueError, match="physics_targets"):
        trainer.target_set_of(ml_collections.ConfigDict({"physics_targets": "euv"}))
