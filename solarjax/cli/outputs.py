"""The commands' output files: nothing a user made is replaced without --overwrite, and a file or folder is
written beside its path and moved onto it only when complete."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
from collections.abc import Sequence


def existing_outputs(paths: Sequence[pathlib.Path], overwrite: bool) -> str | None:
    """None when the outputs may be written; else the one-line refusal naming what exists."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        return f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: pass --overwrite to replace"
    return None


@contextlib.contextmanager
def replaced_atomically(path: pathlib.Path):
    """Yields a partial path (file or folder) beside `path`; moved onto `path` when the block succeeds (an
    existing folder is moved aside first and deleted after), removed if the block fails."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        if path.is_dir():
            old = path.with_name(f".{path.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(partial, path)
            shutil.rmtree(old)
        else:
            os.replace(partial, path)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial)
        else:
            partial.unlink(missing_ok=True)
