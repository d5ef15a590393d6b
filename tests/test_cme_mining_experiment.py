"""experiments.cme_mining's choice on validation cases and its intervals, on known answers."""

import numpy as np
import pytest

from experiments import cme_mining


def test_family_of_strips_the_hyper_parameter():
    assert cme_mining.family_of("ssl23_knn_k5") == "ssl23_knn"
    assert cme_mining.family_of("pixel_pcarecon_c20") == "pixel_pcarecon"
    assert cme_mining.family_of("secondary_front_g2") == "secondary_front"
    assert cme_mining.family_of("ssl24+secondary_front_k1_g10") == "ssl24+secondary_front"
    assert cme_mining.family_of("property_outlier") == "property_outlier"
    assert cme_mining.family_of("ssl23_iforest") == "ssl23_iforest"


def test_crossfit_chooses_on_one_half_and_tests_on_the_other():
    rare = np.zeros(40, bool)
    rare[:4] = True
    half_right = np.linspace(5.0, 1.0, 40)
    half_right[:2], half_right[2:4] = 10.0, 0.0  # finds cases 0 and 1 only
    all_right = np.linspace(5.0, 1.0, 40)
    all_right[:4] = 10.0
    chooser = cme_mining.Chooser({"x_k1": half_right, "x_k2": all_right}, rare, fraction=0.1)
    np.testing.assert_array_equal(chooser.hits["x_k1"], [1, 1, 0, 0])
    tested, chosen = chooser.crossfit(["x_k1", "x_k2"], split_seed=0)
    assert chosen == ["x_k2", "x_k2"] and tested.tolist() == [1, 1, 1, 1]
    # A choice seen only on cases 0 and 1 ties; the lower mean rank of those cases wins.
    assert chooser.choose(["x_k1", "x_k2"], np.array([0, 1])) in ("x_k1", "x_k2")
    assert chooser.choose(["x_k1", "x_k2"], np.array([2, 3])) == "x_k2"


def test_interval_of_all_hits_is_exact():
    result = cme_mining.interval(np.ones(21), resamples=200)
    assert result["value"] == result["low"] == result["high"] == 1.0
    assert result["exact_low"] == pytest.approx(0.025 ** (1 / 21), abs=1e-6) and result["exact_high"] == 1.0
    half = cme_mining.interval(np.array([1.0, 0.0] * 10), resamples=500)
    assert half["low"] < 0.5 < half["high"] and half["exact_low"] < 0.5 < half["exact_high"]
