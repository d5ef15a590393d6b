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

An AIA dataset can be served beside it (`AiaArtefacts`, `load_aia_artefacts`): an index of an
`aia_patches` table (``solarjax index build --dataset aia_patches --out OUT``: OUT/index, OUT/table),
the SimSiam run that embedded it, and the TFDS data directory of its rows. The page then offers a
dataset selector; the AIA endpoints live under /api/aia/.

API (OpenAPI at /docs). SHARP images are s = B / 1000 G; their PNGs use sunpy's hmimag colour map
on [-1000, 1000] G, north up.

    GET  /api/info                     steerable quantities, slider range, limits, colour map, datasets
    POST /api/generate                 slider values (+ held quantities) -> patch PNG + quantities
    POST /api/search/generated         the same body + filters -> query and its top-k real matches
    POST /api/search/upload            multipart FITS (SHARP Br) or NPY (2-D Br in G) + filters
    POST /api/search/row               a table row by HARP and T_REC + filters
    GET  /api/patch/{row}              a row's metadata and quantities
    GET  /api/patch/{row}/image.png    a row's patch
    GET  /api/export/{search_id}.csv   a search's results with their JSOC record names
    GET  /api/export/{search_id}.png   a search's contact sheet
    GET  /api/map                      2-D PCA projection of the table (sampled) for the map view

    GET  /api/aia/info                 channels, table size, time and mu ranges of the AIA table
    POST /api/aia/search/upload        multipart: one AIA level-1 FITS per channel, or one NPY patch
    POST /api/aia/search/row           an AIA table row (by row number or patch id) + filters
    GET  /api/aia/patch/{row}          a row's metadata (the AIA data contract's columns)
    GET  /api/aia/patch/{row}/image.png    RGB composite of 3 channels, or one channel (?channel=171)
                                       in sunpy's sdoaia colour map; north up
    GET  /api/aia/export/{search_id}.csv   an AIA search's results
    GET  /api/aia/map                  2-D PCA projection of the AIA table

AIA filters: k, observation-time range (t_obs), mu range (cosine of the heliocentric angle).

Units: a SHARP query's `quantities` are in patch units (`solarjax.physics`); its `physical` part gives
them with names and units (Mx, G, Mm, Mm^2, MSH, deg) when an uploaded FITS file's header fixes the plate
scale (`solarjax.app.units`), and otherwise says why they stay in patch units.

Latency: the page generates a slider state's patch as the sliders move (/api/generate); the search of that
state then reuses the generated patch, embedding and quantities (`GENERATED_CACHE_SIZE` states kept), so it
costs the index search and the response, not the steering (local steering follows gradient paths through
the generator: most of a cold request). Generate and generated-search responses carry a Server-Timing
header with each stage's wall time (steer, embed, quantities, search, payload; cache_hit when reused).

Safety: uploads are limited in size while they stream in (the AIA upload also in file count, at
most one file per channel, and each file's bytes are copied to disk in chunks, never held whole in
memory), checked by content (FITS signature / NPY magic) and written
under a fresh temporary name (no path from a request ever reaches the filesystem); a bad file is
a 4xx naming the uploaded file and the reason. At most `ServerLimits.max_pending` computing requests
(`GATED_PATHS`) are admitted at once; the rest get 503 with Retry-After, so overload degrades instead
of piling up. A request computes holding one of `ServerLimits.workers` slots from start to end (no
interleaving of requests' steps on the CPU). `serve` binds 127.0.0.1 unless told otherwise.
"""

import collections
import contextlib
import csv
import dataclasses
import functools
import io
import itertools
import json
import math
import os
import pathlib
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from solarjax import physics
from solarjax.app import units
from solarjax.plotting import hmimag_colormap

STEERABLE = ("tuf", "psep", "r_value", "tilt")
"""Quantities with a slider: flux, polarity separation, complexity (Schrijver R) and tilt."""

ALPHA_LIMIT = 3.0
"""Slider range: alpha in [-ALPHA_LIMIT, ALPHA_LIMIT] units of the (unit) direction, or of local path length."""

STEERING_METHODS = ("paper", "piecewise", "local")
"""Steering families (`solarjax.steering.families`); the sliders default to the best by the demo's evaluation."""

LOCAL_STEPS = 6
"""Steps of a slider's local path (one compiled program whatever the slider values)."""

MAX_K = 50
"""Most results one search returns."""

SEARCH_K = MAX_K
"""Every search asks the index for this many results and keeps the first k: one compiled program."""

MAP_POINTS = 2_000
"""Table rows (evenly spaced) drawn in the embedding map."""

RESULT_STORE_SIZE = 256
"""Searches kept for export; older ones answer 404."""

GENERATED_CACHE_SIZE = 256
"""Generated queries (patch, embedding, quantities) kept by slider state: the page generates a patch as the
sliders move, and the search of that patch reuses it instead of steering the generator again."""

UPLOAD_SUFFIXES = (".fits", ".fit", ".fts", ".npy")
FITS_SIGNATURE = b"SIMPLE  ="
NPY_MAGIC = b"\x93NUMPY"
NPY_SIDE_RANGE = (16, 4096)
STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static"
GATED_PATHS = ("/api/generate", "/api/search/", "/api/export/", "/api/aia/search/", "/api/aia/export/")
"""Endpoints that compute (generator, encoder, search, contact sheets): they pass the bounded queue."""
RESULT_COLUMNS = ("harpnum", "noaa_ar", "t_rec", "lat_deg", "lon_deg", "record")
SHEET_QUANTITIES = ("tuf", "psep", "r_value")
AIA_RESULT_COLUMNS = ("id", "t_obs", "wavelengths", "mu", "hpc_x", "hpc_y", "bbox", "source")
"""Columns of an AIA result (the AIA data contract's metadata, as `aia_patches` tables store it)."""
AIA_PATCH_SIZE = 128
AIA_DATASET = "aia_patches"


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
    steering_report: dict | None = None  # DIR/directions/evaluation/report.json (families compared), if any


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
    return Artefacts(
        generator,
        directions,
        encoder,
        index,
        paths["TFDS data"],
        _steering_report(workdir / "directions" / "evaluation" / "report.json"),
    )


def _steering_report(path: pathlib.Path) -> dict | None:
    """The steering evaluation's choice and figures: {'best_method', 'families': method -> name -> figures}."""
    import json

    try:
        report = json.loads(path.read_text())
        results = report["families"]["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {
        "best_method": report.get("best_method"),
        "families": {
            method: {
                name: {
                    "monotonicity": row["monotonicity"],
                    "max_leakage": row.get("max_leakage"),
                    "frechet_ratio": row.get("realism", {}).get("frechet_ratio"),
                }
                for name, row in rows.items()
            }
            for method, rows in results.items()
        },
    }


@dataclasses.dataclass(frozen=True)
class AiaArtefacts:
    """An AIA search: a SimSiam encoder of C channels, its index over an `aia_patches` table, and
    the TFDS data directory holding the table rows' patches."""

    encoder: Any  # solarjax.ssl.Encoder (or any object with `embed` and `fingerprint`)
    index: Any  # solarjax.retrieval.Index
    tfds_dir: pathlib.Path

    @property
    def wavelengths(self) -> tuple[int, ...]:
        """The table's channels, Angstrom, in the order of the images' last axis."""
        return table_wavelengths(self.index.table)


def table_wavelengths(table) -> tuple[int, ...]:
    """The one channel list of an `aia_patches` table ('171,193,211' in every row -> (171, 193, 211)).

    Raises:
      ArtefactError: the table is empty, or its rows hold different channel lists.
    """
    values = np.unique(table.column("wavelengths"))
    if len(values) != 1:
        found = [bytes(v).decode() for v in values[:4]]
        raise ArtefactError(f"{table.path}: rows hold {len(values)} channel lists {found}; one list expected")
    text = bytes(values[0]).decode()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as error:
        raise ArtefactError(f"{table.path}: wavelengths {text!r} are not comma-separated integers") from error


def checked_aia_artefacts(artefacts: AiaArtefacts) -> AiaArtefacts:
    """The artefacts, after checking that they belong together (raises `ArtefactError` naming the
    table when the index is not of `aia_patches`, holds no row, or another encoder made it)."""
    from solarjax.retrieval.table import check_fingerprint

    table = artefacts.index.table
    if table.dataset_name != AIA_DATASET:
        raise ArtefactError(
            f"{table.path}: a table of {table.dataset_name!r}, not of {AIA_DATASET!r}: "
            "build it with `solarjax index build --dataset aia_patches`"
        )
    if artefacts.index.num_rows == 0:
        raise ArtefactError(f"{table.path}: the AIA table holds no row")
    try:
        check_fingerprint(f"AIA index over {table.path}", artefacts.index.fingerprint, artefacts.encoder.fingerprint)
    except ValueError as error:
        raise ArtefactError(str(error)) from error
    table_wavelengths(table)
    return artefacts


def load_aia_artefacts(
    index_dir: str | os.PathLike, ssl_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> AiaArtefacts:
    """Loads an AIA search: ``index_dir`` written by ``solarjax index build --dataset aia_patches``
    (index_dir/index, index_dir/table), the SimSiam run ``ssl_dir`` that embedded it, and the TFDS
    data directory ``data_dir`` of the table's rows.

    Raises:
      ArtefactError: a path is missing, an artefact cannot be loaded, or they do not belong together.
    """
    from solarjax import ssl
    from solarjax.retrieval import load_index

    paths = {
        "AIA index": pathlib.Path(index_dir) / "index",
        "AIA SimSiam run": pathlib.Path(ssl_dir),
        "AIA TFDS data": pathlib.Path(data_dir).expanduser(),
    }
    for what, path in paths.items():
        if not path.exists():
            raise ArtefactError(f"{path}: no {what}")
    try:
        encoder = ssl.load(paths["AIA SimSiam run"])
    except Exception as error:  # any loader failure stops start-up with the artefact named
        raise ArtefactError(f"{paths['AIA SimSiam run']}: cannot load the AIA SimSiam run: {error}") from error
    try:
        index = load_index(paths["AIA index"], expected_fingerprint=encoder.fingerprint)
    except Exception as error:
        raise ArtefactError(f"{paths['AIA index']}: cannot load the AIA index: {error}") from error
    return checked_aia_artefacts(AiaArtefacts(encoder, index, paths["AIA TFDS data"]))


# ------------------------------------------------------------------------------------------ images
_hmimag = functools.cache(hmimag_colormap)


PNG_COMPRESS_LEVEL = 1
"""zlib level of served PNGs: 1 encodes a 128 x 128 patch ~4x faster than the default 6, ~20% larger."""


def _png(rgb: np.ndarray) -> bytes:
    """PNG bytes of uint8 [H, W, 3], row 0 (south) drawn at the bottom."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.flipud(rgb))).save(buffer, format="png", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def render_png(image: np.ndarray) -> bytes:
    """PNG bytes of one patch [H, W] or [H, W, 1] (s = B / 1000 G): hmimag on [-1000, 1000] G,
    row 0 (south) at the bottom."""
    field = np.asarray(image, np.float32).reshape(np.shape(image)[:2])
    return _png(_hmimag()((np.clip(field, -1.0, 1.0) + 1.0) / 2.0, bytes=True)[..., :3])


@functools.cache
def aia_colormap(wavelength: int):
    """sunpy's SDO/AIA colour map of a channel (``sdoaia171`` etc.)."""
    import sunpy.visualization.colormaps as sunpy_colormaps

    name = f"sdoaia{int(wavelength)}"
    if name not in sunpy_colormaps.cmlist:
        raise ValueError(f"no sunpy colour map {name!r} for channel {wavelength} A")
    return sunpy_colormaps.cmlist[name]


def render_aia_png(image: np.ndarray, wavelengths: Sequence[int], channel: int | None = None) -> bytes:
    """PNG bytes of one normalised AIA patch [H, W, C] (values in [0, 1], see `aia_prep.normalise`),
    row 0 (south) at the bottom.

    channel None with C = 3: the RGB composite, red = first channel, green = second, blue = third.
    Otherwise the given channel (default: the first) in its sdoaia colour map on [0, 1].

    Raises:
      ValueError: ``channel`` is not one of ``wavelengths``.
    """
    image = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    wavelengths = [int(w) for w in wavelengths]
    if channel is None and len(wavelengths) == 3:
        return _png(np.round(image * 255.0).astype(np.uint8))
    channel = wavelengths[0] if channel is None else int(channel)
    if channel not in wavelengths:
        raise ValueError(f"channel {channel} is not one of the patch's channels {wavelengths}")
    return _png(aia_colormap(channel)(image[..., wavelengths.index(channel)], bytes=True)[..., :3])


def colormap_stops(count: int = 11) -> list[str]:
    """`count` hex colours of hmimag evenly spaced from -1000 G to +1000 G (for the colour bar)."""
    rgba = _hmimag()(np.linspace(0.0, 1.0, count), bytes=True)
    return ["#{:02x}{:02x}{:02x}".format(*colour[:3]) for colour in rgba]


def contact_sheet_png(
    query_image: np.ndarray, query_values: Mapping[str, float], hits: Sequence[dict], images: Sequence[np.ndarray]
) -> bytes:
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


def load_search_ranking(workdir: str | os.PathLike):
    """The ranking of the SHARP search: ``DIR/index/ranking.json`` (weight and default mode chosen on
    the validation split by the demo), or SSL ranking when absent.

    Raises:
      ArtefactError: an unreadable ranking file, named.
    """
    from solarjax.retrieval import ranking as ranking_lib

    try:
        return ranking_lib.load_ranking(pathlib.Path(workdir) / "index")
    except ValueError as error:
        raise ArtefactError(str(error)) from error


class IndexSearch:
    """Embedding and search over one index with the encoder that built it (thread-safe; callers
    bound concurrency themselves, see `create_app`)."""

    ranking: Any = None  # solarjax.retrieval.ranking.Ranking of the SHARP search (set by create_app)

    def __init__(self, encoder, index, tfds_dir: pathlib.Path):
        self.encoder = encoder
        self.index = index
        self.images = RowImages(index.table, tfds_dir)
        self.map = EmbeddingMap(index)

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
            values = physics.quantities(images)
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
        from solarjax.retrieval.index import BLOCK_ROWS, ExactIndex, ScannIndex, _bucket, exact_top_k

        widths = []
        if isinstance(self.index, (ExactIndex, ScannIndex)):
            largest = _bucket(min(self.index.num_rows, BLOCK_ROWS), max(SEARCH_K, 256))
            widths = [1 << p for p in range(int(math.log2(max(SEARCH_K, 256))), int(math.log2(largest)) + 1)]
        for width, group in itertools.product(widths, (False, True) if grouped else (False,)):
            exact_top_k(
                embedding,
                [(np.arange(width), np.zeros((width, embedding.shape[1]), np.float32))],
                SEARCH_K,
                self.index.metric,
                groups=(lambda rows: rows) if group else None,
            )
        self.search(embedding, 1, Filters())
        if grouped:
            self.search(embedding, 1, Filters(one_per_harp=True))

    def warm_ranked(self, embedding: np.ndarray, image: np.ndarray, grouped: bool) -> None:
        """Compiles the hybrid's candidate search (k = its candidates) and the physics search (the
        ranking quantities' width) for every block width, grouped or not."""
        from solarjax.retrieval import Filters
        from solarjax.retrieval.index import BLOCK_ROWS, _bucket, exact_top_k

        candidates = max(SEARCH_K, self.ranking.candidates)
        largest = _bucket(min(self.index.num_rows, BLOCK_ROWS), max(candidates, 256))
        widths = [1 << p for p in range(int(math.log2(max(SEARCH_K, 256))), int(math.log2(largest)) + 1)]
        for width, group in itertools.product(widths, (False, True) if grouped else (False,)):
            groups = (lambda rows: rows) if group else None
            if width >= candidates:
                exact_top_k(
                    embedding,
                    [(np.arange(width), np.zeros((width, embedding.shape[1]), np.float32))],
                    candidates,
                    self.index.metric,
                    groups=groups,
                )
            physics_query = np.zeros((1, len(self.ranking.quantities)), np.float32)
            exact_top_k(
                physics_query,
                [(np.arange(width), np.zeros((width, physics_query.shape[1]), np.float32))],
                SEARCH_K,
                "l2",
                groups=groups,
            )
        for rank in ("hybrid", "physics"):
            self.search_ranked(embedding, image, 1, Filters(), rank=rank)
            if grouped:
                self.search_ranked(embedding, image, 1, Filters(one_per_harp=True), rank=rank)


@dataclasses.dataclass(frozen=True)
class GeneratedQuery:
    """A generated query: patch [1, 128, 128, 1], embedding [1, D] and exact quantities name -> [1] float64."""

    image: np.ndarray
    embedding: np.ndarray
    values: dict[str, np.ndarray]

    def quantities(self) -> dict[str, float | None]:
        """The quantities JSON-ready (NaN -> None)."""
        return {name: _finite_or_none(self.values[name][0]) for name in physics.QUANTITY_NAMES}


class LruCache:
    """A thread-safe least-recently-used map of at most `size` entries."""

    def __init__(self, size: int):
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class StageTimer:
    """Wall time of a request's stages, in ms, for its Server-Timing header (shown by browsers' network
    panels; the load benchmark reads it for the per-stage breakdown)."""

    def __init__(self):
        self.stages: dict[str, float] = {}

    def mark(self, name: str, milliseconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + milliseconds

    @contextlib.contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.mark(name, (time.perf_counter() - started) * 1e3)

    def header(self) -> str:
        """``name;dur=1.2, ...`` (RFC Server-Timing syntax)."""
        return ", ".join(f"{name};dur={value:.2f}" for name, value in self.stages.items())


class SearchEngine(IndexSearch):
    """Steering, generation, embedding and search of the SHARP artefacts."""

    def __init__(self, artefacts: Artefacts):
        super().__init__(artefacts.encoder, artefacts.index, artefacts.tfds_dir)
        self.artefacts = artefacts
        self.generated_cache = LruCache(GENERATED_CACHE_SIZE)
        self._directions = {
            hold: {name: np.asarray(artefacts.directions.direction(name, hold=hold), np.float32) for name in STEERABLE}
            for size in range(len(STEERABLE) + 1)
            for hold in itertools.combinations(STEERABLE, size)
        }
        self._harpnum = self.index.table.column("harpnum")
        self._t_rec = self.index.table.column("t_rec")
        self.steering_methods = tuple(
            m for m in STEERING_METHODS if m != "piecewise" or artefacts.directions.has_piecewise
        )
        best = (artefacts.steering_report or {}).get("best_method")
        # without an evaluation report: local, the family the steering evaluation ranks best on every GAN seed
        self.steering_method = best if best in self.steering_methods else "local"

    # -- steering --------------------------------------------------------------------------
    def steered_latent(
        self, seed: int, sliders: Mapping[str, float], hold: Sequence[str], method: str | None = None
    ) -> np.ndarray:
        """z [1, D]: the seed's latent moved by alpha for each free quantity, holding the held ones.

        'paper' and 'piecewise' add alpha times each quantity's conditional direction (the global one, or
        that of the base latent's half-space) and rescale to the base latent's norm; 'local' follows
        each slider's local path of length |alpha| in turn (on the shell). ``method`` None: the default.
        """
        from solarjax.steering import edit

        method = method or self.steering_method
        if method not in self.steering_methods:
            raise ValueError(
                f"steering method {method!r} is not available; these are: {', '.join(self.steering_methods)}"
            )
        held = tuple(name for name in STEERABLE if name in hold)
        z = self.artefacts.generator.sample_latents(1, seed)
        free = [(name, float(alpha)) for name, alpha in sliders.items() if name not in held and float(alpha) != 0.0]
        if method == "local":
            return self._local_latent(z, free, held)
        if method == "paper":
            directions = self._directions[held]
            step = sum(alpha * directions[name] for name, alpha in free)
        else:
            step = sum(alpha * self.artefacts.directions.piecewise_direction(name, z, held)[0] for name, alpha in free)
        step = np.zeros(z.shape[1], np.float32) + step
        return np.asarray(edit(z, step.astype(np.float32), np.ones(1, np.float32), keep_norm=True))[:, 0]

    def _local_latent(self, z: np.ndarray, free: Sequence[tuple[str, float]], held: Sequence[str]) -> np.ndarray:
        """z [1, D] moved along each free slider's local path in turn (`solarjax.steering.local.path_program`)."""
        import jax.numpy as jnp

        from solarjax.steering import local

        generator = self.artefacts.generator
        mask = jnp.asarray([float(name in held) for name in STEERABLE], jnp.float32)
        z = jnp.asarray(z, jnp.float32)
        for name, alpha in free:
            weights = jnp.asarray([float(n == name) for n in STEERABLE], jnp.float32)
            path, _ = local.path_program(
                generator.apply_fn,
                generator.params,
                z,
                jnp.float32(alpha / LOCAL_STEPS),
                weights,
                mask,
                names=STEERABLE,
                steps=LOCAL_STEPS,
            )
            z = path[:, -1]
        return np.asarray(z)

    def generate(
        self, seed: int, sliders: Mapping[str, float], hold: Sequence[str], method: str | None = None
    ) -> np.ndarray:
        """The steered patch [1, 128, 128, 1]."""
        return np.asarray(self.artefacts.generator.generate(self.steered_latent(seed, sliders, hold, method)))

    def steering_key(self, seed: int, sliders: Mapping[str, float], hold: Sequence[str], method: str | None = None):
        """What `steered_latent` depends on: seed, method, held names and the free non-zero sliders in
        request order (local paths are followed in that order)."""
        method = method or self.steering_method
        held = tuple(name for name in STEERABLE if name in hold)
        free = tuple(
            (name, float(alpha)) for name, alpha in sliders.items() if name not in held and float(alpha) != 0.0
        )
        return (int(seed), method, held, free)

    def generated(
        self,
        seed: int,
        sliders: Mapping[str, float],
        hold: Sequence[str],
        method: str | None = None,
        timer: "StageTimer | None" = None,
    ) -> "GeneratedQuery":
        """The steered patch with its embedding and quantities, from `generated_cache` when this slider
        state was generated before (``timer`` records the stages run: steer, embed, quantities)."""
        timer = timer or StageTimer()
        key = self.steering_key(seed, sliders, hold, method)
        cached = self.generated_cache.get(key)
        if cached is not None:
            timer.mark("cache_hit", 0.0)
            return cached
        with timer.stage("steer"):
            image = self.generate(seed, sliders, hold, method)
        with timer.stage("embed"):
            embedding = self.embed(image)
        with timer.stage("quantities"):
            values = {name: np.asarray(v, np.float64) for name, v in physics.quantities(image).items()}
        query = GeneratedQuery(image, embedding, values)
        self.generated_cache.put(key, query)
        return query

    def quantities(self, images: np.ndarray) -> list[dict[str, float | None]]:
        return _quantities_of(images)

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
        image = self.generate(0, {name: 0.5 for name in STEERABLE}, hold=STEERABLE[:1])
        if self.steering_method != "local" and "local" in self.steering_methods:
            self.generate(0, {STEERABLE[0]: 0.5}, hold=(), method="local")
        self.quantities(image)
        self.warm_search(self.embed(image), grouped=True)
        self.warm_ranked(self.embed(image), image, grouped=True)


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


def _json_safe(value: Any) -> Any:
    """A validation report made JSON-encodable: non-finite floats and unknown objects become text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


MULTIPART_OVERHEAD_BYTES = 64 * 2**10
"""Room for multipart boundaries, headers and form fields on top of the files of an upload."""


class BodyLimit:
    """ASGI middleware capping request bodies per path while they stream in.

    A declared Content-Length over the cap is answered 413 before any byte is read; a body without one
    (chunked) is counted as it arrives: at the cap the client gets 413, the app sees a disconnect, and
    nothing more is read or spooled.

    Args:
      app: the ASGI app.
      caps: path -> largest body in bytes; other paths are not capped here.
      hints: path -> what the route accepts, appended to its 413 message (e.g. the file count and sizes).
    """

    def __init__(self, app, caps: Mapping[str, int], hints: Mapping[str, str] | None = None):
        self.app, self.caps, self.hints = app, dict(caps), dict(hints or {})

    async def __call__(self, scope, receive, send):
        cap = self.caps.get(scope.get("path", "")) if scope["type"] == "http" else None
        hint = self.hints.get(scope.get("path", ""), "")
        if cap is None:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > cap:
            return await _send_413(send, cap, hint)
        state = {"received": 0, "refused": False}

        async def counted_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            state["received"] += len(message.get("body", b""))
            if state["received"] > cap:
                state["refused"] = True
                await _send_413(send, cap, hint)
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not state["refused"]:
                await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise


async def _send_413(send, cap: int, hint: str = "") -> None:
    detail = f"request too large: over the {cap} byte limit of this route" + (f" ({hint})" if hint else "")
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------------------------------ app
def create_app(workdir: str | os.PathLike, limits: ServerLimits = ServerLimits(), aia: AiaArtefacts | None = None):
    """The FastAPI app serving one work directory (artefacts loaded and warmed here), and an AIA
    search beside it when ``aia`` is given (see `load_aia_artefacts`).

    Raises:
      ArtefactError: see `load_artefacts` and `checked_aia_artefacts`.
    """
    import fastapi
    from fastapi import File, Form, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, Field
    from starlette.concurrency import run_in_threadpool

    from solarjax.retrieval import Filters
    from solarjax.retrieval.filters import QueryContext

    engine = SearchEngine(load_artefacts(workdir))
    engine.ranking = load_search_ranking(workdir)
    engine.warm()
    aia_engine = None if aia is None else AiaSearch(checked_aia_artefacts(aia))
    if aia_engine is not None:
        aia_engine.warm()
    slots = threading.BoundedSemaphore(limits.workers)
    store, aia_store = ResultStore(), ResultStore()

    class SliderState(BaseModel):
        """A generated query: base latent seed, alpha per steerable quantity, held quantities."""

        seed: int = Field(0, ge=0, le=2**31 - 1)
        sliders: dict[Literal[STEERABLE], float] = Field(default_factory=dict)
        hold: list[Literal[STEERABLE]] = Field(default_factory=list)
        method: Literal[STEERING_METHODS] | None = None  # steering family; None: the app's default

        def checked(self):
            for name, alpha in self.sliders.items():
                if not (math.isfinite(alpha) and abs(alpha) <= ALPHA_LIMIT):
                    raise fastapi.HTTPException(
                        422, f"slider {name} = {alpha} is outside [-{ALPHA_LIMIT}, {ALPHA_LIMIT}]"
                    )
            if self.method is not None and self.method not in engine.steering_methods:
                raise fastapi.HTTPException(
                    422,
                    f"steering method {self.method} is not available for these "
                    f"directions; use one of {', '.join(engine.steering_methods)}",
                )
            return self

    def time_range(start: str | None, end: str | None):
        return (start or None, end or None) if (start or end) else None

    class FilterSpec(BaseModel):
        """Search filters; times are ISO 8601 (UTC) or JSOC T_REC."""

        k: int = Field(10, ge=1, le=MAX_K)
        t_start: str | None = None
        t_end: str | None = None
        hemisphere: Literal["north", "south"] | None = None
        exclude_same_harp: bool = False
        one_per_harp: bool = False
        rank: Literal["ssl", "hybrid", "physics"] | None = None  # None: the default chosen on validation

        def to_filters(self, query_harpnum: int = 0) -> Filters:
            try:
                return Filters(
                    t_rec_range=time_range(self.t_start, self.t_end),
                    hemisphere=self.hemisphere,
                    one_per_harp=self.one_per_harp,
                    harp_exclude=(query_harpnum,) if self.exclude_same_harp and query_harpnum > 0 else (),
                )
            except ValueError as error:
                raise fastapi.HTTPException(422, f"bad filter: {error}") from error

    class AiaFilterSpec(BaseModel):
        """AIA search filters: observation time (ISO 8601 UTC) and mu of the patch centre."""

        k: int = Field(10, ge=1, le=MAX_K)
        t_start: str | None = None
        t_end: str | None = None
        mu_min: float | None = Field(None, ge=0.0, le=1.0)
        mu_max: float | None = Field(None, ge=0.0, le=1.0)

        def to_filters(self) -> Filters:
            mu = (self.mu_min, self.mu_max) if (self.mu_min is not None or self.mu_max is not None) else None
            try:
                return Filters(t_rec_range=time_range(self.t_start, self.t_end), mu_range=mu)
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
                return checked_row(engine, self.row)
            if self.harpnum is None or not self.t_rec:
                raise fastapi.HTTPException(422, "give a row, or a harpnum and a t_rec")
            try:
                return engine.row_of(self.harpnum, self.t_rec)
            except ValueError as error:
                raise fastapi.HTTPException(422, f"bad t_rec: {error}") from error

    class AiaRowSearch(BaseModel):
        """An AIA table row as query: its row number or its patch id."""

        row: int | None = None
        id: str | None = None
        filters: AiaFilterSpec = Field(default_factory=AiaFilterSpec)

        def resolved(self) -> int:
            if self.row is not None:
                return checked_row(need_aia(), self.row)
            if not self.id:
                raise fastapi.HTTPException(422, "give a row or an id")
            return need_aia().row_of_id(self.id)

    app = fastapi.FastAPI(
        title="solarjax reverse image search",
        description="Steer a GAN of SDO/HMI SHARP Br patches by physics and find the real patches that match; "
        "search SDO/AIA EUV patches by example.",
        version="1",
    )
    pending = {"count": 0}

    @app.middleware("http")
    async def bounded_queue(request, call_next):
        if not request.url.path.startswith(GATED_PATHS):
            return await call_next(request)
        if pending["count"] >= limits.max_pending:
            return JSONResponse(
                {"detail": "server busy: too many requests in progress, retry shortly"},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        pending["count"] += 1
        try:
            return await call_next(request)
        finally:
            pending["count"] -= 1

    def need_aia() -> AiaSearch:
        if aia_engine is None:
            raise NotFound("this server has no AIA index (start it with --aia-index and --aia-ssl)")
        return aia_engine

    def checked_row(search: IndexSearch, row: int) -> int:
        if not 0 <= row < search.index.num_rows:
            raise NotFound(f"no row {row}: the table has rows 0 to {search.index.num_rows - 1}")
        return row

    def data_url(png: bytes) -> str:
        import base64

        return "data:image/png;base64," + base64.b64encode(png).decode()

    def jsonable_metadata(metadata: Mapping[str, Any] | None) -> dict:
        return {key: _finite_or_none(value) for key, value in (metadata or {}).items()}

    # -- SHARP ---------------------------------------------------------------------------------
    def query_payload(
        image: np.ndarray, embedding: np.ndarray, metadata: dict | None = None, quantities: dict | None = None
    ) -> dict:
        metadata = dict(metadata or {})
        physical = metadata.pop("physical", None) or units.patch_units_payload(
            "a table row" if "row" in metadata else "a generated patch has no plate scale"
        )
        return {
            "image": data_url(render_png(image[0])),
            "quantities": engine.quantities(image)[0] if quantities is None else quantities,
            "physical": physical,
            "metadata": jsonable_metadata(metadata),
            "map_xy": engine.map.project(embedding)[0].tolist(),
        }

    def result_payloads(hits) -> list[dict]:
        points = engine.map_points([hit.row for hit in hits])
        return [
            {
                "rank": rank,
                "row": hit.row,
                "similarity": hit.similarity,
                "distance": hit.distance,
                "score": _finite_or_none(hit.score),
                **{name: _finite_or_none(hit.metadata.get(name)) for name in RESULT_COLUMNS},
                "quantities": {name: _finite_or_none(hit.metadata.get(name)) for name in physics.QUANTITY_NAMES},
                "image_url": f"/api/patch/{hit.row}/image.png",
                "map_xy": point.tolist(),
            }
            for rank, (hit, point) in enumerate(zip(hits, points), start=1)
        ]

    def run_search(
        image: np.ndarray,
        spec: FilterSpec,
        metadata: dict | None = None,
        context: QueryContext | None = None,
        embedding: np.ndarray | None = None,
        values: Mapping[str, np.ndarray] | None = None,
        timer: StageTimer | None = None,
    ) -> dict:
        timer = timer or StageTimer()
        if embedding is None:
            with timer.stage("embed"):
                embedding = engine.embed(image)
        harpnum = int((metadata or {}).get("harpnum") or 0)
        rank = spec.rank or engine.ranking.rank
        with timer.stage("search"):
            hits = engine.search_ranked(embedding, image, spec.k, spec.to_filters(harpnum), context, rank, values)
        with timer.stage("payload"):
            quantities = None if values is None else GeneratedQuery(image, embedding, values).quantities()
            query = query_payload(image, embedding, metadata, quantities)
            results = result_payloads(hits)
        search_id = store.put({"image": image[0], "quantities": query["quantities"], "results": results})
        return {
            "search_id": search_id,
            "query": query,
            "results": results,
            "rank": rank,
            "export": {"csv": f"/api/export/{search_id}.csv", "png": f"/api/export/{search_id}.png"},
        }

    @app.exception_handler(NotFound)
    async def not_found(request, error):
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(UploadError)
    async def bad_upload(request, error):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def bad_request_body(request, error):
        """422 naming each bad field; non-finite inputs (NaN, Infinity, 1e400) are echoed as text, since
        JSON cannot carry them (the default handler failed to encode them and answered 500)."""
        return JSONResponse({"detail": _json_safe(error.errors())}, status_code=422)

    def ranking_info(ranking) -> dict:
        validation = ranking.validation or {}
        trials = validation.get("trials", {})
        return {
            "modes": ["ssl", "hybrid", "physics"],
            "default": ranking.rank,
            "hybrid_weight": ranking.weight,
            "quantities": list(ranking.quantities),
            "chosen_by": validation.get("criterion", "no validation run: SSL ranking"),
            "validation_scores": {name: _finite_or_none(t.get("score")) for name, t in trials.items()},
        }

    @app.get("/api/info", summary="What the page needs: sliders, limits, colour map, table size, datasets")
    def info():
        artefacts = engine.artefacts
        return {
            "steerable": list(STEERABLE),
            "quantities": list(physics.QUANTITY_NAMES),
            "alpha_limit": ALPHA_LIMIT,
            "steering": {
                "methods": list(engine.steering_methods),
                "default": engine.steering_method,
                "evaluation": artefacts.steering_report,
            },
            "max_k": MAX_K,
            "max_upload_bytes": limits.max_upload_bytes,
            "upload_suffixes": list(UPLOAD_SUFFIXES),
            "colormap": colormap_stops(),
            "colormap_range_gauss": [-1000, 1000],
            "num_rows": engine.index.num_rows,
            "index_kind": engine.index.kind,
            "fingerprints": {"generator": artefacts.generator.fingerprint, "encoder": artefacts.encoder.fingerprint},
            "datasets": ["sharp"] + ([] if aia_engine is None else ["aia"]),
            "ranking": ranking_info(engine.ranking),
        }

    @app.post("/api/generate", summary="Generate a patch from slider values (held quantities kept)")
    def generate(state: SliderState, response: Response):
        state.checked()
        timer = StageTimer()
        with slots:
            query = engine.generated(state.seed, state.sliders, state.hold, state.method, timer)
            with timer.stage("payload"):
                payload = query_payload(query.image, query.embedding, quantities=query.quantities())
        response.headers["Server-Timing"] = timer.header()
        return payload

    @app.post("/api/search/generated", summary="Search with the patch the sliders generate")
    def search_generated(request: GeneratedSearch, response: Response):
        request.checked()
        timer = StageTimer()
        with slots:
            query = engine.generated(request.seed, request.sliders, request.hold, request.method, timer)
            payload = run_search(
                query.image, request.filters, embedding=query.embedding, values=query.values, timer=timer
            )
        response.headers["Server-Timing"] = timer.header()
        return payload

    @app.post("/api/search/upload", summary="Search with an uploaded SHARP Br FITS file or a 2-D NPY Br map (G)")
    def search_upload(file: UploadFile = File(...), filters: str = Form("{}")):
        spec = parsed_filters(FilterSpec, filters)
        name = _safe_name(file.filename)
        contents = _read_limited(file.file, limits.max_upload_bytes, name)
        with slots:
            image, metadata = _uploaded_image(name, contents)
            context = QueryContext.from_metadata([metadata]) if metadata.get("harpnum") else None
            return run_search(image, spec, metadata, context)

    def parsed_filters(model, text: str):
        try:
            return model.model_validate_json(text)
        except ValueError as error:
            raise fastapi.HTTPException(422, f"bad filters: {error}") from error

    @app.post("/api/search/row", summary="Search with a table row, given by HARP and T_REC")
    def search_row(request: RowSearch):
        row = request.resolved()
        table = engine.index.table
        with slots:
            image = engine.images.image(row)
            if image is None:
                raise NotFound(f"row {row} has no stored image")
            context = QueryContext([table.column("harpnum")[row]], [table.column("t_rec")[row]], [row])
            return run_search(
                image[None],
                request.filters,
                {"row": row, **table.rows([row])[0]},
                context,
                embedding=table.embeddings([row]),
            )

    @app.get("/api/patch/{row}", summary="A table row's metadata and quantities")
    def patch(row: int):
        metadata = engine.index.table.rows([checked_row(engine, row)])[0]
        return {"row": row, **jsonable_metadata(metadata), "image_url": f"/api/patch/{row}/image.png"}

    @app.get(
        "/api/patch/{row}/image.png",
        summary="A table row's patch (hmimag, +-1000 G)",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def patch_image(row: int):
        return Response(
            row_png(checked_row(engine, row)), media_type="image/png", headers={"Cache-Control": "max-age=3600"}
        )

    @functools.lru_cache(maxsize=4096)
    def row_png(row: int) -> bytes:
        image = engine.images.image(row)
        if image is None:
            raise NotFound(f"row {row} has no stored image")
        return render_png(image)

    def stored(results: ResultStore, search_id: str) -> dict:
        entry = results.get(search_id)
        if entry is None:
            raise NotFound(
                f"no search {search_id!r}: unknown or expired (the server keeps the last {RESULT_STORE_SIZE})"
            )
        return entry

    def csv_response(text: str, search_id: str) -> Response:
        return Response(
            text,
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="solarjax-{search_id[:8]}.csv"'},
        )

    @app.get(
        "/api/export/{search_id}.csv",
        summary="A search's results as CSV, with JSOC record names",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def export_csv(search_id: str):
        return csv_response(
            results_csv(stored(store, search_id)["results"], RESULT_COLUMNS, physics.QUANTITY_NAMES), search_id
        )

    @app.get(
        "/api/export/{search_id}.png",
        summary="A search's contact sheet",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def export_png(search_id: str):
        entry = stored(store, search_id)
        with slots:
            images = [engine.images.image(hit["row"]) for hit in entry["results"]]
            blank = np.zeros_like(entry["image"][..., 0])
            sheet = contact_sheet_png(
                entry["image"],
                entry["quantities"],
                entry["results"],
                [blank if image is None else image for image in images],
            )
        return Response(
            sheet,
            media_type="image/png",
            headers={"Content-Disposition": f'attachment; filename="solarjax-{search_id[:8]}.png"'},
        )

    @app.get("/api/map", summary="2-D PCA projection of the table (sampled rows) for the map view")
    def embedding_map():
        tuf = engine.index.table.column("tuf")[engine.map.rows]
        return {
            "rows": engine.map.rows.tolist(),
            "xy": engine.map.points.round(5).tolist(),
            "tuf": [_finite_or_none(v) for v in tuf],
        }

    # -- AIA -----------------------------------------------------------------------------------
    def aia_query_payload(image: np.ndarray, embedding: np.ndarray, metadata: dict) -> dict:
        search = need_aia()
        return {
            "image": data_url(render_aia_png(image[0], search.wavelengths)),
            "metadata": jsonable_metadata(metadata),
            "map_xy": search.map.project(embedding)[0].tolist(),
        }

    def run_aia_search(
        image: np.ndarray,
        spec: AiaFilterSpec,
        metadata: dict,
        context: QueryContext | None = None,
        embedding: np.ndarray | None = None,
    ) -> dict:
        search = need_aia()
        embedding = search.embed(image) if embedding is None else embedding
        hits = search.search(embedding, spec.k, spec.to_filters(), context)
        points = search.map_points([hit.row for hit in hits])
        results = [
            {
                "rank": rank,
                "row": hit.row,
                "similarity": hit.similarity,
                "distance": hit.distance,
                **{name: _finite_or_none(hit.metadata.get(name)) for name in AIA_RESULT_COLUMNS},
                "image_url": f"/api/aia/patch/{hit.row}/image.png",
                "map_xy": point.tolist(),
            }
            for rank, (hit, point) in enumerate(zip(hits, points), start=1)
        ]
        search_id = aia_store.put({"results": results})
        return {
            "search_id": search_id,
            "query": aia_query_payload(image, embedding, metadata),
            "results": results,
            "export": {"csv": f"/api/aia/export/{search_id}.csv"},
        }

    @app.get("/api/aia/info", summary="The AIA table: channels, size, time and mu ranges")
    def aia_info():
        search = need_aia()
        return {
            "wavelengths": list(search.wavelengths),
            "num_rows": search.index.num_rows,
            "index_kind": search.index.kind,
            "max_k": MAX_K,
            "max_upload_bytes": limits.max_aia_upload_bytes,
            "composite": "rgb" if len(search.wavelengths) == 3 else "first channel",
            "fingerprint": search.encoder.fingerprint,
            **search.time_and_mu_ranges(),
        }

    @app.post(
        "/api/aia/search/upload",
        summary="Search with AIA level-1 FITS files (one per channel of the index) or one NPY patch",
        openapi_extra=AIA_UPLOAD_OPENAPI,
    )
    async def aia_search_upload(request: fastapi.Request):
        search = need_aia()
        form = await _aia_upload_form(request, max_files=len(search.wavelengths))
        try:
            files = [value for key, value in form.multi_items() if key == "files" and not isinstance(value, str)]
            if not files:
                raise UploadError(
                    "files",
                    "no file uploaded: send one AIA level-1 FITS file per channel "
                    f"{list(search.wavelengths)} A, or one .npy patch, as 'files'",
                )
            filters = form.get("filters", "{}")
            spec = parsed_filters(AiaFilterSpec, filters if isinstance(filters, str) else "{}")

            def compute():
                with tempfile.TemporaryDirectory(prefix="solarjax-upload-") as folder:
                    uploads = _spooled_to_disk(files, pathlib.Path(folder), limits.max_aia_upload_bytes)
                    with slots:
                        image, metadata = _uploaded_aia(uploads, search.wavelengths)
                        return run_aia_search(image, spec, metadata)

            return await run_in_threadpool(compute)
        finally:
            await form.close()

    @app.post("/api/aia/search/row", summary="Search with an AIA table row, given by row number or patch id")
    def aia_search_row(request: AiaRowSearch):
        search = need_aia()
        row = request.resolved()
        table = search.index.table
        with slots:
            image = search.images.image(row)
            if image is None:
                raise NotFound(f"AIA row {row} has no stored image")
            context = QueryContext([0], [table.column("t_obs")[row]], [row])
            return run_aia_search(
                image[None],
                request.filters,
                {"row": row, **table.rows([row])[0]},
                context,
                embedding=table.embeddings([row]),
            )

    @app.get("/api/aia/patch/{row}", summary="An AIA table row's metadata")
    def aia_patch(row: int):
        search = need_aia()
        metadata = search.index.table.rows([checked_row(search, row)])[0]
        return {"row": row, **jsonable_metadata(metadata), "image_url": f"/api/aia/patch/{row}/image.png"}

    @app.get(
        "/api/aia/patch/{row}/image.png",
        summary="An AIA row's patch: RGB composite of 3 channels, or one channel in its sdoaia colour map",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    def aia_patch_image(row: int, channel: int | None = None):
        search = need_aia()
        if channel is not None and channel not in search.wavelengths:
            raise fastapi.HTTPException(422, f"channel {channel} is not one of the table's {list(search.wavelengths)}")
        return Response(
            aia_row_png(checked_row(search, row), channel),
            media_type="image/png",
            headers={"Cache-Control": "max-age=3600"},
        )

    @functools.lru_cache(maxsize=4096)
    def aia_row_png(row: int, channel: int | None) -> bytes:
        search = need_aia()
        image = search.images.image(row)
        if image is None:
            raise NotFound(f"AIA row {row} has no stored image")
        return render_aia_png(image, search.wavelengths, channel)

    @app.get(
        "/api/aia/export/{search_id}.csv",
        summary="An AIA search's results as CSV",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def aia_export_csv(search_id: str):
        return csv_response(results_csv(stored(aia_store, search_id)["results"], AIA_RESULT_COLUMNS), search_id)

    @app.get("/api/aia/map", summary="2-D PCA projection of the AIA table (sampled rows)")
    def aia_embedding_map():
        search = need_aia()
        mu = search.index.table.column("mu")[search.map.rows]
        return {
            "rows": search.map.rows.tolist(),
            "xy": search.map.points.round(5).tolist(),
            "mu": [_finite_or_none(v) for v in mu],
        }

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    channels = 1 if aia_engine is None else len(aia_engine.wavelengths)
    app.add_middleware(
        BodyLimit,
        caps={
            "/api/search/upload": limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
            "/api/aia/search/upload": channels * limits.max_aia_upload_bytes + MULTIPART_OVERHEAD_BYTES,
        },
        hints={
            "/api/search/upload": f"one file of at most {limits.max_upload_bytes} bytes",
            "/api/aia/search/upload": f"at most {channels} files, one per channel, of at most "
            f"{limits.max_aia_upload_bytes} bytes each",
        },
    )
    app.state.engine = engine
    app.state.aia_engine = aia_engine
    return app


def results_csv(results: Sequence[dict], columns: Sequence[str], quantities: Sequence[str] = ()) -> str:
    """CSV text: rank, similarity, distance, row, the metadata ``columns`` (SHARP: record = JSOC
    record name) and the ``quantities``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "similarity", "distance", "row", *columns, *quantities])
    for hit in results:
        writer.writerow(
            [
                hit["rank"],
                hit["similarity"],
                hit["distance"],
                hit["row"],
                *(hit[name] for name in columns),
                *(hit["quantities"][name] for name in quantities),
            ]
        )
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
        raise UploadError(
            name, f"unsupported file type {suffix or '(none)'}: upload one of {', '.join(UPLOAD_SUFFIXES)}", status=415
        )
    if suffix == ".npy":
        field = _npy_field(name, contents)
        metadata = {"file": name, "physical": units.patch_units_payload("an NPY map carries no plate scale")}
        return preprocess(field)[None, ..., None], metadata
    if not contents.startswith(FITS_SIGNATURE):
        raise UploadError(name, f"not a FITS file: it starts with {contents[:16]!r}, not 'SIMPLE  ='")
    with tempfile.TemporaryDirectory(prefix="solarjax-upload-") as folder:
        path = pathlib.Path(folder) / name
        path.write_bytes(contents)
        try:
            patch = read_sharp(path)
            scale = units.plate_scale(_image_header(path))
        except SharpReadError as error:
            raise UploadError(name, error.reason) from error
    if patch.segment != "Br":
        raise UploadError(name, f"a {patch.segment} segment: the index holds Br patches, upload a .Br.fits file")
    _checked_gauss(name, patch.data)
    meta = patch.meta
    metadata = {
        "file": name,
        "harpnum": meta.get("harpnum"),
        "noaa_ar": meta.get("noaa_ar"),
        "t_rec": meta["t_rec"].isoformat(),
        "lat_deg": meta.get("lat_deg"),
        "lon_deg": meta.get("lon_deg"),
        "shape": list(patch.data.shape),
        "physical": units.physical_payload(patch.data, scale),
    }
    return preprocess_patch(patch).image[None, ..., None], metadata


def _image_header(path: pathlib.Path) -> dict:
    """The plate-scale keywords (`units.SCALE_KEYWORDS`) of a FITS file's image HDU (the one `read_sharp`
    read); a keyword whose card cannot be parsed counts as absent (real SHARP headers hold broken cards)."""
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyError

    from solarjax.data.fits import image_hdu_index

    values = {}
    with fits.open(path) as hdus:
        header = hdus[image_hdu_index(path, hdus)].header
        for keyword in units.SCALE_KEYWORDS:
            try:
                values[keyword] = header[keyword]
            except (KeyError, VerifyError, ValueError):
                continue
    return values


def _npy_field(name: str, contents: bytes) -> np.ndarray:
    if not contents.startswith(NPY_MAGIC):
        raise UploadError(name, "not an NPY file: no \\x93NUMPY header")
    try:
        array = np.load(io.BytesIO(contents), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UploadError(name, f"unreadable NPY file: {error}") from error
    if array.ndim != 2 or not all(NPY_SIDE_RANGE[0] <= side <= NPY_SIDE_RANGE[1] for side in array.shape):
        raise UploadError(
            name, f"an NPY query must be a 2-D Br map with sides in {list(NPY_SIDE_RANGE)}, got shape {array.shape}"
        )
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise UploadError(name, f"an NPY query must hold numbers (Br in G), got dtype {array.dtype}")
    return _checked_gauss(name, array)


def _checked_gauss(name: str, field: np.ndarray) -> np.ndarray:
    """A Br map in gauss with data (`query_checks.check_gauss_map`), else a 422 naming the upload."""
    from solarjax.data.query_checks import check_gauss_map

    try:
        return check_gauss_map(field, name)
    except ValueError as error:
        raise UploadError(name, str(error).removeprefix(f"{name}: ")) from error


AIA_FITS_SUFFIXES = (".fits", ".fit", ".fts")


AIA_UPLOAD_CHUNK_BYTES = 2**20
"""Bytes copied at a time from an uploaded AIA file to disk."""

AIA_UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "one AIA level-1 FITS file per channel of the index, or one .npy patch",
                        },
                        "filters": {"type": "string", "description": "JSON filters (k, start, end, mu_min, mu_max)"},
                    },
                }
            }
        },
    }
}
"""The request body of /api/aia/search/upload for the OpenAPI page (the route parses its form itself)."""


async def _aia_upload_form(request, max_files: int):
    """The multipart form of an AIA upload, parsed as it streams in: more than `max_files` files is
    refused (413) as soon as the extra file's headers arrive, before its bytes are read; files are
    spooled (at most 1 MB each in memory, the rest on disk) and the body is capped by `BodyLimit`."""
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.formparsers import MultiPartException

    try:
        return await request.form(max_files=max_files, max_fields=8)
    except (StarletteHTTPException, MultiPartException) as error:
        detail = str(getattr(error, "detail", None) or getattr(error, "message", error))
        if "Too many files" in detail:
            raise UploadError(
                "files",
                f"too many files: at most {max_files} (one AIA level-1 FITS file per "
                "channel of the index, or one .npy patch)",
                status=413,
            ) from error
        raise UploadError("files", f"unreadable multipart form: {detail}", status=400) from error


def _spooled_to_disk(files, folder: pathlib.Path, max_file_bytes: int) -> list[tuple[str, pathlib.Path]]:
    """Copies uploaded files to ``folder/<number>-<safe name>`` in chunks; (safe name, path) each.

    Raises:
      UploadError: 413 for a file over `max_file_bytes` (checked before copying, and while copying),
        422 for an empty file.
    """
    uploads = []
    for number, file in enumerate(files):
        name = _safe_name(file.filename)
        if file.size is not None and file.size > max_file_bytes:
            raise UploadError(
                name, f"file too large: {file.size} bytes, over the {max_file_bytes} byte limit", status=413
            )
        path = folder / f"{number}-{name}"
        copied = 0
        file.file.seek(0)
        with open(path, "wb") as out:
            while chunk := file.file.read(AIA_UPLOAD_CHUNK_BYTES):
                copied += len(chunk)
                if copied > max_file_bytes:
                    raise UploadError(name, f"file too large: over the {max_file_bytes} byte limit", status=413)
                out.write(chunk)
        if copied == 0:
            raise UploadError(name, "empty file: 0 bytes")
        uploads.append((name, path))
    return uploads


def _uploaded_aia(uploads: Sequence[tuple[str, pathlib.Path]], wavelengths: Sequence[int]) -> tuple[np.ndarray, dict]:
    """Normalised AIA query [1, 128, 128, C] and its metadata from uploaded files (safe names, and
    their copies ``<number>-<name>`` in a private temporary folder).

    One NPY file: a normalised patch [128, 128, C] (or [1, 128, 128, C]) in the table's channel
    order. Otherwise one AIA level-1 FITS file per channel of the table (any order; the WAVELNTH
    keyword says which), prepared as `aia_patches` prepares its files (`aia_prep.prepare_observation`:
    DN/s, registration, channels stacked) without the degradation correction (its tables need the
    network), then the central 128 x 128 patch is cut and normalised per channel.
    """
    from solarjax.data import aia_prep

    wavelengths = [int(w) for w in wavelengths]
    names = [name for name, _ in uploads]
    if len(uploads) == 1 and names[0].lower().endswith(".npy"):
        return _aia_npy(names[0], uploads[0][1].read_bytes(), wavelengths)
    for name, path in uploads:
        suffix = pathlib.PurePosixPath(name).suffix.lower()
        if suffix not in AIA_FITS_SUFFIXES:
            raise UploadError(
                name,
                f"unsupported file type {suffix or '(none)'}: upload one AIA level-1 FITS file "
                f"per channel ({', '.join(AIA_FITS_SUFFIXES)}) or one .npy patch",
                status=415,
            )
        with open(path, "rb") as f:
            start = f.read(16)
        if not start.startswith(FITS_SIGNATURE):
            raise UploadError(name, f"not a FITS file: it starts with {start!r}, not 'SIMPLE  ='")
    folder = str(uploads[0][1].parent) if uploads else ""
    by_channel: dict[int, tuple[str, pathlib.Path]] = {}
    for name, path in uploads:
        try:
            wavelength, _ = aia_prep.read_aia_channel_and_time(path)
        except aia_prep.AIAReadError as error:
            raise UploadError(name, error.reason) from error
        if wavelength in by_channel:
            raise UploadError(name, f"a second {wavelength} A file (the first is {by_channel[wavelength][0]})")
        by_channel[wavelength] = (name, path)
    missing = [w for w in wavelengths if w not in by_channel]
    unused = [by_channel[w][0] for w in by_channel if w not in wavelengths]
    if missing or unused:
        raise UploadError(
            ", ".join(names),
            f"the index holds channels {wavelengths} A: upload one FITS file per "
            f"channel (missing {missing}; not used: {unused})",
        )
    try:
        observation = aia_prep.prepare_observation([by_channel[w][1] for w in wavelengths], degradation="skip")
    except aia_prep.AIAReadError as error:
        raise UploadError(error.path.name.partition("-")[2], error.reason) from error
    except ValueError as error:  # channel times too far apart
        raise UploadError(", ".join(names), str(error).replace(f"{folder}/", "")) from error
    rows, cols = observation.images.shape[:2]
    if rows < AIA_PATCH_SIZE or cols < AIA_PATCH_SIZE:
        raise UploadError(
            ", ".join(names),
            f"the registered image is {rows} x {cols} pixels, smaller than the "
            f"{AIA_PATCH_SIZE} x {AIA_PATCH_SIZE} patch",
        )
    row0, col0 = (rows - AIA_PATCH_SIZE) // 2, (cols - AIA_PATCH_SIZE) // 2
    box = np.array([[row0, row0 + AIA_PATCH_SIZE, col0, col0 + AIA_PATCH_SIZE]])
    patch = aia_prep.extract_patches(observation, box)[0]
    image = aia_prep.normalise_channels(patch.image, wavelengths).astype(np.float32)
    metadata = {
        "files": ";".join(by_channel[w][0] for w in wavelengths),
        "t_obs": patch.t_obs,
        "wavelengths": ",".join(map(str, wavelengths)),
        "bbox": ",".join(map(str, patch.bbox.tolist())),
        "hpc_x": patch.hpc_x,
        "hpc_y": patch.hpc_y,
        "mu": patch.mu,
        "registered_shape": [rows, cols],
        "degradation_corrected": False,
    }
    return image[None], metadata


def _aia_npy(name: str, contents: bytes, wavelengths: Sequence[int]) -> tuple[np.ndarray, dict]:
    """A normalised AIA patch from an NPY upload: [1, 128, 128, C] float32 in [0, 1]."""
    if not contents.startswith(NPY_MAGIC):
        raise UploadError(name, "not an NPY file: no \\x93NUMPY header")
    try:
        array = np.load(io.BytesIO(contents), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UploadError(name, f"unreadable NPY file: {error}") from error
    shape = (AIA_PATCH_SIZE, AIA_PATCH_SIZE, len(wavelengths))
    if array.shape not in (shape, (1, *shape)) or not np.issubdtype(array.dtype, np.floating):
        raise UploadError(
            name,
            f"an NPY AIA query must be a float patch of shape {list(shape)} (channels "
            f"{list(wavelengths)} A, normalised), got {array.dtype} {list(array.shape)}",
        )
    if not np.all(np.isfinite(array)) or array.min() < 0.0 or array.max() > 1.0:
        raise UploadError(name, "normalised AIA intensities must be finite and in [0, 1] (aia_prep.normalise)")
    return array.reshape(1, *shape).astype(np.float32), {"file": name, "wavelengths": ",".join(map(str, wavelengths))}


def serve(
    workdir: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits = ServerLimits(),
    aia: AiaArtefacts | None = None,
) -> None:
    """Loads and warms the artefacts of `workdir` (and the AIA search ``aia``, see
    `load_aia_artefacts`), then serves the app until interrupted."""
    import uvicorn

    app = create_app(workdir, limits, aia)
    print(f"solarjax app: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(app, host=host, port=port, limit_concurrency=limits.max_pending + 16, log_level="warning")
