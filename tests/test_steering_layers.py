"""experiments/steering_layers.py: the pooled layer features, the held-out accuracy and the argument checks
(no GAN is loaded here)."""

import numpy as np
import pytest

from experiments import steering_layers


def test_pooled_statistics_known_answers():
    activations = np.zeros((1, 4, 4, 2))
    activations[0, :2, :2, 0] = 2.0  # top-left block of channel 0
    activations[0, 2:, 2:, 1] = -3.0  # bottom-right block of channel 1
    features = steering_layers.pooled_statistics(activations, grid=2).reshape(3, 2, 2, 2)  # stat, row, col, channel
    np.testing.assert_allclose(features[0, 0, 0], [2.0, 0.0])  # block means
    np.testing.assert_allclose(features[0, 1, 1], [0.0, -3.0])
    np.testing.assert_allclose(features[1, 1, 1], [0.0, 3.0])  # mean |a|
    np.testing.assert_allclose(features[2, 0, 0], [2.0, 0.0])  # root mean square
    assert features[:, 0, 1].sum() == 0.0
    dense = steering_layers.pooled_statistics(np.array([[1.0, -2.0]]), grid=4)
    np.testing.assert_allclose(dense, [[1.0, -2.0, 1.0, 2.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="cannot be split"):
        steering_layers.pooled_statistics(np.zeros((1, 6, 6, 1)), grid=4)


def test_held_out_accuracy_separates_a_linear_quantity_and_not_an_even_one():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(600, 5))
    train = rng.random(600) < 0.8
    linear, _ = steering_layers.held_out_accuracy(features, features[:, 0] + 0.05 * rng.normal(size=600), train, 0)
    even, count = steering_layers.held_out_accuracy(features, features[:, 0] ** 2, train, 0)
    assert linear > 0.95 and even < 0.7
    assert count == int((~train).sum())
    values = features[:, 1].copy()
    values[:50] = np.nan  # undefined quantities are left out
    _, count = steering_layers.held_out_accuracy(features, values, train, 0)
    assert count == int((~train[50:]).sum())


def test_missing_checkpoints_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        steering_layers.main(["--gan-dir", str(tmp_path), "--out", str(tmp_path / "out.json")])
    assert exit_info.value.code == 2
    assert "no GAN checkpoints" in capsys.readouterr().err


def test_layers_sorted_in_call_order():
    names = ["OutputNoise", "Conv2D_10", "Conv2D_2", "Dense_0", "Conv2D_0"]
    assert sorted(names, key=steering_layers.network_position) == [
        "Dense_0",
        "Conv2D_0",
        "Conv2D_2",
        "Conv2D_10",
        "OutputNoise",
    ]
