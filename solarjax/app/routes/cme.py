"""The CME routes under /api/cme: the table's description, CME images generated from slider states, and
searches with a generated image, an uploaded NPY difference image or a table row. Without a CME demo output
every route answers 404 saying so."""

import numpy as np
from fastapi import File, Form, UploadFile
from fastapi.responses import Response

from solarjax.app.artefacts import CME_STEERABLE
from solarjax.app.cme_engine import CME_ALPHA_LIMIT, CME_QUANTITIES
from solarjax.app.rendering import CME_RANGE, render_cme_png
from solarjax.app.routes.table import (
    PNG_RESPONSE,
    add_table_routes,
    data_url,
    jsonable_metadata,
    png_response,
    ranking_info,
    result_payloads,
)
from solarjax.app.schemas import CmeFilterSpec, CmeGeneratedSearch, CmeRowSearch, CmeSliderState, parsed_filters
from solarjax.app.search import MAX_K, finite_or_none
from solarjax.app.state import CME_RESULT_COLUMNS, AppState
from solarjax.app.timing import StageTimer
from solarjax.app.uploads import CME_UPLOAD_SUFFIXES, read_limited, safe_name, uploaded_cme
from solarjax.retrieval.filters import QueryContext


def _hit_fields(hit) -> dict:
    """A CME result's own fields: its ranking score, table columns and measured quantities."""
    return {
        "score": finite_or_none(hit.score),
        **{name: finite_or_none(hit.metadata.get(name)) for name in CME_RESULT_COLUMNS},
        "quantities": {name: finite_or_none(hit.metadata.get(name)) for name in CME_QUANTITIES},
    }


def add_cme_routes(app, state: AppState) -> None:
    """Adds the CME routes under /api/cme (`state.cme`)."""
    cme, limits, slots = state.cme, state.limits, state.slots

    def query_payload(image: np.ndarray, embedding: np.ndarray, quantities: dict, metadata: dict | None = None):
        return {
            "image": data_url(render_cme_png(image[0])),
            "quantities": quantities,
            "metadata": jsonable_metadata(metadata),
            "map_xy": cme.served().map.project(embedding)[0].tolist(),
        }

    def run_search(
        image: np.ndarray,
        spec: CmeFilterSpec,
        metadata: dict | None = None,
        context: QueryContext | None = None,
        embedding: np.ndarray | None = None,
        values: dict | None = None,
        timer: StageTimer | None = None,
    ) -> dict:
        search = cme.served()
        timer = timer or StageTimer()
        rank = spec.checked_rank(search.ranks, search.ranking.rank)
        if embedding is None:
            with timer.stage("embed"):
                embedding = search.embed(image)
        if values is None:
            with timer.stage("quantities"):
                values = search.query_quantities(image)
        with timer.stage("search"):
            hits = search.search_ranked(embedding, image, spec.k, spec.to_filters(), context, rank, values)
        with timer.stage("payload"):
            quantities = {name: finite_or_none(values[name][0]) for name in CME_QUANTITIES}
            query = query_payload(image, embedding, quantities, metadata)
            results = result_payloads(cme, hits, _hit_fields)
        search_id = cme.store({"results": results})
        return {
            "search_id": search_id,
            "query": query,
            "results": results,
            "rank": rank,
            "export": {"csv": f"/api/cme/export/{search_id}.csv"},
        }

    @app.get("/api/cme/info", summary="The CME table and generator: sliders, quantities, ranking, limits")
    def cme_info():
        search = cme.served()
        return {
            "steerable": list(CME_STEERABLE),
            "steering": "local",
            "quantities": list(CME_QUANTITIES),
            "alpha_limit": CME_ALPHA_LIMIT,
            "num_rows": search.index.num_rows,
            "index_kind": search.index.kind,
            "max_k": MAX_K,
            "max_upload_bytes": limits.max_upload_bytes,
            "upload_suffixes": list(CME_UPLOAD_SUFFIXES),
            "display_range": [-CME_RANGE, CME_RANGE],
            "ranking": {**ranking_info(search.ranking), "modes": list(search.ranks)},
            "fingerprints": {"generator": search.generator.fingerprint, "encoder": search.encoder.fingerprint},
            "datasets": state.datasets,
            **search.table_summary(),
        }

    @app.post("/api/cme/generate", summary="Generate a CME image from slider values (held quantities kept)")
    def cme_generate(request: CmeSliderState, response: Response):
        search = cme.served()
        request.checked()
        timer = StageTimer()
        with slots:
            query = search.generated(request.seed, request.sliders, request.hold, timer)
            with timer.stage("payload"):
                payload = query_payload(query.image, query.embedding, query.quantities())
        response.headers["Server-Timing"] = timer.header()
        return payload

    @app.post("/api/cme/search/generated", summary="Search with the CME image the sliders generate")
    def cme_search_generated(request: CmeGeneratedSearch, response: Response):
        search = cme.served()
        request.checked()
        timer = StageTimer()
        with slots:
            query = search.generated(request.seed, request.sliders, request.hold, timer)
            payload = run_search(
                query.image, request.filters, embedding=query.embedding, values=query.values, timer=timer
            )
        response.headers["Server-Timing"] = timer.header()
        return payload

    @app.post("/api/cme/search/upload", summary="Search with an uploaded NPY difference image [128, 128] in [-1, 1]")
    def cme_search_upload(file: UploadFile = File(...), filters: str = Form("{}")):
        cme.served()
        spec = parsed_filters(CmeFilterSpec, filters)
        name = safe_name(file.filename)
        contents = read_limited(file.file, limits.max_upload_bytes, name)
        image, metadata = uploaded_cme(name, contents)
        with slots:
            return run_search(image, spec, metadata)

    @app.post("/api/cme/search/row", summary="Search with a CME table row, given by row number or patch id")
    def cme_search_row(request: CmeRowSearch):
        cme.served()  # without a CME table: 404, before any complaint about the body
        row = request.resolved(cme)
        with slots:
            image, metadata, context, embedding = cme.row_query(row)
            return run_search(image, request.filters, metadata, context, embedding=embedding)

    add_table_routes(
        app,
        cme,
        name="cme_",
        summaries={
            "patch": "A CME table row's metadata and measured quantities",
            "csv": "A CME search's results as CSV",
            "map": "2-D PCA projection of the CME table (sampled rows)",
        },
    )

    @app.get(
        "/api/cme/patch/{row}/image.png",
        summary="A CME row's difference image (grey on [-0.6, 0.6], north up)",
        **PNG_RESPONSE,
    )
    def cme_patch_image(row: int):
        return png_response(cme.row_png(cme.checked_row(row)))
