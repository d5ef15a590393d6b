"""Linear edits of GAN latents: moves along a direction and conditional directions.

The paper's edit is ``z' = z + alpha * n`` with ``n`` the unit normal of a quantity's SVM boundary.
A conditional edit changes one quantity while holding others: the primal normal is projected onto
the orthogonal complement of the span of the condition normals and renormalised, so moving along
it leaves the conditions' decision functions ``n_c . z + b_c`` unchanged. The projection here is
exact for any number of conditions (one, two, or more, including linearly dependent ones): it uses
an orthonormal basis of their span from a singular value decomposition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def edit(z: jax.Array, direction: jax.Array, alphas: jax.Array, keep_norm: bool = False) -> jax.Array:
    """Latents moved along one direction by several step sizes.

    Args:
      z: [N, D] base latents.
      direction: [D] direction in latent space (usually a unit normal).
      alphas: [A] step sizes shared by every latent, or [N, A] per latent, in units of
        ``|direction|`` (the paper's alpha).
      keep_norm: rescale every edited latent to the norm of its base latent, which keeps it on the
        Gaussian shell where the generator was trained (the authors' animations do this).

    Returns:
      [N, A, D] edited latents ``z[n] + alphas[.., a] * direction`` (rescaled with ``keep_norm``).
    """
    z = jnp.asarray(z)
    direction = jnp.asarray(direction, dtype=z.dtype)
    alphas = jnp.asarray(alphas, dtype=z.dtype)
    if z.ndim != 2:
        raise ValueError(f"z must be [N, D], got shape {z.shape}")
    if direction.shape != z.shape[1:]:
        raise ValueError(f"direction must be [D] = [{z.shape[1]}], got shape {direction.shape}")
    if alphas.ndim == 1:
        alphas = jnp.broadcast_to(alphas, (z.shape[0], alphas.shape[0]))
    if alphas.ndim != 2 or alphas.shape[0] != z.shape[0]:
        raise ValueError(f"alphas must be [A] or [N, A] with N = {z.shape[0]}, got shape {alphas.shape}")
    edited = z[:, None, :] + alphas[..., None] * direction
    if keep_norm:
        base_norm = jnp.linalg.norm(z, axis=-1)[:, None, None]
        edited_norm = jnp.linalg.norm(edited, axis=-1, keepdims=True)
        edited = edited * base_norm / jnp.maximum(edited_norm, jnp.finfo(z.dtype).tiny)
    return edited


def project_out(primal: jax.Array, conditions: jax.Array) -> jax.Array:
    """The component of ``primal`` orthogonal to the span of the rows of ``conditions`` (jit-able).

    Args:
      primal: [D] vector.
      conditions: [K, D] vectors spanning the subspace to remove (any K >= 1, dependent rows
        allowed; directions whose singular value is below ``max(K, D) * eps * s_max`` count as
        absent, as in numpy's ``matrix_rank``).

    Returns:
      [D] ``primal - P primal``, with P the orthogonal projector onto the span of the conditions;
      the same as the residual of the least-squares fit of ``primal`` by the conditions.
    """
    primal = jnp.asarray(primal)
    conditions = jnp.asarray(conditions, dtype=primal.dtype)
    basis, singular_values, _ = jnp.linalg.svd(conditions.T, full_matrices=False)  # [D, K], [K]
    tolerance = max(conditions.shape) * jnp.finfo(primal.dtype).eps * singular_values[0]
    basis = basis * (singular_values > tolerance)
    return primal - basis @ (basis.T @ primal)


def conditional(primal: jax.Array, *conditions: jax.Array) -> jax.Array:
    """Unit direction that moves the primal quantity while holding the condition quantities.

    Args:
      primal: [D] normal of the quantity to change.
      *conditions: any number of [D] normals of quantities to hold.

    Returns:
      [D] unit vector along the part of ``primal`` orthogonal to every condition (``primal``
      normalised when there are no conditions).

    Raises:
      ValueError: shapes differ, or ``primal`` lies (numerically) in the span of the conditions,
        so no direction changes it while holding them.
    """
    primal = jnp.asarray(primal)
    if primal.ndim != 1:
        raise ValueError(f"primal must be a [D] vector, got shape {primal.shape}")
    for index, condition in enumerate(conditions):
        if jnp.shape(condition) != primal.shape:
            raise ValueError(f"condition {index} has shape {jnp.shape(condition)}, primal has {primal.shape}")
    residual = project_out(primal, jnp.stack(conditions)) if conditions else primal
    residual_norm = jnp.linalg.norm(residual)
    if not float(residual_norm) > 1e-6 * float(jnp.linalg.norm(primal)):
        raise ValueError(
            "the primal direction lies in the span of the condition directions: no edit changes it "
            "while holding all of them; hold fewer quantities"
        )
    return residual / residual_norm
