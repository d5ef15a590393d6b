"""The generator's matching terms (`solarjax.train.gan.MATCHING_TERMS`): known band shares and gradients on an analytic
ramp, zero on identical batches, a descent step on a blurred batch sharpens it, R of separated polarities is drawn
toward R of touching ones (in the mean and in distribution), the quiet width of Gaussian noise is its truncated
width and ignores strong field, the net-flux distance of a one-polarity batch to a balanced one is known and
descends, the weak-field and quiet-field coherences have known answers, the per-patch gradient equals the quality
diagnostic and its sorted distance between two ramp batches is known and descends, the bipoles' separations have a
known sorted distance that descends, the umbra strength, the strong field's extent and the border excess have known
answers on spots, squares and rims and their sorted distances descend, the grid phases see block edges, the band
powers are the ring spectrum's by band (a cosine fills one band) and their distance descends, the soft-thresholded
(signal) band powers ignore quiet noise and descend, and the train step adds exactly ``weight * mismatch`` of each
to the generator's loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax import physics, units
from solarjax.models import gan as gan_models
from solarjax.train import gan as gan_train
from solarjax.train import quality, sharding
from tests.helpers import BATCH, bipole_patches, tiny_config


def ramp(slope_gauss_per_px: float, batch: int = 2) -> jnp.ndarray:
    """[batch, 128, 128, 1] patches of Br = slope * (column - 63.5) G, in units of 1000 G."""
    columns = (np.arange(128) - 63.5) * slope_gauss_per_px / 1000.0
    return jnp.asarray(np.broadcast_to(columns[None, None, :, None], (batch, 128, 128, 1)), jnp.float32)


def test_band_statistics_of_a_ramp_are_its_known_shares_and_slope():
    slope = 12.0  # G/px: the ramp runs from -762 G to +762 G, every band is crossed
    shares, gradients = map(np.asarray, gan_train.band_statistics(ramp(slope)))
    half_width = 63.5 * slope
    expected = [2 * 150 / (2 * half_width), 2 * 300 / (2 * half_width), 2 * (half_width - 500) / (2 * half_width)]
    # soft edges: symmetric logistic edges on a uniform distribution cost nothing but the columns' discreteness
    np.testing.assert_allclose(shares, expected, atol=0.01)
    np.testing.assert_allclose(gradients, slope, rtol=1e-3)  # linear field: finite differences are exact


def test_identical_batches_match_and_a_blurred_batch_gets_sharper_by_descent():
    real = jnp.asarray(bipole_patches(8, seed=1))
    assert float(gan_train.sharpness_mismatch(real, real)) < 1e-10

    kernel = jnp.ones((5, 5, 1, 1), jnp.float32) / 25.0
    blurred = jax.lax.conv_general_dilated(real, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    before = float(gan_train.sharpness_mismatch(blurred, real))
    assert before > 0.01
    stepped = blurred
    for _ in range(10):
        grad = jax.grad(gan_train.sharpness_mismatch)(stepped, real)
        stepped = stepped - 0.003 * jnp.sign(grad)  # 3 G per pixel and step
    assert float(gan_train.sharpness_mismatch(stepped, real)) < 0.5 * before

    def gradient_misfit(images):  # the squared log ratios of the bands' sharpness alone
        return float(np.sum(np.log(gan_train.band_statistics(images)[1] / gan_train.band_statistics(real)[1]) ** 2))

    real_sharpness = np.asarray(gan_train.band_statistics(real)[1])
    assert (np.asarray(gan_train.band_statistics(blurred)[1]) < real_sharpness).all()  # the blur softened every band
    assert gradient_misfit(stepped) < 0.5 * gradient_misfit(blurred)  # descent sharpens them back


def test_complexity_mismatch_vanishes_on_equal_batches_and_descends_toward_the_real_r():
    from solarjax import physics

    rows, cols = np.mgrid[0:128, 0:128]

    def bipole(gap):  # +-800 G spots of radius 10 px, centres `gap` px apart
        spot = lambda c: 0.8 * (np.hypot(rows - 64, cols - c) < 10)  # noqa: E731
        return jnp.asarray((spot(64 - gap / 2) - spot(64 + gap / 2))[None, :, :, None], jnp.float32)

    touching, apart = bipole(20), bipole(60)  # spot edges 2 px apart (a PIL) vs. 40 px (none)
    r = lambda x: float(physics.smooth_quantities(x)["r_value"][0])  # noqa: E731
    assert r(touching) > 10 * r(apart)
    assert float(gan_train.complexity_mismatch(touching, touching)) < 1e-10
    before = float(gan_train.complexity_mismatch(apart, touching))
    expected = np.log((r(apart) + 1e-3) / (r(touching) + 1e-3)) ** 2
    np.testing.assert_allclose(before, expected, rtol=1e-4)
    grad = jax.grad(gan_train.complexity_mismatch)(apart, touching)
    assert float(gan_train.complexity_mismatch(apart - 0.01 * jnp.sign(grad), touching)) < before


def test_complexity_spread_is_the_sorted_log_r_distance_and_descends_toward_the_real_rs():
    from solarjax import physics

    rows, cols = np.mgrid[0:128, 0:128]

    def bipole(gap):  # +-800 G spots of radius 10 px, centres `gap` px apart
        spot = lambda c: 0.8 * (np.hypot(rows - 64, cols - c) < 10)  # noqa: E731
        return (spot(64 - gap / 2) - spot(64 + gap / 2))[:, :, None]

    real = jnp.asarray(np.stack([bipole(20), bipole(60)]), jnp.float32)  # one patch with a PIL, one without
    fake = jnp.asarray(np.stack([bipole(60), bipole(50)]), jnp.float32)  # neither has one
    log_r = lambda x: np.sort(np.log1p(np.asarray(physics.smooth_quantities(x)["r_value"])))  # noqa: E731
    assert log_r(real)[1] > log_r(real)[0] + 2  # R of touching spots is many times R of separated ones
    assert float(gan_train.complexity_spread_mismatch(real[::-1], real)) < 1e-10  # order does not matter
    expected = np.mean((log_r(fake) - log_r(real)) ** 2)  # rank by rank
    assert float(gan_train.complexity_spread_mismatch(fake, real)) == pytest.approx(expected, rel=1e-4)
    grad = jax.grad(gan_train.complexity_spread_mismatch)(fake, real)
    assert np.all(np.isfinite(np.asarray(grad)))
    stepped = fake - 0.01 * jnp.sign(grad)
    assert float(gan_train.complexity_spread_mismatch(stepped, real)) < expected


def test_quiet_width_is_the_measured_noise_width_and_ignores_strong_field():
    assert gan_models.QUIET_LEVEL * units.GAUSS_PER_UNIT == quality.QUIET_LEVEL_GAUSS  # one quiet cut
    noise = np.random.default_rng(3).standard_normal((4, 128, 128, 1)) * 0.024  # 24 G white noise
    spotted = noise.copy()
    spotted[:, 40:80, 40:80] += 0.9  # a 900 G spot: no longer quiet
    for images in (noise, spotted):
        measured = float(gan_train.quiet_width(jnp.asarray(images, jnp.float32)))
        assert measured == pytest.approx(float(np.mean(quality.noise_width(images))), rel=0.02)
    # 24 G noise truncated at +-50 G (2.08 sigma) has width 0.884 x 24 G
    assert float(gan_train.quiet_width(jnp.asarray(noise, jnp.float32))) == pytest.approx(0.884 * 24.0, rel=0.02)


def test_quiet_mismatch_vanishes_on_equal_batches_and_descends_toward_the_real_width():
    rng = np.random.default_rng(4)
    real = jnp.asarray(rng.standard_normal((4, 128, 128, 1)) * 0.020, jnp.float32)
    noisy = jnp.asarray(rng.standard_normal((4, 128, 128, 1)) * 0.030, jnp.float32)
    assert float(gan_train.quiet_mismatch(real, real)) < 1e-12
    before = float(gan_train.quiet_mismatch(noisy, real))
    assert before > 0.01
    scale = 1.0
    for _ in range(20):  # descend on one overall scale of the noisy batch
        grad = jax.grad(lambda s: gan_train.quiet_mismatch(s * noisy, real))(scale)
        scale -= 0.5 * float(grad)
    assert scale < 0.9 and float(gan_train.quiet_mismatch(scale * noisy, real)) < 0.1 * before


def test_quiet_spread_mismatch_sees_the_spread_of_widths_that_the_mean_width_hides():
    rng = np.random.default_rng(5)
    unit = rng.standard_normal((8, 128, 128, 1))
    spread = np.array([14.0, 16, 18, 20, 24, 26, 28, 30])[:, None, None, None] / 1000  # 22 G on average
    real = jnp.asarray(unit * spread, jnp.float32)
    narrow = jnp.asarray(rng.standard_normal((8, 128, 128, 1)) * 0.022, jnp.float32)
    widths = np.asarray(gan_train.quiet_widths(real))
    np.testing.assert_allclose(widths, quality.noise_width(np.asarray(real)), rtol=0.02)  # per patch
    assert float(gan_train.quiet_mismatch(narrow, real)) < 2e-3  # the same mean width...
    before = float(gan_train.quiet_spread_mismatch(narrow, real))
    assert before > 0.03  # ...but not the same spread
    assert float(gan_train.quiet_spread_mismatch(real[::-1], real)) < 1e-10  # order does not matter
    log_scale = jnp.zeros((8,))  # descend on one scale per patch
    for _ in range(50):
        grad = jax.grad(lambda s: gan_train.quiet_spread_mismatch(jnp.exp(s)[:, None, None, None] * narrow, real))(
            log_scale
        )
        log_scale = log_scale - 2.0 * grad
    after = float(gan_train.quiet_spread_mismatch(jnp.exp(log_scale)[:, None, None, None] * narrow, real))
    assert after < 0.05 * before


def test_sorted_w2_compares_ranks_column_by_column_and_pulls_only_the_fake_side():
    fake = jnp.array([[3.0, 0.0], [1.0, 5.0], [2.0, 1.0]])
    real = jnp.array([[6.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    # column 0 sorted: (1, 2, 3) against (2, 4, 6); column 1: (0, 1, 5) against (1, 1, 1)
    assert float(gan_train.sorted_w2(fake, real)) == pytest.approx((1 + 4 + 9 + 1 + 0 + 16) / 6)
    assert float(gan_train.sorted_w2(fake[::-1], real[jnp.array([1, 2, 0])])) == pytest.approx(
        float(gan_train.sorted_w2(fake, real))
    )  # the order of the patches in either batch does not matter
    assert float(gan_train.sorted_w2(real, real)) == 0.0
    fake_grad, real_grad = jax.grad(gan_train.sorted_w2, argnums=(0, 1))(fake, real)
    assert not np.any(np.asarray(real_grad))
    # d/d fake of mean((sorted fake - sorted real)^2): 2 (fake - its rank's real) / 6 at each fake entry
    np.testing.assert_allclose(np.asarray(fake_grad), [[-1.0, -1.0 / 3], [-1.0 / 3, 4.0 / 3], [-2.0 / 3, 0.0]])


def test_balance_mismatch_is_the_sorted_distance_of_the_net_fluxes_and_descends_toward_balance():
    from solarjax import physics

    rows, cols = np.mgrid[0:128, 0:128]

    def spots(signs):  # one 600 G spot of radius 8 px per patch, of the given signs
        spot = 0.6 * (np.hypot(rows - 64, cols - 64) < 8)
        return jnp.asarray(np.stack([sign * spot for sign in signs])[..., None], jnp.float32)

    balanced, negative = spots([1, -1, 1, -1]), spots([-1, -1, -1, -1])
    assert float(gan_train.balance_mismatch(balanced, balanced)) < 1e-12
    # order does not matter: a permuted batch is the same distribution
    assert float(gan_train.balance_mismatch(balanced[::-1], balanced)) < 1e-12
    level = float(physics.smooth_quantities(balanced)["net_flux"][0]) / gan_train.BALANCE_SCALE
    assert level == pytest.approx(0.6 * np.sum(np.hypot(rows - 64, cols - 64) < 8) / 100.0, rel=0.01)
    # sorted, the all-negative batch meets [-l, -l, +l, +l] with [-l, -l, -l, -l]: two ranks off by 2 l
    np.testing.assert_allclose(
        float(gan_train.balance_mismatch(negative, balanced)), 2 * (2 * level) ** 2 / 4, rtol=1e-5
    )
    before = float(gan_train.balance_mismatch(negative, balanced))
    grad = jax.grad(gan_train.balance_mismatch)(negative, balanced)
    stepped = negative - 0.05 * jnp.sign(grad)
    assert float(gan_train.balance_mismatch(stepped, balanced)) < before
    # the descent lifts the net flux of the patches that sort against the real positive ones, not of every patch
    lifted = np.asarray(physics.smooth_quantities(stepped)["net_flux"]) > np.asarray(
        physics.smooth_quantities(negative)["net_flux"]
    )
    assert lifted.sum() == 2


def test_gaussian_smooth_keeps_constants_and_the_sum_and_spreads_a_point_by_sigma():
    constant = jnp.full((1, 32, 32), 7.0)
    np.testing.assert_allclose(np.asarray(gan_train.gaussian_smooth(constant, 3.0)), 7.0, rtol=1e-6)
    point = jnp.zeros((1, 64, 64)).at[0, 32, 32].set(1.0)
    smooth = np.asarray(gan_train.gaussian_smooth(point, 3.0))[0]
    assert smooth.sum() == pytest.approx(1.0, rel=1e-6)
    rows = np.arange(64) - 32
    variance = np.sum(smooth.sum(axis=1) * rows**2)  # the taps stop at 2 sigma, so a little below sigma^2
    assert 0.75 * 9.0 < variance < 9.0
    np.testing.assert_allclose(smooth, smooth.T, atol=1e-9)


def test_weak_coherence_keeps_unipolar_weak_field_and_cancels_mixed_polarity():
    rows, cols = np.mgrid[0:128, 0:128]
    unipolar = np.full((128, 128), 0.1)  # 100 G everywhere
    checker = 0.1 * np.where((rows + cols) % 2 == 0, 1.0, -1.0)  # +-100 G, mixed at the pixel scale
    halves = np.where(cols < 64, 0.1, -0.1)  # two opposite 100 G plage halves
    spot = np.where(np.hypot(rows - 64, cols - 64) < 20, 1.0, 0.0)  # a 1 kG spot and nothing else
    images = jnp.asarray(np.stack([unipolar, checker, halves, spot])[..., None], jnp.float32)
    coherence = np.asarray(gan_train.weak_coherence(images))
    assert coherence[0] == pytest.approx(100.0, rel=1e-3)
    assert coherence[1] < 1.0
    # smoothing the step between the halves only lowers the field within 2 sigma of the border
    assert 90.0 < coherence[2] < 100.0
    # the spot is strong field: its own pixels do not count and only its smoothed rim reaches the weak ones
    assert coherence[3] < 0.1 * 1000.0 * np.mean(np.hypot(rows - 64, cols - 64) < 28)


def test_plage_mismatch_vanishes_on_equal_batches_and_descends_toward_coherent_plage():
    rows, cols = np.mgrid[0:128, 0:128]
    halves = np.where(cols < 64, 0.1, -0.1)
    checker = 0.1 * np.where((rows + cols) % 2 == 0, 1.0, -1.0)
    real = jnp.asarray(np.stack([halves, -halves])[..., None], jnp.float32)
    fake = jnp.asarray(np.stack([checker, -checker])[..., None], jnp.float32)
    assert float(gan_train.plage_mismatch(real, real)) < 1e-12
    assert float(gan_train.plage_mismatch(real[::-1], real)) < 1e-12
    expected = np.mean(
        (np.sort(np.log1p(gan_train.weak_coherence(fake))) - np.sort(np.log1p(gan_train.weak_coherence(real)))) ** 2
    )
    assert float(gan_train.plage_mismatch(fake, real)) == pytest.approx(float(expected), rel=1e-5)
    assert float(gan_train.plage_mismatch(fake, real)) > 5.0  # log(1 + ~95) against log(1 + <1)
    grad = jax.grad(gan_train.plage_mismatch)(fake, real)
    assert np.all(np.isfinite(np.asarray(grad)))
    stepped = fake - 0.02 * jnp.sign(grad)
    assert float(gan_train.plage_mismatch(stepped, real)) < float(gan_train.plage_mismatch(fake, real))


def test_quiet_coherence_is_one_on_a_uniform_weak_field_and_the_kernels_power_on_white_noise():
    rows, cols = np.mgrid[0:128, 0:128]
    uniform = np.full((128, 128), 0.02)  # 20 G everywhere
    checker = 0.02 * np.where((rows + cols) % 2 == 0, 1.0, -1.0)
    noise = np.random.default_rng(3).normal(0.0, 0.015, (128, 128))  # 15 G, well inside the 50 G quiet cut
    halves = noise + np.where(cols < 64, 0.02, -0.02)  # noise on two opposite 20 G halves
    spot_on_noise = noise + np.where(np.hypot(rows - 64, cols - 64) < 20, 1.0, 0.0)  # strong pixels do not count
    images = jnp.asarray(np.stack([uniform, checker, noise, halves, spot_on_noise])[..., None], jnp.float32)
    coherence = np.asarray(gan_train.quiet_coherence(images))
    assert coherence[0] == pytest.approx(1.0, abs=3e-3)  # the local mean's 1e-3 floor
    assert coherence[1] < 1e-3
    # white noise keeps the kernel's power, the sum of its squared 2-D taps (outer product of the 1-D ones)
    radius = 6
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / gan_train.PLAGE_SIGMA_PIXELS) ** 2)
    taps /= taps.sum()
    assert coherence[2] == pytest.approx(np.sum(taps**2) ** 2, rel=0.2)
    # the halves keep their 20 G (less near the step between them), the noise its kernel share
    assert 0.55 < coherence[3] < 0.8  # 20^2 / (20^2 + 15^2) = 0.64 without the mask's soft edge
    # strong field beside quiet pixels does not spill into their local mean
    assert coherence[4] == pytest.approx(coherence[2], rel=0.3)


def test_coherence_mismatch_vanishes_on_equal_batches_and_descends_toward_coherent_quiet_field():
    noise = np.random.default_rng(4).normal(0.0, 0.015, (2, 128, 128))
    cols = np.arange(128)[None, None, :]
    halves = noise + np.where(cols < 64, 0.02, -0.02)  # the data's look: noise on two opposite weak halves
    real = jnp.asarray(halves[..., None], jnp.float32)
    fake = jnp.asarray(noise[..., None], jnp.float32)
    assert float(gan_train.coherence_mismatch(real, real)) < 1e-12
    assert float(gan_train.coherence_mismatch(real[::-1], real)) < 1e-12
    expected = np.mean((np.sort(gan_train.quiet_coherence(fake)) - np.sort(gan_train.quiet_coherence(real))) ** 2)
    assert float(gan_train.coherence_mismatch(fake, real)) == pytest.approx(float(expected), rel=1e-5)
    assert float(gan_train.coherence_mismatch(fake, real)) > 0.2
    grad = jax.grad(gan_train.coherence_mismatch)(fake, real)
    assert np.all(np.isfinite(np.asarray(grad)))
    stepped = fake - 0.002 * jnp.sign(grad)
    assert float(gan_train.coherence_mismatch(stepped, real)) < float(gan_train.coherence_mismatch(fake, real))


def test_mean_gradient_is_the_ramps_slope_and_the_quality_diagnostic():
    np.testing.assert_allclose(np.asarray(gan_train.mean_gradient(ramp(7.0))), 7.0, rtol=1e-4)
    images = bipole_patches(4, seed=2)
    np.testing.assert_allclose(
        np.asarray(gan_train.mean_gradient(jnp.asarray(images))), quality.mean_gradient(images), rtol=1e-4
    )


def test_gradient_mismatch_is_the_sorted_log_distance_and_descends_toward_the_real_gradients():
    real = jnp.concatenate([ramp(8.0, 1), ramp(4.0, 1)])
    fake = jnp.concatenate([ramp(1.0, 1), ramp(2.0, 1)])
    assert float(gan_train.gradient_mismatch(real, real)) < 1e-10
    assert float(gan_train.gradient_mismatch(real[::-1], real)) < 1e-10  # order within the batch does not matter
    # sorted rank by rank: 1 against 4 and 2 against 8, each a log ratio of log 4
    assert float(gan_train.gradient_mismatch(fake, real)) == pytest.approx(np.log(4.0) ** 2, rel=1e-4)
    grad = jax.grad(gan_train.gradient_mismatch)(fake, real)
    assert np.all(np.isfinite(np.asarray(grad)))
    stepped = fake - 1e-4 * jnp.sign(grad)
    assert float(gan_train.gradient_mismatch(stepped, real)) < float(gan_train.gradient_mismatch(fake, real))


def spots(peaks_gauss: list[float]) -> jnp.ndarray:
    """[len(peaks), 128, 128, 1] patches each holding one 5 x 5 block of +peak (25 px) on a 10 G field."""
    images = np.full((len(peaks_gauss), 128, 128, 1), 0.01, np.float32)
    for i, peak in enumerate(peaks_gauss):
        images[i, 60:65, 60:65, 0] = peak / 1000.0
    return jnp.asarray(images)


def bipoles(separations_px) -> jnp.ndarray:
    """[B, 128, 128, 1] patches: a +800 G and a -800 G Gaussian spot (sigma 3 px) on row 64, the positive one to
    the left (smaller column) by each separation (px), centred on column 64."""
    rows, cols = np.mgrid[0:128, 0:128]

    def spot(col):
        return np.exp(-((rows - 64) ** 2 + (cols - col) ** 2) / (2 * 3.0**2))

    return jnp.asarray(
        np.stack([0.8 * spot(64 - d / 2) - 0.8 * spot(64 + d / 2) for d in separations_px])[..., None], jnp.float32
    )


def test_bipole_mismatch_is_the_sorted_distance_of_separations_and_descends():
    from solarjax import physics

    real, fake = bipoles([20, 30, 40, 50]), bipoles([10, 20, 30, 40])
    values = physics.smooth_quantities(real)
    np.testing.assert_allclose(np.asarray(values["psep"]) * 128 * np.sqrt(2), [20, 30, 40, 50], rtol=0.01)
    # lead_polarity = col(positive) - col(negative): the positive spot sits on the left
    np.testing.assert_allclose(np.asarray(values["lead_polarity"]), [-20, -30, -40, -50], rtol=0.01)
    assert float(gan_train.bipole_mismatch(real[::-1], real)) < 1e-10  # order within the batch does not matter
    # mirrored (positive on the right): the same separations; sorted offsets +20..+50 against -50..-20, 70 px apart
    mirrored = real[:, :, ::-1]
    expected_mirror = (70 / gan_train.BIPOLE_SCALE_PIXELS) ** 2 / 2  # the separation column contributes 0
    assert float(gan_train.bipole_mismatch(mirrored, real)) == pytest.approx(expected_mirror, rel=0.03)
    # every rank of both columns 10 px short: (10 / 32)^2
    expected = (10 / gan_train.BIPOLE_SCALE_PIXELS) ** 2
    assert float(gan_train.bipole_mismatch(fake, real)) == pytest.approx(expected, rel=0.03)
    before = float(gan_train.bipole_mismatch(fake, real))
    grad = jax.grad(gan_train.bipole_mismatch)(fake, real)
    stepped = fake - 0.02 * jnp.sign(grad)
    assert float(gan_train.bipole_mismatch(stepped, real)) < before


def test_umbra_strength_is_the_mean_of_the_strongest_pixels_and_its_mismatch_descends():
    np.testing.assert_allclose(np.asarray(gan_train.umbra_strength(spots([1000.0, 600.0]))), [1000.0, 600.0], rtol=1e-5)
    images = bipole_patches(4, seed=2)
    np.testing.assert_allclose(
        np.asarray(gan_train.umbra_strength(jnp.asarray(images))), quality.umbra_strength(images), rtol=1e-5
    )
    mixed = np.full((1, 128, 128, 1), 0.01, np.float32)
    mixed[0, :2, :4, 0] = -0.9  # 8 px at -900 G and 8 px at +500 G: the mean of the 16 strongest |Br|
    mixed[0, 10:12, :4, 0] = 0.5
    assert float(gan_train.umbra_strength(jnp.asarray(mixed))[0]) == pytest.approx(700.0, rel=1e-5)
    real, fake = spots([1000.0, 500.0]), spots([400.0, 800.0])
    assert float(gan_train.umbra_mismatch(real[::-1], real)) < 1e-10  # order within the batch does not matter
    # sorted rank by rank: 400 against 500 and 800 against 1000, in units of 100 G: (1 + 4) / 2
    assert float(gan_train.umbra_mismatch(fake, real)) == pytest.approx(2.5, rel=1e-5)
    grad = jax.grad(gan_train.umbra_mismatch)(fake, real)
    assert np.count_nonzero(np.asarray(grad)) == 2 * quality.UMBRA_PIXELS  # only the strongest pixels move
    stepped = fake - 1e-2 * jnp.sign(grad)
    assert float(gan_train.umbra_mismatch(stepped, real)) < float(gan_train.umbra_mismatch(fake, real))


def test_spot_areas_count_the_pixels_above_each_level_and_their_mismatch_descends():
    def squares(sides, gauss=1000.0):  # one saturated square per patch (sides in px) in a 20 G field
        images = np.full((len(sides), 128, 128, 1), 0.02, np.float32)
        for image, side in zip(images, sides):
            image[:side, :side] = -gauss / 1000.0  # the sign does not matter
        return jnp.asarray(images)

    def soft_count(side, gauss=1000.0):  # the square's and the background's shares of each soft level mask
        levels = np.asarray(gan_train.SPOT_LEVELS_GAUSS)
        inside = 1 / (1 + np.exp(-(gauss - levels) / gan_train.SPOT_SOFTNESS_GAUSS))
        outside = 1 / (1 + np.exp(-(20.0 - levels) / gan_train.SPOT_SOFTNESS_GAUSS))
        return side**2 * inside + (128**2 - side**2) * outside

    np.testing.assert_allclose(
        np.asarray(gan_train.spot_areas(squares([30, 6]))), [soft_count(30), soft_count(6)], rtol=1e-5
    )
    # above 500 G the 20 G background counts for nothing; a 700 G square is strong, not saturated
    assert np.asarray(gan_train.spot_areas(squares([30])))[0, 1:] == pytest.approx([900, 884], abs=1)
    assert np.asarray(gan_train.spot_areas(squares([30], 700.0)))[0, 1:] == pytest.approx([900, 0], abs=1)
    real, fake = squares([30, 12]), squares([6, 3])
    assert float(gan_train.spot_mismatch(real[::-1], real)) < 1e-10  # order within the batch does not matter
    # sorted rank by rank: 3 px against 12 and 6 against 30, each level's log(1 + count) apart
    expected = (
        np.mean(
            (np.log1p(soft_count(3)) - np.log1p(soft_count(12))) ** 2
            + (np.log1p(soft_count(6)) - np.log1p(soft_count(30))) ** 2
        )
        / 2
    )
    assert float(gan_train.spot_mismatch(fake, real)) == pytest.approx(expected, rel=1e-4)
    grad = jax.grad(gan_train.spot_mismatch)(fake, real)
    stepped = fake - 0.05 * jnp.sign(grad)
    assert float(gan_train.spot_mismatch(stepped, real)) < float(gan_train.spot_mismatch(fake, real))


def test_spot_sizes_erode_squares_to_known_areas_and_count_no_speckle():
    """An 8 px square at 2,000 G counts (8 - w + 1)^2 at widths 3 and 5 and none at 9, at both levels; one in the
    corner keeps its size (outside counts as strong); a one-pixel checkerboard at 2,000 G, half its pixels above both
    levels by `spot_areas`, counts at no width."""
    images = np.zeros((3, 128, 128, 1), np.float32)
    images[0, 40:48, 60:68] = 2.0
    images[1, :8, :8] = -2.0
    images[2, ..., 0] = np.where(np.indices((128, 128)).sum(0) % 2 == 0, 2.0, 0.0)
    assert gan_train.SPOT_SIZE_WIDTHS_PX == (3, 5, 9) and len(gan_train.SPOT_SIZE_LEVELS_GAUSS) == 2
    sizes = np.asarray(gan_train.spot_sizes(jnp.asarray(images)))
    np.testing.assert_allclose(sizes[0], [36, 16, 0] * 2, atol=1e-3)
    np.testing.assert_allclose(sizes[1], [49, 36, 16] * 2, atol=1e-3)  # rows and columns 0-6, 0-5, 0-3 remain
    np.testing.assert_allclose(sizes[2], 0, atol=1e-3)
    assert np.asarray(gan_train.spot_areas(jnp.asarray(images[2:])))[0, 1:] == pytest.approx([8192, 8192], rel=1e-3)


def test_octagons_count_a_region_whatever_its_orientation_where_squares_do_not():
    """A 20 px square, the same area as a diamond (the square turned 45 degrees) and as a disc: at width 9 the
    octagons keep 144, 145 and 149 pixels of them, the squares 144, 85 and 109; both keep a square's (L - w + 1)^2."""
    yy, xx = np.indices((128, 128))
    images = np.zeros((3, 128, 128, 1), np.float32)
    images[0, 50:70, 50:70] = 2.0
    images[1, ..., 0] = np.where(np.abs(yy - 64) + np.abs(xx - 64) <= 14, 2.0, 0.0)  # 421 px
    images[2, ..., 0] = np.where((yy - 64) ** 2 + (xx - 64) ** 2 <= 11.3**2, 2.0, 0.0)  # 401 px
    square = np.asarray(gan_train.spot_sizes(jnp.asarray(images), "square"))[:, 2]
    octagon = np.asarray(gan_train.spot_sizes(jnp.asarray(images), "octagon"))
    np.testing.assert_allclose(octagon[0], [324, 256, 144] * 2, atol=1e-3)
    np.testing.assert_allclose(octagon[:, 2], [144, 145, 149], atol=1e-3)
    np.testing.assert_allclose(square, [144, 85, 109], atol=1e-3)
    with pytest.raises(ValueError, match="shape"):
        gan_train.spot_sizes(jnp.asarray(images), "disc")
    fake, real = jnp.asarray(images[1:2]), jnp.asarray(images[:1])
    assert float(gan_train.round_spot_size_mismatch(fake, real)) < 0.05 * float(
        gan_train.spot_size_mismatch(fake, real)
    )


def test_spot_size_mismatch_has_its_known_value_and_grows_a_small_spot():
    """A Gaussian spot 3 px wide against 12 px squares at 950 G: the mismatch is the mean over levels and widths of
    the squared log(1 + count) differences, and a signed-gradient step lowers it."""
    yy, xx = np.indices((128, 128))
    fake = np.zeros((2, 128, 128, 1), np.float32)
    fake[..., 0] = 0.95 * np.exp(-((yy - 64) ** 2 + (xx - 64) ** 2) / (2 * 3.0**2))
    real = np.zeros((2, 128, 128, 1), np.float32)
    real[:, 40:52, 40:52] = 0.95
    fake, real = jnp.asarray(fake), jnp.asarray(real)
    expected = np.mean(
        (np.log1p(np.asarray(gan_train.spot_sizes(fake))) - np.log1p(np.asarray(gan_train.spot_sizes(real)))) ** 2
    )
    value, grad = jax.value_and_grad(gan_train.spot_size_mismatch)(fake, real)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert float(value) > 1.0
    assert float(gan_train.spot_size_mismatch(real[::-1], real)) < 1e-10
    stepped = fake - 0.02 * jnp.sign(grad)
    assert float(gan_train.spot_size_mismatch(stepped, real)) < float(value)
    assert float(jnp.sum(gan_train.spot_sizes(stepped))) > float(jnp.sum(gan_train.spot_sizes(fake)))


def test_border_excess_is_the_quality_diagnostic_and_its_mismatch_descends():
    images = bipole_patches(4, seed=3)
    np.testing.assert_allclose(
        np.asarray(gan_train.border_excess(jnp.asarray(images))), quality.border_excess(images), rtol=1e-4, atol=1e-3
    )
    rim = np.full((2, 128, 128, 1), 0.02, np.float32)  # 20 G everywhere, the 2 px frame at 40 G in the first patch
    rim[0, :2], rim[0, -2:], rim[0, :, :2], rim[0, :, -2:] = 0.04, 0.04, 0.04, 0.04
    np.testing.assert_allclose(np.asarray(gan_train.border_excess(jnp.asarray(rim))), [20.0, 0.0], atol=1e-3)
    flat = jnp.asarray(np.full((2, 128, 128, 1), 0.02, np.float32))
    # sorted: (0 against 0) and (20 G against 0), in units of 10 G: (0 + 4) / 2
    assert float(gan_train.border_mismatch(jnp.asarray(rim), flat)) == pytest.approx(2.0, rel=1e-4)
    grad = jax.grad(gan_train.border_mismatch)(jnp.asarray(rim), flat)
    stepped = jnp.asarray(rim) - 1e-3 * jnp.sign(grad)
    assert float(gan_train.border_mismatch(stepped, flat)) < 2.0


def test_grid_phase_energy_sees_block_edges_and_its_mismatch_descends():
    # a ramp of 2 G per column: every horizontal pair differs by 2 G, every vertical pair by 0 -> 4 / 2 G^2 at every
    # phase, contrast 1
    ramp = np.broadcast_to(np.arange(128, dtype=np.float32) * 0.002, (1, 128, 128))[..., None].copy()
    np.testing.assert_allclose(quality.grid_phase_energy(ramp), np.full((1, quality.GRID_PERIOD), 2.0), rtol=1e-4)
    assert quality.grid_contrast(ramp)[0] == pytest.approx(1.0, rel=1e-4)
    # 2 x 2 blocks of independent 100 G draws (nearest-neighbour upsampling): pairs starting at even positions lie
    # inside a block (no difference), pairs starting at odd positions cross an edge (variance 2 x 100^2 G^2)
    coarse = np.random.default_rng(0).normal(0.0, 0.1, (3, 64, 64)).astype(np.float32)
    blocks = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2)[..., None]
    energy = quality.grid_phase_energy(blocks)
    np.testing.assert_allclose(energy[:, 0::2], 0.0, atol=1e-6)
    np.testing.assert_allclose(energy[:, 1::2], 2e4, rtol=0.1)
    assert np.all(quality.grid_contrast(blocks) > 1e6)
    # a position-independent field (white noise) has no preferred phase
    white = np.random.default_rng(1).normal(0.0, 0.05, (8, 128, 128, 1)).astype(np.float32)
    assert np.all(quality.grid_contrast(white) < 1.2)
    # the batch-pooled JAX energy (in s^2) is the mean of the per-patch NumPy energies (in G^2)
    np.testing.assert_allclose(
        np.asarray(gan_train.grid_phase_energy(jnp.asarray(blocks))),
        quality.grid_phase_energy(blocks).mean(axis=0) / 1e6,
        rtol=1e-4,
    )
    assert float(gan_train.grid_mismatch(jnp.asarray(ramp), None)) < 1e-10
    assert float(gan_train.grid_mismatch(jnp.asarray(white), None)) < 1e-3
    before = float(gan_train.grid_mismatch(jnp.asarray(blocks), None))
    assert before > 0.1
    grad = jax.grad(gan_train.grid_mismatch)(jnp.asarray(blocks), None)
    stepped = jnp.asarray(blocks) - 1e-3 * jnp.sign(grad)
    assert float(gan_train.grid_mismatch(stepped, None)) < before


def test_band_power_is_the_ring_spectrum_by_band_and_a_cosine_fills_one_band():
    edges = quality.SPECTRUM_BAND_EDGES
    noise = np.random.default_rng(2).normal(0.0, 0.05, (3, 128, 128)).astype(np.float32)
    k, power = quality.radial_power_spectrum(noise)  # G^2, rings k = 1..64
    by_band = np.stack(
        [power[:, low - 1 : min(high, 65) - 1].mean(axis=1) for low, high in zip(edges[:-1], edges[1:])], 1
    )
    np.testing.assert_allclose(quality.band_power(quality.field_gauss(noise)), by_band, rtol=1e-4)
    np.testing.assert_allclose(
        np.asarray(quality.band_power(jnp.asarray(noise), xp=jnp)), quality.band_power(noise), rtol=1e-4
    )
    # a cosine of 10 cycles per patch along the rows: amplitude 1 puts |F|^2 / H^2 = H^2 / 4 in each of its two
    # FFT pixels, so ring 10 holds 2 x 4096 / (ring 10's pixel count) and band [8, 13) a fifth of that
    x = np.arange(128, dtype=np.float64)
    cosine = np.broadcast_to(np.cos(2 * np.pi * 10 * x / 128), (1, 128, 128)).copy()
    frequencies = np.fft.fftfreq(128) * 128
    ring_10 = np.sum(np.rint(np.hypot(*np.meshgrid(frequencies, frequencies))) == 10)
    expected = np.zeros((1, len(edges) - 1))
    expected[0, edges.index(8)] = 2 * 128**2 / 4 / ring_10 / 5
    np.testing.assert_allclose(quality.band_power(cosine), expected, atol=1e-6 * expected.max())
    with pytest.raises(ValueError, match="holds no wavenumber"):
        quality.band_weights(16, (1, 4, 9, 12))


def test_spectrum_mismatch_vanishes_on_equal_batches_and_descends_toward_the_real_spectrum():
    rng = np.random.default_rng(3)
    real = jnp.asarray(rng.normal(0.0, 0.05, (BATCH, 128, 128, 1)), jnp.float32)  # white: flat bands
    assert float(gan_train.spectrum_mismatch(real, real)) == 0.0
    # smoothed noise lacks the small scales: its upper bands lie decades below the white batch's
    smooth = gan_train.gaussian_smooth(jnp.asarray(rng.normal(0.0, 0.05, (BATCH, 128, 128))), 2.0)[..., None]
    fake_bands, real_bands = gan_train.log_band_power(smooth), gan_train.log_band_power(real)
    assert fake_bands.shape == (BATCH, len(quality.SPECTRUM_BAND_EDGES) - 1)
    assert float(jnp.median(real_bands[:, -1] - fake_bands[:, -1])) > 2.0
    before = float(gan_train.spectrum_mismatch(smooth, real))
    grad = jax.grad(gan_train.spectrum_mismatch)(smooth, real)
    assert float(gan_train.spectrum_mismatch(smooth - 1e-3 * grad / jnp.max(jnp.abs(grad)), real)) < before


def test_signal_spectrum_ignores_quiet_noise_and_descends_toward_the_real_structures_small_scales():
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[:128, :128]
    # above the floor everywhere: the signal field is the field less 50 G, so its band powers are the field's
    strong = (300.0 + 100.0 * np.cos(2 * np.pi * 10 * cols / 128)) / 1000.0
    signal = np.asarray(gan_train.signal_field(jnp.asarray(strong[None, :, :, None], jnp.float32)))
    np.testing.assert_allclose(signal[0], 1000.0 * strong - gan_train.SIGNAL_FLOOR_GAUSS, atol=1e-3)
    # quiet noise (sd 10 G, all |Br| < 50 G) is not signal: it neither changes the mismatch nor receives gradient
    spots = np.exp(-((rows - 64.0) ** 2 + (cols - 64.0) ** 2) / (2 * 6.0**2))[None, :, :, None]
    real = jnp.asarray(
        0.8 * spots * (1 + 0.2 * rng.normal(size=(BATCH, 128, 128, 1))), jnp.float32
    )  # a spot with small-scale texture
    smooth = jnp.asarray(np.broadcast_to(0.8 * spots, real.shape), jnp.float32)
    noise = jnp.asarray(np.clip(rng.normal(0.0, 0.01, real.shape), -0.045, 0.045), jnp.float32)
    far = jnp.asarray(
        np.broadcast_to((((rows - 64.0) ** 2 + (cols - 64.0) ** 2) > 40.0**2)[None, :, :, None], real.shape)
    )
    noisy = jnp.where(far, noise, smooth)
    assert float(gan_train.signal_spectrum_mismatch(real, real)) == 0.0
    before = float(gan_train.signal_spectrum_mismatch(smooth, real))
    assert before > 0.1
    assert float(gan_train.signal_spectrum_mismatch(noisy, real)) == pytest.approx(before, rel=1e-4)
    grad = jax.grad(gan_train.signal_spectrum_mismatch)(noisy, real)
    assert float(jnp.max(jnp.abs(jnp.where(far, grad, 0.0)))) == 0.0
    step = smooth - 1e-3 * grad / jnp.max(jnp.abs(grad))
    assert float(gan_train.signal_spectrum_mismatch(step, real)) < before


def test_orientation_contrast_reads_a_cross_hatch_a_diagonal_and_white_noise():
    """Axis-aligned cosines of 20 cycles put all their power in band [13, 22)'s axis sector (a contrast of decades);
    the same cosines along the diagonals put it in the diagonal sector; white noise is isotropic (|contrast| within its sampling noise).
    NumPy and JAX agree."""
    rng = np.random.default_rng(4)
    white = rng.normal(0.0, 1.0, (4, 128, 128))
    rows, cols = np.mgrid[:128, :128]
    cross = np.cos(2 * np.pi * 20 * cols / 128) + np.cos(2 * np.pi * 20 * rows / 128)
    diagonal = np.cos(2 * np.pi * 14 * (cols + rows) / 128) + np.cos(2 * np.pi * 14 * (cols - rows) / 128)
    band = quality.ORIENTATION_BAND_EDGES.index(13)  # k = 14 sqrt(2) = 19.8 and k = 20 both fall in [13, 22)
    contrast = quality.orientation_contrast(np.stack([cross, diagonal]) + 1e-2 * white[:2])
    assert contrast[0, band] > 3.0
    assert contrast[1, band] < -3.0
    # white noise: about 100 exponential |F|^2 per sector in band [8, 13), so a per-patch sd of ~0.06 dex there
    assert np.all(np.abs(quality.orientation_contrast(white)) < 0.25)
    assert np.all(np.abs(quality.orientation_contrast(white).mean(axis=0)) < 0.1)
    np.testing.assert_allclose(
        np.asarray(quality.orientation_contrast(jnp.asarray(white, jnp.float32), xp=jnp)),
        quality.orientation_contrast(white),
        atol=1e-4,
    )
    # the sectors are disjoint and each band's weights sum to 1 (a band mean)
    axis, diag = (quality.band_weights(128, quality.ORIENTATION_BAND_EDGES, s) for s in ("axis", "diagonal"))
    assert not np.any((axis > 0) & (diag > 0))
    np.testing.assert_allclose(axis.sum(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(diag.sum(axis=0), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="sector must be one of"):
        quality.band_weights(128, sector="radial")


def test_isotropy_mismatch_descends_from_a_cross_hatch_toward_isotropic_patches():
    rng = np.random.default_rng(5)
    rows, cols = np.mgrid[:128, :128]
    cross = 0.05 * (np.cos(2 * np.pi * 40 * cols / 128) + np.cos(2 * np.pi * 40 * rows / 128))
    real = jnp.asarray(rng.normal(0.0, 0.02, (BATCH, 128, 128, 1)), jnp.float32)
    fake = jnp.asarray(cross[None, ..., None] + rng.normal(0.0, 0.02, (BATCH, 128, 128, 1)), jnp.float32)
    before = float(gan_train.isotropy_mismatch(fake, real))
    # band [38, 65)'s axis sector: 4 x 128^2 x 0.05^2 / 4 = 41 of cosine power over ~1,400 noise pixels of 4e-4,
    # a contrast of log10(74) = 1.9 dex against noise's 0: (1.9)^2 / 4 bands = 0.9
    assert before > 0.5
    other = jnp.asarray(rng.normal(0.0, 0.02, (BATCH, 128, 128, 1)), jnp.float32)
    assert float(gan_train.isotropy_mismatch(other, real)) < 0.01  # independent noise against noise
    grad = jax.grad(gan_train.isotropy_mismatch)(fake, real)
    assert float(gan_train.isotropy_mismatch(fake - 1e-2 * grad / jnp.max(jnp.abs(grad)), real)) < before


def test_sector_mismatch_sees_the_power_that_isotropy_lets_a_hatch_hide():
    """A cross-hatch along the axes plus one of equal power along the diagonals is isotropic (the isotropy term is
    near 0 against noise), but it holds decades more small-scale power than the noise in both sectors: the sector
    term is large, and a small descent step lowers it. Equal batches give 0; the sector powers are [N, 2, bands]."""
    rng = np.random.default_rng(6)
    rows, cols = np.mgrid[:128, :128]
    axes = np.cos(2 * np.pi * 40 * cols / 128) + np.cos(2 * np.pi * 40 * rows / 128)
    diagonals = np.cos(2 * np.pi * 28 * (cols + rows) / 128) + np.cos(2 * np.pi * 28 * (cols - rows) / 128)
    real = jnp.asarray(rng.normal(0.0, 0.02, (BATCH, 128, 128, 1)), jnp.float32)
    hatched = 0.05 * (axes + diagonals)[None, ..., None] + rng.normal(0.0, 0.02, (BATCH, 128, 128, 1))
    hatched = jnp.asarray(hatched, jnp.float32)
    assert quality.sector_power(np.asarray(real[..., 0])).shape == (BATCH, 2, len(quality.ORIENTATION_BAND_EDGES) - 1)
    assert float(gan_train.sector_mismatch(real, real)) == 0.0
    assert float(gan_train.isotropy_mismatch(hatched, real)) < 0.05
    before = float(gan_train.sector_mismatch(hatched, real))
    assert before > 0.5  # band [38, 65): ~1.9 dex in each sector over 8 values
    grad = jax.grad(gan_train.sector_mismatch)(hatched, real)
    assert float(gan_train.sector_mismatch(hatched - 1e-3 * grad / jnp.max(jnp.abs(grad)), real)) < before


def test_matching_weights_keep_the_positive_terms_and_refuse_negative_ones():
    import ml_collections

    model = ml_collections.ConfigDict({"arch": "simple", "quiet_weight": 3.0, "sharpness_weight": 0.0})
    assert gan_train.matching_weights(model) == (("quiet", 3.0),)
    model.complexity_weight = -1.0
    with pytest.raises(ValueError, match="complexity_weight=-1.0"):
        gan_train.matching_weights(model)


def test_matching_starts_hold_a_term_off_then_ramp_it_in():
    import ml_collections

    model = ml_collections.ConfigDict({"spot_weight": 3.0, "spot_start": 200, "grid_weight": 1.0, "ema_start": 50})
    assert gan_train.matching_starts(model) == (("spot", 200),)
    for stray in ({"umbra_start": 50}, {"spots_start": 50}):  # a term without a weight, a misspelt term
        with pytest.raises(ValueError, match=f"{next(iter(stray))} name no matching term"):
            gan_train.matching_starts(ml_collections.ConfigDict({**model.to_dict(), **stray}))
    scales = [float(gan_train.matching_scale(jnp.asarray(step), 200)) for step in (0, 199, 200, 300, 400, 1000)]
    assert scales == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0, 1.0])
    assert float(gan_train.matching_scale(jnp.asarray(0), 0)) == 1.0
    model.spot_start = -1
    with pytest.raises(ValueError, match="spot_start=-1"):
        gan_train.matching_starts(model)


def test_train_step_adds_the_weighted_mismatch_to_the_generators_loss():
    mesh = sharding.make_data_mesh(jax.devices()[:1])
    plain = gan_train.programs_for(tiny_config(), mesh)
    config = tiny_config()
    config.model.sharpness_weight = 2.0
    config.model.complexity_weight = 0.5
    config.model.quiet_weight = 4.0
    config.model.balance_weight = 0.3
    config.model.complexity_spread_weight = 3.0  # with complexity and bipole: one matched_quantities per batch
    config.model.bipole_weight = 10.0
    config.model.balance_start = 10  # off for 10 steps, then ramps in: half its weight at step 15
    matched = gan_train.programs_for(config, mesh)
    state = plain.init(jax.random.key(5))
    early = jax.tree.map(jnp.copy, state.replace(step=jnp.asarray(5, state.step.dtype)))  # before balance_start
    state = state.replace(step=jnp.asarray(15, state.step.dtype))
    batch = {"image": jnp.asarray(bipole_patches(BATCH, seed=2))}
    key = gan_train.step_key(state)
    _, plain_metrics = plain.train_step(jax.tree.map(jnp.copy, state), batch, key)  # the step donates its state
    _, metrics = matched.train_step(state, batch, key)
    plain_metrics, metrics = jax.device_get((plain_metrics, metrics))
    assert "sharpness_mismatch" not in plain_metrics and metrics["sharpness_mismatch"] > 0
    assert "complexity_mismatch" not in plain_metrics and metrics["complexity_mismatch"] > 0
    assert "quiet_mismatch" not in plain_metrics and metrics["quiet_mismatch"] > 0
    assert "balance_mismatch" not in plain_metrics and metrics["balance_mismatch"] > 0
    added = (
        2.0 * metrics["sharpness_mismatch"]
        + 0.5 * metrics["complexity_mismatch"]
        + 3.0 * metrics["complexity_spread_mismatch"]
        + 10.0 * metrics["bipole_mismatch"]
        + 4.0 * metrics["quiet_mismatch"]
        + 0.5 * 0.3 * metrics["balance_mismatch"]
    )
    np.testing.assert_allclose(metrics["g_loss"], plain_metrics["g_loss"] + added, rtol=1e-5)
    np.testing.assert_allclose(metrics["d_loss"], plain_metrics["d_loss"], rtol=1e-6)  # the critic is untouched
    _, plain_early = plain.train_step(jax.tree.map(jnp.copy, early), batch, gan_train.step_key(early))
    _, matched_early = matched.train_step(early, batch, gan_train.step_key(early))  # balance adds nothing yet
    plain_early, matched_early = jax.device_get((plain_early, matched_early))
    assert matched_early["balance_mismatch"] > 0
    without_balance = sum(
        weight * matched_early[f"{name}_mismatch"]
        for name, weight in (
            ("sharpness", 2.0),
            ("complexity", 0.5),
            ("complexity_spread", 3.0),
            ("bipole", 10.0),
            ("quiet", 4.0),
        )
    )
    np.testing.assert_allclose(matched_early["g_loss"], plain_early["g_loss"] + without_balance, rtol=1e-5)


def test_shared_quantities_give_each_term_its_own_value_and_gradient():
    """The train step's one `matched_quantities` per batch gives each `QUANTITY_TERMS` term the value and the
    gradient its array function computes on its own."""
    real = jnp.asarray(bipole_patches(BATCH, seed=3))
    fake = jnp.asarray(bipole_patches(BATCH, seed=4)) * 0.8
    assert set(gan_train.QUANTITY_TERMS) == {"complexity", "complexity_spread", "bipole", "balance"}
    real_quantities = jax.lax.stop_gradient(gan_train.matched_quantities(real))
    for name, from_quantities in gan_train.QUANTITY_TERMS.items():
        value, grad = jax.value_and_grad(gan_train.MATCHING_TERMS[name])(fake, real)
        shared_value, shared_grad = jax.value_and_grad(
            lambda x, term=from_quantities: term(gan_train.matched_quantities(x), real_quantities)
        )(fake)
        assert float(value) > 1e-4, name
        np.testing.assert_allclose(shared_value, value, rtol=1e-6, err_msg=name)
        scale = float(jnp.max(jnp.abs(grad)))
        assert scale > 0, name
        np.testing.assert_allclose(shared_grad, grad, rtol=1e-5, atol=1e-6 * scale, err_msg=name)


def test_sharp_matched_quantities_leave_out_a_polarity_line_below_the_threshold():
    """Two 48 x 34 px blocks of opposite sign side by side: at +-110 G (below the 150 G threshold; the exact R
    is undefined) the default masks' +-40 G blur counts a line worth over a quarter of the strong pair's, the
    sharp masks nothing; at +-300 G the sharp masks give the exact R."""
    field = np.zeros((2, 128, 128, 1), np.float32)
    for index, gauss in enumerate((110.0, 300.0)):
        field[index, 40:88, 30:64], field[index, 40:88, 64:98] = gauss / 1000.0, -gauss / 1000.0
    exact = np.asarray(physics.quantities(field)["r_value"])
    default = np.asarray(gan_train.matched_quantities(jnp.asarray(field))["r_value"])
    sharp = np.asarray(gan_train.matched_quantities(jnp.asarray(field), sharpness=200.0)["r_value"])
    assert np.isnan(exact[0]) and exact[1] > 80.0
    assert default[0] > 0.25 * exact[1] and sharp[0] < 0.01
    np.testing.assert_allclose(sharp[1], exact[1], rtol=1e-3)
    assert abs(default[1] - exact[1]) > 1.0


def test_train_step_reads_its_quantities_at_the_matched_sharpness():
    mesh = sharding.make_data_mesh(jax.devices()[:1])
    config = tiny_config(matching_terms=False)
    config.model.complexity_spread_weight = 1.0
    config.model.matched_sharpness = 200.0
    programs = gan_train.programs_for(config, mesh)
    state = programs.init(jax.random.key(5))
    real = jnp.asarray(bipole_patches(BATCH, seed=2))
    key = gan_train.step_key(state)
    fake = programs.generator.apply(
        {"params": state.g_params}, jax.random.normal(key, (BATCH, int(config.model.latent_dim)))
    )
    _, metrics = programs.train_step(state, {"image": real}, key)

    def spread(sharpness):
        return float(
            gan_train.complexity_spread_from_quantities(
                gan_train.matched_quantities(fake, sharpness), gan_train.matched_quantities(real, sharpness)
            )
        )

    np.testing.assert_allclose(float(metrics["complexity_spread_mismatch"]), spread(200.0), rtol=1e-4)
    assert abs(spread(200.0) - spread(None)) > 1e-3 * spread(200.0)
    config.model.matched_sharpness = 0.0
    with pytest.raises(ValueError, match="matched_sharpness must be > 0"):
        gan_train.programs_for(config, mesh)
