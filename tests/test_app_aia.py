"""API tests of the web application's AIA dataset (dataset selector, /api/aia/...).

The AIA search is built here, small and real: `aia_patches/synthetic` (40 patches, 32 in train) in
a temporary TFDS directory, a freshly initialised 3-channel SimSiam encoder (untrained: the
API's behaviour, not the embedding's quality, is under test), its table of the train split made
with `build_table_from_arrays`, and an exact index. Uploads use sunpy's real level-1 AIA file
(``aia_171_level1.fits``, a 128 x 128 full disk); the 193 and 211 A files of a query are that file
with its WAVELNTH keyword changed.
"""

import io
import json

import jax
import numpy as np
import pytest
from fastapi import testclient as fastapi_testclient

from solarjax.app import search as app_search
from solarjax.app import server
from tests.helpers import AIA_NUM_EXAMPLES as NUM_EXAMPLES
from tests.helpers import AIA_WAVELENGTHS as WAVELENGTHS
from tests.helpers import LIMITS, build_aia_artefacts, data_url_pixels, make_encoder, png_pixels


@pytest.fixture(scope="module")
def aia_artefacts(tmp_path_factory) -> server.AiaArtefacts:
    return build_aia_artefacts(tmp_path_factory.mktemp("aia_app"))


@pytest.fixture(scope="module")
def client(demo_workdir, aia_artefacts):
    app = server.create_app(demo_workdir, LIMITS, aia=aia_artefacts)
    with fastapi_testclient.TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def aia(client) -> server.AiaSearch:
    return client.app.state.aia_engine


def _jsonable(metadata: dict) -> dict:
    """Metadata as the API sends it (NaN as None)."""
    return {key: app_search.finite_or_none(value) for key, value in metadata.items()}


def _upload(client, files: list[tuple[str, bytes]], filters=None):
    return client.post(
        "/api/aia/search/upload",
        files=[("files", (name, contents, "application/octet-stream")) for name, contents in files],
        data={"filters": json.dumps(filters or {"k": 5})},
    )


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------- info, selector
def test_info_lists_both_datasets_and_the_aia_table(client, aia):
    assert client.get("/api/info").json()["datasets"] == ["sharp", "aia"]
    info = client.get("/api/aia/info").json()
    table = aia.index.table
    assert info["wavelengths"] == list(WAVELENGTHS) and info["composite"] == "rgb"
    assert info["num_rows"] == table.num_rows == int(0.8 * NUM_EXAMPLES)
    times = np.sort(table.column("t_obs"))
    assert info["t_obs"] == [
        str(np.datetime_as_string(times[0], unit="s")),
        str(np.datetime_as_string(times[-1], unit="s")),
    ]
    assert info["mu"] == pytest.approx([np.nanmin(table.column("mu")), np.nanmax(table.column("mu"))])


def test_page_has_the_dataset_selector(client):
    page = client.get("/").text
    assert 'id="dataset"' in page and 'value="aia"' in page and 'id="aia-upload-files"' in page


# ------------------------------------------------------------------------------------- row search
def test_row_search_agrees_with_the_library_and_never_returns_the_row(client, aia):
    body = client.post("/api/aia/search/row", json={"row": 3, "filters": {"k": 6}}).json()
    rows = [hit["row"] for hit in body["results"]]
    expected = aia.index.search_rows([3], k=6)[0]
    assert rows == [hit.row for hit in expected] and 3 not in rows
    np.testing.assert_allclose(
        [hit["similarity"] for hit in body["results"]], [h.similarity for h in expected], rtol=1e-6
    )
    stored = aia.index.table.rows(rows)
    for hit, metadata in zip(body["results"], stored):
        assert {name: hit[name] for name in server.AIA_RESULT_COLUMNS} == _jsonable(
            {name: metadata[name] for name in server.AIA_RESULT_COLUMNS}
        )
    assert body["query"]["metadata"]["row"] == 3 and "quantities" not in body["query"]
    by_id = client.post("/api/aia/search/row", json={"id": stored[0]["id"], "filters": {"k": 6}}).json()
    assert by_id["query"]["metadata"]["row"] == rows[0]
    assert client.post("/api/aia/search/row", json={"id": "no-such-patch"}).status_code == 404
    assert client.post("/api/aia/search/row", json={"row": aia.index.num_rows}).status_code == 404
    assert client.post("/api/aia/search/row", json={}).status_code == 422


def test_mu_and_time_filters(client, aia):
    table = aia.index.table
    mu, times = table.column("mu"), table.column("t_obs")
    threshold = float(np.median(mu))
    body = client.post("/api/aia/search/row", json={"row": 0, "filters": {"k": 50, "mu_min": threshold}}).json()
    allowed = int(np.sum(mu >= threshold)) - int(mu[0] >= threshold)
    assert len(body["results"]) == allowed > 0 and all(hit["mu"] >= threshold for hit in body["results"])
    order = np.sort(times)
    start, end = (str(np.datetime_as_string(t, unit="s")) for t in (order[5], order[20]))
    body = client.post(
        "/api/aia/search/row", json={"row": 1, "filters": {"k": 50, "t_start": start, "t_end": end}}
    ).json()
    inside = (times >= order[5]) & (times <= order[20])
    assert len(body["results"]) == int(inside.sum()) - int(inside[1])
    assert all(start <= hit["t_obs"][:19] <= end for hit in body["results"])
    for filters in ({"mu_min": 1.5}, {"mu_min": 0.8, "mu_max": 0.2}, {"t_start": end, "t_end": start}, {"k": 0}):
        assert client.post("/api/aia/search/row", json={"row": 0, "filters": filters}).status_code == 422


# ------------------------------------------------------------------------------------- uploads
def test_npy_upload_of_a_stored_patch_finds_it_first(client, aia):
    image = aia.images.image(7)
    assert image.shape == (128, 128, 3)
    body = _upload(client, [("patch.npy", _npy(image))]).json()
    assert body["results"][0]["row"] == 7 and body["results"][0]["distance"] == pytest.approx(0.0, abs=1e-4)
    np.testing.assert_allclose(
        data_url_pixels(body["query"]["image"]), png_pixels(server.render_aia_png(image, WAVELENGTHS))
    )


def test_fits_upload_is_prepared_as_aia_patches_prepares_files(client, aia, aia_fits):
    from solarjax.data import aia_prep

    files = [(aia_fits[w].name, aia_fits[w].read_bytes()) for w in (211, 171, 193)]  # any order
    response = _upload(client, files, {"k": 4, "mu_min": 0.0})
    assert response.status_code == 200, response.text
    body = response.json()
    observation = aia_prep.prepare_observation([aia_fits[w] for w in WAVELENGTHS], degradation="skip")
    rows, cols = observation.images.shape[:2]
    row0, col0 = (rows - 128) // 2, (cols - 128) // 2
    patch = aia_prep.extract_patches(observation, np.array([[row0, row0 + 128, col0, col0 + 128]]))[0]
    expected = aia_prep.normalise_channels(patch.image, WAVELENGTHS)
    np.testing.assert_allclose(
        data_url_pixels(body["query"]["image"]), png_pixels(server.render_aia_png(expected, WAVELENGTHS))
    )
    metadata = body["query"]["metadata"]
    assert metadata["t_obs"] == patch.t_obs and metadata["t_obs"].startswith("2011-02-15T00:00:01")
    assert metadata["mu"] == pytest.approx(patch.mu) and metadata["degradation_corrected"] is False
    assert metadata["files"].split(";") == [aia_fits[w].name for w in WAVELENGTHS]
    direct = aia.index.search(aia.embed(expected[None]), k=4, filters=None)[0]
    assert [hit["row"] for hit in body["results"]] == [hit.row for hit in direct]


def test_bad_aia_uploads_name_the_file_and_the_problem(client, aia_fits, real_br_files):
    real = aia_fits[171].read_bytes()
    cases = [
        ([(aia_fits[171].name, real)], 422, "missing [193, 211]"),
        ([("a.fits", real), ("b.fits", real), ("c.fits", real)], 422, "b.fits: a second 171 A file"),
        (
            [
                ("cut.fits", aia_fits[193].read_bytes()[:-2880]),
                (aia_fits[171].name, real),
                (aia_fits[211].name, aia_fits[211].read_bytes()),
            ],
            422,
            "cut.fits: truncated",
        ),
        ([(real_br_files[0].name, real_br_files[0].read_bytes())], 422, "unknown channel: WAVELNTH=6173"),
        ([("notes.txt", b"hello")], 415, "unsupported file type"),
        ([("../../etc/passwd.fits", b"root:x:0:0")], 422, "passwd.fits: not a FITS file"),
        ([("cube.npy", _npy(np.zeros((2, 64, 64), np.float32)))], 422, "[128, 128, 3]"),
        ([("hot.npy", _npy(np.full((128, 128, 3), 2.0, np.float32)))], 422, "in [0, 1]"),
        ([("big.fits", b"SIMPLE  =" + b" " * (LIMITS.max_aia_upload_bytes + 10))], 413, "too large"),
    ]
    for files, status, needle in cases:
        response = _upload(client, files)
        assert response.status_code == status, (needle, response.text)
        detail = response.json()["detail"]
        assert needle in detail, detail
        assert "/tmp" not in detail and "solarjax-upload" not in detail and ".." not in detail
    assert client.post("/api/aia/search/row", json={"row": 0}).status_code == 200


# ------------------------------------------------------------------------------------- patches, export, map
def test_patch_metadata_and_thumbnails(client, aia):
    meta = client.get("/api/aia/patch/3").json()
    assert meta == _jsonable({"row": 3, **aia.index.table.rows([3])[0], "image_url": "/api/aia/patch/3/image.png"})
    image = aia.images.image(3)
    rgb = png_pixels(client.get("/api/aia/patch/3/image.png").content)
    np.testing.assert_allclose(
        rgb[::-1, :, :3], np.round(image * 255) / 255, atol=1e-6
    )  # north up, R G B = 171 193 211
    single = png_pixels(client.get("/api/aia/patch/3/image.png?channel=193").content)
    colours = server.aia_colormap(193)(image[..., 1], bytes=True)[..., :3] / 255
    np.testing.assert_allclose(single[::-1, :, :3], colours, atol=1e-6)
    assert client.get("/api/aia/patch/3/image.png?channel=94").status_code == 422
    assert client.get(f"/api/aia/patch/{aia.index.num_rows}").status_code == 404


def test_export_csv_and_map(client, aia):
    data = client.get("/api/aia/map").json()
    assert len(data["rows"]) == len(data["xy"]) == len(data["mu"]) == aia.index.num_rows
    body = client.post("/api/aia/search/row", json={"row": data["rows"][2], "filters": {"k": 3}}).json()
    np.testing.assert_allclose(body["query"]["map_xy"], data["xy"][2], atol=1e-4)
    lines = client.get(body["export"]["csv"]).text.splitlines()
    assert lines[0] == "rank,similarity,distance,row," + ",".join(server.AIA_RESULT_COLUMNS)
    assert [int(line.split(",")[3]) for line in lines[1:]] == [hit["row"] for hit in body["results"]]
    assert "png" not in body["export"]
    assert client.get("/api/aia/export/0123456789abcdef.csv").status_code == 404


def test_aia_requests_never_compile(client, aia_fits):
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kwargs: compiles.append(event) if "backend_compile" in event else None
    )
    responses = [
        client.post("/api/aia/search/row", json={"row": 2, "filters": {"k": 50, "mu_min": 0.3}}),
        client.post("/api/aia/search/row", json={"row": 4, "filters": {"k": 1}}),
        _upload(client, [(aia_fits[w].name, aia_fits[w].read_bytes()) for w in WAVELENGTHS]),
    ]
    # Every request ran the encoder (a refused request would pass the compile check without running anything).
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text[:200] for r in responses]
    assert compiles == []


# ------------------------------------------------------------------------------------- start-up checks
def test_mismatched_aia_artefacts_stop_start_up(demo_workdir, aia_artefacts):
    from solarjax.retrieval import load_index

    sharp_index = load_index(demo_workdir / "index" / "index")
    with pytest.raises(server.ArtefactError, match="not of 'aia_patches'"):
        server.checked_aia_artefacts(server.AiaArtefacts(aia_artefacts.encoder, sharp_index, aia_artefacts.tfds_dir))
    other = make_encoder(channels=2)
    with pytest.raises(server.ArtefactError, match="fingerprint"):
        server.checked_aia_artefacts(server.AiaArtefacts(other, aia_artefacts.index, aia_artefacts.tfds_dir))
    with pytest.raises(server.ArtefactError, match="no AIA index"):
        server.load_aia_artefacts(demo_workdir / "nowhere", demo_workdir / "simsiam", demo_workdir / "tfds")
