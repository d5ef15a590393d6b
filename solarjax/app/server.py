"""The web application's factory: artefacts loaded once, a JSON API (FastAPI) and the static page.

`create_app` builds the shared state (`solarjax.app.state`: the SHARP and AIA tables served, their engines,
stored searches and caches), then adds each dataset's routes (`solarjax.app.routes`). A work directory written
by `solarjax demo` holds every artefact the app needs (`solarjax.app.artefacts`). Start-up loads them once and
refuses a mismatch (directions of another generator, an index built with another encoder) with a message naming
the artefact. Every jitted program a request can run is then compiled on the shapes served (one query, padded to
the device count; `SEARCH_K` results per search block for every block width the index can use), so no request
ever compiles.

An AIA dataset can be served beside it (`AiaArtefacts`, `load_aia_artefacts`); the page then offers a
dataset selector; the AIA endpoints live under /api/aia/.

CME mode: a work directory written by `solarjax demo --dataset cme` is recognised (`is_cme_workdir`) and
served as a CME search (`CmeArtefacts`, `load_cme_artefacts`): its endpoints live under /api/cme/ and its
page (static/cme.html) is served at / (and at /cme beside a SHARP table). CME images are running-difference
coronagraph images [128, 128, 1] in [-1, 1], north in row 0; their PNGs are grey on [-0.6, 0.6], north up.

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

    GET  /api/cme/info                 sliders (width, CPA, excess; local family), quantities, ranking, table
    POST /api/cme/generate             slider values (+ held quantities) -> CME PNG + measured quantities
    POST /api/cme/search/generated     the same body + filters -> query and its top-k real CMEs
    POST /api/cme/search/upload        multipart: one NPY difference image [128, 128] in [-1, 1] + filters
    POST /api/cme/search/row           a CME table row (by row number or patch id) + filters
    GET  /api/cme/patch/{row}          a row's metadata (id, event, t_obs, detector, CPA, width, height, excess)
    GET  /api/cme/patch/{row}/image.png    a row's difference image
    GET  /api/cme/export/{search_id}.csv   a CME search's results
    GET  /api/cme/map                  2-D PCA projection of the CME table

CME filters: k, observation-time range (t_obs), rank ('ssl'; 'hybrid' and 'physics' by width, excess and front
height when the demo wrote index/built/ranking.json). Measured quantities: `solarjax.cme_physics.quantities`.

Units: a SHARP query's `quantities` are in patch units (`solarjax.physics`); its `physical` part gives
them with names and units (Mx, G, Mm, Mm^2, MSH, deg) when an uploaded FITS file's header fixes the plate
scale (`solarjax.app.units`), and otherwise says why they stay in patch units.

Latency: the page generates a slider state's patch as the sliders move (/api/generate); the search of that
state then reuses the generated patch, embedding and quantities (`GENERATED_CACHE_SIZE` states kept, in the
app's one bounded map `LruCache`, which also keeps `RESULT_STORE_SIZE` searches for export), so it
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

import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from solarjax.app.artefacts import (
    STEERABLE,
    AiaArtefacts,
    ArtefactError,
    Artefacts,
    CmeArtefacts,
    checked_aia_artefacts,
    is_cme_workdir,
    load_aia_artefacts,
    load_artefacts,
    load_cme_artefacts,
    load_search_ranking,
)
from solarjax.app.caches import LruCache
from solarjax.app.generation import ALPHA_LIMIT, GENERATED_CACHE_SIZE, STEERING_METHODS, SearchEngine
from solarjax.app.middleware import MULTIPART_OVERHEAD_BYTES, BodyLimit, add_bounded_queue
from solarjax.app.rendering import aia_colormap, render_aia_png, render_cme_png, render_png
from solarjax.app.search import MAP_POINTS, MAX_K, SEARCH_K, AiaSearch, IndexSearch, NotFound, RowImages
from solarjax.app.state import (
    AIA_RESULT_COLUMNS,
    CME_RESULT_COLUMNS,
    RESULT_COLUMNS,
    RESULT_STORE_SIZE,
    ServerLimits,
    load_state,
)
from solarjax.app.timing import StageTimer
from solarjax.app.uploads import FITS_SIGNATURE, UploadError

__all__ = [
    "AIA_RESULT_COLUMNS",
    "ALPHA_LIMIT",
    "CME_RESULT_COLUMNS",
    "GENERATED_CACHE_SIZE",
    "FITS_SIGNATURE",
    "MAP_POINTS",
    "MAX_K",
    "RESULT_COLUMNS",
    "RESULT_STORE_SIZE",
    "SEARCH_K",
    "STEERABLE",
    "STEERING_METHODS",
    "AiaArtefacts",
    "AiaSearch",
    "ArtefactError",
    "Artefacts",
    "BodyLimit",
    "CmeArtefacts",
    "IndexSearch",
    "LruCache",
    "NotFound",
    "RowImages",
    "SearchEngine",
    "ServerLimits",
    "StageTimer",
    "UploadError",
    "aia_colormap",
    "checked_aia_artefacts",
    "create_app",
    "is_cme_workdir",
    "load_aia_artefacts",
    "load_artefacts",
    "load_cme_artefacts",
    "load_search_ranking",
    "render_aia_png",
    "render_cme_png",
    "render_png",
    "serve",
]

STATIC_DIR = pathlib.Path(__file__).resolve().parent / "static"
GATED_PATHS = (
    "/api/generate",
    "/api/search/",
    "/api/export/",
    "/api/aia/search/",
    "/api/aia/export/",
    "/api/cme/generate",
    "/api/cme/search/",
    "/api/cme/export/",
)
"""Endpoints that compute (generator, encoder, search, contact sheets): they pass the bounded queue."""


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


def create_app(
    workdir: str | os.PathLike | None,
    limits: ServerLimits = ServerLimits(),
    aia: AiaArtefacts | None = None,
    cme: CmeArtefacts | None = None,
):
    """The FastAPI app serving one work directory (artefacts loaded and warmed here: a SHARP demo output, or a
    CME one, see `is_cme_workdir`; None: no SHARP table), an AIA search beside it when ``aia`` is given (see
    `load_aia_artefacts`) and a CME search when ``cme`` is given (see `load_cme_artefacts`).

    The app's state (`solarjax.app.state.AppState`) is ``app.state.served``; its engines are also
    ``app.state.engine`` (SHARP), ``app.state.aia_engine`` and ``app.state.cme_engine`` (None when absent).

    Raises:
      ArtefactError: see `load_state`.
    """
    import fastapi
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from solarjax.app.routes.aia import add_aia_routes
    from solarjax.app.routes.cme import add_cme_routes
    from solarjax.app.routes.sharp import add_sharp_routes

    state = load_state(workdir, limits, aia, cme)
    app = fastapi.FastAPI(
        title="solarjax reverse image search",
        description="Steer a GAN of SDO/HMI SHARP Br patches by physics and find the real patches that match; "
        "search SDO/AIA EUV patches by example.",
        version="1",
    )
    add_bounded_queue(app, GATED_PATHS, limits.max_pending)

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

    if state.engine is not None:
        add_sharp_routes(app, state)
    add_aia_routes(app, state)
    add_cme_routes(app, state)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / ("index.html" if state.engine is not None else "cme.html"))

    @app.get("/cme", include_in_schema=False)
    def cme_page():
        return FileResponse(STATIC_DIR / "cme.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    channels = 1 if state.aia_engine is None else len(state.aia_engine.wavelengths)
    app.add_middleware(
        BodyLimit,
        caps={
            "/api/search/upload": limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
            "/api/aia/search/upload": channels * limits.max_aia_upload_bytes + MULTIPART_OVERHEAD_BYTES,
            "/api/cme/search/upload": limits.max_upload_bytes + MULTIPART_OVERHEAD_BYTES,
        },
        hints={
            "/api/search/upload": f"one file of at most {limits.max_upload_bytes} bytes",
            "/api/aia/search/upload": f"at most {channels} files, one per channel, of at most "
            f"{limits.max_aia_upload_bytes} bytes each",
            "/api/cme/search/upload": f"one file of at most {limits.max_upload_bytes} bytes",
        },
    )
    app.state.served = state
    app.state.engine = state.engine
    app.state.aia_engine = state.aia_engine
    app.state.cme_engine = state.cme_engine
    return app


def serve(
    workdir: str | os.PathLike | None,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: ServerLimits = ServerLimits(),
    aia: AiaArtefacts | None = None,
    cme: CmeArtefacts | None = None,
) -> None:
    """Loads and warms the artefacts of `workdir` (SHARP or CME demo output; and the AIA search ``aia``, see
    `load_aia_artefacts`, and the CME search ``cme``), then serves the app until interrupted."""
    import uvicorn

    app = create_app(workdir, limits, aia, cme)
    print(f"solarjax app: http://{host}:{port}/  (API docs: http://{host}:{port}/docs)", flush=True)
    uvicorn.run(app, host=host, port=port, limit_concurrency=limits.max_pending + 16, log_level="warning")
