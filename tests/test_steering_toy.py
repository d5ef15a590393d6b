"""The analytic bipole generator of `helpers.toy_generator` checked against its own claims with the exact physics."""

import numpy as np
from helpers import LATENT_DIM, SIZE, toy_generator

from solarjax import physics


def _axis_latents(axis: int, values: np.ndarray, seed: int = 0) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(1, LATENT_DIM)).astype(np.float32).repeat(len(values), 0)
    z[:, axis] = values
    return z


def test_toy_images_are_normalised_bipoles():
    z = np.random.default_rng(0).normal(size=(16, LATENT_DIM)).astype(np.float32)
    images = np.asarray(toy_generator()(z))
    assert images.shape == (16, SIZE, SIZE, 1)
    assert np.abs(images).max() < 1.0
    q = physics.quantities(images)
    assert np.all(np.isfinite(np.asarray(q["psep"])))
    assert np.all(np.asarray(q["lead_polarity"]) > 0)  # positive polarity leads


def test_toy_quantities_follow_their_axes():
    values = np.linspace(-3, 3, 7, dtype=np.float32)
    generator = toy_generator()
    for axis, name in ((0, "tuf"), (1, "psep"), (2, "tilt")):
        q = np.asarray(physics.quantities(generator(_axis_latents(axis, values)))[name])
        assert np.all(np.diff(q) > 0), (name, q)
    # Moving the bipole (z[4]) leaves the flux almost unchanged.
    tuf = np.asarray(physics.quantities(generator(_axis_latents(4, values)))["tuf"])
    assert np.ptp(tuf) / tuf.mean() < 0.05
