"""The load flagging and the side-by-process plumbing of `benchmarks.isolated` (no timing)."""

import json
import math
import os

import pytest

from benchmarks import isolated

CORES = 2  # idle limit 1.0 (0.5 per core)


def _run(round_index, side, value, load=0.2, others=0.1, metric="images_per_s"):
    return {
        "round": round_index,
        "side": side,
        "result": {metric: value},
        "load_before": [load, load, load],
        "load_after": [load, load, load],
        "others_busy_cores": others,
    }


def test_is_loaded_at_half_a_core_per_core():
    assert not isolated.is_loaded(1.0, 1.0, CORES)  # exactly at the limit: idle
    assert isolated.is_loaded(1.01, 0.0, CORES)  # the load average alone
    assert isolated.is_loaded(0.0, 1.01, CORES)  # other processes alone
    assert not isolated.is_loaded(3.9, 3.9, 8)
    assert isolated.is_loaded(float("nan"), 0.0, CORES)  # unknown is not idle
    assert isolated.is_loaded(0.0, float("nan"), CORES)


def test_others_busy_cores_subtracts_the_runs_own_cpu():
    # 2 cores, 10 s: the machine 75% busy = 15 core-seconds, of which 12 are the run's own
    assert isolated.others_busy_cores(750, 1000, 12.0, 10.0, 2) == pytest.approx(0.3)
    assert isolated.others_busy_cores(500, 1000, 12.0, 10.0, 2) == 0.0  # never negative
    assert math.isnan(isolated.others_busy_cores(0, 0, 1.0, 10.0, 2))


def test_ratio_summary_pairs_rounds_and_flags_idle_only_when_every_run_was():
    runs = [
        _run(0, "jax", 30.0),
        _run(0, "torch", 20.0),
        _run(1, "torch", 25.0),
        _run(1, "jax", 25.0),
        _run(2, "jax", 40.0),
        _run(2, "torch", 20.0),
    ]
    summary = isolated.ratio_summary(runs, "jax", "torch", "images_per_s", CORES)
    assert summary["per_round"] == pytest.approx([1.5, 1.0, 2.0])
    assert summary["median"] == pytest.approx(1.5)
    assert summary["flag"] == "idle" and summary["loaded_runs"] == 0
    runs[3] = _run(1, "jax", 25.0, load=1.6)  # one run started at load 0.8 per core
    loaded = isolated.ratio_summary(runs, "jax", "torch", "images_per_s", CORES)
    assert loaded["flag"] == "loaded" and loaded["loaded_runs"] == 1
    assert loaded["median"] == pytest.approx(1.5) and loaded["max_load_1min"] == 1.6
    runs[5] = _run(2, "torch", 20.0, others=1.5)  # other processes busy during a run
    assert isolated.ratio_summary(runs, "jax", "torch", "images_per_s", CORES)["loaded_runs"] == 2


def test_ratio_summary_skips_incomplete_rounds_and_compares_metrics_of_one_side():
    runs = [_run(0, "jax", 30.0), _run(1, "jax", 30.0), _run(1, "torch", 15.0)]
    summary = isolated.ratio_summary(runs, "jax", "torch", "images_per_s", CORES)
    assert summary["per_round"] == pytest.approx([2.0])
    empty = isolated.ratio_summary(runs[:1], "jax", "torch", "images_per_s", CORES)
    assert empty["median"] is None and empty["flag"] == "loaded"  # no ratio is not an idle ratio
    one_side = [
        {
            "round": 0,
            "side": "jax",
            "result": {"new": 6.0, "old": 2.0},
            "load_before": [0.1] * 3,
            "others_busy_cores": 0.0,
        }
    ]
    within = isolated.ratio_summary(one_side, "jax", "jax", "new", CORES, denominator_metric="old")
    assert within["per_round"] == pytest.approx([3.0]) and within["flag"] == "idle"


def test_readme_row_never_presents_a_loaded_ratio_as_idle():
    idle = isolated.ratio_summary([_run(0, "a", 3.0), _run(0, "b", 2.0)], "a", "b", "images_per_s", CORES)
    assert isolated.readme_row("GAN", idle, CORES) == "| GAN | 1.50x | idle (load <= 1.0) |"
    loaded = isolated.ratio_summary(
        [_run(0, "a", 3.0, load=6.1, others=1.8), _run(0, "b", 2.0)], "a", "b", "images_per_s", CORES
    )
    row = isolated.readme_row("GAN", loaded, CORES)
    assert row.startswith("| GAN | (1.50x) | LOADED: load 6.1, other processes 1.8 cores")
    assert "idle" not in row.replace("not an idle figure", "")


def test_side_order_alternates():
    assert isolated.side_order(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert isolated.side_order(["a", "b", "c"], 1) == ["c", "b", "a"]
    assert isolated.side_order(["a", "b"], 2) == ["a", "b"]


def test_wait_for_idle_waits_until_the_load_falls(monkeypatch):
    loads = iter([3.0, 2.0, 0.9, 0.5])
    monkeypatch.setattr(os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    slept = []
    assert isolated.wait_for_idle(CORES, 60.0, sleep=slept.append) == 10.0
    assert slept == [5.0, 5.0]
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    assert isolated.wait_for_idle(CORES, 12.0, sleep=lambda s: None) == 15.0  # gives up


def test_run_rounds_runs_each_side_in_its_own_process(tmp_path, monkeypatch):
    (tmp_path / "fake_side.py").write_text(
        "import json, os, sys\n"
        'side = sys.argv[sys.argv.index("--side") + 1]\n'
        'print("noise before the figures")\n'
        'print(json.dumps({"side": side, "pid": os.getpid(), "scale": sys.argv[-1]}))\n'
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    runs = isolated.run_rounds("fake_side", ["a", "b"], rounds=2, args=["--scale", "7"], settle_s=0)
    assert [(run["round"], run["side"]) for run in runs] == [(0, "a"), (0, "b"), (1, "b"), (1, "a")]
    assert len({run["result"]["pid"] for run in runs} | {os.getpid()}) == 5
    for run in runs:
        assert run["result"]["side"] == run["side"] and run["result"]["scale"] == "7"
        assert len(run["load_before"]) == 3 and len(run["load_after"]) == 3
        assert run["others_busy_cores"] >= 0 and run["wall_seconds"] > 0
    (tmp_path / "broken_side.py").write_text('import sys\nsys.exit("no such side")\n')
    with pytest.raises(RuntimeError, match="no such side"):
        isolated.run_side("broken_side", "a")
    json.dumps(runs)  # the records go into the JSON report as they are


def test_the_harness_report_lists_every_ratio_with_its_flag():
    from benchmarks import run as harness

    idle = isolated.ratio_summary([_run(0, "a", 3.0), _run(0, "b", 2.0)], "a", "b", "images_per_s", CORES)
    loaded = isolated.ratio_summary([_run(0, "a", 3.0, load=4.0), _run(0, "b", 2.0)], "a", "b", "images_per_s", CORES)
    results = {
        "gan.train_step": {"ratio": loaded, "default_over_simple": idle, "batch": 32},
        "physics.quantities": {"speedup_over_reference": {"host_f32": idle}},
    }
    assert harness.ratio_flags(results) == {
        "gan.train_step.ratio": {"median": 1.5, "flag": "loaded"},
        "gan.train_step.default_over_simple": {"median": 1.5, "flag": "idle"},
        "physics.quantities.speedup_over_reference.host_f32": {"median": 1.5, "flag": "idle"},
    }


def test_gan_and_physics_benchmarks_pair_their_sides_by_round(monkeypatch):
    from benchmarks import gan_bench, physics_bench

    gan_runs = [
        _run(r, side, rate)
        for r in range(2)
        for side, rate in (("jax", 40.0 + r), ("torch", 20.0), ("jax_default", 10.0), ("jax_plain", 12.5))
    ]
    monkeypatch.setattr(isolated, "run_rounds", lambda *args, **kwargs: gan_runs)
    gan = gan_bench._cpu_comparison(32, 4, 3, 2, gan_bench.SIDES, settle_s=0)
    assert gan["ratio"]["per_round"] == pytest.approx([2.0, 2.05])
    assert gan["default_over_simple"]["per_round"] == pytest.approx([0.25, 10 / 41])
    assert gan["default_over_plain"]["per_round"] == pytest.approx([0.8, 0.8])
    assert gan["jax_default_images_per_s"] == 10.0 and gan["ratio"]["flag"] == "idle"

    ways = {f"{way}_images_per_s": 1000.0 * (k + 1) for k, way in enumerate(physics_bench.JAX_WAYS)}
    physics_runs = [
        dict(_run(0, "jax", 0.0), result=ways),
        dict(_run(0, "reference", 0.0, load=5.0), result={"reference_images_per_s": 100.0}),
    ]
    monkeypatch.setattr(isolated, "run_rounds", lambda *args, **kwargs: physics_runs)
    figures = physics_bench.quantities_throughput(rounds=1, settle_s=0)
    assert figures["speedup_over_reference"]["device"]["per_round"] == pytest.approx([10.0])
    assert figures["speedup_over_reference"]["host_f64_whole"]["median"] == pytest.approx(50.0)
    assert figures["speedup_over_reference"]["host_f32"]["flag"] == "loaded"  # the reference's run
    assert figures["chunked_over_whole_array"]["f32"]["per_round"] == pytest.approx([2000 / 4000])
    assert figures["chunked_over_whole_array"]["f32"]["flag"] == "idle"
