"""Nearest-neighbour indexes over an embedding table: exact search (the oracle) and ScaNN.

Both kinds sit behind one `Index` interface::

    table = open_table("runs/table")
    index = build_index(table, kind="auto", metric="l2")   # exact up to 100,000 rows, ScaNN beyond
    hits = index.search(queries, k=10, filters=Filters(one_per_harp=True))
    index.save("runs/index"); index = load_index("runs/index", expected_fingerprint=encoder.fingerprint)

Metrics. 'l2': distance = Euclidean distance ||q - x||, similarity = 1 / (1 + distance).
'cosine': similarity = cos(q, x), distance = 1 - similarity. Whatever index produced them, the
distances and similarities of returned results are recomputed from the table's float32 embeddings
in float64, so exact and ScaNN results are directly comparable; results are sorted by
(distance, row).

Exact search (`ExactIndex`, `exact_top_k`): queries x blocks of 32,768 table rows, one jitted XLA
program per block (matmul with full float32 precision, masking, optional per-group minimum,
`lax.top_k`), running top-k merged on the host. Blocks are read from the memory-mapped table, so
any table size streams through a fixed amount of memory; block and query batch shapes are
bucketed to powers of two, so XLA compiles a handful of programs, not one per call.

ScaNN (`ScannIndex`): a k-means tree over the embeddings (``num_leaves = round(sqrt(N))``,
trained on ``min(N, max(100,000, 64 * num_leaves))`` rows), asymmetric hashing of the residuals
(2 dimensions per 4-bit code, i.e. D/2 bytes per vector; anisotropic loss for cosine) and int8
re-ordering of the best ``reorder_neighbors`` = 256 candidates. ``leaves_to_search`` is calibrated
at build time: 256 table rows serve as queries (their own row excluded) and the number of leaves
grows from 1 by 1.5x steps until recall@10 against exact search reaches ``target_recall``
(default 0.95), then one step more as a margin for queries from outside the table; the recall
reached is stored in the manifest. When even every leaf leaves asymmetric hashing short of the
target, the index is rebuilt with exact float32 scoring inside the searched leaves
(``scoring='brute_force'``, 4 D bytes per vector) and calibrated again. That happens on crowded
tables, where the 10 nearest rows lie within a few per cent of each other in distance and the
hashing error is larger than their differences (measured on 10^5 SimSiam embeddings: benchmarks/README.md,
"ScaNN on crowded tables"). Recall of queries unlike the table (generated patches far from real
ones) may be lower: measure it with `measure_recall`. Cosine uses dot product on L2-normalised vectors.

Filters are applied before the top-k (see `solarjax.retrieval.filters`). Exact search masks the
scores (a selective row filter, letting through at most half the rows, searches the gathered
allowed rows instead of the whole table). With a fraction p = N_allowed / N of the rows passing
the row filters, ScaNN asks for ``2k / p`` candidates from ``leaves_to_search / p`` leaves (the
k nearest allowed rows lie about k / p deep in the unfiltered ranking), keeps those that pass, re-ranks them exactly and, while a query still has fewer
than k, asks again with 4x more candidates, up to 4,096; queries still short then fall back to
exact search with the same filters (exact search is also used directly when at most
min(50,000, 10% of the rows) pass the row filters). So every search returns k results whenever k rows (k HARPs with
``one_per_harp``) pass.

Saved index: a directory with ``index.json`` (format, kind, metric, encoder fingerprint, rows
covered, table id and relative path, ScaNN parameters, and the byte size and SHA-256 of every
artefact file) and, for ScaNN, its serialised searcher under ``scann/``. The manifest is written
last, so an interrupted save has none. Loading refuses an index built with another encoder, and
reports a missing, partial (wrong size) or corrupted (wrong checksum) file by name before ScaNN
reads it. An index covers the first ``num_rows`` rows of its table: rows appended later are
found after `build_index` again (immediate for exact search).
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import json
import math
import os
import pathlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from solarjax.fingerprint import file_sha256
from solarjax.retrieval import filters as filters_lib
from solarjax.retrieval.filters import Filters, QueryContext
from solarjax.retrieval.table import Table, check_fingerprint, embed_images, open_table

METRICS = ("l2", "cosine")
KINDS = ("exact", "scann")
AUTO_EXACT_MAX_ROWS = 100_000
"""`build_index(kind='auto')` searches exactly up to this many rows and builds ScaNN beyond."""

SCANN_MIN_ROWS = 1_000
"""ScaNN's tree and hashing need enough rows to train; smaller tables are searched exactly."""

BLOCK_ROWS = 32_768
"""Table rows scored per XLA program in exact search (64 MiB of 512-d float32)."""

QUERY_BLOCK = 1_024
"""Queries scored per XLA program in exact search."""

RERANK_FACTOR = 2
"""ScaNN returns this many times k candidates, re-ranked exactly from the table."""

MAX_FETCH = 4_096
"""Most ScaNN candidates per query before a filtered search falls back to exact search."""

EXACT_SUBSET_MAX_ROWS = 50_000
EXACT_SUBSET_MAX_FRACTION = 0.1
"""A filtered ScaNN search where at most min(50,000, 10% of the rows) pass is answered by exact
search on the rows that pass: ScaNN would need >= 10x more candidates than k to find them."""

INDEX_MANIFEST = "index.json"
INDEX_FORMAT = "solarjax.retrieval.index"
INDEX_VERSION = 1
SCANN_DIR = "scann"


class IndexFileError(ValueError):
    """A saved index is missing a file, has a partial or corrupted one, or does not fit its table."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = pathlib.Path(path)
        self.reason = reason


class Encoder(Protocol):
    """What the query helpers need from an encoder (e.g. `solarjax.ssl.load(workdir)`)."""

    fingerprint: str

    def embed(self, images: Any) -> Any:
        """images [N, 128, 128, C] -> embeddings [N, D]."""


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """One retrieved row.

    Attributes:
      row: row number in the table.
      distance: l2: Euclidean distance; cosine: 1 - cosine similarity.
      similarity: l2: 1 / (1 + distance); cosine: cosine similarity.
      metadata: the row's metadata (see `solarjax.retrieval.table.CORE_COLUMNS`).
      score: what a non-SSL ranking mode ordered by (`solarjax.retrieval.ranking`); None when
        results are ordered by ``distance``.
    """

    row: int
    distance: float
    similarity: float
    metadata: dict[str, Any]
    score: float | None = None


# ---------------------------------------------------------------------------------- exact search
def _bucket(size: int, minimum: int) -> int:
    """Smallest power of two >= max(size, minimum)."""
    largest = max(int(size), int(minimum), 1)
    return 1 << (largest - 1).bit_length()


def _normalised(vectors: jax.Array) -> jax.Array:
    norms = jnp.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / jnp.maximum(norms, 1e-12)


@functools.partial(jax.jit, static_argnames=("k", "metric", "grouped"))
def _block_top_k(queries, vectors, valid, segments, *, k: int, metric: str, grouped: bool):
    """Top-k of one block of table rows for a batch of queries.

    Args:
      queries: float32 [Q, D]; vectors: float32 [C, D]; valid: bool [Q, C] (False: never return);
      segments: int32 [C] in [0, C), the rows' groups (used when ``grouped``).
      k: results per query (<= C); metric: 'l2' or 'cosine'; grouped: at most one row per group.

    Returns:
      (scores float32 [Q, k], columns int32 [Q, k]) ascending; score is the squared L2 distance or
      1 - cosine; invalid slots have score inf (and, when grouped, a column >= C).
    """
    precision = jax.lax.Precision.HIGHEST
    if metric == "cosine":
        scores = 1.0 - jnp.matmul(_normalised(queries), _normalised(vectors).T, precision=precision)
    else:
        squared = (
            jnp.sum(queries**2, axis=1)[:, None]
            - 2.0 * jnp.matmul(queries, vectors.T, precision=precision)
            + jnp.sum(vectors**2, axis=1)[None, :]
        )
        scores = jnp.maximum(squared, 0.0)
    scores = jnp.where(valid, scores, jnp.inf)
    if not grouped:
        negative, columns = jax.lax.top_k(-scores, k)
        return -negative, columns
    num_columns = scores.shape[1]
    group_best = jax.ops.segment_min(scores.T, segments, num_segments=num_columns).T
    is_best = valid & (scores == group_best[:, segments])
    column_ids = jnp.where(is_best, jnp.arange(num_columns)[None, :], num_columns)
    group_first = jax.ops.segment_min(column_ids.T, segments, num_segments=num_columns).T
    negative, groups = jax.lax.top_k(-group_best, k)
    return -negative, jnp.take_along_axis(group_first, groups, axis=1)


def _select_top_k(scores: np.ndarray, rows: np.ndarray, groups: np.ndarray | None, k: int):
    """Per query, the k lowest scores (ties broken by row), at most one per group when given.

    Args:
      scores: [Q, M] (inf: no candidate); rows: int64 [Q, M]; groups: int64 [Q, M] or None.

    Returns:
      (scores [Q, k], rows [Q, k]) with rows -1 and scores inf where fewer than k candidates.
    """
    scores = np.where(rows >= 0, scores, np.inf)
    if groups is not None:
        order = np.lexsort((scores, groups), axis=-1)
        sorted_groups = np.take_along_axis(groups, order, axis=1)
        duplicate = np.zeros_like(sorted_groups, dtype=bool)
        duplicate[:, 1:] = sorted_groups[:, 1:] == sorted_groups[:, :-1]
        np.put_along_axis(scores, order, np.where(duplicate, np.inf, np.take_along_axis(scores, order, axis=1)), axis=1)
    order = np.lexsort((rows, scores), axis=-1)[:, :k]
    top_scores = np.take_along_axis(scores, order, axis=1)
    top_rows = np.where(np.isfinite(top_scores), np.take_along_axis(rows, order, axis=1), -1)
    pad = k - top_rows.shape[1]
    if pad > 0:
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=np.inf)
        top_rows = np.pad(top_rows, ((0, 0), (0, pad)), constant_values=-1)
    return top_scores, top_rows


AllowedFn = Callable[[slice, np.ndarray], np.ndarray]
"""``allowed(query_slice, rows [C]) -> bool [q, C]`` (or [C]): which rows each query may return."""

GroupFn = Callable[[np.ndarray], np.ndarray]
"""``groups(rows [C]) -> int64 [C]``: rows of one group yield at most one result."""


def exact_top_k(
    queries: Any,
    blocks: Iterable[tuple[np.ndarray, np.ndarray]],
    k: int,
    metric: str = "l2",
    *,
    allowed: AllowedFn | None = None,
    groups: GroupFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of every query among the rows of ``blocks``.

    Args:
      queries: [Q, D] float.
      blocks: (row numbers int64 [C], vectors [C, D]) pairs, read once each (e.g. memory-mapped
        table blocks); C may vary.
      k: neighbours per query.
      metric: 'l2' or 'cosine'.
      allowed: optional row filter, see `AllowedFn`.
      groups: optional grouping, see `GroupFn`.

    Returns:
      (rows int64 [Q, k], distances float32 [Q, k]) ascending by distance then row; distance as
      defined in the module docstring; rows -1 and distance inf where fewer than k rows qualify.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    queries = np.asarray(queries, dtype=np.float32)
    num_queries = len(queries)
    best_scores = np.full((num_queries, k), np.inf, np.float32)
    best_rows = np.full((num_queries, k), -1, np.int64)
    query_rows = min(_bucket(num_queries, 8), QUERY_BLOCK)
    for block_rows, vectors in blocks:
        block_rows = np.asarray(block_rows, dtype=np.int64)
        size = len(block_rows)
        if size == 0:
            continue
        width = _bucket(size, max(k, 256))
        padded_vectors = np.zeros((width, queries.shape[1]), np.float32)
        padded_vectors[:size] = vectors
        padded_rows = np.full(width, -1, np.int64)
        padded_rows[:size] = block_rows
        segments = np.arange(width, dtype=np.int32)
        block_groups = None
        if groups is not None:
            block_groups = np.full(width, np.iinfo(np.int64).min, np.int64)
            block_groups[:size] = groups(block_rows)
            _, segments = np.unique(block_groups, return_inverse=True)
            segments = segments.astype(np.int32)
        for start in range(0, num_queries, query_rows):
            chunk = slice(start, min(start + query_rows, num_queries))
            count = chunk.stop - chunk.start
            valid = np.zeros((query_rows, width), bool)
            valid[:count, :size] = True if allowed is None else allowed(chunk, block_rows)
            padded_queries = np.zeros((query_rows, queries.shape[1]), np.float32)
            padded_queries[:count] = queries[chunk]
            scores, columns = _block_top_k(
                padded_queries, padded_vectors, valid, segments, k=k, metric=metric, grouped=groups is not None
            )
            scores = np.asarray(scores)[:count]
            columns = np.minimum(np.asarray(columns)[:count], width - 1)
            candidate_rows = np.where(np.isfinite(scores), padded_rows[columns], -1)
            merged_rows = np.concatenate([best_rows[chunk], candidate_rows], axis=1)
            merged_groups = None
            if groups is not None:
                merged_groups = np.concatenate(
                    [_groups_of(best_rows[chunk], groups), np.where(candidate_rows >= 0, block_groups[columns], 0)],
                    axis=1,
                )
            best_scores[chunk], best_rows[chunk] = _select_top_k(
                np.concatenate([best_scores[chunk], scores], axis=1), merged_rows, merged_groups, k
            )
    distances = np.sqrt(best_scores) if metric == "l2" else best_scores
    return best_rows, distances


def _groups_of(rows: np.ndarray, groups: GroupFn) -> np.ndarray:
    """Groups of a [Q, k] array of rows (-1 entries get group 0; their score is inf anyway)."""
    flat = rows.reshape(-1)
    out = np.zeros_like(flat)
    present = flat >= 0
    if present.any():
        out[present] = groups(flat[present])
    return out.reshape(rows.shape)


# ------------------------------------------------------------------------------------ search plan
class SearchPlan:
    """Filters bound to a table and a batch of queries: what each query may return."""

    def __init__(self, table: Table, num_rows: int, filters: Filters, context: QueryContext, static=None):
        self.table = table
        self.num_rows = num_rows
        self.filters = filters
        self.context = context
        self.static = filters_lib.row_mask(filters, table.filter_column, num_rows) if static is None else static
        self.has_query_filters = filters_lib.has_query_filters(filters, context)

    @property
    def num_allowed(self) -> int:
        """Rows that pass the query-independent filters."""
        return self.num_rows if self.static is None else int(self.static.sum())

    @property
    def filters_rows(self) -> bool:
        return self.static is not None or self.has_query_filters

    @property
    def one_per_harp(self) -> bool:
        return self.filters.one_per_harp

    def for_queries(self, indices: np.ndarray) -> SearchPlan:
        """The plan of a subset of the queries (shares the row mask)."""
        context = QueryContext(self.context.harpnum[indices], self.context.t_rec[indices], self.context.row[indices])
        return SearchPlan(self.table, self.num_rows, self.filters, context, static=self.static)

    def allowed(self, queries: slice | np.ndarray, rows: np.ndarray) -> np.ndarray:
        """bool [q, C] for rows [C] shared by the queries, or [q, M] for per-query rows [q, M]."""
        rows = np.asarray(rows, dtype=np.int64)
        safe_rows = np.maximum(rows, 0)
        mask = rows >= 0 if self.static is None else self.static[safe_rows] & (rows >= 0)
        if self.has_query_filters:
            context = self.context
            sub = QueryContext(context.harpnum[queries], context.t_rec[queries], context.row[queries])
            mask = mask & filters_lib.query_mask(
                self.filters,
                sub,
                rows,
                self.table.filter_column("harpnum")[safe_rows],
                self.table.filter_column("t_rec")[safe_rows],
            )
        return mask

    def groups(self, rows: np.ndarray) -> np.ndarray:
        return filters_lib.group_ids(rows, self.table.filter_column("harpnum")[rows])


# ------------------------------------------------------------------------------------------ index
class Index(abc.ABC):
    """Nearest-neighbour search over the first ``num_rows`` rows of an embedding table."""

    kind: str = ""

    def __init__(self, table: Table, metric: str, num_rows: int):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.table = table
        self.metric = metric
        self.num_rows = int(num_rows)

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the encoder that made the indexed embeddings."""
        return self.table.fingerprint

    @property
    def dim(self) -> int:
        return self.table.dim

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rows={self.num_rows}, metric={self.metric!r}, table={str(self.table.path)!r})"

    # -- search ------------------------------------------------------------------------------
    def search(
        self,
        queries: Any,
        k: int = 10,
        filters: Filters | None = None,
        context: QueryContext | None = None,
    ) -> list[list[SearchResult]]:
        """The k nearest allowed rows of each query.

        Args:
          queries: [Q, D] embeddings (or one [D] embedding).
          k: results per query.
          filters: which rows may be returned (default: all).
          context: what is known about each query (own HARP, T_REC, table row); default unknown.

        Returns:
          Q lists of at most k `SearchResult`, nearest first; exactly k whenever k rows pass the
          filters (k HARPs with ``one_per_harp``).
        """
        queries = self._checked_queries(queries)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        context = QueryContext.unknown(len(queries)) if context is None else context
        if len(context) != len(queries):
            raise ValueError(f"context describes {len(context)} queries, got {len(queries)} queries")
        plan = SearchPlan(self.table, self.num_rows, filters or Filters(), context)
        rows = self._top_k(queries, k, plan)
        return self._results(queries, rows)

    def search_rows(self, rows: Sequence[int] | np.ndarray, k: int = 10, filters: Filters | None = None):
        """Searches with rows of the table as queries; a row never returns itself (unless
        ``filters.exclude_self`` is False) and ``exclude_own_harp_days`` uses the row's HARP/T_REC."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        context = QueryContext(self.table.filter_column("harpnum")[rows], self.table.filter_column("t_rec")[rows], rows)
        return self.search(self.table.embeddings(rows), k, filters, context)

    def search_images(
        self,
        images: Any,
        encoder: Encoder,
        k: int = 10,
        filters: Filters | None = None,
        context: QueryContext | None = None,
    ):
        """Embeds patches [N, 128, 128(, C)] (generated or real Br in B / 1000 G, or normalised AIA
        channels) with ``encoder`` and searches; the encoder must be the one the index was built with.
        Patches with a non-finite value or values outside [-1, 1] (a map in gauss) raise ValueError."""
        from solarjax.data.query_checks import check_normalised_images

        check_fingerprint(f"index over table {self.table.path}", self.fingerprint, encoder.fingerprint)
        images = check_normalised_images(images, "search_images")
        return self.search(embed_images(encoder.embed, images), k, filters, context)

    def search_fits(
        self,
        paths: Sequence[str | os.PathLike],
        encoder: Encoder,
        k: int = 10,
        filters: Filters | None = None,
    ):
        """Reads SHARP Br FITS files, preprocesses them as in training and searches; each file's
        HARP and T_REC feed ``exclude_own_harp_days``. An unreadable file raises
        `solarjax.data.SharpReadError` naming it; a segment other than Br, or a map without finite
        data, raises ValueError naming it."""
        from solarjax.data.query_checks import read_br_queries

        images, patches = read_br_queries(paths)
        context = QueryContext.from_metadata([patch.meta for patch in patches])
        return self.search_images(images, encoder, k, filters, context)

    def _checked_queries(self, queries: Any) -> np.ndarray:
        array = np.asarray(queries, dtype=np.float32)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise ValueError(f"queries must be [Q, {self.dim}] embeddings, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError("queries contain NaN or Inf")
        return array

    def _results(self, queries: np.ndarray, rows: np.ndarray) -> list[list[SearchResult]]:
        """Results with distances recomputed in float64 from the table, sorted by (distance, row)."""
        found = rows >= 0
        metadata = iter(self.table.rows(rows[found]))
        vectors = self.table.embeddings(rows[found]).astype(np.float64)
        distances = iter(
            _distances(np.repeat(queries.astype(np.float64), found.sum(axis=1), axis=0), vectors, self.metric)
        )
        results = []
        for query_rows in rows:
            hits = [
                SearchResult(int(row), distance, _similarity(distance, self.metric), next(metadata))
                for row, distance in zip(query_rows[query_rows >= 0], distances)
            ]
            results.append(sorted(hits, key=lambda hit: (hit.distance, hit.row)))
        return results

    @abc.abstractmethod
    def _top_k(self, queries: np.ndarray, k: int, plan: SearchPlan) -> np.ndarray:
        """Rows int64 [Q, k] of the k nearest allowed rows (-1 where fewer)."""

    # -- persistence -------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> pathlib.Path:
        """Writes the index to ``directory`` (artefacts first, manifest last); returns the directory."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / INDEX_MANIFEST).unlink(missing_ok=True)
        files = self._write_artefacts(directory)
        manifest = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "kind": self.kind,
            "metric": self.metric,
            "fingerprint": self.fingerprint,
            "num_rows": self.num_rows,
            "dim": self.dim,
            "table": os.path.relpath(self.table.path.resolve(), directory.resolve()),
            "table_id": self.table.table_id,
            "params": self._params(),
            "files": {name: _file_record(directory / name) for name in files},
        }
        temporary = directory / f".{INDEX_MANIFEST}.{uuid.uuid4().hex}.tmp"
        temporary.write_text(json.dumps(manifest, indent=1))
        os.replace(temporary, directory / INDEX_MANIFEST)
        return directory

    def _write_artefacts(self, directory: pathlib.Path) -> list[str]:
        """Writes the kind's files; returns their paths relative to ``directory``."""
        return []

    def _params(self) -> dict[str, Any]:
        return {}


def _distances(queries: np.ndarray, vectors: np.ndarray, metric: str) -> np.ndarray:
    """Row-wise distances between paired [M, D] arrays, in their floating dtype."""
    if metric == "cosine":
        query_norms = np.maximum(np.linalg.norm(queries, axis=1), 1e-12)
        vector_norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
        return 1.0 - np.sum(queries * vectors, axis=1) / (query_norms * vector_norms)
    return np.sqrt(np.sum((queries - vectors) ** 2, axis=1))


def _similarity(distance: float, metric: str) -> float:
    return float(1.0 - distance) if metric == "cosine" else float(1.0 / (1.0 + distance))


class ExactIndex(Index):
    """Exact search over the table's memory-mapped blocks; the oracle for ScaNN."""

    kind = "exact"

    def _top_k(self, queries: np.ndarray, k: int, plan: SearchPlan) -> np.ndarray:
        if plan.static is not None and plan.num_allowed <= self.num_rows // 2:
            blocks = self._subset_blocks(np.flatnonzero(plan.static))
        else:
            blocks = (
                (np.arange(start, start + len(block), dtype=np.int64), block)
                for start, block in self.table.embedding_blocks(BLOCK_ROWS, self.num_rows)
            )
        rows, _ = exact_top_k(
            queries,
            blocks,
            k,
            self.metric,
            allowed=plan.allowed if plan.filters_rows else None,
            groups=plan.groups if plan.one_per_harp else None,
        )
        return rows

    def _subset_blocks(self, rows: np.ndarray):
        for start in range(0, len(rows), BLOCK_ROWS):
            chunk = rows[start : start + BLOCK_ROWS]
            yield chunk, self.table.embeddings(chunk)


# ------------------------------------------------------------------------------------------ ScaNN
@dataclasses.dataclass(frozen=True)
class ScannParams:
    """ScaNN configuration (see the module docstring for how each value is chosen).

    Attributes:
      num_leaves: k-means tree leaves.
      leaves_to_search: leaves scored per query.
      reorder_neighbors: candidates re-ordered with int8 embeddings before returning.
      training_sample_size: rows used to train the tree and the hashing codebooks.
      dims_per_block: embedding dimensions per 4-bit asymmetric-hashing code.
      scoring: 'ah' (asymmetric hashing + int8 re-ordering) or 'brute_force' (exact float32
        distances to the rows of the searched leaves).
      calibrated_recall: recall@10 against exact search measured at build (None: not measured).
    """

    num_leaves: int
    leaves_to_search: int
    reorder_neighbors: int = 256
    training_sample_size: int = 100_000
    dims_per_block: int = 2
    scoring: str = "ah"
    calibrated_recall: float | None = None


def scann_params_for(num_rows: int) -> ScannParams:
    """Default ScaNN parameters for a table of ``num_rows`` rows (``leaves_to_search``, 5% of the
    leaves, is what an uncalibrated index uses)."""
    num_leaves = int(np.clip(round(math.sqrt(num_rows)), 8, 65_536))
    return ScannParams(
        num_leaves=num_leaves,
        leaves_to_search=max(4, math.ceil(0.05 * num_leaves)),
        training_sample_size=min(num_rows, max(100_000, 64 * num_leaves)),
    )


def _scann_vectors(vectors: np.ndarray, metric: str) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def _build_scann_searcher(vectors: np.ndarray, metric: str, params: ScannParams):
    import scann

    reorder_type = scann.scann_ops_pybind.scann_builder.ReorderType.INT8
    measure = "dot_product" if metric == "cosine" else "squared_l2"
    anisotropic_threshold = 0.2 if metric == "cosine" else float("nan")
    tree = scann.scann_ops_pybind.builder(_scann_vectors(vectors, metric), 10, measure).tree(
        num_leaves=params.num_leaves,
        num_leaves_to_search=params.leaves_to_search,
        training_sample_size=params.training_sample_size,
    )
    if params.scoring == "brute_force":
        return tree.score_brute_force().build()
    if params.scoring != "ah":
        raise ValueError(f"unknown ScaNN scoring {params.scoring!r}; choose 'ah' or 'brute_force'")
    return (
        tree.score_ah(params.dims_per_block, anisotropic_quantization_threshold=anisotropic_threshold)
        .reorder(params.reorder_neighbors, quantize=reorder_type)
        .build()
    )


class ScannIndex(Index):
    """ScaNN tree + asymmetric hashing + int8 re-ordering, exact re-ranking of the candidates."""

    kind = "scann"

    def __init__(self, table: Table, metric: str, num_rows: int, searcher, params: ScannParams):
        super().__init__(table, metric, num_rows)
        self.searcher = searcher
        self.params = params
        self._exact = ExactIndex(table, metric, num_rows)

    @classmethod
    def build(
        cls,
        table: Table,
        metric: str = "l2",
        params: ScannParams | None = None,
        *,
        num_rows: int | None = None,
        target_recall: float | None = 0.95,
        seed: int = 0,
    ) -> ScannIndex:
        """Builds a ScaNN index over the table's first ``num_rows`` rows (default all).

        Args:
          table: the embedding table.
          metric: 'l2' or 'cosine'.
          params: ScaNN parameters (default `scann_params_for` the table size).
          num_rows: rows to index.
          target_recall: calibrate ``leaves_to_search`` to reach this recall@10, switching to
            brute-force scoring when hashing cannot reach it (None: keep params).
          seed: seed of the calibration queries.
        """
        num_rows = table.num_rows if num_rows is None else num_rows
        if num_rows < SCANN_MIN_ROWS:
            raise ValueError(
                f"a ScaNN index needs at least {SCANN_MIN_ROWS} rows to train, table {table.path} has {num_rows}: "
                "use kind='exact'"
            )
        params = scann_params_for(num_rows) if params is None else params
        vectors = table.all_embeddings(num_rows)
        index = cls(table, metric, num_rows, _build_scann_searcher(vectors, metric, params), params)
        if target_recall is not None and index.calibrate(target_recall, seed=seed) < target_recall:
            params = dataclasses.replace(index.params, scoring="brute_force", calibrated_recall=None)
            index = cls(table, metric, num_rows, _build_scann_searcher(vectors, metric, params), params)
            index.calibrate(target_recall, seed=seed)
        return index

    def calibrate(self, target_recall: float, *, k: int = 10, num_queries: int = 256, seed: int = 0) -> float:
        """Sets ``leaves_to_search`` one 1.5x step above the fewest leaves (1, 2, 3, 5, ...) at which
        recall@k of table-row queries (their own row excluded) reaches ``target_recall`` (the
        step is a margin for queries from outside the table); returns the recall reached there."""
        rows = np.random.default_rng(seed).choice(self.num_rows, min(num_queries, self.num_rows), replace=False)
        queries = self.table.embeddings(rows)
        plan = _unfiltered_plan(self, rows)
        exact = self._exact._top_k(queries, k, plan)
        leaves = 1
        while True:
            self.params = dataclasses.replace(self.params, leaves_to_search=leaves)
            recall = _recall(self._top_k(queries, k, plan), exact)
            if recall >= target_recall or leaves >= self.params.num_leaves:
                break
            leaves = min(self.params.num_leaves, math.ceil(leaves * 1.5))
        # One more step as a margin: queries from outside the table are a little harder.
        leaves = min(self.params.num_leaves, math.ceil(leaves * 1.5))
        self.params = dataclasses.replace(self.params, leaves_to_search=leaves)
        recall = _recall(self._top_k(queries, k, plan), exact)
        self.params = dataclasses.replace(self.params, calibrated_recall=recall)
        return recall

    def candidates(self, queries: np.ndarray, count: int, leaves_to_search: int | None = None) -> np.ndarray:
        """ScaNN's ``count`` best rows per query: int64 [Q, count], -1 where it found fewer.

        ``leaves_to_search`` defaults to the calibrated ``params.leaves_to_search``.
        """
        count = min(count, self.num_rows)
        leaves = self.params.leaves_to_search if leaves_to_search is None else leaves_to_search
        rows, distances = self.searcher.search_batched_parallel(
            _scann_vectors(queries, self.metric),
            final_num_neighbors=count,
            pre_reorder_num_neighbors=max(self.params.reorder_neighbors, count),
            leaves_to_search=min(leaves, self.params.num_leaves),
        )
        return np.where(np.isnan(distances), -1, rows.astype(np.int64))

    def _top_k(self, queries: np.ndarray, k: int, plan: SearchPlan) -> np.ndarray:
        if plan.static is not None and plan.num_allowed <= min(
            EXACT_SUBSET_MAX_ROWS, EXACT_SUBSET_MAX_FRACTION * self.num_rows
        ):
            return self._exact._top_k(queries, k, plan)
        # With a fraction p of the rows allowed, the k nearest allowed rows lie about k / p deep
        # in the unfiltered ranking: ask for that many candidates from 1 / p times more leaves.
        pass_fraction = max(plan.num_allowed, 1) / self.num_rows
        leaves = math.ceil(self.params.leaves_to_search / pass_fraction)
        most = min(MAX_FETCH, self.num_rows)
        fetch = min(max(RERANK_FACTOR * k, math.ceil(RERANK_FACTOR * k / pass_fraction)), most)
        best = np.full((len(queries), k), -1, np.int64)
        pending = np.arange(len(queries))
        while True:
            candidates = self.candidates(queries[pending], fetch, leaves)
            best[pending] = self._rerank(queries[pending], candidates, k, plan.for_queries(pending))
            pending = pending[np.any(best[pending] < 0, axis=1)]
            if not pending.size or fetch >= most:
                break
            fetch = min(4 * fetch, most)
        if pending.size:
            best[pending] = self._exact._top_k(queries[pending], k, plan.for_queries(pending))
        return best

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int, plan: SearchPlan) -> np.ndarray:
        """The k best allowed candidates per query by exact distance: rows [Q, k], -1 where fewer."""
        allowed = plan.allowed(slice(None), candidates) if plan.filters_rows else candidates >= 0
        rows = np.where(allowed, candidates, -1)
        present = rows >= 0
        scores = np.full(rows.shape, np.inf)
        query_of_row = np.broadcast_to(np.arange(len(queries))[:, None], rows.shape)[present]
        scores[present] = _distances(queries[query_of_row], self.table.embeddings(rows[present]), self.metric)
        groups = None
        if plan.one_per_harp:
            groups = np.zeros_like(rows)
            groups[present] = plan.groups(rows[present])
        _, top_rows = _select_top_k(scores, rows, groups, k)
        return top_rows

    def _write_artefacts(self, directory: pathlib.Path) -> list[str]:
        scann_dir = directory / SCANN_DIR
        scann_dir.mkdir(exist_ok=True)
        self.searcher.serialize(os.fspath(scann_dir), relative_path=True)
        return sorted(str(path.relative_to(directory)) for path in scann_dir.iterdir() if path.is_file())

    def _params(self) -> dict[str, Any]:
        return dataclasses.asdict(self.params)


def measure_recall(index: Index, queries: Any, k: int = 10, *, query_rows: np.ndarray | None = None) -> float:
    """Mean recall@k of ``index`` against exact search over the same rows, without filters.

    Args:
      index: the index to measure.
      queries: [Q, D] embeddings.
      k: neighbours compared.
      query_rows: table rows the queries were taken from (each query's own row is excluded from
        both result sets), or None for outside queries.

    Returns:
      Mean over queries of |index top-k ∩ exact top-k| / k.
    """
    queries = np.asarray(queries, dtype=np.float32)
    plan = _unfiltered_plan(index, query_rows if query_rows is not None else np.full(len(queries), -1))
    exact = ExactIndex(index.table, index.metric, index.num_rows)._top_k(queries, k, plan)
    return _recall(index._top_k(queries, k, plan), exact)


def _unfiltered_plan(index: Index, query_rows: np.ndarray) -> SearchPlan:
    """A plan with no filters except that a query taken from table row r never returns r."""
    unknown = QueryContext.unknown(len(query_rows))
    context = QueryContext(unknown.harpnum, unknown.t_rec, query_rows)
    return SearchPlan(index.table, index.num_rows, Filters(), context)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each row of ``exact`` [Q, k] (-1: none) found in ``found`` [Q, k]."""
    overlaps = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(int((b >= 0).sum()), 1) for a, b in zip(found, exact)]
    return float(np.mean(overlaps))


# ------------------------------------------------------------------------------ build/save/load
def build_index(
    table: Table,
    kind: str = "auto",
    metric: str = "l2",
    *,
    target_recall: float = 0.95,
    seed: int = 0,
) -> Index:
    """Builds an index over every row of ``table``.

    Args:
      table: the embedding table.
      kind: 'exact', 'scann', or 'auto' (exact up to `AUTO_EXACT_MAX_ROWS` rows, ScaNN beyond).
      metric: 'l2' (the method's Euclidean neighbours) or 'cosine'.
      target_recall: recall@10 ScaNN is calibrated to reach.
      seed: seed of the calibration queries.
    """
    if kind not in KINDS + ("auto",):
        raise ValueError(f"kind must be 'auto' or one of {KINDS}, got {kind!r}")
    if kind == "auto":
        kind = "exact" if table.num_rows <= AUTO_EXACT_MAX_ROWS else "scann"
    if kind == "exact":
        return ExactIndex(table, metric, table.num_rows)
    return ScannIndex.build(table, metric, target_recall=target_recall, seed=seed)


def _file_record(path: pathlib.Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: pathlib.Path) -> str:
    return file_sha256(path)


def _read_index_manifest(directory: pathlib.Path) -> dict[str, Any]:
    file = directory / INDEX_MANIFEST
    if not file.is_file():
        raise IndexFileError(file, "missing: not an index directory, or its save was interrupted")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IndexFileError(file, f"not valid JSON (truncated or corrupted): {err}") from err
    if manifest.get("format") != INDEX_FORMAT or manifest.get("version") != INDEX_VERSION:
        raise IndexFileError(
            file,
            f"format {manifest.get('format')!r} version {manifest.get('version')!r}, "
            f"expected {INDEX_FORMAT!r} version {INDEX_VERSION}",
        )
    required = {"kind", "metric", "fingerprint", "num_rows", "dim", "table", "table_id", "params", "files"}
    missing = required - set(manifest)
    if missing:
        raise IndexFileError(file, f"manifest lacks {sorted(missing)}")
    if manifest["kind"] not in KINDS:
        raise IndexFileError(file, f"unknown index kind {manifest['kind']!r}")
    return manifest


def _verify_files(directory: pathlib.Path, files: dict[str, dict[str, Any]], checksums: bool) -> None:
    for name, record in files.items():
        path = directory / name
        if not path.is_file():
            raise IndexFileError(path, "missing: the index is incomplete")
        size = path.stat().st_size
        if size != record["bytes"]:
            raise IndexFileError(path, f"partial or altered: {size} bytes, the manifest says {record['bytes']}")
        if checksums and _sha256(path) != record["sha256"]:
            raise IndexFileError(path, "corrupted: its SHA-256 differs from the one recorded at save")


def load_index(
    directory: str | os.PathLike,
    table: Table | None = None,
    *,
    expected_fingerprint: str | None = None,
    verify_checksums: bool = True,
) -> Index:
    """Loads a saved index.

    Args:
      directory: the index directory.
      table: its table, already open (default: opened from the path recorded at save).
      expected_fingerprint: fingerprint of the encoder that will embed queries; a different one
        in the index raises `FingerprintMismatchError` naming both.
      verify_checksums: check the SHA-256 of every artefact (sizes are always checked).

    Raises:
      IndexFileError: a missing, partial or corrupted file (named), or a table that does not fit.
      FingerprintMismatchError: see ``expected_fingerprint``.
    """
    directory = pathlib.Path(directory)
    manifest = _read_index_manifest(directory)
    if expected_fingerprint is not None:
        check_fingerprint(f"index {directory}", manifest["fingerprint"], expected_fingerprint)
    _verify_files(directory, manifest["files"], verify_checksums)
    if table is None:
        table = open_table(directory / manifest["table"])
    manifest_file = directory / INDEX_MANIFEST
    if table.table_id != manifest["table_id"]:
        raise IndexFileError(
            manifest_file, f"built for table id {manifest['table_id']}, but {table.path} has id {table.table_id}"
        )
    if table.num_rows < manifest["num_rows"]:
        raise IndexFileError(
            manifest_file, f"covers {manifest['num_rows']} rows but table {table.path} has only {table.num_rows}"
        )
    check_fingerprint(f"table {table.path}", table.fingerprint, manifest["fingerprint"])
    if manifest["kind"] == "exact":
        return ExactIndex(table, manifest["metric"], manifest["num_rows"])
    import scann

    try:
        searcher = scann.scann_ops_pybind.load_searcher(os.fspath(directory / SCANN_DIR))
    except (RuntimeError, ValueError, OSError) as err:
        raise IndexFileError(directory / SCANN_DIR, f"ScaNN could not load the searcher: {err}") from err
    return ScannIndex(table, manifest["metric"], manifest["num_rows"], searcher, ScannParams(**manifest["params"]))
