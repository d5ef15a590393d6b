"""Issue 23's generator candidates: edge padding (no border frame), the latent noise field, bilinear
upsampling, the R1 penalty, and the border diagnostic, on known answers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gan_candidates
from solarjax.models import gan
from solarjax.train import gan as gan_train
from solarjax.train import quality
from tests.helpers import init_generator

KEY = jax.random.key(0)


@pytest.mark.parametrize("conv_impl", gan.CONV_IMPLS)
def test_edge_upsample_conv_equals_upsampling_then_reflect_padding_then_convolution(conv_impl):
    x = jax.random.normal(jax.random.key(1), (2, 5, 6, 3))
    kernel = jax.random.normal(jax.random.key(2), (3, 3, 3, 4))
    upsampled = gan.upsample_nearest(x)
    # after nearest upsampling the border pairs are equal: reflect padding = edge padding
    reflected = jnp.pad(upsampled, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    expected = gan.conv_valid(reflected, kernel, 1, "xla")
    np.testing.assert_allclose(gan.upsample_conv(x, kernel, conv_impl, "edge"), expected, atol=1e-5)


def test_edge_padding_keeps_a_constant_field_constant_and_zero_padding_draws_a_frame():
    x = jnp.full((1, 4, 4, 1), 2.0)
    kernel = jnp.ones((3, 3, 1, 1))
    edge = np.asarray(gan.upsample_conv(x, kernel, "matmul", "edge"))[0, ..., 0]
    zero = np.asarray(gan.upsample_conv(x, kernel, "matmul", "zero"))[0, ..., 0]
    np.testing.assert_allclose(edge, 18.0)  # 9 taps of 2 everywhere
    assert zero[3, 3] == 18.0 and zero[0, 3] == 12.0 and zero[0, 0] == 8.0  # 6 and 4 taps at edge, corner
    with pytest.raises(ValueError, match="padding"):
        gan.upsample_conv(x, kernel, "matmul", "reflect")


def test_latent_noise_field_is_white_linear_in_z_and_fixed():
    z = jax.random.normal(jax.random.key(3), (2, 100))
    field = np.asarray(gan.latent_noise_field(z, 64, 64))
    assert field.shape == (2, 64, 64, 1)
    np.testing.assert_array_equal(field, gan.latent_noise_field(z, 64, 64))  # deterministic in z
    combined = gan.latent_noise_field(2.0 * z[:1] - 0.5 * z[1:], 64, 64)
    np.testing.assert_allclose(combined, 2.0 * field[:1] - 0.5 * field[1:], atol=1e-4)
    for image, latent in zip(field[..., 0], np.asarray(z)):  # per-image std |z| / sqrt(d), white
        assert image.std() == pytest.approx(np.linalg.norm(latent) / 10.0, rel=0.05)
        lag = np.corrcoef(image[:, 1:].ravel(), image[:, :-1].ravel())[0, 1]
        assert abs(lag) < 0.05
    assert not np.allclose(field, gan.latent_noise_field(z, 64, 64, seed=1))


def test_noise_generator_starts_as_the_edge_generator_and_learns_a_per_patch_amplitude():
    edge, _ = gan.make_models("resize_conv_small_edge")
    noisy, _ = gan.make_models("resize_conv_small_edge_noise")
    params = init_generator(noisy, KEY)["params"]
    assert gan.parameter_count(params) == 1_710_465 + 101
    z = jax.random.normal(jax.random.key(4), (2, 100))
    without = {k: v for k, v in params.items() if k != "OutputNoise"}
    np.testing.assert_allclose(noisy.apply({"params": params}, z), edge.apply({"params": without}, z), atol=1e-6)
    louder = jax.tree.map(lambda p: p, params)
    louder["OutputNoise"] = {"amplitude": {"kernel": jnp.zeros((100, 1)), "bias": jnp.array([0.01])}}
    difference = np.asarray(noisy.apply({"params": louder}, z) - noisy.apply({"params": params}, z))
    # tanh'(x) <= 1: the added pixel noise has at most the field's std times 0.01
    assert 0.003 < difference.std() <= 0.0102


def test_bilinear_upsampling_is_linear_interpolation_with_the_border_repeated():
    x = jax.random.normal(jax.random.key(6), (2, 6, 5, 3))
    up = np.asarray(gan.upsample_bilinear(x))
    assert up.shape == (2, 12, 10, 3)
    resized = jax.image.resize(x, (2, 12, 10, 3), "linear", antialias=False)  # half-pixel centres
    np.testing.assert_allclose(up, resized, atol=1e-6)
    np.testing.assert_allclose(gan.upsample_bilinear(jnp.full((1, 3, 3, 1), 0.7)), 0.7, atol=1e-7)
    ramp = jnp.arange(8.0)[None, :, None, None] * jnp.ones((1, 8, 4, 1))
    # a ramp at half-pixel centres: output pixel j sits at input coordinate (j - 0.5) / 2, away from the border
    np.testing.assert_allclose(np.asarray(gan.upsample_bilinear(ramp))[0, 1:-1, 0, 0], (np.arange(1, 15) - 0.5) / 2)


def test_bilinear_upsampling_adds_far_less_high_wavenumber_power_than_nearest():
    noise = jax.random.normal(jax.random.key(7), (8, 64, 64, 1)) * 0.1
    k, nearest = quality.radial_power_spectrum(gan.upsample_nearest(noise))
    _, bilinear = quality.radial_power_spectrum(gan.upsample_bilinear(noise))
    band = (k >= 40) & (k <= 64)  # above 0.6x the output Nyquist: the 2x2 blocks' high-k images
    # white input: the power ratio is cos^6 / cos^2 of the half output frequency, cos^4(pi k / 256) on one axis
    ratio = bilinear[:, band].mean() / nearest[:, band].mean()
    assert ratio < 0.2
    low = k <= 8  # the large scales pass both alike
    assert bilinear[:, low].mean() / nearest[:, low].mean() == pytest.approx(1.0, abs=0.15)


@pytest.mark.parametrize("conv_impl", gan.CONV_IMPLS)
def test_bilinear_upsample_conv_equals_bilinear_upsampling_then_edge_padding_then_convolution(conv_impl):
    x = jax.random.normal(jax.random.key(8), (2, 5, 6, 3))
    kernel = jax.random.normal(jax.random.key(9), (3, 3, 3, 4))
    expected = gan.conv_valid(gan.pad_spatial_mode(gan.upsample_bilinear(x), 1, "edge"), kernel, 1, "xla")
    np.testing.assert_allclose(gan.upsample_bilinear_conv(x, kernel, conv_impl), expected, atol=1e-5)
    grad = jax.grad(lambda k: jnp.sum(gan.upsample_bilinear_conv(x, k, conv_impl) ** 2))(kernel)
    expected_grad = jax.grad(
        lambda k: jnp.sum(gan.conv_valid(gan.pad_spatial_mode(gan.upsample_bilinear(x), 1, "edge"), k, 1, "xla") ** 2)
    )(kernel)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-4)


def test_bilinear_generator_has_the_noise_generators_parameters_and_needs_edge_padding():
    noisy, _ = gan.make_models("resize_conv_small_edge_noise")
    bilinear, _ = gan.make_models("resize_conv_small_bilinear_noise")
    params = init_generator(bilinear, KEY)["params"]
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, init_generator(noisy, KEY)["params"])
    z = jax.random.normal(jax.random.key(10), (2, 100))
    images = np.asarray(bilinear.apply({"params": params}, z))
    assert images.shape == (2, 128, 128, 1) and np.abs(images).max() <= 1.0
    assert not np.allclose(images, noisy.apply({"params": params}, z), atol=1e-3)
    with pytest.raises(ValueError, match="upsample"):
        gan.ResizeConvGenerator(upsample="bilinear").init(KEY, jnp.zeros((1, 100)))
    with pytest.raises(ValueError, match="upsample"):
        gan.ResizeConvGenerator(padding="edge", upsample="cubic").init(KEY, jnp.zeros((1, 100)))


class _Linear(nn.Module):
    @nn.compact
    def __call__(self, images, update_stats=False):
        return nn.Dense(1)(images.reshape(images.shape[0], -1))[:, 0]


def test_r1_penalty_of_a_linear_discriminator_is_its_squared_weight_norm():
    images = jax.random.normal(KEY, (3, 4, 4, 1))
    params = _Linear().init(KEY, images)["params"]
    expected = float(jnp.sum(params["Dense_0"]["kernel"] ** 2))
    assert float(gan_train.r1_penalty(_Linear(), params, {}, images)) == pytest.approx(expected, rel=1e-5)
    grads = jax.grad(lambda p: gan_train.r1_penalty(_Linear(), p, {}, images))(params)
    np.testing.assert_allclose(grads["Dense_0"]["kernel"], 2 * params["Dense_0"]["kernel"], rtol=1e-5)


class _TinyGenerator(nn.Module):
    @nn.compact
    def __call__(self, z):
        return jnp.tanh(nn.Dense(16)(z)).reshape(-1, 4, 4, 1)


class _TinyDiscriminator(nn.Module):
    @nn.compact
    def __call__(self, images, update_stats=False):
        hidden = jnp.tanh(nn.Dense(8)(images.reshape(images.shape[0], -1)))
        return nn.Dense(1)(hidden)[:, 0]


def test_train_step_adds_the_r1_penalty_to_the_discriminator_loss_only():
    generator, discriminator = _TinyGenerator(), _TinyDiscriminator()
    tx = gan_train.make_optimizer(5e-4, 0.5, 0.999)
    g_params = generator.init(KEY, jnp.zeros((1, 3)))["params"]
    d_params = discriminator.init(KEY, jnp.zeros((1, 4, 4, 1)))["params"]
    state = gan_train.GanState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params,
        d_params=d_params,
        d_stats={},
        g_opt_state=tx.init(g_params),
        d_opt_state=tx.init(d_params),
        rng=KEY,
    )
    batch = {"image": 0.5 * jax.random.normal(jax.random.key(5), (2, 4, 4, 1))}
    plain = gan_train.make_train_step(generator, discriminator, tx, tx, 3)(state, batch, KEY)[1]
    gamma = 10.0
    penalised = gan_train.make_train_step(generator, discriminator, tx, tx, 3, r1_gamma=gamma)(state, batch, KEY)[1]
    penalty = float(gan_train.r1_penalty(discriminator, d_params, {}, batch["image"]))
    assert penalty > 0
    assert float(penalised["d_loss"]) == pytest.approx(float(plain["d_loss"]) + gamma / 2 * penalty, rel=1e-5)
    assert float(penalised["g_loss"]) == pytest.approx(float(plain["g_loss"]), rel=1e-6)
    assert float(penalised["d_grad_norm"]) != pytest.approx(float(plain["d_grad_norm"]), rel=1e-3)
    with pytest.raises(ValueError, match="r1_gamma"):
        gan_train.build_programs("simple", "matmul", 100, (5e-4, 0.5, 0.999), None, r1_gamma=-1.0)


def test_border_excess_measures_a_frame():
    field = np.zeros((2, 128, 128, 1))
    field[0, :2, :] = field[0, -2:, :] = field[0, :, :2] = field[0, :, -2:] = 0.1  # a 100 G frame
    np.testing.assert_allclose(quality.border_excess(field), [100.0, 0.0])
    noise = np.random.default_rng(0).normal(0.0, 0.02, (50, 128, 128, 1))
    assert abs(float(np.mean(quality.border_excess(noise)))) < 0.5  # 20 G noise: no frame


def test_candidates_change_only_their_model_fields(tmp_path):
    base = gan_candidates.candidate_config("baseline", tmp_path, 40, 7, 20, 64)
    for name, fields in gan_candidates.CANDIDATES.items():
        marker = gan_candidates.done_marker(tmp_path, name, 23).relative_to(tmp_path)
        assert all(len(part.encode()) <= 255 for part in marker.parts), name  # folder and file names
        config = gan_candidates.candidate_config(name, tmp_path, 40, 7, 20, 64)
        assert {k: v for k, v in config.model.items() if k not in fields} == {
            k: v for k, v in base.model.items() if k not in fields
        }
        assert config.optimizer == base.optimizer and config.total_steps == 40 and config.seed == 7
        assert config.data.data_dir == str(tmp_path) and config.quality.num_samples == 64
    with pytest.raises(ValueError, match="unknown candidate"):
        gan_candidates.candidate_config("nope", tmp_path, 40, 7, 20, 64)


def test_the_default_model_is_a_measured_candidate():
    from solarjax.configs import gan as gan_configs

    measured = [
        name
        for name, fields in gan_candidates.CANDIDATES.items()
        if {**gan_configs.PLAIN_MODEL, **fields} == gan_configs.DEFAULT_MODEL
    ]
    assert measured == [
        "edge_instrument_filled_mild_stretch_patch_contrast_fast_spots_stretched_structured_network_white_threshold_clip_sharpness_complexity_spread_late_ema_start_plage_gradient_bipole_spot_late_sector_late_grid"
    ]
