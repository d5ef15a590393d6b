"""What one app serves, in one object: the safety limits, the compute slots and each dataset's table (its
search engine, stored searches and rendered row PNGs). `load_state` loads and warms it.

The SHARP table is served from a `solarjax demo` work directory; a CME demo output (`solarjax demo --dataset
cme`) given as the work directory is recognised (`artefacts.is_cme_workdir`) and served as the CME table instead.
"""

import dataclasses
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from solarjax import physics
from solarjax.app.artefacts import (
    AiaArtefacts,
    ArtefactError,
    CmeArtefacts,
    checked_aia_artefacts,
    checked_cme_artefacts,
    is_cme_workdir,
    load_artefacts,
    load_cme_artefacts,
    load_search_ranking,
)
from solarjax.app.caches import LruCache
from solarjax.app.generation import SearchEngine
from solarjax.app.rendering import render_aia_png, render_cme_png, render_png
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

CME_RESULT_COLUMNS = ("id", "event", "t_obs", "detector", "kind", "source")
"""Columns of a CME result (the CME data contract's metadata); its measured quantities come beside them."""


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


def sharp_dataset(engine: SearchEngine | None) -> Dataset:
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
        absent="this server serves no SHARP work directory (start it with --workdir of a `solarjax demo` output)",
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


def cme_dataset(search) -> Dataset:
    """The CME table (``search``: a `solarjax.app.cme_engine.CmeSearch`, or None when not served)."""
    from solarjax import cme_physics

    return Dataset(
        prefix="/api/cme",
        search=search,
        result_columns=CME_RESULT_COLUMNS,
        result_quantities=cme_physics.QUANTITY_NAMES,
        map_colour="width_deg",
        time_column="t_obs",
        harp_column=None,
        row_label="CME row",
        render=lambda image, channel: render_cme_png(image),
        absent="this server serves no CME demo output (start it with --workdir of a `solarjax demo --dataset cme` output)",
    )


@dataclasses.dataclass(frozen=True)
class AppState:
    """The shared state of one app: limits, compute slots (a request computes holding one from start to
    end) and the datasets served."""

    limits: ServerLimits
    slots: threading.BoundedSemaphore
    sharp: Dataset
    aia: Dataset
    cme: Dataset

    @property
    def engine(self) -> SearchEngine | None:
        return self.sharp.search

    @property
    def aia_engine(self) -> AiaSearch | None:
        return self.aia.search

    @property
    def cme_engine(self):
        """The CME engine (`solarjax.app.cme_engine.CmeSearch`), or None without a CME demo output."""
        return self.cme.search

    @property
    def datasets(self) -> list[str]:
        """The datasets served, by name."""
        return [name for name in ("sharp", "aia", "cme") if getattr(self, name).search is not None]


def load_state(
    workdir: str | os.PathLike | None,
    limits: ServerLimits = ServerLimits(),
    aia: AiaArtefacts | None = None,
    cme: CmeArtefacts | None = None,
) -> AppState:
    """Loads the artefacts of `workdir` (a SHARP demo output, or a CME one: see `is_cme_workdir`; None: no SHARP
    table), the AIA search ``aia`` and the CME search ``cme``, then compiles every program a request can run
    (see `SearchEngine.warm`, `AiaSearch.warm`, `CmeSearch.warm`).

    Raises:
      ArtefactError: nothing to serve, or see `load_artefacts`, `load_search_ranking`, `checked_aia_artefacts`,
        `load_cme_artefacts` and `checked_cme_artefacts`.
    """
    from solarjax.app.cme_engine import CmeSearch

    if workdir is not None and is_cme_workdir(workdir):
        if cme is not None:
            raise ArtefactError(f"{workdir}: a CME demo output, and a CME search was given too: serve one of them")
        workdir, cme = None, load_cme_artefacts(workdir)
    if workdir is None and cme is None:
        raise ArtefactError("nothing to serve: give a `solarjax demo` work directory (SHARP or CME)")
    engine = None
    if workdir is not None:
        engine = SearchEngine(load_artefacts(workdir))
        engine.ranking = load_search_ranking(workdir)
        engine.warm()
    aia_search = None if aia is None else AiaSearch(checked_aia_artefacts(aia))
    if aia_search is not None:
        aia_search.warm()
    cme_search = None if cme is None else CmeSearch(checked_cme_artefacts(cme))
    if cme_search is not None:
        cme_search.warm()
    return AppState(
        limits,
        threading.BoundedSemaphore(limits.workers),
        sharp_dataset(engine),
        aia_dataset(aia_search),
        cme_dataset(cme_search),
    )
