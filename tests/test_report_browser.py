"""The quick demo's report rendered by this code and read in headless Chromium (Playwright, the system
chromium as in tests/test_app_browser.py): headline table first with the paper's figures, every figure
captioned and loaded, raw numbers folded until opened."""

import os

import pytest

from solarjax import report
from tests.helpers import CHROMIUM, CHROMIUM_FLAGS


@pytest.fixture(scope="module")
def report_page(demo_workdir, tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"chromium not found at {CHROMIUM}: apt-get install -y chromium")
    from playwright import sync_api

    path = report.write(
        demo_workdir, report.collect_metrics(demo_workdir), tmp_path_factory.mktemp("report") / "report.html"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1300, "height": 1000})
        tab.goto(path.as_uri())
        tab.wait_for_function("[...document.images].every(i => i.complete)", timeout=30_000)
        yield tab
        browser.close()


def test_headline_table_comes_first_with_the_papers_figures(report_page):
    rows = report_page.eval_on_selector(
        "#headline", "t => [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim()))"
    )
    assert rows[0] == [
        "Figure",
        "Paper",
        "Ours (95% interval)",
        "Best baseline (95% interval)",
        "Paired difference (95%)",
    ]
    assert rows[1][0].startswith("Generated query vs top-1 real match: TUF Pearson") and rows[1][1] == "~0.78"
    assert rows[2][0].startswith("Generated query vs top-1 real match: TUF Spearman") and rows[2][1] == "~0.79"
    held_out = next(r for r in rows if r[0].startswith("Held-out synthetic query vs top-1 match: TUF"))
    assert held_out[2].startswith("ssl: ") and "[" in held_out[2] and "hybrid: " in held_out[2]
    assert held_out[3] != report.NOT_RUN and "[" in held_out[3]
    headline_top = report_page.eval_on_selector("#headline", "t => t.getBoundingClientRect().top")
    first_figure_top = report_page.eval_on_selector("figure", "f => f.getBoundingClientRect().top")
    assert headline_top < first_figure_top


def test_every_figure_is_loaded_and_has_a_caption_saying_what_to_see(report_page):
    figures = report_page.eval_on_selector_all(
        "figure", "fs => fs.map(f => [f.querySelector('img').naturalWidth, f.querySelector('figcaption').innerText])"
    )
    assert len(figures) >= 8
    assert all(width > 100 for width, _ in figures)
    captions = [text for _, text in figures]
    assert not [c for c in captions if c.startswith("Figure ")]  # every figure of the demo has a real caption
    assert any(c.startswith("Training patches (left) beside generated ones (right)") for c in captions)
    assert any("should grow with alpha" in c for c in captions)
    assert any("points on the diagonal" in c for c in captions)


def test_raw_numbers_are_folded_until_opened(report_page):
    stages = report_page.eval_on_selector_all("details.raw", "ds => ds.map(d => [d.dataset.stage, d.open])")
    assert {"gan", "directions", "retrieval", "real"} <= {s for s, _ in stages}
    assert not any(is_open for _, is_open in stages)
    table = report_page.locator("details.raw[data-stage='directions'] table").first
    assert not table.is_visible()
    report_page.click("details.raw[data-stage='directions'] summary")
    assert table.is_visible()
    assert "monotonicity_held" in report_page.inner_text("details.raw[data-stage='directions']")
