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
  ``folded_norm`` = [s z, |z| - sqrt(D)]; ``quadratic`` = [z, z * z - 1] (axis-aligned second order);
  ``hidden`` = [z, h1(z)] with h1 = LeakyReLU(W z + b) the activations of the generator's first
  (dense) layer, reduced to its leading `HIDDEN_COMPONENTS` principal components (fitted on training
  latents) and whitened: the intermediate feature space, like StyleGAN's W. A quantity linear in h1
  but not in z is bent by the first layer's nonlinearity; only for generators whose parameters hold
  a first dense layer (``Dense_0``), otherwise left out;
* ``polarity_statistics``: `polarity_statistics` of the generated patch G(z) (per 32-pixel block the
  field's mean, mean magnitude and |mean|, the strong positive and negative fractions, and from
  4-pixel sub-blocks polarity mixing and coexistence of the strong polarities), standardised on the
  training latents. Not a function of z that a latent direction can follow, but where each quantity
  becomes linear: a quantity linear here and in no set of z is bent by the generator's later
  layers; left out for patches whose sides are not multiples of `POLARITY_FINE`;
* ``structure``: the simplest feature set of z whose accuracy is within 0.01 of the best, named
  (`STRUCTURES`); where no set of z reaches 0.85 and the polarity statistics do better, those.

One generator-level figure: ``generator_odd_fraction``, the fraction of the variance of G(z) about
its mean image that is odd in z, from patches of latents and their negations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

FEATURE_SETS = ("z", "z_norm", "folded", "folded_norm", "quadratic", "hidden", "polarity_statistics")
STRUCTURES = {
    "z": "linear: a global boundary in z orders it",
    "z_norm": "radial: it grows with |z|, a boundary needs |z|",
    "folded": "sign-symmetric: even under z -> -z (odd generator); linear on each side of the leading-polarity "
    "boundary",
    "folded_norm": "sign-symmetric and radial: linear in folded z together with |z|",
    "quadratic": "axis-aligned second order: linear in z and the squares of its coordinates",
    "hidden": "bent by the first layer: linear in the generator's first-layer activations h1(z), not in z",
    "polarity_statistics": "bent by the generator: linear in the patch's polarity statistics (block field means, "
    "strong-polarity fractions, fine-scale mixing), in no feature set of z",
}
STANDARDISED = ("polarity_statistics",)
OF_THE_PATCH = ("polarity_statistics",)
"""Feature sets of the generated patch, not of z: named as the structure only where no set of z reaches
`LINEAR_ENOUGH`."""
LINEAR_ENOUGH = 0.85
"""Held-out accuracy at which a feature set of z counts as explaining the quantity (the issue's target)."""
"""Feature sets standardised (on the training latents) before their SVM; the sets of z are used as they are."""
HIDDEN_COMPONENTS = 256
"""Principal components of h1 kept by the ``hidden`` feature set (bounds its cost for wide layers)."""
HIDDEN_FIT_LATENTS = 1024
"""Training latents on which the principal components of h1 are fitted."""
LEAKY_SLOPE = 0.2
NO_STRUCTURE = "none of these: no feature set reaches accuracy 0.75"
TIE = 0.01
"""A simpler feature set is named when its accuracy is within this of the best."""
POLARITY_GRID = 4
"""Blocks per side of `polarity_statistics` (32-pixel blocks on 128 x 128 patches)."""
POLARITY_FINE = 32
"""Sub-blocks per side of its fine-scale statistics (4 pixels on 128 x 128 patches, the scale of R's dilation)."""
POLARITY_THRESHOLD = 0.15
"""Strong-field threshold of `polarity_statistics` (normalised field; 150 G, as `solarjax.physics`)."""
OUTPUT_CLIP = 0.999
"""Images are clipped to +-this before `polarity_statistics` takes their arctanh."""


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


def _block_means(x, grid: int, xp=np):
    """[N, grid, grid] block means of x [N, H, W] (H and W multiples of ``grid``)."""
    n, height, width = x.shape
    if height % grid or width % grid:
        raise ValueError(f"image of {height} x {width} pixels cannot be split into {grid} x {grid} blocks")
    return x.reshape(n, grid, height // grid, grid, width // grid).mean(axis=(2, 4))


def polarity_statistics_fit(height: int, width: int, grid: int = POLARITY_GRID, fine: int = POLARITY_FINE) -> bool:
    """Whether patches of height x width pixels split into the blocks of `polarity_statistics`."""
    return fine % grid == 0 and height % fine == 0 and width % fine == 0


def polarity_statistics(
    images, grid: int = POLARITY_GRID, fine: int = POLARITY_FINE, threshold: float = POLARITY_THRESHOLD, xp=np
):
    """[N, 7 * grid * grid] polarity-resolved statistics of patches [N, H, W] or [N, H, W, 1] in [-1, 1].

    With a = arctanh(s) (a monotone stretch of the field: a plain tanh generator's output before its tanh,
    arctanh(1.1 tanh x) below the clip for the clipped ones, `models.gan.clipped_tanh`), per block of a
    ``grid`` x ``grid`` split: mean(a), mean(|a|), |mean(a)|, fraction of s > threshold, fraction of s < -threshold, and
    over the block's sub-blocks of a ``fine`` x ``fine`` split the means of mean(|a|) - |mean(a)|
    (polarity mixing) and of sqrt(fraction positive x fraction negative) (coexistence of the strong
    polarities). Features are statistic-major, blocks row-major. ``fine`` must be a multiple of
    ``grid``; ``xp``: numpy, or jax.numpy inside a jitted function.
    """
    if fine % grid:
        raise ValueError(f"fine split {fine} must be a multiple of grid {grid}")
    s = images[..., 0] if images.ndim == 4 else images
    s = s if xp is not np else np.asarray(s, np.float64)
    a = xp.arctanh(xp.clip(s, -OUTPUT_CLIP, OUTPUT_CLIP))
    positive = (s > threshold).astype(a.dtype)
    negative = (s < -threshold).astype(a.dtype)
    fine_mean = _block_means(a, fine, xp)
    mixing = _block_means(xp.abs(a), fine, xp) - xp.abs(fine_mean)
    coexistence = xp.sqrt(_block_means(positive, fine, xp) * _block_means(negative, fine, xp))
    block_mean = _block_means(a, grid, xp)
    stats = [
        block_mean,
        _block_means(xp.abs(a), grid, xp),
        xp.abs(block_mean),
        _block_means(positive, grid, xp),
        _block_means(negative, grid, xp),
        _block_means(mixing, grid, xp),
        _block_means(coexistence, grid, xp),
    ]
    return xp.concatenate([x.reshape(x.shape[0], -1) for x in stats], axis=1)


def feature_sets(
    z: np.ndarray, side: np.ndarray, hidden: np.ndarray | None = None, polarity: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """The feature sets of latents z [N, D] with sides [N] in {-1, +1}: name -> [N, F].

    ``hidden`` [N, K] (e.g. `hidden_features`) adds the 'hidden' set [z, hidden]; ``polarity`` [N, P]
    (`polarity_statistics` of G(z)) the 'polarity_statistics' set; without them those sets are left out.
    """
    radius = np.linalg.norm(z, axis=1, keepdims=True) - np.sqrt(z.shape[1])
    folded = z * side[:, None]
    sets = {
        "z": z,
        "z_norm": np.hstack([z, radius]),
        "folded": folded,
        "folded_norm": np.hstack([folded, radius]),
        "quadratic": np.hstack([z, z * z - 1.0]),
    }
    if hidden is not None:
        sets["hidden"] = np.hstack([z, hidden])
    if polarity is not None:
        sets["polarity_statistics"] = np.asarray(polarity, np.float64)
    return sets


def first_dense_layer(params: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(kernel [D, H], bias [H]) of the generator's first dense layer (``params['Dense_0']``), or None."""
    layer = params.get("Dense_0") if isinstance(params, Mapping) else None
    if not isinstance(layer, Mapping) or "kernel" not in layer:
        return None
    kernel = np.asarray(layer["kernel"], np.float32)
    bias = np.asarray(layer.get("bias", np.zeros(kernel.shape[1])), np.float32)
    return (kernel, bias) if kernel.ndim == 2 and bias.shape == (kernel.shape[1],) else None


def hidden_features(
    kernel: np.ndarray,
    bias: np.ndarray,
    z: np.ndarray,
    train: np.ndarray,
    components: int = HIDDEN_COMPONENTS,
    fit_latents: int = HIDDEN_FIT_LATENTS,
    batch: int = 1024,
) -> np.ndarray:
    """[N, K] whitened principal components of h1 = LeakyReLU(0.2)(z W + b), K <= ``components``.

    Args:
      kernel: [D, H] and bias: [H], the first dense layer; z: [N, D] latents;
      train: [N] mask; the components are fitted on its first ``fit_latents`` latents only.
    """

    def activations(rows):
        pre = np.asarray(rows, np.float32) @ kernel + bias
        return np.where(pre >= 0, pre, LEAKY_SLOPE * pre)

    fit = activations(z[np.flatnonzero(train)[:fit_latents]])
    mean = fit.mean(axis=0)
    _, singular, basis = np.linalg.svd(fit - mean, full_matrices=False)
    keep = min(components, int(np.sum(singular > singular[0] * 1e-6)))
    projection = basis[:keep].T / (singular[:keep] / np.sqrt(max(len(fit) - 1, 1)))  # whitened
    return np.concatenate(
        [(activations(z[start : start + batch]) - mean) @ projection for start in range(0, len(z), batch)]
    ).astype(np.float64)


def boundary_accuracy(
    features: np.ndarray, high: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int, standardise: bool = False
) -> float:
    """Held-out accuracy of a linear SVM (C = 1, as the paper's) on boolean labels ``high``; with
    ``standardise`` each feature is first scaled to zero mean and unit variance on the training rows."""
    from sklearn.svm import LinearSVC

    if standardise:
        mean, scale = features[train].mean(axis=0), features[train].std(axis=0)
        features = (features - mean) / np.where(scale > 0, scale, 1.0)
    iterations = 20_000 if standardise else 10_000
    model = LinearSVC(C=1.0, dual="auto", max_iter=iterations, random_state=seed).fit(features[train], high[train])
    return float(np.mean(model.predict(features[test]) == high[test]))


def name_structure(accuracy: Mapping[str, float]) -> str:
    """The key of `STRUCTURES` of the simplest feature set of z within `TIE` of the best; where no set of z
    reaches `LINEAR_ENOUGH`, 'polarity_statistics' when that set does better; 'none' below 0.75."""
    measured = {name: value for name, value in accuracy.items() if np.isfinite(value)}
    latent = {name: value for name, value in measured.items() if name not in OF_THE_PATCH}
    best_latent = max(latent.values(), default=float("nan"))
    patch = max((measured[name] for name in OF_THE_PATCH if name in measured), default=float("nan"))
    if not best_latent >= LINEAR_ENOUGH and patch > (best_latent if np.isfinite(best_latent) else 0.0):
        return next(name for name in OF_THE_PATCH if measured.get(name) == patch) if patch >= 0.75 else "none"
    if not best_latent >= 0.75:
        return "none"
    return next(name for name in FEATURE_SETS if name in latent and latent[name] >= best_latent - TIE)


def diagnose_quantity(
    z: np.ndarray,
    side: np.ndarray,
    high: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    at_z: np.ndarray,
    at_minus_z: np.ndarray,
    at_rotated: list[np.ndarray],
    seed: int,
    known: Mapping[str, float] | None = None,
    hidden: np.ndarray | None = None,
    polarity: np.ndarray | None = None,
) -> dict[str, Any]:
    """Figures of one quantity (see the module docstring).

    Args:
      z: [N, D] latents; side: [N] +-1 side of the split boundary; high: [N] labels;
      train, test: [N] masks of the labelled latents of each split;
      at_z, at_minus_z: [M] quantity at the symmetry latents and at their negations;
      at_rotated: list of [M] quantity at the rotated symmetry latents.
      known: feature set -> accuracy already measured the same way (e.g. 'z': the paper's SVM), not refitted.
      hidden: [N, K] `hidden_features` of z, for the 'hidden' feature set (left out when None).
      polarity: [N, P] `polarity_statistics` of G(z), for the 'polarity_statistics' set (left out when None).
    """
    known = dict(known or {})
    accuracy = {
        name: known[name]
        if name in known
        else boundary_accuracy(features, high, train, test, seed, standardise=name in STANDARDISED)
        for name, features in feature_sets(z, side, hidden, polarity).items()
    }
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
