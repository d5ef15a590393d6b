"""What one app serves, in one object: the safety limits, the compute slots and each dataset's table (its
search engine, stored searches and rendered row PNGs). `load_state` loads and warms it."""

import dataclasses
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from solarjax import physics
from solarjax.app.artefacts import AiaArtefacts, checked_aia_artefacts, load_artefacts, load_search_ranking
from solarjax.app.caches import LruCache
from solarjax.app.generation import SearchEngine
from solarjax.app.rendering import render_aia_png, render_png
from solarjax.app.search import AiaSearch, IndexSearch, NotFound
from solarjax.retrieval.filters import QueryContext

RESULT_STORE_SIZE = 256
"""Searches kept for export, per dataset (the least recently made or read is dropped first); others answer 404."""

ROW_PNG_CACHE_SIZE = 4096
"""Rendered row PNGs kept per dataset."""

RESULT_COLUMNS = ("harpnum", "noaa_ar", "t_rec", "lat_deg", "lon_deg", "record")
"""Columns of a SHARP result (record: the JSOC record name)."""

AIA_RESULT_COLUMNS = ("id", "t_obs", "wavelengths", "mu", "hpc_x", "hpc_y", "bbox", "source")
"""Columns of an AIA result (the AIA data contract's metadata, as `aia_patches` tables store it)."""


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """Safety limits of one app.

    Attributes:
      max_upload_bytes: largest accepted upload (a SHARP Br FITS is 0.1 - 3 MB).
      max_aia_upload_bytes: largest accepted AIA file (a full-disk level-1 image is ~10 MB
        RICE-compressed, 32 MB uncompressed).
      max_pending: API requests admitted at once (running or waiting); more get 503.
      workers: requests computing at once (the others wait for a slot).
    """

    max_upload_bytes: int = 16 * 2**20
    max_aia_upload_bytes: int = 40 * 2**20
    max_pending: int = 32
    workers: int = 2


@dataclasses.dataclass
class Dataset:
    """One served table, as its routes see it.

    Attributes:
      prefix: where its API lives ('/api', '/api/aia').
      search: its engine; None when the server does not serve it (its routes answer 404 with `absent`).
      result_columns: the table columns of each result (and of its CSV export).
      result_quantities: the physical quantities of each result (and of its CSV export).
      map_colour: the table column that colours its embedding map.
      time_column: the table column of each row's observation time.
      harp_column: the table column of each row's HARP number (None: the table has none).
      row_label: how messages name a row ('row', 'AIA row').
      render: PNG bytes of a row's image [H, W, C] and a channel (None: the default view).
      absent: the 404 message of a dataset not served.
      results: its searches kept for export, by id.
      pngs: its rendered row PNGs, by (row, channel).
    """

    prefix: str
    search: IndexSearch | None
    result_columns: tuple[str, ...]
    result_quantities: tuple[str, ...]
    map_colour: str
    time_column: str
    harp_column: str | None
    row_label: str
    render: Callable[[np.ndarray, int | None], bytes]
    absent: str = ""
    results: LruCache = dataclasses.field(default_factory=lambda: LruCache(RESULT_STORE_SIZE))
    pngs: LruCache = dataclasses.field(default_factory=lambda: LruCache(ROW_PNG_CACHE_SIZE))

    def served(self) -> Any:
        """The search engine (`IndexSearch` or a subclass); NotFound when this server does not serve it."""
        if self.search is None:
            raise NotFound(self.absent)
        return self.search

    def checked_row(self, row: int) -> int:
        rows = self.served().index.num_rows
        if not 0 <= row < rows:
            raise NotFound(f"no row {row}: the table has rows 0 to {rows - 1}")
        return row

    def row_image(self, row: int) -> np.ndarray:
        """float32 [H, W, C] of a table row."""
        image = self.served().images.image(row)
        if image is None:
            raise NotFound(f"{self.row_label} {row} has no stored image")
        return image

    def row_query(self, row: int) -> tuple[np.ndarray, dict, QueryContext, np.ndarray]:
        """A (checked) table row as a query: its image [1, H, W, C], metadata (with 'row'), context (HARP,
        time and row, for the filters that exclude the query's own HARP) and stored embedding [1, D]."""
        table = self.served().index.table
        image = self.row_image(row)[None]
        harpnum = 0 if self.harp_column is None else table.column(self.harp_column)[row]
        context = QueryContext([harpnum], [table.column(self.time_column)[row]], [row])
        return image, {"row": row, **table.rows([row])[0]}, context, table.embeddings([row])

    def row_png(self, row: int, channel: int | None = None) -> bytes:
        """The PNG of a (checked) row, rendered once."""
        png = self.pngs.get((row, channel))
        if png is None:
            png = self.render(self.row_image(row), channel)
            self.pngs.put((row, channel), png)
        return png

    def image_url(self, row: int) -> str:
        return f"{self.prefix}/patch/{row}/image.png"

    def store(self, entry: dict) -> str:
        """Keeps a search's results for export; its id."""
        search_id = uuid.uuid4().hex
        self.results.put(search_id, entry)
        return search_id

    def stored(self, search_id: str) -> dict:
        entry = self.results.get(search_id)
        if entry is None:
            raise NotFound(
                f"no search {search_id!r}: unknown or expired (the server keeps the last {RESULT_STORE_SIZE})"
            )
        return entry


def sharp_dataset(engine: SearchEngine) -> Dataset:
    return Dataset(
        prefix="/api",
        search=engine,
        result_columns=RESULT_COLUMNS,
        result_quantities=physics.QUANTITY_NAMES,
        map_colour="tuf",
        time_column="t_rec",
        harp_column="harpnum",
        row_label="row",
        render=lambda image, channel: render_png(image),
    )


def aia_dataset(search: AiaSearch | None) -> Dataset:
    return Dataset(
        prefix="/api/aia",
        search=search,
        result_columns=AIA_RESULT_COLUMNS,
        result_quantities=(),
        map_colour="mu",
        time_column="t_obs",
        harp_column=None,
        row_label="AIA row",
        render=lambda image, channel: render_aia_png(image, search.wavelengths, channel),
        absent="this server has no AIA index (start it with --aia-index and --aia-ssl)",
    )


@dataclasses.dataclass(frozen=True)
class AppState:
    """The shared state of one app: limits, compute slots (a request computes holding one from start to
    end) and the datasets served."""

    limits: ServerLimits
    slots: threading.BoundedSemaphore
    sharp: Dataset
    aia: Dataset

    @property
    def engine(self) -> SearchEngine:
        return self.sharp.search

    @property
    def aia_engine(self) -> AiaSearch | None:
        return self.aia.search

    @property
    def datasets(self) -> list[str]:
        """The datasets served, by name."""
        return ["sharp"] + ([] if self.aia.search is None else ["aia"])


def load_state(
    workdir: str | os.PathLike, limits: ServerLimits = ServerLimits(), aia: AiaArtefacts | None = None
) -> AppState:
    """Loads the artefacts of `workdir` (and the AIA search ``aia``), then compiles every program a request
    can run (see `SearchEngine.warm`, `AiaSearch.warm`).

    Raises:
      ArtefactError: see `load_artefacts`, `load_search_ranking` and `checked_aia_artefacts`.
    """
    engine = SearchEngine(load_artefacts(workdir))
    engine.ranking = load_search_ranking(workdir)
    engine.warm()
    aia_search = None if aia is None else AiaSearch(checked_aia_artefacts(aia))
    if aia_search is not None:
        aia_search.warm()
    return AppState(limits, threading.BoundedSemaphore(limits.workers), sharp_dataset(engine), aia_dataset(aia_search))
