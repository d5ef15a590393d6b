"""The textured generators' clump texture (`solarjax.models.gan.ClumpTexture`): known covariance, no preferred
pixel axis, a log-normal of the stated contrast, and a generator that reduces to the untextured one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax.models import gan
from solarjax.train import quality
from tests.helpers import init_generator

TEXTURED = "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_diffuse_threshold_clip_minibatch"
UNTEXTURED = "resize_conv_small_edge_instrument_fast_gain_bilinear_diffuse_threshold_clip_minibatch"


def _one_scale_fields(scale_index: int, count: int = 8) -> np.ndarray:
    z = jax.random.normal(jax.random.key(3), (count, 100))
    weights = jax.nn.one_hot(jnp.full((count,), scale_index), len(gan.TEXTURE_CORRELATION_PX))
    return np.asarray(gan.texture_field(z, weights, 128, 128))


def _lag_correlation(fields: np.ndarray, dy: int, dx: int) -> float:
    shifted = np.roll(fields, (dy, dx), axis=(1, 2))  # the field is periodic
    return float(np.mean(fields * shifted) / np.mean(fields * fields))


@pytest.mark.parametrize("scale_index", [1, 2])
def test_texture_field_has_the_gaussian_covariance_of_its_scale_along_the_axes_and_the_diagonal(scale_index):
    sigma = gan.TEXTURE_CORRELATION_PX[scale_index]
    fields = _one_scale_fields(scale_index)
    np.testing.assert_allclose(fields.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(fields.std(axis=(1, 2)), 1.0, rtol=1e-4)
    # amplitude filter exp(-pi^2 sigma^2 f^2): power exp(-2 pi^2 sigma^2 f^2), covariance exp(-r^2 / (2 sigma^2))
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2)):
        expected = np.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
        assert _lag_correlation(fields, dy, dx) == pytest.approx(expected, abs=0.03), (dy, dx)


def test_texture_field_prefers_no_pixel_axis_where_the_nearest_upsampled_one_does():
    z = jax.random.normal(jax.random.key(4), (16, 100))
    weights = jnp.full((16, len(gan.TEXTURE_CORRELATION_PX)), 1.0 / len(gan.TEXTURE_CORRELATION_PX))
    fields = np.asarray(gan.texture_field(z, weights, 128, 128))
    contrast = quality.orientation_contrast(fields)  # [16, bands]: log10 axis over diagonal power
    np.testing.assert_array_less(np.abs(np.median(contrast, axis=0)), 0.06)
    # a 1-px texture drawn at 64 x 64 and upsampled 2x by nearest neighbours: its 2 x 2 blocks mirror it to the axis
    # Nyquist points, a cross-hatch at k = 38-64
    coarse = gan.texture_field(z, jax.nn.one_hot(jnp.full((16,), 1), len(gan.TEXTURE_CORRELATION_PX)), 64, 64)
    blocky = np.asarray(gan.upsample_nearest(coarse[..., None]))[..., 0]
    assert np.median(quality.orientation_contrast(blocky)[:, -1]) > 1.0


def test_clump_texture_is_a_log_normal_of_mean_one_with_the_learned_contrast_and_floor():
    texture = gan.ClumpTexture()
    z = jax.random.normal(jax.random.key(5), (8, 100))
    params = texture.init(jax.random.key(0), z)
    values = np.asarray(texture.apply(params, z))
    assert values.shape == (8, 128, 128, 1)
    np.testing.assert_allclose(values.mean(axis=(1, 2, 3)), 1.0, rtol=1e-5)
    floor, contrast = 0.5, 0.5  # the initial values
    assert values.min() > floor
    # (1 - floor) exp(c f) / E[exp(c f)] for unit Gaussian f: standard deviation (1 - floor) sqrt(exp(c^2) - 1)
    expected_sd = (1 - floor) * np.sqrt(np.exp(contrast**2) - 1)
    assert values.std(axis=(1, 2, 3)).mean() == pytest.approx(expected_sd, rel=0.05)
    stronger = jax.tree.map(lambda leaf: leaf, params)
    stronger["params"]["contrast"] = jnp.asarray(np.log(np.expm1(1.0)), jnp.float32)
    stronger_sd = np.asarray(texture.apply(stronger, z)).std(axis=(1, 2, 3)).mean()
    assert stronger_sd == pytest.approx((1 - floor) * np.sqrt(np.e - 1), rel=0.08)


def test_textured_generator_is_the_untextured_one_while_its_textured_channel_is_zero_and_learns_the_texture():
    widths = (0.02, 0.03)
    textured, _ = gan.make_models(TEXTURED, "matmul", widths, 0.3)
    untextured, _ = gan.make_models(UNTEXTURED, "matmul", widths, 0.3)
    params = init_generator(textured, jax.random.key(4))["params"]
    assert params["Conv2D_2"]["kernel"].shape[-1] == 2
    extra = gan.parameter_count(params) - gan.parameter_count(init_generator(untextured, jax.random.key(4))["params"])
    assert extra == 695  # a second output channel (3 x 3 x 32 + 1) and the texture (100 x 4 + 4, contrast, floor)
    silent = {
        **params,
        "Conv2D_2": {
            "kernel": params["Conv2D_2"]["kernel"].at[..., 1].set(0.0),
            "bias": params["Conv2D_2"]["bias"].at[1].set(0.0),
        },
    }
    plain = {name: value for name, value in silent.items() if name != "Texture"}
    plain["Conv2D_2"] = {"kernel": silent["Conv2D_2"]["kernel"][..., :1], "bias": silent["Conv2D_2"]["bias"][:1]}
    z = jax.random.normal(jax.random.key(5), (2, 100))
    np.testing.assert_allclose(
        np.asarray(jax.jit(textured.apply)({"params": silent}, z)),
        np.asarray(jax.jit(untextured.apply)({"params": plain}, z)),
        atol=1e-6,
    )
    # with its textured channel on, every texture parameter receives gradient
    grads = jax.jit(jax.grad(lambda p: jnp.mean(textured.apply({"params": p}, z) ** 2)))(params)["Texture"]
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(leaf))) and np.abs(np.asarray(leaf)).max() > 0


CONCENTRATED = (
    "resize_conv_small_edge_instrument_fast_gain_bilinear_textured_concentrated_diffuse_threshold_clip_minibatch"
)


def test_rendered_concentrations_have_their_peak_width_and_flux_and_add_linearly():
    centres = jnp.array([[[64.5, 30.5], [20.5, 100.5]]])
    widths, peaks = jnp.array([[3.0, 5.0]]), jnp.array([[0.8, -0.4]])
    both = np.asarray(gan.render_concentrations(centres, widths, peaks, 128, 128))[0, ..., 0]
    first = np.asarray(gan.render_concentrations(centres[:, :1], widths[:, :1], peaks[:, :1], 128, 128))[0, ..., 0]
    second = np.asarray(gan.render_concentrations(centres[:, 1:], widths[:, 1:], peaks[:, 1:], 128, 128))[0, ..., 0]
    np.testing.assert_allclose(both, first + second, atol=1e-6)
    assert first[64, 30] == pytest.approx(0.8)  # the pixel whose centre is the concentration's
    assert first.sum() == pytest.approx(0.8 * 2 * np.pi * 3.0**2, rel=1e-4)  # a Gaussian's integral
    # half maximum at w sqrt(2 ln 2) px from the centre along a row and along a diagonal alike
    half = 3.0 * np.sqrt(2 * np.log(2))
    ys, xs = np.mgrid[0:128, 0:128] + 0.5
    radius = np.hypot(ys - 64.5, xs - 30.5)
    assert np.all(first[np.abs(radius - half) < 0.3] == pytest.approx(0.4, abs=0.03))
    assert second.min() == pytest.approx(-0.4, abs=1e-3)


def test_flux_concentrations_start_as_nothing_and_learn_centres_and_widths_once_they_have_peaks():
    layer = gan.FluxConcentrations(count=4, typical_width_px=2.0)
    z = jax.random.normal(jax.random.key(6), (3, 100))
    params = layer.init(jax.random.key(0), z)
    np.testing.assert_array_equal(np.asarray(layer.apply(params, z)), 0.0)
    assert gan.parameter_count(params) == (100 * 128 + 128) + (128 * 12 + 12) + (128 * 4 + 4)
    lit = jax.tree.map(lambda leaf: leaf, params)
    lit["params"]["peaks"]["bias"] = jnp.full((4,), 0.5)
    image = np.asarray(layer.apply(lit, z))
    assert image.max() > 0.4 and image.min() >= 0.0  # every peak 0.5; they may overlap
    grads = jax.grad(lambda p: jnp.mean(layer.apply(p, z) ** 2))(lit)["params"]["geometry"]
    assert np.abs(np.asarray(grads["kernel"])).max() > 0


def test_concentrated_generator_is_the_textured_one_until_its_concentrations_have_peaks():
    widths = (0.02, 0.03)
    concentrated, _ = gan.make_models(CONCENTRATED, "matmul", widths, 0.3)
    textured, _ = gan.make_models(TEXTURED, "matmul", widths, 0.3)
    params = init_generator(concentrated, jax.random.key(4))["params"]
    base = {name: value for name, value in params.items() if name not in ("Spots", "Clouds")}
    z = jax.random.normal(jax.random.key(5), (2, 100))
    np.testing.assert_allclose(
        np.asarray(concentrated.apply({"params": params}, z)),
        np.asarray(textured.apply({"params": base}, z)),
        atol=1e-6,
    )
    spotted = {**params, "Spots": {**params["Spots"], "peaks": {**params["Spots"]["peaks"]}}}
    spotted["Spots"]["peaks"]["bias"] = jnp.full((gan.CONCENTRATIONS["spots"][0],), 3.0)
    assert np.mean(np.asarray(concentrated.apply({"params": spotted}, z)) >= 1.0) > np.mean(
        np.asarray(textured.apply({"params": base}, z)) >= 1.0
    )  # strong round spots reach the 1000 G clip


STRUCTURED = "resize_conv_small_edge_instrument_fast_gain_structured_diffuse_threshold_clip_minibatch"


def test_structured_generator_draws_only_concentrations_diffuse_field_texture_and_noise():
    widths = (0.02, 0.03)
    structured, _ = gan.make_models(STRUCTURED, "matmul", widths, 0.3)
    params = init_generator(structured, jax.random.key(4))["params"]
    assert sorted(params) == sorted(["Dense_0", "Conv2D_0", "Diffuse", "Spots", "Clouds", "Texture", "InstrumentNoise"])
    z = jax.random.normal(jax.random.key(5), (2, 100))
    # at the start (no peaks, no diffuse field) the output is the instrument noise alone, whatever the blocks hold
    noise_only = gan.InstrumentNoise(widths, 0.3, learned_gain=True, gain_rate=gan.FAST_GAIN_RATE)
    noise = noise_only.apply({"params": params["InstrumentNoise"]}, jnp.zeros((2, 128, 128, 1)), z)
    expected = gan.clipped_tanh(noise, gan.OUTPUT_CLIP_GAIN)
    np.testing.assert_allclose(np.asarray(structured.apply({"params": params}, z)), np.asarray(expected), atol=1e-6)
    scrambled = {**params, "Conv2D_0": jax.tree.map(lambda leaf: leaf + 1.0, params["Conv2D_0"])}
    np.testing.assert_allclose(np.asarray(structured.apply({"params": scrambled}, z)), np.asarray(expected), atol=1e-6)
    with pytest.raises(ValueError, match="needs its concentrations and texture"):
        gan.ResizeConvGenerator(conv_signal=False, texture=True).init(jax.random.key(0), jnp.zeros((1, 100)))


def test_a_stretched_texture_and_concentration_are_longer_by_the_stretch_along_the_rows_axis():
    z = jax.random.normal(jax.random.key(3), (8, 100))
    weights = jax.nn.one_hot(jnp.full((8,), 2), len(gan.TEXTURE_CORRELATION_PX))  # sigma = 2 px
    fields = np.asarray(gan.texture_field(z, weights, 128, 128, log_stretch=jnp.full((8,), np.log(4.0))))
    # correlation lengths 2 * 2 = 4 px down a column, 2 / 2 = 1 px along a row
    assert _lag_correlation(fields, 1, 0) == pytest.approx(np.exp(-1 / (2 * 4.0**2)), abs=0.03)
    assert _lag_correlation(fields, 0, 1) == pytest.approx(np.exp(-1 / (2 * 1.0**2)), abs=0.03)
    np.testing.assert_allclose(
        gan.texture_field(z, weights, 128, 128, log_stretch=jnp.zeros(8)), gan.texture_field(z, weights, 128, 128)
    )
    layer = gan.FluxConcentrations(count=1, typical_width_px=2.0)
    params = layer.init(jax.random.key(0), z[:1])
    params["params"]["peaks"]["bias"] = jnp.ones((1,))
    params["params"]["geometry"] = jax.tree.map(jnp.zeros_like, params["params"]["geometry"])  # centred
    round_image = np.asarray(layer.apply(params, z[:1]))[0, ..., 0]
    stretched = np.asarray(layer.apply(params, z[:1], jnp.full((1,), np.log(4.0))))[0, ..., 0]

    # a Gaussian's second moment along an axis is its width squared: x2 along the rows' axis, / 2 across
    def moments(image):
        ys, xs = np.mgrid[0:128, 0:128] + 0.5
        total = image.sum()
        cy, cx = (image * ys).sum() / total, (image * xs).sum() / total
        return (image * (ys - cy) ** 2).sum() / total, (image * (xs - cx) ** 2).sum() / total

    (round_y, round_x), (stretched_y, stretched_x) = moments(round_image), moments(stretched)
    assert round_y == pytest.approx(round_x, rel=1e-3)
    assert stretched_y == pytest.approx(4 * round_y, rel=0.02) and stretched_x == pytest.approx(round_x / 4, rel=0.02)


def test_a_structured_generator_without_a_diffuse_field_draws_no_convolutional_feature():
    structured, _ = gan.make_models(
        "resize_conv_small_edge_instrument_fast_gain_stretched_structured_threshold_clip_minibatch",
        "matmul",
        (0.02, 0.03),
        0.3,
    )
    params = init_generator(structured, jax.random.key(4))["params"]
    assert sorted(params) == ["Clouds", "InstrumentNoise", "Spots", "Stretch", "Texture"]
    assert gan.parameter_count(params) < 40_000


def test_quiet_network_is_mixed_polarity_at_its_scale_with_a_learned_density_and_net_polarity():
    network = gan.QuietNetwork()
    z = jax.random.normal(jax.random.key(7), (8, 100))
    params = network.init(jax.random.key(0), z)
    field = np.asarray(network.apply(params, z))[..., 0]
    assert 0.3 < np.mean(field > 0) < 0.7  # no net polarity to begin with
    # clumps of mean 1 times |tanh(3 g)| (g unit Gaussian, E|tanh(3 g)| ~ 0.79) times the initial density
    assert np.abs(field).mean() == pytest.approx(0.79 * network.initial_density, rel=0.15)
    # the sign pattern keeps its polarity over the polarity scale, unlike the clumps' pixel-scale texture
    sign = np.sign(field)
    assert _lag_correlation(sign, 1, 0) > 0.9 and _lag_correlation(sign, 8, 8) < 0.6
    biased = jax.tree.map(lambda leaf: leaf, params)
    biased["params"]["bias"]["bias"] = jnp.array([3.0])
    assert np.mean(np.asarray(network.apply(biased, z)) > 0) > 0.99  # a net polarity everywhere


def test_white_noise_structured_generator_ignores_the_calibrated_neighbour_correlation():
    arch = "resize_conv_small_edge_instrument_fast_gain_stretched_structured_network_white_threshold_clip_minibatch"
    generator, _ = gan.make_models(arch, "matmul", (0.02, 0.03), 0.6)
    assert generator.noise_neighbour_weight == 0.0 and generator.network and generator.stretch
    params = init_generator(generator, jax.random.key(4))["params"]
    z = jax.random.normal(jax.random.key(5), (4, 100))
    noise = np.asarray(generator.apply({"params": params}, z))[..., 0]  # at the start: network and noise only
    network = np.asarray(gan.QuietNetwork().apply({"params": params["Network"]}, z, jnp.zeros(4)))[..., 0]
    residual = np.arctanh(np.clip(noise / gan.OUTPUT_CLIP_GAIN, -0.999, 0.999)) - network
    assert abs(_lag_correlation(residual, 0, 1)) < 0.05 and abs(_lag_correlation(residual, 1, 0)) < 0.05


def test_rendered_umbrae_are_flat_cored_discs_of_their_radius_and_edge():
    centres = jnp.array([[[64.5, 40.5], [30.5, 100.5]]])
    radii, edges, peaks = jnp.array([[10.0, 4.0]]), jnp.array([[0.5, 1.0]]), jnp.array([[2.0, -1.5]])
    both = np.asarray(gan.render_umbrae(centres, radii, edges, peaks, 128, 128))[0, ..., 0]
    first = np.asarray(gan.render_umbrae(centres[:, :1], radii[:, :1], edges[:, :1], peaks[:, :1], 128, 128))[0, ..., 0]
    np.testing.assert_allclose(
        both[:, :64], first[:, :64], atol=1e-6
    )  # the second disc's rim is 55 px from the first's
    ys, xs = np.mgrid[0:128, 0:128] + 0.5
    radius = np.hypot(ys - 64.5, xs - 40.5)
    np.testing.assert_allclose(first[radius < 7.0], 2.0, rtol=0.01)  # the core is flat, 3 px inside the edge
    ring = first[np.abs(radius - 10.0) < 0.25]
    np.testing.assert_allclose(ring, 1.0, atol=2.0 * 0.13)  # half the core at the radius (0.25 px / 0.5 px edge)
    assert np.all(np.abs(first[radius > 14.0]) < 2.0 * 1e-3)  # 8 edges outside, nothing
    assert abs(np.sum(first > 1.0) - np.sum(radius < 10.0)) <= 4  # the pixels inside the radius, up to the rim's
    assert abs(np.sum(both < -0.75) - np.sum(np.hypot(ys - 30.5, xs - 100.5) < 4.0)) <= 4
    # a disc stretched 4x along the rows keeps the round one's area and is 4x as long as wide
    stretched = np.asarray(
        gan.render_umbrae(centres[:, :1], jnp.array([[[20.0, 5.0]]]), edges[:, :1], peaks[:, :1], 128, 128)
    )[0, ..., 0]
    inside = stretched > 1.0
    assert inside.sum() == pytest.approx(np.pi * 10.0**2, rel=0.05)
    assert inside.any(axis=1).sum() / inside.any(axis=0).sum() == pytest.approx(4.0, rel=0.1)
    area = jax.grad(lambda r: jnp.sum(gan.render_umbrae(centres[:, :1], r, edges[:, :1], peaks[:, :1], 128, 128)))
    # d/dR of the disc's integral 2 * pi * R^2 is 2 * 2 * pi * R = 125.7
    assert float(area(radii[:, :1])[0, 0]) == pytest.approx(2.0 * 2 * np.pi * 10.0, rel=0.02)


def test_umbral_spots_start_as_nothing_and_saturate_their_whole_core():
    layer = gan.FluxConcentrations(count=4, typical_width_px=3.0, profile="umbra")
    z = jax.random.normal(jax.random.key(6), (3, 100))
    params = layer.init(jax.random.key(0), z)
    np.testing.assert_array_equal(np.asarray(layer.apply(params, z)), 0.0)
    assert gan.parameter_count(params) == (100 * 128 + 128) + (128 * 16 + 16) + (128 * 4 + 4)
    lit = jax.tree.map(lambda leaf: leaf, params)
    lit["params"]["peaks"]["bias"] = jnp.full((4,), 3.0)
    drawn = np.asarray(layer.apply(lit, z))
    assert drawn.max() == pytest.approx(3.0, rel=0.02)  # a plateau at its peak, not a Gaussian's single pixel
    assert np.sum(drawn[0] > 2.7) >= 4 * 9  # the four cores cover several pixels each
    with pytest.raises(ValueError, match="profile must be one of"):
        gan.FluxConcentrations(count=4, typical_width_px=3.0, profile="square").init(jax.random.key(0), z)


def test_the_mild_stretch_generator_is_the_unbounded_one_with_its_stretch_bounded_at_the_mild_limit():
    unbounded_arch = (
        "resize_conv_small_edge_instrument_filled_stretched_structured_network_white_threshold_clip_minibatch"
    )
    mild_arch = unbounded_arch.replace("_filled_", "_filled_mild_stretch_")
    unbounded, _ = gan.make_models(unbounded_arch, "matmul", (0.02, 0.03), 0.3)
    mild, _ = gan.make_models(mild_arch, "matmul", (0.02, 0.03), 0.3)
    z = jax.random.normal(jax.random.key(5), (4, 100))
    params = unbounded.init(jax.random.key(6), z)["params"]
    params["Spots"]["peaks"]["bias"] = jnp.full((8,), 2.0)  # visible spots, which the stretch elongates

    def with_stretch_bias(bias):
        stretch = {"kernel": jnp.zeros_like(params["Stretch"]["kernel"]), "bias": jnp.full((1,), bias)}
        return {**params, "Stretch": stretch}

    # zero stretch: the same generator
    np.testing.assert_array_equal(
        mild.apply({"params": with_stretch_bias(0.0)}, z), unbounded.apply({"params": with_stretch_bias(0.0)}, z)
    )
    # a saturated stretch reaches log 2.5, which the unbounded generator draws at a bias of artanh(log 2.5 / log 8)
    saturated = np.asarray(mild.apply({"params": with_stretch_bias(50.0)}, z))
    assert gan.MILD_STRETCH_LIMIT == pytest.approx(np.log(2.5))
    same_stretch = np.arctanh(gan.MILD_STRETCH_LIMIT / gan.STRETCH_LIMIT)
    np.testing.assert_allclose(
        saturated, np.asarray(unbounded.apply({"params": with_stretch_bias(same_stretch)}, z)), atol=1e-5
    )
    assert np.abs(saturated - np.asarray(unbounded.apply({"params": with_stretch_bias(50.0)}, z))).max() > 0.1


def test_instrument_noise_with_a_stretched_share_keeps_its_width_and_leans_its_fine_power_along_the_stretch():
    z = jax.random.normal(jax.random.key(7), (16, 100))
    x = jnp.zeros((16, 128, 128, 1))
    noise = gan.InstrumentNoise((0.02, 0.02), 0.0, stretched=True)
    params = noise.init(jax.random.key(0), x, z)["params"]
    assert params == {"stretched_angle": 0.0}  # one parameter, initially white noise alone
    white = np.asarray(gan.InstrumentNoise((0.02, 0.02), 0.0).apply({}, x, z))
    np.testing.assert_array_equal(np.asarray(noise.apply({"params": params}, x, z)), white)
    half = {"stretched_angle": jnp.asarray(np.pi / 4 / gan.STRETCHED_ANGLE_RATE)}  # sin^2 = 1/2 of the power stretched
    contrast = {}
    for name, log_stretch in (("square", 0.0), ("stretched", np.log(2.5))):
        drawn = np.asarray(noise.apply({"params": half}, x, z, jnp.full((16,), log_stretch)))[..., 0]
        np.testing.assert_allclose(drawn.std(axis=(1, 2)), 0.02, rtol=0.03)  # the width is the calibration's
        contrast[name] = quality.orientation_contrast(drawn)[:, -1]  # k = 38-64
    white_contrast = quality.orientation_contrast(white[..., 0])[:, -1]
    assert abs(np.median(contrast["square"])) < 0.03 and abs(np.median(white_contrast)) < 0.03
    # half the power through the filter exp(-pi^2 (2.5 fy^2 + fx^2 / 2.5)) (1 px stretched 2.5x): at k = 38-64 the
    # axes hold about 1.6 times the diagonals' power (0.2 dex), the data's median (experiments/README.md, session 25)
    assert gan.STRETCHED_NOISE_PX == 1.0
    assert 0.15 < np.median(contrast["stretched"]) < 0.25


MILD_ARCH = (
    "resize_conv_small_edge_instrument_filled_mild_stretch_stretched_structured_network_white_threshold_clip_minibatch"
)


def _mild_and_variant(token: str):
    """The mild-stretch generator and its variant with ``token`` after '_mild_stretch_' (same noise calibration)."""
    mild, _ = gan.make_models(MILD_ARCH, "matmul", (0.02, 0.03), 0.3)
    variant, _ = gan.make_models(
        MILD_ARCH.replace("_mild_stretch_", f"_mild_stretch_{token}_"), "matmul", (0.02, 0.03), 0.3
    )
    return mild, variant


def test_the_stretched_noise_generator_is_the_mild_one_until_its_stretched_share_grows():
    mild, stretched = _mild_and_variant("stretched_noise")
    z = jax.random.normal(jax.random.key(8), (4, 100))
    params = stretched.init(jax.random.key(9), z)["params"]
    assert set(params) == set(mild.init(jax.random.key(9), z)["params"]) | {"InstrumentNoise"}
    without = {name: value for name, value in params.items() if name != "InstrumentNoise"}
    np.testing.assert_array_equal(stretched.apply({"params": params}, z), mild.apply({"params": without}, z))
    grown = {**params, "InstrumentNoise": {"stretched_angle": jnp.asarray(0.2)}}
    assert np.abs(np.asarray(stretched.apply({"params": grown}, z) - mild.apply({"params": without}, z))).max() > 0.01


def test_a_patch_contrast_starts_as_the_shared_one_and_then_sets_each_patch_log_contrast_from_z():
    z = jax.random.normal(jax.random.key(10), (32, 100))
    shared = gan.ClumpTexture()
    per_patch = gan.ClumpTexture(patch_contrast=True)
    params = per_patch.init(jax.random.key(0), z)["params"]
    assert params["patch_contrast"]["kernel"].shape == (100, 1)  # 101 more parameters, initially zero
    without = {name: value for name, value in params.items() if name != "patch_contrast"}
    np.testing.assert_array_equal(per_patch.apply({"params": params}, z), shared.apply({"params": without}, z))
    # a kernel along z_0 gives each patch the contrast softplus(raw + z_0): the log texture's spread per patch
    # follows z_0 (the floor, 0.5, and the mean-1 normalisation leave the ordering alone)
    grown = {**params, "patch_contrast": {"kernel": jnp.zeros((100, 1)).at[0, 0].set(1.0), "bias": jnp.zeros(1)}}
    values = np.asarray(per_patch.apply({"params": grown}, z))[..., 0]
    spread = np.log(values - 0.5 + 1e-9).std(axis=(1, 2))  # log of (1 - floor) clumps: contrast * f + const
    expected = np.log1p(np.exp(np.log(np.expm1(0.5)) + np.asarray(z[:, 0])))
    np.testing.assert_allclose(spread, expected, rtol=1e-3)


def test_the_patch_contrast_generator_is_the_mild_one_until_its_contrast_kernel_grows():
    mild, varied = _mild_and_variant("patch_contrast")
    z = jax.random.normal(jax.random.key(11), (4, 100))
    params = varied.init(jax.random.key(9), z)["params"]
    # plage clouds to texture (their peaks start at zero, and so does the textured channel)
    clouds = params["Clouds"]
    params = {**params, "Clouds": {**clouds, "peaks": {**clouds["peaks"], "bias": jnp.full((16,), 0.3)}}}
    texture = {name: value for name, value in params["Texture"].items() if name != "patch_contrast"}
    without = {**params, "Texture": texture}
    np.testing.assert_array_equal(varied.apply({"params": params}, z), mild.apply({"params": without}, z))
    kernel = jnp.full((100, 1), 0.3)
    grown = {**params, "Texture": {**params["Texture"], "patch_contrast": {"kernel": kernel, "bias": jnp.zeros(1)}}}
    assert np.abs(np.asarray(varied.apply({"params": grown}, z) - mild.apply({"params": without}, z))).max() > 0.01
