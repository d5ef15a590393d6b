"""The paper's preprocessing of SHARP Br patches into 128x128 images in [-1, 1].

Steps (Chatterjee, Munoz-Jaramillo & Malanushenko 2025, arXiv:2502.05351, data): clip the field to
+-1000 G, divide by 1000 G (so 1.0 = 1000 G),
replace NaN (no data) by 0, and resize the whole patch to ``size x size`` with an antialiased
bilinear filter (the aspect ratio is not kept). NaN becomes 0 before the resize so that a missing
pixel does not spread NaN over its neighbours.

The resize is separable (rows, then columns) with taps from `resize_taps`. Each output pixel is the normalised average of the input pixels under a triangle
(bilinear) kernel centred on the output pixel's centre; when downsampling the kernel is widened by
the scale factor, which low-pass filters before sampling (antialiasing). This is the filter of
``jax.image.resize(method='linear', antialias=True)`` and of PIL / torchvision's antialiased
bilinear resize (parity is tested). In NumPy it needs no compilation per patch shape (SHARP
patches come in as many shapes as there are HARPs), where jax.image.resize compiles for each.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from solarjax.data.fits import SharpPatch
from solarjax.units import GAUSS_PER_UNIT

NORMALISATION_GAUSS = GAUSS_PER_UNIT
"""Field strength in G that maps to 1.0; images are clipped to [-1, 1], i.e. to +-1000 G."""

DEFAULT_SIZE = 128
"""Side of the preprocessed image in pixels."""


@dataclasses.dataclass(frozen=True, eq=False)
class PreprocessedPatch:
    """A preprocessed patch with what is needed to go back to physical units.

    Attributes:
      image: float32 [size, size], B / `NORMALISATION_GAUSS` clipped to [-1, 1], 0 where no data.
      pixel_size_mm: (row, col) size on the Sun of one image pixel in Mm, i.e. the original pixel
        size times (H / size, W / size); None when the patch has no plate scale.
      original_shape: (H, W) of the patch before resizing.
      meta: the patch's metadata.
    """

    image: np.ndarray
    pixel_size_mm: tuple[float, float] | None
    original_shape: tuple[int, int]
    meta: dict


def field_in_gauss(br) -> np.ndarray:
    """A field as a plain array in G: an astropy Quantity (G, T, Mx/cm^2) is converted, a bare array is
    taken to be in G already.

    Raises:
      ValueError: a Quantity whose unit is not a magnetic field (e.g. Mx or a dimensionless one).
    """
    unit = getattr(br, "unit", None)
    if unit is None:
        return np.asarray(br)
    import astropy.units as u

    try:
        return np.asarray(u.Quantity(br).to_value(u.G))
    except u.UnitConversionError:
        raise ValueError(f"expected a magnetic field (G, T or Mx/cm^2), got a quantity in {unit}") from None


def normalise_field(br_gauss: np.ndarray) -> np.ndarray:
    """Clips a field to +-`NORMALISATION_GAUSS`, divides by it and sets NaN to 0.

    Args:
      br_gauss: [...] field in G (or an astropy Quantity in G, T or Mx/cm^2), NaN where there is no data.

    Returns:
      float32 [...] in [-1, 1].
    """
    br_gauss = field_in_gauss(br_gauss)
    clipped = np.clip(np.asarray(br_gauss, dtype=np.float32), -NORMALISATION_GAUSS, NORMALISATION_GAUSS)
    return np.nan_to_num(clipped / np.float32(NORMALISATION_GAUSS), nan=0.0)


@functools.lru_cache(maxsize=1024)
def resize_taps(input_size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased bilinear resampling along one axis, as taps (input indices and weights).

    Output pixel i has its centre at input coordinate x_i = (i + 0.5) * input_size / output_size - 0.5
    (pixel centres at integers). Its weights are the triangle kernel max(0, 1 - |j - x_i| / w) over
    input pixels j, with half-width w = max(1, input_size / output_size) in input pixels, normalised
    to sum to 1 over the pixels inside the image (which handles the borders).

    Args:
      input_size: number of input pixels along the axis.
      output_size: number of output pixels along the axis.

    Returns:
      indices: int [output_size, taps], input pixels feeding each output pixel (clamped to the image;
        a clamped tap has weight 0).
      weights: float64 [output_size, taps], each row summing to 1.
      Both read-only (they are cached).
    """
    if input_size < 1 or output_size < 1:
        raise ValueError(f"resize sizes must be positive, got {input_size} -> {output_size}")
    ratio = input_size / output_size
    half_width = max(1.0, ratio)
    centres = (np.arange(output_size) + 0.5) * ratio - 0.5
    first = np.floor(centres - half_width).astype(np.int64) + 1
    indices = first[:, None] + np.arange(int(np.ceil(2.0 * half_width)) + 1)[None, :]
    weights = np.maximum(0.0, 1.0 - np.abs(indices - centres[:, None]) / half_width)
    weights[(indices < 0) | (indices >= input_size)] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    indices = np.clip(indices, 0, input_size - 1)
    indices.flags.writeable = False
    weights.flags.writeable = False
    return indices, weights


def _resample_rows(image: np.ndarray, output_size: int) -> np.ndarray:
    """[H, W] -> [output_size, W] with `resize_taps` along the first axis."""
    indices, weights = resize_taps(image.shape[0], output_size)
    return np.einsum("ot,otw->ow", weights, image[indices])


def resize_antialiased(image: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Resizes a finite 2-D image to size x size with the antialiased bilinear filter.

    Works on taps (about 2 * H / size + 1 per output pixel), not dense matrices: no BLAS call, so
    data-loading worker processes do not compete for BLAS threads.

    Args:
      image: [H, W] finite values.
      size: side of the output.

    Returns:
      float32 [size, size].
    """
    resized_rows = _resample_rows(np.asarray(image, dtype=np.float64), size)
    return _resample_rows(resized_rows.T, size).T.astype(np.float32)


def preprocess(br_gauss: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """The paper's preprocessing of one Br patch.

    Args:
      br_gauss: [H, W] radial field in G (or an astropy Quantity in G, T or Mx/cm^2, converted); NaN
        where there is no data.
      size: side of the output image in pixels.

    Returns:
      float32 [size, size] in [-1, 1]: clip(B, +-1000 G) / 1000 G, NaN -> 0, antialiased bilinear
      resize of the whole patch (aspect ratio not kept).

    Raises:
      ValueError: for an input that is not a non-empty 2-D array, a Quantity that is not a field, or a
        size that is not positive.
    """
    br_gauss = field_in_gauss(br_gauss)
    if br_gauss.ndim != 2 or br_gauss.size == 0:
        raise ValueError(f"preprocess expects a non-empty [H, W] field, got shape {br_gauss.shape}")
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"preprocess size must be a positive integer, got {size!r}")
    return resize_antialiased(normalise_field(br_gauss), int(size))


def preprocess_patch(patch: SharpPatch, size: int = DEFAULT_SIZE) -> PreprocessedPatch:
    """`preprocess` applied to a `SharpPatch`, keeping its plate scale and metadata.

    Args:
      patch: a patch read by `read_sharp` (its ``data`` in G).
      size: side of the output image in pixels.

    Returns:
      `PreprocessedPatch` whose pixel_size_mm is the patch's (row, col) pixel size times
      (H / size, W / size), so that physical units can be recovered from the image.
    """
    image = preprocess(patch.data, size)
    height, width = patch.data.shape
    original_pixel_mm = patch.meta.get("pixel_size_mm")
    pixel_size_mm = None
    if original_pixel_mm is not None:
        pixel_size_mm = (original_pixel_mm[0] * height / size, original_pixel_mm[1] * width / size)
    return PreprocessedPatch(
        image=image,
        pixel_size_mm=pixel_size_mm,
        original_shape=(height, width),
        meta=dict(patch.meta),
    )
