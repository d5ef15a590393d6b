"""The GAN's discriminator as a realism score (solarjax.steering.critic)."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import toy_generator

from solarjax import gan
from solarjax.models import gan as gan_models
from solarjax.steering.critic import load_critic


def test_critic_is_the_checkpoints_discriminator_and_scores_patches(demo_workdir):
    """The critic read with the demo's generator comes from the same checkpoint step; its logits equal one
    application of the discriminator to the whole set, one finite logit per patch; in batches they equal it when
    the discriminator sees patches alone, and stay close when it also sees its batch's statistics."""
    generator = gan.load(demo_workdir / "gan")
    critic = load_critic(generator)
    assert critic.step == generator.step
    discriminator = gan_models.ARCHITECTURES[generator.config["model"]["arch"]][1]
    assert critic.sees_batch == (
        getattr(discriminator, "func", discriminator) is gan_models.MinibatchStatisticsDiscriminator
    )
    images = np.asarray(generator.generate(generator.sample_latents(12, seed=0)))
    whole = np.asarray(critic.apply_fn(critic.variables, jnp.asarray(images)))
    logits = critic.logits(images)
    assert logits.shape == (12,) and np.isfinite(logits).all()
    np.testing.assert_allclose(logits, whole, rtol=1e-4, atol=1e-4)
    batched = critic.logits(images, batch=5)  # three batches, the last one short
    np.testing.assert_allclose(batched, whole, atol=0.05 if critic.sees_batch else 1e-4, rtol=1e-4)
    assert np.std(logits) > 0  # it tells patches apart


def test_critic_needs_a_generator_from_a_gan_run():
    with pytest.raises(ValueError, match="loaded from a GAN run"):
        load_critic(toy_generator())
