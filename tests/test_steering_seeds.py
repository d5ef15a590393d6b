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
