"""experiments/steering_seeds.py: the summary over seeds and its argument checks (no GAN is trained here)."""

import pytest

from experiments import steering_seeds


def _run(seed, monotonicity, best):
    row = {
        "monotonicity": {"value": monotonicity, "low": monotonicity - 0.1, "high": 1.0},
        "max_leakage": 0.1 * seed,
        "realism": {"frechet_ratio": 1.0 + seed},
    }
    return {
        "families": {"results": {"local": {"tuf": row}}, "best": best},
        "diagnosis": {
            "quantities": {
                "tuf": {"accuracy": {"z": 0.6, "z_norm": 0.9 + 0.01 * seed, "folded": 0.5, "folded_norm": 0.8}}
            }
        },
    }


def test_summary_gives_mean_and_spread_over_seeds():
    summary = steering_seeds.summarise([_run(0, 0.9, "local"), _run(1, 1.0, "local"), _run(2, 0.95, "paper")])
    tuf = summary["families"]["local"]["tuf"]
    assert tuf["monotonicity"]["mean"] == pytest.approx(0.95)
    assert tuf["monotonicity"]["std"] == pytest.approx(0.0408248, rel=1e-5)
    assert tuf["monotonicity_low"]["values"] == pytest.approx([0.8, 0.9, 0.85])
    assert tuf["frechet_ratio"]["mean"] == pytest.approx(2.0)
    assert summary["diagnosis"]["tuf"]["z_norm"]["mean"] == pytest.approx(0.91)
    assert summary["best"] == {"local": 2, "paper": 1}


def test_missing_dataset_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        steering_seeds.main(["--tfds-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "no sharp_patches dataset" in capsys.readouterr().err


def _full_run(seed, monotonicity, best, success):
    run = _run(seed, monotonicity, best)
    row = run["families"]["results"]["local"]["tuf"]
    row["monotonicity_conditional"] = dict(row["monotonicity"])
    row["undefined_fraction"] = 0.0
    row["leakage"] = {"psep": {"value": 0.05, "low": 0.04, "high": 0.06}}
    run.update(seed=seed, gan_run=f"runs/gan{seed}", fingerprint=f"f{seed}")
    run["targeting"] = {"success_rate": success, "success_interval": [success - 0.05, 1.0], "in_range": 100}
    return run


def test_seed_paths_parse_and_refuse_malformed():
    assert steering_seeds._seed_paths(["23=runs/a", "24=b"], "--gan-run") == {
        23: steering_seeds.pathlib.Path("runs/a"),
        24: steering_seeds.pathlib.Path("b"),
    }
    for bad in ("runs/a", "x=runs/a", "23="):
        with pytest.raises(ValueError, match="--gan-run takes SEED=PATH"):
            steering_seeds._seed_paths([bad], "--gan-run")


def test_gan_steps_parse_and_refuse_non_numbers(tmp_path, capsys):
    assert steering_seeds._seed_steps(["24=1100", "23=550"]) == {24: 1100, 23: 550}
    for bad in ("24=best", "24=", "1100"):
        with pytest.raises(ValueError, match="--gan-step takes SEED="):
            steering_seeds._seed_steps([bad])
    with pytest.raises(SystemExit) as exit_info:
        steering_seeds.main(["--out", str(tmp_path / "out"), "--seeds", "5", "--gan-step", "5=last"])
    assert exit_info.value.code == 2
    assert "--gan-step takes SEED=STEP" in capsys.readouterr().err


def test_gan_run_without_checkpoints_exits_2(tmp_path, capsys):
    (tmp_path / "gan").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        steering_seeds.main(["--out", str(tmp_path / "out"), "--seeds", "5", "--gan-run", f"5={tmp_path / 'gan'}"])
    assert exit_info.value.code == 2
    assert "not a trained GAN run (no checkpoints/), given for seed 5" in capsys.readouterr().err


def test_combine_summarises_seed_files_into_json_and_markdown(tmp_path):
    import json

    paths = []
    for seed, (rho, success) in zip((23, 24, 25), ((0.96, 0.97), (0.98, 0.99), (1.0, 0.95))):
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps(_full_run(seed, rho, "local", success)))
    result = steering_seeds.main(["--out", str(tmp_path / "out"), "--combine", *map(str, paths)])
    tuf = result["summary"]["families"]["local"]["tuf"]
    assert tuf["monotonicity"]["mean"] == pytest.approx(0.98)
    assert tuf["monotonicity"]["std"] == pytest.approx(0.0163299, rel=1e-5)
    assert result["summary"]["targeting_success"]["mean"] == pytest.approx(0.97)
    saved = json.loads((tmp_path / "out" / "steering_seeds.json").read_text())
    assert saved["summary"]["best"] == {"local": 3}
    table = (tmp_path / "out" / "steering_seeds.md").read_text()
    assert "| local | tuf | 0.960 [0.860, 1.000] | 0.960 [0.860, 1.000] | 0.00 | 0.050 [0.040, 0.060] psep |" in table
    assert "| local | tuf | 0.980 +- 0.016 |" in table
    assert "steer_to: 0.970 [0.920, 1.000] of 100 in-range requests within 5%" in table


def test_combine_refuses_unreadable_file(tmp_path, capsys):
    (tmp_path / "seed1.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_info:
        steering_seeds.main(["--out", str(tmp_path / "out"), "--combine", str(tmp_path / "seed1.json")])
    assert exit_info.value.code == 2
    assert "seed1.json: not a readable seed result" in capsys.readouterr().err
