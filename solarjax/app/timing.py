"""Wall time of a request's stages, reported in its Server-Timing header."""

import contextlib
import time


class StageTimer:
    """Wall time of a request's stages, in ms, for its Server-Timing header (shown by browsers' network
    panels; the load benchmark reads it for the per-stage breakdown)."""

    def __init__(self):
        self.stages: dict[str, float] = {}

    def mark(self, name: str, milliseconds: float) -> None:
        self.stages[name] = self.stages.get(name, 0.0) + milliseconds

    @contextlib.contextmanager
    def stage(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.mark(name, (time.perf_counter() - started) * 1e3)

    def header(self) -> str:
        """``name;dur=1.2, ...`` (RFC Server-Timing syntax)."""
        return ", ".join(f"{name};dur={value:.2f}" for name, value in self.stages.items())
