"""Why a global linear boundary fails: the geometry of each quantity in the generator's latent space.

Figures per quantity q (on held-out latents of `fit_directions`):

* ``odd_fraction``: the fraction of the variance of q that is odd in z, var(q_odd) / (var(q_odd) +
  var(q_even)) with q_odd(z) = (q(z) - q(-z)) / 2 and q_even(z) = (q(z) + q(-z)) / 2;
* ``corr_negation``: Pearson correlation of q(z) with q(-z);
* ``corr_rotation``: mean Pearson correlation of q(z) with q(Qz) over random rotations Q (Haar).
  A quantity that only grows with |z| scores high on both; a quantity even in z because the
  generator is odd scores high on the first only;
* ``accuracy``: held-out accuracy of a linear SVM (as the paper's, on the same median labels and
  split) on four feature sets: ``z``; ``z_norm`` = [z, |z| - sqrt(D)]; ``folded`` = s z with
  s = sign(n . z + b) the side of the leading-polarity boundary (it maps z and -z to one point);
  ``folded_norm`` = [s z, |z| - sqrt(D)];
* ``structure``: the simplest feature set whose accuracy is within 0.01 of the best, named
  (`STRUCTURES`).

One generator-level figure: ``generator_odd_fraction``, the fraction of the variance of G(z) about
its mean image that is odd in z, from patches of latents and their negations.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

FEATURE_SETS = ("z", "z_norm", "folded", "folded_norm")
STRUCTURES = {
    "z": "linear: a global boundary in z orders it",
    "z_norm": "radial: it grows with |z|, a boundary needs |z|",
    "folded": "sign-symmetric: even under z -> -z (odd generator); linear on each side of the leading-polarity "
              "boundary",
    "folded_norm": "sign-symmetric and radial: linear in folded z together with |z|",
}
NO_STRUCTURE = "none of these: no feature set reaches accuracy 0.75"
TIE = 0.01
"""A simpler feature set is named when its accuracy is within this of the best."""


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the entries where both are finite (NaN if fewer than 3 or constant)."""
    both = np.isfinite(a) & np.isfinite(b)
    if both.sum() < 3 or np.std(a[both]) == 0 or np.std(b[both]) == 0:
        return float("nan")
    return float(np.corrcoef(a[both], b[both])[0, 1])


def odd_fraction(at_z: np.ndarray, at_minus_z: np.ndarray) -> float:
    """Fraction of the variance odd in z, from values (or flattened patches) at z and -z [N, ...]."""
    at_z, at_minus_z = np.asarray(at_z, np.float64), np.asarray(at_minus_z, np.float64)
    both = np.isfinite(at_z) & np.isfinite(at_minus_z)
    if at_z.ndim > 1:
        both = both.reshape(len(at_z), -1).all(axis=1)
    if both.sum() < 3:
        return float("nan")
    odd = (at_z[both] - at_minus_z[both]) / 2
    even = (at_z[both] + at_minus_z[both]) / 2
    odd_power = np.sum((odd - odd.mean(axis=0)) ** 2)
    even_power = np.sum((even - even.mean(axis=0)) ** 2)
    total = odd_power + even_power
    return float(odd_power / total) if total > 0 else float("nan")


def random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """[dim, dim] Haar-random orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def feature_sets(z: np.ndarray, side: np.ndarray) -> dict[str, np.ndarray]:
    """The four feature sets of latents z [N, D] with sides [N] in {-1, +1}: name -> [N, F]."""
    radius = np.linalg.norm(z, axis=1, keepdims=True) - np.sqrt(z.shape[1])
    folded = z * side[:, None]
    return {"z": z, "z_norm": np.hstack([z, radius]), "folded": folded, "folded_norm": np.hstack([folded, radius])}


def boundary_accuracy(features: np.ndarray, high: np.ndarray, train: np.ndarray, test: np.ndarray,
                      seed: int) -> float:
    """Held-out accuracy of a linear SVM (C = 1, as the paper's) on boolean labels ``high``."""
    from sklearn.svm import LinearSVC

    model = LinearSVC(C=1.0, dual="auto", max_iter=10_000, random_state=seed).fit(features[train], high[train])
    return float(np.mean(model.predict(features[test]) == high[test]))


def name_structure(accuracy: Mapping[str, float]) -> str:
    """The key of `STRUCTURES` of the simplest feature set within `TIE` of the best, or 'none'."""
    best = max(accuracy.values())
    if not best >= 0.75:
        return "none"
    return next(name for name in FEATURE_SETS if accuracy[name] >= best - TIE)


def diagnose_quantity(z: np.ndarray, side: np.ndarray, high: np.ndarray, train: np.ndarray, test: np.ndarray,
                      at_z: np.ndarray, at_minus_z: np.ndarray, at_rotated: list[np.ndarray],
                      seed: int, known: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Figures of one quantity (see the module docstring).

    Args:
      z: [N, D] latents; side: [N] +-1 side of the split boundary; high: [N] labels;
      train, test: [N] masks of the labelled latents of each split;
      at_z, at_minus_z: [M] quantity at the symmetry latents and at their negations;
      at_rotated: list of [M] quantity at the rotated symmetry latents.
      known: feature set -> accuracy already measured the same way (e.g. 'z': the paper's SVM), not refitted.
    """
    known = dict(known or {})
    accuracy = {name: known[name] if name in known else boundary_accuracy(features, high, train, test, seed)
                for name, features in feature_sets(z, side).items()}
    structure = name_structure(accuracy)
    return {
        "odd_fraction": odd_fraction(at_z, at_minus_z),
        "corr_negation": pearson(at_z, at_minus_z),
        "corr_rotation": float(np.nanmean([pearson(at_z, r) for r in at_rotated])) if at_rotated else float("nan"),
        "accuracy": accuracy,
        "best_features": max(accuracy, key=accuracy.get),
        "best_accuracy": max(accuracy.values()),
        "structure": structure,
        "explanation": STRUCTURES.get(structure, NO_STRUCTURE),
    }
