"""Embedding and search over one served index: its rows' images, its 2-D map and the compiled search
programs; `AiaSearch` adds what the AIA table needs (patch ids, time and mu ranges)."""

import itertools
import math
import os
import pathlib
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from solarjax import physics
from solarjax.app.artefacts import AiaArtefacts

MAX_K = 50
"""Most results one search returns."""

SEARCH_K = MAX_K
"""Every search asks the index for this many results and keeps the first k: one compiled program."""

MAP_POINTS = 2_000
"""Table rows (evenly spaced) drawn in the embedding map."""

AIA_PATCH_SIZE = 128
"""Side of an AIA query patch (pixels)."""

CME_PATCH_SIZE = 128
"""Side of a CME query image (pixels)."""


class NotFound(Exception):
    """A row, HARP/T_REC, image or stored search that does not exist (answered with 404)."""


def finite_or_none(value: Any) -> Any:
    """JSON-safe scalar: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


SYNTHETIC_RECORD = re.compile(r"synthetic\[(\d+)\]\[(\d+)\]")
"""Record name of a `solarjax.data.synthetic` patch: synthetic[<seed>][<index>]."""


class RowImages:
    """Patches [H, W, C] of table rows, read back from the TFDS split each row names (thread-safe).

    A row without a stored example whose record names a synthetic SHARP patch
    ('synthetic[<seed>][<index>]') is regenerated: such a patch depends only on its seed and index
    (`solarjax.data.synthetic.generate` with the default config, as `sharp_patches` builds it).
    """

    def __init__(self, table, tfds_dir: pathlib.Path):
        self._dataset = table.column("dataset")
        self._example = table.column("example_index")
        self._record = table.column("record") if "record" in table.columns else None
        self._tfds_dir = tfds_dir
        self._sources: dict[str, Any] = {}
        self._lock = threading.Lock()

    def image(self, row: int) -> np.ndarray | None:
        """float32 [H, W, C] of a row, or None when the row has no stored or synthetic image."""
        dataset = self._dataset[row]
        dataset = dataset.decode() if isinstance(dataset, bytes) else str(dataset)
        example = int(self._example[row])
        if not dataset or example < 0:
            return self._synthetic(row)
        import tensorflow_datasets as tfds

        import data_builders.aia_patches  # noqa: F401  (registers sharp_patches and aia_patches)

        name, _, split = dataset.partition(":")
        with self._lock:
            if dataset not in self._sources:
                self._sources[dataset] = tfds.data_source(name, data_dir=os.fspath(self._tfds_dir), split=split)
            image = self._sources[dataset][example]["image"]
        return np.asarray(image, np.float32)

    def _synthetic(self, row: int) -> np.ndarray | None:
        match = None if self._record is None else SYNTHETIC_RECORD.fullmatch(bytes(self._record[row]).decode())
        if match is None:
            return None
        from solarjax.data import synthetic

        return synthetic.generate(1, int(match[1]), start=int(match[2])).images[0][..., None]


class EmbeddingMap:
    """A 2-D PCA projection of the table's embeddings (fit on `MAP_POINTS` evenly spaced rows)."""

    def __init__(self, index):
        count = min(index.num_rows, MAP_POINTS)
        self.rows = np.unique(np.linspace(0, index.num_rows - 1, count).round().astype(np.int64))
        sample = index.table.embeddings(self.rows).astype(np.float64)
        self.mean = sample.mean(axis=0)
        _, _, axes = np.linalg.svd(sample - self.mean, full_matrices=False)
        self.axes = axes[:2]  # [2, D]
        self.points = self.project(sample)

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """[N, D] embeddings -> [N, 2] map coordinates."""
        return (np.asarray(embeddings, np.float64) - self.mean) @ self.axes.T


class IndexSearch:
    """Embedding and search over one index with the encoder that built it (thread-safe; callers
    bound concurrency themselves, see `create_app`)."""

    ranking: Any = None  # solarjax.retrieval.ranking.Ranking of the SHARP search (set by create_app)

    def __init__(self, encoder, index, tfds_dir: pathlib.Path):
        self.encoder = encoder
        self.index = index
        self.images = RowImages(index.table, tfds_dir)
        self.map = EmbeddingMap(index)

    def query_quantities(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Exact quantities of query patches [N, 128, 128, C] that the physics and hybrid ranks compare
        (SHARP's `solarjax.physics`; other tables override): name -> float64 [N]."""
        return {name: np.asarray(v, np.float64) for name, v in physics.quantities(images).items()}

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Query patches [1, 128, 128, C] -> embeddings [1, D] (the encoder's own device)."""
        return np.asarray(self.encoder.embed(np.asarray(images, np.float32)), np.float32)

    def search(self, embeddings: np.ndarray, k: int, filters, context=None):
        """Top-k results (SearchResult list) of one query embedding [1, D]."""
        return self.index.search(embeddings, SEARCH_K, filters, context)[0][:k]

    def search_ranked(
        self,
        embeddings: np.ndarray,
        images: np.ndarray,
        k: int,
        filters,
        context=None,
        rank: str = "ssl",
        values: Mapping[str, np.ndarray] | None = None,
    ):
        """Top-k results of one query in a ranking mode of `solarjax.retrieval.ranking` ('ssl',
        'hybrid' with the validation-chosen weight, 'physics'); ``images`` [1, 128, 128, 1] give the
        query's exact quantities (or ``values``, name -> [1], when already computed)."""
        from solarjax.retrieval import ranking as ranking_lib

        if rank == "ssl":
            return self.search(embeddings, k, filters, context)
        if values is None:
            values = self.query_quantities(images)
        quantities = {name: np.asarray(v, np.float64) for name, v in values.items()}
        return ranking_lib.search(
            self.index, embeddings, quantities, SEARCH_K, filters, context, ranking=self.ranking.with_rank(rank)
        )[0][:k]

    def map_points(self, rows: Sequence[int]) -> np.ndarray:
        """Map coordinates [len(rows), 2] of table rows."""
        return self.map.project(self.index.table.embeddings(np.asarray(rows, np.int64)))

    def warm_search(self, embedding: np.ndarray, grouped: bool) -> None:
        """Compiles the search programs of every block width the index can use (and, when
        ``grouped``, those of one result per HARP)."""
        from solarjax.retrieval import Filters
        from solarjax.retrieval.index import ExactIndex, ScannIndex

        widths = (
            _block_widths(self.index.num_rows, SEARCH_K) if isinstance(self.index, (ExactIndex, ScannIndex)) else []
        )
        for width, group in itertools.product(widths, (False, True) if grouped else (False,)):
            _compile_block(embedding, width, SEARCH_K, self.index.metric, group)
        self.search(embedding, 1, Filters())
        if grouped:
            self.search(embedding, 1, Filters(one_per_harp=True))

    def warm_ranked(self, embedding: np.ndarray, image: np.ndarray, grouped: bool) -> None:
        """Compiles the hybrid's candidate search (k = its candidates) and the physics search (the
        ranking quantities' width) for every block width, grouped or not."""
        from solarjax.retrieval import Filters

        candidates = max(SEARCH_K, self.ranking.candidates)
        physics_query = np.zeros((1, len(self.ranking.quantities)), np.float32)
        widths = _block_widths(self.index.num_rows, candidates)
        for width, group in itertools.product(widths, (False, True) if grouped else (False,)):
            if width >= candidates:
                _compile_block(embedding, width, candidates, self.index.metric, group)
            _compile_block(physics_query, width, SEARCH_K, "l2", group)
        for rank in ("hybrid", "physics"):
            self.search_ranked(embedding, image, 1, Filters(), rank=rank)
            if grouped:
                self.search_ranked(embedding, image, 1, Filters(one_per_harp=True), rank=rank)


def _block_widths(num_rows: int, k: int) -> list[int]:
    """Widths of the row blocks a top-k search over `num_rows` rows can run on (`solarjax.retrieval.index`)."""
    from solarjax.retrieval.index import BLOCK_ROWS, _bucket

    largest = _bucket(min(num_rows, BLOCK_ROWS), max(k, 256))
    return [1 << p for p in range(int(math.log2(max(SEARCH_K, 256))), int(math.log2(largest)) + 1)]


def _compile_block(query: np.ndarray, width: int, k: int, metric: str, grouped: bool) -> None:
    """Compiles the top-k program of one block of `width` rows for queries like `query` [1, D], by running it on
    zeros (``grouped``: one result per group)."""
    from solarjax.retrieval.index import exact_top_k

    block = (np.arange(width), np.zeros((width, query.shape[1]), np.float32))
    exact_top_k(query, [block], k, metric, groups=(lambda rows: rows) if grouped else None)


class AiaSearch(IndexSearch):
    """Embedding and search of an AIA table (`aia_patches`)."""

    def __init__(self, artefacts: AiaArtefacts):
        super().__init__(artefacts.encoder, artefacts.index, artefacts.tfds_dir)
        self.artefacts = artefacts
        self.wavelengths = artefacts.wavelengths
        self._ids = self.index.table.column("id")

    def row_of_id(self, patch_id: str) -> int:
        """The table row of a patch id."""
        found = np.flatnonzero(self._ids == patch_id.encode())
        if not len(found):
            raise NotFound(f"no AIA patch with id {patch_id!r} in the table")
        return int(found[0])

    def warm(self) -> None:
        """Compiles the encoder on one query and every search program."""
        query = np.zeros((1, AIA_PATCH_SIZE, AIA_PATCH_SIZE, len(self.wavelengths)), np.float32)
        self.warm_search(self.embed(query), grouped=False)

    def time_and_mu_ranges(self) -> dict[str, list]:
        """[first, last] observation time (ISO) and [min, max] mu over the table (None when absent)."""
        table = self.index.table
        times = table.column("t_obs")[: self.index.num_rows]
        times = times[~np.isnat(times)]
        mu = table.column("mu")[: self.index.num_rows]
        mu = mu[np.isfinite(mu)]
        iso = (
            [str(np.datetime_as_string(t, unit="s")) for t in (times.min(), times.max())]
            if len(times)
            else [None, None]
        )
        return {"t_obs": iso, "mu": [float(mu.min()), float(mu.max())] if len(mu) else [None, None]}
