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

from benchmarks import app_load_bench as bench
from solarjax import physics
from solarjax.app import server
from tests.helpers import LIMITS, data_url_pixels, png_pixels

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def client(demo_workdir):
    app = server.create_app(demo_workdir, LIMITS)
    with fastapi_testclient.TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def engine(client) -> server.SearchEngine:
    return client.app.state.engine


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
    pixels = data_url_pixels(body["image"])
    assert pixels.shape[:2] == (128, 128)
    np.testing.assert_allclose(pixels, png_pixels(server.render_png(expected[0])))


def test_flux_slider_raises_flux(client):
    def tuf(alpha, seed):
        return client.post("/api/generate", json={"seed": seed, "sliders": {"tuf": alpha}}).json()["quantities"]["tuf"]

    low = np.mean([tuf(-3.0, seed) for seed in range(4)])
    high = np.mean([tuf(3.0, seed) for seed in range(4)])
    assert high > low


def test_every_steering_family_is_one_switch_away(client, engine):
    info = client.get("/api/info").json()["steering"]
    assert info["default"] == engine.steering_method and "paper" in info["methods"]
    assert info["default"] == (info["evaluation"] or {}).get("best_method", "local")
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
    delta = 1e-3 * directions.direction("psep", ("tuf",))  # the conditional direction, a tiny step along it
    assert abs(np.dot(delta, directions.normal("tuf"))) < 1e-3 * np.linalg.norm(delta)
    assert np.dot(delta, directions.normal("psep")) > 0.5 * np.linalg.norm(delta)
    z0 = engine.steered_latent(2, {}, (), method="paper")[0]
    z1 = engine.steered_latent(2, {"psep": 1e-3}, ("tuf",), method="paper")[0]
    # the app adds it and rescales to the base latent's norm: to first order the step is delta less its radial part
    # (which the held normal can see: 'paper' steering holds tuf only up to that radial share)
    radial = z0 / np.linalg.norm(z0)
    np.testing.assert_allclose(z1 - z0, delta - np.dot(delta, radial) * radial, atol=1e-2 * np.linalg.norm(delta))


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


def _bipole_fits(header_cards: dict) -> bytes:
    """A 128 x 128 Br map (G) of two 20 x 20 pixel blocks of +-500 G, 30 rows and 50 columns apart."""
    from astropy.io import fits

    field = np.zeros((128, 128), np.float32)
    field[40:60, 30:50] = 500.0
    field[70:90, 80:100] = -500.0
    header = fits.Header({"BUNIT": "Mx/cm^2", "CRPIX1": 64.5, "CRPIX2": 64.5, "CRVAL1": 100.0, "CRVAL2": 10.0})
    header.update({key: value for key, value in header_cards.items() if value is not None})
    buffer = io.BytesIO()
    fits.PrimaryHDU(field, header).writeto(buffer)
    return buffer.getvalue()


ANALYTIC_NAME = "hmi.sharp_cea_720s.9999.20120306_142400_TAI.Br.fits"  # HARP and T_REC from the JSOC name
CEA_CARDS = {"CTYPE1": "CRLN-CEA", "CTYPE2": "CRLT-CEA", "CUNIT1": "degree", "CUNIT2": "degree", "CDELT1": 0.03}


HPC_CARDS = {"CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN", "CUNIT1": "arcsec", "CUNIT2": "arcsec", "CDELT1": 0.5}


@pytest.mark.parametrize(
    "cards", [{**CEA_CARDS, "CDELT2": 0.03}, {**HPC_CARDS, "CDELT2": 0.5, "RSUN_OBS": 975.0}], ids=["cea", "hpc"]
)
def test_uploaded_bipole_has_its_analytic_flux_in_mx_and_separation_in_mm(client, cards):
    from solarjax.data import MM_PER_DEGREE, R_SUN_MM

    pixel_mm = R_SUN_MM * 0.5 / 975.0 if "RSUN_OBS" in cards else 0.03 * MM_PER_DEGREE  # R_sun / RSUN_OBS per arcsec
    body = _upload(client, ANALYTIC_NAME, _bipole_fits(cards)).json()
    physical = body["query"]["physical"]
    assert physical["known"] and physical["units"] == "physical"
    np.testing.assert_allclose(physical["pixel_size_mm"], [pixel_mm, pixel_mm], rtol=1e-9)
    values = {(q["name"], q["unit"]): q["value"] for q in physical["quantities"]}
    flux = 2 * 500.0 * 400 * pixel_mm**2 * 1e16  # G x pixels x cm^2 per pixel
    assert values["unsigned_flux", "Mx"] == pytest.approx(flux, rel=1e-5)
    assert values["unsigned_flux_full_res", "Mx"] == pytest.approx(flux, rel=1e-9)
    assert values["net_flux", "Mx"] == pytest.approx(0.0, abs=1e-6 * flux)
    assert values["psep", "Mm"] == pytest.approx(np.hypot(30, 50) * pixel_mm, rel=1e-5)
    assert values["area", "Mm^2"] == pytest.approx(800 * pixel_mm**2, rel=1e-5)
    assert values["area", "MSH"] == pytest.approx(800 * pixel_mm**2 / (2 * np.pi * R_SUN_MM**2 * 1e-6), rel=1e-5)
    assert values["tilt", "deg"] == pytest.approx(np.degrees(np.arctan2(30, 50)), abs=1e-3)
    assert values["tpf", "G"] == pytest.approx(500.0) and values["r_value", "Mx"] == 0.0
    assert body["query"]["quantities"]["tuf"] == pytest.approx(2 * 0.5 * 400 / 128**2, rel=1e-5)  # patch units kept


def test_uploads_without_a_plate_scale_say_patch_units(client):
    no_scale = _upload(client, ANALYTIC_NAME, _bipole_fits({})).json()["query"]["physical"]
    assert no_scale == {**no_scale, "known": False, "units": "patch units", "quantities": []}
    assert "CDELT" in no_scale["plate_scale"]
    unknown = _upload(client, ANALYTIC_NAME, _bipole_fits({**HPC_CARDS, "CDELT2": 0.5})).json()["query"]["physical"]
    assert not unknown["known"] and "RSUN_OBS or DSUN_OBS" in unknown["plate_scale"]
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((64, 64), np.float32) + np.linspace(-800, 800, 64, dtype=np.float32))
    npy = _upload(client, "map.npy", buffer.getvalue()).json()["query"]["physical"]
    assert npy["units"] == "patch units" and not npy["known"]
    generated = client.post("/api/generate", json={"seed": 0}).json()["physical"]
    assert generated["units"] == "patch units" and not generated["known"]


def test_plate_scale_from_header_keywords():
    from solarjax.app import units
    from solarjax.data import MM_PER_DEGREE, R_SUN_MM

    cea = units.plate_scale({"CDELT1": 0.03, "CDELT2": 0.06, "CTYPE1": "CRLN-CEA", "CUNIT1": "degree"})
    assert cea.pixel_size_mm == pytest.approx((0.06 * MM_PER_DEGREE, 0.03 * MM_PER_DEGREE))  # (row, col)
    dsun = 1.5e11
    hpc = units.plate_scale({"CDELT1": 0.6, "CDELT2": 0.6, "CTYPE1": "HPLN-TAN", "DSUN_OBS": dsun})  # arcsec default
    assert hpc.pixel_size_mm == pytest.approx((dsun * np.tan(np.radians(0.6 / 3600)) / 1e6,) * 2, rel=1e-9)
    rsun = units.plate_scale({"CDELT1": 0.6, "CDELT2": 0.6, "CUNIT1": "arcsec", "CUNIT2": "arcsec", "RSUN_OBS": 960.0})
    assert rsun.pixel_size_mm == pytest.approx((R_SUN_MM * 0.6 / 960.0,) * 2)
    km = units.plate_scale({"CDELT1": 720.0, "CDELT2": 360.0, "CUNIT1": "km", "CUNIT2": "km"})
    assert km.pixel_size_mm == pytest.approx((0.36, 0.72))
    scaled = {"CDELT1": 0.03, "CDELT2": 0.03}
    for header in (
        {},
        {"CDELT1": 0.03},
        {**scaled, "CUNIT1": "parsnip"},
        {**scaled, "CUNIT1": "deg", "CUNIT2": "km"},
        {**scaled, "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN"},
        {**scaled, "CTYPE1": "HPLN-TAN", "CTYPE2": "HPLT-TAN"},
    ):
        assert units.plate_scale(header).pixel_size_mm is None, header


def test_real_fits_upload_reports_the_librarys_physical_quantities(client, real_br_files):
    import astropy.units as u

    from solarjax import interop
    from solarjax.data import read_sharp

    path = real_br_files[0]
    physical = _upload(client, path.name, path.read_bytes()).json()["query"]["physical"]
    patch = read_sharp(path)
    expected = interop.physical_quantities(patch)
    values = {(q["name"], q["unit"]): q["value"] for q in physical["quantities"]}
    assert physical["known"] and physical["pixel_size_mm"] == pytest.approx(list(patch.meta["pixel_size_mm"]))
    for name, unit in (("unsigned_flux", "Mx"), ("psep", "Mm"), ("area", "Mm^2"), ("unsigned_flux_full_res", "Mx")):
        assert values[name, unit] == pytest.approx(expected[name].to_value(u.Unit(unit.replace("^", ""))), rel=1e-5)


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
    pixels = png_pixels(client.get("/api/patch/3/image.png").content)
    np.testing.assert_allclose(pixels, png_pixels(server.render_png(engine.images.image(3))))
    assert client.get("/api/patch/-1").status_code == 404
    assert client.get(f"/api/patch/{engine.index.num_rows}/image.png").status_code == 404


def test_exports(client):
    body = client.post("/api/search/generated", json={"seed": 2, "filters": {"k": 4}}).json()
    csv_text = client.get(body["export"]["csv"]).text.splitlines()
    assert csv_text[0].startswith("rank,similarity,distance,row,harpnum")
    assert "record" in csv_text[0].split(",")
    assert [int(line.split(",")[3]) for line in csv_text[1:]] == [hit["row"] for hit in body["results"]]
    sheet = png_pixels(client.get(body["export"]["png"]).content)
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
        # a long and a short local path in turn (6 steps and 1): the second starts from the first's end
        client.post(
            "/api/generate", json={"seed": 14, "sliders": {"tuf": 3.0, "tilt": -0.3}, "hold": [], "method": "local"}
        ),
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


# ------------------------------------------------------------------------------------- latency
def test_search_after_generate_reuses_the_patch_and_answers_as_a_cold_search(client):
    engine = client.app.state.engine
    state = {"seed": 31, "sliders": {"tuf": 1.25, "psep": -0.5}}
    body = {**state, "filters": {"k": 6, "rank": "hybrid"}}
    generated = client.post("/api/generate", json=state)
    timing = bench.server_timing(generated.headers["Server-Timing"])
    assert {"steer", "embed", "quantities", "payload"} <= timing.keys() and "cache_hit" not in timing
    warm = client.post("/api/search/generated", json=body)
    warm_timing = bench.server_timing(warm.headers["Server-Timing"])
    assert "cache_hit" in warm_timing and "steer" not in warm_timing and "search" in warm_timing
    engine.generated_cache = server.LruCache(server.GENERATED_CACHE_SIZE)  # forget it: a cold search
    cold = client.post("/api/search/generated", json=body)
    assert "steer" in bench.server_timing(cold.headers["Server-Timing"])
    warm, cold = warm.json(), cold.json()
    assert warm["query"]["image"] == cold["query"]["image"] == generated.json()["image"]
    assert warm["query"]["quantities"] == cold["query"]["quantities"] == generated.json()["quantities"]
    assert [h["row"] for h in warm["results"]] == [h["row"] for h in cold["results"]]
    np.testing.assert_allclose([h["score"] for h in warm["results"]], [h["score"] for h in cold["results"]])
    image = engine.generate(31, {"tuf": 1.25, "psep": -0.5}, ())
    np.testing.assert_array_equal(engine.generated(31, {"tuf": 1.25, "psep": -0.5}, ()).image, image)


def test_steering_key_keeps_what_steering_depends_on(client):
    key = client.app.state.engine.steering_key
    assert key(1, {"tuf": 1.0, "psep": 0.0}, ()) == key(1, {"tuf": 1.0}, ())  # a zero slider moves nothing
    assert key(1, {"tuf": 1.0, "psep": 2.0}, ("psep",)) == key(1, {"tuf": 1.0}, ("psep",))  # held: ignored
    assert key(1, {"tuf": 1.0, "psep": 2.0}, ()) != key(1, {"psep": 2.0, "tuf": 1.0}, ())  # local paths in order
    assert key(1, {"tuf": 1.0}, ()) != key(2, {"tuf": 1.0}, ())
    assert key(1, {"tuf": 1.0}, (), "paper") != key(1, {"tuf": 1.0}, (), "local")
    assert key(1, {}, ("tuf", "psep")) == key(1, {}, ("psep", "tuf"))


def test_lru_cache_evicts_the_least_recently_used():
    cache = server.LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the oldest
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3 and len(cache) == 2


def test_server_timing_header_round_trip():
    timer = server.StageTimer()
    timer.mark("steer", 250.126)
    timer.mark("search", 4.0)
    timer.mark("search", 1.5)
    assert bench.server_timing(timer.header()) == {"steer": 250.13, "search": 5.5}
    assert bench.server_timing(None) == {} and bench.server_timing("miss, db;desc=x;dur=2") == {"db": 2.0}
    figures = bench._stage_figures([{"steer": 10.0, "search": 2.0}, {"cache_hit": 0.0, "search": 4.0}])
    assert figures["steer"]["fraction"] == 0.5 and figures["search"]["p50_ms"] == 3.0
