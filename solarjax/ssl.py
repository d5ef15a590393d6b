"""The trained SimSiam encoder as a function, for retrieval and analysis.

    import solarjax as sj
    encoder = sj.ssl.load("runs/simsiam_synthetic")        # latest checkpoint of a run
    features = encoder.embed(images)                       # [N, 128, 128, 1] -> [N, 512], jitted
    encoder.fingerprint                                    # identifies these weights and this output

`embed` returns the backbone's pooled features (the paper's retrieval space) by default, or the
projector's output with ``load(..., projection=True)``. BatchNorm uses the running statistics, so a
patch's embedding does not depend on the rest of its batch. jit compiles once per input shape: feed
fixed-size (padded) batches when embedding many patches.

The fingerprint hashes the model config, every parameter and BatchNorm statistic, and the choice of
output: two runs of the same config give different fingerprints, and an index built with one
encoder can refuse another (`solarjax.retrieval`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from solarjax import sharding
from solarjax.fingerprint import weights_fingerprint
from solarjax.models.simsiam import SimSiam
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import simsiam as simsiam_train


@dataclasses.dataclass(frozen=True)
class Encoder:
    """A trained encoder.

    Attributes:
      embed: jitted ``images [N, H, W, C] or [N, H, W] (s = B / 1000 G) -> float32 [N, dim]``.
      fingerprint: 16 hex digits identifying the weights, the model config and the output.
      dim: embedding size (512 for the backbone of ResNet-18, 100 for the projection).
      projection: whether `embed` returns the projection instead of the backbone features.
      step: the checkpoint's train step.
      config: the run's config (plain dict, augmentation recipe resolved).
    """

    embed: Callable[[Any], jax.Array]
    fingerprint: str
    dim: int
    projection: bool
    step: int
    config: dict


def encoder_fingerprint(model_config: dict, params: Any, batch_stats: Any, projection: bool) -> str:
    """sha256 (16 hex digits) of the model config, the weights and statistics, and the output choice."""
    return weights_fingerprint(
        checkpoint_lib.model_fingerprint(model_config),
        "projection" if projection else "backbone",
        weights={"params": params, "batch_stats": batch_stats},
    )


def load(workdir: str | os.PathLike, *, step: int | str = "latest", projection: bool = False) -> Encoder:
    """The encoder of a SimSiam run directory (written by `solarjax.train.simsiam.train_and_evaluate`).

    Args:
      workdir: the run's work directory (holding ``checkpoints/``).
      step: a saved step, 'latest', or 'best' (by the k-NN monitor).
      projection: embed with the projector's output instead of the backbone features.

    Raises:
      FileNotFoundError: no checkpoints in ``workdir``, or no such step.
      ArtefactKindError: ``workdir`` holds another model (a GAN run, say).
      CheckpointReadError: the checkpoint does not read (for 'latest' and 'best', an unreadable newest
        checkpoint is skipped with a warning and the newest older one that reads is used).
    """
    directory = pathlib.Path(workdir) / "checkpoints"
    if not directory.is_dir():
        raise FileNotFoundError(
            f"{workdir} holds no SimSiam run: {directory} does not exist"
            + checkpoint_lib.missing_run_hint(workdir, "simsiam")
        )
    checkpoints = checkpoint_lib.RunCheckpoints(
        directory, fingerprint=None, best_metric=simsiam_train.BEST_METRIC, best_mode="max"
    )
    try:
        checkpoints.require_kind("simsiam", workdir, "solarjax train simsiam")
        if isinstance(step, str) and step not in ("latest", "best"):
            raise ValueError(f"step must be 'latest', 'best' or a saved step number, got {step!r}")
        chosen = (
            {"latest": checkpoints.latest_step, "best": checkpoints.best_step}[step]()
            if isinstance(step, str)
            else int(step)
        )
        if chosen not in checkpoints.all_steps():
            raise FileNotFoundError(f"no checkpoint for step {step} in {directory}; saved: {checkpoints.all_steps()}")
        config = ml_collections.ConfigDict(checkpoints.run_info(chosen)["config"])
        model = simsiam_train.make_model(config.model)
        mesh = sharding.make_data_mesh()  # parameters replicated on every device, so sharded batches embed
        template = _abstract_state(model, config, mesh)
        chosen, state = checkpoints.read_state(chosen, template, fallback=isinstance(step, str))
    finally:
        checkpoints.close()

    model_config = config.model.to_dict()
    # No in_shardings: any batch size, and batches already sharded over the mesh stay sharded.
    apply = jax.jit(
        lambda params, stats, images: model.apply(
            {"params": params, "batch_stats": stats}, images, projection, method=SimSiam.embed
        )
    )
    params, batch_stats = state.params, state.batch_stats

    def embed(images) -> jax.Array:
        images = jnp.asarray(images, jnp.float32)
        return apply(params, batch_stats, images[..., None] if images.ndim == 3 else images)

    dim = model.projector_dims[-1] if projection else model.feature_dim
    return Encoder(
        embed=embed,
        fingerprint=encoder_fingerprint(model_config, params, batch_stats, projection),
        dim=dim,
        projection=projection,
        step=chosen,
        config=config.to_dict(),
    )


def _abstract_state(model: SimSiam, config: ml_collections.ConfigDict, mesh) -> Any:
    """Shapes, dtypes and shardings (replicated over `mesh`) of the run's train state, for restoring it."""
    optimizer = simsiam_train.optimizer_of(config)
    shapes = jax.eval_shape(lambda: simsiam_train.init_state(model, optimizer, jax.random.key(0), config.image_size))
    replicated = sharding.replicated(mesh)
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes)


def random_init(model_config: dict, *, seed: int = 0, image_size: int = 128, projection: bool = False) -> Encoder:
    """An untrained encoder of the same architecture (the 'random encoder' retrieval baseline).

    Args:
      model_config: the trained encoder's ``config['model']`` (same widths and heads).
      seed: PRNG seed of the initialisation (He-normal convolutions, BatchNorm statistics 0 / 1).
      image_size: side of the patches it will embed.
      projection: embed with the projector's output instead of the backbone features.
    """
    config = ml_collections.ConfigDict(dict(model_config))
    model = simsiam_train.make_model(config)
    images = jnp.zeros((2, image_size, image_size, model.input_channels), jnp.float32)
    variables = model.init(jax.random.key(seed), images, train=False)
    params, batch_stats = variables["params"], variables["batch_stats"]
    apply = jax.jit(lambda p, s, x: model.apply({"params": p, "batch_stats": s}, x, projection, method=SimSiam.embed))

    def embed(images) -> jax.Array:
        images = jnp.asarray(images, jnp.float32)
        return apply(params, batch_stats, images[..., None] if images.ndim == 3 else images)

    dim = model.projector_dims[-1] if projection else model.feature_dim
    return Encoder(
        embed=embed,
        fingerprint=encoder_fingerprint(config.to_dict(), params, batch_stats, projection),
        dim=dim,
        projection=projection,
        step=0,
        config={"model": config.to_dict(), "random_init_seed": seed},
    )
