"""API tests of the web application on a real quick-demo work directory.

The work directory is the session fixture `demo_workdir` of conftest.py (a quick demo).
"""

import concurrent.futures
import io
import json
import pathlib
import shutil

import numpy as np
import pytest
from fastapi import testclient as fastapi_testclient

from solarjax import physics
from solarjax.app import server

REPO = pathlib.Path(__file__).resolve().parents[1]
LIMITS = server.ServerLimits(max_upload_bytes=4 * 2**20, max_pending=4, workers=2)


@pytest.fixture(scope="module")
def client(demo_workdir):
    app = server.create_app(demo_workdir, LIMITS)
    with fastapi_testclient.TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def engine(client) -> server.SearchEngine:
    return client.app.state.engine


def _png_pixels(data: bytes) -> np.ndarray:
    from matplotlib import image as mpimg

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(data), format="png")


def _data_url_pixels(url: str) -> np.ndarray:
    import base64

    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    return _png_pixels(base64.b64decode(url[len(prefix) :]))


# ------------------------------------------------------------------------------------- info / generate
def test_info_describes_sliders_limits_and_table(client, engine):
    info = client.get("/api/info").json()
    assert info["steerable"] == list(server.STEERABLE)
    assert info["num_rows"] == engine.index.num_rows > 0
    assert len(info["colormap"]) == 11 and all(c.startswith("#") and len(c) == 7 for c in info["colormap"])
    import sunpy.visualization.colormaps as sunpy_colormaps

    middle = sunpy_colormaps.cm.hmimag(0.5, bytes=True)[:3]
    assert info["colormap"][5] == "#{:02x}{:02x}{:02x}".format(*middle) != info["colormap"][0]
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/api/generate", "/api/search/upload"}


def test_generate_at_rest_is_the_seeds_plain_sample(client, engine):
    body = client.post("/api/generate", json={"seed": 3, "sliders": {"tuf": 0.0}}).json()
    generator = engine.artefacts.generator
    expected = np.asarray(generator.generate(generator.sample_latents(1, 3)))
    want = {k: float(v[0]) for k, v in physics.quantities(expected).items()}
    for name in ("tuf", "psep", "area"):
        assert body["quantities"][name] == pytest.approx(want[name], rel=1e-5, abs=1e-6)
    pixels = _data_url_pixels(body["image"])
    assert pixels.shape[:2] == (128, 128)
    np.testing.assert_allclose(pixels, _png_pixels(server.render_png(expected[0])))


def test_flux_slider_raises_flux(client):
    def tuf(alpha, seed):
        return client.post("/api/generate", json={"seed": seed, "sliders": {"tuf": alpha}}).json()["quantities"]["tuf"]

    low = np.mean([tuf(-3.0, seed) for seed in range(4)])
    high = np.mean([tuf(3.0, seed) for seed in range(4)])
    assert high > low


def test_every_steering_family_is_one_switch_away(client, engine):
    info = client.get("/api/info").json()["steering"]
    assert info["default"] == engine.steering_method and "paper" in info["methods"]
    assert info["default"] == (info["evaluation"] or {}).get("best_method", "paper")
    for method in info["methods"]:

        def tuf(alpha, seed, method=method):
            body = {"seed": seed, "sliders": {"tuf": alpha}, "method": method}
            return client.post("/api/generate", json=body).json()["quantities"]["tuf"]

        assert np.mean([tuf(2.0, s) for s in range(3)]) > np.mean([tuf(-2.0, s) for s in range(3)]), method
    z = engine.steered_latent(4, {"tuf": 1.5, "psep": -1.0}, (), method="local")
    base = engine.artefacts.generator.sample_latents(1, 4)
    assert np.linalg.norm(z) == pytest.approx(np.linalg.norm(base), rel=1e-5)  # local paths stay on the shell
    assert client.post("/api/generate", json={"method": "global"}).status_code == 422


def test_held_quantity_ignores_its_own_slider(client):
    held = client.post("/api/generate", json={"seed": 1, "sliders": {"tuf": 2.5}, "hold": ["tuf"]}).json()
    rest = client.post("/api/generate", json={"seed": 1}).json()
    assert held["quantities"] == rest["quantities"]


def test_held_direction_is_orthogonal_to_the_held_normal(engine):
    directions = engine.artefacts.directions
    z0 = engine.steered_latent(2, {}, (), method="paper")
    z1 = engine.steered_latent(
        2, {"psep": 1e-3}, ("tuf",), method="paper"
    )  # tiny step: keep_norm's rescale is second order
    step = (z1 - z0)[0]
    assert abs(np.dot(step, directions.normal("tuf"))) < 1e-2 * np.linalg.norm(step)
    assert np.dot(step, directions.normal("psep")) > 0.5 * np.linalg.norm(step)


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"sliders": {"tuf": 3.5}}, "outside"),
        ({"sliders": {"net_flux": 1.0}}, "net_flux"),
        ({"hold": ["colour"]}, "colour"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_slider_requests_are_422(client, body, needle):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 422
    assert needle in response.text


@pytest.mark.parametrize(
    "path, text",
    [
        ("/api/generate", '{"seed": NaN}'),
        ("/api/generate", '{"sliders": {"tuf": Infinity}}'),
        ("/api/search/generated", '{"filters": {"k": 1e400}}'),
        ("/api/search/row", '{"row": 0, "filters": {"k": -Infinity}}'),
    ],
)
def test_non_finite_json_numbers_are_422_and_the_server_keeps_serving(client, path, text):
    response = client.post(path, content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert client.get("/api/info").status_code == 200


# ------------------------------------------------------------------------------------- search
def test_generated_search_matches_the_library(client, engine):
    body = client.post(
        "/api/search/generated", json={"seed": 5, "sliders": {"psep": 1.0}, "filters": {"k": 7, "rank": "ssl"}}
    ).json()
    image = engine.generate(5, {"psep": 1.0}, ())
    direct = engine.index.search(np.asarray(engine.artefacts.encoder.embed(image)), k=7)[0]
    assert [hit["row"] for hit in body["results"]] == [hit.row for hit in direct]
    np.testing.assert_allclose(
        [hit["similarity"] for hit in body["results"]], [hit.similarity for hit in direct], rtol=1e-6
    )
    assert [hit["rank"] for hit in body["results"]] == list(range(1, 8))
    similarities = [hit["similarity"] for hit in body["results"]]
    assert similarities == sorted(similarities, reverse=True)
    first = body["results"][0]
    for name in physics.QUANTITY_NAMES:
        stored = engine.index.table.column(name)[first["row"]]
        assert first["quantities"][name] == pytest.approx(float(stored), nan_ok=True) or not np.isfinite(stored)


def test_hemisphere_filter_and_k(client):
    for hemisphere, sign in (("north", 1), ("south", -1)):
        body = client.post(
            "/api/search/generated", json={"seed": 0, "filters": {"k": 12, "hemisphere": hemisphere}}
        ).json()
        latitudes = np.array([hit["lat_deg"] for hit in body["results"]])
        assert len(latitudes) == 12 and np.all(sign * latitudes >= 0)
    for k in (0, server.MAX_K + 1):
        assert client.post("/api/search/generated", json={"filters": {"k": k}}).status_code == 422
    bad_time = client.post("/api/search/generated", json={"filters": {"t_start": "yesterday"}})
    assert bad_time.status_code == 422 and "yesterday" in bad_time.text


def test_row_search_never_returns_the_row_and_agrees_with_search_rows(client, engine):
    body = client.post("/api/search/row", json={"row": 5, "filters": {"k": 6, "rank": "ssl"}}).json()
    rows = [hit["row"] for hit in body["results"]]
    assert 5 not in rows and len(rows) == 6
    assert rows == [hit.row for hit in engine.index.search_rows([5], k=6)[0]]
    assert body["query"]["metadata"]["row"] == 5
    assert client.post("/api/search/row", json={"row": engine.index.num_rows}).status_code == 404
    assert client.post("/api/search/row", json={"harpnum": 1}).status_code == 422
    missing = client.post("/api/search/row", json={"harpnum": 99999, "t_rec": "2012-03-06T14:24:00"})
    assert missing.status_code == 404 and "99999" in missing.text


# ------------------------------------------------------------------------------------- uploads
def _upload(client, name, contents, filters=None):
    return client.post(
        "/api/search/upload",
        files={"file": (name, contents, "application/octet-stream")},
        data={"filters": json.dumps(filters or {"k": 5})},
    )


def test_fits_upload_is_preprocessed_as_in_training(client, real_br_files):
    from solarjax.data import preprocess_patch, read_sharp

    path = real_br_files[0]
    body = _upload(client, path.name, path.read_bytes()).json()
    patch = read_sharp(path)
    expected = {k: float(v[0]) for k, v in physics.quantities(preprocess_patch(patch).image[None]).items()}
    assert body["query"]["quantities"]["tuf"] == pytest.approx(expected["tuf"], rel=1e-5)
    assert body["query"]["metadata"]["harpnum"] == patch.meta["harpnum"]
    assert body["query"]["metadata"]["t_rec"].startswith(patch.meta["t_rec"].strftime("%Y-%m-%dT%H"))
    assert len(body["results"]) == 5


def test_corrupt_fits_uploads_are_4xx_with_the_reason_and_the_server_keeps_serving(
    client, corrupt_files, real_br_files
):
    assert len(corrupt_files) == 3
    for path in corrupt_files:
        response = _upload(client, path.name, path.read_bytes())
        assert 400 <= response.status_code < 500, (path.name, response.text)
        detail = response.json()["detail"]
        assert path.name in detail and len(detail) > len(path.name) + 5
        assert "/tmp" not in detail and "solarjax-upload" not in detail
    good = _upload(client, real_br_files[1].name, real_br_files[1].read_bytes())
    assert good.status_code == 200


def test_empty_and_truncated_uploads_name_their_problem(client, corrupt_files):
    by_size = sorted(corrupt_files, key=lambda p: p.stat().st_size)
    assert "empty" in _upload(client, by_size[0].name, by_size[0].read_bytes()).json()["detail"]


@pytest.mark.parametrize(
    "name, contents, status, needle",
    [
        ("notes.txt", b"hello", 415, "unsupported file type"),
        ("fake.Br.fits", b"<html>not found</html>", 422, "not a FITS file"),
        ("../../etc/passwd.fits", b"root:x:0:0", 422, "passwd.fits: not a FITS file"),
        ("big.fits", b"SIMPLE  =" + b" " * (LIMITS.max_upload_bytes + 10), 413, "too large"),
    ],
)
def test_bad_uploads(client, name, contents, status, needle):
    response = _upload(client, name, contents)
    assert response.status_code == status
    assert needle in response.json()["detail"]
    assert ".." not in response.json()["detail"]


def test_oversized_uploads_are_refused_while_streaming(client):
    declared = client.post(
        "/api/search/upload",
        content=b"x" * 1024,
        headers={"content-type": "multipart/form-data; boundary=b", "content-length": str(200 * 2**20)},
    )
    assert declared.status_code == 413 and "byte limit" in declared.json()["detail"]
    sent = []

    def chunks():  # a file part of 64 MiB offered in 1 MiB chunks, with no Content-Length
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.fits"\r\n\r\n'
        for _ in range(64):
            sent.append(1)
            yield b"x" * 2**20

    response = client.post(
        "/api/search/upload", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413 and "byte limit" in response.json()["detail"]
    assert client.get("/api/info").status_code == 200


def test_body_limit_stops_reading_a_chunked_body_at_its_cap():
    """The middleware alone, as a server drives it: messages are pulled one by one."""
    import asyncio

    pulled, sent, seen_by_app = [], [], []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 2**20, "more_body": len(pulled) < 64}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):  # reads until the end or a disconnect, like a form parser
        while True:
            message = await receive()
            seen_by_app.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                raise RuntimeError("client went away")

    limited = server.BodyLimit(app, {"/api/search/upload": 3 * 2**20})
    asyncio.run(limited({"type": "http", "path": "/api/search/upload", "headers": []}, receive, send))
    assert len(pulled) == 4 and seen_by_app[-1] == "http.disconnect"
    assert sent[0]["status"] == 413 and len(sent) == 2


def test_npy_uploads(client):
    rng = np.random.default_rng(0)
    field = np.zeros((200, 300), np.float32)
    field[80:120, 100:140] = 800.0
    field[80:120, 160:200] = -600.0
    field += rng.normal(0, 20, field.shape).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, field)
    body = _upload(client, "map.npy", buffer.getvalue()).json()
    from solarjax.data import preprocess

    expected = float(physics.quantities(preprocess(field)[None])["tuf"][0])
    assert body["query"]["quantities"]["tuf"] == pytest.approx(expected, rel=1e-5)
    cube = io.BytesIO()
    np.save(cube, np.zeros((2, 64, 64)))
    assert "2-D" in _upload(client, "cube.npy", cube.getvalue()).json()["detail"]
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert _upload(client, "evil.npy", objects.getvalue()).status_code == 422


# ------------------------------------------------------------------------------------- patches, export, map
def test_patch_metadata_and_image(client, engine):
    meta = client.get("/api/patch/3").json()
    assert meta["row"] == 3 and meta["tuf"] == pytest.approx(float(engine.index.table.column("tuf")[3]))
    pixels = _png_pixels(client.get("/api/patch/3/image.png").content)
    np.testing.assert_allclose(pixels, _png_pixels(server.render_png(engine.images.image(3))))
    assert client.get("/api/patch/-1").status_code == 404
    assert client.get(f"/api/patch/{engine.index.num_rows}/image.png").status_code == 404


def test_exports(client):
    body = client.post("/api/search/generated", json={"seed": 2, "filters": {"k": 4}}).json()
    csv_text = client.get(body["export"]["csv"]).text.splitlines()
    assert csv_text[0].startswith("rank,similarity,distance,row,harpnum")
    assert "record" in csv_text[0].split(",")
    assert [int(line.split(",")[3]) for line in csv_text[1:]] == [hit["row"] for hit in body["results"]]
    sheet = _png_pixels(client.get(body["export"]["png"]).content)
    assert sheet.shape[0] > 100 and sheet.shape[1] > 500
    assert client.get("/api/export/0123456789abcdef.csv").status_code == 404


def test_map_projects_queries_and_results_consistently(client, engine):
    data = client.get("/api/map").json()
    assert len(data["rows"]) == len(data["xy"]) == min(engine.index.num_rows, server.MAP_POINTS)
    body = client.post("/api/search/row", json={"row": data["rows"][1], "filters": {"k": 3}}).json()
    np.testing.assert_allclose(body["query"]["map_xy"], data["xy"][1], atol=1e-4)


# ------------------------------------------------------------------------------------- serving
def test_requests_never_compile(client, real_br_files):
    import jax

    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kwargs: compiles.append(event) if "backend_compile" in event else None
    )
    responses = [
        client.post("/api/generate", json={"seed": 11, "sliders": {"tuf": 1.0, "r_value": -1.0}, "hold": ["psep"]}),
        client.post("/api/search/generated", json={"seed": 12, "filters": {"k": 50, "one_per_harp": True}}),
        client.post("/api/search/generated", json={"seed": 13, "filters": {"k": 1, "hemisphere": "south"}}),
        client.post("/api/search/row", json={"row": 7}),
        _upload(client, real_br_files[2].name, real_br_files[2].read_bytes()),
    ]
    # Every request ran the model (a refused request would pass the compile check without running anything).
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text[:200] for r in responses]
    assert compiles == []


def test_overload_degrades_into_503_not_errors(client):
    def search(seed):
        return client.post("/api/search/generated", json={"seed": seed, "filters": {"k": 10}}).status_code

    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(search, range(48)))
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= LIMITS.max_pending and 503 in statuses
    assert client.get("/api/info").status_code == 200


def test_a_server_without_aia_says_so(client):
    assert client.get("/api/info").json()["datasets"] == ["sharp"]
    for response in (client.get("/api/aia/info"), client.post("/api/aia/search/row", json={"row": 0})):
        assert response.status_code == 404 and "no AIA index" in response.json()["detail"]


def test_page_and_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<script" in page.text and 'id="results"' in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/static/../server.py").status_code == 404


# ------------------------------------------------------------------------------------- start-up checks
def test_missing_artefact_stops_start_up_with_its_path(demo_workdir, tmp_path):
    for name in ("gan", "directions", "simsiam", "tfds"):
        (tmp_path / name).symlink_to(demo_workdir / name)
    with pytest.raises(server.ArtefactError, match=r"index.*no index"):
        server.load_artefacts(tmp_path)


def test_index_of_another_encoder_stops_start_up(demo_workdir, tmp_path):
    for name in ("gan", "directions", "simsiam", "tfds"):
        (tmp_path / name).symlink_to(demo_workdir / name)
    shutil.copytree(demo_workdir / "index", tmp_path / "index")
    manifest = tmp_path / "index" / "table" / "table.json"
    content = json.loads(manifest.read_text())
    content["fingerprint"] = "0" * 16
    manifest.write_text(json.dumps(content))
    with pytest.raises(server.ArtefactError, match="index"):
        server.load_artefacts(tmp_path)
