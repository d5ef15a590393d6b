"""The reverse image-search web application: steer the GAN by physics, search the real SHARPs.

    from solarjax import app
    app.serve("demo_out")                      # http://127.0.0.1:8000 (OpenAPI at /docs)
    fastapi_app = app.create_app("demo_out")   # for tests or another ASGI server

See `solarjax.app.server` for the endpoints, the safety limits and the start-up checks.
"""
from solarjax.app.server import (
    ArtefactError,
    Artefacts,
    SearchEngine,
    ServerLimits,
    create_app,
    load_artefacts,
    render_png,
    serve,
)

__all__ = [
    "ArtefactError",
    "Artefacts",
    "SearchEngine",
    "ServerLimits",
    "create_app",
    "load_artefacts",
    "render_png",
    "serve",
]
