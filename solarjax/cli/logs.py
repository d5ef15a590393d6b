"""Logging of the `solarjax` command: progress lines on stderr, their amount set by -v / -q."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is when a record arrives (tests and notebooks swap it)."""

    _solarjax = True

    def __init__(self):
        super().__init__()
        self.setFormatter(_ProgramFormatter())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _ProgramFormatter(logging.Formatter):
    """solarjax's lines as they are; other libraries' with their level and logger name."""

    def format(self, record):
        if record.name == "solarjax" or record.name.startswith("solarjax."):
            return record.getMessage()
        return f"{record.levelname} {record.name}: {record.getMessage()}"


def configure_logging(verbosity: int = 0) -> None:
    """The program's logging (the library only logs; this is for the `solarjax` command): one stderr handler
    on the root logger, added once; ``solarjax.*`` at INFO (verbosity 1+: DEBUG, -1: WARNING, -2: ERROR),
    other libraries at WARNING (verbosity 2+: INFO) so orbax and absl progress chatter is hidden."""
    root = logging.getLogger()
    if not any(getattr(handler, "_solarjax", False) for handler in root.handlers):
        root.addHandler(_StderrHandler())
    own = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG if verbosity > 0 else logging.ERROR)
    logging.getLogger("solarjax").setLevel(own)
    others = logging.INFO if verbosity >= 2 else (logging.ERROR if verbosity <= -2 else logging.WARNING)
    root.setLevel(others)
    for noisy in ("absl", "orbax", "jax"):  # set their own levels, so they cannot override the root's
        logging.getLogger(noisy).setLevel(others)
