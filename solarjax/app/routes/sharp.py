"""The SHARP routes: what the page needs, patches generated from slider states, and searches with a generated
patch, an uploaded Br file or a table row (with their contact sheets)."""

from collections.abc import Mapping

import numpy as np
from fastapi import File, Form, UploadFile
from fastapi.responses import Response

from solarjax import physics
from solarjax.app import units
from solarjax.app.artefacts import STEERABLE
from solarjax.app.generation import ALPHA_LIMIT, GeneratedQuery
from solarjax.app.rendering import colormap_stops, contact_sheet_png, render_png
from solarjax.app.routes.table import (
    PNG_RESPONSE,
    add_table_routes,
    attachment,
    data_url,
    jsonable_metadata,
    png_response,
    ranking_info,
    result_payloads,
)
from solarjax.app.schemas import FilterSpec, GeneratedSearch, RowSearch, SliderState, parsed_filters
from solarjax.app.search import MAX_K, finite_or_none
from solarjax.app.state import RESULT_COLUMNS, AppState
from solarjax.app.timing import StageTimer
from solarjax.app.uploads import UPLOAD_SUFFIXES, read_limited, safe_name, uploaded_image
from solarjax.retrieval.filters import QueryContext


def _hit_fields(hit) -> dict:
    """A SHARP result's own fields: its ranking score, table columns and quantities."""
    return {
        "score": finite_or_none(hit.score),
        **{name: finite_or_none(hit.metadata.get(name)) for name in RESULT_COLUMNS},
        "quantities": {name: finite_or_none(hit.metadata.get(name)) for name in physics.QUANTITY_NAMES},
    }


def add_sharp_routes(app, state: AppState) -> None:
    """Adds the SHARP routes under /api (`state.sharp`)."""
    engine, sharp, limits, slots = state.engine, state.sharp, state.limits, state.slots

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
            results = result_payloads(sharp, hits, _hit_fields)
        search_id = sharp.store({"image": image[0], "quantities": query["quantities"], "results": results})
        return {
            "search_id": search_id,
            "query": query,
            "results": results,
            "rank": rank,
            "export": {"csv": f"/api/export/{search_id}.csv", "png": f"/api/export/{search_id}.png"},
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
            "datasets": state.datasets,
            "ranking": ranking_info(engine.ranking),
        }

    @app.post("/api/generate", summary="Generate a patch from slider values (held quantities kept)")
    def generate(request: SliderState, response: Response):
        request.checked(engine.steering_methods)
        timer = StageTimer()
        with slots:
            query = engine.generated(request.seed, request.sliders, request.hold, request.method, timer)
            with timer.stage("payload"):
                payload = query_payload(query.image, query.embedding, quantities=query.quantities())
        response.headers["Server-Timing"] = timer.header()
        return payload

    @app.post("/api/search/generated", summary="Search with the patch the sliders generate")
    def search_generated(request: GeneratedSearch, response: Response):
        request.checked(engine.steering_methods)
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
        name = safe_name(file.filename)
        contents = read_limited(file.file, limits.max_upload_bytes, name)
        with slots:
            image, metadata = uploaded_image(name, contents)
            context = QueryContext.from_metadata([metadata]) if metadata.get("harpnum") else None
            return run_search(image, spec, metadata, context)

    @app.post("/api/search/row", summary="Search with a table row, given by HARP and T_REC")
    def search_row(request: RowSearch):
        row = request.resolved(sharp)
        with slots:
            image, metadata, context, embedding = sharp.row_query(row)
            return run_search(image, request.filters, metadata, context, embedding=embedding)

    add_table_routes(
        app,
        sharp,
        name="",
        summaries={
            "patch": "A table row's metadata and quantities",
            "csv": "A search's results as CSV, with JSOC record names",
            "map": "2-D PCA projection of the table (sampled rows) for the map view",
        },
    )

    @app.get("/api/patch/{row}/image.png", summary="A table row's patch (hmimag, +-1000 G)", **PNG_RESPONSE)
    def patch_image(row: int):
        return png_response(sharp.row_png(sharp.checked_row(row)))

    @app.get("/api/export/{search_id}.png", summary="A search's contact sheet", **PNG_RESPONSE)
    def export_png(search_id: str):
        entry = sharp.stored(search_id)
        with slots:
            images = [engine.images.image(hit["row"]) for hit in entry["results"]]
            blank = np.zeros_like(entry["image"][..., 0])
            sheet = contact_sheet_png(
                entry["image"],
                entry["quantities"],
                entry["results"],
                [blank if image is None else image for image in images],
            )
        return attachment(sheet, "image/png", search_id, "png")
