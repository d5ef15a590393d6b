"""The per-mode search CPU-time benchmark (benchmarks/search_cpu_bench.py) on the demo's index."""

from benchmarks import search_cpu_bench


def test_every_mode_is_timed_on_the_demo_index(demo_workdir):
    result = search_cpu_bench.run(demo_workdir / "index", num_queries=5)
    assert result["rows"] > 0 and result["queries"] == 5
    assert set(result["modes"]) == set(search_cpu_bench.MODES)
    for figures in result["modes"].values():
        assert 0 <= figures["cpu_ms_p50"] <= figures["cpu_ms_p99"]
        assert 0 < figures["wall_ms_p50"] <= figures["wall_ms_p99"]
    assert len(result["load_per_core_before_after"]) == 2
