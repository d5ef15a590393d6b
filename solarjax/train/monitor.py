"""Run monitoring: JSONL metrics and a guard against NaN/Inf (sample grids: `solarjax.plotting`, re-exported).

``workdir/metrics.jsonl`` holds one JSON object per line, ``{"step": int, <name>: float, ...}``;
training metrics and quality figures are separate lines of the same file.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping

import numpy as np

from solarjax.plotting import hmimag_colormap, save_comparison_grid, save_sample_grid, show_field  # noqa: F401
from solarjax.units import FIELD_RANGE_GAUSS, GAUSS_PER_UNIT  # noqa: F401


class NonFiniteError(FloatingPointError):
    """Training produced NaN or Inf."""


class MetricsWriter:
    """Appends ``{"step": step, **metrics}`` lines to a JSONL file (flushed after each line)."""

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def forget_after(self, step: int) -> None:
        """Drops the lines of steps after `step` (a resumed run repeats them), rewriting the file atomically."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
        if len(kept) != len(lines):
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_text("".join(kept))
            os.replace(partial, self.path)

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """Appends one line; values become plain floats (NaN and Inf are written as null)."""
        record = {"step": int(step)}
        for name, value in metrics.items():
            value = float(value)
            record[name] = value if math.isfinite(value) else None
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a metrics JSONL file, in order."""
    with pathlib.Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def non_finite_names(metrics: Mapping[str, float]) -> list[str]:
    """Names of the metrics whose value is NaN or +-Inf, sorted."""
    return sorted(name for name, value in metrics.items() if not np.isfinite(value))


def check_finite(step: int, metrics: Mapping[str, float], last_good_checkpoint: str | None) -> None:
    """Raises `NonFiniteError` naming the step, the bad metrics and the checkpoint to resume from.

    Args:
      step: train step the metrics belong to.
      metrics: scalar metrics of that step (host floats).
      last_good_checkpoint: path of the newest checkpoint saved before the failure, or None.
    """
    bad = non_finite_names(metrics)
    if bad:
        values = ", ".join(f"{name}={float(metrics[name])}" for name in bad)
        kept = (
            f"the last good checkpoint is kept at {last_good_checkpoint}"
            if last_good_checkpoint
            else "no checkpoint had been saved yet"
        )
        raise NonFiniteError(
            f"non-finite training metrics at step {step} ({values}); training stopped and nothing "
            f"after that step was saved; {kept}. Lower the learning rate or check the data "
            f"for NaN/Inf values."
        )
