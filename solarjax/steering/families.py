"""One interface to the three steering families: latents [N, D] -> edited latents [N, A, D].

    latents = steering.steer_latents("local", generator, directions, z, "tuf", hold=("psep",),
                                     alphas=np.linspace(-3, 3, 13))          # [N, 13, D]

* ``paper``: the global SVM normal of the target (projected off the held quantities' normals),
  ``z + alpha n``;
* ``piecewise``: the same with the boundary of the half-space of the split boundary (leading
  polarity) each base latent lies on (`Directions.piecewise_direction`);
* ``local``: the path along the gradient of the smooth quantity (`solarjax.steering.local`), alpha
  being its signed length.

With ``keep_norm`` (the default) paper and piecewise edits are rescaled to the base latent's
norm (the Gaussian shell); the local path always stays on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from solarjax.steering import local
from solarjax.steering.directions import Directions, as_generator, latent_quantities

METHODS = ("paper", "piecewise", "local")


def check_method(method: str, directions: Directions | None) -> None:
    """Raises ValueError for an unknown method or one the directions cannot serve."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method in ("paper", "piecewise") and directions is None:
        raise ValueError(f"method {method!r} needs fitted directions")
    if method == "piecewise" and not directions.has_piecewise:
        raise ValueError("these directions have no piecewise boundaries: fit them again (solarjax steer fit)")


def linear_edit(z: np.ndarray, directions: np.ndarray, alphas: np.ndarray, keep_norm: bool = True) -> np.ndarray:
    """[N, A, D] ``z[n] + alphas[a] * directions[n]`` for per-latent directions [N, D] (rescaled to |z[n]|)."""
    z = np.asarray(z, np.float64)
    edited = z[:, None, :] + np.asarray(alphas, np.float64)[None, :, None] * np.asarray(directions, np.float64)[:, None]
    if keep_norm:
        edited *= np.linalg.norm(z, axis=1)[:, None, None] / np.maximum(
            np.linalg.norm(edited, axis=-1, keepdims=True), 1e-30
        )
    return edited.astype(np.float32)


def steer_traversal(
    method: str,
    generator: Any,
    directions: Directions | None,
    z: np.ndarray,
    target: str,
    hold: Sequence[str] = (),
    alphas: Sequence[float] = np.linspace(-3.0, 3.0, 13),
    keep_norm: bool = True,
    step: float = local.DEFAULT_STEP,
    also_differentiate: Sequence[str] = (),
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Edited latents [N, A, D] and the exact quantities of their patches, name -> [N, A].

    Args:
      method: 'paper', 'piecewise' or 'local'.
      generator: anything `solarjax.steering.as_generator` accepts.
      directions: fitted `Directions` of this generator (needed by paper and piecewise).
      z: [N, D] base latents.
      target: quantity to raise (positive alpha).
      hold: quantities to hold.
      alphas: [A] step sizes (paper, piecewise) or signed path lengths (local), latent units.
      keep_norm: rescale paper and piecewise edits to the base latent's norm.
      step: path length of one local step.
      also_differentiate: local only: quantities differentiated but not held (shares compiled programs).
    """
    generator = as_generator(generator)
    check_method(method, directions)
    z = np.asarray(z, np.float32)
    alphas = np.asarray(alphas, np.float64)
    hold = tuple(h for h in hold if h != target)
    if method == "local":
        return local.local_traversal(
            generator, z, target, hold, alphas, step=step, also_differentiate=also_differentiate
        )
    if method == "paper":
        direction = np.broadcast_to(directions.direction(target, hold), z.shape)
    else:
        direction = directions.piecewise_direction(target, z, hold)
    latents = linear_edit(z, direction, alphas, keep_norm)
    values = latent_quantities(generator, latents.reshape(-1, z.shape[1]))
    return latents, {name: v.reshape(len(z), len(alphas)) for name, v in values.items()}


def steer_latents(
    method: str,
    generator: Any,
    directions: Directions | None,
    z: np.ndarray,
    target: str,
    hold: Sequence[str] = (),
    alphas: Sequence[float] = np.linspace(-3.0, 3.0, 13),
    keep_norm: bool = True,
    step: float = local.DEFAULT_STEP,
    also_differentiate: Sequence[str] = (),
) -> np.ndarray:
    """[N, A, D] edited latents of one family (see `steer_traversal`, which also measures them)."""
    generator = as_generator(generator)
    check_method(method, directions)
    z = np.asarray(z, np.float32)
    hold = tuple(h for h in hold if h != target)
    if method == "local":
        return local.local_path(generator, z, target, hold, alphas, step=step, also_differentiate=also_differentiate)
    direction = (
        np.broadcast_to(directions.direction(target, hold), z.shape)
        if method == "paper"
        else directions.piecewise_direction(target, z, hold)
    )
    return linear_edit(z, direction, np.asarray(alphas, np.float64), keep_norm)


def steer_along(
    method: str,
    generator: Any,
    directions: Directions | None,
    z: np.ndarray,
    target: str,
    request: tuple[str, float],
    hold: Sequence[str] = (),
    scales: dict[str, float] | None = None,
    alphas: Sequence[float] = np.linspace(-3.0, 3.0, 25),
    tolerance: float = 0.05,
    keep_norm: bool = True,
) -> dict[str, Any]:
    """Moves each latent along one family's traversal of ``target`` to the alpha closest to a requested value.

    Args:
      request: ('rel', v) for (1 + v) times the quantity at z, or ('abs', t) (`solarjax.steering.parse_target`).
      scales: name -> prior standard deviation: a request is met when |q - t| <= tolerance *
        max(|t|, 0.1 * scale), as in `solarjax.steering.steer_to` (default: ``directions.std``).
      alphas: [A] candidate alphas (must contain 0).

    Returns:
      {'latents' [N, D], 'alpha' [N], 'targets' [N], 'initial' and 'reached' (name -> [N] exact
      quantities), 'relative_error' [N], 'success' [N] bool}.
    """
    from solarjax.steering.target import SCALE_FLOOR

    alphas = np.asarray(alphas, np.float64)
    zero = np.flatnonzero(np.isclose(alphas, 0.0))
    if not len(zero):
        raise ValueError(f"alphas must contain 0, got {alphas}")
    kind, value = request
    if kind not in ("rel", "abs"):
        raise ValueError(f"request must be ('rel', v) or ('abs', t), got {request!r}")
    scales = scales if scales is not None else (directions.std if directions is not None else None)
    if scales is None or target not in scales:
        raise ValueError(f"no prior scale for {target!r}: pass scales (e.g. steering.prior_scales(generator))")
    latents, values = steer_traversal(method, generator, directions, z, target, hold, alphas, keep_norm)
    initial = {name: v[:, zero[0]] for name, v in values.items()}
    targets = (1.0 + value) * initial[target] if kind == "rel" else np.full(len(z), float(value))
    scale = np.maximum(np.abs(targets), SCALE_FLOOR * scales[target])
    error = (values[target] - targets[:, None]) / scale[:, None]
    best = np.argmin(np.where(np.isfinite(error), np.abs(error), np.inf), axis=1)
    rows = np.arange(len(z))
    chosen_error = error[rows, best]
    return {
        "latents": latents[rows, best],
        "alpha": alphas[best],
        "targets": targets,
        "initial": initial,
        "reached": {name: v[rows, best] for name, v in values.items()},
        "relative_error": chosen_error,
        "success": np.abs(chosen_error) <= tolerance,
    }
