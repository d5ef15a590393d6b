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


def test_angular_profile_bins_the_excess_by_position_angle():
    from solarjax.cme_physics import angular_profile
    from solarjax.data.cme_synthetic import polar_grid

    radius, angle = polar_grid()
    image = np.zeros((1, 128, 128), np.float32)
    patch = (angle >= 100.0) & (angle < 101.0) & (radius > 3.0) & (radius < 5.0)
    image[0][patch] = 0.5
    image[0][(angle >= 250.0) & (angle < 251.0) & (radius < 2.0)] = 0.9  # behind the occulter: not seen
    profile = np.asarray(angular_profile(image))
    assert profile.shape == (1, 360)
    assert np.flatnonzero(profile[0]).tolist() == [100]
    assert profile[0, 100] == pytest.approx(0.5 * patch.sum())


def test_secondary_front_share_known_answers():
    profiles = np.zeros((6, 360))
    profiles[0, 10:20], profiles[0, 200:210] = 3.0, 1.0  # two fronts: the weaker holds 10 of 40
    profiles[1, 10:20], profiles[1, 22:26] = 1.0, 1.0  # one front with a 2-bin hole
    profiles[2, 355:], profiles[2, :5] = 1.0, 2.0  # one front across north (359 -> 0 deg)
    profiles[3] = 0.5  # a halo: the whole circle
    profiles[5, 100:130], profiles[5, 140:150], profiles[5, 300:310] = 1.0, 2.0, 1.0  # three fronts
    share = cme_mining.secondary_front_share(profiles, gap_deg=2)
    np.testing.assert_allclose(share, [0.25, 0.0, 0.0, 0.0, 0.0, 30.0 / 60.0])
    # A wider gap than allowed splits the holed front: 4 of 14 outside the main part.
    assert cme_mining.secondary_front_share(profiles[1:2], gap_deg=1)[0] == pytest.approx(4.0 / 14.0)
    # Rotating every profile about the Sun changes nothing.
    np.testing.assert_allclose(cme_mining.secondary_front_share(np.roll(profiles, 123, axis=1), gap_deg=2), share)


def test_combined_rarity_keeps_the_top_of_each_ranking():
    first = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 4.0])
    second = np.array([9.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(cme_mining.percentile_ranks(second), [1.0, 0.3, 0.3, 0.3, 0.3, 0.8])
    combined = cme_mining.combined_rarity(first, second)
    assert set(cme_mining.top_rows(combined, 2 / 6)) == {0, 4}
    assert combined[5] > combined[3] > combined[2]  # row 5: second in both rankings


def test_planted_double_cmes_top_the_archive_ranking():
    """The synthetic set's planted double CMEs (4 of 200 with seed 8): all in the top 5% of the combined
    ranking; the secondary-front share of a single CME is at most a few stray noise pixels' worth."""
    from solarjax.data import cme_synthetic
    from solarjax.retrieval.evaluate import thumbnails

    cmes = cme_synthetic.generate(200, seed=8)
    assert cmes.rare.sum() == 4
    scores = cme_mining.archive_rarity(thumbnails(cmes.images[..., None]), cmes.images)
    assert (scores["secondary_front"][cmes.rare] > 0.1).all()
    assert (scores["secondary_front"][~cmes.rare] < 0.01).all()
    assert (scores["secondary_front"][~cmes.rare] == 0).mean() > 0.98
    assert cme_mining.recall_at_top(scores["combined"], cmes.rare, resamples=20)["value"] == 1.0
    assert cme_mining.recall_at_top(scores["ssl_knn"], cmes.rare, resamples=20)["value"] < 1.0
