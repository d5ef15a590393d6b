"""Steering a CME generator: property directions in its latent space, two families, scored by monotonicity.

The SHARP machinery (`solarjax.steering`) with the coronagraph family's quantities (`solarjax.cme_physics`):

- paper: one linear SVM per quantity on 'high vs low' (median split) of generated images, its unit normal
  the direction (`fit_paper_directions`); a traversal is ``z + alpha n`` rescaled to |z| (the paper's edit,
  `solarjax.steering.families.linear_edit`). The CPA is circular, so its linear family steers sin(CPA)
  (east limb high, west low).
- local: a gradient path of the quantity's smooth stand-in (`cme_physics.smooth_quantities`), one unit
  step of the normalised gradient at a time (alpha = path length; `local_traversals`), the gradients of
  held quantities projected out. The CPA is followed as the angle itself (unwrapped along the path).

`evaluate_families` measures, on the same base latents, the exact quantities (`cme_physics.quantities`) of
every traversal and their monotonicity (Spearman of the quantity with alpha per traversal; an undefined
value anywhere counts 0, `solarjax.steering.evaluate.traversal_monotonicity`) with bootstrap 95% intervals
over base latents.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from solarjax import cme_physics
from solarjax.steering import directions as directions_lib
from solarjax.steering import evaluate as steering_evaluate
from solarjax.steering.families import linear_edit

STEERED = ("width_deg", "cpa_deg", "excess", "front_height_rsun")
"""The quantities steered (a user's 'wider', 'rotate', 'brighter', 'further out')."""
LINEAR_NAMES = {
    "width_deg": "width_deg",
    "cpa_deg": "sin_cpa",
    "excess": "excess",
    "front_height_rsun": "front_height_rsun",
}
"""The quantity the paper family steers for each steered one (sin CPA for the circular CPA)."""
FAMILIES = ("paper", "local")


def _quantities_with_sine(images: jax.Array) -> dict[str, jax.Array]:
    values = cme_physics.quantities(images)
    return {**values, "sin_cpa": jnp.sin(jnp.deg2rad(values["cpa_deg"]))}


def generated_quantities(generator: Any, z: np.ndarray) -> dict[str, np.ndarray]:
    """Exact CME quantities of G(z) for latents [N, D] (and sin_cpa): name -> float64 [N]."""
    values = directions_lib.map_generated(generator, z, _quantities_with_sine)
    return {k: np.asarray(v, np.float64) for k, v in values.items()}


def median_labels(values: np.ndarray) -> np.ndarray:
    """bool [N] 'high' labels of values [N] (NaN: False): the more balanced of '> median' and '>= median' over
    the defined values (binned quantities, such as the front height in 0.1 Rsun bins, tie at the median)."""
    values = np.asarray(values, np.float64)
    defined = np.isfinite(values)
    median = np.median(values[defined])
    with np.errstate(invalid="ignore"):
        return min((values > median, values >= median), key=lambda high: abs(high[defined].mean() - 0.5))


def fit_paper_directions(generator: Any, n: int = 2000, seed: int = 23) -> dict[str, dict[str, Any]]:
    """One linear SVM per `LINEAR_NAMES` quantity on the median split of n generated images.

    Returns:
      name -> {'normal': [D] unit normal (quantity grows along it), 'test_accuracy' (held-out 20%),
      'defined': latents where the quantity is defined}.
    """
    from sklearn.svm import LinearSVC

    generator = directions_lib.as_generator(generator)
    z = directions_lib.sample_latents(n, generator.latent_dim, seed)
    values = generated_quantities(generator, z)
    is_test = np.random.default_rng(seed).random(n) < 0.2
    fitted = {}
    for name in LINEAR_NAMES.values():
        v = values[name]
        defined = np.isfinite(v)
        label = median_labels(v)
        train, test = defined & ~is_test, defined & is_test
        if train.sum() < 10 or len(np.unique(label[train])) < 2:
            raise ValueError(
                f"{name}: the generated images do not split into high and low ({int(train.sum())} "
                f"training latents with the quantity defined, {int(label[train].sum())} high)"
            )
        svm = LinearSVC(C=1.0, max_iter=5000).fit(z[train], label[train])
        normal = svm.coef_[0] / np.linalg.norm(svm.coef_[0])
        fitted[name] = {
            "normal": normal,
            "test_accuracy": float(svm.score(z[test], label[test])) if test.any() else float("nan"),
            "defined": int(defined.sum()),
        }
    return fitted


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _unit_gradients(apply_fn, params, z, target, hold):
    """[N, D] unit gradient of the smooth `target` of G(z), with the held quantities' gradients projected out."""
    names = (target, *hold)

    def smooth(z_one):
        values = cme_physics.smooth_quantities(apply_fn(params, z_one[None]))
        return jnp.stack([values[name][0] for name in names])

    jacobian = jax.vmap(jax.jacrev(smooth))(z)  # [N, 1 + H, D]
    gradient = jacobian[:, 0]
    for h in range(1, len(names)):  # Gram-Schmidt against the held gradients
        basis = jacobian[:, h]
        for previous in range(1, h):
            other = jacobian[:, previous]
            basis = (
                basis
                - jnp.sum(basis * other, -1, keepdims=True)
                / jnp.maximum(jnp.sum(other * other, -1, keepdims=True), 1e-12)
                * other
            )
        jacobian = jacobian.at[:, h].set(basis)
        gradient = (
            gradient
            - jnp.sum(gradient * basis, -1, keepdims=True)
            / jnp.maximum(jnp.sum(basis * basis, -1, keepdims=True), 1e-12)
            * basis
        )
    return gradient / jnp.maximum(jnp.linalg.norm(gradient, axis=-1, keepdims=True), 1e-12)


LOCAL_STEPS = 6
LOCAL_STEP = 0.5
"""The local family's path in the evaluation: 6 steps of 0.5 each way (alpha -3..3). Steps of 1.0 strayed from
the width's gradient where a small CME's measured width jumps between frames (figures: experiments/README.md,
the full CME demo)."""


def local_traversals(
    generator: Any, z: np.ndarray, target: str, num_steps: int = 3, step: float = 1.0, hold: Sequence[str] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient paths of `target` through each base latent, both ways.

    Args:
      z: [N, D] base latents; target, hold: names of `cme_physics.smooth_quantities`.
      num_steps: steps each way; step: path length per step (prior units).

    Returns:
      (latents [N, 2 num_steps + 1, D], alphas [2 num_steps + 1] = step x (-num_steps .. num_steps)).
    """
    generator = directions_lib.as_generator(generator)
    hold = tuple(h for h in hold if h != target)
    z0 = jnp.asarray(z, jnp.float32)
    forward, backward = [z0], [z0]
    for _ in range(num_steps):
        forward.append(
            forward[-1] + step * _unit_gradients(generator.apply_fn, generator.params, forward[-1], target, hold)
        )
        backward.append(
            backward[-1] - step * _unit_gradients(generator.apply_fn, generator.params, backward[-1], target, hold)
        )
    path = jnp.stack(backward[::-1] + forward[1:], axis=1)
    return np.asarray(path), step * np.arange(-num_steps, num_steps + 1, dtype=np.float64)


def steer_until(
    generator: Any,
    z: np.ndarray,
    targets: Mapping[str, float],
    step: float = LOCAL_STEP,
    max_steps: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Latents whose generated CMEs reach every target, steered one quantity after another.

    For each ``name: threshold`` of `targets` in order, every latent whose exact value of `name` is still
    below its threshold takes a local step (`local_traversals`' step, up its gradient, holding the
    quantities already steered) until it reaches it or `max_steps` steps were taken; a latent that
    reached stays where it is.

    Args:
      z: [N, D] base latents; targets: {name of `cme_physics.smooth_quantities`: lower bound of the exact
        value}; step: path length per step (prior units).

    Returns:
      (latents [N, D], reached bool [N]: every target met at the end).
    """
    generator = directions_lib.as_generator(generator)
    z = jnp.asarray(z, jnp.float32)
    steered: list[str] = []
    for name, threshold in targets.items():
        for _ in range(max_steps):
            below = generated_quantities(generator, np.asarray(z))[name] < threshold
            if not below.any():
                break
            move = step * _unit_gradients(generator.apply_fn, generator.params, z, name, tuple(steered))
            z = jnp.where(jnp.asarray(below)[:, None], z + move, z)
        steered.append(name)
    values = generated_quantities(generator, np.asarray(z))
    reached = np.logical_and.reduce([values[name] >= threshold for name, threshold in targets.items()])
    return np.asarray(z), reached


def paper_traversals(z: np.ndarray, normal: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """[N, A, D] the paper's edit ``z + alpha n`` of every base latent, rescaled to |z|."""
    return linear_edit(z, np.broadcast_to(normal, z.shape), alphas)


def traversal_values(generator: Any, latents: np.ndarray, name: str) -> np.ndarray:
    """[N, A] exact value of `name` along traversals [N, A, D]; the CPA unwrapped along each traversal."""
    n, a, d = latents.shape
    values = generated_quantities(generator, latents.reshape(n * a, d))[name].reshape(n, a)
    if name == "cpa_deg":
        defined = np.isfinite(values).all(axis=1)
        unwrapped = np.full_like(values, np.nan)
        unwrapped[defined] = np.unwrap(values[defined], period=360.0, axis=1)
        return unwrapped
    return values


def evaluate_families(
    generator: Any,
    paper: Mapping[str, Mapping[str, Any]],
    n_latents: int = 32,
    num_steps: int = LOCAL_STEPS,
    seed: int = 7,
    resamples: int = 1000,
    step: float = LOCAL_STEP,
) -> dict[str, Any]:
    """Monotonicity of every family on every steered quantity, on the same base latents (alpha = step x
    (-num_steps .. num_steps); the paper family is scored at the local path's alphas).

    Returns:
      {'results': {family: {quantity: {'scored': the quantity scored, 'monotonicity': value, 'low',
      'high'}}}, 'best_method': {quantity: family}, 'alphas': [...], 'n_latents': ...}
    """
    generator = directions_lib.as_generator(generator)
    z = directions_lib.sample_latents(n_latents, generator.latent_dim, seed)
    results: dict[str, dict[str, Any]] = {family: {} for family in FAMILIES}
    alphas = None
    for name in STEERED:
        path, alphas = local_traversals(generator, z, name, num_steps=num_steps, step=step)
        for family, latents, scored in (
            ("local", path, name),
            ("paper", paper_traversals(z, paper[LINEAR_NAMES[name]]["normal"], alphas), LINEAR_NAMES[name]),
        ):
            values = traversal_values(generator, latents, scored)
            per_traversal = steering_evaluate.traversal_monotonicity(values, alphas)
            value, low, high = steering_evaluate.bootstrap_interval(np.mean, [per_traversal], resamples, seed)
            results[family][name] = {
                "scored": scored,
                "monotonicity": value,
                "low": low,
                "high": high,
                "start": float(np.nanmean(values[:, 0])),
                "end": float(np.nanmean(values[:, -1])),
            }
    best = {name: max(FAMILIES, key=lambda f: results[f][name]["monotonicity"]) for name in STEERED}
    return {"results": results, "best_method": best, "alphas": [float(a) for a in alphas], "n_latents": n_latents}


def monotonicity_table(report: Mapping[str, Any]) -> str:
    """Families x steered quantities: 'value [low, high]'."""
    rows = [
        ["family"]
        + [
            f"{name} ({'sin_cpa' if name == 'cpa_deg' else name} for paper)" if name == "cpa_deg" else name
            for name in STEERED
        ]
    ]
    for family, by_name in report["results"].items():
        rows.append(
            [family]
            + [f"{by_name[n]['monotonicity']:.3f} [{by_name[n]['low']:.3f}, {by_name[n]['high']:.3f}]" for n in STEERED]
        )
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def plot_traversal(
    generator: Any,
    z: np.ndarray,
    path,
    target: str,
    num_steps: int = LOCAL_STEPS,
    step: float = LOCAL_STEP,
    rows: int = 3,
) -> None:
    """Local traversals of `target` through base latents z [N, D] (the first `rows` drawn, one per row, every
    other step of the path), each frame titled with its exact value. Pass the evaluation's latents and steps to
    reuse its compiled programs."""
    from matplotlib.figure import Figure

    latents, alphas = local_traversals(generator, z, target, num_steps=num_steps, step=step)
    latents, alphas = latents[:rows, ::2], alphas[::2]
    n, a, d = latents.shape
    images = np.asarray(directions_lib.map_generated(generator, latents.reshape(n * a, d))).reshape(n, a, 128, 128)
    values = traversal_values(generator, latents, target)
    figure = Figure(figsize=(1.6 * a, 1.8 * n), layout="compressed")
    axes = figure.subplots(n, a, squeeze=False)
    for r in range(n):
        for c in range(a):
            axes[r, c].imshow(images[r, c], cmap="gray", vmin=-0.6, vmax=0.6)
            axes[r, c].set_title(f"a={alphas[c]:+.0f}: {values[r, c]:.3g}", fontsize=7)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
    figure.suptitle(f"local steering of {target} (exact value per frame)")
    figure.savefig(path, dpi=80)
