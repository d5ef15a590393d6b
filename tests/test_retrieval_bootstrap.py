"""Paired bootstrap intervals: known answers on synthetic data."""

import numpy as np
import pytest
import scipy.stats

from solarjax.retrieval import bootstrap


def test_row_correlations_equal_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 5, 40))
    y[:, :5] = 1.0  # ties
    for row in range(5):
        assert bootstrap.pearson_rows(x, y)[row] == pytest.approx(scipy.stats.pearsonr(x[row], y[row]).statistic)
        assert bootstrap.spearman_rows(x, y)[row] == pytest.approx(scipy.stats.spearmanr(x[row], y[row]).statistic)
    assert np.isnan(bootstrap.pearson_rows(np.ones(5), np.arange(5.0)))


def test_interval_covers_the_true_correlation_at_about_95_percent():
    rho = 0.6
    covered = 0
    trials = 60
    for trial in range(trials):
        rng = np.random.default_rng(100 + trial)
        x = rng.normal(size=200)
        y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=200)
        report = bootstrap.correlation_intervals(x, {"m": y}, bootstrap.resample_indices(200, 400, seed=trial))
        entry = report["methods"]["m"]["pearson"]
        assert entry["low"] < entry["value"] < entry["high"]
        covered += entry["low"] <= rho <= entry["high"]
    assert covered >= 0.85 * trials  # nominal 95%; binomial spread over 60 trials


def test_paired_difference_detects_a_better_method_and_not_an_equal_one():
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    good = x + 0.3 * rng.normal(size=300)
    worse = x + 1.0 * rng.normal(size=300)
    twin = good + 1e-9 * rng.normal(size=300)
    report = bootstrap.correlation_intervals(
        x, {"good": good, "worse": worse, "twin": twin}, bootstrap.resample_indices(300, 500, seed=1)
    )
    assert report["differences"]["good - worse"]["pearson"]["low"] > 0
    same = report["differences"]["good - twin"]["spearman"]
    assert same["low"] <= 0 <= same["high"] and abs(same["value"]) < 1e-3
    assert set(report["differences"]) == {"good - worse", "good - twin", "worse - twin"}


def test_precision_intervals_known_answers():
    hits = {"all": np.ones(50, bool), "half": np.arange(50) % 2 == 0, "expected": np.full(50, 0.25)}
    report = bootstrap.precision_intervals(hits, bootstrap.resample_indices(50, 500, seed=0))
    assert report["n"] == 50
    assert report["methods"]["all"] == {"value": 1.0, "low": 1.0, "high": 1.0, "valid_resamples": 500}
    half = report["methods"]["half"]
    assert half["value"] == 0.5 and 0.3 < half["low"] < 0.45 and 0.55 < half["high"] < 0.7
    assert report["methods"]["expected"]["low"] == pytest.approx(0.25)
    assert report["differences"]["all - half"]["low"] > 0.25
    with pytest.raises(ValueError, match="different numbers"):
        bootstrap.precision_intervals({"a": np.ones(3), "b": np.ones(4)}, bootstrap.resample_indices(3, 10))
    assert bootstrap.format_interval(half).startswith("0.50 [")
    assert bootstrap.format_interval({"value": float("nan"), "low": float("nan"), "high": float("nan")}) == "undefined"
