"""API tests of the web application's CME mode (/api/cme/..., the page at /).

The CME search is built here, small and real: `cme_patches/synthetic` (40 CMEs, 32 in train) in a temporary
TFDS directory, a freshly initialised 1-channel SimSiam encoder (untrained: the API's behaviour, not the
embedding's quality, is under test), its table of the train split made with `build_table_from_arrays` (the
`cme_patches` columns, measured quantities as the builder stores them) and an exact index. The generator is
analytic (`_toy_cme`): one smooth CME front whose half width grows with z[0], whose CPA grows with z[1] and
whose brightness grows with z[2], so a slider's effect on the measured quantity is known; it compiles in a
moment, unlike a GAN's gradient paths.
"""

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fastapi import testclient as fastapi_testclient

from solarjax import cme_physics
from solarjax.app import server
from solarjax.app.artefacts import CmeArtefacts
from solarjax.gan import TrainedGenerator
from tests.helpers import LIMITS, data_url_pixels, make_encoder, png_pixels

NUM_EXAMPLES = 40
LATENT_DIM = 8


def _toy_cme(params, z):
    """Images [N, 128, 128, 1]: a front at params['radius'] Rsun, half width 30 + 25 tanh(z0) deg around the
    CPA 90 + 60 tanh(z1) deg, brightness 0.5 + 0.3 tanh(z2)."""
    from solarjax.data.cme_synthetic import polar_grid

    radius, angle = (jnp.asarray(g, jnp.float32) for g in polar_grid(128, cme_physics.C2_GEOMETRY.rsun_per_pixel(128)))
    half_width = 30.0 + 25.0 * jnp.tanh(z[:, 0])
    cpa = 90.0 + 60.0 * jnp.tanh(z[:, 1])
    brightness = 0.5 + 0.3 * jnp.tanh(z[:, 2])
    offset = (angle[None] - cpa[:, None, None] + 180.0) % 360.0 - 180.0
    sector = jax.nn.sigmoid((half_width[:, None, None] - jnp.abs(offset)) / 3.0)
    front = jnp.exp(-(((radius[None] - params["radius"]) / 0.8) ** 2))
    return (brightness[:, None, None] * sector * front)[..., None]


def _toy_generator() -> TrainedGenerator:
    params = {"radius": jnp.float32(3.5)}
    return TrainedGenerator(_toy_cme, params, "toy-cme", LATENT_DIM, 0, {}, "")


def _build(folder) -> CmeArtefacts:
    """cme_patches/synthetic in ``folder``/tfds, its train split embedded into a table, an exact index."""
    import tensorflow_datasets as tfds

    from data_builders.cme_patches import build
    from solarjax.retrieval import build_index, build_table_from_arrays, embed_images

    tfds_dir = folder / "tfds"
    build("synthetic", tfds_dir, num_examples=NUM_EXAMPLES)
    source = tfds.data_source("cme_patches/synthetic", data_dir=str(tfds_dir), split="train")
    examples = [source[i] for i in range(len(source))]
    text = lambda value: value.decode() if isinstance(value, bytes) else str(value)  # noqa: E731
    metadata = {
        "dataset": ["cme_patches/synthetic:train"] * len(examples),
        "example_index": np.arange(len(examples)),
        **{name: [text(e[name]) for e in examples] for name in ("id", "event", "detector", "kind", "source")},
        **{name: np.array([e[name] for e in examples], np.float64) for name in cme_physics.QUANTITY_NAMES},
    }
    encoder = make_encoder(channels=1)
    embeddings = embed_images(encoder.embed, np.stack([e["image"] for e in examples]))
    table = build_table_from_arrays(
        folder / "index" / "built" / "table", embeddings, metadata, encoder.fingerprint, dataset_name="cme_patches"
    )
    return CmeArtefacts(_toy_generator(), encoder, build_index(table, kind="exact"), tfds_dir)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> CmeArtefacts:
    return _build(tmp_path_factory.mktemp("cme_app"))


@pytest.fixture(scope="module")
def client(artefacts):
    app = server.create_app(None, LIMITS, cme=artefacts)
    with fastapi_testclient.TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cme(client):
    return client.app.state.cme_engine


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _upload(client, name: str, contents: bytes, filters=None):
    return client.post(
        "/api/cme/search/upload",
        files={"file": (name, contents, "application/octet-stream")},
        data={"filters": json.dumps(filters or {"k": 5})},
    )


def _measured(image: np.ndarray) -> dict:
    return {name: float(np.asarray(v)[0]) for name, v in cme_physics.quantities(image).items()}


# ------------------------------------------------------------------------------------- info, page
def test_info_and_page_describe_the_cme_mode(client, cme):
    info = client.get("/api/cme/info").json()
    assert info["datasets"] == ["cme"] and info["steerable"] == ["width_deg", "cpa_deg", "excess"]
    assert info["num_rows"] == cme.index.num_rows == int(0.8 * NUM_EXAMPLES)
    assert info["ranking"]["modes"] == ["ssl"] and info["ranking"]["default"] == "ssl"
    assert info["detectors"] == ["C2"] and info["t_obs"] == [None, None]  # synthetic CMEs have no time
    page = client.get("/").text
    assert 'id="cme-sliders"' in page and "/static/cme.js" in page
    assert client.get("/api/info").status_code == 404  # no SHARP table in CME mode
    assert client.get("/api/aia/info").status_code == 404


# ------------------------------------------------------------------------------------- search
def test_upload_of_a_table_image_finds_itself_first_with_its_metadata(client, cme):
    image = cme.images.image(7)
    assert image.shape == (128, 128, 1)
    response = _upload(client, "query.npy", _npy(image[..., 0]))
    assert response.status_code == 200, response.text
    body = response.json()
    first = body["results"][0]
    assert first["row"] == 7 and first["distance"] == pytest.approx(0.0, abs=1e-4)
    stored = cme.index.table.rows([7])[0]
    assert first["id"] == stored["id"] and first["detector"] == "C2" and first["t_obs"] is None
    for name in cme_physics.QUANTITY_NAMES:
        assert first["quantities"][name] == pytest.approx(stored[name], rel=1e-5)
        assert body["query"]["quantities"][name] == pytest.approx(_measured(image[None])[name], rel=1e-5, abs=1e-6)
    assert len(body["results"]) == 5 and body["rank"] == "ssl"
    thumbnail = client.get(first["image_url"])
    assert thumbnail.status_code == 200
    np.testing.assert_allclose(png_pixels(thumbnail.content), png_pixels(server.render_cme_png(image)))
    np.testing.assert_allclose(data_url_pixels(body["query"]["image"]), png_pixels(server.render_cme_png(image)))
    csv = client.get(body["export"]["csv"]).text.splitlines()
    assert csv[0].split(",")[-4:] == list(cme_physics.QUANTITY_NAMES) and csv[1].split(",")[3] == "7"


def test_row_search_by_id_agrees_with_the_library_and_never_returns_the_row(client, cme):
    patch_id = cme.index.table.rows([3])[0]["id"]
    body = client.post("/api/cme/search/row", json={"id": patch_id, "filters": {"k": 6}}).json()
    rows = [hit["row"] for hit in body["results"]]
    assert body["query"]["metadata"]["row"] == 3 and 3 not in rows
    assert rows == [hit.row for hit in cme.index.search_rows([3], k=6)[0]]
    assert client.post("/api/cme/search/row", json={"id": "no-such-cme"}).status_code == 404
    assert client.post("/api/cme/search/row", json={"row": cme.index.num_rows}).status_code == 404


def test_a_position_angle_arc_keeps_only_cmes_on_it_and_wraps_through_north(client, cme):
    cpa = cme.index.table.column("cpa_deg")[: cme.index.num_rows]
    on_arc = np.isfinite(cpa) & ((cpa >= 300) | (cpa <= 100))
    body = client.post(
        "/api/cme/search/row", json={"row": 0, "filters": {"k": 50, "pa_start": 300, "pa_end": 100}}
    ).json()
    found = [hit["row"] for hit in body["results"]]
    assert len(found) == int(on_arc.sum() - on_arc[0]) > 0 and all(on_arc[found])
    half = client.post("/api/cme/search/row", json={"row": 0, "filters": {"pa_start": 10}})
    assert half.status_code == 422 and "pa_end" in half.json()["detail"]


# ------------------------------------------------------------------------------------- generation
@pytest.mark.parametrize("name", ["width_deg", "cpa_deg", "excess"])
def test_each_slider_raises_its_measured_quantity(client, name):
    measured = []
    for alpha in (-1.5, 0.0, 1.5):
        response = client.post("/api/cme/generate", json={"seed": 1, "sliders": {name: alpha}})
        assert response.status_code == 200, response.text
        assert "steer" in response.headers["Server-Timing"] or alpha == 0.0
        measured.append(response.json()["quantities"][name])
    assert measured[0] < measured[1] < measured[2], measured
    if name == "width_deg":
        assert measured[2] - measured[1] > 20.0  # degrees: the half width grows by ~20 deg along the path


def test_generated_quantities_are_measured_on_the_generated_image(client, cme):
    sliders = {"width_deg": 1.0, "excess": -0.5}
    body = client.post("/api/cme/generate", json={"seed": 4, "sliders": sliders, "hold": ["cpa_deg"]}).json()
    image = cme.generate(4, sliders, ["cpa_deg"])
    for name, value in _measured(image).items():
        assert body["quantities"][name] == pytest.approx(value, rel=1e-5, abs=1e-6)
    np.testing.assert_allclose(data_url_pixels(body["image"]), png_pixels(server.render_cme_png(image[0])))


def test_held_cpa_stays_while_the_width_grows(client):
    def generate(alpha):
        body = {"seed": 2, "sliders": {"width_deg": alpha}, "hold": ["cpa_deg"]}
        return client.post("/api/cme/generate", json=body).json()["quantities"]

    base, wider = generate(0.0), generate(2.0)
    assert wider["width_deg"] > base["width_deg"] + 20.0
    assert abs(wider["cpa_deg"] - base["cpa_deg"]) < 3.0


def test_search_with_the_generated_image_is_the_search_of_its_embedding(client, cme):
    sliders = {"width_deg": 1.5}
    body = client.post("/api/cme/search/generated", json={"seed": 5, "sliders": sliders, "filters": {"k": 4}}).json()
    embedding = cme.embed(cme.generate(5, sliders, ()))
    assert [hit["row"] for hit in body["results"]] == [hit.row for hit in cme.index.search(embedding, 4)[0]]
    generated = client.post("/api/cme/generate", json={"seed": 5, "sliders": sliders}).json()
    assert body["query"]["quantities"] == generated["quantities"]
    assert all(set(hit["quantities"]) == set(cme_physics.QUANTITY_NAMES) for hit in body["results"])


# ------------------------------------------------------------------------------------- bad input
def test_bad_requests_are_refused_naming_the_problem(client, cme):
    wrong_shape = _upload(client, "query.npy", _npy(np.zeros((64, 64), np.float32)))
    assert wrong_shape.status_code == 422 and "shape [128, 128]" in wrong_shape.json()["detail"]
    assert "[64, 64]" in wrong_shape.json()["detail"] and "query.npy" in wrong_shape.json()["detail"]
    out_of_range = _upload(client, "bright.npy", _npy(np.full((128, 128), 3.0, np.float32)))
    assert out_of_range.status_code == 422 and "[-1, 1]" in out_of_range.json()["detail"]
    fits = _upload(client, "query.fits", b"SIMPLE  =                    T")
    assert fits.status_code == 415 and ".npy" in fits.json()["detail"]
    not_npy = _upload(client, "query.npy", b"not an array")
    assert not_npy.status_code == 422 and "not an NPY file" in not_npy.json()["detail"]
    slider = client.post("/api/cme/generate", json={"sliders": {"width_deg": 9.0}})
    assert slider.status_code == 422 and "width_deg" in slider.json()["detail"]
    unknown = client.post("/api/cme/generate", json={"sliders": {"tuf": 1.0}})
    assert unknown.status_code == 422
    rank = client.post("/api/cme/search/row", json={"row": 0, "filters": {"rank": "hybrid"}})
    assert rank.status_code == 422 and "ranking.json" in rank.json()["detail"]


def test_the_mode_refuses_a_workdir_whose_index_is_not_of_cme_patches(tmp_path, artefacts):
    from solarjax.retrieval import build_index, build_table_from_arrays

    workdir = tmp_path / "not_cme"
    for name in ("gan", "simsiam", "tfds"):
        (workdir / name).mkdir(parents=True)
    (workdir / "metrics.json").write_text(json.dumps({"dataset_family": "cme_patches"}))
    embeddings = artefacts.index.table.embeddings(np.arange(4))
    table = build_table_from_arrays(
        workdir / "index" / "built" / "table",
        embeddings,
        {"id": ["a", "b", "c", "d"]},
        artefacts.encoder.fingerprint,
        dataset_name="aia_patches",
    )
    build_index(table, kind="exact").save(workdir / "index" / "built" / "index")
    assert server.is_cme_workdir(workdir)
    with pytest.raises(server.ArtefactError, match="'aia_patches', not of 'cme_patches'"):
        server.create_app(workdir, LIMITS)
    (workdir / "gan").rmdir()
    with pytest.raises(server.ArtefactError, match="no CME GAN run"):
        server.load_cme_artefacts(workdir)


# ------------------------------------------------------------------------------------- ranking
def test_the_demo_ranking_ranks_by_the_measured_quantities(artefacts):
    import dataclasses

    from solarjax.retrieval import ranking as ranking_lib

    ranking = ranking_lib.Ranking(rank="physics", quantities=("width_deg", "excess", "front_height_rsun"))
    app = server.create_app(None, LIMITS, cme=dataclasses.replace(artefacts, ranking=ranking))
    with fastapi_testclient.TestClient(app) as client:
        info = client.get("/api/cme/info").json()
        assert info["ranking"]["modes"] == ["ssl", "hybrid", "physics"] and info["ranking"]["default"] == "physics"
        body = client.post("/api/cme/search/row", json={"row": 2, "filters": {"k": 3}}).json()
    assert body["rank"] == "physics"
    table = artefacts.index.table
    values = {name: np.asarray(table.column(name)[[2]], np.float64) for name in ranking.quantities}
    context = app.state.served.cme.row_query(2)[2]
    expected = ranking_lib.search(artefacts.index, table.embeddings([2]), values, 3, ranking=ranking, context=context)[
        0
    ]
    assert [hit["row"] for hit in body["results"]] == [hit.row for hit in expected]


# ------------------------------------------------------------------------------------- page, in a browser
def test_page_generates_steers_searches_and_reports_a_bad_upload(client, cme, tmp_path):
    """The CME page in headless chromium: steer the width slider by keyboard, search with the generated CME,
    and upload a wrong-shaped .npy (its error shown in the status line)."""
    import os
    import socket
    import threading
    import time

    import uvicorn

    from tests.helpers import CHROMIUM, CHROMIUM_FLAGS

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    bad = tmp_path / "small.npy"
    np.save(bad, np.zeros((64, 64), np.float32))
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(f"http://127.0.0.1:{port}/")
            ready = f"{cme.index.num_rows} real CMEs indexed"
            page.wait_for_function(f"document.getElementById('status').textContent.startsWith({ready!r})")
            page.wait_for_function("document.getElementById('query-image').src.startsWith('data:image/png')")
            before = page.get_attribute("#query-image", "src")
            page.locator("#alpha-width_deg").focus()
            for _ in range(6):  # keyboard only: 6 steps of 0.25
                page.keyboard.press("ArrowRight")
            page.wait_for_function(f"document.getElementById('query-image').src !== {before!r}", timeout=20_000)
            assert page.text_content("#out-width_deg") == "1.50"
            page.click("#search-button")
            page.wait_for_function("document.querySelectorAll('#results li').length === 8", timeout=20_000)
            assert page.text_content("#status").startswith("8 matches (ssl ranking)")
            page.set_input_files("#upload-file", str(bad))
            page.click("#upload-button")
            page.wait_for_function("document.getElementById('status').className === 'error'", timeout=20_000)
            assert "shape [128, 128]" in page.text_content("#status")
            browser.close()
    finally:
        instance.should_exit = True
        thread.join(10)
