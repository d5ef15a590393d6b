"""The one training loop (`run`) into which every model plugs its state, step and evaluators.

A trainer (`solarjax.train.gan`, `solarjax.train.simsiam`, or any later model) describes itself with a
`Task` and calls `run`, which does what every run needs, the same way for every model (big_vision's
``train.py`` with the model supplying its pieces; flax's ``train_and_evaluate(config, workdir)``):

  resume      refuses checkpoints of another model fingerprint before anything is compiled or written,
              restores the newest readable checkpoint (state and data-iterator position), and drops the
              metrics lines of steps it will train again;
  batches     checks each process-local batch and makes the global batch with
              `solarjax.data.pipeline.to_global_batch` (rows split over the mesh's 'data' axis);
  metrics     checked for NaN/Inf on the host one step behind the device, shown in a tqdm bar, written
              to ``metrics.jsonl`` every ``config.log_every`` steps with ``images_per_second``;
  hooks       ``sample`` every ``config.sample_every`` steps and ``evaluate`` every
              ``config.eval_every`` steps (and at the last step); evaluation figures are logged and rank
              checkpoints by ``Task.best_metric``;
  checkpoints every ``config.checkpoint_every`` steps, at each evaluation and at the last step (last
              ``config.keep_checkpoints`` kept, plus the best).

Config fields read here: batch_size (global), total_steps, log_every, checkpoint_every,
keep_checkpoints, eval_every, sample_every (0 or absent = never). Work directory: ``config.json``
(`Task.run_config`), ``metrics.jsonl``, ``checkpoints/`` and whatever the hooks write.

Also here: the sharded jit of a pure train step, the default data iterators, the PRNG key of a step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import tqdm
from jax.sharding import Mesh

from solarjax import configs, sharding
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import monitor

DataIteratorFactory = Callable[[], Iterator[Mapping[str, np.ndarray]]]
"""``() -> iterator`` of process-local batches (dicts of numpy arrays) with grain's get_state/set_state."""


def step_key(state: Any) -> jax.Array:
    """The PRNG key of a train state's next step: ``fold_in(state.rng, state.step)``.

    Every trainer's state carries ``step`` (int32 []) and ``rng`` (the run's base key), so a resumed run
    draws the same keys as an uninterrupted one.
    """
    return jax.random.fold_in(state.rng, state.step)


@dataclasses.dataclass(frozen=True)
class Programs:
    """A model's compiled pieces, made by `Task.build` once the run's checkpoints are known to match.

    Attributes:
      init: ``() -> state``: a fresh train state (replicated over the mesh) with ``step`` and ``rng``.
      train_step: ``(state, global_batch, key) -> (state, metrics)``, jitted (`jit_train_step`); metrics
        are scalars.
      evaluate: ``state -> {name: float}``, the figures of an evaluation step; None: the model has none.
      sample: ``(state, step) -> None``, writes samples into the work directory (called on the main
        process only); None: the model has none.
    """

    init: Callable[[], Any]
    train_step: Callable
    evaluate: Callable[[Any], Mapping[str, float]] | None = None
    sample: Callable[[Any, int], None] | None = None


@dataclasses.dataclass(frozen=True)
class Task:
    """What a model plugs into `run`.

    Attributes:
      name: the progress bar's label ('gan', 'simsiam').
      fingerprint: the model's fingerprint (`checkpoint.model_fingerprint`); checkpoints of another are
        refused.
      run_config: the config as plain JSON: written to ``config.json`` and into each checkpoint.
      image_shape: (H, W, C) of each row of ``batch['image']``.
      build: ``mesh -> Programs``, called after the fingerprint check (nothing is compiled for a refused
        work directory).
      best_metric, best_mode: the evaluation figure that ranks checkpoints and 'min' or 'max'.
      log_prefix: prefix of the evaluation figures' names in ``metrics.jsonl`` ('quality/' for the GAN).
      progress_fields: metric name -> format spec shown in the progress bar.
      time_first_step: whether the first step after a (re)start is logged with a rate that includes
        compilation (SimSiam), or only starts the clock (the GAN, whose first logged step is the second).
    """

    name: str
    fingerprint: str
    run_config: Mapping[str, Any]
    image_shape: tuple[int, ...]
    build: Callable[[Mesh], Programs]
    best_metric: str | None = None
    best_mode: str = "min"
    log_prefix: str = ""
    progress_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    time_first_step: bool = False


class _Recorder:
    """Checks, displays and logs step metrics on the host (one step behind the device)."""

    def __init__(self, task: Task, config, checkpoints, writer, progress, is_main: bool, start: int):
        self.task, self.config, self.checkpoints = task, config, checkpoints
        self.writer, self.progress, self.is_main = writer, progress, is_main
        self.clock = (start, time.perf_counter()) if task.time_first_step else None  # (step, time) of the last log

    def record(self, step: int, metrics: Mapping[str, jax.Array]) -> None:
        host = {name: float(value) for name, value in jax.device_get(metrics).items()}
        latest = self.checkpoints.latest_step()
        monitor.check_finite(step, host, None if latest is None else f"{self.checkpoints.directory}/{latest}")
        self.progress.update(1)
        self.progress.set_postfix({name: format(host[name], spec) for name, spec in self.task.progress_fields.items()})
        now = time.perf_counter()
        if self.clock is None:
            self.clock = (step, now)
        elif due(step, self.config.log_every):
            host["images_per_second"] = (step - self.clock[0]) * self.config.batch_size / (now - self.clock[1])
            self.clock = (step, now)
            if self.is_main:
                self.writer.write(step, host)


def run(
    task: Task,
    config: ml_collections.ConfigDict,
    workdir: str | os.PathLike,
    data_iterator_factory: DataIteratorFactory,
) -> Any:
    """Trains (or resumes) `task` in `workdir` up to ``config.total_steps`` steps; returns the final state.

    Raises:
      FingerprintMismatchError: `workdir` holds checkpoints of another model.
      NonFiniteError: a metric became NaN/Inf (the last good checkpoint is kept).
      RuntimeError: the data iterator ended before the last step.
      TypeError, ValueError: a batch that is not ``{'image': [config.batch_size / processes, *image_shape]}``.
    """
    from solarjax.data import pipeline

    config = configs.upgrade(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0
    mesh = sharding.make_data_mesh()
    sharding.check_batch_divides(config.batch_size, mesh)
    local_shape = (config.batch_size // jax.process_count(), *task.image_shape)
    checkpoints = checkpoint_lib.RunCheckpoints(
        workdir / "checkpoints",
        fingerprint=task.fingerprint,
        keep_last=config.keep_checkpoints,
        best_metric=task.best_metric,
        best_mode=task.best_mode,
    )
    latest = checkpoints.latest_step()
    if latest is not None:
        checkpoints.check_fingerprint(latest)  # before anything is compiled or written
    if is_main:  # after the fingerprint check: a refused config never overwrites a run's record
        write_json(task.run_config, workdir / "config.json")

    programs = task.build(mesh)
    state = programs.init()
    iterator = data_iterator_factory()
    if latest is not None:
        state = checkpoints.restore(latest, state, iterator)
    start = int(state.step)

    writer = monitor.MetricsWriter(workdir / "metrics.jsonl")
    if is_main:
        writer.forget_after(start)  # steps after the restored checkpoint are trained again
    progress = tqdm.tqdm(
        total=config.total_steps, initial=start, desc=task.name, disable=not is_main, dynamic_ncols=True
    )
    recorder = _Recorder(task, config, checkpoints, writer, progress, is_main, start)
    sample_every = config.get("sample_every", 0) if programs.sample is not None else 0
    eval_every = config.eval_every if programs.evaluate is not None else 0
    pending = None  # (step, metrics) computed on device, not yet checked on the host
    try:
        for step in range(start + 1, config.total_steps + 1):
            try:
                batch = next(iterator)
            except StopIteration:
                raise RuntimeError(
                    f"the data iterator ended after {step - 1 - start} batches, before step "
                    f"{config.total_steps}: use a repeating iterator (num_epochs=None)"
                ) from None
            images = checked_images(batch, local_shape)
            state, metrics = programs.train_step(
                state, pipeline.to_global_batch({"image": images}, mesh), step_key(state)
            )
            if pending is not None:
                recorder.record(*pending)
            pending = (step, metrics)

            is_last = step == config.total_steps
            sample_now = programs.sample is not None and (due(step, sample_every) or is_last)
            evaluate_now = eval_every > 0 and (due(step, eval_every) or is_last)
            save_now = due(step, config.checkpoint_every) or evaluate_now or is_last
            if not (sample_now or evaluate_now or save_now):
                continue
            recorder.record(*pending)
            pending = None
            if sample_now and is_main:
                programs.sample(state, step)
            figures = dict(programs.evaluate(state)) if evaluate_now else None
            if figures is not None and is_main:
                writer.write(step, {f"{task.log_prefix}{k}": v for k, v in figures.items()})
            if save_now:
                checkpoints.save(step, state, iterator, task.run_config, metrics=figures)
    finally:
        progress.close()
        checkpoints.close()
    return state


def checked_images(batch: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The ``'image'`` array of a data batch as float32, checked to have `shape` (local batch, H, W, C)."""
    if not isinstance(batch, Mapping) or "image" not in batch:
        raise TypeError(f"data batches must be dicts with an 'image' entry, got {type(batch).__name__}")
    images = np.asarray(batch["image"], np.float32)
    if images.shape != tuple(shape):
        raise ValueError(
            f"data batch 'image' has shape {images.shape}, expected {tuple(shape)} "
            "(config.batch_size / process count rows of the model's image shape)"
        )
    return images


def jit_train_step(train_step: Callable, mesh: Mesh) -> Callable:
    """`train_step` jitted for `mesh`: state, key and metrics replicated, batch split on 'data'.

    The input state's buffers are donated (reused for the output state).
    """
    replicated = sharding.replicated(mesh)
    return jax.jit(
        train_step,
        in_shardings=(replicated, sharding.batch_sharded(mesh), replicated),
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def pipeline_iterator_factory(config: ml_collections.ConfigDict) -> DataIteratorFactory:
    """Iterators over ``config.data.dataset`` (default ``sharp_patches``) via `solarjax.data.pipeline`
    (shuffled with config.seed; ``config.data.canonical_polarity`` makes every leading polarity positive)."""
    from solarjax.data import pipeline

    def factory():
        return pipeline.make_iterator(
            config.data.split,
            batch_size=config.batch_size,
            seed=config.seed,
            data_dir=os.path.expanduser(config.data.data_dir),
            config=config.data.builder_config,
            dataset=config.data.get("dataset", pipeline.DATASET_NAME),
            canonical_polarity=config.data.get("canonical_polarity", False),
        )

    return factory


def config_dict(config: ml_collections.ConfigDict) -> dict:
    """The config as a plain JSON-serialisable dict."""
    return json.loads(config.to_json())


def write_json(plain: Mapping[str, Any], path: pathlib.Path) -> None:
    """Writes a plain config (or any JSON value) to `path`, keys sorted, indented by 2."""
    path.write_text(json.dumps(plain, indent=2, sort_keys=True) + "\n")


def write_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
    """Writes ``workdir/config.json``."""
    write_json(config_dict(config), workdir / "config.json")


def due(step: int, every: int) -> bool:
    """Whether a periodic action of period `every` (0: never) falls on `step`."""
    return every > 0 and step % every == 0


def load_config_file(path: str | os.PathLike) -> ml_collections.ConfigDict:
    """`get_config()` of a config file such as experiments/configs/simsiam_synthetic.py, unlocked, in
    today's field names (`solarjax.configs.load`)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    return configs.load(path, lock=False)
