"""Issue 23's measured instrument noise: the calibration recovers known noise, the generator's noise layer
reproduces it, and a run calibrates on its own training data and loads back with it."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from scipy import stats

from solarjax import gan as gan_api
from solarjax.models import gan
from solarjax.train import gan as gan_train
from solarjax.train import quality
from tests.helpers import BATCH, ArrayIterator, bipole_patches, init_generator, tiny_config

ARCH = "resize_conv_small_edge_instrument_minibatch"
FAST_SPOTS_BASE = "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_{}stretched_structured_network_white_threshold_clip_minibatch"


@pytest.mark.parametrize("a", [0.0, 0.3, 0.6])
def test_smoothed_white_noise_keeps_unit_variance_and_gets_the_stated_neighbour_correlation(a):
    white = jax.random.normal(jax.random.key(0), (4, 128, 128, 1))
    field = np.asarray(gan.smooth_neighbours(white, a))[:, 1:-1, 1:-1, 0]  # away from the edge padding
    assert field.std() == pytest.approx(1.0, abs=0.02)
    lag = np.corrcoef(field[:, :, 1:].ravel(), field[:, :, :-1].ravel())[0, 1]
    assert lag == pytest.approx(2 * a / (1 + 2 * a * a), abs=0.02)
    assert gan_train.neighbour_weight_for(2 * a / (1 + 2 * a * a)) == pytest.approx(a, abs=1e-9)


def test_noise_widths_follow_the_calibration_table_under_the_prior():
    table = tuple(np.linspace(0.01, 0.03, 9))  # a uniform distribution of widths on [0.01, 0.03]
    z = jax.random.normal(jax.random.key(1), (20_000, 100))
    widths = np.asarray(gan.instrument_noise_width(z, table))
    assert stats.kstest(widths, stats.uniform(0.01, 0.02).cdf).statistic < 0.02
    np.testing.assert_array_equal(widths, gan.instrument_noise_width(z, table))  # deterministic in z


def test_truncated_width_matches_monte_carlo_and_inverts():
    sigma = np.array([10.0, 25.0, 40.0])
    samples = np.random.default_rng(2).normal(size=(400_000, 1)) * sigma
    inside = [s[np.abs(s) < 50.0].std() for s in samples.T]
    np.testing.assert_allclose(gan_train.truncated_width(sigma, 50.0), inside, rtol=0.01)
    np.testing.assert_allclose(gan_train.gaussian_width_for(inside, 50.0), sigma, rtol=0.02)


def _smoothed_noise(count: int, sigma_gauss, a: float, seed: int) -> np.ndarray:
    """[count, 128, 128, 1] Gaussian noise of width sigma_gauss (G; one or one per patch), neighbour weight a."""
    white = jax.random.normal(jax.random.key(seed), (count, 128, 128, 1))
    sigma = np.broadcast_to(np.asarray(sigma_gauss, np.float32), (count,))[:, None, None, None]
    return np.asarray(gan.smooth_neighbours(white, a)) * sigma / quality.GAUSS_PER_UNIT


@pytest.mark.parametrize(("sigma", "a"), [(15.0, 0.0), (30.0, 0.3)])
def test_calibration_recovers_the_width_and_correlation_of_known_noise(sigma, a):
    calibration = gan_train.calibrate_instrument_noise(_smoothed_noise(24, sigma, a, seed=3))
    widths = np.asarray(calibration["noise_widths"]) * quality.GAUSS_PER_UNIT
    assert len(widths) == gan_train.CALIBRATION_QUANTILES
    assert np.median(widths) == pytest.approx(sigma, rel=0.03)
    assert calibration["noise_neighbour_weight"] == pytest.approx(a, abs=0.05)


def test_instrument_generator_reproduces_the_data_noise_and_needs_its_calibration():
    data = _smoothed_noise(64, np.linspace(16.0, 32.0, 64), 0.3, seed=4)  # widths spread like the data's
    calibration = gan_train.calibrate_instrument_noise(data)
    with pytest.raises(ValueError, match="instrument-noise calibration"):
        gan.make_models(ARCH)
    generator, _ = gan.make_models(ARCH, "matmul", tuple(calibration["noise_widths"]), 0.3)
    edge, _ = gan.make_models("resize_conv_small_edge")
    params = init_generator(generator, jax.random.key(5))["params"]
    assert gan.parameter_count(params) == gan.parameter_count(init_generator(edge, jax.random.key(5)))
    # with the last layer's output zeroed the generator draws the calibrated noise alone
    silent = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jnp.zeros_like(leaf) if "Conv2D_2" in jax.tree_util.keystr(path) else leaf, params
    )
    z = jax.random.normal(jax.random.key(6), (256, 100))
    noise = np.asarray(generator.apply({"params": silent}, z))
    assert stats.ks_2samp(quality.noise_width(noise), quality.noise_width(data)).statistic < 0.3
    measured = np.nanmedian(quality.quiet_neighbour_correlation(noise))
    assert measured == pytest.approx(np.nanmedian(quality.quiet_neighbour_correlation(data)), abs=0.03)


def test_a_run_calibrates_on_its_training_data_saves_it_and_loads_back(tmp_path):
    patches = bipole_patches(16, seed=7)
    config = tiny_config(total_steps=2, arch=ARCH, name="gan_synthetic", matching_terms=False)
    state = gan_train.train_and_evaluate(config, tmp_path, lambda: ArrayIterator(patches, BATCH))
    assert "noise_widths" not in config.model  # the caller's config is not changed
    generator = gan_api.load(tmp_path, step="latest")
    expected = gan_train.calibrate_instrument_noise(patches[: config.quality.num_reference])
    np.testing.assert_allclose(generator.config["model"]["noise_widths"], expected["noise_widths"])
    assert generator.config["model"]["noise_neighbour_weight"] == pytest.approx(expected["noise_neighbour_weight"])
    z = generator.sample_latents(2, seed=1)
    model, _ = gan.make_models(ARCH, "matmul", tuple(expected["noise_widths"]), expected["noise_neighbour_weight"])
    np.testing.assert_allclose(
        np.asarray(generator.generate(z)), np.asarray(model.apply({"params": state.g_params}, z)), atol=1e-5
    )
    # a resumed run takes the calibration from its checkpoint (no data read); another model is refused first
    resumed = gan_train._resumed_calibration(config, tmp_path)
    assert resumed.model.noise_widths == generator.config["model"]["noise_widths"]
    other = config.copy_and_resolve_references()
    other.model.quiet_weight = 1.0
    with pytest.raises(gan_train.checkpoint_lib.FingerprintMismatchError, match="before its noise calibration"):
        gan_train._resumed_calibration(other, tmp_path)


def test_soft_threshold_zeroes_weak_values_and_shifts_strong_ones_by_the_learned_threshold():
    layer = gan.SoftThreshold(initial=0.03)
    x = jnp.array([-0.5, -0.03, -0.01, 0.0, 0.02, 0.1, 0.9]).reshape(1, 7, 1, 1)
    params = layer.init(jax.random.key(0), x)
    assert float(jax.nn.softplus(params["params"]["threshold"])) == pytest.approx(0.03, rel=1e-5)
    expected = np.array([-0.47, 0.0, 0.0, 0.0, 0.0, 0.07, 0.87])
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)).ravel(), expected, atol=1e-6)
    generator, _ = gan.make_models("resize_conv_small_edge_instrument_threshold_minibatch", "matmul", (0.02, 0.03), 0.3)
    params = init_generator(generator, jax.random.key(1))["params"]
    assert gan.parameter_count(params) == 1_710_465 + 1


def test_physics_discriminator_sees_each_patchs_quantities_with_finite_gradients():
    patches = jnp.asarray(bipole_patches(4, seed=8))
    features = np.asarray(gan.physics_statistics(patches))
    assert features.shape == (4, len(gan.physics.QUANTITY_NAMES)) and np.isfinite(features).all()
    smooth = gan.physics.smooth_quantities(patches)
    tuf = gan.physics.QUANTITY_NAMES.index("tuf")
    np.testing.assert_allclose(features[:, tuf], np.log1p(np.asarray(smooth["tuf"])), rtol=1e-5)
    _, plain = gan.make_models("resize_conv_small_edge_instrument_threshold_minibatch", "matmul", (0.02, 0.03), 0.3)
    _, aware = gan.make_models("resize_conv_small_edge_instrument_threshold_physics", "matmul", (0.02, 0.03), 0.3)
    plain_params = plain.init(jax.random.key(2), patches)["params"]
    params = aware.init(jax.random.key(2), patches)["params"]
    assert gan.parameter_count(params) == gan.parameter_count(plain_params) + 16 * features.shape[1]
    gradient = jax.grad(lambda x: aware.apply({"params": params}, x).sum())(patches)
    assert np.isfinite(np.asarray(gradient)).all()
    flipped = np.asarray(aware.apply({"params": params}, patches.at[0].set(-patches[0])))
    assert not np.allclose(flipped[0], np.asarray(aware.apply({"params": params}, patches))[0])


@pytest.mark.parametrize(
    "arch, rate",
    [
        ("resize_conv_small_edge_instrument_gain_threshold_minibatch", 1.0),
        ("resize_conv_small_edge_instrument_fast_gain_threshold_minibatch", gan.FAST_GAIN_RATE),
    ],
)
def test_learned_noise_gain_starts_at_one_and_scales_only_the_noise(arch, rate):
    widths = (0.02, 0.03)
    plain, _ = gan.make_models("resize_conv_small_edge_instrument_threshold_minibatch", "matmul", widths, 0.3)
    gained, _ = gan.make_models(arch, "matmul", widths, 0.3)
    params = init_generator(gained, jax.random.key(2))["params"]
    assert float(params["InstrumentNoise"]["log_gain"]) == 0.0
    assert gan.parameter_count(params) == 1_710_465 + 2  # the threshold and the gain
    z = jax.random.normal(jax.random.key(3), (4, 100))
    shared = {k: v for k, v in params.items() if k != "InstrumentNoise"}
    np.testing.assert_allclose(
        np.asarray(gained.apply({"params": params}, z)), np.asarray(plain.apply({"params": shared}, z)), atol=1e-6
    )
    # with the signal zeroed the output is tanh(gain * noise): halving the gain halves the noise before the tanh
    silent = jax.tree_util.tree_map_with_path(
        lambda path, leaf: jnp.zeros_like(leaf) if "Conv2D_2" in jax.tree_util.keystr(path) else leaf, params
    )
    halved = {**silent, "InstrumentNoise": {"log_gain": jnp.log(0.5) / rate}}
    full = np.arctanh(np.asarray(gained.apply({"params": silent}, z), np.float64))
    half = np.arctanh(np.asarray(gained.apply({"params": halved}, z), np.float64))
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-4, atol=1e-6)


def _variant_and_reference(arch, reference_arch):
    """(variant, reference, params): two instrument-noise generators with the same parameter tree, and the
    variant's initial parameters (which the reference can apply too)."""
    widths = (0.02, 0.03)
    variant, _ = gan.make_models(arch, "matmul", widths, 0.3)
    reference, _ = gan.make_models(reference_arch, "matmul", widths, 0.3)
    params = init_generator(variant, jax.random.key(4))["params"]
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, init_generator(reference, jax.random.key(4))["params"]
    )
    return variant, reference, params


def test_bilinear_output_generator_shares_the_parameters_and_upsamples_only_its_output_layer_bilinearly():
    smooth, nearest, params = _variant_and_reference(
        "resize_conv_small_edge_instrument_fast_gain_bilinear_threshold_minibatch",
        "resize_conv_small_edge_instrument_fast_gain_threshold_minibatch",
    )
    z = jax.random.normal(jax.random.key(5), (2, 100))
    _, state = smooth.apply({"params": params}, z, capture_intermediates=True, mutable=["intermediates"])
    block = state["intermediates"]["Conv2D_1"]["__call__"][0]  # [2, 64, 64, 32], before its LeakyReLU
    features = gan.pixel_norm(gan.leaky_relu(block))
    kernel, bias = params["Conv2D_2"]["kernel"], params["Conv2D_2"]["bias"]
    signal = gan.conv_valid(gan.pad_spatial_mode(gan.upsample_bilinear(features), 1, "edge"), kernel, 1, "xla") + bias
    output_layer = state["intermediates"]["Conv2D_2"]["__call__"][0]
    np.testing.assert_allclose(np.asarray(output_layer), np.asarray(signal), atol=1e-5)
    # the blocks before it are the nearest generator's
    _, near_state = nearest.apply({"params": params}, z, capture_intermediates=True, mutable=["intermediates"])
    np.testing.assert_allclose(np.asarray(near_state["intermediates"]["Conv2D_1"]["__call__"][0]), np.asarray(block))
    assert not np.allclose(np.asarray(near_state["intermediates"]["Conv2D_2"]["__call__"][0]), np.asarray(output_layer))


def test_bilinear_output_clip_generator_does_not_mirror_the_large_scale_field_to_the_axis_nyquist():
    smooth, nearest, params = _variant_and_reference(
        "resize_conv_small_edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_minibatch",
        "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
    )
    z = jax.random.normal(jax.random.key(5), (4, 100))
    k = np.abs(np.fft.fftfreq(128, 1 / 128))
    near_axis_nyquist = ((np.abs(k[:, None] - 64) <= 8) & (k[None, :] <= 8)) | (
        (k[:, None] <= 8) & (np.abs(k[None, :] - 64) <= 8)
    )
    window = np.outer(np.hanning(128), np.hanning(128))  # so the patch's wrapped edges add no power there

    def image_share(generator):
        """The output layer's power within 8 of the axis Nyquist points (k = (64, 0), (0, 64)), where 2x
        upsampling mirrors the large-scale field, over its total power."""
        _, state = generator.apply({"params": params}, z, capture_intermediates=True, mutable=["intermediates"])
        signal = np.asarray(state["intermediates"]["Conv2D_2"]["__call__"][0])[..., 0]  # before the threshold
        power = np.abs(np.fft.fft2((signal - signal.mean(axis=(1, 2), keepdims=True)) * window)) ** 2
        return power[:, near_axis_nyquist].sum() / power.sum()

    nearest_share, smooth_share = image_share(nearest), image_share(smooth)
    assert nearest_share > 3e-3  # the nearest layer's 2x2 blocks pass the mirrored field: the axis cross-hatch
    assert smooth_share < nearest_share / 300  # the (1, 3, 3, 1) filter's triple zero at the Nyquist frequency


def test_diffuse_generator_starts_as_the_plain_one_and_adds_a_smooth_bilinear_field_after_the_threshold():
    widths = (0.02, 0.03)
    plain, _ = gan.make_models("resize_conv_small_edge_instrument_fast_gain_threshold_minibatch", "matmul", widths, 0.3)
    diffuse, _ = gan.make_models(
        "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch", "matmul", widths, 0.3
    )
    params = init_generator(diffuse, jax.random.key(4))["params"]
    plain_params = {name: value for name, value in params.items() if name != "Diffuse"}
    assert jax.tree.map(jnp.shape, plain_params) == jax.tree.map(
        jnp.shape, init_generator(plain, jax.random.key(4))["params"]
    )
    assert sum(leaf.size for leaf in jax.tree.leaves(params["Diffuse"])) == 65  # Dense(64 -> 1) on the 32 x 32 block
    z = jax.random.normal(jax.random.key(5), (2, 100))
    np.testing.assert_array_equal(
        np.asarray(diffuse.apply({"params": params}, z)), np.asarray(plain.apply({"params": plain_params}, z))
    )
    # with a non-zero channel, the pre-tanh output gains exactly the channel upsampled bilinearly twice
    kernel = jax.random.normal(jax.random.key(6), (64, 1)) * 0.05
    turned = {**params, "Diffuse": {"kernel": kernel, "bias": jnp.array([0.01])}}
    _, state = diffuse.apply({"params": turned}, z, capture_intermediates=True, mutable=["intermediates"])
    block = state["intermediates"]["Conv2D_0"]["__call__"][0]  # [2, 32, 32, 64], before its LeakyReLU
    channel = gan.pixel_norm(gan.leaky_relu(block)) @ kernel + 0.01
    smooth = gan.upsample_bilinear(gan.upsample_bilinear(channel))
    difference = np.arctanh(
        np.clip(np.asarray(diffuse.apply({"params": turned}, z)), -0.999999, 0.999999)
    ) - np.arctanh(np.clip(np.asarray(plain.apply({"params": plain_params}, z)), -0.999999, 0.999999))
    np.testing.assert_allclose(difference, np.asarray(smooth), atol=2e-4)


def test_coarse_diffuse_generator_draws_its_field_from_the_16_px_start_and_bad_sources_are_refused():
    widths = (0.02, 0.03)
    coarse, _ = gan.make_models(
        "resize_conv_small_edge_instrument_fast_gain_coarse_diffuse_threshold_minibatch", "matmul", widths, 0.3
    )
    params = init_generator(coarse, jax.random.key(4))["params"]
    assert params["Diffuse"]["kernel"].shape == (64, 1)  # Dense(64 -> 1) on the 16 x 16 x 64 start
    z = jax.random.normal(jax.random.key(5), (2, 100))
    kernel = jax.random.normal(jax.random.key(6), (64, 1)) * 0.05
    turned = {**params, "Diffuse": {"kernel": kernel, "bias": jnp.array([0.0])}}
    start = gan.leaky_relu(z @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
    channel = gan.pixel_norm(start.reshape(2, 16, 16, 64)) @ kernel
    smooth = gan.upsample_bilinear(gan.upsample_bilinear(gan.upsample_bilinear(channel)))
    difference = np.arctanh(np.clip(np.asarray(coarse.apply({"params": turned}, z)), -0.999999, 0.999999)) - np.arctanh(
        np.clip(np.asarray(coarse.apply({"params": params}, z)), -0.999999, 0.999999)
    )
    np.testing.assert_allclose(difference, np.asarray(smooth), atol=2e-4)
    with pytest.raises(ValueError, match="diffuse must be one of"):
        gan.ResizeConvGenerator(diffuse="second_block").init(jax.random.key(0), jnp.zeros((1, 100)))
    with pytest.raises(ValueError, match="'first_block' needs a block"):
        gan.ResizeConvGenerator(block_channels=(), diffuse="first_block").init(jax.random.key(0), jnp.zeros((1, 100)))


def test_smooth_blocks_generator_upsamples_its_blocks_bilinearly_and_its_output_by_nearest_neighbours():
    # the same parameters as the nearest-block default, so checkpoints and steering see the same tree
    smooth, _, params = _variant_and_reference(
        "resize_conv_small_edge_instrument_fast_gain_smooth_blocks_diffuse_threshold_minibatch",
        "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
    )
    z = jax.random.normal(jax.random.key(5), (2, 100))
    _, state = smooth.apply({"params": params}, z, capture_intermediates=True, mutable=["intermediates"])
    inter = state["intermediates"]

    def conv3(x, kernel, bias):  # 3x3 convolution with edge padding, by XLA
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        out = lax.conv_general_dilated(padded, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return out + bias

    start = gan.pixel_norm(
        gan.leaky_relu(z @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"]).reshape(2, 16, 16, 64)
    )
    first = conv3(gan.upsample_bilinear(start), params["Conv2D_0"]["kernel"], params["Conv2D_0"]["bias"])
    np.testing.assert_allclose(np.asarray(inter["Conv2D_0"]["__call__"][0]), np.asarray(first), atol=1e-4)
    second_in = gan.pixel_norm(gan.leaky_relu(inter["Conv2D_1"]["__call__"][0]))
    out = conv3(gan.upsample_nearest(second_in), params["Conv2D_2"]["kernel"], params["Conv2D_2"]["bias"])
    np.testing.assert_allclose(np.asarray(inter["Conv2D_2"]["__call__"][0]), np.asarray(out), atol=1e-4)


def test_clipped_generator_reaches_the_clip_exactly_and_is_the_tanh_generator_below_it():
    x = jnp.linspace(-3.0, 3.0, 601)
    clipped = gan.clipped_tanh(x, gan.OUTPUT_CLIP_GAIN)
    saturated = np.abs(np.tanh(np.asarray(x))) >= 1 / gan.OUTPUT_CLIP_GAIN
    np.testing.assert_array_equal(np.abs(np.asarray(clipped))[saturated], 1.0)  # exactly the 1000 G clip
    np.testing.assert_allclose(
        np.asarray(clipped)[~saturated], gan.OUTPUT_CLIP_GAIN * np.tanh(np.asarray(x))[~saturated], rtol=1e-6
    )
    grad = np.asarray(jax.vmap(jax.grad(lambda v: gan.clipped_tanh(v, gan.OUTPUT_CLIP_GAIN)))(x))
    assert np.all(grad[saturated] == 0) and np.all(grad[~saturated] > 0)
    clip_generator, plain, params = _variant_and_reference(
        "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_minibatch",
        "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_minibatch",
    )
    z = 3.0 * jax.random.normal(jax.random.key(5), (2, 100))
    plain_out = np.asarray(plain.apply({"params": params}, z))
    clip_out = np.asarray(clip_generator.apply({"params": params}, z))  # the same parameters
    np.testing.assert_allclose(clip_out, np.clip(gan.OUTPUT_CLIP_GAIN * plain_out, -1, 1), rtol=1e-5, atol=1e-6)


def test_patch_gain_starts_at_one_and_scales_each_patchs_noise_by_its_own_factor():
    widths, z = (0.02, 0.03), jax.random.normal(jax.random.key(5), (4, 100))
    x = jnp.zeros((4, 32, 32, 1))
    plain = gan.InstrumentNoise(widths, 0.0)
    per_patch = gan.InstrumentNoise(widths, 0.0, patch_gain=True)
    params = per_patch.init(jax.random.key(6), x, z)["params"]
    assert gan.parameter_count(params) == 101
    base = np.asarray(plain.apply({}, x, z))
    np.testing.assert_allclose(np.asarray(per_patch.apply({"params": params}, x, z)), base, atol=1e-7)
    kernel = jnp.zeros((100, 1)).at[0, 0].set(0.5)
    moved = {"patch_gain": {"kernel": kernel, "bias": jnp.array([np.log(2.0)], jnp.float32)}}
    factor = 2.0 * np.exp(0.5 * np.asarray(z[:, 0]))
    np.testing.assert_allclose(
        np.asarray(per_patch.apply({"params": moved}, x, z)), factor[:, None, None, None] * base, rtol=1e-5, atol=1e-7
    )
    white = "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_minibatch"
    gained = white.replace("fast_gain_", "fast_gain_patch_gain_")
    counts = [
        gan.parameter_count(gan.make_models(arch, "matmul", widths, 0.3)[0].init(jax.random.key(2), z[:1])["params"])
        for arch in (white, gained)
    ]
    assert counts[1] == counts[0] + 101


def test_filled_noise_makes_the_whole_quiet_field_measure_like_the_calibrated_noise():
    widths, z = (0.02, 0.03), jax.random.normal(jax.random.key(7), (6, 100))
    plain, filled = gan.InstrumentNoise(widths, 0.0), gan.InstrumentNoise(widths, 0.0, fill_quiet=True)
    silent = jnp.zeros((6, 128, 128, 1))
    np.testing.assert_allclose(
        np.asarray(filled.apply({}, silent, z)), np.asarray(plain.apply({}, silent, z)), atol=1e-6
    )
    alone = np.sqrt(np.asarray(gan.quiet_variance(plain.apply({}, silent, z)[..., 0])))  # what the noise measures
    weak = 0.012 * jax.random.normal(jax.random.key(8), silent.shape)  # a 12 G weak field, all quiet
    spill = weak + 0.06 * (jnp.arange(128) < 40)[None, :, None, None]  # and 60 G plage that noise carries below 50 G
    for signal in (weak, spill):
        measured = np.sqrt(np.asarray(gan.quiet_variance(filled.apply({}, signal, z)[..., 0])))
        np.testing.assert_allclose(measured, alone, rtol=0.02)
        louder = np.sqrt(np.asarray(gan.quiet_variance(plain.apply({}, signal, z)[..., 0])))
        assert np.all(louder > 1.03 * alone)
    # behind an output gain (the clipped tanh's 1.1) the fill measures the output: 1.1 (x + n noise) like w noise
    gained = gan.InstrumentNoise(widths, 0.0, fill_quiet=True, output_gain=gan.OUTPUT_CLIP_GAIN)
    for signal in (weak, spill):
        output = gan.clipped_tanh(gained.apply({}, signal, z), gan.OUTPUT_CLIP_GAIN)[..., 0]
        np.testing.assert_allclose(np.sqrt(np.asarray(gan.quiet_variance(output))), alone, rtol=0.03)
    ungained = gan.clipped_tanh(filled.apply({}, weak, z), gan.OUTPUT_CLIP_GAIN)[..., 0]  # measures too wide
    assert np.all(np.sqrt(np.asarray(gan.quiet_variance(ungained))) > 1.04 * alone)
    loud = 0.045 * jax.random.rademacher(jax.random.key(9), silent.shape, jnp.float32)  # +-45 G: wider than w
    added = np.asarray(filled.apply({}, loud, z) - loud)[..., 0]
    target = np.asarray(gan.instrument_noise_width(z, widths))
    np.testing.assert_allclose(added.std(axis=(1, 2)), gan.FILL_FLOOR * target, rtol=0.03)
    # at the floor the gradient stays finite (a square root of a clipped 0 would give NaN)
    for signal in (loud, weak):
        grad = jax.grad(lambda s: jnp.sum(filled.apply({}, s, z) ** 2))(signal)
        assert np.all(np.isfinite(np.asarray(grad)))


def test_the_filled_generator_fills_the_width_of_its_clipped_output():
    # the generator hands its clipped tanh's gain to the fill: its output's quiet pixels measure like the noise alone
    widths, z = (0.02, 0.03), jax.random.normal(jax.random.key(3), (6, 100))
    arch = "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch"
    generator = gan.make_models(arch, "matmul", widths, 0.3)[0]
    output = generator.apply(generator.init(jax.random.key(4), z), z)[..., 0]
    measured = np.sqrt(np.asarray(gan.quiet_variance(output)))
    white = gan.latent_noise_field(gan.unit_latent(z), 128, 128, 0)[..., 0]  # the white noise's field (seed 0)
    alone = np.sqrt(np.asarray(gan.quiet_variance(gan.instrument_noise_width(z, widths)[:, None, None] * white)))
    np.testing.assert_allclose(measured, alone, rtol=0.03)  # without the gain: up to 6% wide


@pytest.mark.parametrize("kind", ["filled_", "filled_mild_stretch_patch_contrast_"])
def test_wide_spots_saturate_a_larger_disc_than_the_generators_own_spots(kind):
    # the same parameters drawn alike; with every spot's peak at 5000 G, the wide spots saturate about 4.8x the area
    z = jax.random.normal(jax.random.key(5), (4, 100))
    base = "resize_conv_small_edge_instrument_{}stretched_structured_network_white_threshold_clip_minibatch"
    generators = [gan.make_models(base.format(s), "matmul", (0.02, 0.03), 0.0)[0] for s in (kind, f"{kind}wide_spots_")]
    drawn = [init_generator(generator, jax.random.key(6)) for generator in generators]
    assert jax.tree_util.tree_all(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), *drawn))

    def peaks_at_5000_gauss(path, leaf):
        named = "Spots" in str(path) and "peaks" in str(path) and "bias" in str(path)
        return jnp.full_like(leaf, 5.0) if named else leaf

    saturated = [
        np.mean(
            np.abs(np.asarray(jax.jit(g.apply)(jax.tree_util.tree_map_with_path(peaks_at_5000_gauss, p), z))) >= 1.0
        )
        for g, p in zip(generators, drawn)
    ]
    assert saturated[0] > 0
    assert 4.0 < saturated[1] / saturated[0] < 12.0


def test_fast_spots_start_as_the_patch_contrast_generator_and_scale_their_peaks_by_the_rate():
    base = "resize_conv_small_edge_instrument_filled_mild_stretch_patch_contrast_{}stretched_structured_network_white_threshold_clip_minibatch"
    plain, fast = (gan.make_models(base.format(s), "matmul", (0.02, 0.03), 0.0)[0] for s in ("", "fast_spots_"))
    z = jax.random.normal(jax.random.key(7), (4, 100))
    params = init_generator(fast, jax.random.key(8))
    np.testing.assert_array_equal(jax.jit(fast.apply)(params, z), jax.jit(plain.apply)(params, z))

    def spot_peak_bias(bias):
        named = lambda path: "Spots" in str(path) and "peaks" in str(path) and "bias" in str(path)  # noqa: E731
        return jax.tree_util.tree_map_with_path(lambda p, leaf: jnp.full_like(leaf, bias) if named(p) else leaf, params)

    # the generator's spots move at the rate: a peak bias of b draws what the plain generator draws at rate * b
    fast_image = np.asarray(jax.jit(fast.apply)(spot_peak_bias(0.1), z))
    np.testing.assert_allclose(fast_image, jax.jit(plain.apply)(spot_peak_bias(0.1 * gan.SPOT_PEAK_RATE), z), atol=1e-5)
    assert np.abs(fast_image - np.asarray(jax.jit(plain.apply)(spot_peak_bias(0.1), z))).max() > 0.01
    spots = [gan.FluxConcentrations(8, 2.0, peak_rate=rate) for rate in (1.0, gan.SPOT_PEAK_RATE)]
    drawn = spots[0].init(jax.random.key(9), z)["params"]
    drawn = {**drawn, "peaks": {**drawn["peaks"], "bias": jnp.full((8,), 0.1)}}
    slow, quick = (np.asarray(s.apply({"params": drawn}, z)) for s in spots)
    assert np.abs(slow).max() > 0.01
    np.testing.assert_allclose(quick, gan.SPOT_PEAK_RATE * slow, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "variant",
    [
        "penumbrae_",
        "wide_clouds_",
        "capped_texture_",
        "scaled_texture_",
        "capped_scaled_texture_",
        "capped_fast_scaled_texture_",
        "capped_coarse_texture_",
    ],
)
def test_the_fast_spot_variants_start_with_the_fast_spot_generators_parameters(variant):
    fast, other = (gan.make_models(FAST_SPOTS_BASE.format(s), "matmul", (0.02, 0.03), 0.0)[0] for s in ("", variant))
    theirs, mine = (
        dict(jax.tree_util.tree_flatten_with_path(init_generator(g, jax.random.key(10)))[0]) for g in (fast, other)
    )
    own = {  # the scaled textures' own start (their tests below), the coarse texture's own scales
        "['params']['Texture']['scales']['bias']": variant.endswith(("scaled_texture_", "coarse_texture_")),
        "['params']['Texture']['scales']['kernel']": variant == "capped_coarse_texture_",
    }
    for path, leaf in theirs.items():  # every other fast-spot parameter, drawn alike
        if not own.get(jax.tree_util.keystr(path), False):
            np.testing.assert_array_equal(mine[path], leaf)
    added = {jax.tree_util.keystr(path) for path in mine.keys() - theirs.keys()}
    penumbra = {f"['params']['Spots']['penumbra_{k}']['{w}']" for k in ("width", "peak") for w in ("kernel", "bias")}
    assert added == (penumbra if variant == "penumbrae_" else set())
    z = jax.random.normal(jax.random.key(15), (2, 100))

    def with_peaks(params):  # every spot and cloud drawn at 500 G
        named = lambda path: "peaks" in str(path) and "bias" in str(path)  # noqa: E731
        return jax.tree_util.tree_map_with_path(lambda p, leaf: jnp.full_like(leaf, 0.5) if named(p) else leaf, params)

    parts = [
        jax.jit(lambda p, z, g=g: g.apply(p, z, capture_intermediates=True)[1]["intermediates"])(
            with_peaks(init_generator(g, jax.random.key(10))), z
        )
        for g in (fast, other)
    ]
    moved = {
        name: float(np.abs(np.asarray(parts[0][name]["__call__"][0]) - np.asarray(parts[1][name]["__call__"][0])).max())
        for name in ("Spots", "Clouds", "Texture")
    }
    # each variant changes its own part alone: the penumbrae the spots, the wide clouds the clouds, the cap the
    # texture (where its field passes 2.5 sd)
    changed = {"penumbrae_": {"Spots"}, "wide_clouds_": {"Clouds"}}.get(variant, {"Texture"})
    assert {name for name, value in moved.items() if value > 1e-6} == changed, moved


@pytest.mark.parametrize("log_stretch", [None, 0.8])
def test_a_penumbra_holds_the_synthetic_spots_share_of_the_flux_at_the_start(log_stretch):
    # one spot in the middle (geometry at zero): its penumbra, 2.5 times as wide at 0.3 of the peak, holds
    # 0.3 * 2.5^2 / (1 + 0.3 * 2.5^2) = 65% of the spot's flux, the synthetic data's penumbral share
    z = jax.random.normal(jax.random.key(11), (2, 100))
    stretch = None if log_stretch is None else jnp.full((2,), log_stretch)
    plain, sunspot = (gan.FluxConcentrations(1, 2.0, penumbra=p) for p in (False, True))
    params = sunspot.init(jax.random.key(12), z, stretch)["params"]
    params = {**params, "geometry": jax.tree.map(jnp.zeros_like, params["geometry"])}
    params = {**params, "peaks": {**params["peaks"], "bias": jnp.ones((1,))}}
    umbra = np.asarray(plain.apply({"params": {k: v for k, v in params.items() if "penumbra" not in k}}, z, stretch))
    spot = np.asarray(sunspot.apply({"params": params}, z, stretch))
    share = 1.0 - umbra.sum(axis=(1, 2, 3)) / spot.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(share, 0.3 * 2.5**2 / (1 + 0.3 * 2.5**2), rtol=1e-3)
    # and spreads it 2.5 times as wide: the mean squared distance from the centre grows by (1 + 0.3 r^4) / (1 + 0.3 r^2)
    centre = np.arange(128) + 0.5 - 64.0
    squared = centre[:, None] ** 2 + centre[None, :] ** 2
    spread = [np.sum(f[..., 0] * squared, axis=(1, 2)) / np.sum(f[..., 0], axis=(1, 2)) for f in (umbra, spot)]
    np.testing.assert_allclose(spread[1] / spread[0], (1 + 0.3 * 2.5**4) / (1 + 0.3 * 2.5**2), rtol=1e-3)
    with pytest.raises(ValueError, match="penumbra needs the 'gaussian' profile"):
        gan.FluxConcentrations(1, 2.0, profile="umbra", penumbra=True).init(jax.random.key(0), z)


def test_a_capped_texture_bounds_its_brightest_clumps_and_leaves_the_rest():
    # at a contrast of 3 the uncapped log-normal puts single pixels at tens of times the mean; capped at 2.5 sd as
    # the synthetic data's clumps, no pixel exceeds exp(3 * 2.5) / mean, and pixels below the cap keep their order
    z = jax.random.normal(jax.random.key(13), (3, 100))
    free, capped = (gan.ClumpTexture(patch_contrast=True, cap_sd=cap) for cap in (0.0, gan.CLUMP_CAP_SD))
    params = free.init(jax.random.key(14), z)["params"]
    params = {**params, "contrast": jnp.asarray(math.log(math.expm1(3.0))), "floor": jnp.asarray(-10.0)}
    assert capped.init(jax.random.key(14), z)["params"].keys() == params.keys()  # no parameter added
    loose, tight = (np.asarray(m.apply({"params": params}, z))[..., 0] for m in (free, capped))
    field = np.asarray(gan.texture_field(z, jnp.full((3, 4), 0.25), 128, 128, seed=2))
    np.testing.assert_allclose(tight.mean(axis=(1, 2)), 1.0, rtol=1e-4)
    bound = np.exp(3.0 * gan.CLUMP_CAP_SD) / np.mean(np.exp(3.0 * np.minimum(field, gan.CLUMP_CAP_SD)), axis=(1, 2))
    np.testing.assert_allclose(tight.max(axis=(1, 2)), bound, rtol=1e-3)
    assert (loose.max(axis=(1, 2)) > 2 * bound).all()
    for n in range(3):  # below the cap (and well above the floor) the two differ by one factor: their means
        below = (field[n] < gan.CLUMP_CAP_SD) & (loose[n] > 0.1)
        ratio = tight[n][below] / loose[n][below]
        np.testing.assert_allclose(ratio, np.median(ratio), rtol=1e-3)


def test_a_texture_started_at_equal_variance_shares_gives_each_scale_its_share():
    # an even mix of the filters leaves the 0.5-px one ~70% of the field's variance; weights proportional to the
    # correlation lengths give each scale a share within a factor 1.5 of the others
    z = jax.random.normal(jax.random.key(16), (2, 100))
    white = jnp.fft.rfft2(gan.latent_noise_field(gan.unit_latent(z), 128, 128, 2)[..., 0])
    filters = gan.gaussian_filters(128, 128, gan.TEXTURE_CORRELATION_PX, jnp.zeros(2))

    def shares(weights):
        parts = [
            np.var(np.asarray(jnp.fft.irfft2(white * w * filters[:, s], s=(128, 128)))) for s, w in enumerate(weights)
        ]
        return np.asarray(parts) / np.sum(parts)

    start = gan.ClumpTexture(equal_variance_start=True).init(jax.random.key(17), z)["params"]["scales"]["bias"]
    weights = np.asarray(jax.nn.softmax(start))
    np.testing.assert_allclose(
        weights, np.asarray(gan.TEXTURE_CORRELATION_PX) / sum(gan.TEXTURE_CORRELATION_PX), rtol=1e-5
    )
    assert shares(weights).max() / shares(weights).min() < 1.5
    assert shares(np.full(4, 0.25))[0] > 0.6


def test_a_fast_scale_mix_starts_where_the_plain_one_does_and_moves_at_its_rate():
    z = jax.random.normal(jax.random.key(18), (3, 100))
    plain, fast = (
        gan.ClumpTexture(32, 32, cap_sd=gan.CLUMP_CAP_SD, equal_variance_start=True, scale_rate=rate)
        for rate in (1.0, gan.TEXTURE_SCALE_RATE)
    )
    mine, theirs = (t.init(jax.random.key(19), z)["params"] for t in (fast, plain))
    np.testing.assert_allclose(mine["scales"]["bias"] * gan.TEXTURE_SCALE_RATE, theirs["scales"]["bias"], rtol=1e-6)
    np.testing.assert_allclose(fast.apply({"params": mine}, z), plain.apply({"params": theirs}, z), rtol=1e-5)

    def nudged(params, step):  # the same change of the mixture's layer, as one optimiser step makes on either
        kernel = params["scales"]["kernel"].at[:, 0].add(step)
        return {**params, "scales": {**params["scales"], "kernel": kernel}}

    # a step d on the fast layer draws what the plain one draws at rate * d, and differs from a plain step d
    quick = np.asarray(fast.apply({"params": nudged(mine, 0.01)}, z))
    np.testing.assert_allclose(
        quick, plain.apply({"params": nudged(theirs, 0.01 * gan.TEXTURE_SCALE_RATE)}, z), rtol=1e-4, atol=1e-5
    )
    assert np.abs(quick - np.asarray(plain.apply({"params": nudged(theirs, 0.01)}, z))).max() > 1e-3


def test_a_coarse_texture_mixes_its_own_scales_at_equal_variance_shares():
    z = jax.random.normal(jax.random.key(20), (2, 100))
    texture = gan.ClumpTexture(
        64, 64, cap_sd=gan.CLUMP_CAP_SD, equal_variance_start=True, correlation_px=gan.COARSE_TEXTURE_CORRELATION_PX
    )
    params = texture.init(jax.random.key(21), z)["params"]
    assert params["scales"]["kernel"].shape == (100, 3)
    np.testing.assert_allclose(jax.nn.softmax(params["scales"]["bias"]), np.array([1.0, 2.0, 4.0]) / 7.0, rtol=1e-5)

    # without the 0.5-px filter the texture's unit-variance field holds much less pixel-scale power (wavelengths
    # 2-4 px: k = 16-32 cycles per 64 px) than the default scales'
    def pixel_scale_power(correlation_px):
        weights = jnp.asarray(correlation_px)[None] / sum(correlation_px) * jnp.ones((2, 1))
        field = np.asarray(gan.texture_field(z, weights, 64, 64, correlation_px=correlation_px))
        return quality.band_power(field, (16, 33)).mean()

    assert pixel_scale_power(gan.COARSE_TEXTURE_CORRELATION_PX) < 0.5 * pixel_scale_power(gan.TEXTURE_CORRELATION_PX)
