"""End-to-end test in a real headless browser (Debian's chromium driven by Playwright).

Moves a slider, runs a search, applies a filter and uploads a real FITS file; then switches the
dataset to AIA, searches by a table row, filters by mu and uploads real AIA FITS files (one per
channel; see tests/test_app_aia.py), and switches back. Screenshots go to $SOLARJAX_TEST_OUTPUT
(default: pytest's tmp_path). Needs `apt-get install chromium` and
`pip install playwright` (no browser download: the system chromium is used).
"""

import os
import pathlib
import socket
import threading
import time

import pytest

from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, LIMITS, build_aia_artefacts


@pytest.fixture(scope="module")
def base_url(demo_workdir, tmp_path_factory):
    import uvicorn

    from solarjax.app import server

    app = server.create_app(demo_workdir, LIMITS, aia=build_aia_artefacts(tmp_path_factory.mktemp("aia_app")))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not instance.started and time.time() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(base_url):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1500})
        tab.goto(base_url)
        tab.wait_for_function("document.getElementById('status').textContent.startsWith('Ready')", timeout=30_000)
        yield tab
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> pathlib.Path:
    folder = os.environ.get("SOLARJAX_TEST_OUTPUT")
    path = pathlib.Path(folder) / "app_screenshots" if folder else tmp_path_factory.mktemp("app_screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _quantity(page, name):
    return page.eval_on_selector(
        "#query-quantities", f"t => [...t.rows].find(r => r.cells[0].textContent === '{name}').cells[1].textContent"
    )


def test_slider_search_filter_upload(page, shots, real_br_files):
    before_image = page.get_attribute("#query-image", "src")
    before = _quantity(page, "tuf")
    slider = page.locator("#alpha-tuf")
    slider.focus()
    for _ in range(15):  # keyboard only: 15 steps of 0.1
        page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.getElementById('query-image').src !== {before_image!r}", timeout=20_000)
    assert page.text_content("#out-tuf") == "1.50"
    page.wait_for_timeout(1500)  # the last slider position's patch
    assert float(_quantity(page, "tuf")) > float(before)  # "more flux" gives more flux
    assert page.text_content("#query-units").startswith("Quantities in patch units")  # no plate scale
    assert page.is_hidden("#query-physical")
    assert page.text_content("label[for=alpha-tuf]").startswith("total unsigned flux")
    change = page.text_content("#change-tuf")  # the slider shows the change it made: "+NN%"
    assert change.startswith("+") and change.endswith("%") and float(change[1:-1]) > 0
    measured = 100 * (float(_quantity(page, "tuf")) / float(before) - 1)  # the table shows 3 digits
    assert float(change[1:-1]) == pytest.approx(measured, abs=5)
    info = page.evaluate("fetch('/api/info').then(r => r.json())")
    assert page.input_value("#steer-method") == info["steering"]["default"]  # the best family by default
    assert page.text_content("#steer-note").startswith(info["steering"]["default"])  # named with its figures
    assert "paper" in [o for o in page.eval_on_selector("#steer-method", "s => [...s.options].map(o => o.value)")]
    page.screenshot(path=shots / "1_slider.png", full_page=True)

    page.fill("#k", "6")
    page.select_option("#rank", "ssl")  # the SSL order; the default may be the hybrid
    page.click("#search-button")
    page.wait_for_selector("#results li", timeout=30_000)
    assert page.locator("#results li").count() == 6
    similarities = [float(s) for s in page.locator("#results .similarity").all_text_contents()]
    assert similarities == sorted(similarities, reverse=True)
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth === 128)",
        timeout=20_000,
    )
    assert not page.is_hidden("#exports")
    page.screenshot(path=shots / "2_search.png", full_page=True)

    page.select_option("#hemisphere", "south")
    page.click("#search-button")
    page.wait_for_function(
        "document.getElementById('status').textContent === '6 matches, ranked by ssl'", timeout=30_000
    )
    latitudes = [
        float(text.split("lat ")[1].split(" ")[0]) for text in page.locator("#results .meta").all_text_contents()
    ]
    assert len(latitudes) == 6 and all(lat <= 0 for lat in latitudes)
    page.screenshot(path=shots / "3_filter_south.png", full_page=True)

    page.select_option("#hemisphere", "")
    page.set_input_files("#upload-file", str(real_br_files[0]))
    page.click("#upload-button")
    page.wait_for_function(
        "document.getElementById('query-caption').textContent.startsWith('uploaded')", timeout=30_000
    )
    assert real_br_files[0].name in page.text_content("#query-caption")
    assert page.locator("#results li").count() == 6
    assert page.locator("#map image").count() == 6 and page.locator("#map text.query").count() == 1
    assert page.is_visible("#query-physical")  # a SHARP CEA file: CDELT1/2 in degrees give the plate scale
    physical = page.text_content("#query-physical")
    assert "total unsigned flux" in physical and "Mx" in physical and "Mm^2" in physical and "MSH" in physical
    assert "polarity separation" in physical and "Mm" in physical
    assert "Pixel 0.364 x 0.364 Mm on the Sun" in page.text_content("#query-units")  # 0.03 deg CEA pixels
    page.screenshot(path=shots / "4_upload.png", full_page=True)


def test_corrupt_upload_shows_the_reason(page, shots, corrupt_files):
    truncated = max(corrupt_files, key=lambda p: p.stat().st_size)
    page.set_input_files("#upload-file", str(truncated))
    page.click("#upload-button")
    page.wait_for_selector("#status.error", timeout=30_000)
    assert truncated.name in page.text_content("#status")
    page.screenshot(path=shots / "5_corrupt_upload.png", full_page=True)


def test_switch_to_aia_search_filter_upload_and_back(page, shots, aia_fits):
    page.select_option("#dataset", "aia")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('AIA:')", timeout=30_000)
    assert page.is_hidden("#sliders") and page.is_visible("#aia-upload-form") and page.is_visible("#mu-min")
    assert "171 A" in page.text_content("#aia-legend")
    page.fill("#k", "5")
    page.fill("#aia-row", "0")
    page.click("#aia-row-button")
    page.wait_for_function("document.getElementById('query-caption').textContent === 'AIA table row 0'", timeout=30_000)
    page.wait_for_selector("#results li", timeout=30_000)
    assert page.locator("#results li").count() == 5
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth === 128)",
        timeout=20_000,
    )
    assert page.is_hidden("#export-png")
    page.screenshot(path=shots / "6_aia_row.png", full_page=True)

    page.fill("#mu-min", "0.8")
    page.click("#aia-row-button")
    page.wait_for_function(
        "[...document.querySelectorAll('#results .mu')].length > 0 && "
        "[...document.querySelectorAll('#results .mu')].every(m => parseFloat(m.textContent.slice(3)) >= 0.8)",
        timeout=30_000,
    )
    page.fill("#mu-min", "")
    page.set_input_files("#aia-upload-files", [str(aia_fits[w]) for w in (171, 193, 211)])
    page.click("#aia-upload-button")
    page.wait_for_function(
        "document.getElementById('query-caption').textContent.startsWith('uploaded')", timeout=30_000
    )
    assert page.locator("#results li").count() == 5 and page.locator("#map text.query").count() == 1
    assert "2011-02-15T00:00:01" in page.text_content("#query-metadata")
    page.screenshot(path=shots / "7_aia_upload.png", full_page=True)

    page.set_input_files("#aia-upload-files", [str(aia_fits[171])])
    page.click("#aia-upload-button")
    page.wait_for_selector("#status.error", timeout=30_000)
    assert "missing [193, 211]" in page.text_content("#status")

    page.select_option("#dataset", "sharp")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Ready')", timeout=30_000)
    assert page.is_visible("#sliders") and page.is_hidden("#aia-upload-form")
    assert page.get_attribute("#query-image", "src").startswith("data:image/png")
