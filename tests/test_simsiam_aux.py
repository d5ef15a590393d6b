"""The self-supervised physics head of the SimSiam trainer (`config.physics_aux_weight`)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from solarjax import physics
from solarjax.models.simsiam import SimSiam
from solarjax.train import simsiam as trainer

SIZE = 32


def _bipoles(count: int, seed: int = 0) -> np.ndarray:
    """[count, 32, 32, 1] bipoles: a positive and a negative Gaussian of random strength, size and separation."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    images = np.zeros((count, SIZE, SIZE, 1), np.float32)
    for i in range(count):
        amplitude, width, half = rng.uniform(0.3, 1.0), rng.uniform(1.5, 4.0), rng.uniform(2.0, 9.0)
        angle = rng.uniform(-np.pi / 2, np.pi / 2)
        dr, dc = half * np.sin(angle), half * np.cos(angle)
        blob = lambda r, c: np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * width**2))
        centre = SIZE / 2
        images[i, ..., 0] = amplitude * (blob(centre - dr, centre - dc) - blob(centre + dr, centre + dc))
    return images


def test_targets_are_the_exact_quantities_of_the_patch():
    images = _bipoles(6)
    q = physics.quantities(images)
    expected = np.stack([np.log(q["tuf"]), q["psep"], np.log1p(q["r_value"]), q["area"], np.abs(q["tilt"])], 1)
    np.testing.assert_allclose(np.asarray(trainer.physics_targets(jnp.asarray(images))), expected, rtol=1e-6)


def test_aux_loss_known_answers_and_undefined_targets():
    targets = jnp.array([[1.0, 10.0], [3.0, jnp.nan], [5.0, 30.0]])
    # standardised column 0: (-1.2247, 0, 1.2247); column 1 over its two finite entries: (-1, 1)
    perfect = jnp.array([[-1.2247449, -1.0], [0.0, 123.0], [1.2247449, 1.0]])
    assert float(trainer.physics_aux_loss(perfect, targets)) == pytest.approx(0.0, abs=1e-8)
    # predicting 0 everywhere: mean of the squared standardised values = 1 per column (5 finite entries)
    assert float(trainer.physics_aux_loss(jnp.zeros((3, 2)), targets)) == pytest.approx(1.0, abs=1e-5)
    assert float(trainer.physics_aux_loss(jnp.zeros((3, 2)), jnp.full((3, 2), jnp.nan))) == 0.0


def test_no_head_by_default_and_config_untouched_at_weight_zero():
    model = SimSiam(width=4, projector_dims=(16, 8), predictor_hidden=4)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, SIZE, SIZE, 1)), train=False))
    assert "physics" not in shapes["params"]
    config = ml_collections.ConfigDict({"model": {"width": 4}, "physics_aux_weight": 0.0})
    assert trainer.with_physics_head(config) is config
    headed = trainer.with_physics_head(ml_collections.ConfigDict({"model": {"width": 4}, "physics_aux_weight": 0.5}))
    assert headed.model.physics_head == len(trainer.PHYSICS_TARGETS)
    with pytest.raises(ValueError, match="physics_aux_weight"):
        trainer.physics_aux_weight_of(ml_collections.ConfigDict({"physics_aux_weight": -1.0}))


def _setup(physics_head: int):
    model = SimSiam(width=4, projector_dims=(16, 8), predictor_hidden=4, physics_head=physics_head)
    optimizer = trainer.make_optimizer(0.05)
    state = jax.jit(lambda key: trainer.init_state(model, optimizer, key, image_size=SIZE))(jax.random.key(1))
    return model, optimizer, state


def test_physics_path_at_weight_zero_is_the_plain_simsiam_update():
    model, optimizer, state = _setup(len(trainer.PHYSICS_TARGETS))
    images = jnp.asarray(_bipoles(8, seed=2))
    view1, view2 = images, jnp.flip(images, axis=2)
    plain, plain_metrics = jax.jit(lambda s: trainer.update(model, optimizer, s, view1, view2))(state)
    aux, aux_metrics = jax.jit(
        lambda s: trainer._update_with_physics(model, optimizer, s, view1, view2, "float32", 0.0)
    )(state)
    for a, b in zip(jax.tree.leaves((plain.params, plain.batch_stats)), jax.tree.leaves((aux.params, aux.batch_stats))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
    assert float(aux_metrics["loss"]) == pytest.approx(float(plain_metrics["loss"]), abs=1e-6)
    assert float(aux_metrics["physics_aux"]) > 0.1  # measured, though weighted 0


def test_aux_loss_decreases_and_needs_a_head():
    model, optimizer, state = _setup(len(trainer.PHYSICS_TARGETS))
    images = jnp.asarray(_bipoles(16, seed=3))
    step = jax.jit(lambda s: trainer.update(model, optimizer, s, images, images, physics_aux_weight=1.0))
    history = []
    for _ in range(20):
        state, metrics = step(state)
        history.append(float(metrics["physics_aux"]))
    assert np.isfinite(history).all()
    assert np.mean(history[-5:]) < 0.5 * history[0], history
    headless = SimSiam(width=4, projector_dims=(16, 8), predictor_hidden=4)
    with pytest.raises(ValueError, match="physics_head"):  # refused while tracing, before any compilation
        jax.eval_shape(lambda s: trainer.update(headless, optimizer, s, images, images, physics_aux_weight=1.0), state)
