"""Cached, resumable pipeline stages for `solarjax demo` and the experiments.

A stage is a function `fn(stage_dir) -> dict` (its JSON-serialisable result) with a config. Its
fingerprint is the hash of its config and of the fingerprints of the stages it depends on; a stage
whose `stage.json` holds the same fingerprint is skipped and its saved result returned, so a rerun
skips finished work. Any other stage runs in an emptied directory, except a `resumable` one (a
trainer) that was interrupted under the same fingerprint (recorded in `stage.started.json`): that
one runs again in its directory and resumes from its own checkpoints.

Nothing a user made is deleted: `claimed(outdir)` refuses a directory that holds files no run wrote
(it marks the directories it owns with `OWNER_MARK`), and a stage directory is only emptied when it
holds a stage record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import pathlib
import shutil
import time
from collections.abc import Callable

from solarjax.fingerprint import config_fingerprint as fingerprint

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class StageRunner:
    """Runs stages in order under `outdir`, printing progress with time estimates.

    Attributes:
      outdir: root of the run; stage `name` lives in `outdir / name`.
      total: number of stages expected (for the `[i/total]` progress prefix).
      log: where progress lines go (default: the ``solarjax.stages`` logger at INFO).
    """

    outdir: pathlib.Path
    total: int
    log: Callable[[str], None] = _log.info
    done: int = 0
    timings: dict = dataclasses.field(default_factory=dict)

    def run(
        self,
        name: str,
        config: dict,
        fn: Callable[[pathlib.Path], dict],
        *,
        depends_on: tuple[str, ...] = (),
        estimate_s: float | None = None,
        resumable: bool = False,
    ) -> dict:
        """Runs (or skips) one stage and returns its result dict.

        Args:
          name: stage name, also its directory name.
          config: everything that changes the stage's output.
          fn: `fn(stage_dir) -> result` doing the work.
          depends_on: names of earlier stages whose fingerprints enter this one's.
          estimate_s: expected seconds on a 2-core CPU, shown before the stage starts.
          resumable: whether `fn` continues from what an interrupted run of the same fingerprint left
            in `stage_dir`; stages that are not start from an empty directory.
        """
        self.done += 1
        stage_dir = pathlib.Path(self.outdir) / name
        upstream = {dep: self._stage_record(dep)["fingerprint"] for dep in depends_on}
        stage_fp = fingerprint({"config": config, "upstream": upstream})
        record_path = stage_dir / "stage.json"
        started_path = stage_dir / "stage.started.json"
        prefix = f"[{self.done}/{self.total}] {name}"
        if record_path.exists():
            record = json.loads(record_path.read_text())
            if record.get("fingerprint") == stage_fp:
                self.log(f"{prefix}: done earlier ({record['seconds']:.0f} s), skipped")
                self.timings[name] = 0.0
                return record["result"]
        interrupted_fp = json.loads(started_path.read_text())["fingerprint"] if started_path.exists() else None
        resuming = resumable and interrupted_fp == stage_fp  # a finished run of stage_fp was skipped above
        if stage_dir.exists() and not resuming:
            if not (record_path.exists() or started_path.exists()):
                raise OutdirNotOwnedError(
                    f"{stage_dir} holds files that no solarjax run wrote (no stage.json): move them or choose "
                    "another output directory"
                )
            shutil.rmtree(stage_dir)
        stage_dir.mkdir(parents=True, exist_ok=True)
        started_path.write_text(json.dumps({"fingerprint": stage_fp}))
        eta = f" (about {_format_seconds(estimate_s)})" if estimate_s else ""
        self.log(f"{prefix}: running{eta}")
        start = time.perf_counter()
        result = fn(stage_dir)
        seconds = time.perf_counter() - start
        record = {"name": name, "fingerprint": stage_fp, "config": config, "seconds": seconds, "result": result}
        tmp = record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, default=str))
        tmp.replace(record_path)
        self.timings[name] = seconds
        self.log(f"{prefix}: finished in {_format_seconds(seconds)}")
        return result

    def _stage_record(self, name: str) -> dict:
        path = pathlib.Path(self.outdir) / name / "stage.json"
        if not path.exists():
            raise RuntimeError(f"stage {name!r} has not finished: {path} is missing")
        return json.loads(path.read_text())


class OutdirError(RuntimeError):
    """An output directory that a run may not use."""


class OutdirInUseError(OutdirError):
    """Another process is running stages in the same output directory."""


class OutdirNotOwnedError(OutdirError):
    """An output directory (or a stage directory in it) holds files that no solarjax run wrote."""


OWNER_MARK = ".solarjax-run"
"""File a run writes in every output directory it owns."""


@contextlib.contextmanager
def claimed(outdir: pathlib.Path, known_entries: frozenset[str] = frozenset()):
    """Creates `outdir` if needed, locks it (`exclusive`) and checks that this project owns it.

    A directory is owned when it holds `OWNER_MARK`, or is empty, or holds only `known_entries` (the names
    an older solarjax wrote there); it is then marked. Stage directories are checked again by `StageRunner`.

    Raises:
      OutdirNotOwnedError: `outdir` holds anything else (nothing is deleted or overwritten).
      OutdirInUseError: another process holds the lock.
    """
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    with exclusive(outdir):
        mark = outdir / OWNER_MARK
        if not mark.exists():
            foreign = sorted(p.name for p in outdir.iterdir() if p.name not in known_entries | {".lock"})
            if foreign:
                shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
                raise OutdirNotOwnedError(
                    f"{outdir} already holds files that no solarjax run wrote ({shown}): choose an empty or new "
                    "output directory"
                )
            mark.write_text("This directory is written by solarjax; its stage folders may be emptied and rerun.\n")
        yield outdir


@contextlib.contextmanager
def exclusive(outdir: pathlib.Path):
    """Holds an exclusive lock on ``outdir/.lock`` for the block; a second run there fails at once.

    Raises:
      OutdirInUseError: another process holds the lock (two runs would write the same stages).
    """
    lock_path = pathlib.Path(outdir) / ".lock"
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutdirInUseError(
                f"{outdir} is in use by another run (it holds {lock_path}): wait for it to finish or "
                "choose another output directory"
            ) from None
        yield


def _format_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
