"""Scoring a "find CMEs like this one" search: top-1 agreement of CME quantities, with paired bootstrap intervals.

Each method (the SSL embedding and its baselines, `solarjax.retrieval.evaluate`) gives every query its top-1
row of the database; for each quantity, the correlation between the queries' values and their matches'
says whether the search keeps that quantity. Width and front height are linear quantities: Pearson and
Spearman (`solarjax.retrieval.evaluate.scored_correlations`). The central position angle is circular
(359 deg is next to 1 deg): its 'pearson' is the circular correlation of Fisher & Lee (1983),
``sum_{i<j} sin(a_i - a_j) sin(b_i - b_j) / sqrt(sum_{i<j} sin^2(a_i - a_j) sum_{i<j} sin^2(b_i - b_j))``
(no mean direction needed, so it is defined for the two-limb clustering of CME position angles, where a
circular mean is not), and its 'spearman' the same on uniform scores ``360 * rank / n`` (rank-based).
Both are 1 when one side is a rotation of the other, -1 for a mirror image, about 0 when independent. A halo's CPA is
undefined: queries or matches whose width is at least `HALO_WIDTH_DEG` drop out of the CPA score.

Intervals: one set of bootstrap resamples of the common queries per quantity, shared by every method
(`solarjax.retrieval.bootstrap`), on each statistic and on each difference between two methods.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.stats

from solarjax.retrieval import bootstrap
from solarjax.retrieval.evaluate import common_queries, scored_correlations

HALO_WIDTH_DEG = 300.0
"""A CME at least this wide counts as a halo: its central position angle is not scored."""

LINEAR = ("width_deg", "front_height_rsun")
CIRCULAR = ("cpa_deg",)


def circular_correlation(a_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    """Fisher-Lee circular correlation along the last axis of [..., n] angles in degrees; NaN without spread.

    Computed in O(n) as det(X'Y) / sqrt(det(X'X) det(Y'Y)) with X = [cos a, sin a], Y = [cos b, sin b]
    (the pairwise sums of sines expand into these 2x2 determinants).
    """
    a, b = np.radians(np.asarray(a_deg, np.float64)), np.radians(np.asarray(b_deg, np.float64))
    ca, sa, cb, sb = np.cos(a), np.sin(a), np.cos(b), np.sin(b)

    def det(p, q, r, t):  # det [[sum p, sum q], [sum r, sum t]]
        return p.sum(-1) * t.sum(-1) - q.sum(-1) * r.sum(-1)

    cross = det(ca * cb, ca * sb, sa * cb, sa * sb)
    denominator = np.sqrt(
        np.maximum(det(ca * ca, ca * sa, sa * ca, sa * sa), 0.0)
        * np.maximum(det(cb * cb, cb * sb, sb * cb, sb * sb), 0.0)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-12, cross / np.where(denominator > 1e-12, denominator, 1.0), np.nan)


def circular_rank_correlation(a_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
    """`circular_correlation` of the uniform scores 360 * rank / n of each side (ranks along the last axis)."""
    a, b = np.asarray(a_deg, np.float64) % 360.0, np.asarray(b_deg, np.float64) % 360.0
    n = a.shape[-1]
    return circular_correlation(
        360.0 * scipy.stats.rankdata(a, axis=-1) / n, 360.0 * scipy.stats.rankdata(b, axis=-1) / n
    )


CIRCULAR_STATISTICS = {"pearson": circular_correlation, "spearman": circular_rank_correlation}


def _interval(value: float, resampled: np.ndarray) -> dict[str, Any]:
    finite = resampled[np.isfinite(resampled)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (math.nan, math.nan)
    return {"value": float(value), "low": float(low), "high": float(high), "valid_resamples": int(finite.size)}


def circular_intervals(
    query_deg: np.ndarray, matched_deg: Mapping[str, np.ndarray], indices: np.ndarray
) -> dict[str, Any]:
    """As `bootstrap.correlation_intervals`, with the circular statistics (`CIRCULAR_STATISTICS`)."""
    x = np.asarray(query_deg, np.float64)
    values, resampled = {}, {}
    for method, y in matched_deg.items():
        y = np.asarray(y, np.float64)
        for stat, function in CIRCULAR_STATISTICS.items():
            values[method, stat] = float(function(x, y))
            resampled[method, stat] = function(x[indices], y[indices])
    methods = list(matched_deg)
    return {
        "n": int(len(x)),
        "methods": {m: {s: _interval(values[m, s], resampled[m, s]) for s in CIRCULAR_STATISTICS} for m in methods},
        "differences": {
            f"{a} - {b}": {
                s: _interval(values[a, s] - values[b, s], resampled[a, s] - resampled[b, s])
                for s in CIRCULAR_STATISTICS
            }
            for a, b in itertools.combinations(methods, 2)
        },
    }


def scoring_values(quantities: Mapping[str, np.ndarray]) -> np.ndarray:
    """[N, 3] (cpa_deg, width_deg, front_height_rsun) with the CPA of halos (width >= HALO_WIDTH_DEG) set to NaN."""
    width = np.asarray(quantities["width_deg"], np.float64)
    cpa = np.where(width >= HALO_WIDTH_DEG, np.nan, np.asarray(quantities["cpa_deg"], np.float64))
    return np.stack([cpa, width, np.asarray(quantities["front_height_rsun"], np.float64)], axis=1)


SCORED = CIRCULAR + LINEAR


def score_matches(
    query_values: np.ndarray,
    database_values: np.ndarray,
    matches: Mapping[str, np.ndarray],
    *,
    num_resamples: int = bootstrap.NUM_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Top-1 agreement of every method, with paired bootstrap intervals.

    Args:
      query_values: [Q, 3] `scoring_values` of the queries; database_values: [N, 3] of the database rows.
      matches: {method: int [Q] top-1 database row of each query (-1: none)}.
      num_resamples, seed: of the bootstrap (quantity j uses seed + j).

    Returns:
      {quantity: {'pairs': common queries, 'methods': {method: {'pearson': interval, 'spearman': interval}},
       'differences': {'a - b': {...}}}}, intervals as `bootstrap.correlation_intervals`.
    """
    matched = {
        method: np.where((rows >= 0)[:, None], database_values[np.maximum(rows, 0)], np.nan)
        for method, rows in matches.items()
    }
    mask = common_queries(query_values, matched)
    report: dict[str, Any] = {}
    keep = mask[:, 0]
    indices = bootstrap.resample_indices(int(keep.sum()), num_resamples, seed)
    circular = circular_intervals(query_values[keep, 0], {m: v[keep, 0] for m, v in matched.items()}, indices)
    report["cpa_deg"] = {
        "pairs": int(keep.sum()),
        "methods": circular["methods"],
        "differences": circular["differences"],
    }
    _, linear = scored_correlations(
        query_values[:, 1:],
        {m: v[:, 1:] for m, v in matched.items()},
        LINEAR,
        num_resamples=num_resamples,
        seed=seed + 1,
    )
    for name in LINEAR:
        report[name] = {
            "pairs": linear[name]["n"],
            "methods": linear[name]["methods"],
            "differences": linear[name]["differences"],
        }
    return report


def format_table(report: Mapping[str, Any], methods: Sequence[str], digits: int = 2) -> str:
    """One row per method, one column per (quantity, statistic): 'value [low, high]'."""
    columns = [(q, s) for q in SCORED for s in ("pearson", "spearman")]
    titles = {"cpa_deg": "CPA (circular)", "width_deg": "width", "front_height_rsun": "front height"}
    header = ["method"] + [f"{titles[q]} {s}" for q, s in columns]
    rows = [header, ["queries"] + [str(report[q]["pairs"]) for q, _ in columns]]
    for method in methods:
        rows.append([method] + [bootstrap.format_interval(report[q]["methods"][method][s], digits) for q, s in columns])
    widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def format_differences(report: Mapping[str, Any], subject: str, others: Sequence[str], digits: int = 2) -> str:
    """``subject - other`` per quantity (Spearman; circular rank for CPA) with its paired interval."""
    lines = []
    for other in others:
        cells = []
        for q in SCORED:
            key, sign = (
                (f"{subject} - {other}", 1.0)
                if f"{subject} - {other}" in report[q]["differences"]
                else (f"{other} - {subject}", -1.0)
            )
            entry = report[q]["differences"][key]["spearman"]
            if sign < 0:
                entry = {"value": -entry["value"], "low": -entry["high"], "high": -entry["low"]}
            cells.append(f"{q} {bootstrap.format_interval(entry, digits)}")
        lines.append(f"{subject} - {other}: " + "; ".join(cells))
    return "\n".join(lines)


SPLIT_QUANTITIES = ("cpa_deg", "width_deg", "front_height_rsun", "excess")


def load_split(data_dir, split: str, config: str = "synthetic") -> dict[str, np.ndarray]:
    """A whole `cme_patches/<config>` split in memory: 'image' float32 [N, 128, 128, 1], 'id', the measured
    quantities, the truth ('true_<name>') and 'true_rare' (int, -1 unknown)."""
    import tensorflow_datasets as tfds

    import data_builders  # noqa: F401  (registers cme_patches)

    source = tfds.data_source(f"cme_patches/{config}", data_dir=data_dir)[split]
    examples = [source[i] for i in range(len(source))]
    columns = {
        "image": np.stack([e["image"] for e in examples]).astype(np.float32),
        "id": np.array([e["id"].decode() for e in examples]),
    }
    for name in SPLIT_QUANTITIES:
        columns[name] = np.array([e[name] for e in examples], np.float64)
        columns[f"true_{name}"] = np.array([e[f"true_{name}"] for e in examples], np.float64)
    columns["true_rare"] = np.array([int(e.get("true_rare", -1)) for e in examples], np.int64)
    return columns


SEARCH_METHODS = ("ssl", "pixel_l2", "thumbnail_8x8", "random_encoder", "random")


@dataclasses.dataclass(frozen=True)
class SearchDatabase:
    """A database of CME images [N, 128, 128, 1] as every `SEARCH_METHODS` method sees it, computed once
    (`search_database`): the images, the trained encoder's embeddings [N, D], the untrained encoder's
    [N, D'] and the 8x8 thumbnails [N, 64]."""

    images: np.ndarray
    embedding: np.ndarray
    untrained_embedding: np.ndarray
    thumbnails: np.ndarray


def search_database(images: np.ndarray, embedding: np.ndarray, untrained) -> SearchDatabase:
    """`SearchDatabase` of ``images`` with their precomputed trained-encoder ``embedding`` [N, D] and an
    ``untrained`` encoder (`solarjax.ssl.random_init`) of the same architecture."""
    from solarjax.retrieval.evaluate import thumbnails
    from solarjax.retrieval.table import embed_images

    return SearchDatabase(images, embedding, embed_images(untrained.embed, images), thumbnails(images))


def top_matches(
    queries: np.ndarray, query_embedding: np.ndarray, database: SearchDatabase, untrained, seed: int, k: int = 1
) -> dict[str, np.ndarray]:
    """int [Q, k] top-k database rows of every query image [Q, 128, 128, 1], per `SEARCH_METHODS` method.

    ssl: the trained encoder's embeddings (``query_embedding`` [Q, D], the database's precomputed); pixel_l2
    and thumbnail_8x8 on the images; random_encoder: ``untrained``, the database's untrained encoder; random:
    uniform rows.
    """
    from solarjax.retrieval.evaluate import feature_neighbours, pixel_neighbours, thumbnails
    from solarjax.retrieval.table import embed_images

    return {
        "ssl": feature_neighbours(query_embedding, database.embedding, k),
        "pixel_l2": pixel_neighbours(queries, database.images, k),
        "thumbnail_8x8": feature_neighbours(thumbnails(queries), database.thumbnails, k),
        "random_encoder": feature_neighbours(embed_images(untrained.embed, queries), database.untrained_embedding, k),
        "random": np.random.default_rng(seed).integers(0, len(database.images), size=(len(queries), k)),
    }


RANK_QUANTITIES = ("width_deg", "excess", "front_height_rsun")
"""Measured quantities of the CME hybrid and physics rankings (`solarjax.retrieval.ranking`); the central
position angle, an angle, is left to filters."""

RANK_SCORED = tuple(f"true_{name}" for name in RANK_QUANTITIES)
"""Ground-truth columns that score the ranking modes on validation queries."""


def choose_ranking(index, embeddings: np.ndarray, validation: Mapping[str, np.ndarray]):
    """The CME search's ranking (`solarjax.retrieval.ranking.choose_ranking`) chosen on validation queries:
    each mode (ssl, hybrid at every weight, physics on `RANK_QUANTITIES`) scored by the mean Spearman
    correlation of the true width, excess and front height between a query and its top-1 match.

    Args:
      index: the index over the train split's table; embeddings: [Q, D] of the validation images;
      validation: their measured `RANK_QUANTITIES` and truth `RANK_SCORED` ({name: [Q]}).
    """
    from solarjax.retrieval import ranking as ranking_lib

    return ranking_lib.choose_ranking(
        index,
        embeddings,
        {name: validation[name] for name in (*RANK_QUANTITIES, *RANK_SCORED)},
        scored=RANK_SCORED,
        base=ranking_lib.Ranking(quantities=RANK_QUANTITIES),
    )


def ranked_rows(index, embeddings: np.ndarray, quantities: Mapping[str, np.ndarray], ranking, k: int) -> np.ndarray:
    """int [Q, k] table rows of each query's top-k in `ranking`'s order (-1 where fewer match).

    Args:
      embeddings: [Q, D] query embeddings; quantities: the queries' measured `RANK_QUANTITIES` ({name: [Q]}).
    """
    from solarjax.retrieval import ranking as ranking_lib

    results = ranking_lib.search(index, embeddings, quantities, k, ranking=ranking)
    rows = np.full((len(results), k), -1, np.int64)
    for q, hits in enumerate(results):
        rows[q, : len(hits)] = [hit.row for hit in hits]
    return rows
