"""The web application's server: artefacts loaded once, a JSON API (FastAPI) and the static page.

A work directory written by `solarjax demo` holds every artefact the app needs::

    DIR/gan                      GAN run (`solarjax.gan.load`)
    DIR/directions/directions    SVM normals of the generator (`solarjax.steering.load_directions`)
    DIR/simsiam                  SimSiam run (`solarjax.ssl.load`)
    DIR/index/index              search index over DIR/index/table (`solarjax.retrieval.load_index`)
    DIR/tfds                     the TFDS data the table rows point to (their images)

Start-up loads them once and refuses a mismatch (directions of another generator, an index built
with another encoder) with a message naming the artefact. Every jitted program a request can run
is then compiled on the shapes served (one query, padded to the device count; `SEARCH_K` results
per search block for every block width the index can use), so no request ever compiles.

API (OpenAPI at /docs). Images are s = B / 1000 G; PNGs use sunpy's hmimag colour map on
[-1000, 1000] G, north up.

    GET  /api/info                     steerable quantities, slider range, limits, colour map
    POST /api/generate                 slider values (+ held quantities) -> patch PNG + quantities
    POST /api/search/generated         the same body + filters -> query and its top-k real matches
    POST /api/search/upload            multipart FITS (SHARP Br) or NPY (2-D Br in G) + filters
    POST /api/search/row               a table row by HARP and T_REC + filters
    GET  /api/patch/{row}              a row's metadata and quantities
    GET  /api/patch/{row}/image.png    a row's patch
    GET  /api/export/{search_id}.csv   a search's results with their JSOC record names
    GET  /api/export/{search_id}.png   a search's contact sheet
    GET  /api/map                      2-D PCA projection of the table (sampled) for the map view

Safety: uploads are limited in size, checked by content (FITS signature / NPY magic) and written
under a fresh temporary name (no path from a request ever reaches the filesystem); a bad file is
a 4xx naming the uploaded file and the reason. At most `ServerLimits.max_pending` computing requests
(`GATED_PATHS`) are admitted at once; the rest get 503 with Retry-After, so overload degrades instead of piling
up. `serve` binds 127.0.0.1 unless told otherwise.
"""

import collections
import csv
import dataclasses
import functools
import io
import itertools
import math
import os
import pathlib
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from solarjax import physics
from solarjax.train.monitor import hmimag_colormap

STEERABLE = ("tuf", "psep", "r_value", "tilt")
"""Quantities with a slider: flux, polarity separation, complexity (Schrijver R) and tilt."""

ALPHA_LIMIT = 3.0
"""Slider range: alpha in [-ALPHA_LIMIT, ALPHA_LIMIT] units of the (unit) direction."""

MAX_K = 50
"""Most results one search returns."""

SEARCH_K = MAX_K
"""Every search asks the index for this many results and keeps the first k: one compiled program."""

MAP_POINTS = 2_000
"""Table rows (evenly spaced) drawn in the embedding map."""

RESULT_STORE_SIZE = 256
"""Searches kept for export; older ones answer 404."""

UPLOAD_SUFFIXES = (".fits", ".fit", ".fts", ".npy")
FITS_SIGNATURE = b"SIMPLE  ="
NPY_MAGIC = b"\x93NUMPY"
NPY_SIDE_RANGE = (16, 4096)
STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static"
GATED_PATHS = ("/api/generate", "/api/search/", "/api/export/")
"""Endpoints that compute (generator, encoder, search, contact sheets): they pass the bounded queue."""
RESULT_COLUMNS = ("harpnum", "noaa_ar", "t_rec", "lat_deg", "lon_deg", "record")
SHEET_QUANTITIES = ("tuf", "psep", "r_value")


@dataclasses.dataclass(frozen=True)
class ServerLimits:
    """Safety limits of one app.

    Attributes:
      max_upload_bytes: largest accepted upload (a SHARP Br FITS is 0.1 - 3 MB).
      max_pending: API requests admitted at once (running or waiting); more get 503.
      workers: requests computing at once (the others wait for a slot).
    """

    max_upload_bytes: int = 16 * 2**20
    max_pending: int = 32
    workers: int = 2


class NotFound(Exception):
    """A row, HARP/T_REC, image or stored search that does not exist (answered with 404)."""


class ArtefactError(RuntimeError):
    """A work directory lacks an artefact, or its artefacts do not belong together."""


@dataclasses.dataclass(frozen=True)
class Artefacts:
    """The trained pieces the app serves, checked to belong together."""

    generator: Any  # solarjax.gan.TrainedGenerator
    directions: Any  # solarjax.steering.Directions
    encoder: Any  # solarjax.ssl.Encoder
    index: Any  # solarjax.retrieval.Index
    tfds_dir: pathlib.Path


def load_artefacts(workdir: str | os.PathLike) -> Artefacts:
    """Loads the GAN, directions, encoder and index of a demo work directory.

    Raises:
      ArtefactError: an artefact is missing, unreadable, or made for another model; the message
        names the artefact's path and the problem.
    """
    from solarjax import gan, ssl
    from solarjax.retrieval import load_index
    from solarjax.steering import load_directions

    workdir = pathlib.Path(workdir)
    paths = {
        "GAN run": workdir / "gan",
        "directions": workdir / "directions" / "directions",
        "SimSiam run": workdir / "simsiam",
        "index": workdir / "index" / "index",
        "TFDS data": workdir / "tfds",
    }
    for what, path in paths.items():
        if not path.exists():
            raise ArtefactError(f"{path}: no {what} (build the work directory with `solarjax demo --outdir {workdir}`)")

    def loaded(what, load):
        try:
            return load()
        except Exception as error:  # any loader failure stops start-up with the artefact named
            raise ArtefactError(f"{paths[what]}: cannot load the {what}: {error}") from error

    generator = loaded("GAN run", lambda: gan.load(paths["GAN run"]))
    directions = loaded("directions", lambda: load_directions(paths["directions"], generator))
    encoder = loaded("SimSiam run", lambda: ssl.load(paths["SimSiam run"]))
    index = loaded("index", lambda: load_index(paths["index"], expected_fingerprint=encoder.fingerprint))
    missing = [name for name in STEERABLE if name not in directions.names]
    if missing:
        raise ArtefactError(f"{paths['directions']}: no direction for {missing}; it has {list(directions.names)}")
    return Artefacts(generator, directions, encoder, index, paths["TFDS data"])


# ------------------------------------------------------------------------------------------ images
_hmimag = functools.cache(hmimag_colormap)


def render_png(image: np.ndarray) -> bytes:
    """PNG bytes of one patch [H, W] or [H, W, 1] (s = B / 1000 G): hmimag on [-1000, 1000] G,
    row 0 (south) at the bottom."""
    from matplotlib import image as mpimg

    field = np.asarray(image, np.float32).reshape(np.shape(image)[:2])
    rgba = _hmimag()((np.clip(field, -1.0, 1.0) + 1.0) / 2.0, bytes=True)
    buffer = io.BytesIO()
    mpimg.imsave(buffer, np.flipud(rgba), format="png")
    return buffer.getvalue()


def colormap_stops(count: int = 11) -> list[str]:
    """`count` hex colours of hmimag evenly spaced from -1000 G to +1000 G (for the colour bar)."""
    rgba = _hmimag()(np.linspace(0.0, 1.0, count), bytes=True)
    return ["#{:02x}{:02x}{:02x}".format(*colour[:3]) for colour in rgba]


def contact_sheet_png(query_image: np.ndarray, query_values: Mapping[str, float], hits: Sequence[dict],
                      images: Sequence[np.ndarray]) -> bytes:
    """The query and its matches side by side, each titled with TUF, PSEP and R (and similarity)."""
    from matplotlib.figure import Figure

    columns = min(len(hits) + 1, 6)
    rows = math.ceil((len(hits) + 1) / columns)
    figure = Figure(figsize=(2.2 * columns, 2.5 * rows), dpi=100)
    panels = [("query", query_image, query_values)] + [
        (f"#{hit['rank']} sim {hit['similarity']:.3f} HARP {hit['harpnum']}", image, hit["quantities"])
        for hit, image in zip(hits, images)
    ]
    for position, (title, image, values) in enumerate(panels, start=1):
        axes = figure.add_subplot(rows, columns, position)
        axes.imshow(np.asarray(image).reshape(np.shape(image)[:2]), cmap=_hmimag(), vmin=-1, vmax=1, origin="lower")
        numbers = " ".join(f"{name} {_number(values.get(name))}" for name in SHEET_QUANTITIES)
        axes.set_title(f"{title}\n{numbers}", fontsize=6)
        axes.set_axis_off()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _number(value) -> str:
    return "nan" if value is None else f"{value:.3g}"


# ------------------------------------------------------------------------------------------ engine
def _finite_or_none(value: Any) -> Any:
    """JSON-safe scalar: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _quantities_of(images: np.ndarray) -> list[dict[str, float | None]]:
    """Quantities of patches [N, 128, 128, 1] as N JSON-ready dicts."""
    values = {name: np.asarray(v) for name, v in physics.quantities(images).items()}
    return [{name: _finite_or_none(values[name][i]) for name in physics.QUANTITY_NAMES} for i in range(len(images))]


class RowImages:
    """Patches of table rows, read back from the TFDS split each row names (thread-safe)."""

    def __init__(self, table, tfds_dir: pathlib.Path):
        self._dataset = table.column("dataset")
        self._example = table.column("example_index")
        self._tfds_dir = tfds_dir
        self._sources: dict[str, Any] = {}
        self._lock = threading.Lock()

    def image(self, row: int) -> np.ndarray | None:
        """[128, 128] float32 of a row, or None when the row has no stored image."""
        dataset = self._dataset[row]
        dataset = dataset.decode() if isinstance(dataset, bytes) else str(dataset)
        example = int(self._example[row])
        if not dataset or example < 0:
            return None
        import tensorflow_datasets as tfds

        import data_builders  # noqa: F401  (registers sharp_patches)

        name, _, split = dataset.partition(":")
        with self._lock:
            if dataset not in self._sources:
                self._sources[dataset] = tfds.data_source(name, data_dir=os.fspath(self._tfds_dir), split=split)
            image = self._sources[dataset][example]["image"]
        return np.asarray(image, np.float32)[..., 0]


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


class SearchEngine:
    """Steering, embedding and search for one set of artefacts; safe to call from many threads."""

    def __init__(self, artefacts: Artefacts, workers: int = 2):
        self.artefacts = artefacts
        self.index = artefacts.index
        self.images = RowImages(self.index.table, artefacts.tfds_dir)
        self.map = EmbeddingMap(self.index)
        self._slots = threading.BoundedSemaphore(workers)
        self._directions = {
            hold: {name: np.asarray(artefacts.directions.direction(name, hold=hold), np.float32) for name in STEERABLE}
            for size in range(len(STEERABLE) + 1) for hold in itertools.combinations(STEERABLE, size)
        }
        self._harpnum = self.index.table.column("harpnum")
        self._t_rec = self.index.table.column("t_rec")

    # -- steering --------------------------------------------------------------------------
    def steered_latent(self, seed: int, sliders: Mapping[str, float], hold: Sequence[str]) -> np.ndarray:
        """z [1, D]: the seed's latent moved by alpha along each free quantity's direction
        (conditional on the held ones), rescaled to the base latent's norm."""
        from solarjax.steering import edit

        held = tuple(name for name in STEERABLE if name in hold)
        directions = self._directions[held]
        step = sum(float(alpha) * directions[name] for name, alpha in sliders.items() if name not in held)
        z = self.artefacts.generator.sample_latents(1, seed)
        step = np.zeros(z.shape[1], np.float32) + step
        return np.asarray(edit(z, step, np.ones(1, np.float32), keep_norm=True))[:, 0]

    def generate(self, seed: int, sliders: Mapping[str, float], hold: Sequence[str]) -> np.ndarray:
        """The steered patch [1, 128, 128, 1]."""
        with self._slots:
            return np.asarray(self.artefacts.generator.generate(self.steered_latent(seed, sliders, hold)))

    def quantities(self, images: np.ndarray) -> list[dict[str, float | None]]:
        with self._slots:
            return _quantities_of(images)

    # -- search ----------------------------------------------------------------------------
    def embed(self, images: np.ndarray) -> np.ndarray:
        """Query patches [1, 128, 128, 1] -> embeddings [1, D] (the encoder's own device)."""
        with self._slots:
            return np.asarray(self.artefacts.encoder.embed(np.asarray(images, np.float32)), np.float32)

    def search(self, embeddings: np.ndarray, k: int, filters, context=None):
        """Top-k results (SearchResult list) of one query embedding [1, D]."""
        with self._slots:
            hits = self.index.search(embeddings, SEARCH_K, filters, context)[0]
        return hits[:k]

    def row_of(self, harpnum: int, t_rec: str) -> int:
        """The table row of a HARP at a T_REC (ISO or JSOC form)."""
        from solarjax.retrieval.filters import to_datetime64

        when = to_datetime64(t_rec)
        found = np.flatnonzero((self._harpnum == harpnum) & (self._t_rec == when))
        if not len(found):
            raise NotFound(f"no row of HARP {harpnum} at {t_rec} in the table")
        return int(found[0])

    # -- warm-up ---------------------------------------------------------------------------
    def warm(self) -> None:
        """Compiles every program a request runs, on the shapes served."""
        from solarjax.retrieval.index import BLOCK_ROWS, ExactIndex, ScannIndex, _bucket, exact_top_k

        image = self.generate(0, {name: 0.5 for name in STEERABLE}, hold=STEERABLE[:1])
        self.quantities(image)
        embedding = self.embed(image)
        widths = []
        if isinstance(self.index, (ExactIndex, ScannIndex)):
            largest = _bucket(min(self.index.num_rows, BLOCK_ROWS), max(SEARCH_K, 256))
            widths = [1 << p for p in range(int(math.log2(max(SEARCH_K, 256))), int(math.log2(largest)) + 1)]
        for width, grouped in itertools.product(widths, (False, True)):
            exact_top_k(embedding, [(np.arange(width), np.zeros((width, embedding.shape[1]), np.float32))],
                        SEARCH_K, self.index.metric, groups=(lambda rows: rows) if grouped else None)
        from solarjax.retrieval import Filters

        self.search(embedding, 1, Filters())
        self.search(embedding, 1, Filters(one_per_harp=True))


class ResultStore:
    """The last `RESULT_STORE_SIZE` searches, by id, for export (thread-safe)."""

    def __init__(self, size: int = RESULT_STORE_SIZE):
        self._entries: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def put(self, entry: dict) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._entries[key] = entry
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return key

    def get(self, key: str) -> dict | None:
        with self._lock:
            return self._entries.get(key)


# ------------------------------------------------------------------------------------------ app
def create_app(workdir: str | os.PathLike, limits: ServerLimits = ServerLimits()):
    """The FastAPI app serving one work directory (artefacts loaded and warmed here).

    Raises:
      ArtefactError: see `load_artefacts`.
    """
    import fastapi
    from fastapi import File, Form, UploadFile
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field

    from solarjax.retrieval import Filters
    from solarjax.retrieval.filters import QueryContext

    engine = SearchEngine(load_artefacts(workdir), workers=limits.workers)
    engine.warm()
    store = ResultStore()

    class SliderState(BaseModel):
        """A generated query: base latent seed, alpha per steerable quantity, held quantities."""

        seed: int = Field(0, ge=0, le=2**31 - 1)
        sliders: dict[Literal[STEERABLE], float] = Field(default_factory=dict)
        hold: list[Literal[STEERABLE]] = Field(default_factory=list)

        def checked(self):
            for name, alpha in self.sliders.items():
                if not (math.isfinite(alpha) and abs(alpha) <= ALPHA_LIMIT):
                    raise fastapi.HTTPException(422, f"slider {name} = {alpha} is outside [-{ALPHA_LIMIT}, {ALPHA_LIMIT}]")
            return self

    class FilterSpec(BaseModel):
        """Search filters; times are ISO 8601 (UTC) or JSOC T_REC."""

        k: int = Field(10, ge=1, le=MAX_K)
        t_start: str | None = None
        t_end: str | None = None
        hemisphere: Literal["north", "south"] | None = None
        exclude_same_harp: bool = False
        one_per_harp: bool = False

        def to_filters(self, query_harpnum: int = 0) -> Filters:
            try:
                return Filters(
                    t_rec_range=(self.t_start or None, self.t_end or None) if (self.t_start or self.t_end) else None,
                    hemisphere=self.hemisphere,
                    one_per_harp=self.one_per_harp,
                    harp_exclude=(query_harpnum,) if self.exclude_same_harp and query_harpnum > 0 else (),
                )
            except ValueError as error:
                raise fastapi.HTTPException(422, f"bad filter: {error}") from error

    class GeneratedSearch(SliderState):
        filters: FilterSpec = Field(default_factory=FilterSpec)

    class RowSearch(BaseModel):
        """A table row as query: its row number, or its HARP and T_REC (ISO or JSOC form)."""

        row: int | None = None
        harpnum: int | None = None
        t_rec: str | None = None
        filters: FilterSpec = Field(default_factory=FilterSpec)

        def resolved(self) -> int:
            if self.row is not None:
                return checked_row(self.row)
            if self.harpnum is None or not self.t_rec:
                raise fastapi.HTTPException(422, "give a row, or a harpnum and a t_rec")
            try:
                return engine.row_of(self.harpnum, self.t_rec)
            except ValueError as error:
                raise fastapi.HTTPException(422, f"bad t_rec: {error}") from error

    app = fastapi.FastAPI(
        title="solarjax reverse image search",
        description="Steer a GAN of SDO/HMI SHARP Br patches by physics and find the real patches that match.",
        version="1",
    )
    pending = {"count": 0}

    @app.middleware("http")
    async def bounded_queue(request, call_next):
        if not request.url.path.startswith(GATED_PATHS):
            return await call_next(request)
        if pending["count"] >= limits.max_pending:
            return JSONResponse({"detail": "server busy: too many requests in progress, retry shortly"},
                                status_code=503, headers={"Retry-After": "1"})
        pending["count"] += 1
        try:
            return await call_next(request)
        finally:
            pending["count"] -= 1

    def query_payload(image: np.ndarray, embedding: np.ndarray, metadata: dict | None = None) -> dict:
        import base64

        return {
            "image": "data:image/png;base64," + base64.b64encode(render_png(image[0])).decode(),
            "quantities": engine.quantities(image)[0],
            "metadata": {key: _finite_or_none(value) for key, value in (metadata or {}).items()},
            "map_xy": engine.map.project(embedding)[0].tolist(),
        }

    def result_payload(rank: int, hit) -> dict:
        meta = hit.metadata
        return {
            "rank": rank, "row": hit.row, "similarity": hit.similarity, "distance": hit.distance,
            **{name: _finite_or_none(meta.get(name)) for name in RESULT_COLUMNS},
            "quantities": {name: _finite_or_none(meta.get(name)) for name in physics.QUANTITY_NAMES},
            "image_url": f"/api/patch/{hit.row}/image.png",
            "map_xy": engine.map.project(engine.index.table.embeddings([hit.row]))[0].tolist(),
        }

    def run_search(image: np.ndarray, spec: FilterSpec, metadata: dict | None = None,
                   context: QueryContext | None = None, embedding: np.ndarray | None = None) -> dict:
        embedding = engine.embed(image) if embedding is None else embedding
        harpnum = int((metadata or {}).get("harpnum") or 0)
        hits = engine.search(embedding, spec.k, spec.to_filters(harpnum), context)
        query = query_payload(image, embedding, metadata)
        results = [result_payload(rank, hit) for rank, hit in enumerate(hits, start=1)]
        search_id = store.put({"image": image[0], "quantities": query["quantities"], "results": results})
        return {"search_id": search_id, "query": query, "results": results,
                "export": {"csv": f"/api/export/{search_id}.csv", "png": f"/api/export/{search_id}.png"}}

    @app.exception_handler(NotFound)
    async def not_found(request, error):
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(UploadError)
    async def bad_upload(request, error):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.get("/api/info", summary="What the page needs: sliders, limits, colour map, table size")
    def info():
        artefacts = engine.artefacts
        return {
            "steerable": list(STEERABLE),
            "quantities": list(physics.QUANTITY_NAMES),
            "alpha_limit": ALPHA_LIMIT,
            "max_k": MAX_K,
            "max_upload_bytes": limits.max_upload_bytes,
            "upload_suffixes": list(UPLOAD_SUFFIXES),
            "colormap": colormap_stops(),
            "colormap_range_gauss": [-1000, 1000],
            "num_rows": engine.index.num_rows,
            "index_kind": engine.index.kind,
            "fingerprints": {"generator": artefacts.generator.fingerprint, "encoder": artefacts.encoder.fingerprint},
        }

    @app.post("/api/generate", summary="Generate a patch from slider values (held quantities kept)")
    def generate(state: SliderState):
        state.checked()
        image = engine.generate(state.seed, state.sliders, state.hold)
        return query_payload(image, engine.embed(image))

    @app.post("/api/search/generated", summary="Search with the patch the sliders generate")
    def search_generated(request: GeneratedSearch):
        request.checked()
        image = engine.generate(request.seed, request.sliders, request.hold)
        return run_search(image, request.filters)

    @app.post("/api/search/upload", summary="Search with an uploaded SHARP Br FITS file or a 2-D NPY Br map (G)")
    def search_upload(file: UploadFile = File(...), filters: str = Form("{}")):
        try:
            spec = FilterSpec.model_validate_json(filters)
        except ValueError as error:
            raise fastapi.HTTPException(422, f"bad filters: {error}") from error
        name = _safe_name(file.filename)
        contents = _read_limited(file.file, limits.max_upload_bytes, name)
        image, metadata = _uploaded_image(name, contents)
        context = QueryContext.from_metadata([metadata]) if metadata.get("harpnum") else None
        return run_search(image, spec, metadata, context)

    @app.post("/api/search/row", summary="Search with a table row, given by HARP and T_REC")
    def search_row(request: RowSearch):
        row = request.resolved()
        metadata = engine.index.table.rows([row])[0]
        image = engine.images.image(row)
        if image is None:
            raise NotFound(f"row {row} has no stored image")
        table = engine.index.table
        context = QueryContext([table.column("harpnum")[row]], [table.column("t_rec")[row]], [row])
        return run_search(image[None, ..., None], request.filters, {"row": row, **metadata}, context,
                          embedding=engine.index.table.embeddings([row]))

    def checked_row(row: int) -> int:
        if not 0 <= row < engine.index.num_rows:
            raise NotFound(f"no row {row}: the table has rows 0 to {engine.index.num_rows - 1}")
        return row

    @app.get("/api/patch/{row}", summary="A table row's metadata and quantities")
    def patch(row: int):
        metadata = engine.index.table.rows([checked_row(row)])[0]
        return {"row": row, **{key: _finite_or_none(value) for key, value in metadata.items()},
                "image_url": f"/api/patch/{row}/image.png"}

    @app.get("/api/patch/{row}/image.png", summary="A table row's patch (hmimag, +-1000 G)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def patch_image(row: int):
        return Response(row_png(checked_row(row)), media_type="image/png",
                        headers={"Cache-Control": "max-age=3600"})

    @functools.lru_cache(maxsize=4096)
    def row_png(row: int) -> bytes:
        image = engine.images.image(row)
        if image is None:
            raise NotFound(f"row {row} has no stored image")
        return render_png(image)

    def stored(search_id: str) -> dict:
        entry = store.get(search_id)
        if entry is None:
            raise NotFound(f"no search {search_id!r}: unknown or expired (the server keeps the last {RESULT_STORE_SIZE})")
        return entry

    @app.get("/api/export/{search_id}.csv", summary="A search's results as CSV, with JSOC record names",
             response_class=Response, responses={200: {"content": {"text/csv": {}}}})
    def export_csv(search_id: str):
        return Response(results_csv(stored(search_id)["results"]), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="solarjax-{search_id[:8]}.csv"'})

    @app.get("/api/export/{search_id}.png", summary="A search's contact sheet",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def export_png(search_id: str):
        entry = stored(search_id)
        images = [engine.images.image(hit["row"]) for hit in entry["results"]]
        blank = np.zeros_like(entry["image"][..., 0])
        sheet = contact_sheet_png(entry["image"], entry["quantities"], entry["results"],
                                  [blank if image is None else image for image in images])
        return Response(sheet, media_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="solarjax-{search_id[:8]}.png"'})

    @app.get("/api/map", summary="2-D PCA projection of the table (sampled rows) for the map view")
    def embedding_map():
        tuf = engine.index.table.column("tuf")[engine.map.rows]
        return {"rows": engine.map.rows.tolist(), "xy": engine.map.points.round(5).tolist(),
                "tuf": [_finite_or_none(v) for v in tuf]}

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.state.engine = engine
    return app


def results_csv(results: Sequence[dict]) -> str:
    """CSV text: rank, similarity, distance, row, metadata (record = JSOC record name), quantities."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "similarity", "distance", "row", *RESULT_COLUMNS, *physics.QUANTITY_NAMES])
    for hit in results:
        writer.writerow([hit["rank"], hit["similarity"], hit["distance"], hit["row"],
                         *(hit[name] for name in RESULT_COLUMNS),
                         *(hit["quantities"][name] for name in physics.QUANTITY_NAMES)])
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ uploads
class UploadError(ValueError):
    """An uploaded file that cannot be used; `status` is the HTTP status to answer with."""

    def __init__(self, name: str, reason: str, status: int = 422):
        super().__init__(f"{name}: {reason}")
        self.status = status


def _safe_name(filename: str | None) -> str:
    """The upload's base name with anything but [A-Za-z0-9._-] replaced (never a path)."""
    base = pathlib.PurePosixPath((filename or "upload").replace("\\", "/")).name or "upload"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:200]


def _read_limited(stream, limit: int, name: str) -> bytes:
    contents = stream.read(limit + 1)
    if len(contents) > limit:
        raise UploadError(name, f"file too large: over the {limit} byte limit", status=413)
    if not contents:
        raise UploadError(name, "empty file: 0 bytes")
    return contents


def _uploaded_image(name: str, contents: bytes) -> tuple[np.ndarray, dict]:
    """Preprocessed query [1, 128, 128, 1] and its metadata from an uploaded file's bytes.

    FITS: a SHARP Br segment (read and preprocessed exactly as in training). NPY: a 2-D Br map in
    G (NaN allowed), preprocessed the same way.
    """
    from solarjax.data import SharpReadError, preprocess, preprocess_patch, read_sharp

    suffix = pathlib.PurePosixPath(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise UploadError(name, f"unsupported file type {suffix or '(none)'}: upload one of {', '.join(UPLOAD_SUFFIXES)}",
                          status=415)
    if suffix == ".npy":
        return preprocess(_npy_field(name, contents))[None, ..., None], {"file": name}
    if not contents.startswith(FITS_SIGNATURE):
        raise UploadError(name, f"not a FITS file: it starts with {contents[:16]!r}, not 'SIMPLE  ='")
    with tempfile.TemporaryDirectory(prefix="solarjax-upload-") as folder:
        path = pathlib.Path(folder) / name
        path.write_bytes(contents)
        try:
            patch = read_sharp(path)
        except SharpReadError as error:
            raise UploadError(name, error.reason) from error
    if patch.segment != "Br":
        raise UploadError(name, f"a {patch.segment} segment: the index holds Br patches, upload a .Br.fits file")
    meta = patch.meta
    metadata = {"file": name, "harpnum": meta.get("harpnum"), "noaa_ar": meta.get("noaa_ar"),
                "t_rec": meta["t_rec"].isoformat(), "lat_deg": meta.get("lat_deg"), "lon_deg": meta.get("lon_deg"),
                "shape": list(patch.data.shape)}
    return preprocess_patch(patch).image[None, ..., None], metadata


def _npy_field(name: str, contents: bytes) -> np.ndarray:
    if not contents.startswith(NPY_MAGIC):
        raise UploadError(name, "not an NPY file: no \\x93NUMPY header")
    try:
        array = np.load(io.BytesIO(contents), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UploadError(name, f"unreadable NPY file: {error}") from error
    if array.ndim != 2 or not all(NPY_SIDE_RANGE[0] <= side <= NPY_SIDE_RANGE[1] for side in array.shape):
        raise UploadError(name, f"an NPY query must be a 2-D Br map with sides in {list(NPY_SIDE_RANGE)}, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise UploadError(name, f"an NPY query must hold numbers (Br in G), got dtype {array.dtype}")
    if np.isinf(array).any() or np.isnan(array).all():
        raise UploadError(name, "the map holds infinite values or no finite pixel")
    return array.astype(np.float32)


def serve(workdir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          limits: ServerLimits = ServerLimits()) -> None:
    """Loads and warms the artefacts of `workdir`, then serves the app until interrupted."""
    import uvicorn

    app = create_app(workdir, limits)
    print(f"solarjax app: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(app, host=host, port=port, limit_concurrency=limits.max_pending + 16, log_level="warning")
