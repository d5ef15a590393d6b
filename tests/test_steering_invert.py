"""Inversion of patches into latents (solarjax.steering.invert)."""

import numpy as np
import pytest
from helpers import LATENT_DIM, toy_generator

from solarjax import physics
from solarjax.data import preprocess_patch, read_sharp
from solarjax.steering.directions import sample_latents
from solarjax.steering.invert import check_images, invert, invert_files, masked_mse


def test_masked_mse_weights():
    target = np.zeros((2, 128, 128, 1), np.float32)
    target[0, :10, :20] = 0.3  # 200 signal pixels (|s| > 0.05)
    target[0, 10:12, :] = -0.05  # exactly 0.05 is background
    reconstruction = target + 0.1
    expected0 = (200 * 0.01 + 0.5 * (128 * 128 - 200) * 0.01) / (128 * 128)
    got = np.asarray(masked_mse(reconstruction, target))
    np.testing.assert_allclose(got, [expected0, 0.5 * 0.01], rtol=1e-5)


def test_inverts_generated_patches():
    generator = toy_generator()
    truth = sample_latents(6, LATENT_DIM, seed=7)
    images = np.asarray(generator(truth))
    result = invert(images, generator, restarts=3, steps=150, learning_rate=0.05, batch_size=4)
    assert result.latents.shape == (6, LATENT_DIM) and result.restart_errors.shape == (6, 3)
    assert result.error.max() < 1e-4
    np.testing.assert_array_equal(result.error, result.restart_errors.min(axis=1))
    np.testing.assert_allclose(result.reconstructions, np.asarray(generator(result.latents)), atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(masked_mse(result.reconstructions, images)), result.error, rtol=1e-4, atol=1e-9
    )
    for name in ("tuf", "psep", "area"):
        np.testing.assert_allclose(result.quantities_reconstructed[name], result.quantities_real[name], rtol=0.03)
    # Batching is an implementation detail: other chunk sizes give the same latents.
    again = invert(images, generator, restarts=3, steps=150, learning_rate=0.05, batch_size=8)
    np.testing.assert_allclose(again.latents, result.latents, atol=1e-3)


def test_more_restarts_never_hurt():
    generator = toy_generator()
    images = np.asarray(generator(sample_latents(4, LATENT_DIM, seed=8)))
    one = invert(images, generator, restarts=1, steps=10)
    four = invert(images, generator, restarts=4, steps=10)
    # Restart 0 of each patch starts from the same latent whatever the restart count.
    np.testing.assert_allclose(four.restart_errors[:, 0], one.restart_errors[:, 0], rtol=1e-4)
    assert np.all(four.error <= one.error * (1 + 1e-4))


def test_real_files_with_a_broken_one(real_br_files, corrupt_files):
    paths = [real_br_files[0], corrupt_files[0], real_br_files[5]]
    result, failures = invert_files(paths, toy_generator(), restarts=2, steps=20)
    assert [path for path, _ in failures] == [str(corrupt_files[0])]
    assert failures[0][1]
    real = np.stack([preprocess_patch(read_sharp(p)).image for p in (real_br_files[0], real_br_files[5])])
    expected = physics.quantities(real)
    for name in physics.QUANTITY_NAMES:
        np.testing.assert_allclose(result.quantities_real[name], np.asarray(expected[name]), rtol=1e-6)
    assert result.latents.shape == (2, LATENT_DIM)
    assert np.all(result.error > 0) and np.isfinite(result.error).all()


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"images: expected patches \[N, 128, 128\]"):
        check_images(np.zeros((2, 64, 64)))
    bad = np.zeros((1, 128, 128), np.float32)
    bad[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="1 non-finite pixels"):
        check_images(bad)
    with pytest.raises(ValueError, match=r"max \|s\| = 2.5 > 1"):
        check_images(np.full((1, 128, 128, 1), 2.5, np.float32))
    with pytest.raises(ValueError, match="restarts >= 1"):
        invert(np.zeros((1, 128, 128), np.float32), toy_generator(), restarts=0)


def test_paper_generator_inversion_improves_the_fit():
    # The paper's flax generator (random parameters), sharded over the 4 test devices.
    import jax
    import jax.numpy as jnp

    from solarjax.models.gan import make_models
    from solarjax.steering.directions import LatentGenerator

    model, _ = make_models("simple", "matmul")
    variables = model.init(jax.random.key(0), jnp.zeros((1, LATENT_DIM)))
    generator = LatentGenerator(model.apply, variables, "random-simple")
    images = np.asarray(generator(sample_latents(4, LATENT_DIM, seed=9)))
    start = invert(images, generator, restarts=2, steps=1)
    fitted = invert(images, generator, restarts=2, steps=40)
    assert np.all(fitted.error < 0.5 * start.error)
    np.testing.assert_allclose(fitted.reconstructions, np.asarray(generator(fitted.latents)), atol=1e-5)
