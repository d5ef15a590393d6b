"""Ranking modes of a search: SSL similarity, a hybrid with the query's exact physics, or physics alone.

    from solarjax.retrieval import ranking
    config = ranking.load_ranking("runs/index")            # ranking.json beside the index, or defaults
    hits = ranking.search(index, embeddings, query_quantities, k=10, ranking=config)

rank='ssl'      the index's nearest neighbours in the encoder's embedding (the paper's search).
rank='hybrid'   the SSL search's ``candidates`` nearest allowed rows, re-ordered by
                    score = d_ssl / median(d_ssl over the query's candidates) + weight * d_phys
                where d_phys is the root-mean-square difference of the standardised ranking
                quantities (each divided by the table's standard deviation) between query and row,
                over the quantities defined on both. weight 0 is exactly the SSL order; a row whose
                quantities are all undefined while the query's are defined ranks after every row
                with a defined one (d_phys = `UNDEFINED_DISTANCE`). A query whose quantities are all
                undefined (no polarity above threshold) keeps the SSL order.
rank='physics'  exact nearest neighbours of the standardised quantities over every allowed row
                (rows with an undefined ranking quantity never match; a query with one returns none).

Every mode applies the same filters before ranking. ``distance`` and ``similarity`` of each result
stay the SSL ones (comparable across modes); ``score`` is what a hybrid or physics search ranked by.

The weight is chosen on a validation split (`choose_ranking`, used by the demo), never on test,
and saved with the default mode in ``ranking.json`` beside the index.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from solarjax.retrieval.filters import Filters, QueryContext
from solarjax.retrieval.index import BLOCK_ROWS, Index, SearchPlan, SearchResult, _distances, exact_top_k

RANKS = ("ssl", "hybrid", "physics")
RANK_QUANTITIES = ("tuf", "psep", "r_value", "area")
"""Quantities of the hybrid and physics distances (normalised units of `solarjax.physics`)."""

DEFAULT_CANDIDATES = 256
"""SSL candidates the hybrid mode re-orders."""

DEFAULT_WEIGHT = 1.0
"""Hybrid physics weight used when no ``ranking.json`` was chosen on validation."""

UNDEFINED_DISTANCE = 1e6
"""d_phys of a row with no quantity defined in common with a defined query."""

RANKING_FILE = "ranking.json"


@dataclasses.dataclass(frozen=True)
class Ranking:
    """How results are ordered.

    Attributes:
      rank: one of `RANKS`.
      weight: hybrid weight of the physics distance (>= 0).
      quantities: ranking quantities (table columns and query quantity names).
      candidates: SSL candidates re-ordered by the hybrid mode.
      scale: optional standard deviation of each quantity (default: the table's).
      validation: how the weight and the default were chosen (free-form, JSON).
    """

    rank: str = "ssl"
    weight: float = DEFAULT_WEIGHT
    quantities: tuple[str, ...] = RANK_QUANTITIES
    candidates: int = DEFAULT_CANDIDATES
    scale: tuple[float, ...] | None = None
    validation: dict | None = None

    def __post_init__(self):
        if self.rank not in RANKS:
            raise ValueError(f"rank must be one of {RANKS}, got {self.rank!r}")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"hybrid weight must be finite and >= 0, got {self.weight}")
        if self.candidates < 1:
            raise ValueError(f"hybrid candidates must be >= 1, got {self.candidates}")
        if self.scale is not None and len(self.scale) != len(self.quantities):
            raise ValueError(f"{len(self.scale)} scales for {len(self.quantities)} quantities")

    def with_rank(self, rank: str) -> Ranking:
        return dataclasses.replace(self, rank=rank)

    def to_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        fields["quantities"] = list(self.quantities)
        fields["scale"] = None if self.scale is None else list(self.scale)
        return fields

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> Ranking:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - names
        if unknown:
            raise ValueError(f"ranking fields {sorted(unknown)} are not Ranking fields {sorted(names)}")
        fields = dict(fields)
        if "quantities" in fields:
            fields["quantities"] = tuple(fields["quantities"])
        if fields.get("scale") is not None:
            fields["scale"] = tuple(float(s) for s in fields["scale"])
        return cls(**fields)


def save_ranking(directory: str | os.PathLike, ranking: Ranking) -> pathlib.Path:
    """Writes ``ranking.json`` into ``directory`` (an index's output directory); returns its path."""
    path = pathlib.Path(directory) / RANKING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(ranking.to_dict(), indent=1))
    os.replace(temporary, path)
    return path


def load_ranking(directory: str | os.PathLike) -> Ranking:
    """The ranking saved in ``directory/ranking.json``, or the defaults (rank 'ssl') when absent.

    Raises:
      ValueError: an unreadable file, naming it.
    """
    path = pathlib.Path(directory) / RANKING_FILE
    if not path.is_file():
        return Ranking()
    try:
        fields = json.loads(path.read_text())
        if not isinstance(fields, dict):
            raise ValueError(f"expected a JSON object, got {type(fields).__name__}")
        return Ranking.from_dict(fields)
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: not a ranking file: {err}") from err


# --------------------------------------------------------------------------------- array level
def standard_scale(table_values: np.ndarray) -> np.ndarray:
    """[P] standard deviation of each column of [N, P] over its finite values (1 where constant)."""
    values = np.asarray(table_values, np.float64)
    scale = np.array([np.nanstd(column) if np.isfinite(column).sum() > 1 else 1.0 for column in values.T])
    return np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)


def physics_distance(query_values: np.ndarray, row_values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """RMS standardised difference over the quantities defined on both sides.

    Args:
      query_values: [Q, P]; row_values: [Q, M, P] (the candidates of each query); scale: [P].

    Returns:
      [Q, M] float64; `UNDEFINED_DISTANCE` where no quantity is defined on both sides.
    """
    difference = (np.asarray(row_values, np.float64) - np.asarray(query_values, np.float64)[:, None, :]) / scale
    defined = np.isfinite(difference)
    count = defined.sum(axis=-1)
    squared = np.where(defined, difference, 0.0) ** 2
    return np.where(count > 0, np.sqrt(squared.sum(axis=-1) / np.maximum(count, 1)), UNDEFINED_DISTANCE)


def hybrid_scores(
    ssl_distances: np.ndarray, query_values: np.ndarray, row_values: np.ndarray, scale: np.ndarray, weight: float
) -> np.ndarray:
    """Hybrid score of each candidate (lower is better).

    Args:
      ssl_distances: [Q, M] SSL distances of the candidates (inf: no candidate).
      query_values: [Q, P]; row_values: [Q, M, P]; scale: [P]; weight: >= 0.

    Returns:
      [Q, M] float64: d_ssl / median(finite d_ssl of the query) + weight * d_phys (inf where no
      candidate). For a query with no defined quantity the physics term is 0.
    """
    ssl_distances = np.asarray(ssl_distances, np.float64)
    finite = np.isfinite(ssl_distances)
    medians = np.array([np.median(d[f]) if f.any() else 1.0 for d, f in zip(ssl_distances, finite)])
    normalised = ssl_distances / np.where(medians > 0, medians, 1.0)[:, None]
    if weight == 0:
        return normalised
    query_defined = np.isfinite(np.asarray(query_values, np.float64)).any(axis=1)
    physics = np.where(query_defined[:, None], physics_distance(query_values, row_values, scale), 0.0)
    return np.where(finite, normalised + weight * physics, np.inf)


def hybrid_order(
    ssl_distances: np.ndarray, query_values: np.ndarray, row_values: np.ndarray, scale: np.ndarray, weight: float
) -> np.ndarray:
    """int64 [Q, M]: the candidate positions re-ordered by `hybrid_scores` (stable: ties keep the SSL
    order, so ``weight=0`` returns ``arange(M)`` for SSL-sorted candidates)."""
    scores = hybrid_scores(ssl_distances, query_values, row_values, scale, weight)
    return np.argsort(scores, axis=1, kind="stable")


def physics_space(values: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [N, P] values / scale with undefined entries 0, bool [N] every quantity defined)."""
    values = np.asarray(values, np.float64)
    defined = np.all(np.isfinite(values), axis=1)
    return np.where(np.isfinite(values), values / scale, 0.0).astype(np.float32), defined


# --------------------------------------------------------------------------------- index level
def table_values(index: Index, quantities: Sequence[str]) -> np.ndarray:
    """[N, P] float64 ranking quantities of the index's rows."""
    return np.stack([index.table.column(name)[: index.num_rows].astype(np.float64) for name in quantities], axis=1)


def query_matrix(query_quantities: Mapping[str, Any] | np.ndarray, quantities: Sequence[str], count: int) -> np.ndarray:
    """[Q, P] float64 from {name: [Q]} (missing names NaN) or an array [Q, P]."""
    if isinstance(query_quantities, Mapping):
        columns = [
            np.asarray(query_quantities.get(name, np.full(count, np.nan)), np.float64).reshape(-1)
            for name in quantities
        ]
        matrix = np.stack(columns, axis=1)
    else:
        matrix = np.asarray(query_quantities, np.float64).reshape(count, len(quantities))
    if len(matrix) != count:
        raise ValueError(f"{len(matrix)} query quantity rows for {count} queries")
    return matrix


class _PhysicsCache:
    """Standardised table quantities per (table, quantities, scale), computed once."""

    def __init__(self):
        self._entries: dict[Any, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}

    def get(self, index: Index, ranking: Ranking):
        key = (str(index.table.path), index.table.table_id, index.num_rows, ranking.quantities, ranking.scale)
        if key not in self._entries:
            values = table_values(index, ranking.quantities)
            scale = standard_scale(values) if ranking.scale is None else np.asarray(ranking.scale, np.float64)
            space, defined = physics_space(values, scale)
            self._entries[key] = (values, scale, space, np.flatnonzero(defined))
        return self._entries[key]


_CACHE = _PhysicsCache()


def search(
    index: Index,
    embeddings: Any,
    query_quantities: Mapping[str, Any] | np.ndarray | None,
    k: int = 10,
    filters: Filters | None = None,
    context: QueryContext | None = None,
    ranking: Ranking = Ranking(),
) -> list[list[SearchResult]]:
    """Search with a ranking mode.

    Args:
      index: the index (any kind).
      embeddings: [Q, D] query embeddings (used by every mode for the SSL distances).
      query_quantities: {name: [Q]} the queries' exact quantities (`solarjax.physics.quantities`)
        or [Q, P] in ``ranking.quantities`` order; may be None for rank 'ssl'.
      k, filters, context: as `Index.search`.
      ranking: the mode and its parameters.

    Returns:
      Q lists of at most k `SearchResult` in the mode's order; ``score`` is the hybrid score or
      the physics distance (RMS of the standardised differences), None for 'ssl'.
    """
    queries = index._checked_queries(embeddings)
    if ranking.rank == "ssl":
        return index.search(queries, k, filters, context)
    if query_quantities is None:
        raise ValueError(f"rank {ranking.rank!r} needs the queries' quantities")
    values, scale, space, defined_rows = _CACHE.get(index, ranking)
    query_values = query_matrix(query_quantities, ranking.quantities, len(queries))
    context = QueryContext.unknown(len(queries)) if context is None else context
    if len(context) != len(queries):
        raise ValueError(f"context describes {len(context)} queries, got {len(queries)} queries")
    plan = SearchPlan(index.table, index.num_rows, filters or Filters(), context)
    if ranking.rank == "hybrid":
        rows = index._top_k(queries, max(k, ranking.candidates), plan)
        present = rows >= 0
        distances = np.full(rows.shape, np.inf)
        query_of_row = np.broadcast_to(np.arange(len(queries))[:, None], rows.shape)[present]
        distances[present] = _distances(
            queries[query_of_row].astype(np.float64),
            index.table.embeddings(rows[present]).astype(np.float64),
            index.metric,
        )
        ssl_order = np.lexsort((rows, distances), axis=-1)  # as `Index.search` sorts: (distance, row)
        rows, distances = np.take_along_axis(rows, ssl_order, 1), np.take_along_axis(distances, ssl_order, 1)
        scores = hybrid_scores(distances, query_values, values[np.maximum(rows, 0)], scale, ranking.weight)
        order = np.argsort(scores, axis=1, kind="stable")[:, :k]
        top_rows = np.take_along_axis(rows, order, axis=1)
        top_scores = np.take_along_axis(scores, order, axis=1)
        return _in_order(index, queries, top_rows, top_scores)
    # physics: exact search in the standardised space over rows with every quantity defined.
    query_defined = np.all(np.isfinite(query_values), axis=1)
    query_space = np.where(query_defined[:, None], query_values / scale, 0.0).astype(np.float32)
    if plan.static is not None:
        defined_rows = defined_rows[plan.static[defined_rows]]
    blocks = (
        (defined_rows[s : s + BLOCK_ROWS], space[defined_rows[s : s + BLOCK_ROWS]])
        for s in range(0, len(defined_rows), BLOCK_ROWS)
    )
    rows, physics_distances = exact_top_k(
        query_space,
        blocks,
        k,
        "l2",
        allowed=plan.allowed if plan.has_query_filters else None,
        groups=plan.groups if plan.one_per_harp else None,
    )
    rows = np.where(query_defined[:, None], rows, -1)
    return _in_order(index, queries, rows, physics_distances / math.sqrt(len(ranking.quantities)))


def _in_order(index: Index, queries: np.ndarray, rows: np.ndarray, scores: np.ndarray) -> list[list[SearchResult]]:
    """`SearchResult` lists (SSL distances, metadata) of rows [Q, k] (-1: none) in the given order,
    each with its ``score``."""
    results = index._results(queries, rows)
    ordered = []
    for q, hits in enumerate(results):
        by_row = {h.row: h for h in hits}
        ordered.append(
            [dataclasses.replace(by_row[int(r)], score=float(score)) for r, score in zip(rows[q], scores[q]) if r >= 0]
        )
    return ordered


# ------------------------------------------------------------------------------ validation
WEIGHT_GRID = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
SCORED_QUANTITIES = ("tuf", "psep", "r_value")


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    import scipy.stats

    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return math.nan
    return float(scipy.stats.spearmanr(x[keep], y[keep]).statistic)


def choose_ranking(
    index: Index,
    embeddings: np.ndarray,
    query_quantities: Mapping[str, Any],
    *,
    query_truth: Mapping[str, Any] | None = None,
    weights: Sequence[float] = WEIGHT_GRID,
    scored: Sequence[str] = SCORED_QUANTITIES,
    base: Ranking = Ranking(),
    tolerance: float = 0.01,
) -> Ranking:
    """Chooses the hybrid weight and the default mode on validation queries (never test).

    Each candidate (ssl, hybrid at every weight of ``weights``, physics) is scored by the mean
    Spearman correlation of ``scored`` quantities between query and top-1 match, plus the mean
    fraction of matches with the query's ground truth (``query_truth`` columns of the table) when
    given. Candidates within ``tolerance`` of the best score count as tied, and the tie goes to
    the one that keeps most of the image (ssl, then the smallest hybrid weight, then physics): the
    default mode is the first candidate within ``tolerance`` of the best overall; the hybrid weight is
    that candidate's when it is a hybrid, else the smallest within ``tolerance`` of the best hybrid.

    Args:
      index: index over the table searched (the training split).
      embeddings: [Q, D] validation query embeddings (the index's encoder).
      query_quantities: {name: [Q]} their exact quantities.
      query_truth: optional {column: [Q]} ground truth.
      weights: hybrid weights tried (> 0; 0 is the SSL mode).
      scored: quantities whose Spearman correlations are averaged.
      base: quantities, candidates and scale of the ranking.
      tolerance: score difference treated as a tie.

    Returns:
      The chosen `Ranking`, with every candidate's score in ``validation``.
    """
    queries = index._checked_queries(embeddings)
    values, scale, _, _ = _CACHE.get(index, base)
    query_values = query_matrix(query_quantities, base.quantities, len(queries))
    candidates = index.search(queries, base.candidates)
    width = max(len(h) for h in candidates)
    rows = np.full((len(queries), width), -1, np.int64)
    distances = np.full((len(queries), width), np.inf)
    for q, hits in enumerate(candidates):
        rows[q, : len(hits)] = [h.row for h in hits]
        distances[q, : len(hits)] = [h.distance for h in hits]
    table_scored = table_values(index, scored)
    query_scored = query_matrix(query_quantities, scored, len(queries))

    def score(top1: np.ndarray) -> dict[str, float]:
        matched = np.where((top1 >= 0)[:, None], table_scored[np.maximum(top1, 0)], np.nan)
        result = {name: _spearman(query_scored[:, j], matched[:, j]) for j, name in enumerate(scored)}
        total = float(np.nanmean(list(result.values())))
        if query_truth:
            for name, truth in query_truth.items():
                column = index.table.column(name)
                result[f"truth/{name}"] = float(
                    np.mean((top1 >= 0) & (column[np.maximum(top1, 0)] == np.asarray(truth).astype(column.dtype)))
                )
            total += float(np.mean([result[f"truth/{n}"] for n in query_truth]))
        result["score"] = total
        return result

    trials: dict[str, dict[str, float]] = {"ssl": score(rows[:, 0])}
    for weight in weights:
        if weight <= 0:
            continue
        order = hybrid_order(distances, query_values, values[np.maximum(rows, 0)], scale, weight)
        trials[f"hybrid:{weight:g}"] = score(np.take_along_axis(rows, order[:, :1], axis=1)[:, 0])
    physics = search(index, queries, query_values, 1, ranking=base.with_rank("physics"))
    trials["physics"] = score(np.array([h[0].row if h else -1 for h in physics], np.int64))
    # Within `tolerance` of the best, prefer what keeps most of the image: ssl, then the hybrid with the
    # smallest weight, then physics (trials are in that order).
    best_score = max(t["score"] for t in trials.values())
    chosen = next(name for name, t in trials.items() if t["score"] >= best_score - tolerance)
    hybrid_names = [name for name in trials if name.startswith("hybrid:")]
    best_hybrid = None
    if hybrid_names:
        top = max(trials[n]["score"] for n in hybrid_names)
        best_hybrid = next(n for n in hybrid_names if trials[n]["score"] >= top - tolerance)
    default = chosen.split(":")[0]
    # a chosen hybrid ranks at the weight it was chosen at; otherwise the hybrid mode keeps the best hybrid's
    weighted = chosen if default == "hybrid" else best_hybrid
    weight = float(weighted.split(":")[1]) if weighted else base.weight
    validation = {
        "queries": int(len(queries)),
        "criterion": "mean Spearman of "
        + ", ".join(scored)
        + (" + mean ground-truth agreement" if query_truth else "")
        + f" (within {tolerance:g} of the best, the mode closest to the image)",
        "trials": trials,
        "chosen": chosen,
        "default_rank": default,
    }
    return dataclasses.replace(
        base, rank=default, weight=weight, scale=tuple(float(s) for s in scale), validation=validation
    )
