"""Paired comparison of encoder variants over seeds (experiments/ssl_physics_aux.py): known answers."""

import numpy as np
import pytest

from experiments import ssl_physics_aux
from solarjax.retrieval import bootstrap


def _runs(seed: int):
    """A table whose row i has value i; 'good' runs match close to the query, 'bad' runs far."""
    rng = np.random.default_rng(seed)
    table = {"tuf": np.arange(400.0), "psep": np.arange(400.0)[::-1].copy()}
    truth_rows = rng.integers(0, 400, size=200)
    queries = {"tuf": table["tuf"][truth_rows], "psep": table["psep"][truth_rows]}
    top1 = {}
    for s in (1, 2):
        top1["plain", s] = np.clip(truth_rows + rng.integers(-150, 150, size=200), 0, 399)
        top1["aux1", s] = np.clip(truth_rows + rng.integers(-10, 10, size=200), 0, 399)
    return queries, table, top1


def test_better_variant_wins_per_seed_and_on_the_seed_mean():
    queries, table, top1 = _runs(0)
    report = ssl_physics_aux.variant_comparison(queries, table, top1, num_resamples=300)
    for name in ("tuf", "psep"):
        entry = report[name]
        assert entry["n"] == 200
        assert set(entry["differences"]) == {
            "aux1_s1 - plain_s1",
            "aux1_s2 - plain_s2",
            "mean over seeds: aux1 - plain",
        }
        for key, stats in entry["differences"].items():
            assert stats["pearson"]["low"] > 0, key
        mean = entry["differences"]["mean over seeds: aux1 - plain"]["pearson"]["value"]
        per_seed = [entry["differences"][f"aux1_s{s} - plain_s{s}"]["pearson"]["value"] for s in (1, 2)]
        assert mean == pytest.approx(np.mean(per_seed))
        aux = entry["runs"]["aux1_s1"]["pearson"]["value"]
        rows = top1["aux1", 1]
        assert aux == pytest.approx(float(bootstrap.pearson_rows(queries[name], table[name][rows])))
    text = ssl_physics_aux.format_comparison(report)
    assert "mean over seeds: aux1 - plain" in text and "TUF (n=200)" in text


def test_undefined_values_and_missing_matches_drop_the_query_for_every_run():
    queries, table, top1 = _runs(1)
    queries = {k: v.copy() for k, v in queries.items()}
    queries["tuf"][:5] = np.nan
    top1["plain", 2] = top1["plain", 2].copy()
    top1["plain", 2][10:13] = -1
    report = ssl_physics_aux.variant_comparison(queries, table, top1, num_resamples=50)
    assert report["tuf"]["n"] == 200 - 5 - 3
    assert report["psep"]["n"] == 200 - 3


def test_identical_runs_differ_by_zero():
    queries, table, top1 = _runs(2)
    top1["aux1", 1] = top1["plain", 1]
    report = ssl_physics_aux.variant_comparison(queries, table, top1, num_resamples=100)
    same = report["tuf"]["differences"]["aux1_s1 - plain_s1"]["spearman"]
    assert same["value"] == 0 and same["low"] == 0 and same["high"] == 0


def test_results_of_separate_evaluations_combine_through_json(capsys):
    import json

    from solarjax.jsonable import jsonable

    queries, table, top1 = _runs(3)
    queries = {k: v.copy() for k, v in queries.items()}
    queries["psep"][0] = np.nan  # NaN survives the JSON round trip (as null)
    results = []
    for s in (1, 2):  # one evaluate output per seed
        variants = {f"{v}_s{s}": {"test": {"top1": top1[v, s].tolist()}} for v in ("aux1", "plain")}
        result = {"queries": {"test": queries}, "database": table, "variants": variants}
        results.append(json.loads(json.dumps(jsonable(result))))
    combined = ssl_physics_aux.compare_results(results)["test"]
    direct = ssl_physics_aux.variant_comparison(queries, table, top1)
    assert list(combined["tuf"]["runs"])[:2] == ["plain_s1", "plain_s2"]  # the reference variant first
    for name in ("tuf", "psep"):
        assert combined[name]["n"] == direct[name]["n"]
        assert combined[name]["differences"] == direct[name]["differences"]
    assert "=== test queries" in capsys.readouterr().out
    results[1]["queries"]["test"]["tuf"][3] += 1.0
    with pytest.raises(ValueError, match="queries differ"):
        ssl_physics_aux.compare_results(results)


def test_real_frame_runs_compared_on_the_same_frames():
    from experiments import retrieval_real

    region = np.repeat(np.arange(1, 11), 4)  # 10 regions x 4 frames
    usflux = np.linspace(1.0, 40.0, 40)
    eligible = list(range(40))

    def report(same_rows, keyword_rows):
        return {
            "regions": region.tolist(),
            "keywords": {"USFLUX": usflux.tolist()},
            "same_region_precision": {"rows": eligible, "top1": {"ssl": same_rows, "hybrid": same_rows}},
            "real_to_real": {"top1": {"ssl": keyword_rows, "hybrid": keyword_rows}},
        }

    own_region = [(q // 4) * 4 + (q + 2) % 4 for q in eligible]  # always a frame of the query's region
    other_region = [(q + 4) % 40 for q in eligible]  # always the next region: flux +4
    reversed_flux = [39 - q for q in eligible]
    reports = {"good": report(own_region, other_region), "bad": report(other_region, reversed_flux)}
    comparison = retrieval_real.compare_runs(reports, num_resamples=200)
    same = comparison["same_region"]
    assert same["methods"]["good"]["value"] == 1.0 and same["methods"]["bad"]["value"] == 0.0
    assert same["differences"]["good - bad"]["low"] == 1.0
    agreement = comparison["keyword_agreement"]
    assert agreement["n"] == 40
    assert agreement["methods"]["bad"]["spearman"]["value"] == pytest.approx(-1.0)
    assert agreement["differences"]["good - bad"]["spearman"]["low"] > 0.5
    assert "good - bad" in retrieval_real.format_comparison(comparison)
    reports["bad"]["same_region_precision"]["rows"] = eligible[:-1]
    with pytest.raises(ValueError, match="other frames"):
        retrieval_real.compare_runs(reports)


def test_compare_command_names_a_missing_result_file(tmp_path, capsys):
    missing = tmp_path / "absent.json"
    with pytest.raises(SystemExit) as exit_info:
        ssl_physics_aux.main(["compare", str(missing)])
    assert exit_info.value.code == 2 and str(missing) in capsys.readouterr().err
