"""The contact sheet of `solarjax search --png`: each query next to its matches, the match images read back
from the indexed TFDS split."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

QUANTITIES = ("tuf", "psep", "r_value")


def write_contact_sheet(
    path: str | os.PathLike, query_images: np.ndarray, results: Sequence[Sequence], index, data_dir: str
) -> None:
    """Writes the PNG at `path`.

    Args:
      path: PNG to write.
      query_images: normalised queries [n, 128, 128].
      results: per query, its hits (objects with ``.row``), nearest first.
      index: the searched index; its table's ``dataset`` and ``example_index`` columns locate each row's patch.
      data_dir: TFDS data directory of the indexed dataset.
    """
    import tensorflow_datasets as tfds

    import data_builders  # noqa: F401  (registers sharp_patches)
    from solarjax import physics
    from solarjax.retrieval.evaluate import plot_query_matches

    rows = np.full((len(results), max(len(h) for h in results)), -1, np.int64)
    for q, hits in enumerate(results):
        rows[q, : len(hits)] = [h.row for h in hits]
    used = np.unique(rows[rows >= 0])
    sources = {}
    database = np.zeros((index.num_rows, *query_images.shape[1:]), np.float32)
    for row in used:
        name = index.table.column("dataset")[row]  # text columns are stored as UTF-8 bytes
        dataset, _, split = (name.decode() if isinstance(name, bytes) else str(name)).partition(":")
        if dataset not in sources:
            sources[dataset] = tfds.data_source(dataset, data_dir=data_dir, split=split)
        database[row] = np.asarray(sources[dataset][int(index.table.column("example_index")[row])]["image"])[..., 0]
    query_values = np.stack([np.asarray(physics.quantities(query_images)[n]) for n in QUANTITIES], axis=1)
    table_values = np.stack([index.table.column(n) for n in QUANTITIES], axis=1)
    plot_query_matches(path, query_images, query_values, rows, database, table_values, QUANTITIES)
