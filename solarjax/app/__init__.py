"""The reverse image-search web application: steer the GAN by physics, search the real SHARPs
(and SDO/AIA EUV patches by example).

    from solarjax import app
    app.serve("demo_out")                      # http://127.0.0.1:8000 (OpenAPI at /docs)
    fastapi_app = app.create_app("demo_out")   # for tests or another ASGI server
    aia = app.load_aia_artefacts("runs/aia_index", "runs/simsiam_aia", "~/tensorflow_datasets")
    app.serve("demo_out", aia=aia)             # SHARP and AIA, with a dataset selector on the page
    app.serve("cme_out")                       # CME mode: the output of `solarjax demo --dataset cme`

See `solarjax.app.server` for the endpoints, the safety limits and the start-up checks; the app is built from
`artefacts` (loading), `search`, `generation` and `cme_engine` (the engines), `state` (what one app serves), `schemas`
(request bodies), `routes` (per dataset), `uploads`, `middleware`, `rendering`, `caches` and `timing`.
"""

from solarjax.app.artefacts import (
    AiaArtefacts,
    ArtefactError,
    Artefacts,
    CmeArtefacts,
    is_cme_workdir,
    load_aia_artefacts,
    load_artefacts,
    load_cme_artefacts,
)
from solarjax.app.generation import SearchEngine
from solarjax.app.rendering import render_aia_png, render_png
from solarjax.app.search import AiaSearch
from solarjax.app.server import create_app, serve
from solarjax.app.state import ServerLimits

__all__ = [
    "AiaArtefacts",
    "AiaSearch",
    "ArtefactError",
    "Artefacts",
    "CmeArtefacts",
    "SearchEngine",
    "ServerLimits",
    "create_app",
    "is_cme_workdir",
    "load_aia_artefacts",
    "load_artefacts",
    "load_cme_artefacts",
    "render_aia_png",
    "render_png",
    "serve",
]
