"""Realism diagnostics on analytic fields with known answers, the combined realism score, the EMA of
the generator's weights, the hinge loss, and the fast upsampling convolution of 'resize_conv_small'."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from solarjax import sharding
from solarjax.models import gan as gan_models
from solarjax.train import gan as gan_train
from solarjax.train import quality

SIZE = 128


def power_law_field(count: int, slope: float, seed: int, peak: float = 0.3) -> np.ndarray:
    """[count, 128, 128, 1] Gaussian random fields whose radial power spectrum is k^slope, max |s| = peak."""
    rng = np.random.default_rng(seed)
    frequencies = np.fft.fftfreq(SIZE) * SIZE
    k = np.hypot(*np.meshgrid(frequencies, frequencies, indexing="ij"))
    amplitude = np.where(k > 0, np.maximum(k, 1e-9) ** (slope / 2), 0.0)
    fields = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(count, SIZE, SIZE))) * amplitude))
    return (peak * fields / np.abs(fields).max(axis=(1, 2), keepdims=True))[..., None].astype(np.float32)


def test_spectral_slope_of_a_power_law_field_is_its_exponent():
    for slope in (-3.0, -2.0):
        k, power = quality.radial_power_spectrum(power_law_field(8, slope, seed=1))
        measured = quality.spectral_slope(k, power)
        assert measured.shape == (8,)
        assert np.mean(measured) == pytest.approx(slope, abs=0.1)


def test_white_noise_has_its_truncated_sigma_as_noise_width():
    """Quiet pixels are |Br| < 50 G: for N(0, 20 G) that keeps +-2.5 sigma, whose std is known."""
    rng = np.random.default_rng(2)
    images = (0.020 * rng.normal(size=(4, SIZE, SIZE, 1))).astype(np.float32)  # 20 G
    expected = 20.0 * scipy.stats.truncnorm(-2.5, 2.5).std()  # 19.09 G
    np.testing.assert_allclose(quality.noise_width(images), expected, rtol=0.02)
    # a patch with no quiet pixels has no noise width
    assert np.isnan(quality.noise_width(np.full((1, SIZE, SIZE), 0.5)))[0]


def test_white_noise_spectrum_is_flat_and_a_checkerboard_makes_a_peak():
    rng = np.random.default_rng(3)
    noise = 0.05 * rng.normal(size=(16, SIZE, SIZE))
    k, power = quality.radial_power_spectrum(noise)
    flat = quality.spectral_peak_ratios(k, power.mean(axis=0))
    assert set(flat) == {16, 32, 48}
    assert all(0.85 < ratio < 1.15 for ratio in flat.values()), flat
    assert abs(np.mean(quality.spectral_slope(k, power))) < 0.05
    # an 8-pixel periodic texture (three stride-2 upsamplings) on the same noise
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    texture = 0.02 * np.cos(2 * np.pi * cols / 8) * np.cos(2 * np.pi * rows / 8)  # k = (16, 16) -> ring 23
    texture += 0.02 * np.cos(2 * np.pi * cols / 8) + 0.02 * np.cos(2 * np.pi * rows / 4)  # rings 16 and 32
    _, power = quality.radial_power_spectrum(noise + texture)
    peaks = quality.spectral_peak_ratios(k, power.mean(axis=0))
    assert peaks[16] > 5 and peaks[32] > 5 and peaks[48] < 1.5


def test_gradient_of_a_plane_and_strong_pixel_share():
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    plane = (3.0 * rows + 4.0 * cols - 500.0) / 1000.0  # Br = 3 G/px * row + 4 G/px * col - 500 G
    np.testing.assert_allclose(quality.mean_gradient(plane[None]), [5.0], rtol=1e-9)
    half = np.where(cols < 32, 0.8, np.where(cols < 64, -0.6, 0.1))[None, ..., None]  # 25% > +500, 25% < -500
    np.testing.assert_allclose(quality.strong_pixel_fraction(half), [0.5])


def _summary(images):
    encoder = quality.random_feature_encoder(0)
    return quality.summarise([images[:16], images[16:]], encoder)


@pytest.mark.parametrize("sizes", [(3, 7, 2), (12,), (2, 2, 2, 2, 2), (5, 0, 5), (1,)])
def test_fixed_blocks_keep_the_rows_in_order_and_pad_only_the_last(sizes):
    batches = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * i for i, n in enumerate(sizes)]
    blocks = list(quality.fixed_blocks(batches, 5))
    total = sum(sizes)
    assert [count for _, count in blocks] == [5] * (total // 5) + ([total % 5] if total % 5 else [])
    assert all(block.shape == (5, 2) and block.dtype == np.float32 for block, _ in blocks)  # 8 rows exceed 5
    np.testing.assert_array_equal(np.concatenate([b[:count] for b, count in blocks]), np.concatenate(batches))
    np.testing.assert_array_equal(blocks[-1][0][blocks[-1][1] :], 0.0)


def test_the_last_block_is_the_smallest_power_of_two_that_holds_it():
    assert [quality.tail_size(n, 250) for n in (1, 8, 9, 16, 17, 100, 128, 129, 249)] == [
        8,
        8,
        16,
        16,
        32,
        128,
        128,
        250,
        250,
    ]
    blocks = list(quality.fixed_blocks([np.ones((260, 3)), np.ones((13, 3))], 250))
    assert [(len(block), count) for block, count in blocks] == [(250, 250), (32, 23)]
    np.testing.assert_array_equal(blocks[-1][0][23:], 0.0)


def test_a_summary_in_padded_blocks_is_the_patches_own_figures(monkeypatch):
    monkeypatch.setattr(quality, "SUMMARY_BATCH", 16)
    rng = np.random.default_rng(4)
    images = np.clip(rng.normal(0, 0.3, (37, 128, 128, 1)), -1, 1).astype(np.float32)
    images[:, 40:60, 40:60] += 0.8  # a strong patch of one sign, so the quantities are defined
    encoder = quality.random_feature_encoder(0)
    summary = quality.summarise([images[:5], images[5:30], images[30:]], encoder)  # blocks of 16, 16, 5 + 3 zeros
    assert summary.count == len(images)
    np.testing.assert_allclose(summary.features, np.asarray(encoder(jnp.asarray(images))), rtol=1e-5, atol=1e-6)
    direct = quality.default_quantities_fn()(jnp.asarray(images))
    for name, values in direct.items():
        np.testing.assert_allclose(summary.quantities[name], np.asarray(values), rtol=1e-5, equal_nan=True)
    diagnostics, _, power = quality.realism_diagnostics(images)
    for name, values in diagnostics.items():
        np.testing.assert_allclose(summary.diagnostics[name], values, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(summary.mean_power, power.mean(axis=0), rtol=1e-6)


def test_realism_figures_and_score_tell_a_checkerboard_from_data():
    data = power_law_field(32, -2.8, seed=4, peak=1.0)  # some pixels beyond +-500 G
    same_kind = power_law_field(32, -2.8, seed=5, peak=1.0)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    checkered = np.clip(
        power_law_field(32, -2.0, seed=6, peak=0.6)
        + (0.03 * (np.cos(2 * np.pi * cols / 8) + np.cos(2 * np.pi * rows / 4)))[None, ..., None],
        -1,
        1,
    )
    reference = _summary(data)
    good = quality.quality_figures(_summary(same_kind), reference)
    bad = quality.quality_figures(_summary(checkered.astype(np.float32)), reference)
    assert good["realism/ks_spectral_slope"] < 0.3 and bad["realism/ks_spectral_slope"] > 0.9
    assert good["realism/peak_ratio_max"] < 1.5 < bad["realism/peak_ratio_max"]
    assert good["realism/strong_pixel_ratio"] == pytest.approx(1.0, abs=0.5)
    assert 0 <= good["realism_score"] < 0.3 < bad["realism_score"] <= 1
    # identical sets: every KS is 0, the score keeps only the set's own peak term
    identical = quality.quality_figures(reference, reference)
    assert identical["realism/ks_noise_width_gauss"] == 0 and identical["realism/strong_pixel_ratio"] == 1
    assert identical["realism/r_median_ratio"] == 1  # ten terms: R is one of them
    assert identical["realism/ks_umbra_diameter_px"] == 0 and identical["realism/ks_orientation_contrast"] == 0
    assert identical["realism_score"] == pytest.approx(
        min(1.0, max(0.0, identical["realism/peak_ratio_max"] - 1)) / 10, abs=1e-12
    )


def test_realism_figures_count_saturated_umbrae_and_block_texture():
    # 32 patches of 22 G noise; 4 hold a 5 x 5 spot at 1000 G (saturated), 4 at 900 G (not), the rest none
    rng = np.random.default_rng(7)
    images = rng.normal(0.0, 0.022, (32, SIZE, SIZE, 1)).astype(np.float32)
    images[:4, 60:65, 60:65] = 1.0
    images[4:8, 60:65, 60:65] = 0.9
    reference = _summary(images)
    # the same patches drawn in 2 x 2 blocks (nearest-neighbour upsampling of every other pixel), plus 2 G of noise
    blocky = np.repeat(np.repeat(images[:, ::2, ::2], 2, axis=1), 2, axis=2) + rng.normal(0.0, 0.002, images.shape)
    figures = quality.quality_figures(_summary(blocky), reference)
    assert figures["realism/saturated_share_reference"] == pytest.approx(4 / 32)
    assert figures["realism/saturated_share_generated"] == pytest.approx(4 / 32)
    # white noise: every phase alike (median contrast near 1); the pairs inside a block differ by the 2 G noise
    # only, those across a block edge by the 22 G noise too: (2 x 22^2 + 2 x 2^2) / (2 x 2^2), about 120
    assert figures["realism/grid_contrast_reference"] < 1.3
    assert 60 < figures["realism/grid_contrast_generated"] < 250
    assert figures["realism/ks_grid_contrast"] == 1.0
    table = quality.realism_table(figures)
    row = table["KS of grid contrast (the upsampling's block texture)"]
    assert row["met"] is False and row["data_median"] < 1.3


def test_umbra_diameter_is_the_largest_saturated_discs_equivalent_diameter():
    rows, cols = np.mgrid[:SIZE, :SIZE] + 0.5
    images = np.zeros((3, SIZE, SIZE, 1), np.float32)
    images[0, ..., 0] = np.where(np.hypot(rows - 40, cols - 40) < 10, 1.0, 0.0)  # radius 10: 316 px
    images[0, ..., 0] -= np.where(np.hypot(rows - 100, cols - 100) < 4, 1.0, 0.0)  # a smaller one of the other sign
    images[1, 20:28, 30:34] = -1.0  # 8 x 4 = 32 px
    images[2] = 0.9  # 900 G everywhere: not saturated
    diameters = quality.umbra_diameter(images)
    np.testing.assert_allclose(diameters[0], 20.0, rtol=0.02)
    np.testing.assert_allclose(diameters[1:], [2 * np.sqrt(32 / np.pi), 0.0])


def test_realism_figures_see_a_cross_hatch_along_the_pixel_grid():
    # 22 G white noise (isotropic: orientation contrast near 0) against the same noise plus a 30 G cross-hatch of
    # 3-px wavelength along the rows and columns (k = 43: 4 x 128^2 x 0.03^2 / 4 = 15 of power in the axis sector
    # of band [38, 65), over its ~1,400 noise pixels of 4.8e-4: 1.3 dex in that band, a quarter of it on the mean)
    rng = np.random.default_rng(8)
    reference = rng.normal(0.0, 0.022, (32, SIZE, SIZE, 1)).astype(np.float32)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    hatch = 0.03 * (np.cos(2 * np.pi * 43 * rows / SIZE) + np.cos(2 * np.pi * 43 * cols / SIZE))
    hatched = (rng.normal(0.0, 0.022, reference.shape) + hatch[None, :, :, None]).astype(np.float32)
    figures = quality.quality_figures(_summary(hatched), _summary(reference))
    assert abs(figures["realism/orientation_contrast_reference"]) < 0.05
    assert figures["realism/orientation_contrast_generated"] > 0.2
    assert figures["realism/ks_orientation_contrast"] == 1.0
    row = quality.realism_table(figures)["KS of orientation contrast (a cross-hatch along the pixel grid)"]
    assert row["met"] is False


def test_realism_score_terms():
    perfect = {
        "realism/ks_noise_width_gauss": 0.0,
        "realism/ks_spectral_slope": 0.0,
        "realism/ks_mean_gradient_gauss_per_pixel": 0.0,
        "realism/ks_grid_contrast": 0.0,
        "realism/ks_orientation_contrast": 0.0,
        "realism/ks_umbra_diameter_px": 0.0,
        "ks_mean": 0.0,
        "realism/strong_pixel_ratio": 1.0,
        "realism/peak_ratio_max": 1.0,
    }
    assert quality.realism_score(perfect) == 0.0
    assert quality.realism_score({**perfect, "realism/strong_pixel_ratio": 0.5}) == pytest.approx(0.5 / 9)
    assert quality.realism_score({**perfect, "realism/peak_ratio_max": 1.5}) == pytest.approx(0.5 / 9)
    assert quality.realism_score({**perfect, "ks_mean": float("nan")}) == pytest.approx(1 / 9)
    # the late-settling fine-scale and umbra-size KS are terms: a checkpoint that misses them ranks worse
    assert quality.realism_score({**perfect, "realism/ks_orientation_contrast": 0.45}) == pytest.approx(0.45 / 9)
    assert quality.realism_score({**perfect, "realism/ks_umbra_diameter_px": 0.3}) == pytest.approx(0.3 / 9)
    missing = {k: v for k, v in perfect.items() if k != "realism/ks_grid_contrast"}
    assert quality.realism_score(missing) == pytest.approx(1 / 9)  # a missing term counts as 1
    # the median-R target is the tenth term when the figures have it: R 2x (or 0.5x) off counts 0.5,
    # 4x off counts 1, as does an undefined ratio
    with_r = {**perfect, "realism/r_median_ratio": 1.0}
    assert quality.realism_score(with_r) == 0.0
    assert quality.realism_score({**with_r, "realism/r_median_ratio": 2.0}) == pytest.approx(0.5 / 10)
    assert quality.realism_score({**with_r, "realism/r_median_ratio": 0.5}) == pytest.approx(0.5 / 10)
    assert quality.realism_score({**with_r, "realism/r_median_ratio": 4.0}) == pytest.approx(1 / 10)
    assert quality.realism_score({**with_r, "realism/r_median_ratio": float("nan")}) == pytest.approx(1 / 10)
    # one term per target: every target's figure moves the score
    assert set(with_r) == set(quality.REALISM_TARGETS)
    for name, (_, (_, high)) in quality.REALISM_TARGETS.items():
        off = {**with_r, name: 2.0 * high if high > 1 else 1.0}  # twice a ratio's bound, or a KS of 1
        assert quality.realism_score(off) > 0.05, name


def test_ema_update_known_answer():
    average = {"a": jnp.array([1.0, 2.0]), "b": jnp.array(10.0)}
    params = {"a": jnp.array([3.0, 2.0]), "b": jnp.array(0.0)}
    updated = gan_train.ema_update(average, params, 0.9)
    np.testing.assert_allclose(updated["a"], [1.2, 2.0], rtol=1e-6)
    np.testing.assert_allclose(updated["b"], 9.0, rtol=1e-6)


def test_train_step_moves_the_ema_towards_the_new_parameters_and_samples_use_it():
    generator, discriminator = gan_models.make_models("simple")
    tx = gan_train.make_optimizer(5e-4, 0.5, 0.999)
    state = gan_train.init_state(generator, discriminator, tx, tx, jax.random.key(0), 100, ema=True)
    jax.tree.map(np.testing.assert_array_equal, state.g_ema_params, state.g_params)
    step = jax.jit(gan_train.make_train_step(generator, discriminator, tx, tx, 100, ema_decay=0.75))
    real = jnp.asarray(power_law_field(2, -2.8, seed=7))
    new_state, _ = step(state, {"image": real}, jax.random.key(1))
    expected = jax.tree.map(lambda old, new: 0.75 * old + 0.25 * new, state.g_params, new_state.g_params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new_state.g_ema_params, expected)
    assert gan_train.sampling_params(new_state) is new_state.g_ema_params
    assert gan_train.sampling_params(new_state.replace(g_ema_params=None)) is new_state.g_params


def test_the_ema_equals_the_trained_parameters_until_it_starts_then_averages():
    generator, discriminator = gan_models.make_models("simple")
    tx = gan_train.make_optimizer(5e-4, 0.5, 0.999)
    state = gan_train.init_state(generator, discriminator, tx, tx, jax.random.key(0), 100, ema=True)
    step = jax.jit(gan_train.make_train_step(generator, discriminator, tx, tx, 100, ema_decay=0.75, ema_start=2))
    real = jnp.asarray(power_law_field(2, -2.8, seed=7))
    for key in (1, 2):  # steps 0 and 1: before the start, the average is the latest parameters
        state, _ = step(state, {"image": real}, jax.random.key(key))
        jax.tree.map(np.testing.assert_array_equal, state.g_ema_params, state.g_params)
    new_state, _ = step(state, {"image": real}, jax.random.key(3))
    expected = jax.tree.map(lambda old, new: 0.75 * old + 0.25 * new, state.g_params, new_state.g_params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), new_state.g_ema_params, expected)
    assert not np.allclose(jax.tree.leaves(new_state.g_ema_params)[0], jax.tree.leaves(new_state.g_params)[0])
    with pytest.raises(ValueError, match="ema_start must be >= 0"):
        gan_train.build_programs(
            "simple", "xla", 100, (5e-4, 0.5, 0.999), sharding.make_data_mesh(), ema_decay=0.5, ema_start=-1
        )


def test_hinge_and_non_saturating_losses_known_values():
    real, fake = jnp.array([2.0, 0.0]), jnp.array([-2.0, 0.5])
    g_hinge, d_hinge = gan_train.adversarial_losses("hinge")
    assert float(d_hinge(real, fake)) == pytest.approx((0.0 + 1.0) / 2 + (0.0 + 1.5) / 2)
    assert float(g_hinge(fake)) == pytest.approx(0.75)
    g_bce, d_bce = gan_train.adversarial_losses("non_saturating")
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731  -log sigmoid(x) = softplus(-x)
    assert float(g_bce(fake)) == pytest.approx(np.mean(softplus(-np.array([-2.0, 0.5]))), rel=1e-6)
    assert float(d_bce(real, fake)) == pytest.approx(
        np.mean(softplus(-np.array([2.0, 0.0]))) + np.mean(softplus(np.array([-2.0, 0.5]))), rel=1e-6
    )
    with pytest.raises(ValueError, match="unknown GAN loss 'wasserstein'"):
        gan_train.adversarial_losses("wasserstein")


@pytest.mark.parametrize("conv_impl", gan_models.CONV_IMPLS)
def test_upsample_conv_equals_upsampling_then_convolution(conv_impl):
    x = jax.random.normal(jax.random.key(1), (2, 5, 7, 3))
    kernel = jax.random.normal(jax.random.key(2), (3, 3, 3, 4))
    expected = jax.lax.conv_general_dilated(
        gan_models.pad_spatial(gan_models.upsample_nearest(x), 1, 1),
        kernel,
        (1, 1),
        "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    np.testing.assert_allclose(gan_models.upsample_conv(x, kernel, conv_impl), expected, atol=2e-5)
    grads = [
        jax.grad(lambda x, k: jnp.sum(gan_models.upsample_conv(x, k, impl) ** 2), argnums=(0, 1))(x, kernel)
        for impl in gan_models.CONV_IMPLS
    ]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), *grads)


def test_small_resize_conv_generator_shape_and_parameter_count():
    generator, discriminator = gan_models.make_models("resize_conv_small")
    shapes = jax.eval_shape(generator.init, jax.random.key(0), jnp.zeros((1, 100)))
    # Dense 100*16384+16384, upsample-convs 3*3*64*64+64, 3*3*64*32+32, 3*3*32*1+1
    assert gan_models.parameter_count(shapes) == 1_654_784 + 36_928 + 18_464 + 289 == 1_710_465
    assert jax.eval_shape(generator.apply, shapes, jnp.zeros((3, 100))).shape == (3, 128, 128, 1)
    assert isinstance(discriminator, gan_models.SimpleDiscriminator)
