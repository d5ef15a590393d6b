"""`solarjax demo --dataset cme` (solarjax.cme_demo): its configs, its CLI dispatch and refusals, its report.

The whole CME demo takes minutes even at the quick size; it is run by hand (see README), not here."""

import json

import pytest

from solarjax import cli, cme_demo, cme_physics
from solarjax.stages import OutdirNotOwnedError
from solarjax.train import simsiam as trainer


def test_trainer_configs_read_cme_patches_with_the_cme_physics_head(tmp_path):
    gan = cme_demo.gan_config_of(tmp_path / "tfds", cme_demo.QUICK)
    assert gan.data.dataset == "cme_patches" and gan.data.data_dir == str(tmp_path / "tfds")
    assert gan.total_steps == cme_demo.QUICK.gan_steps and gan.eval_every == 0
    ssl = cme_demo.simsiam_config_of(tmp_path / "tfds", cme_demo.FULL)
    assert ssl.data.dataset == "cme_patches" and ssl.total_steps == cme_demo.FULL.simsiam_steps
    assert ssl.physics_aux_weight == 1.0 and trainer.target_set_of(ssl) == "cme"
    assert trainer.with_physics_head(ssl).model.physics_head == len(cme_physics.SSL_TARGETS)
    # The stage fingerprint ignores where the data live (a moved demo is not retrained).
    moved = cme_demo.simsiam_config_of(tmp_path / "elsewhere", cme_demo.FULL)
    assert cme_demo._fingerprint_view(moved) == cme_demo._fingerprint_view(ssl)


def test_a_foreign_output_directory_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("a user's file")
    with pytest.raises(OutdirNotOwnedError):
        cme_demo.run_cme_demo(tmp_path, quick=True)
    assert cli.main(["demo", "--dataset", "cme", "--quick", "--outdir", str(tmp_path)]) == 2
    assert "no solarjax run wrote" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "a user's file"
    assert not (tmp_path / "dataset").exists()


def test_the_report_shows_every_stage_table(tmp_path):
    metrics = {
        "size": "quick",
        "stage_seconds": {"gan": 1.0},
        "dataset": {"splits": {"train": 8}},
        "gan": {"ks_cme_quantities": {"width_deg": 0.2}},
        "directions": {"tables": {"monotonicity": "family  width_deg\nlocal  0.950 [0.900, 0.990]"}},
        "simsiam": {"loss": -0.5},
        "index": {"rows": 8, "kind": "exact"},
        "retrieval": {"tables": {"mining": "ssl_knn 0.800 [0.500, 1.000]"}, "search": {"big": 1}},
    }
    (tmp_path / "directions").mkdir()
    cme_demo._stage_report(tmp_path, metrics)
    page = (tmp_path / "report.html").read_text()
    assert "local  0.950 [0.900, 0.990]" in page and "ssl_knn 0.800" in page
    assert json.loads((tmp_path / "metrics.json").read_text())["index"]["rows"] == 8
