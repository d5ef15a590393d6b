"""Resumable run checkpoints with orbax: train state, data-iterator position, config, fingerprint.

A run's checkpoints live in ``workdir/checkpoints/<step>/`` with three items:

  state          the train state pytree (`ocp.args.StandardSave`; sharded arrays are written by
                 their owners and restored onto the shardings of a template state)
  data_iterator  the data iterator's position (grain's orbax handler: one JSON file per process,
                 written from ``iterator.get_state()`` at save time; restoring calls
                 ``set_state`` and ``start_prefetch``, the protocol of grain's DataLoader iterator)
  run            JSON ``{"fingerprint": ..., "config": ...}``

Saving is asynchronous (arrays are copied, then written by a background thread); the trainer
decides when to save (periodically, and with quality metrics when it evaluates). Kept: the last
``keep_last`` checkpoints and, among the checkpoints saved with quality metrics, the best one by
``best_metric`` (``best_mode`` 'min' or 'max').

The fingerprint identifies the model a state belongs to (the hash of the model config); a
checkpoint whose fingerprint differs from the run's is refused with `FingerprintMismatchError`.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterator, Mapping

import grain
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from solarjax.fingerprint import config_fingerprint


def stored_tree(state: Any) -> Any:
    """What is written for a state: a dataclass state becomes the dict of its fields that are not None
    (so a field added later with the default None, such as the GAN's ``g_ema_params`` when no EMA is
    kept, leaves the on-disk layout of older checkpoints unchanged); anything else as it is."""
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return {field.name: getattr(state, field.name) for field in dataclasses.fields(state)
                if getattr(state, field.name) is not None}
    return state


def _rebuilt(template: Any, restored: Any) -> Any:
    """The restored tree in the template's type (inverse of `stored_tree`)."""
    if dataclasses.is_dataclass(template) and not isinstance(template, type):
        return dataclasses.replace(template, **restored)
    return restored


class FingerprintMismatchError(ValueError):
    """A checkpoint was written for a different model config than the one asked for."""


def model_fingerprint(model_config: Mapping[str, Any]) -> str:
    """16-hex-digit hash of a model config (a plain dict; key order does not matter)."""
    return config_fingerprint(dict(model_config))


class RunCheckpoints:
    """The checkpoints of one run directory.

    Args:
      directory: where the step folders go (created if missing).
      fingerprint: this run's model fingerprint; saved, and required of restored checkpoints.
        None (for readers) adopts the fingerprint of the newest checkpoint found.
      keep_last: number of most recent checkpoints kept.
      best_metric: name of the quality figure (a key of the ``metrics`` given to `save`) that
        ranks checkpoints; the best one is kept besides the last ``keep_last``.
      best_mode: 'min' (smaller is better) or 'max'.
    """

    def __init__(self, directory: str | os.PathLike, *, fingerprint: str | None,
                 keep_last: int = 3, best_metric: str = 'frechet', best_mode: str = 'min'):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        if best_mode not in ('min', 'max'):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        self.best_metric = best_metric
        rank = lambda metrics: float(metrics[best_metric])  # noqa: E731
        keep = checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(n=keep_last),
            checkpoint_managers.BestN(get_metric_fn=rank, reverse=best_mode == 'min', n=1,
                                      keep_checkpoints_without_metrics=False),
        ])
        options = ocp.CheckpointManagerOptions(
            preservation_policy=keep, best_fn=rank, best_mode=best_mode,
            enable_async_checkpointing=True, create=True)
        self.directory = os.fspath(directory)
        self.manager = ocp.CheckpointManager(os.path.abspath(self.directory), options=options)
        if fingerprint is None:
            latest = self.latest_step()
            if latest is None:
                raise FileNotFoundError(f"no checkpoints in {self.directory}")
            fingerprint = self.run_info(latest)['fingerprint']
        self.fingerprint = fingerprint

    def latest_step(self) -> int | None:
        """The newest saved step, or None."""
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        """The saved step with the best ``best_metric`` (the latest when none has metrics)."""
        best = self.manager.best_step()
        return self.latest_step() if best is None else best

    def all_steps(self) -> list[int]:
        """Every step still on disk, ascending."""
        return sorted(self.manager.all_steps())

    def run_info(self, step: int) -> dict:
        """The ``{"fingerprint", "config"}`` record of a saved step."""
        restored = self.manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))
        return dict(restored['run'])

    def check_fingerprint(self, step: int) -> None:
        """Raises `FingerprintMismatchError` if `step` was saved for another model config."""
        saved = self.run_info(step)['fingerprint']
        if saved != self.fingerprint:
            raise FingerprintMismatchError(
                f"checkpoint {self.directory}/{step} holds a model with fingerprint {saved}, but "
                f"this run's model config has fingerprint {self.fingerprint}: use a new work "
                f"directory or the model config the checkpoint was trained with"
            )

    def save(self, step: int, state: Any, data_iterator: Iterator, config: Mapping[str, Any],
             metrics: Mapping[str, float] | None = None) -> bool:
        """Starts an asynchronous save of `state` and the iterator's position at `step`.

        Args:
          step: the number of train steps the state has taken.
          state: train state pytree of jax.Arrays.
          data_iterator: iterator with ``get_state()``; its position is read now.
          config: the run's config as a JSON-serialisable dict.
          metrics: quality figures ranking this checkpoint (must hold ``best_metric``).

        Returns:
          Whether a save was started.
        """
        if metrics is not None and self.best_metric not in metrics:
            raise KeyError(f"metrics {sorted(metrics)} lack the ranking figure {self.best_metric!r}")
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(stored_tree(state)),
            data_iterator=grain.checkpoint.CheckpointSave(data_iterator),
            run=ocp.args.JsonSave({'fingerprint': self.fingerprint, 'config': dict(config)}),
        )
        metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
        return self.manager.save(step, args=args, metrics=metrics)

    def restore(self, step: int, state_template: Any, data_iterator: Iterator) -> Any:
        """The train state of `step`, and `data_iterator` moved to the position saved with it.

        Args:
          step: a saved step.
          state_template: a state pytree with the wanted structure, dtypes and shardings.
          data_iterator: the run's freshly built iterator; restored in place.

        Raises:
          FingerprintMismatchError: the checkpoint belongs to another model config.
        """
        self.check_fingerprint(step)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(stored_tree(state_template)),
            data_iterator=grain.checkpoint.CheckpointRestore(data_iterator),
        ))
        return _rebuilt(state_template, restored['state'])

    def restore_state(self, step: int, state_template: Any) -> Any:
        """The train state of `step` only (for evaluation and sampling)."""
        self.check_fingerprint(step)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(stored_tree(state_template))))
        return _rebuilt(state_template, restored['state'])

    def wait_until_finished(self) -> None:
        """Blocks until every started save is on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finishes pending saves and releases the manager."""
        self.manager.close()
