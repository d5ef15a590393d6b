"""Rare-case mining scores and their recall, on known answers."""

import numpy as np
import pytest

from solarjax import cme_mining


def test_knn_rarity_known_answers():
    points = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    np.testing.assert_allclose(cme_mining.knn_rarity(points, k=1), [1, 1, 1, 1, 7])
    np.testing.assert_allclose(cme_mining.knn_rarity(points, k=2), [2, 1, 1, 2, 8])
    # Blocks do not change the answer.
    cloud = np.random.default_rng(0).normal(size=(50, 3))
    np.testing.assert_allclose(cme_mining.knn_rarity(cloud, k=3, block=7), cme_mining.knn_rarity(cloud, k=3))
    with pytest.raises(ValueError, match="k must be"):
        cme_mining.knn_rarity(points, k=5)


def test_property_rarity_ranks_an_outlier_first():
    rng = np.random.default_rng(1)
    n = 200
    quantities = {
        "cpa_deg": rng.normal(90, 20, n) % 360,
        "width_deg": rng.lognormal(np.log(50), 0.3, n),
        "front_height_rsun": rng.uniform(3, 5.8, n),
        "excess": rng.lognormal(3, 0.3, n),
    }
    quantities["excess"][17] = 1e6
    quantities["width_deg"][17] = 300.0
    quantities["cpa_deg"][3] = np.nan  # undefined: the median, not an outlier
    score = cme_mining.property_rarity(quantities)
    assert int(np.argmax(score)) == 17 and np.isfinite(score).all()


def test_recall_at_top_counts_rare_rows_in_the_top():
    scores = np.arange(100, dtype=float)  # row 99 ranks first
    rare = np.zeros(100, bool)
    rare[[99, 97, 10, 3]] = True
    result = cme_mining.recall_at_top(scores, rare, fraction=0.05, resamples=300)
    assert result["value"] == pytest.approx(0.5) and result["top"] == 5 and result["rare"] == 4
    assert result["low"] <= 0.5 <= result["high"]
    perfect = cme_mining.recall_at_top(rare.astype(float), rare, resamples=100)
    assert perfect["value"] == 1.0
    np.testing.assert_array_equal(cme_mining.top_rows(scores, 0.03), [99, 98, 97])
    with pytest.raises(ValueError, match="no rare"):
        cme_mining.recall_at_top(scores, np.zeros(100, bool))


def test_top_quartile_share_known_answer():
    width = np.arange(8, dtype=float)  # top quartile: rows 6, 7
    excess = np.array([0, 0, 0, 0, 0, 0, 9, 0], float)  # 75th percentile 0: all rows pass
    neighbours = np.array([[6, 7], [0, 6]])
    shares = cme_mining.top_quartile_share(neighbours, {"w": width, "e": excess}, resamples=50)
    assert shares["w"]["value"] == pytest.approx(0.75)
    assert shares["e"]["value"] == pytest.approx(1.0)
    assert shares["all"]["value"] == pytest.approx(0.75)
    assert shares["w"]["low"] <= 0.75 <= shares["w"]["high"]
