"""Content fingerprints: short hashes of what an artefact computes, checked by the artefacts built on it;
the SHA-256 of a file; the one error raised when an artefact belongs to another model."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np


class FingerprintMismatchError(ValueError):
    """An artefact was made by another model than the one asked for: a checkpoint of another model config,
    embeddings (a table, an index) of another encoder."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest (64 digits) of a file's bytes, read in 1 MiB blocks."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def config_fingerprint(config: Any) -> str:
    """16 hex digits of sha256 over a JSON-serialisable value (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def weights_fingerprint(*labels: str, weights: Any) -> str:
    """16 hex digits of sha256 over `labels` and every leaf of the pytree `weights` (as float32, with its path).

    Two runs of one config, or two checkpoints of one run, give different fingerprints.
    """
    digest = hashlib.sha256()
    for label in labels:
        digest.update(label.encode())
    for path, leaf in jax.tree_util.tree_leaves_with_path(weights):
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(np.ascontiguousarray(np.asarray(leaf, np.float32)).tobytes())
    return digest.hexdigest()[:16]
