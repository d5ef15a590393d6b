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

A checkpoint that cannot be read (a truncated or garbled array file, a deleted metadata file) is
skipped: `latest_step` passes over steps whose run record is unreadable, and the restores fall back
from an unreadable step to the newest older one that reads, logging a warning that names the bad
folder. A training resume moves the bad folder aside (``checkpoints.unreadable/<step>``) so the step
can be saved again; readers leave it in place. `CheckpointReadError` when no step reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grain
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from solarjax.fingerprint import FingerprintMismatchError, config_fingerprint  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


def stored_tree(state: Any) -> Any:
    """What is written for a state: a dataclass state becomes the dict of its fields that are not None
    (so a field added later with the default None, such as the GAN's ``g_ema_params`` when no EMA is
    kept, leaves the on-disk layout of older checkpoints unchanged); anything else as it is."""
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return {
            field.name: getattr(state, field.name)
            for field in dataclasses.fields(state)
            if getattr(state, field.name) is not None
        }
    return state


def _rebuilt(template: Any, restored: Any) -> Any:
    """The restored tree in the template's type (inverse of `stored_tree`)."""
    if dataclasses.is_dataclass(template) and not isinstance(template, type):
        return dataclasses.replace(template, **restored)
    return restored


class CheckpointReadError(ValueError):
    """No checkpoint of a run could be read (each step tried is named with its reason)."""


class ArtefactKindError(ValueError):
    """A run directory holds another kind of model than the one asked for (a GAN for an encoder...)."""


def run_kind(config: Mapping[str, Any]) -> str:
    """'gan', 'simsiam' or 'unknown': the kind of model a saved run config trains (by its model fields)."""
    model = config.get("model") or {}
    if "latent_dim" in model and "arch" in model:
        return "gan"
    if "projector_dims" in model:
        return "simsiam"
    return "unknown"


def describe_run(config: Mapping[str, Any]) -> str:
    """A few words naming the model a saved run config trains, for error messages."""
    kind = run_kind(config)
    model = config.get("model") or {}
    if kind == "gan":
        return f"a GAN run (generator {model.get('arch')}, latent size {model.get('latent_dim')})"
    if kind == "simsiam":
        return f"a SimSiam encoder run ({model.get('input_channels', 1)} input channel(s))"
    return f"a run of an unknown model (model fields {sorted(model)})"


def missing_run_hint(workdir: str | os.PathLike, demo_folder: str) -> str:
    """For a `workdir` without ``checkpoints/``: '' or '; ' and what is there instead (a file, or a demo
    output directory whose `demo_folder` sub-folder is the run that was probably meant)."""
    workdir = os.fspath(workdir)
    if os.path.isfile(workdir):
        return f"; {workdir} is a file, not a run directory"
    if os.path.isdir(os.path.join(workdir, demo_folder, "checkpoints")):
        return f"; did you mean {os.path.join(workdir, demo_folder)}?"
    return ""


class _DrainingEventLoop(asyncio.SelectorEventLoop):
    """An event loop that, when closed, first waits for its unfinished tasks and collects their errors.

    orbax runs each restore in a fresh loop and closes it as soon as the restore's coroutine ends.
    When one array read fails, its sibling reads are still pending in TensorStore; closed under them,
    the loop leaves hundreds of lines of "Event loop is closed" and "exception was never retrieved"
    tracebacks on stderr, printed whenever TensorStore or the garbage collector meets them."""

    def close(self) -> None:
        if not self.is_running() and not self.is_closed():
            leftovers = list(asyncio.all_tasks(self))
            if leftovers:
                self.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        super().close()


class _DrainingPolicy(asyncio.DefaultEventLoopPolicy):
    _loop_factory = _DrainingEventLoop


@contextlib.contextmanager
def _draining_event_loops():
    """Within: event loops created by `asyncio.new_event_loop` (orbax's) drain before they close."""
    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_DrainingPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)


def _reason(error: BaseException) -> str:
    """One line describing why a checkpoint read failed (orbax / TensorStore messages run to pages)."""
    text = " ".join(str(error).split())
    text = text.split(" See full TensorStore details")[0]
    return f"{type(error).__name__}: {text[:240]}" if text else type(error).__name__


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

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        fingerprint: str | None,
        keep_last: int = 3,
        best_metric: str = "frechet",
        best_mode: str = "min",
    ):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        if best_mode not in ("min", "max"):
            raise ValueError(f"best_mode must be 'min' or 'max', got {best_mode!r}")
        self.best_metric = best_metric
        rank = lambda metrics: float(metrics[best_metric])  # noqa: E731
        keep = checkpoint_managers.AnyPreservationPolicy(
            [
                checkpoint_managers.LatestN(n=keep_last),
                checkpoint_managers.BestN(
                    get_metric_fn=rank, reverse=best_mode == "min", n=1, keep_checkpoints_without_metrics=False
                ),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=keep, best_fn=rank, best_mode=best_mode, enable_async_checkpointing=True, create=True
        )
        self.directory = os.fspath(directory)
        self.manager = ocp.CheckpointManager(os.path.abspath(self.directory), options=options)
        self._unreadable: dict[int, str] = {}  # step -> reason, found by this reader
        self._readable: set[int] = set()  # run record read, or written by this process (maybe in flight)
        if fingerprint is None:
            latest = self.latest_step()
            if latest is None and self._unreadable:
                raise CheckpointReadError(
                    f"no readable checkpoint in {self.directory} ("
                    + "; ".join(f"step {s}: {r}" for s, r in sorted(self._unreadable.items()))
                    + ")"
                )
            if latest is None:
                raise FileNotFoundError(f"no checkpoints in {self.directory}")
            fingerprint = self.run_info(latest)["fingerprint"]
        self.fingerprint = fingerprint

    def latest_step(self) -> int | None:
        """The newest saved step whose run record reads (unreadable ones are skipped with a warning), or None."""
        for step in sorted(self.manager.all_steps(), reverse=True):
            if self._readable_record(step):
                return step
        return None

    def best_step(self) -> int | None:
        """The saved step with the best ``best_metric`` (the latest when none has metrics or the best
        one is unreadable)."""
        best = self.manager.best_step()
        return self.latest_step() if best is None or not self._readable_record(best) else best

    def _readable_record(self, step: int) -> bool:
        """Whether `step`'s run record reads (cached; steps saved by this process are trusted)."""
        if step in self._readable:
            return True
        if step not in self._unreadable:
            try:
                self.run_info(step)
                self._readable.add(step)
                return True
            except Exception as error:  # orbax raises bare Exception for some storage errors
                self._mark_unreadable(step, _reason(error))
        return False

    def _mark_unreadable(self, step: int, reason: str) -> None:
        self._unreadable[step] = reason
        self._readable.discard(step)
        log.warning(
            "checkpoint %s is unreadable (%s); using an older checkpoint",
            os.path.join(self.directory, str(step)),
            reason,
        )

    def require_kind(self, kind: str, workdir: str | os.PathLike, command: str) -> None:
        """Raises `ArtefactKindError` unless the newest readable checkpoint trains a `kind` model
        ('gan' or 'simsiam'); `command` is what makes the right directory (named in the message);
        `FileNotFoundError` when there is no checkpoint."""
        latest = self.latest_step()
        if latest is None:
            raise FileNotFoundError(f"no checkpoints in {self.directory}")
        config = self.run_info(latest)["config"]
        if run_kind(config) != kind:
            wanted = {"gan": "a GAN", "simsiam": "a SimSiam encoder"}.get(kind, kind)
            raise ArtefactKindError(
                f"{os.fspath(workdir)} holds {describe_run(config)}, not {wanted}: pass the "
                f"work directory of `{command}`"
            )

    def all_steps(self) -> list[int]:
        """Every step still on disk, ascending."""
        return sorted(self.manager.all_steps())

    def run_info(self, step: int) -> dict:
        """The ``{"fingerprint", "config"}`` record of a saved step."""
        with _draining_event_loops():
            restored = self.manager.restore(step, args=ocp.args.Composite(run=ocp.args.JsonRestore()))
        return dict(restored["run"])

    def check_fingerprint(self, step: int) -> None:
        """Raises `FingerprintMismatchError` if `step` was saved for another model config."""
        saved = self.run_info(step)["fingerprint"]
        if saved != self.fingerprint:
            raise FingerprintMismatchError(
                f"checkpoint {self.directory}/{step} holds a model with fingerprint {saved}, but "
                f"this run's model config has fingerprint {self.fingerprint}: use a new work "
                f"directory or the model config the checkpoint was trained with"
            )

    def save(
        self,
        step: int,
        state: Any,
        data_iterator: Iterator,
        config: Mapping[str, Any],
        metrics: Mapping[str, float] | None = None,
    ) -> bool:
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
            run=ocp.args.JsonSave({"fingerprint": self.fingerprint, "config": dict(config)}),
        )
        metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
        self._unreadable.pop(int(step), None)
        self._readable.add(int(step))
        return self.manager.save(step, args=args, metrics=metrics)

    def restore(self, step: int, state_template: Any, data_iterator: Iterator) -> Any:
        """The train state of `step` (or, when it is unreadable, of the newest older step that reads),
        and `data_iterator` moved to the position saved with it. For resuming a run: unreadable step
        folders are moved aside to ``<directory>.unreadable/<step>`` so those steps can be saved again.

        Args:
          step: a saved step.
          state_template: a state pytree with the wanted structure, dtypes and shardings.
          data_iterator: the run's freshly built iterator; restored in place.

        Raises:
          FingerprintMismatchError: the checkpoint belongs to another model config.
          CheckpointReadError: neither `step` nor any older step reads.
        """

        def read(candidate: int) -> Any:
            return self.manager.restore(
                candidate,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(stored_tree(state_template)),
                    data_iterator=grain.checkpoint.CheckpointRestore(data_iterator),
                ),
            )["state"]

        _, state = self._newest_readable(step, read, fallback=True)
        self._move_aside_unreadable()
        return _rebuilt(state_template, state)

    def restore_state(self, step: int, state_template: Any) -> Any:
        """The train state of `step` only (for evaluation and sampling); no fallback."""
        return self.read_state(step, state_template, fallback=False)[1]

    def read_state(self, step: int, state_template: Any, *, fallback: bool) -> tuple[int, Any]:
        """``(step read, train state)``: `step`, or with ``fallback`` the newest older step that reads
        when `step` does not (a warning names the unreadable one). Nothing on disk changes.

        Raises:
          FingerprintMismatchError: the checkpoint belongs to another model config.
          CheckpointReadError: `step` does not read (and, with ``fallback``, no older step does).
        """

        def read(candidate: int) -> Any:
            return self.manager.restore(
                candidate, args=ocp.args.Composite(state=ocp.args.StandardRestore(stored_tree(state_template)))
            )["state"]

        chosen, state = self._newest_readable(step, read, fallback=fallback)
        return chosen, _rebuilt(state_template, state)

    def _newest_readable(self, step: int, read: Callable[[int], Any], *, fallback: bool) -> tuple[int, Any]:
        """Tries `read` on `step`, then (with `fallback`) on each older step, newest first."""
        older = sorted((s for s in self.manager.all_steps() if s < step), reverse=True) if fallback else []
        tried = []
        for candidate in [step, *older]:
            reason = self._unreadable.get(candidate)
            if reason is None:
                try:
                    self.check_fingerprint(candidate)
                    with _draining_event_loops():
                        return candidate, read(candidate)
                except FingerprintMismatchError:
                    raise
                except Exception as error:  # orbax / TensorStore raise bare Exception for damaged files
                    reason = _reason(error)
                    if fallback:
                        self._mark_unreadable(candidate, reason)
            tried.append(f"step {candidate}: {reason}")
        raise CheckpointReadError(
            f"no readable checkpoint in {self.directory} ({'; '.join(tried) if tried else 'no steps'})"
        )

    def _move_aside_unreadable(self) -> None:
        """Moves the unreadable step folders found so far to ``<directory>.unreadable/<step>`` (the main
        process moves them; every process forgets them)."""
        import jax

        moved = False
        for step in sorted(self._unreadable):
            source = os.path.join(self.directory, str(step))
            if jax.process_index() != 0:
                del self._unreadable[step]
                moved = True
            elif step in self.manager.all_steps() and os.path.isdir(source):
                target = os.path.join(f"{os.path.normpath(self.directory)}.unreadable", str(step))
                copies = 0
                while os.path.exists(target):  # an earlier bad copy of this step is kept too
                    copies += 1
                    target = os.path.join(f"{os.path.normpath(self.directory)}.unreadable", f"{step}.{copies}")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(source, target)
                log.warning("moved the unreadable checkpoint %s to %s", source, target)
                del self._unreadable[step]
                moved = True
        if moved:
            self.manager.reload()

    def wait_until_finished(self) -> None:
        """Blocks until every started save is on disk."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finishes pending saves and releases the manager."""
        self.manager.close()
