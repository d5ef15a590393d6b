"""Routes every served table has, under its prefix: a row's metadata, a search's CSV export and the embedding
map; and the pieces of a search response that every dataset shares."""

import base64
import csv
import io
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi.responses import Response

from solarjax.app.search import finite_or_none
from solarjax.app.state import Dataset


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def jsonable_metadata(metadata: Mapping[str, Any] | None) -> dict:
    return {key: finite_or_none(value) for key, value in (metadata or {}).items()}


def ranking_info(ranking) -> dict:
    """A search's ranking as the page shows it: modes, default, hybrid weight, quantities, how it was chosen."""
    validation = ranking.validation or {}
    trials = validation.get("trials", {})
    trials = trials if isinstance(trials, Mapping) else {}
    return {
        "modes": ["ssl", "hybrid", "physics"],
        "default": ranking.rank,
        "hybrid_weight": ranking.weight,
        "quantities": list(ranking.quantities),
        "chosen_by": validation.get("criterion", "no validation run: SSL ranking"),
        "validation_scores": {
            name: finite_or_none(t.get("score")) if isinstance(t, Mapping) else None for name, t in trials.items()
        },
    }


def result_payloads(dataset: Dataset, hits: Sequence, fields: Callable[[Any], dict]) -> list[dict]:
    """The JSON of search results (SearchResult list): rank, row, similarity, distance, the dataset's
    ``fields(hit)``, the row's image URL and its map position."""
    points = dataset.served().map_points([hit.row for hit in hits])
    return [
        {
            "rank": rank,
            "row": hit.row,
            "similarity": hit.similarity,
            "distance": hit.distance,
            **fields(hit),
            "image_url": dataset.image_url(hit.row),
            "map_xy": point.tolist(),
        }
        for rank, (hit, point) in enumerate(zip(hits, points), start=1)
    ]


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


def attachment(content: bytes | str, media_type: str, search_id: str, suffix: str) -> Response:
    """A search's export as a download named solarjax-<first 8 characters of its id>.<suffix>."""
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="solarjax-{search_id[:8]}.{suffix}"'},
    )


def png_response(png: bytes) -> Response:
    """A row's PNG, cacheable for an hour."""
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


PNG_RESPONSE = {"response_class": Response, "responses": {200: {"content": {"image/png": {}}}}}
"""Route arguments of an endpoint answering a PNG (for the OpenAPI page)."""

CSV_RESPONSE = {"response_class": Response, "responses": {200: {"content": {"text/csv": {}}}}}
"""Route arguments of an endpoint answering CSV."""


def add_table_routes(app, dataset: Dataset, name: str, summaries: Mapping[str, str]) -> None:
    """Adds ``{prefix}/patch/{row}``, ``{prefix}/export/{search_id}.csv`` and ``{prefix}/map`` for `dataset`.

    Args:
      name: prefix of the routes' names (their OpenAPI operation ids): '' for SHARP, 'aia_' for AIA.
      summaries: 'patch', 'csv' and 'map' -> the route's one-line summary.
    """
    prefix = dataset.prefix

    @app.get(prefix + "/patch/{row}", name=f"{name}patch", summary=summaries["patch"])
    def patch(row: int):
        metadata = dataset.served().index.table.rows([dataset.checked_row(row)])[0]
        return {"row": row, **jsonable_metadata(metadata), "image_url": dataset.image_url(row)}

    @app.get(prefix + "/export/{search_id}.csv", name=f"{name}export_csv", summary=summaries["csv"], **CSV_RESPONSE)
    def export_csv(search_id: str):
        results = dataset.stored(search_id)["results"]
        text = results_csv(results, dataset.result_columns, dataset.result_quantities)
        return attachment(text, "text/csv", search_id, "csv")

    @app.get(prefix + "/map", name=f"{name}embedding_map", summary=summaries["map"])
    def embedding_map():
        search = dataset.served()
        colour = search.index.table.column(dataset.map_colour)[search.map.rows]
        return {
            "rows": search.map.rows.tolist(),
            "xy": search.map.points.round(5).tolist(),
            dataset.map_colour: [finite_or_none(v) for v in colour],
        }
