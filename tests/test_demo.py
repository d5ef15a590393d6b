"""`solarjax demo --quick` end to end (the session fixture `demo_workdir` runs it once)."""
import json
import re

from solarjax.demo import run_demo

STAGES = ("dataset", "gan", "directions", "simsiam", "index", "retrieval", "real", "report")


def test_quick_demo_writes_report_and_metrics(demo_workdir):
    metrics = json.loads((demo_workdir / "metrics.json").read_text())
    assert metrics["size"] == "quick"
    assert set(STAGES[:-1]) <= set(metrics["stage_seconds"])
    assert sum(metrics["dataset"]["splits"].values()) == 1_000
    assert set(metrics["gan"]["ks"]) >= {"tuf", "psep", "r_value"}
    assert all(0.0 <= v <= 1.0 for v in metrics["gan"]["ks"].values())
    correlations = metrics["retrieval"]["heldout"]["correlations"]
    assert {"ssl", "pixel_l2", "physics_euclidean", "physics_mahalanobis", "random"} <= set(correlations)
    assert metrics["real"]["frames"] == 40 and metrics["real"]["harps"] == 16
    page = (demo_workdir / "report.html").read_text()
    figures = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(figures) >= 8  # samples, latent maps, traversals, retrieval figures, all inline
    assert "src=\"http" not in page  # self-contained


def test_rerun_skips_finished_stages(demo_workdir):
    lines = []
    run_demo(demo_workdir, quick=True, log=lines.append)
    skipped = [line for line in lines if line.endswith("skipped")]
    assert len(skipped) == len(STAGES), lines
