"""Pieces shared by the trainers (`solarjax.train.gan`, `solarjax.train.simsiam`): the sharded jit of a
pure train step, the default data iterators, config files and JSON, periodic actions."""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
from typing import Callable, Iterator, Mapping

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from solarjax.train import sharding

DataIteratorFactory = Callable[[], Iterator[Mapping[str, np.ndarray]]]
"""``() -> iterator`` of process-local batches (dicts of numpy arrays) with grain's get_state/set_state."""


def jit_train_step(train_step: Callable, mesh: Mesh) -> Callable:
    """`train_step` jitted for `mesh`: state, key and metrics replicated, batch split on 'data'.

    The input state's buffers are donated (reused for the output state).
    """
    replicated = sharding.replicated(mesh)
    return jax.jit(train_step, in_shardings=(replicated, sharding.batch_sharded(mesh), replicated),
                   out_shardings=(replicated, replicated), donate_argnums=0)


def pipeline_iterator_factory(config: ml_collections.ConfigDict) -> DataIteratorFactory:
    """Iterators over ``config.data.dataset`` (default ``sharp_patches``) via `solarjax.data.pipeline`
    (shuffled with config.seed; ``config.data.canonical_polarity`` makes every leading polarity positive)."""
    from solarjax.data import pipeline

    def factory():
        return pipeline.make_iterator(
            config.data.split, batch_size=config.batch_size, seed=config.seed,
            data_dir=os.path.expanduser(config.data.data_dir), config=config.data.builder_config,
            dataset=config.data.get("dataset", pipeline.DATASET_NAME),
            canonical_polarity=config.data.get("canonical_polarity", False))

    return factory


def config_dict(config: ml_collections.ConfigDict) -> dict:
    """The config as a plain JSON-serialisable dict."""
    return json.loads(config.to_json())


def write_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Writes ``workdir/config.json``."""
    (workdir / 'config.json').write_text(json.dumps(config_dict(config), indent=2, sort_keys=True) + '\n')


def due(step: int, every: int) -> bool:
    """Whether a periodic action of period `every` (0: never) falls on `step`."""
    return every > 0 and step % every == 0


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """`get_config()` of a config file such as experiments/configs/simsiam_synthetic.py."""
    path = pathlib.Path(path)
    spec = importlib.util.spec_from_file_location(f"solarjax_config_{path.stem}", path)
    if spec is None or not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} defines no get_config()")
    return module.get_config()
