"""Per-image NumPy/SciPy reference of the physical quantities of a patch.

This is the oracle for `solarjax.physics.quantities`: a direct, one-image-at-a-time transcription
of the paper's definitions (Chatterjee, Munoz-Jaramillo & Malanushenko 2025, arXiv:2502.05351,
physical quantities), written for clarity, not speed. The
tests check the JAX implementation against it, and `benchmarks/physics_bench.py` times it as the
baseline. It lives here, beside the benchmarks that need it, so that there is exactly one
reference; tests import it as `benchmarks.reference_physics`.

Conventions (the same as `solarjax.physics`):
  * `image` is one normalised patch s = B / 1000 G, shape [H, W]; pixel (row, col) has index
    (row, col), rows counted from 0 at the first row of the array.
  * The threshold is compared in the image's own dtype, so a float32 image is thresholded exactly
    as float32 JAX code does.
  * Every quantity is NaN when the positive or the negative thresholded polarity is empty; tilt is
    also NaN when the two centroids coincide.
"""

import numpy as np
import scipy.ndimage

QUANTITY_NAMES = (
    "tuf",
    "tpf",
    "tnf",
    "net_flux",
    "psep",
    "tilt",
    "area",
    "lead_polarity",
    "r_value",
)  # written out here, not imported, so that the oracle stands alone
DILATION_SIZE = 7  # side of the square structuring element of the R dilation


def reference_quantities(image: np.ndarray, threshold: float = 0.15) -> dict[str, float]:
    """The nine quantities of one patch (QUANTITY_NAMES), each a Python float.

    Args:
      image: [H, W] normalised field s = B / 1000 G.
      threshold: polarity threshold on s (0.15 = 150 G).
    """
    s = np.asarray(image)
    if s.ndim != 2:
        raise ValueError(f"reference_quantities expects one [H, W] image, got shape {s.shape}")
    height, width = s.shape
    th = s.dtype.type(threshold)
    pos = s > th
    neg = s < -th
    if not pos.any() or not neg.any():
        return {name: float("nan") for name in QUANTITY_NAMES}
    s = s.astype(np.float64)
    rows, cols = np.indices(s.shape, dtype=np.float64)
    row_pos = np.sum(rows[pos] * s[pos]) / np.sum(s[pos])
    col_pos = np.sum(cols[pos] * s[pos]) / np.sum(s[pos])
    row_neg = np.sum(rows[neg] * s[neg]) / np.sum(s[neg])
    col_neg = np.sum(cols[neg] * s[neg]) / np.sum(s[neg])
    separation = np.hypot(row_neg - row_pos, col_neg - col_pos)
    square = np.ones((DILATION_SIZE, DILATION_SIZE), dtype=bool)
    overlap = scipy.ndimage.binary_dilation(pos, structure=square) & scipy.ndimage.binary_dilation(
        neg, structure=square
    )
    tilt = np.arcsin(np.clip((row_neg - row_pos) / separation, -1.0, 1.0)) if separation > 0 else np.nan
    return {
        "tuf": float(np.sum(np.abs(s)) / (height * width)),
        "tpf": float(np.mean(s[s > 0])),
        "tnf": float(np.mean(np.abs(s[s < 0]))),
        "net_flux": float(np.sum(s[pos]) + np.sum(s[neg])),
        "psep": float(separation / np.hypot(height, width)),
        "tilt": float(tilt),
        "area": float((pos.sum() + neg.sum()) / (height * width)),
        "lead_polarity": float(col_pos - col_neg),
        "r_value": float(np.sum(np.abs(s[overlap]))),
    }


def reference_quantities_batch(images: np.ndarray, threshold: float = 0.15) -> dict[str, np.ndarray]:
    """`reference_quantities` over a batch [N, H, W] (or [N, H, W, 1]): dict of float64 arrays [N]."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    per_image = [reference_quantities(image, threshold) for image in images]
    return {name: np.array([q[name] for q in per_image]) for name in per_image[0]}


def random_bipoles(rng: np.random.Generator, count: int, size: int = 128, noise_level: float = 0.02) -> np.ndarray:
    """Synthetic normalised patches [count, size, size] float32: bipolar active regions.

    Each patch holds one to three pairs of Gaussian flux blobs of opposite sign (peak |s| 0.2 to
    1.5 before clipping, widths 2 to 12 pixels, centres anywhere in the central 80%), plus white
    noise of standard deviation `noise_level`, clipped to [-1, 1]: the look of a resized SHARP Br
    patch, with both polarities beyond the 0.15 threshold in nearly every patch.
    """
    axis = np.arange(size, dtype=np.float32)
    images = rng.normal(0.0, noise_level, (count, size, size)).astype(np.float32)
    for image in images:
        for _ in range(rng.integers(1, 4)):
            for sign in (1.0, -1.0):
                row, col = rng.uniform(0.1 * size, 0.9 * size, 2)
                width = rng.uniform(2.0, 12.0)
                peak = sign * rng.uniform(0.2, 1.5)
                profile_row = np.exp(-((axis - row) ** 2) / (2 * width**2))
                profile_col = np.exp(-((axis - col) ** 2) / (2 * width**2))
                image += np.float32(peak) * np.outer(profile_row, profile_col)
    return np.clip(images, -1.0, 1.0)
