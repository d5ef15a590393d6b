"""Inversion of real patches: the latent whose generated patch reproduces an observed SHARP patch.

The authors' objective: a masked mean squared error between G(z) and the patch s, with weight 1
where |s| > 0.05 (50 G) and 0.5 elsewhere, minimised from several random starts z ~ N(0, I), the
best start kept. They ran SGD (lr 0.01, momentum 0.9, 1000 iterations, 10 restarts) one patch and
one restart at a time; here all patches and restarts of a chunk are one batch of latents optimised
with Adam inside a single jitted XLA program (``lax.scan`` over the steps), sharded over devices::

    result = invert(images, generator)                      # images [N, 128, 128, 1]
    result.latents, result.reconstructions, result.error
    result.quantities_real["tuf"], result.quantities_reconstructed["tuf"]
    result, failures = invert_files(["hmi.sharp_cea_720s.1449....Br.fits"], generator)

Each patch's starting latents depend only on ``seed`` and the patch's position in the input, not
on how the input is chunked. With a latent for a real patch, it can be steered like any other
(`solarjax.steering.edit`, `steer_to`) and searched again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from solarjax import physics, sharding
from solarjax.steering.directions import as_generator, device_multiple

SIGNAL_THRESHOLD = 0.05
"""|s| above which a pixel counts fully in the masked MSE (0.05 = 50 G)."""
BACKGROUND_WEIGHT = 0.5
"""Weight of the other pixels."""


@dataclasses.dataclass(frozen=True)
class InversionResult:
    """Best latents found for a batch of patches.

    Attributes:
      latents: [N, D] best latent of each patch (lowest final masked MSE over the restarts).
      reconstructions: [N, 128, 128, 1] G(latents).
      error: [N] masked MSE of the reconstructions.
      restart_errors: [N, R] final masked MSE of every restart.
      quantities_real: name -> [N] exact quantities of the input patches.
      quantities_reconstructed: name -> [N] exact quantities of the reconstructions.
    """

    latents: np.ndarray
    reconstructions: np.ndarray
    error: np.ndarray
    restart_errors: np.ndarray
    quantities_real: dict[str, np.ndarray]
    quantities_reconstructed: dict[str, np.ndarray]


def masked_mse(reconstructions: jax.Array, targets: jax.Array) -> jax.Array:
    """The paper's inversion loss per patch.

    Args:
      reconstructions, targets: [N, H, W, 1] normalised patches.

    Returns:
      [N] mean over pixels of ``w * (reconstruction - target)^2`` with w = 1 where
      |target| > 0.05 and 0.5 elsewhere.
    """
    weight = jnp.where(jnp.abs(targets) > SIGNAL_THRESHOLD, 1.0, BACKGROUND_WEIGHT)
    return jnp.mean(weight * (reconstructions - targets) ** 2, axis=(1, 2, 3))


def check_images(images: Any, what: str = "images") -> np.ndarray:
    """Patches as float32 [N, 128, 128, 1], or a ValueError naming ``what`` and the problem."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != (128, 128, 1) or len(images) == 0:
        raise ValueError(
            f"{what}: expected patches [N, 128, 128] or [N, 128, 128, 1] with N >= 1, got shape {images.shape}"
        )
    bad = ~np.isfinite(images)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} non-finite pixels (NaN must be set to 0 by the preprocessing)")
    largest = float(np.abs(images).max())
    if largest > 1.0 + 1e-6:
        raise ValueError(
            f"{what}: max |s| = {largest:.3g} > 1: patches must be normalised B / 1000 G clipped to [-1, 1] "
            "(solarjax.data.preprocess)"
        )
    return images


def invert(
    images: Any,
    generator: Any,
    restarts: int = 10,
    steps: int = 1000,
    learning_rate: float = 0.05,
    seed: int = 0,
    batch_size: int = 32,
) -> InversionResult:
    """Finds for every patch the latent z whose G(z) best reproduces it.

    Args:
      images: [N, 128, 128(, 1)] normalised patches (B / 1000 G in [-1, 1]).
      generator: anything `solarjax.steering.as_generator` accepts.
      restarts: random starting latents per patch; the best final one is kept.
      steps: Adam steps.
      learning_rate: Adam's learning rate.
      seed: seeds the starting latents.
      batch_size: patches per XLA program (times ``restarts`` latents), rounded up to a multiple
        of the device count; the last chunk is padded so one shape compiles.

    Returns:
      An `InversionResult`.
    """
    generator = as_generator(generator)
    images = check_images(images)
    if restarts < 1 or steps < 1:
        raise ValueError(f"need restarts >= 1 and steps >= 1, got restarts={restarts}, steps={steps}")
    mesh = sharding.make_data_mesh()
    batch_size = device_multiple(min(batch_size, len(images)), mesh)
    batch = sharding.batch_sharded(mesh)
    params = jax.device_put(generator.params, sharding.replicated(mesh))
    key = jax.random.key(seed)
    pieces = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        padded = np.zeros((batch_size,) + images.shape[1:], np.float32)
        padded[: len(chunk)] = chunk
        indices = np.arange(start, start + batch_size, dtype=np.int32)
        out = _invert_program(
            generator.apply_fn,
            params,
            jax.device_put(padded, batch),
            jax.device_put(indices, batch),
            key,
            jnp.float32(learning_rate),
            latent_dim=generator.latent_dim,
            restarts=restarts,
            steps=steps,
        )
        pieces.append([np.asarray(x)[: len(chunk)] for x in out])
    latents, reconstructions, restart_errors = (np.concatenate(parts) for parts in zip(*pieces))
    return InversionResult(
        latents=latents,
        reconstructions=reconstructions,
        error=restart_errors.min(axis=1),
        restart_errors=restart_errors,
        quantities_real=_exact_quantities(images),
        quantities_reconstructed=_exact_quantities(reconstructions),
    )


def invert_files(
    paths: Sequence[str | os.PathLike], generator: Any, **invert_kwargs
) -> tuple[InversionResult | None, list[tuple[str, str]]]:
    """`invert` for SHARP FITS files (Br), read and preprocessed as the method does.

    Returns:
      (result for the readable files in the given order, or None if none could be read;
      [(path, reason)] for the files that could not be read).
    """
    from solarjax.data import SharpReadError, preprocess_patch, read_sharp

    images, failures = [], []
    for path in paths:
        try:
            images.append(preprocess_patch(read_sharp(path)).image)
        except SharpReadError as err:
            failures.append((str(path), err.reason))
    result = invert(np.stack(images), generator, **invert_kwargs) if images else None
    return result, failures


@jax.jit
def _exact_quantities_program(images):
    return physics.quantities(images)


def _exact_quantities(images: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.asarray(v) for name, v in _exact_quantities_program(images).items()}


@functools.partial(jax.jit, static_argnames=("apply_fn", "latent_dim", "restarts", "steps"))
def _invert_program(apply_fn, params, targets, indices, key, learning_rate, *, latent_dim, restarts, steps):
    """Inverts a chunk: targets [B, H, W, 1] -> (best z [B, D], G(best z), final errors [B, R])."""
    count = targets.shape[0]
    starts = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(key, i), (restarts, latent_dim)))(indices)
    repeated = jnp.repeat(targets, restarts, axis=0)  # [B * R, H, W, 1]
    optimiser = optax.adam(learning_rate)

    def loss(z):
        return jnp.sum(masked_mse(apply_fn(params, z), repeated))

    def step(state, _):
        z, opt_state = state
        updates, opt_state = optimiser.update(jax.grad(loss)(z), opt_state)
        return (optax.apply_updates(z, updates), opt_state), None

    z = starts.reshape(count * restarts, latent_dim)
    (z, _), _ = jax.lax.scan(step, (z, optimiser.init(z)), length=steps)
    errors = masked_mse(apply_fn(params, z), repeated).reshape(count, restarts)
    best = jnp.argmin(errors, axis=1)
    best_z = z.reshape(count, restarts, latent_dim)[jnp.arange(count), best]
    return best_z, apply_fn(params, best_z), errors
