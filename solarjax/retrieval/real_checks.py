"""Real-data checks of retrieval with truth nobody here computed: region identity across time, and
the JSOC header keywords of query and match.

Both checks search a set of N frames with each frame as a query (every method over the same rows,
with the same exclusions) and take generic arrays, so they run unchanged on 40 frames, on a user's
thousands, or on synthetic region sequences (region id + time):

* `same_region_precision`: candidates of the query's own region closer in time than
  ``min_gap_hours`` (default 12 h) are excluded, as is the query itself; a hit is a top-1 match of
  the same region, hence at least ``min_gap_hours`` away. Only queries whose region has a frame at
  least that far away take part (the same queries for every method). The random baseline is its
  exact expectation, (same-region candidates) / (allowed candidates) per query.
* `keyword_agreement`: every frame of the query's own region is excluded; for each header keyword
  (USFLUX, R_VALUE, AREA_ACR, MEANGBZ of `solarjax.data.read_sharp`'s meta), Spearman and Pearson
  between the query's value and its top-1 match's, over the queries where every method's pair is
  defined. The random baseline is a seeded uniformly random allowed row.

Methods are `Ranker` callables, built by `feature_ranker` (Euclidean nearest rows of any feature
matrix: SSL embeddings, pixels, thumbnails, an untrained encoder, standardised physics) and
`hybrid_ranker` (`solarjax.retrieval.ranking`'s hybrid on SSL candidates). Intervals: paired
percentile bootstrap over queries (`solarjax.retrieval.bootstrap`).

Region ids <= 0 mean "no region": such a frame is never excluded by region and never a hit.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from solarjax.retrieval import bootstrap
from solarjax.retrieval import ranking as ranking_lib
from solarjax.retrieval.index import BLOCK_ROWS, exact_top_k

HEADER_KEYWORDS = ("USFLUX", "R_VALUE", "AREA_ACR", "MEANGBZ")
"""SHARP summary keywords scored by `keyword_agreement` by default."""

MIN_GAP_HOURS = 12.0

AllowedFn = Callable[[slice, np.ndarray], np.ndarray]
Ranker = Callable[[np.ndarray, AllowedFn, int], np.ndarray]
"""``ranker(query_rows [Q], allowed, k) -> int64 [Q, k]`` nearest allowed rows (-1 where fewer)."""


def hours_since_epoch(times: Sequence[Any] | np.ndarray) -> np.ndarray:
    """float64 [N] hours since 1970 from datetime64, datetime, ISO text, or numbers (taken as hours)."""
    array = np.asarray(times)
    if array.dtype.kind in "iuf":
        return array.astype(np.float64)
    if array.dtype.kind != "M":
        array = np.array(
            [
                np.datetime64(t.replace(tzinfo=None) if isinstance(t, datetime.datetime) and t.tzinfo else t, "s")
                for t in array.tolist()
            ]
        )
    return array.astype("datetime64[s]").astype(np.float64) / 3600.0


def exclusion(query_rows: np.ndarray, region: np.ndarray, hours: np.ndarray, window_hours: float | None) -> AllowedFn:
    """Row filter: query q may not return its own row, nor (when ``window_hours`` is given) a row of
    its region with |t - t_q| < window_hours; ``window_hours=None`` excludes its whole region.

    Args:
      query_rows: int64 [Q] the queries' rows; region: int [N]; hours: float [N].
    """
    query_rows = np.asarray(query_rows, np.int64)
    region = np.asarray(region)
    hours = np.asarray(hours, np.float64)

    def allowed(chunk: slice, rows: np.ndarray) -> np.ndarray:
        own = query_rows[chunk]
        rows = np.asarray(rows, np.int64)
        same_region = (region[own][:, None] == region[rows][None, :]) & (region[own][:, None] > 0)
        if window_hours is not None:
            same_region &= np.abs(hours[own][:, None] - hours[rows][None, :]) < window_hours
        return (own[:, None] != rows[None, :]) & ~same_region

    return allowed


def feature_ranker(features: np.ndarray) -> Ranker:
    """Euclidean nearest rows of ``features`` [N, D] (the queries are rows of the same matrix)."""
    features = np.asarray(features, np.float32)

    def rank(query_rows: np.ndarray, allowed: AllowedFn, k: int) -> np.ndarray:
        blocks = (
            (np.arange(s, min(s + BLOCK_ROWS, len(features))), features[s : s + BLOCK_ROWS])
            for s in range(0, len(features), BLOCK_ROWS)
        )
        rows, _ = exact_top_k(features[query_rows], blocks, k, "l2", allowed=allowed)
        return rows

    return rank


def physics_features(values: np.ndarray) -> np.ndarray:
    """float32 [N, P] standardised quantities (undefined -> 0) for a physics `feature_ranker`."""
    values = np.asarray(values, np.float64)
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in values.T])
    return np.where(np.isfinite(values), (values - mean) / ranking_lib.standard_scale(values), 0.0).astype(np.float32)


def hybrid_ranker(
    embeddings: np.ndarray, values: np.ndarray, weight: float, candidates: int = ranking_lib.DEFAULT_CANDIDATES
) -> Ranker:
    """`solarjax.retrieval.ranking`'s hybrid: the SSL ``candidates`` nearest allowed rows re-ordered by
    SSL distance / its median + weight * standardised physics distance.

    Args:
      embeddings: [N, D] SSL embeddings; values: [N, P] the rows' exact quantities; weight: >= 0.
    """
    embeddings = np.asarray(embeddings, np.float32)
    values = np.asarray(values, np.float64)
    scale = ranking_lib.standard_scale(values)

    def rank(query_rows: np.ndarray, allowed: AllowedFn, k: int) -> np.ndarray:
        blocks = (
            (np.arange(s, min(s + BLOCK_ROWS, len(embeddings))), embeddings[s : s + BLOCK_ROWS])
            for s in range(0, len(embeddings), BLOCK_ROWS)
        )
        rows, distances = exact_top_k(embeddings[query_rows], blocks, max(k, candidates), "l2", allowed=allowed)
        distances = np.where(rows >= 0, distances, np.inf)
        order = ranking_lib.hybrid_order(distances, values[query_rows], values[np.maximum(rows, 0)], scale, weight)
        return np.take_along_axis(rows, order, axis=1)[:, :k]

    return rank


def _chunked_counts(
    allowed: AllowedFn,
    num_queries: int,
    num_rows: int,
    target: Callable[[slice], np.ndarray] | None,
    chunk: int = 1_024,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query, allowed rows, and allowed rows where ``target(chunk) -> bool [q, N]`` (0 without one)."""
    total, hit = np.zeros(num_queries), np.zeros(num_queries)
    for start in range(0, num_queries, chunk):
        part = slice(start, min(start + chunk, num_queries))
        mask = allowed(part, np.arange(num_rows))
        total[part] = mask.sum(axis=1)
        if target is not None:
            hit[part] = (mask & target(part)).sum(axis=1)
    return total, hit


def _random_allowed(allowed: AllowedFn, num_queries: int, num_rows: int, seed: int) -> np.ndarray:
    """int64 [Q]: a uniformly random allowed row per query (-1 where none), seeded."""
    generator = np.random.default_rng(seed)
    rows = np.full(num_queries, -1, np.int64)
    for start in range(0, num_queries, 1_024):
        part = slice(start, min(start + 1_024, num_queries))
        for q, mask in zip(range(part.start, part.stop), allowed(part, np.arange(num_rows))):
            if mask.any():
                rows[q] = generator.choice(np.flatnonzero(mask))
    return rows


def eligible_queries(region: np.ndarray, hours: np.ndarray, min_gap_hours: float) -> np.ndarray:
    """int64 rows whose region (> 0) has another frame at least ``min_gap_hours`` away."""
    region, hours = np.asarray(region), np.asarray(hours, np.float64)
    eligible = np.zeros(len(region), bool)
    for value in np.unique(region[region > 0]):
        members = np.flatnonzero(region == value)
        times = hours[members]
        eligible[members] = np.maximum(times - times.min(), times.max() - times) >= min_gap_hours
    return np.flatnonzero(eligible)


def same_region_precision(
    rankers: Mapping[str, Ranker],
    region: np.ndarray,
    times: Sequence[Any] | np.ndarray,
    *,
    min_gap_hours: float = MIN_GAP_HOURS,
    num_resamples: int = bootstrap.NUM_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Precision@1 of finding the query's region at least ``min_gap_hours`` away, with intervals.

    Args:
      rankers: {method: `Ranker`} over the N frames.
      region: int [N] region ids (HARP numbers; <= 0: none); times: [N] observation times.
      min_gap_hours: candidates of the query's region closer than this are excluded.
      num_resamples, seed: of the bootstrap.

    Returns:
      {'eligible', 'min_gap_hours', 'rows': eligible query rows, 'top1': {method: rows},
       'precision_at_1': {method: value} (with 'random' the exact expectation), 'intervals':
       `bootstrap.precision_intervals` report}.
    """
    region = np.asarray(region)
    hours = hours_since_epoch(times)
    eligible = eligible_queries(region, hours, min_gap_hours)
    if eligible.size == 0:
        raise ValueError(
            f"no region has two frames at least {min_gap_hours} h apart: same-region precision is undefined"
        )
    allowed = exclusion(eligible, region, hours, min_gap_hours)
    hits, top1 = {}, {}
    for method, ranker in rankers.items():
        rows = ranker(eligible, allowed, 1)[:, 0]
        top1[method] = rows
        hits[method] = (rows >= 0) & (region[np.maximum(rows, 0)] == region[eligible])
    total, same = _chunked_counts(
        allowed, len(eligible), len(region), lambda part: region[eligible[part]][:, None] == region[None, :]
    )
    hits["random"] = same / np.maximum(total, 1)
    indices = bootstrap.resample_indices(len(eligible), num_resamples, seed)
    intervals = bootstrap.precision_intervals(hits, indices)
    return {
        "eligible": int(eligible.size),
        "min_gap_hours": float(min_gap_hours),
        "rows": eligible.tolist(),
        "top1": {m: r.tolist() for m, r in top1.items()},
        "precision_at_1": {m: v["value"] for m, v in intervals["methods"].items()},
        "intervals": intervals,
    }


def keyword_agreement(
    rankers: Mapping[str, Ranker],
    region: np.ndarray,
    keywords: Mapping[str, np.ndarray],
    *,
    num_resamples: int = bootstrap.NUM_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Real-to-real search with the query's own region excluded, scored by header keywords.

    Args:
      rankers: {method: `Ranker`} over the N frames.
      region: int [N] region ids (the query's whole region is excluded).
      keywords: {name: float [N]} header values of every frame (NaN: missing).
      num_resamples, seed: of the bootstrap and of the random baseline.

    Returns:
      {'queries', 'top1': {method: rows}, 'correlations': {keyword: {method: {'pearson',
       'spearman', 'pairs'}}}, 'intervals': {keyword: `bootstrap.correlation_intervals` report}}.
    """
    region = np.asarray(region)
    queries = np.arange(len(region))
    allowed = exclusion(queries, region, np.zeros(len(region)), None)
    top1 = {method: ranker(queries, allowed, 1)[:, 0] for method, ranker in rankers.items()}
    top1["random"] = _random_allowed(allowed, len(queries), len(region), seed)
    report: dict[str, Any] = {
        "queries": int(len(queries)),
        "top1": {m: r.tolist() for m, r in top1.items()},
        "correlations": {},
        "intervals": {},
    }
    for j, (name, values) in enumerate(keywords.items()):
        values = np.asarray(values, np.float64)
        matched = {m: np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan) for m, rows in top1.items()}
        keep = np.isfinite(values)
        for m in matched.values():
            keep &= np.isfinite(m)
        report["correlations"][name] = {}
        for method, m in matched.items():
            x, y = values[keep], m[keep]
            defined = len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0
            report["correlations"][name][method] = {
                "pearson": float(bootstrap.pearson_rows(x, y)) if defined else float("nan"),
                "spearman": float(bootstrap.spearman_rows(x, y)) if defined else float("nan"),
                "pairs": int(keep.sum()),
            }
        if keep.sum() >= 3:
            indices = bootstrap.resample_indices(int(keep.sum()), num_resamples, seed + 1 + j)
            report["intervals"][name] = bootstrap.correlation_intervals(
                values[keep], {m: v[keep] for m, v in matched.items()}, indices
            )
    return report
