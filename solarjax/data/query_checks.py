"""Value checks of query arrays, so that a map in the wrong units or without data is refused by name, and the
reader of SHARP Br query files (`read_br_queries`) that applies them.

Two conventions meet at a query: Br maps in gauss (SHARP FITS files, ``.npy`` queries of the CLI and
the web app) and preprocessed patches s = clip(B, +-1000 G) / 1000 G in [-1, 1] (what the encoder and
`solarjax.retrieval.Index.search_images` take). A Br map has pixels of tens to thousands of gauss
(HMI's noise alone is ~10 G), so a "gauss" map whose largest |value| is at most `GAUSS_FLOOR` is a
preprocessed patch given by mistake; a "preprocessed" patch with values outside [-1, 1] is a gauss map.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

GAUSS_FLOOR = 1.0
"""Largest |Br| (G) a gauss map must exceed; at or below it the map is taken for s = B / 1000 G."""

NORMALISED_LIMIT = 1.0 + 1e-3
"""Largest |s| a preprocessed patch may hold (clipping gives exactly 1; a little rounding is allowed)."""


def check_gauss_map(field, what: str) -> np.ndarray:
    """`field` as float32 after checking it is a Br map in gauss with data.

    Args:
      field: [H, W] (or any shape) radial field in G; NaN where there is no data.
      what: names the map in the error (a path, ``file.npy[3]``).

    Raises:
      ValueError: not numbers, any infinite value, no finite pixel, or largest |value| <= `GAUSS_FLOOR`
        (a preprocessed B / 1000 G patch).
    """
    field = np.asarray(field)
    if not (np.issubdtype(field.dtype, np.floating) or np.issubdtype(field.dtype, np.integer)):
        raise ValueError(f"{what}: a Br map must hold numbers (gauss), got dtype {field.dtype}")
    field = field.astype(np.float32)
    if np.isinf(field).any():
        raise ValueError(f"{what}: the map holds {int(np.isinf(field).sum())} infinite values")
    finite = field[np.isfinite(field)]
    if finite.size == 0:
        raise ValueError(f"{what}: the map has no finite pixel (all NaN): no data to search with")
    peak = float(np.abs(finite).max())
    if peak <= GAUSS_FLOOR:
        raise ValueError(
            f"{what}: largest |Br| is {peak:.3g} G, which looks like a normalised patch (B / 1000 G); "
            "queries are Br in gauss: multiply by 1000"
        )
    return field


def check_normalised_images(images, what: str) -> np.ndarray:
    """`images` as float32 after checking they are preprocessed patches (s = B / 1000 G, or normalised AIA).

    Raises:
      ValueError: a non-finite value, or a value outside [-1, 1] (a map in gauss).
    """
    images = np.asarray(images, np.float32)
    bad = ~np.isfinite(images)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} non-finite values (NaN or inf) in the patches")
    peak = float(np.abs(images).max()) if images.size else 0.0
    if peak > NORMALISED_LIMIT:
        raise ValueError(
            f"{what}: values up to {peak:.4g}, outside [-1, 1]: this looks like Br in gauss (or raw AIA "
            "intensities); preprocess first (SHARP: solarjax.data.preprocess, clip +-1000 G and divide by "
            "1000 G; AIA: solarjax.data.aia_prep.normalise_channels)"
        )
    return images


def read_br_queries(paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, list]:
    """SHARP Br FITS files read and preprocessed as in training, to search with.

    Returns:
      The preprocessed patches float32 [N, 128, 128] (s = B / 1000 G) and the patches read
      (`solarjax.data.SharpPatch`; their ``meta`` gives each query's HARP and T_REC).

    Raises:
      SharpReadError: an unreadable file, named.
      ValueError: a segment other than Br, or a map that `check_gauss_map` refuses; the file named.
    """
    from solarjax.data.fits import read_sharp
    from solarjax.data.preprocess import preprocess_patch

    patches = [read_sharp(path) for path in paths]
    for patch in patches:
        if patch.segment != "Br":
            raise ValueError(f"{patch.path}: a {patch.segment} segment: the index holds Br patches")
        check_gauss_map(patch.data, str(patch.path))
    return np.stack([preprocess_patch(patch).image for patch in patches]), patches
