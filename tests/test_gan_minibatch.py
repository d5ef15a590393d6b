"""Issue 23's polarity fix: a discriminator that sees its batch (flux imbalance, minibatch stddev), on known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax.models import gan

SIZE = 128
SMALL = 32  # the discriminator takes any size; its tests run on 32 x 32 patches to stay fast


def bipole(positive: float, negative: float, flip: bool = False, size: int = SIZE) -> np.ndarray:
    """[size, size, 1] two square spots of side size / 8 (16 px at 128): +positive left, -negative right
    (swapped by flip)."""
    image = np.zeros((size, size, 1), np.float32)
    middle, side = size // 2, size // 8
    rows = slice(middle - side // 2, middle + side // 2)
    image[rows, middle - 3 * side // 2 : middle - side // 2] = positive
    image[rows, middle + side // 2 : middle + 3 * side // 2] = -negative
    return -image if flip else image


def test_flux_imbalance_known_answers_and_oddness():
    images = jnp.asarray(
        np.stack([bipole(0.8, 0.8), bipole(0.8, 0.0), bipole(0.0, 0.8), bipole(0.8, 0.4), np.zeros((SIZE, SIZE, 1))])
    )
    u = np.asarray(gan.flux_imbalance(images))
    # equal spots: 0; unipolar: +-1; spots 2a and a of equal area: (4 - 1) / (4 + 1); an empty patch: 0
    np.testing.assert_allclose(u, [0.0, 1.0, -1.0, 0.6, 0.0], atol=1e-5)
    np.testing.assert_allclose(gan.flux_imbalance(-images), -u, atol=1e-6)
    # 25 G noise over the whole patch only adds its power to the denominator: 0.8^2 256 / (0.8^2 256 + 0.025^2 128^2)
    noise = np.random.default_rng(0).normal(0.0, 0.025, (1, SIZE, SIZE, 1)).astype(np.float32)
    expected = 0.8**2 * 256 / (0.8**2 * 256 + 0.025**2 * SIZE**2)
    assert float(gan.flux_imbalance(images[1:2] + noise)[0]) == pytest.approx(expected, abs=0.01)


def test_minibatch_stddev_is_zero_for_identical_samples_and_the_spread_otherwise():
    same = jnp.ones((8, 3, 3, 2))
    assert float(gan.minibatch_stddev(same)) < 1e-3
    signs = jnp.asarray(np.repeat([1.0, -1.0], 4)).reshape(8, 1, 1, 1) * jnp.ones((8, 3, 3, 2))
    assert float(gan.minibatch_stddev(signs)) == pytest.approx(1.0, abs=1e-6)


def test_batch_statistics_tell_a_balanced_batch_from_a_collapsed_one():
    balanced = jnp.asarray(np.stack([bipole(0.8, 0.4, flip=i % 2 == 1) for i in range(8)]))
    collapsed = jnp.asarray(np.stack([bipole(0.8, 0.4, flip=True) for _ in range(8)]))
    features = jnp.zeros((8, 4))
    stats_balanced = np.asarray(gan.batch_statistics(balanced, features))
    stats_collapsed = np.asarray(gan.batch_statistics(collapsed, features))
    assert stats_balanced.shape == (8, len(gan.BATCH_STATISTICS))
    names = {name: i for i, name in enumerate(gan.BATCH_STATISTICS)}
    # every patch is 0.6 imbalanced either way, so the per-patch |u| cannot tell the two batches apart ...
    np.testing.assert_allclose(stats_balanced[:, names["abs_flux_imbalance"]], 0.6, atol=1e-5)
    np.testing.assert_allclose(stats_collapsed[:, names["abs_flux_imbalance"]], 0.6, atol=1e-5)
    # ... the batch columns can: mean u 0 against -0.6, spread 0.6 against 0
    np.testing.assert_allclose(stats_balanced[:, names["batch_mean_flux_imbalance"]], 0.0, atol=1e-5)
    np.testing.assert_allclose(stats_collapsed[:, names["batch_mean_flux_imbalance"]], -0.6, atol=1e-5)
    np.testing.assert_allclose(stats_balanced[:, names["batch_std_flux_imbalance"]], 0.6, atol=1e-5)
    np.testing.assert_allclose(stats_collapsed[:, names["batch_std_flux_imbalance"]], 0.0, atol=1e-3)
    np.testing.assert_allclose(stats_balanced[:, names["batch_mean_abs_flux_imbalance"]], 0.6, atol=1e-5)


def test_minibatch_discriminator_logit_depends_on_the_batch_and_is_permutation_equivariant():
    _, discriminator = gan.make_models("resize_conv_small_edge_noise_minibatch")
    _, simple = gan.make_models("resize_conv_small_edge_noise")
    assert type(simple) is gan.SimpleDiscriminator
    noise = np.random.default_rng(1).normal(0.0, 0.025, (8, SMALL, SMALL, 1)).astype(np.float32)
    balanced = jnp.asarray(np.stack([bipole(0.8, 0.4, flip=i % 2 == 1, size=SMALL) for i in range(8)]) + noise)
    collapsed = balanced.at[1::2].multiply(-1.0)  # the same first patch, its companions all of its polarity
    params = jax.jit(discriminator.init)(jax.random.key(0), balanced)["params"]
    simple_params = jax.jit(simple.init)(jax.random.key(0), balanced)["params"]
    apply, apply_simple = jax.jit(discriminator.apply), jax.jit(simple.apply)
    # the paper's discriminator plus the statistics branch: Dense(6 -> 16) and 16 more inputs to the logit
    assert gan.parameter_count(params) == gan.parameter_count(simple_params) + 6 * 16 + 16 + 16
    logits = np.asarray(apply({"params": params}, balanced))
    assert logits.shape == (8,) and np.all(np.isfinite(logits))
    assert abs(float(apply({"params": params}, collapsed)[0]) - logits[0]) > 1e-4
    simple_logit = apply_simple({"params": simple_params}, balanced)[0]
    np.testing.assert_allclose(apply_simple({"params": simple_params}, collapsed)[0], simple_logit, rtol=1e-6)
    order = np.random.default_rng(2).permutation(8)
    np.testing.assert_allclose(apply({"params": params}, balanced[order]), logits[order], rtol=1e-5)


def test_generator_gets_a_gradient_towards_balance_through_the_batch_mean():
    """With only the batch-mean column weighted, D's logit falls with |mean u|; the gradient of the
    generator's objective (raise D's logit) on a collapsed batch moves every patch's u towards 0."""
    _, discriminator = gan.make_models("resize_conv_small_edge_noise_minibatch")
    collapsed = jnp.asarray(np.stack([bipole(0.8, 0.4, flip=True, size=SMALL) for _ in range(4)]))
    params = jax.tree.map(jnp.zeros_like, jax.jit(discriminator.init)(jax.random.key(0), collapsed)["params"])
    column = gan.BATCH_STATISTICS.index("batch_mean_flux_imbalance")
    # Statistics units 0 and 1 read +m and -m: leaky(m) + leaky(-m) = 0.8 |m|
    kernel = params["Statistics"]["kernel"].at[column, 0].set(1.0).at[column, 1].set(-1.0)
    params["Statistics"]["kernel"] = kernel
    params["Dense_1"]["kernel"] = params["Dense_1"]["kernel"].at[100, 0].set(-1.0).at[101, 0].set(-1.0)

    def generator_objective(images):
        return jnp.sum(discriminator.apply({"params": params}, images))

    gradient = jax.jit(jax.grad(generator_objective))(collapsed)
    step = 0.05 * gradient / jnp.max(jnp.abs(gradient))  # at most 50 G per pixel
    before = np.asarray(gan.flux_imbalance(collapsed))
    after = np.asarray(gan.flux_imbalance(collapsed + step))
    np.testing.assert_allclose(before, -0.6, atol=1e-5)
    assert np.all(after > before + 0.01)
