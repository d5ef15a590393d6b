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


def _stripes(period: int) -> np.ndarray:
    """[1, 32, 32, 1] patch of +0.5 / -0.5 vertical stripes, each ``period`` pixels wide, starting positive."""
    columns = (np.arange(32) // period) % 2 == 0
    return np.where(columns, 0.5, -0.5)[None, None, :, None].repeat(32, axis=1)


def test_polarity_statistics_known_answers():
    half = np.arctanh(0.5)
    # one 32-pixel block (grid 1), sub-blocks of 4 pixels (fine 8)
    uniform = steering_layers.polarity_statistics(np.full((1, 32, 32, 1), 0.5), grid=1, fine=8)
    np.testing.assert_allclose(uniform[0], [half, half, half, 1.0, 0.0, 0.0, 0.0], atol=1e-12)
    # 2-pixel stripes: both polarities inside every 4-pixel sub-block: mixed and coexisting
    fine = steering_layers.polarity_statistics(_stripes(2), grid=1, fine=8)
    np.testing.assert_allclose(fine[0], [0.0, half, 0.0, 0.5, 0.5, half, 0.5], atol=1e-12)
    # 4-pixel stripes: the same block averages, but every sub-block holds one polarity only
    coarse = steering_layers.polarity_statistics(_stripes(4), grid=1, fine=8)
    np.testing.assert_allclose(coarse[0], [0.0, half, 0.0, 0.5, 0.5, 0.0, 0.0], atol=1e-12)
    # a weak field (below 150 G) counts as neither polarity
    weak = steering_layers.polarity_statistics(np.full((1, 32, 32), -0.1), grid=1, fine=8)
    np.testing.assert_allclose(weak[0, 3:5], [0.0, 0.0])
    # grid 2: features ordered statistic-major, blocks row-major
    image = np.zeros((1, 32, 32))
    image[0, :16, 16:] = -0.5  # top-right block negative
    split = steering_layers.polarity_statistics(image, grid=2, fine=8).reshape(7, 2, 2)
    np.testing.assert_allclose(split[0], [[0.0, -half], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(split[4], [[0.0, 1.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="multiple of grid"):
        steering_layers.polarity_statistics(image, grid=3, fine=8)


def test_polarity_statistics_same_under_jax():
    import jax.numpy as jnp

    images = np.random.default_rng(1).uniform(-0.9, 0.9, size=(3, 32, 32, 1))
    expected = steering_layers.polarity_statistics(images, grid=2, fine=8)
    got = steering_layers.polarity_statistics(jnp.asarray(images, jnp.float32), grid=2, fine=8, xp=jnp)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-4, atol=1e-5)
