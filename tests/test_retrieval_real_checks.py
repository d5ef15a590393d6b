"""Real-data checks: the +-12 h exclusion, same-region precision and header-keyword agreement on
synthetic region sequences (known answers) and on the 40 real frames."""

import datetime

import numpy as np
import pytest

from solarjax.data import preprocess_patch, read_sharp
from solarjax.retrieval import real_checks


def test_exclusion_removes_exactly_the_own_row_and_own_region_within_the_window():
    region = np.array([1, 1, 1, 1, 2, 2, 0, 0, 3])
    hours = np.array([0.0, 6.0, 12.0, 30.0, 0.0, 11.99, 0.0, 1.0, 5.0])
    queries = np.arange(len(region))
    allowed = real_checks.exclusion(queries, region, hours, 12.0)(slice(0, len(queries)), np.arange(len(region)))
    for q in queries:
        expected = {q} | {
            r for r in range(len(region)) if region[r] == region[q] > 0 and abs(hours[r] - hours[q]) < 12.0
        }
        assert set(np.flatnonzero(~allowed[q])) == expected, q
    assert allowed[0, 2] and not allowed[0, 1]  # exactly 12 h away is allowed, 6 h is not
    assert allowed[6, 7]  # rows without a region are never excluded by region
    whole = real_checks.exclusion(queries, region, hours, None)(slice(0, 4), np.arange(len(region)))
    assert not whole[:, :4].any() and whole[:, 4:].all()
    np.testing.assert_array_equal(real_checks.eligible_queries(region, hours, 12.0), [0, 1, 2, 3])


def _region_sequences(num_regions=12, frames=6, cadence_h=6.0, drift=0.05, seed=0):
    """Regions whose feature drifts slowly with time (a synthetic region sequence)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_regions, 8))
    region = np.repeat(np.arange(1, num_regions + 1), frames)
    hours = np.tile(np.arange(frames) * cadence_h, num_regions) + np.repeat(rng.uniform(0, 1000, num_regions), frames)
    step = np.tile(np.arange(frames), num_regions)[:, None]
    features = centres[region - 1] + drift * step * rng.normal(size=(1, 8))
    return region, hours, features


def test_same_region_precision_on_synthetic_sequences_known_answers():
    region, hours, features = _region_sequences()
    times = np.datetime64("2012-03-06T00:00", "s") + (hours * 3600).astype("timedelta64[s]")
    noise = np.random.default_rng(1).normal(size=features.shape)
    result = real_checks.same_region_precision(
        {"identity": real_checks.feature_ranker(features), "noise": real_checks.feature_ranker(noise)},
        region,
        times,
        num_resamples=200,
    )
    assert result["eligible"] == len(region)  # 6 frames 6 h apart: every frame has one >= 12 h away
    assert result["precision_at_1"]["identity"] == 1.0
    # Each region keeps 6 - 3 = 3 allowed frames of its own (itself and its +-6 h neighbours excluded,
    # fewer at the ends) among the allowed rows.
    allowed_own = np.array([4, 3, 3, 3, 3, 4] * 12)
    np.testing.assert_allclose(
        result["precision_at_1"]["random"], np.mean(allowed_own / (len(region) - 1 - (6 - allowed_own - 1)))
    )
    assert result["intervals"]["differences"]["identity - noise"]["low"] > 0.5
    for method, rows in result["top1"].items():  # no returned row is within 12 h of its query's region
        for q, r in zip(result["rows"], rows):
            assert not (region[r] == region[q] and abs(hours[r] - hours[q]) < 12.0), (method, q, r)


def test_keyword_agreement_excludes_the_own_region_and_scores_keywords():
    region, _, features = _region_sequences(drift=0.0)
    keyword = features[:, 0] * 1e22  # a header value carried by the features
    shuffled = np.random.default_rng(2).permutation(len(region))
    report = real_checks.keyword_agreement(
        {
            "features": real_checks.feature_ranker(features[:, :1]),
            "shuffled": real_checks.feature_ranker(features[shuffled]),
        },
        region,
        {"USFLUX": keyword, "MISSING": np.full(len(region), np.nan)},
        num_resamples=200,
    )
    for rows in report["top1"].values():
        assert all(region[r] != region[q] for q, r in enumerate(rows))
    assert report["correlations"]["USFLUX"]["features"]["spearman"] > 0.95
    assert report["intervals"]["USFLUX"]["differences"]["features - shuffled"]["spearman"]["low"] > 0
    assert report["correlations"]["MISSING"]["features"]["pairs"] == 0 and "MISSING" not in report["intervals"]


def test_hybrid_ranker_with_weight_zero_equals_the_ssl_ranker():
    region, hours, features = _region_sequences(seed=4)
    values = np.abs(features[:, :4])
    queries = np.arange(len(region))
    allowed = real_checks.exclusion(queries, region, hours, 12.0)
    ssl = real_checks.feature_ranker(features)(queries, allowed, 5)
    np.testing.assert_array_equal(real_checks.hybrid_ranker(features, values, 0.0)(queries, allowed, 5), ssl)
    physics_first = real_checks.hybrid_ranker(features, values, 1e6)(queries, allowed, 1)[:, 0]
    gap = lambda rows: np.mean(np.abs(values[rows] - values) / values.std(0))  # noqa: E731
    assert gap(physics_first) < gap(ssl[:, 0])


def test_real_frames_same_region_beyond_12_hours(real_br_files):
    patches = [read_sharp(path) for path in real_br_files]
    images = np.stack([preprocess_patch(p).image for p in patches]).astype(np.float32)
    region = np.array([p.meta["harpnum"] for p in patches])
    times = [p.meta["t_rec"] for p in patches]
    assert isinstance(times[0], datetime.datetime)
    result = real_checks.same_region_precision(
        {"pixel_l2": real_checks.feature_ranker(images.reshape(len(images), -1))}, region, times, num_resamples=200
    )
    hours = real_checks.hours_since_epoch(times)
    expected = [
        i
        for i in range(len(region))
        if any(region[j] == region[i] and abs(hours[j] - hours[i]) >= 12 for j in range(len(region)))
    ]
    assert result["rows"] == expected and result["eligible"] == len(expected)
    for method in ("pixel_l2", "random"):
        entry = result["intervals"]["methods"][method]
        assert 0.0 <= entry["low"] <= entry["value"] <= entry["high"] <= 1.0
    assert result["precision_at_1"]["pixel_l2"] > result["precision_at_1"]["random"]
    with pytest.raises(ValueError, match="12"):
        real_checks.same_region_precision({}, region[:2], times[:2])
