"""Mining a CME archive for rare cases, and for 'more like this generated query'.

Rarity scores (higher = rarer), each of one row of a feature matrix [N, D] against all others:

- `knn_rarity`: distance to the k-th nearest other row (a k-NN density estimate: rare rows live where
  the archive is sparse); on SSL embeddings, pixels, thumbnails or the measured quantities alike;
- `property_rarity`: Mahalanobis distance of the standardised measured CME quantities (CPA as cos/sin,
  width, front height, log excess) from their mean (an outlier in property space).

- `secondary_front_share`: the share of a CME's excess outside its main front in the angular profile
  (`solarjax.cme_physics.angular_profile`): about 0 for one CME (a halo included), the weaker front's share
  when two CMEs are seen at once;
- `combined_rarity`: the larger of several scores' percentile ranks, so the top of the ranking holds the top
  of each; `archive_rarity` is the ranking the CME demo reports: SSL k-NN distance (k = `KNN_K`) combined
  with the secondary-front share (gaps up to `FRONT_GAP_DEG` closed). k and the gap were chosen on half of
  the planted cases and tested on the other half (`experiments/cme_mining.py`; figures in experiments/README.md).

`recall_at_top` scores a ranking against known rare rows (the planted double CMEs of
`solarjax.data.cme_synthetic`): the share of rare rows in the top `fraction` of the ranking, with a
bootstrap 95% interval over rows (rows resampled, scores re-ranked).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

TOP_FRACTION = 0.05
KNN_K = 1
"""k of the k-NN distance, chosen on validation cases (k = 1 won in every space and fold, k in 1..100)."""
FRONT_GAP_DEG = 2
"""Empty position-angle bins (deg) a front may span, chosen on validation cases (of 0, 2, 4, 10, 20)."""


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def knn_rarity(features: np.ndarray, k: int = KNN_K, block: int = 1024) -> np.ndarray:
    """float64 [N]: Euclidean distance of each row of features [N, D] to its k-th nearest other row."""
    features = np.asarray(features, np.float64).reshape(len(features), -1)
    if not 1 <= k < len(features):
        raise ValueError(f"k must be in [1, {len(features) - 1}], got {k}")
    out = np.empty(len(features))
    for start in range(0, len(features), block):
        distances = _squared_distances(features[start : start + block], features)
        rows = np.arange(start, min(start + block, len(features)))
        distances[rows - start, rows] = np.inf  # not its own neighbour
        out[rows] = np.sqrt(np.partition(distances, k - 1, axis=1)[:, k - 1])
    return out


def property_features(quantities: Mapping[str, np.ndarray]) -> np.ndarray:
    """[N, 5] cos CPA, sin CPA, width, front height, log(1 + excess) (NaN -> the column median)."""
    radians = np.radians(np.asarray(quantities["cpa_deg"], np.float64))
    columns = np.stack(
        [
            np.cos(radians),
            np.sin(radians),
            np.asarray(quantities["width_deg"], np.float64),
            np.asarray(quantities["front_height_rsun"], np.float64),
            np.log1p(np.maximum(np.asarray(quantities["excess"], np.float64), 0.0)),
        ],
        axis=1,
    )
    median = np.nanmedian(columns, axis=0)
    return np.where(np.isfinite(columns), columns, np.nan_to_num(median))


def property_rarity(quantities: Mapping[str, np.ndarray]) -> np.ndarray:
    """float64 [N]: Mahalanobis distance of `property_features` from their mean (covariance of all rows)."""
    x = property_features(quantities)
    centred = x - x.mean(0)
    precision = np.linalg.pinv(np.cov(centred, rowvar=False))
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", centred, precision, centred), 0.0))


def _close_gaps(active: np.ndarray, gap: int) -> np.ndarray:
    """bool [N, B]: active [N, B] (bins on a circle) with every run of at most `gap` inactive bins between two
    active ones filled."""
    n, b = active.shape
    index = np.arange(3 * b)
    tiled = np.tile(active, 3)
    previous = np.maximum.accumulate(np.where(tiled, index, -4 * b), axis=1)[:, b : 2 * b]
    following = np.minimum.accumulate(np.where(tiled, index, 8 * b)[:, ::-1], axis=1)[:, ::-1][:, b : 2 * b]
    return active | (following - previous - 1 <= gap)


def secondary_front_share(profile: np.ndarray, gap_deg: int = FRONT_GAP_DEG) -> np.ndarray:
    """float64 [N] in [0, 1]: the share of each angular profile's excess outside its main front.

    Args:
      profile: [N, B] non-negative excess per position-angle bin, circular (`cme_physics.angular_profile`).
      gap_deg: a front is a circular run of bins with excess; runs of at most this many empty bins inside
        it are closed (a front seen near the occulter leaves empty 1-degree bins between its pixels).

    One front (a halo's full circle included) gives 0; two separate fronts give the share of all but the
    one with the most excess; an empty profile gives 0.
    """
    profile = np.asarray(profile, np.float64)
    n, b = profile.shape
    closed = _close_gaps(profile > 0, int(gap_deg))
    total = profile.sum(1)
    first_empty = np.argmin(closed, axis=1)  # start each circle at an empty bin: no front wraps past it
    order = (first_empty[:, None] + np.arange(b)[None]) % b
    closed, values = np.take_along_axis(closed, order, 1), np.take_along_axis(profile, order, 1)
    starts = closed & ~np.pad(closed, ((0, 0), (1, 0)))[:, :-1]
    front = np.cumsum(starts, axis=1) * closed  # 0: no front, 1, 2, ...: the fronts in angular order
    keys = (np.arange(n)[:, None] * (b + 1) + front).reshape(-1)
    sums = np.bincount(keys, weights=values.reshape(-1), minlength=n * (b + 1)).reshape(n, b + 1)
    main = sums[:, 1:].max(axis=1)
    one_front = closed.all(axis=1) | (total <= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(one_front, 0.0, np.clip(1.0 - main / np.where(total > 0, total, 1.0), 0.0, 1.0))


def percentile_ranks(scores: np.ndarray) -> np.ndarray:
    """float64 [N] in [0, 1]: 1 for the highest score, 0 for the lowest; tied scores share their mean rank."""
    import scipy.stats

    scores = np.asarray(scores, np.float64)
    return (scipy.stats.rankdata(scores) - 1.0) / max(len(scores) - 1, 1)


def combined_rarity(*scores: np.ndarray) -> np.ndarray:
    """float64 [N]: the largest percentile rank of each row over the given scores (each [N], higher =
    rarer), ties broken by the mean rank: a row in the top of any one ranking is in the top of this one."""
    ranks = np.stack([percentile_ranks(s) for s in scores])
    return ranks.max(0) + 1e-6 * ranks.mean(0)


def archive_rarity(embedding: np.ndarray, images: np.ndarray) -> dict[str, np.ndarray]:
    """The CME demo's rarity of an archive: embedding [N, D] (SSL), images [N, 128, 128(, 1)] (difference images).

    Returns float64 [N] scores (higher = rarer): 'ssl_knn' (`knn_rarity`, k = `KNN_K`), 'secondary_front'
    (`secondary_front_share`) and 'combined' (`combined_rarity` of the two; the ranking to report).
    """
    from solarjax.cme_physics import angular_profile

    ssl = knn_rarity(embedding, k=KNN_K)
    front = secondary_front_share(np.asarray(angular_profile(images)), FRONT_GAP_DEG)
    return {"ssl_knn": ssl, "secondary_front": front, "combined": combined_rarity(ssl, front)}


def top_rows(scores: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    """Indices of the top ceil(fraction N) scores, highest first."""
    count = int(np.ceil(fraction * len(scores)))
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")[:count]


def recall_at_top(
    scores: np.ndarray, is_rare: np.ndarray, fraction: float = TOP_FRACTION, resamples: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Share of rare rows in the top `fraction` of `scores`, with a bootstrap 95% interval over rows.

    Returns:
      {'value', 'low', 'high', 'rare': count of rare rows, 'top': rows in the top}.
    """
    scores, is_rare = np.asarray(scores, np.float64), np.asarray(is_rare, bool)
    if not is_rare.any():
        raise ValueError("no rare row to find")

    def recall(s, r):
        if not r.any():
            return np.nan
        return float(r[top_rows(s, fraction)].sum() / r.sum())

    rng = np.random.default_rng(seed)
    draws = [
        recall(scores[rows], is_rare[rows])
        for rows in (rng.integers(0, len(scores), len(scores)) for _ in range(resamples))
    ]
    draws = np.asarray(draws)[np.isfinite(draws)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return {
        "value": recall(scores, is_rare),
        "low": float(low),
        "high": float(high),
        "rare": int(is_rare.sum()),
        "top": int(np.ceil(fraction * len(scores))),
    }


def top_quartile_share(
    neighbours: np.ndarray, columns: Mapping[str, np.ndarray], resamples: int = 1000, seed: int = 0
) -> dict[str, dict[str, float]]:
    """How many of each query's neighbours lie in the database's top quartile of each column, and of all.

    Args:
      neighbours: int [Q, k] database rows of each query's top-k (-1: no match, counted as a miss).
      columns: name -> [N] database values (e.g. true width and true excess).

    Returns:
      {name or 'all': {'value': mean over queries of the share of the top-k in the top quartile, 'low',
      'high' (bootstrap 95% over queries)}}.
    """
    inside = {name: np.asarray(values, np.float64) >= np.nanpercentile(values, 75) for name, values in columns.items()}
    inside["all"] = np.logical_and.reduce(list(inside.values()))
    rng = np.random.default_rng(seed)
    out = {}
    for name, flags in inside.items():
        per_query = np.append(flags, False)[neighbours].mean(axis=1)  # row -1 (no match): a miss
        draws = [per_query[rng.integers(0, len(per_query), len(per_query))].mean() for _ in range(resamples)]
        low, high = np.percentile(draws, [2.5, 97.5])
        out[name] = {"value": float(per_query.mean()), "low": float(low), "high": float(high)}
    return out
