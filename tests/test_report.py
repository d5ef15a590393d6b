"""The demo report (solarjax/report.py): headline figures picked by name, verdicts from paired intervals,
missing stages read "not run", unknown metrics folded, figures captioned. The browser check of the page
is in tests/test_report_browser.py."""

import base64
import json
import re

import pytest

from solarjax import report

PNG = base64.b64decode(  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _interval(value, low, high):
    return {"value": value, "low": low, "high": high, "valid_resamples": 1000}


def _retrieval_block(ssl, hybrid, pixel, physics, differences):
    methods = {"ssl": ssl, "hybrid": hybrid, "pixel_l2": pixel, "physics_euclidean": physics}
    return {
        "n": 50,
        "methods": {m: {"pearson": v, "spearman": v} for m, v in methods.items()},
        "differences": {k: {"pearson": v, "spearman": v} for k, v in differences.items()},
    }


def _metrics():
    tuf = _retrieval_block(
        _interval(0.81, 0.70, 0.88),
        _interval(0.96, 0.94, 0.98),
        _interval(0.90, 0.85, 0.94),
        _interval(0.93, 0.90, 0.95),
        {
            "ssl - physics_euclidean": _interval(-0.12, -0.20, -0.05),
            "physics_euclidean - hybrid": _interval(-0.03, -0.05, -0.01),
        },
    )
    return {
        "size": "quick",
        "stage_seconds": {"gan": 12.0, "retrieval": 3.5},
        "gan": {
            "realism": {"mean KS of the physics quantities": {"value": 0.2, "target": "0-0.15", "met": False}},
            "ks": {"tuf": 0.1},
            "brand_new_metric": {"deep": {"deeper": 42.5}},
        },
        "retrieval": {
            "generated": {"intervals": {"tuf": tuf}},
            "tables": {"generated: top-1 Pearson": "method TUF\nssl 0.81 [0.70, 0.88]"},
        },
        "cme": {"cpa_spearman": 0.83},  # a stage this module has never heard of
    }


def _row(rows, start):
    return next(r for r in rows if r.figure.startswith(start))


def test_headline_puts_the_paper_beside_ours_and_the_best_baseline_with_paired_verdicts():
    rows = report.headline_rows(_metrics())
    pearson = _row(rows, "Generated query vs top-1 real match: TUF Pearson")
    assert pearson.paper == "~0.78" and pearson.figure.endswith("(n = 50)")
    assert [f.text() for f in pearson.ours] == ["ssl: 0.81 [0.70, 0.88]", "hybrid: 0.96 [0.94, 0.98]"]
    assert pearson.baseline.method == "physics_euclidean" and pearson.baseline.value == 0.93  # best of the others
    # ssl - physics directly; hybrid from "physics_euclidean - hybrid" with its sign and interval flipped
    assert pearson.verdict == (
        "ssl loses vs physics_euclidean: -0.12 [-0.20, -0.05]; hybrid wins vs physics_euclidean: +0.03 [+0.01, +0.05]"
    )
    assert _row(rows, "Generated query vs top-1 real match: TUF Spearman").paper == "~0.79"
    gan = _row(rows, "GAN: mean KS")
    assert gan.ours[0].value == 0.2 and gan.verdict == "target 0-0.15"


def test_missing_stages_and_keys_read_not_run():
    rows = report.headline_rows(_metrics())
    assert not _row(rows, "Real SHARP: same region").ran
    assert not _row(rows, "Steering: monotonicity").ran
    assert not _row(rows, "Held-out synthetic query vs top-1 match: TUF").ran
    assert all(not r.ran for r in report.headline_rows({}))  # nothing at all: every row still renders
    page = report.render("/nonexistent", {})
    assert page.count(f"class='notrun'>{report.NOT_RUN}<") == 2 * len(report.headline_rows({}))


def test_undefined_figures_say_so_and_never_win():
    nan = float("nan")
    block = _retrieval_block(
        _interval(nan, nan, nan),
        _interval(0.5, 0.4, 0.6),
        _interval(nan, nan, nan),
        _interval(0.2, 0.1, 0.3),
        {"ssl - physics_euclidean": _interval(nan, nan, nan)},
    )
    row = report.headline_rows({"retrieval": {"generated": {"intervals": {"tuf": block}}}})[0]
    assert row.ours[0].text() == "ssl: undefined"
    assert row.baseline.method == "physics_euclidean"  # the NaN pixel figure is not "best"
    assert row.verdict == ""  # no defined paired difference: no claim


def test_page_order_headline_then_figures_then_folded_raw_numbers(tmp_path):
    for relative in (
        "gan/realism_grid.png",
        "gan/samples/step_0000020.png",
        "retrieval/heldout/query_vs_match.png",
        "cme/mystery.png",
    ):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(PNG)
    path = report.write(tmp_path, _metrics(), tmp_path / "out.html")
    page = path.read_text()
    headline, figures, raw = page.index("id='headline'"), page.index("<h2>Figures"), page.index("<h2>Raw numbers")
    assert headline < figures < raw
    assert page.index("<img", figures) < raw and "<img" not in page[:figures]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert len(captions) == 4
    assert captions[0].startswith("Training patches (left) beside generated ones (right)")  # reading order
    assert "step 20" in page and "cme/mystery.png" in page
    # every stage's raw numbers, known or not, in a closed <details>
    for stage in ("gan", "retrieval", "cme"):
        block = re.search(rf"<details class='raw' data-stage='{stage}'>(.*?)</details>", page, re.S)
        assert block is not None, stage
    assert "brand_new_metric" in page and "42.5" in page and "cpa_spearman" in page and "0.83" in page
    assert "ssl 0.81 [0.70, 0.88]" in page  # the stage's own tables, folded
    assert " open" not in page.split("<h2>Raw numbers")[1].split("<h2>")[0].split(">")[0]


def test_captions_name_what_to_see():
    assert "TUF should grow with alpha" in report.caption("directions/evaluation/traversal_tuf.png")
    assert "held ones stay near 0" in report.caption("directions/evaluation/traversal_r_value_conditional.png")
    assert "R" in report.caption("directions/evaluation/latent_map_r_value.png")
    assert report.caption("gan/samples/step_0000060.png").startswith("Generator samples at step 60")
    assert report.caption("other/x.png") == "Figure other/x.png."


def test_collect_metrics_reads_finished_stages_when_the_demo_stopped_early(tmp_path):
    for stage, result in (("gan", {"steps": 5}), ("directions", {"best_method": "local"})):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "stage.json").write_text(json.dumps({"name": stage, "seconds": 1.25, "result": result}))
    (tmp_path / "index").mkdir()  # started, never finished: no stage.json
    metrics = report.collect_metrics(tmp_path)
    assert metrics["gan"] == {"steps": 5} and metrics["directions"]["best_method"] == "local"
    assert "index" not in metrics and metrics["stage_seconds"] == {"gan": 1.2, "directions": 1.2}
    (tmp_path / "metrics.json").write_text(json.dumps({"size": "quick"}))
    assert report.collect_metrics(tmp_path) == {"size": "quick"}


@pytest.mark.parametrize("value, expected", [(0.123456, "0.1235"), (float("nan"), "nan"), ([1] * 20, "[20 values]")])
def test_raw_values_are_rounded_and_summarised(value, expected):
    assert report.value_html(value) == expected
