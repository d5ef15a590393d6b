"""Edits along latent directions and conditional directions (solarjax.steering.edit)."""

import jax
import numpy as np
import pytest

from solarjax.steering.edit import conditional, edit, project_out

D = 100


def _unit(v):
    return v / np.linalg.norm(v)


def _lstsq_conditional(primal, conditions):
    """Direct least-squares solution: residual of fitting primal by the conditions, normalised."""
    matrix = np.stack(conditions, axis=1).astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(matrix, primal.astype(np.float64), rcond=None)
    residual = primal - matrix @ coefficients
    return residual / np.linalg.norm(residual)


def test_edit_shapes_and_values_shared_alphas():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, D)).astype(np.float32)
    n = _unit(rng.normal(size=D)).astype(np.float32)
    alphas = np.array([-3.0, 0.0, 1.5], np.float32)
    out = np.asarray(edit(z, n, alphas))
    assert out.shape == (5, 3, D)
    np.testing.assert_allclose(out[:, 1], z, atol=1e-6)
    # The displacement along n is exactly alpha; nothing moves orthogonally.
    along = (out - z[:, None]) @ n
    np.testing.assert_allclose(along, np.broadcast_to(alphas, (5, 3)), atol=1e-5)
    ortho = (out - z[:, None]) - along[..., None] * n
    assert np.abs(ortho).max() < 1e-5


def test_edit_per_latent_alphas():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4, D)).astype(np.float32)
    n = _unit(rng.normal(size=D)).astype(np.float32)
    alphas = rng.uniform(-3, 3, size=(4, 6)).astype(np.float32)
    out = np.asarray(edit(z, n, alphas))
    expected = z[:, None, :] + alphas[..., None] * n
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_edit_keep_norm_stays_on_shell():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(6, D)).astype(np.float32)
    n = _unit(rng.normal(size=D)).astype(np.float32)
    alphas = np.linspace(-8, 8, 9, dtype=np.float32)
    out = np.asarray(edit(z, n, alphas, keep_norm=True))
    np.testing.assert_allclose(
        np.linalg.norm(out, axis=-1), np.broadcast_to(np.linalg.norm(z, axis=-1)[:, None], (6, 9)), rtol=1e-5
    )
    # Still moves towards n: the projection on n grows with alpha.
    assert np.all(np.diff(out @ n, axis=1) > 0)


def test_edit_rejects_bad_shapes():
    z = np.zeros((3, D), np.float32)
    with pytest.raises(ValueError, match="direction"):
        edit(z, np.zeros(D + 1), np.zeros(2))
    with pytest.raises(ValueError, match="alphas"):
        edit(z, np.zeros(D), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        edit(np.zeros(D), np.zeros(D), np.zeros(2))


@pytest.mark.parametrize("count", [1, 2, 3, 7, 30])
def test_conditional_matches_least_squares(count):
    rng = np.random.default_rng(count)
    primal = _unit(rng.normal(size=D))
    conditions = [_unit(rng.normal(size=D) + 0.5 * primal) for _ in range(count)]  # correlated with primal
    with jax.enable_x64(True):
        got = np.asarray(conditional(primal, *conditions))
    expected = _lstsq_conditional(primal, conditions)
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert abs(np.linalg.norm(got) - 1.0) < 1e-12
    # Orthogonal to every condition, and still positively aligned with the primal.
    assert np.abs(np.stack(conditions) @ got).max() < 1e-10
    assert got @ primal > 0


def test_conditional_float32_matches_least_squares():
    rng = np.random.default_rng(11)
    primal = _unit(rng.normal(size=D)).astype(np.float32)
    conditions = [_unit(rng.normal(size=D)).astype(np.float32) for _ in range(5)]
    got = np.asarray(conditional(primal, *conditions))
    np.testing.assert_allclose(got, _lstsq_conditional(primal, conditions), atol=2e-6)


def test_conditional_one_condition_closed_form():
    rng = np.random.default_rng(3)
    primal, condition = _unit(rng.normal(size=D)), _unit(rng.normal(size=D))
    closed = primal - (primal @ condition) * condition
    with jax.enable_x64(True):
        got = np.asarray(conditional(primal, condition))
    np.testing.assert_allclose(got, closed / np.linalg.norm(closed), atol=1e-12)


def test_conditional_dependent_conditions_and_invariances():
    rng = np.random.default_rng(4)
    primal = _unit(rng.normal(size=D))
    a, b = _unit(rng.normal(size=D)), _unit(rng.normal(size=D))
    with jax.enable_x64(True):
        reference = np.asarray(conditional(primal, a, b))
        # Duplicates, scalings, a linear combination and reordering span the same subspace.
        dependent = np.asarray(conditional(primal, b, 3.0 * a, a - 2.0 * b, -b))
        # Projecting twice changes nothing (the projection is idempotent).
        again = np.asarray(conditional(reference, a, b))
    np.testing.assert_allclose(dependent, reference, atol=1e-12)
    np.testing.assert_allclose(again, reference, atol=1e-12)


def test_conditional_without_conditions_normalises():
    v = np.arange(1.0, D + 1.0)
    with jax.enable_x64(True):
        np.testing.assert_allclose(np.asarray(conditional(v)), v / np.linalg.norm(v), atol=1e-14)


def test_conditional_refuses_primal_in_span_and_bad_shapes():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=D), rng.normal(size=D)
    with pytest.raises(ValueError, match="span"):
        conditional(2.0 * a - b, a, b)
    with pytest.raises(ValueError, match="condition 1"):
        conditional(a, b, np.zeros(D - 1))


def test_project_out_is_jittable():
    rng = np.random.default_rng(6)
    primal = rng.normal(size=D).astype(np.float32)
    conditions = rng.normal(size=(4, D)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(jax.jit(project_out)(primal, conditions)), np.asarray(project_out(primal, conditions)), atol=1e-5
    )
