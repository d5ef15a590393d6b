"""Paired bootstrap intervals for retrieval figures: correlations, precisions and their differences.

Every method is scored on the same queries, so the resampling is paired: one set of B resamples of
the query indices (with replacement) is drawn once, and every method's statistic, and every
difference between two methods, is computed on the same resampled queries. An interval is the
2.5th and 97.5th percentile of the B resampled values (percentile bootstrap); a difference whose
interval lies above 0 says the first method is better at that level.

Resamples in which a statistic is undefined (a constant side in a correlation) are dropped from
that statistic's percentiles; ``valid_resamples`` says how many remained.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats

NUM_RESAMPLES = 1_000
"""Default number of bootstrap resamples."""


def resample_indices(num_items: int, num_resamples: int = NUM_RESAMPLES, seed: int = 0) -> np.ndarray:
    """int64 [B, n]: B resamples with replacement of range(n) (numpy generator seeded with ``seed``)."""
    if num_items < 1:
        raise ValueError(f"cannot resample {num_items} items")
    return np.random.default_rng(seed).integers(0, num_items, size=(num_resamples, num_items))


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis of [..., n] arrays; NaN where a side is constant."""
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt(np.sum(x * x, axis=-1) * np.sum(y * y, axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, np.sum(x * y, axis=-1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation (Pearson of average ranks) along the last axis of [..., n] arrays."""
    return pearson_rows(scipy.stats.rankdata(x, axis=-1), scipy.stats.rankdata(y, axis=-1))


STATISTICS = {"pearson": pearson_rows, "spearman": spearman_rows}


def percentile_interval(value: float, resampled: np.ndarray) -> dict[str, Any]:
    """{'value', 'low', 'high' (2.5th / 97.5th percentile of the finite resampled values), 'valid_resamples'}."""
    finite = resampled[np.isfinite(resampled)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (math.nan, math.nan)
    return {"value": float(value), "low": float(low), "high": float(high), "valid_resamples": int(finite.size)}


def correlation_intervals(
    query_values: np.ndarray,
    matched_values: Mapping[str, np.ndarray],
    indices: np.ndarray,
    statistics: Sequence[str] = ("pearson", "spearman"),
) -> dict[str, Any]:
    """Correlations of query vs match per method, and their paired differences, with intervals.

    Args:
      query_values: [n] finite values of the queries (the common queries of every method).
      matched_values: {method: [n]} finite values of each method's match of the same queries.
      indices: [B, n] bootstrap resamples of range(n) (`resample_indices`).
      statistics: names in `STATISTICS`.

    Returns:
      {'n', 'methods': {method: {stat: {'value', 'low', 'high', 'valid_resamples'}}},
       'differences': {'a - b': {stat: {...}}} for every ordered pair of methods (a listed first)}.
    """
    x = np.asarray(query_values, np.float64)
    resampled_x = x[indices]
    values, resampled = {}, {}
    for method, y in matched_values.items():
        y = np.asarray(y, np.float64)
        if y.shape != x.shape:
            raise ValueError(f"method {method!r}: {y.shape} match values for {x.shape} queries")
        for stat in statistics:
            values[method, stat] = float(STATISTICS[stat](x, y))
            resampled[method, stat] = STATISTICS[stat](resampled_x, y[indices])
    methods = list(matched_values)
    report = {
        "n": int(len(x)),
        "methods": {m: {s: percentile_interval(values[m, s], resampled[m, s]) for s in statistics} for m in methods},
        "differences": {},
    }
    for a, b in itertools.combinations(methods, 2):
        report["differences"][f"{a} - {b}"] = {
            s: percentile_interval(values[a, s] - values[b, s], resampled[a, s] - resampled[b, s]) for s in statistics
        }
    return report


def precision_intervals(hits: Mapping[str, np.ndarray], indices: np.ndarray) -> dict[str, Any]:
    """Precision (mean of hits) per method and paired differences, with bootstrap intervals.

    Args:
      hits: {method: [n] bool or float in [0, 1]} per query (the same queries for every method;
        a float is an expected hit, e.g. the random baseline's exact probability).
      indices: [B, n] bootstrap resamples of range(n).

    Returns:
      {'n', 'methods': {method: {'value', 'low', 'high', 'valid_resamples'}},
       'differences': {'a - b': {...}}}.
    """
    methods = list(hits)
    arrays = {m: np.asarray(hits[m], np.float64) for m in methods}
    n = {len(a) for a in arrays.values()}
    if len(n) != 1:
        raise ValueError(
            f"methods were scored on different numbers of queries: { {m: len(a) for m, a in arrays.items()} }"
        )
    resampled = {m: a[indices].mean(axis=1) for m, a in arrays.items()}
    report = {
        "n": n.pop(),
        "methods": {m: percentile_interval(arrays[m].mean(), resampled[m]) for m in methods},
        "differences": {
            f"{a} - {b}": percentile_interval(arrays[a].mean() - arrays[b].mean(), resampled[a] - resampled[b])
            for a, b in itertools.combinations(methods, 2)
        },
    }
    return report


def format_interval(interval: Mapping[str, float], digits: int = 2) -> str:
    """'0.81 [0.74, 0.86]'; 'undefined' when the value is not finite (e.g. a correlation with a constant
    side: every query matched rows of one value)."""
    value = interval["value"]
    if value is None or not math.isfinite(value):
        return "undefined"
    return f"{value:.{digits}f} [{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"
