"""The discriminator of a trained GAN run as a realism score of patches (its logit: higher = more like the data).

    critic = load_critic(generator)                 # the discriminator saved with the generator's checkpoint
    logits = critic.logits(images)                  # [N] for patches [N, 128, 128, 1]

Used by the realism diagnosis of steering (experiments/steering_realism.py) and by the local family's
realism guard (`solarjax.steering.local`, ``critic=``), which holds the logit at its starting value.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from solarjax import sharding


@dataclasses.dataclass(frozen=True, eq=False)
class Critic:
    """A GAN run's discriminator.

    Attributes:
      apply_fn: pure ``(variables, images [N, 128, 128, 1]) -> logits [N]``, differentiable in the images.
      variables: the discriminator's variables (params and, for spectral norm, its power-iteration stats).
      step: the train step of the checkpoint it was read from.
      sees_batch: the discriminator also sees statistics of the whole batch it scores
        (`solarjax.models.gan.MinibatchStatisticsDiscriminator`), so a patch's logit depends, weakly, on the
        other patches of its batch; `logits` then scores all patches as one batch unless ``batch`` is given.
    """

    apply_fn: Callable[[Any, jax.Array], jax.Array]
    variables: Any
    step: int
    sees_batch: bool = False

    def __post_init__(self):
        object.__setattr__(self, "_logits", jax.jit(self.apply_fn))

    def logits(self, images: np.ndarray, batch: int | None = None) -> np.ndarray:
        """[N] discriminator logits of patches [N, 128, 128, 1], in batches of ``batch`` (default 256, or all N at
        once for a discriminator that `sees_batch`)."""
        images = np.asarray(images, np.float32)
        batch = batch or (max(len(images), 1) if self.sees_batch else 256)
        return np.concatenate(
            [np.asarray(self._logits(self.variables, images[i : i + batch])) for i in range(0, len(images), batch)]
        )


def load_critic(generator: Any) -> Critic:
    """The discriminator saved in the same checkpoint (run directory and step) as ``generator``, a
    `solarjax.gan.TrainedGenerator`.

    Raises:
      ValueError: the generator was not loaded from a GAN run directory.
    """
    from solarjax.models import gan as gan_models
    from solarjax.train import checkpoint as checkpoint_lib
    from solarjax.train import gan as gan_train

    workdir, step = getattr(generator, "workdir", None), getattr(generator, "step", None)
    if workdir is None or step is None:
        raise ValueError("the critic needs a generator loaded from a GAN run (solarjax.gan.load)")
    checkpoints = checkpoint_lib.RunCheckpoints(pathlib.Path(workdir) / "checkpoints", fingerprint=None)
    try:
        config = ml_collections.ConfigDict(checkpoints.run_info(step)["config"])
        mesh = sharding.make_data_mesh()
        programs = gan_train.programs_for(config, mesh)
        template = jax.eval_shape(programs.init, jax.random.key(0))
        template = jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding.replicated(mesh)), template
        )
        step, state = checkpoints.read_state(step, template, fallback=False)
    finally:
        checkpoints.close()
    discriminator = programs.discriminator
    return Critic(
        apply_fn=lambda variables, images: discriminator.apply(variables, images, update_stats=False),
        variables=gan_train.discriminator_variables(state.d_params, state.d_stats),
        step=int(step),
        sees_batch=isinstance(discriminator, gan_models.MinibatchStatisticsDiscriminator),
    )
