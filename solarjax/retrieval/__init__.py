"""Retrieval: embedding tables, exact and ScaNN indexes, filtered search, and its evaluation.

    from solarjax import retrieval
    table = retrieval.embed_dataset("runs/table", encoder.embed, encoder.fingerprint, batches)
    index = retrieval.build_index(table, kind="auto", metric="l2")
    hits = index.search_images(generated, encoder, k=10, filters=retrieval.Filters(one_per_harp=True))

`evaluate` (the paper's protocol with baselines, paired bootstrap intervals and figures),
`ranking` (rank='ssl' | 'hybrid' | 'physics'), `real_checks` (same region beyond 12 h, header
keywords of real-to-real matches) and `bootstrap` are imported on first use:
``from solarjax.retrieval import evaluate, ranking``.
"""

from solarjax.retrieval.filters import Filters, QueryContext
from solarjax.retrieval.index import (
    ExactIndex,
    Index,
    IndexFileError,
    ScannIndex,
    ScannParams,
    SearchResult,
    build_index,
    exact_top_k,
    load_index,
    measure_recall,
    scann_params_for,
)
from solarjax.retrieval.table import (
    CORE_COLUMNS,
    DATASET_FEATURES,
    FingerprintMismatchError,
    Table,
    TableError,
    append_rows,
    build_table_from_arrays,
    embed_dataset,
    embed_images,
    open_table,
)

__all__ = [
    "CORE_COLUMNS",
    "DATASET_FEATURES",
    "ExactIndex",
    "Filters",
    "FingerprintMismatchError",
    "Index",
    "IndexFileError",
    "QueryContext",
    "ScannIndex",
    "ScannParams",
    "SearchResult",
    "Table",
    "TableError",
    "append_rows",
    "build_index",
    "build_table_from_arrays",
    "embed_dataset",
    "embed_images",
    "exact_top_k",
    "load_index",
    "measure_recall",
    "open_table",
    "scann_params_for",
]
