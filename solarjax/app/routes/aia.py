"""The AIA routes under /api/aia: the table's description, and searches with uploaded AIA files or a table row.
Without an AIA index every route answers 404 saying so."""

import pathlib
import tempfile

import fastapi
import numpy as np
from starlette.concurrency import run_in_threadpool

from solarjax.app.rendering import render_aia_png
from solarjax.app.routes.table import (
    PNG_RESPONSE,
    add_table_routes,
    data_url,
    jsonable_metadata,
    png_response,
    result_payloads,
)
from solarjax.app.schemas import AiaFilterSpec, AiaRowSearch, parsed_filters
from solarjax.app.search import MAX_K, finite_or_none
from solarjax.app.state import AIA_RESULT_COLUMNS, AppState
from solarjax.app.uploads import AIA_UPLOAD_OPENAPI, UploadError, aia_upload_form, spooled_to_disk, uploaded_aia
from solarjax.retrieval.filters import QueryContext


def _hit_fields(hit) -> dict:
    """An AIA result's own fields: its table columns."""
    return {name: finite_or_none(hit.metadata.get(name)) for name in AIA_RESULT_COLUMNS}


def add_aia_routes(app, state: AppState) -> None:
    """Adds the AIA routes under /api/aia (`state.aia`)."""
    aia, limits, slots = state.aia, state.limits, state.slots

    def run_search(
        image: np.ndarray,
        spec: AiaFilterSpec,
        metadata: dict,
        context: QueryContext | None = None,
        embedding: np.ndarray | None = None,
    ) -> dict:
        search = aia.served()
        embedding = search.embed(image) if embedding is None else embedding
        hits = search.search(embedding, spec.k, spec.to_filters(), context)
        results = result_payloads(aia, hits, _hit_fields)
        search_id = aia.store({"results": results})
        query = {
            "image": data_url(render_aia_png(image[0], search.wavelengths)),
            "metadata": jsonable_metadata(metadata),
            "map_xy": search.map.project(embedding)[0].tolist(),
        }
        return {
            "search_id": search_id,
            "query": query,
            "results": results,
            "export": {"csv": f"/api/aia/export/{search_id}.csv"},
        }

    @app.get("/api/aia/info", summary="The AIA table: channels, size, time and mu ranges")
    def aia_info():
        search = aia.served()
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
        search = aia.served()
        form = await aia_upload_form(request, max_files=len(search.wavelengths))
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
                    uploads = spooled_to_disk(files, pathlib.Path(folder), limits.max_aia_upload_bytes)
                    with slots:
                        image, metadata = uploaded_aia(uploads, search.wavelengths)
                        return run_search(image, spec, metadata)

            return await run_in_threadpool(compute)
        finally:
            await form.close()

    @app.post("/api/aia/search/row", summary="Search with an AIA table row, given by row number or patch id")
    def aia_search_row(request: AiaRowSearch):
        aia.served()  # without an AIA index: 404, before any complaint about the body
        row = request.resolved(aia)
        with slots:
            image, metadata, context, embedding = aia.row_query(row)
            return run_search(image, request.filters, metadata, context, embedding=embedding)

    add_table_routes(
        app,
        aia,
        name="aia_",
        summaries={
            "patch": "An AIA table row's metadata",
            "csv": "An AIA search's results as CSV",
            "map": "2-D PCA projection of the AIA table (sampled rows)",
        },
    )

    @app.get(
        "/api/aia/patch/{row}/image.png",
        summary="An AIA row's patch: RGB composite of 3 channels, or one channel in its sdoaia colour map",
        **PNG_RESPONSE,
    )
    def aia_patch_image(row: int, channel: int | None = None):
        search = aia.served()
        if channel is not None and channel not in search.wavelengths:
            raise fastapi.HTTPException(422, f"channel {channel} is not one of the table's {list(search.wavelengths)}")
        return png_response(aia.row_png(aia.checked_row(row), channel))
