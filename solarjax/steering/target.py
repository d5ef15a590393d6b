"""Differentiable targeting: optimise latents until the generated patches have the requested physics.

Beyond the paper's linear edits: because the physics is differentiable (`solarjax.physics.
smooth_quantities`), a batch of latents can be optimised directly::

    result = steer_to(generator, z0, targets={"tuf": ("rel", 0.5)}, hold=["psep"])
    result.images, result.quantities["tuf"], result.success            # +50% TUF, same PSEP

Targets. ``('rel', v)`` asks for ``(1 + v)`` times the quantity of G(z0) (``('rel', 0.5)`` is
"+50%"); ``('abs', t)`` asks for the value t (in the units of `solarjax.physics.quantities`).

Loss of one latent z (summed over the batch; every latent is optimised independently)::

    sum_targets ((q~(z) - t~) / scale)^2 + sum_held ((q~(z) - q~(z0)) / scale)^2
        + prior_weight * (|z| - sqrt(D))^2

where q~ are the smooth quantities. The smooth quantities differ slightly from the exact ones, so
the smooth target t~ starts at ``t + q~(z0) - q(z0)`` and is corrected in rounds: after every
``steps / rounds`` Adam steps (one optimiser run, its state kept) t~ moves by the remaining error
of the exact quantity, ``t~ += t - q(z)``. The prior term keeps z on the Gaussian shell |z| ~ sqrt(D), where
the generator was trained. ``scale = max(|t|, floor)`` for a target and ``max(|q(z0)|, floor)``
for a held quantity, with ``floor = 0.1 *`` the quantity's standard deviation under the prior, so
quantities near zero (net flux, tilt, leading polarity) do not blow up the relative error.

Selection on the exact quantities (``refine=True``). The smooth surrogate and the last round's
overshoot make the final latent miss requests that an earlier or nearby latent meets. A met
request keeps the last round's latent; a missed one gets the best candidate by the exact
quantities among the latents at `TRAJECTORY_CANDIDATES` evenly spaced steps of every round (the
last one its end: a path that passes through the target on its way is caught there) and the points of an exact line search
along the final displacement, z0 + s (z - z0) for s in `LINE_SEARCH`, each rescaled to the norm
of z (the shell the prior term keeps z on): among candidates that meet every target the one with
the smallest largest held change, otherwise the one with the smallest largest target error. It
costs one generator forward pass per candidate (about a tenth of the optimisation at 150 steps).

A request is met when the exact quantity is within ``tolerance`` (5%) of the target, relative to
the same scale: ``|q(z) - t| <= tolerance * max(|t|, floor)``. The whole optimisation (all rounds,
steps and the final exact quantities) is one jitted XLA program, the batch vmapped and sharded over
the devices.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from solarjax import physics, sharding
from solarjax.steering.directions import as_generator, device_multiple, latent_quantities, sample_latents

TARGET_KINDS = ("rel", "abs")
SCALE_FLOOR = 0.1
"""Relative errors are taken against max(|value|, SCALE_FLOOR * prior standard deviation)."""
LINE_SEARCH = (0.5, 0.7, 0.85, 0.93, 1.07, 1.15, 1.3, 1.5)
"""Fractions s of the final displacement z - z0 tried by the exact line search (1 is the last round's latent)."""
TRAJECTORY_CANDIDATES = 5
"""Latents per round (evenly spaced steps, the round's end last) among the exact selection's candidates."""
MIN_BATCH = 8
"""Fewer latents are padded to this many (repeating the last), so small requests share one compiled program."""


@dataclasses.dataclass(frozen=True)
class SteeringResult:
    """What `steer_to` reached.

    Attributes:
      latents: [N, D] optimised latents.
      images: [N, 128, 128, 1] their patches, s = B / 1000 G.
      quantities: name -> [N] exact quantities of the patches (every quantity of the physics module).
      initial_quantities: name -> [N] exact quantities of G(z0).
      targets: name -> [N] requested values (NaN where the request is undefined, e.g. a relative
        change of a quantity undefined at z0).
      relative_error: name -> [N] ``(q - t) / max(|t|, floor)`` for every target.
      held_change: name -> [N] ``(q - q0) / max(|q0|, floor)`` for every held quantity.
      success: [N] every target met within the tolerance.
      loss: [steps] mean loss over the batch after each step.
      unrefined_success: [N] ``success`` of the last round's latent, before the selection on the
        exact quantities (equal to ``success`` with ``refine=False``).
    """

    latents: np.ndarray
    images: np.ndarray
    quantities: dict[str, np.ndarray]
    initial_quantities: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    relative_error: dict[str, np.ndarray]
    held_change: dict[str, np.ndarray]
    success: np.ndarray
    loss: np.ndarray
    unrefined_success: np.ndarray


def parse_target(text: str) -> tuple[str, float]:
    """A target as written on a command line: '+50%' -> ('rel', 0.5), '-20%' -> ('rel', -0.2),
    'x2' -> ('rel', 1.0), '0.3' -> ('abs', 0.3)."""
    text = text.strip()
    percent = re.fullmatch(r"([+-]\d+(?:\.\d*)?)%", text)
    if percent:
        return "rel", float(percent.group(1)) / 100.0
    factor = re.fullmatch(r"[x*](\d+(?:\.\d*)?)", text)
    if factor:
        return "rel", float(factor.group(1)) - 1.0
    try:
        return "abs", float(text)
    except ValueError:
        raise ValueError(
            f"target {text!r} is not a relative change ('+50%', '-20%', 'x2') or an absolute value ('0.3')"
        ) from None


def prior_scales(generator: Any, n: int = 512, seed: int = 0) -> dict[str, float]:
    """Standard deviation of every exact quantity under the prior (n latents from N(0, I))."""
    generator = as_generator(generator)
    values = latent_quantities(generator, sample_latents(n, generator.latent_dim, seed))
    return {name: float(np.nanstd(values[name])) for name in physics.QUANTITY_NAMES}


def steer_to(
    generator: Any,
    z0: np.ndarray,
    targets: Mapping[str, tuple[str, float]],
    hold: Sequence[str] = (),
    steps: int = 300,
    learning_rate: float = 0.05,
    prior_weight: float = 0.05,
    rounds: int = 3,
    tolerance: float = 0.05,
    scales: Mapping[str, float] | None = None,
    refine: bool = True,
) -> SteeringResult:
    """Optimises a batch of latents so that their patches reach physical targets.

    Args:
      generator: anything `solarjax.steering.as_generator` accepts.
      z0: [N, D] starting latents.
      targets: quantity name -> ('rel', v) or ('abs', t) (see the module docstring).
      hold: quantity names to keep at their value at z0.
      steps: Adam steps in all, a multiple of ``rounds``.
      learning_rate: Adam's initial learning rate (cosine decay to 5% over all steps).
      prior_weight: weight of the (|z| - sqrt(D))^2 term.
      rounds: rounds of smooth-target correction (see the module docstring); 1 disables it.
      tolerance: relative tolerance of a met request.
      scales: quantity name -> standard deviation under the prior (e.g. ``Directions.std``);
        computed from 512 prior latents when not given.
      refine: choose the returned latent among the round ends and an exact line search (see the
        module docstring); False returns the last round's latent.

    Returns:
      A `SteeringResult`.
    """
    generator = as_generator(generator)
    z0 = np.asarray(z0, np.float32)
    if z0.ndim != 2 or z0.shape[1] != generator.latent_dim:
        raise ValueError(f"z0 must be [N, {generator.latent_dim}], got shape {z0.shape}")
    _check_requests(targets, hold)
    if rounds < 1 or steps < rounds or steps % rounds:
        raise ValueError(f"steps must be a positive multiple of rounds >= 1, got steps={steps}, rounds={rounds}")
    scales = dict(scales) if scales is not None else prior_scales(generator)
    target_names, hold_names = tuple(targets), tuple(hold)
    for name in target_names + hold_names:
        if not (name in scales and math.isfinite(scales[name]) and scales[name] > 0):
            raise ValueError(
                f"no positive finite prior scale for {name!r} (got {scales.get(name)!r}): pass "
                "scales={name: standard deviation under the prior}"
            )

    initial = latent_quantities(generator, z0)
    target_values = np.stack([_target_value(initial[name], *targets[name]) for name in target_names], axis=1)
    target_floor = np.array([SCALE_FLOOR * scales[name] for name in target_names])
    hold_floor = np.array([SCALE_FLOOR * scales[name] for name in hold_names]).reshape(len(hold_names))

    mesh = sharding.make_data_mesh()
    padded_n = device_multiple(max(len(z0), MIN_BATCH), mesh)

    def pad(x):  # repeat the last row up to MIN_BATCH and a multiple of the device count, split over devices
        return jax.device_put(
            np.concatenate([x, np.repeat(x[-1:], padded_n - len(x), axis=0)]), sharding.batch_sharded(mesh)
        )

    params = jax.device_put(generator.params, sharding.replicated(mesh))
    names = physics.QUANTITY_NAMES  # every quantity in the program; masks say which are targeted or held
    requested = np.full((len(z0), len(names)), np.nan, np.float32)
    for i, name in enumerate(target_names):
        requested[:, names.index(name)] = target_values[:, i]
    floors = {**dict(zip(target_names, target_floor)), **dict(zip(hold_names, hold_floor))}
    latents, images, exact, loss, unrefined_met = _steer_program(
        generator.apply_fn,
        params,
        pad(z0),
        pad(requested),
        jnp.asarray([float(n in target_names) for n in names], jnp.float32),
        jnp.asarray([float(n in hold_names) for n in names], jnp.float32),
        jnp.asarray([floors.get(n, 1.0) for n in names], jnp.float32),
        jnp.float32(learning_rate),
        jnp.float32(prior_weight),
        jnp.float32(tolerance),
        steps_per_round=steps // rounds,
        rounds=rounds,
        line_search=LINE_SEARCH if refine else (),
        per_round=TRAJECTORY_CANDIDATES if refine else 1,
    )
    count = len(z0)
    reached = {name: np.asarray(v)[:count] for name, v in exact.items()}
    relative_error = {
        name: (reached[name] - target_values[:, i]) / np.maximum(np.abs(target_values[:, i]), target_floor[i])
        for i, name in enumerate(target_names)
    }
    held_change = {
        name: (reached[name] - initial[name]) / np.maximum(np.abs(initial[name]), hold_floor[i])
        for i, name in enumerate(hold_names)
    }
    met = np.stack([np.abs(e) <= tolerance for e in relative_error.values()])  # NaN -> not met
    return SteeringResult(
        latents=np.asarray(latents)[:count],
        images=np.asarray(images)[:count],
        quantities=reached,
        initial_quantities=initial,
        targets={n: target_values[:, i] for i, n in enumerate(target_names)},
        relative_error=relative_error,
        held_change=held_change,
        success=met.all(axis=0),
        loss=np.asarray(loss)[:, :count].mean(axis=1),
        unrefined_success=np.asarray(unrefined_met)[:count],
    )


def _check_requests(targets: Mapping[str, tuple[str, float]], hold: Sequence[str]) -> None:
    if not targets:
        raise ValueError("give at least one target, e.g. targets={'tuf': ('rel', 0.5)}")
    for name in list(targets) + list(hold):
        if name not in physics.QUANTITY_NAMES:
            raise ValueError(f"unknown quantity {name!r}; known: {', '.join(physics.QUANTITY_NAMES)}")
    for name, request in targets.items():
        if (
            not isinstance(request, (tuple, list))
            or len(request) != 2
            or request[0] not in TARGET_KINDS
            or not math.isfinite(float(request[1]))
        ):
            raise ValueError(
                f"target for {name!r} must be ('rel', v) or ('abs', t) with finite v or t, got {request!r}"
            )
    both = set(targets) & set(hold)
    if both:
        raise ValueError(f"quantities {sorted(both)} are both targets and held")


def _target_value(initial: np.ndarray, kind: str, value: float) -> np.ndarray:
    """[N] requested values: (1 + value) * initial for 'rel', value for 'abs'."""
    return (1.0 + value) * initial if kind == "rel" else np.full_like(initial, value)


@functools.partial(jax.jit, static_argnames=("apply_fn", "steps_per_round", "rounds", "line_search", "per_round"))
def _steer_program(
    apply_fn,
    params,
    z0,
    target_values,
    target_mask,
    hold_mask,
    floors,
    learning_rate,
    prior_weight,
    tolerance,
    *,
    steps_per_round,
    rounds,
    line_search,
    per_round=1,
):
    """The whole optimisation and the selection: returns (latents, images, exact quantities,
    loss [steps, N], [N] last round's latent met every target). ``per_round`` latents of every round
    (evenly spaced steps, its end last) are candidates of the selection.

    Every quantity of `physics.QUANTITY_NAMES` (K) is in the program: target_values [N, K] (NaN where
    undefined or not targeted), target_mask and hold_mask [K] (1 = targeted / held) and floors [K] are
    arrays, so one compiled program serves every request of one batch shape and step count."""
    radius = jnp.sqrt(jnp.float32(z0.shape[-1]))
    targeted, held_mask = target_mask > 0, hold_mask > 0

    def stack(values):
        return jnp.stack([values[name] for name in physics.QUANTITY_NAMES], axis=-1)

    def exact_and_smooth(z):
        images = apply_fn(params, z)
        return stack(physics.quantities(images)), stack(physics.smooth_quantities(images))

    exact0, smooth0 = exact_and_smooth(z0)
    defined = targeted & jnp.isfinite(target_values)  # [N, K]; a targeted NaN request is never met
    target_exact = jnp.where(defined, target_values, 0.0)
    target_scale = jnp.maximum(jnp.abs(target_exact), floors)
    hold_scale = jnp.maximum(jnp.nan_to_num(jnp.abs(exact0)), floors)

    def latent_loss(z, target_smooth, weight, target_scale, hold_smooth, hold_scale):
        """Loss of one latent [D]; vmapped over the batch. The smooth quantities are finite with finite
        gradients everywhere (`physics.smooth_quantities`), so the masked-out terms add exact zeros."""
        smooth = stack(physics.smooth_quantities(apply_fn(params, z[None])))[0]
        return (
            jnp.sum(weight * ((smooth - target_smooth) / target_scale) ** 2)
            + jnp.sum(hold_mask * ((smooth - hold_smooth) / hold_scale) ** 2)
            + prior_weight * (jnp.linalg.norm(z) - radius) ** 2
        )

    optimiser = optax.adam(optax.cosine_decay_schedule(learning_rate, steps_per_round * rounds, alpha=0.05))

    def run_round(carry, _):
        z, opt_state, target_smooth = carry

        def batch_loss(z):
            per_latent = jax.vmap(latent_loss)(z, target_smooth, defined, target_scale, smooth0, hold_scale)
            return per_latent.sum(), per_latent

        def step(state, _):
            z, opt_state = state
            (_, per_latent), grad = jax.value_and_grad(batch_loss, has_aux=True)(z)
            updates, opt_state = optimiser.update(grad, opt_state)
            z = optax.apply_updates(z, updates)
            return (z, opt_state), (per_latent, z)

        (z, opt_state), (losses, visited) = jax.lax.scan(step, (z, opt_state), length=steps_per_round)
        exact, _ = exact_and_smooth(z)
        miss = jnp.where(defined, target_exact - exact, 0.0)
        return (z, opt_state, target_smooth + jnp.where(jnp.isfinite(miss), miss, 0.0)), (losses, visited[kept])

    count = min(per_round, steps_per_round)
    kept = np.round(np.linspace(0, steps_per_round - 1, count + 1)[1:]).astype(int)  # evenly spaced, the end last

    def errors(z):
        """([N] largest relative target error, [N] largest relative held change) of the exact quantities; NaN -> inf."""
        exact = stack(physics.quantities(apply_fn(params, z)))
        target_error = jnp.abs(exact - target_exact) / target_scale
        target_error = jnp.where(defined & jnp.isfinite(target_error), target_error, jnp.inf)
        held = jnp.abs(exact - exact0) / hold_scale
        held = jnp.where(jnp.isfinite(held), held, jnp.inf)
        return (
            jnp.where(targeted, target_error, 0.0).max(axis=-1),
            jnp.where(held_mask, held, 0.0).max(axis=-1),
        )

    start = target_exact + smooth0 - exact0
    start = jnp.where(jnp.isfinite(start), start, target_exact)
    (z, _, _), (losses, visited) = jax.lax.scan(run_round, (z0, optimiser.init(z0), start), length=rounds)
    round_points = visited.reshape((rounds * count,) + z0.shape)  # [rounds * count, N, D]
    last = rounds * count - 1  # the last round's end
    fractions = jnp.asarray(line_search, jnp.float32).reshape(-1, 1, 1)
    line = z0[None] + fractions * (z - z0)[None]  # [S, N, D]
    line = line * (jnp.linalg.norm(z, axis=-1, keepdims=True) / jnp.linalg.norm(line, axis=-1, keepdims=True))
    candidates = jnp.concatenate([round_points, line])  # [C, N, D]
    target_error, held_change = jax.lax.map(errors, candidates)  # [C, N] each
    met = target_error <= tolerance
    # a met last round stays; else the met candidate with the smallest held change, else the smallest target error
    # (two arg-mins: an offset such as 1e6 + error would round errors to float32's 0.06 steps there)
    best_met = jnp.argmin(jnp.where(met, jnp.minimum(held_change, 1e30), jnp.inf), axis=0)
    choice = jnp.where(met[last], last, jnp.where(met.any(axis=0), best_met, jnp.argmin(target_error, axis=0)))
    z = jnp.take_along_axis(candidates, choice[None, :, None], axis=0)[0]
    images = apply_fn(params, z)
    return z, images, physics.quantities(images), losses.reshape(-1, z0.shape[0]), met[last]
