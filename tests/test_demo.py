"""`solarjax demo --quick` end to end (the session fixture `demo_workdir` runs it once)."""

import json
import re

from solarjax.demo import run_demo
from tests.helpers import demo_run_lock

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
    steering = metrics["directions"]
    assert steering["best_method"] in ("paper", "piecewise", "local")
    assert {
        f"{m}: {q}" for m in ("paper", "piecewise", "local") for q in ("tuf", "psep", "r_value", "tilt", "area")
    } == set(steering["families"])  # three families side by side
    assert set(steering["diagnosis"]["tuf"]) >= {"svm_accuracy_z", "svm_accuracy_z_norm", "structure"}
    page = (demo_workdir / "report.html").read_text()
    assert "monotonicity_held" in page and "svm_accuracy_folded_norm" in page
    figures = re.findall(r'<img src="data:image/png;base64,', page)
    assert len(figures) >= 8  # samples, latent maps, traversals, retrieval figures, all inline
    assert 'src="http' not in page  # self-contained


def test_rerun_skips_finished_stages(demo_workdir):
    lines = []
    with demo_run_lock(demo_workdir):  # not while another worker's fixture runs the program there
        run_demo(demo_workdir, quick=True, log=lines.append)
    skipped = [line for line in lines if line.endswith("skipped")]
    assert len(skipped) == len(STAGES), lines


def test_trainer_stage_fingerprints_follow_the_experiment_configs_not_the_output_folder(tmp_path):
    from solarjax import demo
    from solarjax.stages import fingerprint

    for make_config in (demo._gan_config, demo._simsiam_config):
        here, moved = make_config(tmp_path / "a", demo.QUICK), make_config(tmp_path / "b", demo.QUICK)
        assert fingerprint(demo._trainer_fingerprint_view(here)) == fingerprint(demo._trainer_fingerprint_view(moved))
        moved.seed = here.seed + 1
        assert fingerprint(demo._trainer_fingerprint_view(here)) != fingerprint(demo._trainer_fingerprint_view(moved))
