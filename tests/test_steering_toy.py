"""An analytic bipole generator with known latent directions, shared by the steering tests.

`toy_generator()` maps z [N, 100] to one bipolar active region per latent, like a GAN would, but
with known physics: the flux amplitude grows with z[0] (so TUF, TPF, TNF grow along +e0), the
polarity separation with z[1] (PSEP grows along +e1), the tilt with z[2] (positive tilt puts the
negative polarity lower: tilt grows along +e2); z[3] changes the blob width, z[4:6] move the
bipole, z[6:22] add weak smooth background field below the polarity threshold, and z[22:] are
ignored. It is differentiable, jit-able and cheap, so the tests can check fitted directions,
edits, targeting and inversion against known answers. The tests in this file check the toy's own
claims with the exact physics.
"""
import functools

import jax.numpy as jnp
import numpy as np

from solarjax import physics
from solarjax.steering.directions import LatentGenerator

SIZE = 128
LATENT_DIM = 100
BACKGROUND_DIMS = slice(6, 22)


def _background_basis() -> np.ndarray:
    """[16, SIZE, SIZE] smooth fields (products of low-frequency sines), peak 1."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    fields = [np.sin(np.pi * (i + 1) * rows) * np.sin(np.pi * (j + 1) * cols) for i in range(4) for j in range(4)]
    return np.stack(fields).astype(np.float32)


def toy_apply(params, z):
    """z [N, 100] -> images [N, 128, 128, 1] in (-1, 1): one Gaussian bipole plus weak background."""
    squash = jnp.tanh(z[:, :6] / 2.0)
    amplitude = params["amplitude"] * (1.0 + 0.5 * squash[:, 0])        # 0.4 .. 1.2 of the base
    separation = 30.0 + 14.0 * squash[:, 1]                              # pixels
    tilt = 0.6 * squash[:, 2]                                            # radians
    width = 5.5 + 1.5 * squash[:, 3]                                     # pixels
    centre_row = 64.0 + 6.0 * squash[:, 4]
    centre_col = 64.0 + 6.0 * squash[:, 5]
    half_row, half_col = 0.5 * separation * jnp.sin(tilt), 0.5 * separation * jnp.cos(tilt)
    rows = jnp.arange(SIZE, dtype=jnp.float32)[None, :, None]
    cols = jnp.arange(SIZE, dtype=jnp.float32)[None, None, :]

    def blob(row, col):
        return jnp.exp(-((rows - row[:, None, None]) ** 2 + (cols - col[:, None, None]) ** 2)
                       / (2.0 * width[:, None, None] ** 2))

    # Positive polarity leads (larger column); positive tilt puts the negative one lower (larger row).
    field = amplitude[:, None, None] * (blob(centre_row - half_row, centre_col + half_col)
                                        - blob(centre_row + half_row, centre_col - half_col))
    field = field + 0.002 * jnp.einsum("nk,khw->nhw", z[:, BACKGROUND_DIMS], params["background"])
    return jnp.tanh(field)[..., None]


@functools.lru_cache(maxsize=None)
def toy_generator(amplitude: float = 0.8) -> LatentGenerator:
    """The toy generator (one object per amplitude, so jitted programs are compiled once)."""
    params = {"amplitude": jnp.float32(amplitude), "background": jnp.asarray(_background_basis())}
    return LatentGenerator(toy_apply, params, fingerprint=f"toy-bipole-v1-amplitude-{amplitude}", latent_dim=LATENT_DIM)


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
    assert np.all(np.asarray(q["lead_polarity"]) > 0)        # positive polarity leads


def test_toy_quantities_follow_their_axes():
    values = np.linspace(-3, 3, 7, dtype=np.float32)
    generator = toy_generator()
    for axis, name in ((0, "tuf"), (1, "psep"), (2, "tilt")):
        q = np.asarray(physics.quantities(generator(_axis_latents(axis, values)))[name])
        assert np.all(np.diff(q) > 0), (name, q)
    # Moving the bipole (z[4]) leaves the flux almost unchanged.
    tuf = np.asarray(physics.quantities(generator(_axis_latents(4, values)))["tuf"])
    assert np.ptp(tuf) / tuf.mean() < 0.05
