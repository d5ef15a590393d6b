"""How well latent steering works: three families compared, targeting success, the paper's figures.

`evaluate_families` (what the demo and `run_evaluation` report) moves the same base latents
z ~ N(0, I) with every steering family (`solarjax.steering.families`: paper, piecewise, local) by
alpha in [-3, 3], on the Gaussian shell (``keep_norm=True``), plainly and with held quantities
(`EVALUATION_HOLD`), and measures every exact quantity of the patches:

* monotonicity: Spearman's rank correlation between the target quantity and alpha, averaged over
  the base latents; a traversal where the quantity is undefined anywhere scores 0 (a failure,
  never a drop), as does one where it does not change;
* leakage into each held quantity: its change per change of the target, both in standard
  deviations under the prior (sd per sd), ratio of the mean absolute least-squares slopes;
* realism guard: Frechet distance (random-feature encoder of `solarjax.train.quality`) and KS per
  quantity of patches edited to |alpha| = 2 against unedited patches and the data; and the same
  distance against data patches matched on the target quantity (`matched_frechet_ratio`): an edit
  that moves the quantity far scores badly on the first however natural its patches are, one that
  raises it by leaving the manifold (speckle for flux) scores badly on both;
* 95% bootstrap intervals over the base latents for monotonicity and leakage.

The best family (`best_method`) is the one with the highest mean lower interval end of
monotonicity. The older per-direction figures (`evaluate_directions`: plain and conditional SVM
normals of every quantity, `default_hold`) remain for the paper's own comparison. Targeting: the
fraction of `steer_to` requests met within 5%, over requests whose target lies within the 1st-99th
percentile of the quantity under the prior ("in range").

`run_evaluation` writes ``report.json`` and the figures: the latent map of a quantity with its
decision boundary and thumbnails (the paper's Figure 3: latents projected on the normal and on
one orthogonal direction), traversal strips with curves of every quantity against alpha (its
Figure 4) along SVM normals and along a local path, and a conditional traversal (R up, TUF and
leading polarity held). Magnetograms use sunpy's ``hmimag`` colour map on [-1000, 1000] G.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats

from solarjax import physics, plotting
from solarjax.jsonable import jsonable
from solarjax.steering.directions import (
    Directions,
    as_generator,
    latent_quantities,
    map_generated,
    sample_latents,
)
from solarjax.steering.edit import edit
from solarjax.steering.target import steer_to

DEFAULT_ALPHAS = np.linspace(-3.0, 3.0, 13)
FIGURE_QUANTITIES = ("tuf", "psep", "r_value")
"""Quantities the paper's figures emphasise."""
CONDITIONAL_EXAMPLE = ("r_value", ("tuf", "lead_polarity"))
"""The conditional traversal of the report: R up, TUF and leading polarity held."""
DEFAULT_REQUESTS = (
    {"targets": {"tuf": ("rel", 0.5)}},
    {"targets": {"tuf": ("rel", -0.3)}},
    {"targets": {"tuf": ("rel", 0.3)}, "hold": ("psep",)},
    {"targets": {"psep": ("rel", 0.3)}},
    {"targets": {"psep": ("rel", -0.2)}, "hold": ("tuf",)},
    {"targets": {"r_value": ("rel", 0.5)}},
    {"targets": {"r_value": ("rel", 1.0)}, "hold": ("tuf",)},
)
"""Targeting requests of the report (the CLI's '--set tuf=+50% --hold psep' and the like)."""
FAMILIES = ("paper", "piecewise", "local")
EVALUATED_QUANTITIES = ("tuf", "psep", "r_value", "tilt", "area")
"""Quantities every family is evaluated on (the targets of the steering issue)."""
EVALUATION_HOLD = {
    "tuf": ("psep",),
    "psep": ("tuf",),
    "r_value": ("tuf", "lead_polarity"),
    "tilt": ("tuf", "psep"),
    "area": ("psep",),
}
"""Held quantities of each conditional traversal: flux without moving the polarities apart and the
reverse, the paper's R example (TUF and leading polarity held), tilt at fixed flux and separation,
area at fixed separation."""
MAX_HOLD_COSINE = 0.8
"""By default a quantity is held only if its normal's |cosine| with the target's is below this."""


# ------------------------------------------------------------------------------------- metrics
def traversal_quantities(
    generator: Any, z: np.ndarray, direction: np.ndarray, alphas: np.ndarray = DEFAULT_ALPHAS, keep_norm: bool = True
) -> dict[str, np.ndarray]:
    """Exact quantities along straight edits: dict name -> [N, A] for latents [N, D], alphas [A]."""
    generator = as_generator(generator)
    z = np.asarray(z, np.float32)
    edited = np.asarray(edit(z, direction, np.asarray(alphas, np.float32), keep_norm=keep_norm))
    values = latent_quantities(generator, edited.reshape(-1, z.shape[1]))
    return {name: v.reshape(len(z), len(alphas)) for name, v in values.items()}


def monotonicity(values: np.ndarray, alphas: np.ndarray) -> float:
    """Mean Spearman correlation of each row of values [N, A] with alphas [A].

    Rows with a NaN are left out; constant rows count as 0; NaN when no row is left.
    """
    values = np.asarray(values, np.float64)
    rows = values[np.isfinite(values).all(axis=1)]
    if len(rows) == 0:
        return float("nan")
    ranks = scipy.stats.rankdata(rows, axis=1)
    alpha_ranks = scipy.stats.rankdata(alphas)
    ranks = ranks - ranks.mean(axis=1, keepdims=True)
    alpha_ranks = alpha_ranks - alpha_ranks.mean()
    spread = np.linalg.norm(ranks, axis=1) * np.linalg.norm(alpha_ranks)
    correlation = np.divide(ranks @ alpha_ranks, spread, out=np.zeros(len(rows)), where=spread > 0)
    return float(correlation.mean())


def _slopes(values: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """[N] least-squares slopes of each row of values [N, A] against alphas (NaN rows give NaN)."""
    centred = np.asarray(alphas, np.float64) - np.mean(alphas)
    return (values - values.mean(axis=1, keepdims=True)) @ centred / (centred @ centred)


def leakage(
    values: Mapping[str, np.ndarray], alphas: np.ndarray, target: str, scales: Mapping[str, float]
) -> dict[str, float]:
    """Change of every other quantity per unit change of the target along traversals.

    Args:
      values: name -> [N, A] quantities along the traversals (`traversal_quantities`).
      alphas: [A] step sizes.
      target: the quantity the direction is meant to change.
      scales: name -> standard deviation under the prior (units of both changes).

    Returns:
      name -> median over the traversals of ``|slope(p) / scale_p| / |slope(q) / scale_q|``
      (traversals where either is undefined are left out; NaN when none is left).
    """
    target_slope = np.abs(_slopes(values[target], alphas)) / scales[target]
    result = {}
    for name, v in values.items():
        if name == target:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.abs(_slopes(v, alphas)) / scales[name] / target_slope
        ratio = ratio[np.isfinite(ratio)]
        result[name] = float(np.median(ratio)) if len(ratio) else float("nan")
    return result


def default_hold(directions: Directions, name: str, max_cosine: float = MAX_HOLD_COSINE) -> tuple[str, ...]:
    """Every other quantity whose normal has |cosine| < ``max_cosine`` with the normal of ``name``."""
    cosines = directions.normals @ directions.normal(name)
    return tuple(
        other for other, cosine in zip(directions.names, cosines) if other != name and abs(cosine) < max_cosine
    )


def evaluate_directions(
    generator: Any,
    directions: Directions,
    names: Sequence[str] | None = None,
    n_latents: int = 100,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    hold: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    keep_norm: bool = True,
) -> dict[str, dict[str, Any]]:
    """Monotonicity and leakage of each direction, plain and conditional.

    Args:
      generator: the generator the directions belong to.
      directions: fitted `Directions`.
      names: quantities to evaluate (default: all of ``directions``).
      n_latents: base latents (seeded by ``seed``).
      alphas: [A] step sizes.
      hold: name -> quantities held by its conditional direction (default: `default_hold`).
      keep_norm: rescale edited latents to their base norm.

    Returns:
      name -> {'monotonicity', 'monotonicity_conditional', 'leakage' (other -> value),
      'leakage_conditional', 'held', 'held_leakage' (mean leakage into the held quantities),
      'held_leakage_conditional', 'held_leakage_ratio' (conditional / plain), 'target_change'
      and 'target_change_conditional' (median change of the target over the alpha range, in
      prior standard deviations)}.
    """
    generator = as_generator(generator)
    names = tuple(names) if names is not None else directions.names
    z = sample_latents(n_latents, generator.latent_dim, seed)
    alphas = np.asarray(alphas, np.float64)
    report = {}
    for name in names:
        held = tuple(hold[name]) if hold is not None else default_hold(directions, name)
        plain = traversal_quantities(generator, z, directions.normal(name), alphas, keep_norm)
        conditioned = traversal_quantities(generator, z, directions.direction(name, held), alphas, keep_norm)
        leak, leak_conditional = (leakage(v, alphas, name, directions.std) for v in (plain, conditioned))
        held_plain = float(np.nanmean([leak[h] for h in held])) if held else float("nan")
        held_conditional = float(np.nanmean([leak_conditional[h] for h in held])) if held else float("nan")
        span = alphas[-1] - alphas[0]
        report[name] = {
            "monotonicity": monotonicity(plain[name], alphas),
            "monotonicity_conditional": monotonicity(conditioned[name], alphas),
            "leakage": leak,
            "leakage_conditional": leak_conditional,
            "held": list(held),
            "held_leakage": held_plain,
            "held_leakage_conditional": held_conditional,
            "held_leakage_ratio": held_conditional / held_plain if held_plain > 0 else float("nan"),
            "target_change": float(np.nanmedian(_slopes(plain[name], alphas)) * span / directions.std[name]),
            "target_change_conditional": float(
                np.nanmedian(_slopes(conditioned[name], alphas)) * span / directions.std[name]
            ),
        }
    return report


def evaluate_targeting(
    generator: Any,
    requests: Sequence[Mapping[str, Any]] = DEFAULT_REQUESTS,
    n_latents: int = 20,
    seed: int = 1,
    scales: Mapping[str, float] | None = None,
    prior_latents: int = 1000,
    **steer_kwargs,
) -> dict[str, Any]:
    """Success rate of `steer_to` on in-range requests.

    Args:
      generator: the generator.
      requests: each {'targets': {name: (kind, value)}, 'hold': (names...)}.
      n_latents: base latents per request (seeded by ``seed``).
      scales: name -> standard deviation under the prior (default: from ``prior_latents`` latents).
      prior_latents: latents drawn to find each quantity's 1st-99th percentile range.
      **steer_kwargs: passed to `steer_to` (steps, learning_rate, ...).

    Returns:
      {'success_rate' (over all in-range requests), 'success_interval' (Wilson 95%),
      'unrefined_success_rate' (the last round's latents, before `steer_to`'s selection on the exact
      quantities), 'in_range', 'requested', 'requests': per request {'targets', 'hold', 'in_range',
      'success_rate', 'unrefined_success_rate', 'median_abs_relative_error', 'median_abs_held_change'}}.
    """
    generator = as_generator(generator)
    prior = latent_quantities(generator, sample_latents(prior_latents, generator.latent_dim, seed + 1))
    ranges = {name: np.nanpercentile(prior[name], [1, 99]) for name in physics.QUANTITY_NAMES}
    scales = dict(scales) if scales is not None else {n: float(np.nanstd(prior[n])) for n in physics.QUANTITY_NAMES}
    z0 = sample_latents(n_latents, generator.latent_dim, seed)
    rows, met_total, unrefined_total, in_range_total = [], 0, 0, 0
    for request in requests:
        hold = tuple(request.get("hold", ()))
        result = steer_to(generator, z0, request["targets"], hold=hold, scales=scales, **steer_kwargs)
        in_range = np.all([(t >= ranges[n][0]) & (t <= ranges[n][1]) for n, t in result.targets.items()], axis=0)
        met = result.success & in_range
        unrefined = result.unrefined_success & in_range
        met_total += int(met.sum())
        unrefined_total += int(unrefined.sum())
        in_range_total += int(in_range.sum())
        errors = np.abs(np.stack(list(result.relative_error.values())))[:, in_range]
        changes = np.abs(np.stack(list(result.held_change.values())))[:, in_range] if hold else np.zeros((0, 0))
        rows.append(
            {
                "targets": {n: list(v) for n, v in request["targets"].items()},
                "hold": list(hold),
                "in_range": int(in_range.sum()),
                "success_rate": float(met.sum() / in_range.sum()) if in_range.any() else float("nan"),
                "unrefined_success_rate": float(unrefined.sum() / in_range.sum()) if in_range.any() else float("nan"),
                "median_abs_relative_error": float(np.nanmedian(errors)) if errors.size else float("nan"),
                "median_abs_held_change": float(np.nanmedian(changes)) if changes.size else float("nan"),
            }
        )
    return {
        "success_rate": met_total / in_range_total if in_range_total else float("nan"),
        "success_interval": list(wilson_interval(met_total, in_range_total)),
        "unrefined_success_rate": unrefined_total / in_range_total if in_range_total else float("nan"),
        "in_range": in_range_total,
        "requested": len(requests) * n_latents,
        "requests": rows,
    }


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval of a binomial proportion (NaN, NaN for no trials)."""
    if trials <= 0:
        return float("nan"), float("nan")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


# ------------------------------------------------------------------------------- three families
def traversal_monotonicity(values: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """[N] Spearman correlation of each traversal values [N, A] with alphas [A]; a traversal where the
    quantity is undefined (NaN) anywhere, or constant, scores 0 (a failure, not a drop)."""
    values = np.asarray(values, np.float64)
    defined = np.isfinite(values).all(axis=1)
    ranks = scipy.stats.rankdata(np.where(np.isfinite(values), values, 0.0), axis=1)
    alpha_ranks = scipy.stats.rankdata(alphas)
    ranks = ranks - ranks.mean(axis=1, keepdims=True)
    alpha_ranks = alpha_ranks - alpha_ranks.mean()
    spread = np.linalg.norm(ranks, axis=1) * np.linalg.norm(alpha_ranks)
    correlation = np.divide(ranks @ alpha_ranks, spread, out=np.zeros(len(values)), where=spread > 0)
    return np.where(defined, correlation, 0.0)


def bootstrap_interval(
    statistic, samples: Sequence[np.ndarray], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(estimate, low, high): ``statistic(*samples)`` and its percentile bootstrap interval, resampling the
    rows (base latents) of every array in ``samples`` together."""
    estimate = float(statistic(*samples))
    count = len(samples[0])
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        rows = rng.integers(0, count, count)
        draws.append(statistic(*(s[rows] for s in samples)))
    draws = np.asarray(draws, np.float64)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return estimate, float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return estimate, float(low), float(high)


def _leakage_ratio(held_slopes: np.ndarray, target_slopes: np.ndarray) -> float:
    """mean |held slope| / mean |target slope| over traversals where both are defined (scaled slopes)."""
    both = np.isfinite(held_slopes) & np.isfinite(target_slopes)
    denominator = np.mean(np.abs(target_slopes[both])) if both.any() else 0.0
    return float(np.mean(np.abs(held_slopes[both])) / denominator) if denominator > 0 else float("nan")


def _interval(values: tuple[float, float, float]) -> dict[str, float]:
    return {"value": values[0], "low": values[1], "high": values[2]}


def _remembered(summaries: dict | None, key: tuple, compute: Callable[[], Any]) -> Any:
    """``summaries[key]``, computed once by ``compute()``; with no memo (None), ``compute()``."""
    if summaries is None:
        return compute()
    if key not in summaries:
        summaries[key] = compute()
    return summaries[key]


def generated_summary(generator: Any, latents: np.ndarray, encoder_seed: int = 0, summaries: dict | None = None):
    """`solarjax.train.quality.ImageSummary` of the patches G(latents) [N, D] with the random-feature encoder
    (its ``quantities`` are `physics.quantities`); with ``summaries``, one evaluation's memo, each set of latents is
    generated and summarised once."""
    from solarjax.train import quality

    latents = np.asarray(latents, np.float32)
    return _remembered(
        summaries,
        ("generated", encoder_seed, latents.shape, latents.tobytes()),
        lambda: quality.summarise([map_generated(generator, latents)], quality.random_feature_encoder(encoder_seed)),
    )


def _data_summary(reference_images: np.ndarray, rows: np.ndarray, encoder_seed: int, summaries: dict | None):
    """The summary of the data patches ``reference_images[rows]``, once per set of rows with ``summaries``."""
    return _remembered(
        summaries,
        ("data", encoder_seed, id(reference_images), rows.tobytes()),
        lambda: _summary(reference_images[rows], encoder_seed),
    )


def realism(
    generator: Any,
    edited: np.ndarray,
    unedited: np.ndarray,
    reference: Any = None,
    encoder_seed: int = 0,
    summaries: dict | None = None,
) -> dict[str, Any]:
    """Frechet distance (random-feature encoder of `solarjax.train.quality`) and per-quantity KS of edited
    patches against unedited ones, and of both against the data when ``reference_images`` is given.

    Args:
      edited, unedited: [N, D] latents.
      reference: data patches [M, 128, 128, 1], their `solarjax.train.quality.ImageSummary` (same
        encoder seed), or None.
      summaries: one evaluation's memo (`generated_summary`), or None.

    Returns:
      {'frechet_edited_unedited', 'frechet_unedited_data', 'frechet_edited_data', 'frechet_ratio'
      (edited-data / unedited-data), 'ks_edited_unedited' (name -> KS), 'ks_unedited_data',
      'ks_edited_data', 'ks_ratio_mean' (mean over quantities of edited-data / unedited-data KS)}.
    """
    from solarjax.train import quality

    edited_summary = generated_summary(generator, edited, encoder_seed, summaries)
    unedited_summary = generated_summary(generator, unedited, encoder_seed, summaries)
    edited_vs_unedited = quality.quality_figures(edited_summary, unedited_summary)
    result = {
        "frechet_edited_unedited": edited_vs_unedited["frechet"],
        "ks_edited_unedited": {k[3:]: v for k, v in edited_vs_unedited.items() if k.startswith("ks/")},
    }
    if reference is not None:
        data = reference if isinstance(reference, quality.ImageSummary) else _summary(reference, encoder_seed)
        unedited_data, edited_data = (quality.quality_figures(x, data) for x in (unedited_summary, edited_summary))
        ks_u = {k[3:]: v for k, v in unedited_data.items() if k.startswith("ks/")}
        ks_e = {k[3:]: v for k, v in edited_data.items() if k.startswith("ks/")}
        ratios = [ks_e[k] / ks_u[k] for k in ks_u if np.isfinite(ks_e[k]) and ks_u[k] > 0]
        result.update(
            {
                "frechet_unedited_data": unedited_data["frechet"],
                "frechet_edited_data": edited_data["frechet"],
                "frechet_ratio": edited_data["frechet"] / unedited_data["frechet"],
                "ks_unedited_data": ks_u,
                "ks_edited_data": ks_e,
                "ks_ratio_mean": float(np.mean(ratios)) if ratios else float("nan"),
            }
        )
    return result


def matched_rows(reference_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[N] index of the reference with the nearest value to each of values [N] (among finite references;
    an undefined value gets the reference at the median): the data resampled to the same distribution."""
    reference_values = np.asarray(reference_values, np.float64)
    finite = np.flatnonzero(np.isfinite(reference_values))
    if not len(finite):
        raise ValueError("no finite reference value to match on")
    order = finite[np.argsort(reference_values[finite])]
    ordered = reference_values[order]
    values = np.where(np.isfinite(values), values, np.median(ordered))
    right = np.clip(np.searchsorted(ordered, values), 0, len(ordered) - 1)
    left = np.clip(right - 1, 0, len(ordered) - 1)
    nearer = np.where(np.abs(ordered[left] - values) <= np.abs(ordered[right] - values), left, right)
    return order[nearer]


GENERATED_POOL = 5000
"""Unedited latents z ~ N(0, I) drawn for the generated-matched realism baseline (`generated_pool`), at most."""
POOL_PER_LATENT = 50
"""`evaluate_families` draws this many pool latents per base latent (up to `GENERATED_POOL`)."""


def generated_pool(
    generator: Any, count: int = GENERATED_POOL, seed: int = 3
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(latents [count, D], exact quantities name -> [count]) of unedited samples z ~ N(0, I): what the GAN
    itself makes at each quantity value, for `matched_frechet_ratio`'s generated baseline."""
    generator = as_generator(generator)
    latents = sample_latents(count, generator.latent_dim, seed)
    return latents, latent_quantities(generator, latents)


def matched_frechet_ratio(
    generator: Any,
    edited: np.ndarray,
    unedited: np.ndarray,
    target: str,
    reference_images: np.ndarray,
    reference_values: Mapping[str, np.ndarray],
    encoder_seed: int = 0,
    pool: tuple[np.ndarray, Mapping[str, np.ndarray]] | None = None,
    summaries: dict | None = None,
) -> dict[str, float]:
    """Realism at the quantity reached: Frechet distance of edited patches to data patches matched on ``target``
    (`matched_rows`, one data patch per edited patch) over the same for the unedited patches; with ``pool``, also
    over the same for unedited generated patches matched on the edited patches' target values (the generated
    baseline: does the edit make patches like those the GAN itself makes at that value).

    Args:
      edited, unedited: [N, D] latents; reference_images: data patches [M, 128, 128, 1];
      reference_values: name -> [M] exact quantities of the data patches;
      pool: (latents [P, D], quantities name -> [P]) of unedited samples (`generated_pool`), or None.
      summaries: one evaluation's memo (`generated_summary`), or None.

    Returns:
      {'frechet_matched_edited', 'frechet_matched_unedited', 'matched_frechet_ratio'} and with ``pool``
      {'frechet_matched_generated' (pool patches matched on the edited target values to the edited patches'
      data rows), 'generated_matched_ratio' (frechet_matched_edited / frechet_matched_generated)}.
    """
    from solarjax.train import quality

    reference_images = np.asarray(reference_images, np.float32)
    distances, edited_rows, edited_values = [], None, None
    for latents in (edited, unedited):
        generated = generated_summary(generator, latents, encoder_seed, summaries)
        values = np.asarray(generated.quantities[target], np.float64)
        rows = matched_rows(reference_values[target], values)
        if edited_rows is None:
            edited_rows, edited_values = rows, values
        data = _data_summary(reference_images, rows, encoder_seed, summaries)
        distances.append(quality.quality_figures(generated, data)["frechet"])
    result = {
        "frechet_matched_edited": distances[0],
        "frechet_matched_unedited": distances[1],
        "matched_frechet_ratio": distances[0] / distances[1] if distances[1] > 0 else float("nan"),
    }
    if pool is not None:
        pool_latents, pool_values = pool
        pool_rows = matched_rows(pool_values[target], edited_values)
        generated = generated_summary(generator, np.asarray(pool_latents)[pool_rows], encoder_seed, summaries)
        data = _data_summary(reference_images, edited_rows, encoder_seed, summaries)
        baseline = quality.quality_figures(generated, data)["frechet"]
        result["frechet_matched_generated"] = baseline
        result["generated_matched_ratio"] = distances[0] / baseline if baseline > 0 else float("nan")
    return result


def _summary(images: np.ndarray, encoder_seed: int = 0):
    """`solarjax.train.quality.ImageSummary` of patches [M, 128, 128, 1] with the random-feature encoder."""
    from solarjax.train import quality

    encoder = quality.random_feature_encoder(encoder_seed)
    return quality.summarise([images[i : i + 256] for i in range(0, len(images), 256)], encoder)


def differentiated_quantities(names: Sequence[str], hold: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """Every target of ``names`` and its held quantities, once each: the local paths of an evaluation
    differentiate all of them, so every target's plain and conditional paths share one compiled program."""
    return tuple(dict.fromkeys(q for name in names for q in (name, *hold.get(name, ()))))


def evaluate_families(
    generator: Any,
    directions: Directions,
    methods: Sequence[str] = FAMILIES,
    names: Sequence[str] = EVALUATED_QUANTITIES,
    n_latents: int = 100,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    hold: Mapping[str, Sequence[str]] | None = None,
    keep_norm: bool = True,
    seed: int = 0,
    reference_images: np.ndarray | None = None,
    realism_alpha: float = 2.0,
    step: float | None = None,
    resamples: int = 1000,
    pool_size: int | None = None,
) -> dict[str, Any]:
    """Every family on the same base latents: monotonicity, conditional leakage, realism, with intervals.

    For each method and target quantity q, the same ``n_latents`` base latents (seeded by ``seed``)
    are moved by ``alphas`` twice: plainly (nothing held) and conditionally (``hold[q]``, default
    `EVALUATION_HOLD`). Figures, each with a bootstrap 95% interval over the base latents:

    * ``monotonicity`` / ``monotonicity_conditional``: mean over traversals of Spearman(q, alpha);
      a traversal where q is undefined anywhere scores 0 (`traversal_monotonicity`); the fraction of
      such traversals is ``undefined_fraction``;
    * ``leakage`` (conditional traversals): per held quantity p, mean |slope of p| / mean |slope of q|
      with both slopes (least squares against alpha) in prior standard deviations, i.e. standard
      deviations of p per standard deviation of q (traversals where either is undefined are left
      out); ``max_leakage`` is the largest over the held quantities;
    * ``realism`` (`realism`): patches of the plain edits at alpha = +realism_alpha (even base
      latents) and -realism_alpha (odd) against the unedited ones (alpha = 0) and the data; with data, also
      against data matched on the target and, with ``pool_size`` > 0, over unedited generated patches matched
      on the same target values (`matched_frechet_ratio`, pool from `generated_pool`, drawn once; default
      size `POOL_PER_LATENT` per base latent, at most `GENERATED_POOL`).

    Returns:
      {'settings', 'results': method -> name -> figures, 'best': `best_method`}.
    """
    from solarjax.steering import families
    from solarjax.steering import local as local_lib

    generator = as_generator(generator)
    hold = dict(EVALUATION_HOLD if hold is None else hold)
    alphas = np.asarray(alphas, np.float64)
    if not np.any(np.isclose(alphas, 0.0)) or not (
        np.any(np.isclose(alphas, realism_alpha)) and np.any(np.isclose(alphas, -realism_alpha))
    ):
        raise ValueError(f"alphas must contain 0 and +-{realism_alpha} (realism guard), got {alphas}")
    zero = int(np.argmin(np.abs(alphas)))
    plus, minus = int(np.argmin(np.abs(alphas - realism_alpha))), int(np.argmin(np.abs(alphas + realism_alpha)))
    z = sample_latents(n_latents, generator.latent_dim, seed)
    scales = directions.std
    step_kwargs = {} if step is None else {"step": step}
    if reference_images is not None:  # one array, so the memo's data summaries key on it
        reference_images = np.asarray(reference_images, np.float32)
    data = _summary(reference_images) if reference_images is not None else None
    reference_values = image_quantities(reference_images) if reference_images is not None else None
    pool_size = min(GENERATED_POOL, POOL_PER_LATENT * n_latents) if pool_size is None else int(pool_size)
    pool = generated_pool(generator, pool_size, seed + 3) if reference_images is not None and pool_size > 0 else None
    results: dict[str, dict[str, Any]] = {}
    summaries: dict = {}  # every family moves the same base latents: their patches are summarised once
    differentiated = differentiated_quantities(names, hold)
    for method in methods:
        results[method] = {}
        for name in names:
            held = tuple(h for h in hold.get(name, ()) if h != name)
            if method == "local":  # every target's plain and conditional paths share one compiled program
                step_kwargs["also_differentiate"] = differentiated
            latents, plain = families.steer_traversal(
                method, generator, directions, z, name, (), alphas, keep_norm, **step_kwargs
            )
            _, conditioned = families.steer_traversal(
                method, generator, directions, z, name, held, alphas, keep_norm, **step_kwargs
            )
            rho = traversal_monotonicity(plain[name], alphas)
            rho_conditional = traversal_monotonicity(conditioned[name], alphas)
            target_slopes = _slopes(conditioned[name], alphas) / scales[name]
            leak = {}
            for other in held:
                held_slopes = _slopes(conditioned[other], alphas) / scales[other]
                leak[other] = _interval(
                    bootstrap_interval(_leakage_ratio, [held_slopes, target_slopes], resamples, seed)
                )
            pick = np.where(np.arange(n_latents) % 2 == 0, plus, minus)
            edited = latents[np.arange(n_latents), pick]
            span = alphas[-1] - alphas[0]
            results[method][name] = {
                "monotonicity": _interval(bootstrap_interval(np.mean, [rho], resamples, seed)),
                "monotonicity_conditional": _interval(bootstrap_interval(np.mean, [rho_conditional], resamples, seed)),
                "undefined_fraction": float(np.mean(~np.isfinite(plain[name]).all(axis=1))),
                "undefined_fraction_conditional": float(np.mean(~np.isfinite(conditioned[name]).all(axis=1))),
                "target_change": float(np.nanmedian(_slopes(plain[name], alphas)) * span / scales[name]),
                "held": list(held),
                "leakage": leak,
                "max_leakage": max((v["value"] for v in leak.values()), default=float("nan")),
                "realism": realism(generator, edited, latents[:, zero], data, summaries=summaries),
            }
            if reference_values is not None:
                results[method][name]["realism"].update(
                    matched_frechet_ratio(
                        generator,
                        edited,
                        latents[:, zero],
                        name,
                        reference_images,
                        reference_values,
                        pool=pool,
                        summaries=summaries,
                    )
                )
    report = {
        "settings": {
            "n_latents": n_latents,
            "alphas": alphas.tolist(),
            "keep_norm": keep_norm,
            "seed": seed,
            "hold": {n: list(hold.get(n, ())) for n in names},
            "realism_alpha": realism_alpha,
            "local_step": step if step is not None else local_lib.DEFAULT_STEP,
            "resamples": resamples,
            "generated_pool": pool_size if pool is not None else 0,
        },
        "results": results,
    }
    report["best"] = best_method(results)
    return report


def image_quantities(images: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    """Exact quantities name -> [M] of patches [M, 128, 128, 1] (in batches)."""
    chunks = [physics.quantities(images[start : start + batch]) for start in range(0, len(images), batch)]
    return {name: np.concatenate([np.asarray(c[name]) for c in chunks]) for name in physics.QUANTITY_NAMES}


def best_method(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The method with the highest mean (over quantities) lower interval end of plain monotonicity; ties go
    to the lower mean conditional leakage."""

    def score(method):
        rows = results[method].values()
        low = np.mean([r["monotonicity"]["low"] for r in rows])
        leak = np.nanmean([r["max_leakage"] for r in rows]) if rows else 0.0
        return (round(float(low), 3), -float(leak) if np.isfinite(leak) else 0.0)

    return max(results, key=score)


# ------------------------------------------------------------------------------------- figures
def _orthogonal_unit(normal: np.ndarray, seed: int) -> np.ndarray:
    """A seeded random unit vector orthogonal to ``normal``."""
    v = np.random.default_rng(seed).normal(size=normal.shape)
    v -= (v @ normal) * normal
    return v / np.linalg.norm(v)


def plot_latent_map(
    generator: Any,
    directions: Directions,
    name: str,
    path: str | os.PathLike,
    n_points: int = 1000,
    grid: int = 5,
    seed: int = 0,
) -> pathlib.Path:
    """The paper's Figure 3 for one quantity: latents on the (normal, orthogonal) plane.

    Latents z ~ N(0, I) are drawn at their signed distance to the boundary (x) and their
    projection on a random unit vector orthogonal to the normal (y), coloured by the exact
    quantity; the boundary is x = 0. Thumbnails: patches generated at a grid of (x, y) in
    [-3, 3]^2, from one base latent whose components along the two axes are replaced.
    """
    from matplotlib.figure import Figure

    generator = as_generator(generator)
    normal, intercept = directions.normal(name), directions.intercept(name)
    across = _orthogonal_unit(normal, seed)
    z = sample_latents(n_points, generator.latent_dim, seed)
    values = latent_quantities(generator, z)[name]
    x, y = z @ normal + intercept, z @ across
    positions = np.linspace(-3.0, 3.0, grid)
    base = sample_latents(1, generator.latent_dim, seed + 1)[0].astype(np.float64)
    base -= (base @ normal) * normal + (base @ across) * across
    thumbs_z = np.array([base + (gx - intercept) * normal + gy * across for gy in positions for gx in positions])
    thumbs = map_generated(generator, thumbs_z)

    figure = Figure(figsize=(11, 9), layout="constrained")
    ax = figure.add_subplot()
    points = ax.scatter(x, y, c=values, s=6, cmap="viridis", alpha=0.5, zorder=1)
    half = 0.3 * (positions[1] - positions[0]) if grid > 1 else 0.8
    for (gy, gx), image in zip(((gy, gx) for gy in positions for gx in positions), thumbs):
        field = plotting.show_field(ax, image, extent=(gx - half, gx + half, gy - half, gy + half), zorder=3)
    ax.axvline(0.0, color="k", lw=1.5, ls="--", zorder=4, label="decision boundary")
    ax.set_xlim(-3.6, 3.6)
    ax.set_ylim(-3.6, 3.6)
    ax.set_aspect("equal")
    ax.set_xlabel(f"signed distance to the {name} boundary (along its normal)")
    ax.set_ylabel("projection on an orthogonal unit direction")
    ax.set_title(f"{name}: SVM test accuracy {directions.test_accuracy[name]:.3f}")
    ax.legend(loc="upper left")
    figure.colorbar(points, ax=ax, label=name, shrink=0.8)
    figure.colorbar(field, ax=ax, label="Br [G]", shrink=0.8)
    return _save(figure, path)


def plot_traversal(
    generator: Any,
    z: np.ndarray,
    direction: np.ndarray | None,
    path: str | os.PathLike,
    alphas: np.ndarray = np.linspace(-3.0, 3.0, 7),
    scales: Mapping[str, float] | None = None,
    title: str = "",
    latents: np.ndarray | None = None,
) -> pathlib.Path:
    """The paper's Figure 4: one latent moved along a direction, with every quantity against alpha.

    Top: the patches at each alpha. Bottom: every exact quantity minus its value at the first
    alpha, in units of ``scales`` (prior standard deviations) when given. ``latents`` [A, D]
    (e.g. a local path) replaces the straight edit along ``direction``.
    """
    from matplotlib.figure import Figure

    generator = as_generator(generator)
    edited = (
        np.asarray(latents, np.float32)
        if latents is not None
        else np.asarray(edit(np.asarray(z, np.float32)[None], direction, np.asarray(alphas, np.float32)))[0]
    )
    images = map_generated(generator, edited)
    values = latent_quantities(generator, edited)
    figure = Figure(figsize=(2.0 * len(alphas) + 1.5, 6.5), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1.0, 1.3))
    axes = top.subplots(1, len(alphas))
    for ax, image, alpha in zip(np.atleast_1d(axes), images, alphas):
        field = plotting.show_field(ax, image)
        ax.set_title(f"alpha = {alpha:+.1f}")
        ax.set_xticks([])
        ax.set_yticks([])
    top.colorbar(field, ax=axes, label="Br [G]", shrink=0.9)
    top.suptitle(title)
    ax = bottom.subplots()
    for name in physics.QUANTITY_NAMES:
        scale = scales[name] if scales is not None else 1.0
        ax.plot(alphas, (values[name] - values[name][0]) / scale, marker="o", label=name)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("alpha")
    ax.set_ylabel("change from first alpha" + (" [prior std]" if scales is not None else ""))
    ax.legend(ncol=5, fontsize="small")
    return _save(figure, path)


def _save(figure, path: str | os.PathLike) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    return path


# -------------------------------------------------------------------------------------- report
def run_evaluation(
    generator: Any,
    directions: Directions,
    outdir: str | os.PathLike,
    n_latents: int = 100,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    targeting_latents: int = 20,
    requests: Sequence[Mapping[str, Any]] = DEFAULT_REQUESTS,
    seed: int = 0,
    figure_quantities: Sequence[str] = FIGURE_QUANTITIES,
    methods: Sequence[str] | None = None,
    names: Sequence[str] = EVALUATED_QUANTITIES,
    reference_images: np.ndarray | None = None,
    local_step: float | None = None,
    **steer_kwargs,
) -> dict[str, Any]:
    """Evaluates the steering families and targeting, and writes ``report.json`` and the figures to ``outdir``.

    Args:
      methods: families to compare (default: every family the directions can serve).
      names: quantities every family is evaluated on.
      reference_images: data patches [M, 128, 128, 1] for the realism guard (None: edited against
        unedited only).
      local_step: path length of one local step (default `solarjax.steering.local.DEFAULT_STEP`).
      **steer_kwargs: passed to `steer_to` by the targeting evaluation.

    Returns:
      The report: {'fingerprint', 'directions' (`Directions.summary`), 'diagnosis', 'families'
      (`evaluate_families`), 'best_method', 'targeting' (`evaluate_targeting`), 'figures' (paths
      relative to ``outdir``), 'seconds' (wall time of the families, the targeting and the figures)}.
    """
    from solarjax.steering import families as families_lib
    from solarjax.steering import local as local_lib

    generator = as_generator(generator)
    if directions.fingerprint != generator.fingerprint:
        raise ValueError(
            f"directions of generator {directions.fingerprint!r} cannot evaluate generator {generator.fingerprint!r}"
        )
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    if methods is None:
        methods = tuple(m for m in FAMILIES if m != "piecewise" or directions.has_piecewise)
    seconds, started = {}, time.perf_counter()
    families = evaluate_families(
        generator,
        directions,
        methods=methods,
        names=names,
        n_latents=n_latents,
        alphas=alphas,
        seed=seed,
        reference_images=reference_images,
        step=local_step,
    )
    seconds["families"], started = time.perf_counter() - started, time.perf_counter()
    targeting = evaluate_targeting(
        generator, requests, n_latents=targeting_latents, seed=seed + 1, scales=directions.std, **steer_kwargs
    )
    seconds["targeting"], started = time.perf_counter() - started, time.perf_counter()
    base = sample_latents(1, generator.latent_dim, seed + 2)[0]
    figures = []
    for name in figure_quantities:
        if name in directions.names:
            figures.append(
                plot_latent_map(
                    generator,
                    directions,
                    name,
                    outdir / f"latent_map_{name}.png",
                    seed=seed,
                    n_points=min(1000, int(directions.settings.get("n", 1000))),
                )
            )
            figures.append(
                plot_traversal(
                    generator,
                    base,
                    directions.normal(name),
                    outdir / f"traversal_{name}.png",
                    scales=directions.std,
                    title=f"{name} up (SVM normal)",
                )
            )
    if "local" in methods and "tuf" in directions.names:
        figure_alphas = np.linspace(-3.0, 3.0, 7)
        path = families_lib.steer_latents(
            "local",
            generator,
            directions,
            base[None],
            "tuf",
            ("psep",),
            figure_alphas,
            step=local_lib.DEFAULT_STEP if local_step is None else local_step,
            also_differentiate=differentiated_quantities(names, EVALUATION_HOLD),  # the evaluation's program
        )
        figures.append(
            plot_traversal(
                generator,
                base,
                None,
                outdir / "traversal_tuf_local.png",
                alphas=figure_alphas,
                scales=directions.std,
                title="tuf up, psep held (local path)",
                latents=path[0],
            )
        )
    primal, held = CONDITIONAL_EXAMPLE
    if primal in directions.names and all(h in directions.names for h in held):
        figures.append(
            plot_traversal(
                generator,
                base,
                directions.direction(primal, held),
                outdir / f"traversal_{primal}_conditional.png",
                scales=directions.std,
                title=f"{primal} up, {' and '.join(held)} held (conditional direction)",
            )
        )
    seconds["figures"] = time.perf_counter() - started
    report = {
        "fingerprint": generator.fingerprint,
        "directions": directions.summary(),
        "diagnosis": directions.diagnosis,
        "families": families,
        "best_method": families["best"],
        "targeting": targeting,
        "figures": [str(p.relative_to(outdir)) for p in figures],
        "seconds": {name: round(value, 1) for name, value in seconds.items()},
    }
    (outdir / "report.json").write_text(json.dumps(jsonable(report), indent=2))
    return report


def load_best_method(evaluation_dir: str | os.PathLike, default: str = "paper") -> str:
    """The best family recorded in ``evaluation_dir/report.json`` (``default`` when there is none)."""
    path = pathlib.Path(evaluation_dir) / "report.json"
    try:
        best = json.loads(path.read_text()).get("best_method")
    except (OSError, ValueError, AttributeError):
        return default
    return best if best in FAMILIES else default
