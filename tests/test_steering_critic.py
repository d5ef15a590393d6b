"""The GAN's discriminator as a realism score (solarjax.steering.critic)."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import toy_generator

from solarjax import gan
from solarjax.steering.critic import load_critic


def test_critic_is_the_checkpoints_discriminator_and_scores_patches(demo_workdir):
    """The critic read with the demo's generator comes from the same checkpoint step; its batched logits equal one
    application of the discriminator to the whole set, one finite logit per patch."""
    generator = gan.load(demo_workdir / "gan")
    critic = load_critic(generator)
    assert critic.step == generator.step
    images = np.asarray(generator.generate(generator.sample_latents(12, seed=0)))
    logits = critic.logits(images, batch=5)  # three batches, the last one short
    assert logits.shape == (12,) and np.isfinite(logits).all()
    whole = np.asarray(critic.apply_fn(critic.variables, jnp.asarray(images)))
    np.testing.assert_allclose(logits, whole, rtol=1e-4, atol=1e-4)
    assert np.std(logits) > 0  # it tells patches apart


def test_critic_needs_a_generator_from_a_gan_run():
    with pytest.raises(ValueError, match="loaded from a GAN run"):
        load_critic(toy_generator())
