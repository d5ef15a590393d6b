"""Local steering: follow the gradient of a smooth quantity along a path on the Gaussian shell.

A global linear normal cannot order a quantity that is even in z (an odd generator makes every
unsigned quantity even) or that depends on |z|. The local family instead moves each latent along
the direction that raises the quantity *where that latent is*::

    path = steering.local_path(generator, z, "tuf", hold=("psep",), alphas=np.linspace(-3, 3, 13))
    # [N, 13, D]: alpha = signed path length in latent units, alpha = 0 is z itself

One step of size h from z (all per latent, vmapped; the whole path is one jitted ``lax.scan``):

1. g = grad_z q~(G(z)) of the target's smooth quantity (`solarjax.physics.smooth_quantities`) and
   the gradients of the held quantities, from one forward pass and one reverse pass per row: the
   held rows only when something is held, the guard's rows only where it can act (with nothing
   held and both polarities present a step costs one forward and one reverse pass);
2. d = the part of g orthogonal to the span of the held gradients and of z (least squares,
   `solarjax.steering.edit.project_out`): to first order d changes no held quantity and not |z|;
3. a correction c = -J+ (h~(z) - h~(z0)) with J the held gradients made tangent to the shell,
   which pulls the held smooth quantities back to their values at the start (it is orthogonal to
   d, so it does not count as path length; capped at the step length);
4. z <- z + sign * h * d / |d| + c, then rescaled to the norm of the starting latent.

Polarity guard (``keep_polarities``, the default): every exact quantity is undefined once a patch
loses its last pixel of one polarity, and lowering flux or area drives paths there (on the demo GAN
14% of the TUF and 26% of the area paths ended undefined). While the smooth area of one polarity
(`polarity_areas`) is below `POLARITY_FLOOR` and the step would shrink it further, its gradient
joins the held ones and the correction pulls it back up to the floor; the path then changes the
target through the other polarity or the field strength, or stops where nothing else is left.

Realism guard (``critic``, off by default): the GAN's discriminator logit (`solarjax.steering.critic`) is a
third guarded value with its value at the start of the path as its floor: where a step would lower it at
or below the floor, its gradient joins the held ones and the correction pulls it back up.

Positive alpha raises the target, negative lowers it. Where d vanishes (the target cannot move
while holding the others) the latent stays put. Latents for alphas between the grid points of the
path are linearly interpolated and put back on the shell.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from solarjax import physics, sharding
from solarjax.models.gan import batch_bucket
from solarjax.steering.directions import as_generator, device_multiple
from solarjax.steering.edit import project_out

DEFAULT_STEP = 0.5
"""Path length of one step, in latent units (alpha units)."""
BATCH_SIZE = 64
"""Latents per jitted program (rounded to the device count; the last batch is padded)."""
POLARITY_FLOOR = 0.003
"""Smallest smooth area of either polarity (fraction of the patch, about 50 of 128 x 128 pixels) the
polarity guard lets a path go below."""
POLARITY_THRESHOLD = 0.15
"""Polarity threshold of the guard's smooth areas (normalised field; 150 G, as `solarjax.physics`)."""
POLARITY_SHARPNESS = 200.0
"""Logistic slope of the guard's smooth areas (per unit normalised field; a transition about +-10 G wide, so
the smooth area follows the exact pixel count and an empty patch's quiet pixels add almost nothing)."""


def polarity_areas(images: jax.Array) -> jax.Array:
    """[N, 2] smooth areas (fraction of pixels) of the positive and negative polarity of images [N, H, W, 1]:
    the means of sigmoid(k (s - th)) and sigmoid(k (-s - th)), k = `POLARITY_SHARPNESS`."""
    s = images.reshape(images.shape[0], -1)
    positive = jax.nn.sigmoid(POLARITY_SHARPNESS * (s - POLARITY_THRESHOLD)).mean(axis=1)
    negative = jax.nn.sigmoid(POLARITY_SHARPNESS * (-s - POLARITY_THRESHOLD)).mean(axis=1)
    return jnp.stack([positive, negative], axis=1)


def check_names(target: str, hold: Sequence[str]) -> tuple[str, ...]:
    """The held names without the target, checked against `solarjax.physics.QUANTITY_NAMES`."""
    for name in (target, *hold):
        if name not in physics.QUANTITY_NAMES:
            raise ValueError(f"unknown quantity {name!r}; known: {', '.join(physics.QUANTITY_NAMES)}")
    return tuple(h for h in dict.fromkeys(hold) if h != target)


def local_direction(apply_fn, params, z: jax.Array, target: str, hold: Sequence[str] = ()) -> jax.Array:
    """[D] unit direction raising ``target`` at one latent z [D], tangent to its shell, held quantities' gradients
    projected out (zero where nothing is left); differentiable and vmappable."""
    names = (target, *hold)
    weights = jnp.zeros(len(names)).at[0].set(1.0)
    mask = jnp.ones(len(names)).at[0].set(0.0)
    direction, _, _, _ = _step_geometry(apply_fn, params, z, names, weights, mask)
    return direction


def _unit_direction(gradient, constraints):
    """The part of gradient [D] orthogonal to the rows of constraints [C, D], unit length (0 where it vanishes)."""
    direction = project_out(gradient, constraints)
    norm = jnp.linalg.norm(direction)
    return jnp.where(norm > 1e-6 * jnp.linalg.norm(gradient), direction / jnp.maximum(norm, 1e-30), 0.0)


def _step_geometry(apply_fn, params, z, names, target_weights, hold_mask, sign=1.0, guard=False):
    """Geometry of one step at latent z [D] over the quantities ``names`` [K].

    The target gradient is ``target_weights @ J`` (J the [K, D] Jacobian of the smooth quantities);
    rows with ``hold_mask`` 1 are held (rows with 0 drop out of the projection: zero rows have zero
    singular values). With ``guard``, the two polarity areas (`polarity_areas`) are held too where one
    is below `POLARITY_FLOOR` and a step of ``sign`` along the direction would shrink it.

    Returns (unit tangent direction [D], masked tangent constraint rows [K + 2, D], deviations of the
    constrained values to correct [K + 2] as (smooth values [K], guard shortfall [2]), images [1, H, W, 1]).
    """

    def smooth(z):
        images = apply_fn(params, z[None])
        values = physics.smooth_quantities(images)
        stacked = jnp.concatenate([jnp.stack([values[n][0] for n in names]), polarity_areas(images)[0]])
        return stacked, (stacked, images)

    jacobian, (stacked, images) = jax.jacrev(smooth, has_aux=True)(z)  # [K + 2, D]
    count = len(names)
    jacobian, guard_jacobian = jacobian[:count], jacobian[count:]
    values, areas = stacked[:count], stacked[count:]
    gradient = target_weights @ jacobian
    held = jacobian * hold_mask[:, None]
    floors = jnp.full(areas.shape, POLARITY_FLOOR, areas.dtype)
    direction, rows_tangent, shortfall = _guarded_geometry(
        z, gradient, held, guard_jacobian, areas, floors, sign, guard
    )
    return direction, rows_tangent, (values, shortfall), images


def _guarded_geometry(z, gradient, held, guard_jacobian, guarded_values, floors, sign, guard):
    """The step's direction and constraints at one latent z [D] from its gradients.

    Args:
      gradient: [D] target gradient; held: [K, D] held gradients (zero rows where not held);
      guard_jacobian: [G, D] gradients of the guarded values (the two `polarity_areas`, then the critic's
        logit when there is a critic); guarded_values: [G] their values; floors: [G] the floors they are kept
        above (`POLARITY_FLOOR`; the critic's starting logit); sign: the step's sign; guard: whether any
        guard is on (static).

    Returns:
      (unit direction [D] orthogonal to the held rows, the active guard rows and z; tangent constraint rows
      [K + G, D] (held, then the active guard rows); guard shortfall [G] below the floors).
    """
    radial = z / jnp.maximum(jnp.linalg.norm(z), 1e-12)
    direction = _unit_direction(gradient, jnp.concatenate([held, radial[None]], axis=0))
    if guard:
        shrinking = sign * (guard_jacobian @ direction) < 0
        active = ((guarded_values <= floors) & shrinking).astype(z.dtype)
        guarded = guard_jacobian * active[:, None]
        direction = _unit_direction(gradient, jnp.concatenate([held, guarded, radial[None]], axis=0))
        shortfall = active * jnp.minimum(guarded_values - floors, 0.0)
    else:
        guarded, shortfall = jnp.zeros_like(guard_jacobian), jnp.zeros_like(guarded_values)
    constraints = jnp.concatenate([held, guarded], axis=0)
    return direction, constraints - (constraints @ radial)[:, None] * radial[None], shortfall


def _correction(held_tangent, deviation, limit):
    """Minimum-norm c with held_tangent @ c = -deviation (least squares over the non-zero rows), its norm
    capped at ``limit``."""
    u, s, vt = jnp.linalg.svd(held_tangent, full_matrices=False)
    tolerance = max(held_tangent.shape) * jnp.finfo(held_tangent.dtype).eps * jnp.maximum(s[0], 1e-30)
    inverse = jnp.where(s > tolerance, 1.0 / jnp.where(s > tolerance, s, 1.0), 0.0)
    c = -vt.T @ (inverse * (u.T @ deviation))
    norm = jnp.linalg.norm(c)
    return c * jnp.minimum(1.0, limit / jnp.maximum(norm, 1e-30))


def _smooth_of_one(apply_fn, params, names, z, critic_fn=None, critic_variables=None):
    """(smooth quantities ``names``, the two `polarity_areas`, then the critic's logit when ``critic_fn`` is given
    [K + G], image [1, H, W, 1]) of one latent z [D]."""
    images = apply_fn(params, z[None])
    values = physics.smooth_quantities(images)
    parts = [jnp.stack([values[n][0] for n in names]), polarity_areas(images)[0]]
    if critic_fn is not None:
        parts.append(jnp.reshape(critic_fn(critic_variables, images), (1,)).astype(parts[0].dtype))
    return jnp.concatenate(parts), images


def _batch_step_geometry(
    apply_fn,
    params,
    z,
    names,
    target_weights,
    hold_mask,
    sign,
    guard,
    critic_fn=None,
    critic_variables=None,
    floors=None,
):
    """`_step_geometry` of a batch z [B, D] with step signs [B], differentiating only what the step uses.

    One forward pass of the generator and one reverse pass for the target gradient; the rows of the held
    quantities' Jacobian only when something is held, one reverse pass per held quantity whatever K is
    (``hold_mask`` is the same for the whole batch, so these are real branches), and the two rows of the
    polarity areas only when some latent of the batch has an area below `POLARITY_FLOOR` (where the guard
    can act). Each latent's path is the one
    `_step_geometry` gives: the Jacobian rows skipped are those it multiplies by zero.

    With ``critic_fn`` (the realism guard) the critic's logit is a third guarded value, kept above its floor
    (``floors`` [B, G], default `POLARITY_FLOOR` for the areas) like the areas.

    Returns (unit directions [B, D], tangent constraint rows [B, K + G, D], (smooth values [B, K], guard
    shortfall [B, G]), images [B, H, W, 1]); G = 2, or 3 with a critic.
    """
    count, (batch, dim) = len(names), z.shape
    guards = 2 + (critic_fn is not None)
    stacked, pullback, images = jax.vjp(
        jax.vmap(
            functools.partial(
                _smooth_of_one, apply_fn, params, names, critic_fn=critic_fn, critic_variables=critic_variables
            )
        ),
        z,
        has_aux=True,
    )
    if floors is None:
        floors = jnp.full((batch, guards), POLARITY_FLOOR, stacked.dtype)
    eye = jnp.eye(count + guards, dtype=stacked.dtype)

    def rows(cotangents):  # [R, K + 2] -> [B, R, D]: the rows of every latent's own Jacobian
        return jax.vmap(lambda c: pullback(jnp.broadcast_to(c, stacked.shape))[0], out_axes=1)(cotangents)

    def every_row():  # the rows of the target and the held quantities, one reverse pass each, in turn
        needed = (hold_mask != 0) | (target_weights != 0)

        def row(k):
            return jax.lax.cond(
                needed[k], lambda: rows(eye[k][None])[:, 0], lambda: jnp.zeros((batch, dim), stacked.dtype)
            )

        jacobian = jnp.moveaxis(jax.lax.map(row, jnp.arange(count)), 0, 1)  # [B, K, D]
        return jnp.einsum("k,bkd->bd", target_weights, jacobian), jacobian * hold_mask[None, :, None]

    def target_row():
        weights = jnp.concatenate([target_weights, jnp.zeros(guards, stacked.dtype)])
        return pullback(jnp.broadcast_to(weights, stacked.shape))[0], jnp.zeros((batch, count, dim), z.dtype)

    gradient, held = jax.lax.cond(jnp.any(hold_mask != 0), every_row, target_row)
    values, guarded = stacked[:, :count], stacked[:, count:]
    if guard:
        guard_jacobian = jax.lax.cond(
            jnp.any(guarded <= floors),
            lambda: rows(eye[count:]),
            lambda: jnp.zeros((batch, guards, dim), z.dtype),
        )
    else:
        guard_jacobian = jnp.zeros((batch, guards, dim), z.dtype)

    geometry = functools.partial(_guarded_geometry, guard=guard)
    direction, constraints, shortfall = jax.vmap(geometry)(z, gradient, held, guard_jacobian, guarded, floors, sign)
    return direction, constraints, (values, shortfall), images[:, 0]


@functools.partial(jax.jit, static_argnames=("apply_fn", "names", "steps", "correct", "guard", "critic_fn"))
def path_program(
    apply_fn,
    params,
    z0,
    step,
    target_weights,
    hold_mask,
    critic_variables=None,
    *,
    names,
    steps,
    correct=True,
    guard=True,
    critic_fn=None,
    active_steps=None,
):
    """Local paths of a batch: z0 [B, D], signed step length [] or [B], target_weights and hold_mask [K] over
    ``names`` (one compiled program per names/steps, whatever is targeted or held); ``guard``: the polarity
    guard (module docstring); ``critic_fn(critic_variables, images) -> logits [N]``: the realism guard (the
    critic's logit kept above its value at the start; `solarjax.steering.critic`), None for none.
    ``active_steps`` (int [], at most ``steps``; None = ``steps``): only the first n steps move and cost
    anything, so paths of every length up to ``steps`` share one compiled program; the latents from index n on
    are the path's end, the quantities at indices n to ``steps - 1`` NaN.

    Returns latents [B, steps + 1, D] and exact quantities name -> [B, steps + 1].
    """
    step = jnp.broadcast_to(jnp.asarray(step, z0.dtype), z0.shape[:1])
    radius = jnp.linalg.norm(z0, axis=1, keepdims=True)
    start = jax.vmap(lambda z: _smooth_of_one(apply_fn, params, names, z, critic_fn, critic_variables)[0])(z0)
    held_start = start[:, : len(names)]
    area_floor = POLARITY_FLOOR if guard else -jnp.inf
    floors = jnp.concatenate([jnp.full((len(z0), 2), area_floor, start.dtype), start[:, len(names) + 2 :]], axis=1)
    any_guard = guard or critic_fn is not None

    def move(z):
        direction, rows, (values, shortfall), images = _batch_step_geometry(
            apply_fn,
            params,
            z,
            names,
            target_weights,
            hold_mask,
            jnp.sign(step),
            any_guard,
            critic_fn,
            critic_variables,
            floors,
        )
        exact = physics.quantities(images)
        moved = z + step[:, None] * direction
        if correct or any_guard:
            held_deviation = hold_mask * (values - held_start) if correct else jnp.zeros_like(values)
            rows = rows if correct else rows.at[:, : len(names)].set(0.0)
            moved = moved + jax.vmap(_correction)(
                rows, jnp.concatenate([held_deviation, shortfall], axis=1), jnp.abs(step)
            )
        moved = moved * radius / jnp.maximum(jnp.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
        return moved, (z, exact)

    quantities = jax.eval_shape(move, z0)[1][1] if active_steps is not None else None

    def stay(z):  # a step past ``active_steps``: the conditional runs this branch alone
        return z, (z, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), quantities))

    def advance(z, index):
        return move(z) if active_steps is None else jax.lax.cond(index < active_steps, move, stay, z)

    last, (visited, exact) = jax.lax.scan(advance, z0, jnp.arange(steps))
    final_exact = physics.quantities(jax.vmap(lambda z: apply_fn(params, z[None])[0])(last))
    latents = jnp.concatenate([jnp.swapaxes(visited, 0, 1), last[:, None]], axis=1)
    return latents, {n: jnp.concatenate([exact[n].T, final_exact[n][:, None]], axis=1) for n in exact}


def path_steps(alpha: float, step: float = DEFAULT_STEP) -> int:
    """Steps of a path of length |alpha| made of equal steps at most ``step`` long (at least 1): the steps
    `local_traversal` takes to its extreme alpha, so a path of this many steps is the one the evaluation
    measured, and a short path costs fewer steps than a fixed count."""
    return max(1, math.ceil(abs(float(alpha)) / step - 1e-9))


def _grid(alphas: np.ndarray, step: float) -> tuple[int, float, int, float]:
    """(steps up, step up, steps down, step down): the fewest steps of at most ``step`` reaching the extremes."""
    top, bottom = max(float(alphas.max()), 0.0), max(-float(alphas.min()), 0.0)
    up = math.ceil(top / step - 1e-9) if top > 0 else 0
    down = math.ceil(bottom / step - 1e-9) if bottom > 0 else 0
    return up, (top / up if up else step), down, (bottom / down if down else step)


def local_traversal(
    generator: Any,
    z: np.ndarray,
    target: str,
    hold: Sequence[str] = (),
    alphas: Sequence[float] = np.linspace(-3.0, 3.0, 13),
    step: float = DEFAULT_STEP,
    correct_held: bool = True,
    batch_size: int = BATCH_SIZE,
    also_differentiate: Sequence[str] = (),
    keep_polarities: bool = True,
    critic: Any = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Latents along local paths and the exact quantities of their patches.

    Args:
      generator: anything `solarjax.steering.as_generator` accepts.
      z: [N, D] base latents.
      target: quantity to raise (positive alpha) or lower (negative alpha).
      hold: quantities whose gradients are projected out (and drift corrected, with ``correct_held``).
      alphas: [A] signed path lengths in latent units.
      step: largest path length of one step; each side of the path uses equal steps that end
        exactly at its extreme alpha.
      correct_held: pull held smooth quantities back to their starting values every step.
      batch_size: the most latents per jitted program; fewer run in one batch of the next power of two (at least
        8), as in `solarjax.steering.directions.map_generated`, so callers with different N share a few shapes.
      also_differentiate: quantities differentiated but not held (they change nothing; paths that share
        the set ``{target, *hold, *also_differentiate}`` and the step counts share one compiled program,
        whichever of its quantities is the target).
      keep_polarities: the polarity guard (module docstring): keep both polarities present.
      critic: a `solarjax.steering.critic.Critic` (or anything with ``apply_fn`` and ``variables``): the
        realism guard, which keeps its logit at least at its value at the start of the path; None for none.

    Returns:
      (latents [N, A, D] float32, exact quantities name -> [N, A], NaN where undefined).
    """
    generator = as_generator(generator)
    hold = check_names(target, hold)
    z = np.asarray(z, np.float32)
    alphas = np.asarray(alphas, np.float64)
    if z.ndim != 2 or z.shape[1] != generator.latent_dim or len(z) == 0:
        raise ValueError(f"z must be [N, {generator.latent_dim}] with N >= 1, got shape {z.shape}")
    if alphas.ndim != 1 or len(alphas) == 0 or not np.all(np.isfinite(alphas)):
        raise ValueError(f"alphas must be a non-empty [A] vector of finite values, got {alphas!r}")
    if not step > 0:
        raise ValueError(f"step must be positive, got {step}")
    up, up_step, down, down_step = _grid(alphas, step)
    wanted = {target, *hold, *check_names(target, also_differentiate)}
    names = tuple(n for n in physics.QUANTITY_NAMES if n in wanted)  # one order, whatever the target
    weights = jnp.asarray([float(n == target) for n in names], jnp.float32)
    mask = jnp.asarray([float(n in hold) for n in names], jnp.float32)
    mesh = sharding.make_data_mesh()
    batch = device_multiple(min(batch_size, batch_bucket(len(z))), mesh)  # a few shapes only
    params = jax.device_put(generator.params, sharding.replicated(mesh))
    critic_variables = jax.device_put(critic.variables, sharding.replicated(mesh)) if critic is not None else None
    latents, exact = [], []
    for start in range(0, len(z), batch):
        chunk = z[start : start + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        padded = jax.device_put(padded, sharding.batch_sharded(mesh))
        sides = []
        for steps, signed in ((down, -down_step), (up, up_step)):
            side = path_program(
                generator.apply_fn,
                params,
                padded,
                jnp.float32(signed),
                weights,
                mask,
                critic_variables,
                names=names,
                steps=steps,
                correct=bool(correct_held),
                guard=bool(keep_polarities),
                critic_fn=critic.apply_fn if critic is not None else None,
            )
            sides.append(jax.tree.map(lambda leaf: np.asarray(leaf)[: len(chunk)], side))
        (down_z, down_q), (up_z, up_q) = sides
        latents.append(np.concatenate([down_z[:, ::-1], up_z[:, 1:]], axis=1))
        exact.append({n: np.concatenate([down_q[n][:, ::-1], up_q[n][:, 1:]], axis=1) for n in up_q})
    path = np.concatenate(latents)  # [N, down + 1 + up, D]
    path_q = {n: np.concatenate([e[n] for e in exact]) for n in exact[0]}
    grid = np.concatenate([-down_step * np.arange(down, 0, -1), up_step * np.arange(up + 1)])
    position = np.interp(alphas, grid, np.arange(len(grid)))
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, len(grid) - 1)
    weight = (position - lower)[None, :, None]
    on_grid = np.abs(position - np.round(position)) < 1e-6
    result = (1.0 - weight) * path[:, lower] + weight * path[:, upper]
    radius = np.linalg.norm(z, axis=1)[:, None, None]
    result = (result * radius / np.maximum(np.linalg.norm(result, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
    if on_grid.all():
        index = np.round(position).astype(int)
        values = {n: v[:, index] for n, v in path_q.items()}
    else:
        from solarjax.steering.directions import latent_quantities

        flat = latent_quantities(generator, result.reshape(-1, z.shape[1]))
        values = {n: v.reshape(len(z), len(alphas)) for n, v in flat.items()}
    return result, values


def local_path(
    generator: Any,
    z: np.ndarray,
    target: str,
    hold: Sequence[str] = (),
    alphas: Sequence[float] = np.linspace(-3.0, 3.0, 13),
    step: float = DEFAULT_STEP,
    correct_held: bool = True,
    keep_polarities: bool = True,
    also_differentiate: Sequence[str] = (),
) -> np.ndarray:
    """[N, A, D] latents moved by signed path length alphas [A] along the local paths of ``target``
    (``hold`` held); see `local_traversal` (and its ``also_differentiate``) and the module docstring."""
    latents, _ = local_traversal(
        generator,
        z,
        target,
        hold,
        alphas,
        step,
        correct_held,
        also_differentiate=also_differentiate,
        keep_polarities=keep_polarities,
    )
    return latents
