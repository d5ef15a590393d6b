"""GAN modules: the paper's parameter counts, shapes, output range, and the fast convolution
formulations against flax's own `nn.Conv` / `nn.ConvTranspose` (values and gradients)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import require_torch

from solarjax.models import gan

KEY = jax.random.key(0)


def _models(arch, conv_impl="matmul"):
    """`gan.make_models`, with a fixed instrument-noise calibration for the architectures that need one."""
    if arch in gan.INSTRUMENT_NOISE_ARCHITECTURES:
        return gan.make_models(arch, conv_impl, noise_widths=(0.02, 0.03), noise_neighbour_weight=0.3)
    return gan.make_models(arch, conv_impl)


@functools.lru_cache
def _variables(arch):
    """(generator variables, discriminator variables) of an architecture, initialised once."""
    generator, discriminator = _models(arch)
    return jax.jit(
        lambda key: (generator.init(key, jnp.zeros((1, 100))), discriminator.init(key, jnp.zeros((1, 128, 128, 1))))
    )(KEY)


def _apply(module, variables, x, **kwargs):
    return jax.jit(lambda v, x: module.apply(v, x, **kwargs))(variables, x)


@pytest.mark.parametrize("conv_impl", gan.CONV_IMPLS)
def test_simple_models_have_the_papers_parameter_counts(conv_impl):
    generator, discriminator = gan.make_models("simple", conv_impl)
    # Dense 100*14400+14400, ConvT 3*3*64*64+64, 3*3*64*32+32, 3*3*32*1+1
    shapes = lambda module, *shape: jax.eval_shape(module.init, KEY, jnp.zeros(shape, jnp.float32))
    assert gan.parameter_count(shapes(generator, 1, 100)) == 1_454_400 + 36_928 + 18_464 + 289 == 1_510_081
    # Conv 3*3*1*32+32, 3*3*32*64+64, 3*3*64*64+64, Dense 14400*100+100, 100+1
    assert gan.parameter_count(shapes(discriminator, 1, 128, 128, 1)) == 320 + 18_496 + 36_928 + 1_440_100 + 101


def test_simple_models_start_from_pytorch_default_initialisation():
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, with PyTorch's fan_in."""
    g_params, d_params = (variables["params"] for variables in _variables("simple"))
    cases = [
        (g_params["Dense_0"], 100),
        (g_params["ConvTranspose2x_0"], 64 * 9),  # ConvTranspose2d: Cout * k * k
        (g_params["ConvTranspose2x_1"], 32 * 9),
        (d_params["Conv2D_0"], 1 * 9),
        (d_params["Conv2D_1"], 32 * 9),
        (d_params["Dense_0"], 14400),
    ]
    for layer, fan_in in cases:
        bound = 1 / np.sqrt(fan_in)
        for values in (np.asarray(layer["kernel"]), np.asarray(layer["bias"])):
            assert np.abs(values).max() <= bound
        np.testing.assert_allclose(np.asarray(layer["kernel"]).std(), bound / np.sqrt(3), rtol=0.05)


@pytest.mark.parametrize("arch", sorted(gan.ARCHITECTURES))
def test_models_map_latents_to_patches_in_range_and_patches_to_logits(arch):
    g_vars, d_vars = _variables(arch)
    z = 3.0 * jax.random.normal(KEY, (3, 100))
    outputs = {}
    for conv_impl in gan.CONV_IMPLS:  # both formulations compute the same numbers
        generator, discriminator = _models(arch, conv_impl)
        images = _apply(generator, g_vars, z)
        outputs[conv_impl] = images, _apply(discriminator, d_vars, images)
    images, logits = outputs["matmul"]
    assert images.shape == (3, 128, 128, 1) and images.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(images))) <= 1.0 and float(jnp.std(images)) > 0
    assert logits.shape == (3,) and bool(jnp.all(jnp.isfinite(logits)))
    np.testing.assert_allclose(images, outputs["xla"][0], atol=2e-5)
    np.testing.assert_allclose(logits, outputs["xla"][1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size,in_channels,out_channels", [(15, 8, 6), (6, 3, 1), (1, 2, 3), (7, 1, 4)])
def test_subpixel_transposed_conv_equals_flax_conv_transpose(size, in_channels, out_channels):
    x = jax.random.normal(jax.random.key(1), (2, size, size + 1, in_channels))
    reference = nn.ConvTranspose(out_channels, (3, 3), (2, 2), "VALID")
    variables = reference.init(KEY, x)
    mine = gan.ConvTranspose2x(out_channels, conv_impl="matmul")
    # same initialiser, same parameter names and shapes: the same initial parameters
    jax.tree.map(np.testing.assert_array_equal, mine.init(KEY, x), variables)
    expected = reference.apply(variables, x)
    assert expected.shape == (2, 2 * size + 1, 2 * size + 3, out_channels)
    np.testing.assert_allclose(mine.apply(variables, x), expected, atol=1e-5)


def test_transposed_conv_paints_the_kernel_at_twice_the_input_position():
    """A unit input pixel at (i, j) writes the kernel, rotated by 180 degrees (flax's convention,
    ``transpose_kernel=False``; PyTorch paints it unrotated), into rows 2i..2i+2, cols 2j..2j+2."""
    kernel = jnp.arange(1.0, 10.0).reshape(3, 3, 1, 1)
    x = jnp.zeros((1, 4, 5, 1)).at[0, 2, 3, 0].set(1.0)
    for conv_impl in gan.CONV_IMPLS:
        y = np.asarray(gan.conv_transpose_stride2(x, kernel, conv_impl))[0, :, :, 0]
        expected = np.zeros((9, 11))
        expected[4:7, 6:9] = np.arange(1.0, 10.0).reshape(3, 3)[::-1, ::-1]
        np.testing.assert_allclose(y, expected, atol=1e-6)


@pytest.mark.parametrize("features", [7, 2])  # patches @ kernel (Cout >= Cin), channels first (Cout < Cin)
@pytest.mark.parametrize("kernel_size,stride,padding", [(3, 2, 0), (4, 2, 1), (3, 1, 1), (3, 1, 0)])
def test_matmul_conv_equals_flax_conv(kernel_size, stride, padding, features):
    x = jax.random.normal(jax.random.key(2), (2, 17, 16, 5))
    reference = nn.Conv(features, (kernel_size, kernel_size), (stride, stride), padding=((padding, padding),) * 2)
    variables = reference.init(KEY, x)
    expected = reference.apply(variables, x)
    for conv_impl in gan.CONV_IMPLS:
        mine = gan.Conv2D(features, kernel_size, stride=stride, padding=padding, conv_impl=conv_impl)
        np.testing.assert_allclose(mine.apply(variables, x), expected, atol=2e-5)


def test_matmul_gradients_equal_xla_gradients():
    """Autodiff through patches and phases gives XLA's convolution gradients (what training uses)."""
    x = jax.random.normal(jax.random.key(3), (2, 9, 9, 4))
    kernel = jax.random.normal(jax.random.key(4), (3, 3, 4, 3))
    cotangent_t = jax.random.normal(jax.random.key(5), (2, 19, 19, 3))
    cotangent_c = jax.random.normal(jax.random.key(6), (2, 4, 4, 3))

    def losses(conv_impl):
        transposed = lambda x, k: jnp.sum(gan.conv_transpose_stride2(x, k, conv_impl) * cotangent_t)
        strided = lambda x, k: jnp.sum(gan.conv_valid(x, k, 2, conv_impl) * cotangent_c)
        return (
            jax.jit(jax.grad(transposed, argnums=(0, 1)))(x, kernel),
            jax.jit(jax.grad(strided, argnums=(0, 1)))(x, kernel),
        )

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4), losses("matmul"), losses("xla"))


def test_subpixel_kernel_phases():
    kernel = jnp.arange(9.0).reshape(3, 3, 1, 1)
    phases = np.asarray(gan.subpixel_kernel(kernel))[:, :, 0, :]  # [2, 2, 4 phases]
    w = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(phases[..., 0], [[w[0, 0], w[0, 2]], [w[2, 0], w[2, 2]]])  # even, even
    np.testing.assert_array_equal(phases[..., 1], [[0, w[0, 1]], [0, w[2, 1]]])  # even, odd
    np.testing.assert_array_equal(phases[..., 2], [[0, 0], [w[1, 0], w[1, 2]]])  # odd, even
    np.testing.assert_array_equal(phases[..., 3], [[0, 0], [0, w[1, 1]]])  # odd, odd


def test_average_pool_gives_block_means_and_refuses_ragged_sizes():
    x = jnp.arange(2 * 8 * 8 * 3, dtype=jnp.float32).reshape(2, 8, 8, 3)
    pooled = np.asarray(gan.average_pool(x, 4))
    assert pooled.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(pooled[1, 0, 1, 2], np.asarray(x)[1, 0:4, 4:8, 2].mean())
    with pytest.raises(ValueError, match="divisible by 4"):
        gan.average_pool(jnp.zeros((1, 10, 8, 1)), 4)


def test_multiscale_discriminators_coarse_branch_sees_only_block_means():
    """With the logit's weights on the full-resolution and statistics branches zeroed, the multi-scale
    discriminator's logit is that of the 32 x 32 branch: unchanged when the pixels inside every 4 x 4 block
    are shuffled, which the whole discriminator does notice."""
    arch = "resize_conv_small_edge_instrument_fast_gain_diffuse_threshold_clip_multiscale"
    _, discriminator = _models(arch)
    variables = _variables(arch)[1]
    final = variables["params"]["Dense_2"]
    assert final["kernel"].shape == (100 + 16 + 100, 1)  # full resolution, statistics, coarse
    coarse_only = jax.tree.map(lambda leaf: leaf, variables)
    coarse_only["params"]["Dense_2"] = {**final, "kernel": final["kernel"].at[:116].set(0.0)}
    images = 0.3 * jax.random.normal(jax.random.key(3), (4, 128, 128, 1))
    blocks = images.reshape(4, 32, 4, 32, 4, 1).transpose(0, 1, 3, 2, 4, 5).reshape(4, 32, 32, 16)
    shuffled = blocks[..., jax.random.permutation(jax.random.key(4), 16)]
    shuffled = shuffled.reshape(4, 32, 32, 4, 4, 1).transpose(0, 1, 3, 2, 4, 5).reshape(4, 128, 128, 1)
    np.testing.assert_allclose(gan.average_pool(shuffled, 4), gan.average_pool(images, 4), atol=1e-6)
    np.testing.assert_allclose(
        _apply(discriminator, coarse_only, shuffled), _apply(discriminator, coarse_only, images), atol=1e-5
    )
    change = jnp.abs(_apply(discriminator, variables, shuffled) - _apply(discriminator, variables, images))
    assert float(jnp.max(change)) > 1e-3
    # and the coarse branch does see the block means: flipped patches have other means at each position
    flipped = jnp.flip(images, axis=1)
    coarse_change = jnp.abs(_apply(discriminator, coarse_only, flipped) - _apply(discriminator, coarse_only, images))
    assert float(jnp.max(coarse_change)) > 1e-3


def test_spectral_norm_discriminator_updates_its_power_iteration_only_when_asked():
    _, discriminator = gan.make_models("resize_conv")
    variables = _variables("resize_conv")[1]
    images = jax.random.uniform(KEY, (2, 128, 128, 1), minval=-1, maxval=1)
    _, unchanged = _apply(discriminator, variables, images, update_stats=False, mutable=["batch_stats"])
    jax.tree.map(np.testing.assert_array_equal, unchanged["batch_stats"], variables["batch_stats"])
    _, updated = _apply(discriminator, variables, images, update_stats=True, mutable=["batch_stats"])
    before = variables["batch_stats"]
    vectors = [(layer, name) for layer in before for name in before[layer] if name.endswith("/u")]
    assert len(vectors) == 5  # four convolutions and the logit layer
    for layer, name in vectors:
        u = updated["batch_stats"][layer][name]
        assert not np.array_equal(u, before[layer][name]), name
        np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-5)  # power iteration normalises


def test_pixel_norm_gives_unit_rms_features():
    x = jax.random.normal(KEY, (2, 3, 3, 16)) * 7.0
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(gan.pixel_norm(x) ** 2, axis=-1)), 1.0, rtol=1e-5)


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="unknown GAN architecture 'dcgan'"):
        gan.make_models("dcgan")
    with pytest.raises(ValueError, match="conv_impl must be one of"):
        gan.conv_valid(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), 1, "cudnn")
    with pytest.raises(ValueError, match="3x3 kernel"):
        gan.subpixel_kernel(jnp.zeros((4, 4, 1, 1)))


def test_default_conv_impl_by_backend():
    assert gan.default_conv_impl("cpu") == "matmul"
    assert gan.default_conv_impl("gpu") == "xla" and gan.default_conv_impl("tpu") == "xla"


@pytest.mark.parity
def test_pytorch_baseline_computes_the_same_train_step():
    """benchmarks/torch_gan_reference (the speed baseline) matches the JAX step number for number."""
    torch = require_torch()
    from benchmarks import torch_gan_reference as reference
    from solarjax.train import gan as gan_train
    from solarjax.train import sharding

    mesh = sharding.make_data_mesh(jax.devices()[:1])
    programs = gan_train.build_programs("simple", "matmul", 100, (5e-4, 0.9, 0.999), mesh)
    state = programs.init(jax.random.key(5))
    real = np.tanh(np.random.default_rng(0).normal(size=(2, 128, 128, 1))).astype(np.float32)
    key = gan_train.step_key(state)
    z = np.array(jax.random.normal(key, (2, 100)))
    before = jax.device_get(state)
    new_state, metrics = programs.train_step(state, {"image": real}, key)

    trainer = reference.TorchGanTrainer()
    reference.copy_flax_parameters(trainer, before.g_params, before.d_params)
    with torch.no_grad():
        torch_fake = reference.generate(trainer.generator, torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(torch_fake.transpose(0, 2, 3, 1), programs.generate(before.g_params, z), atol=1e-5)
    g_loss, d_loss = trainer.step(torch.from_numpy(real.transpose(0, 3, 1, 2).copy()), torch.from_numpy(z))
    np.testing.assert_allclose([g_loss, d_loss], [metrics["g_loss"], metrics["d_loss"]], rtol=1e-5)
    after = reference.TorchGanTrainer()
    reference.copy_flax_parameters(after, new_state.g_params, new_state.d_params)
    # Adam moves a parameter by lr * g / (|g| + eps), lr = 5e-4: rounding matters only where |g| ~ eps,
    # which can move a rare parameter by up to 2 lr; all others agree to float32 rounding
    difference = np.concatenate(
        [
            np.abs(updated.detach().numpy() - expected.detach().numpy()).ravel()
            for updated, expected in zip(
                [*trainer.generator.parameters(), *trainer.discriminator.parameters()],
                [*after.generator.parameters(), *after.discriminator.parameters()],
            )
        ]
    )
    assert difference.size == 1_510_081 + 1_495_945
    assert np.mean(difference < 1e-6) > 0.9999 and difference.max() <= 2 * 5e-4
