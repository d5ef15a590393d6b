"""CME patches from coronagraph image sequences: the views of the `cme_patches` dataset.

A patch is one difference image of a LASCO sequence (running: frame i minus frame i - 1; base: frame i
minus the first) made comparable with the synthetic CMEs of `solarjax.data.cme_synthetic`:

1. relative difference: the difference divided by the reference frame's radial background (the median
   brightness of the reference in rings one pixel wide about the Sun), which divides out the steep
   radial fall of the K+F corona (so a front is as visible at 5 Rsun as at 3), then by `RELATIVE_SCALE`
   and clipped to [-1, 1] (a brightening of 100% of the background is 1);
2. resampled (bilinear) on a 128x128 grid with the Sun at its centre, north up (row 0 at the top), east
   left, half side = the detector's field stop (`solarjax.cme_physics.GEOMETRIES`: 6 Rsun for C2, as the
   synthetic images; 30 Rsun for C3); 0 outside the grid's and the image's field of view;
3. the polar view: the same relative difference on a (height, position angle) grid of `POLAR_SHAPE`,
   heights from the grid's occulter to its field stop, position angles (i + 0.5) * 2 deg from north
   through east (`solarjax.data.lasco.polar_remap`).

Helioviewer JPEG2000 frames hold display bytes, not calibrated brightness: their relative differences are
only roughly those of calibrated data (the byte scale is not linear).
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Sequence

import numpy as np

from solarjax.cme_physics import C2_GEOMETRY, GEOMETRIES, Geometry
from solarjax.data import cme_synthetic, lasco

RELATIVE_SCALE = 1.0
"""Relative brightening (difference / background) stored as 1."""

POLAR_SHAPE = (64, 180)
"""(heights, position angles) of the polar view."""


@dataclasses.dataclass(frozen=True)
class CmePatch:
    """One CME difference patch of a LASCO sequence.

    Attributes:
      image: float32 [128, 128] relative difference in [-1, 1] on the detector's grid (module docstring).
      polar: float32 [64, 180] the polar view (rows: heights, columns: position angles), in [-1, 1].
      t_obs: time of the later frame (UTC); reference_t_obs: time of the frame subtracted.
      detector: 'C2' or 'C3'; kind: 'running' or 'base'.
      source: the two files' names, 'reference;later'.
    """

    image: np.ndarray
    polar: np.ndarray
    t_obs: datetime.datetime
    reference_t_obs: datetime.datetime
    detector: str
    kind: str
    source: str


def radial_background(image: lasco.CoronagraphImage) -> np.ndarray:
    """float64 [H, W]: the median of the image in rings one pixel wide about the Sun inside its field of view,
    interpolated linearly in radius at every pixel; NaN where no ring has a positive median."""
    from scipy import ndimage

    radius = lasco.radius_rsun(image)
    ring_width = image.meta["arcsec_per_px"] / image.meta["rsun_arcsec"]
    seen = lasco.field_of_view_mask(image) & np.isfinite(image.data)
    rings = np.floor(radius / ring_width).astype(np.int64)
    labels = np.unique(rings[seen])
    if labels.size == 0:
        return np.full(image.data.shape, np.nan)
    medians = np.asarray(ndimage.median(image.data, np.where(seen, rings, -1), labels), np.float64)
    positive = medians > 0
    if not positive.any():
        return np.full(image.data.shape, np.nan)
    centres = (labels[positive] + 0.5) * ring_width
    return np.interp(radius, centres, medians[positive], left=np.nan, right=np.nan)


def grid_offsets(
    geometry: Geometry = C2_GEOMETRY, size: int = cme_synthetic.IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """(X west, Y north) in Rsun of the patch grid's pixel centres (row 0 at the top); each [size, size]."""
    centre = (size - 1) / 2
    row, column = np.mgrid[0:size, 0:size].astype(np.float64)
    scale = geometry.rsun_per_pixel(size)
    return (column - centre) * scale, (centre - row) * scale


def _stored(values: np.ndarray) -> np.ndarray:
    """Relative brightening -> stored units: / RELATIVE_SCALE, NaN -> 0, clipped to [-1, 1], float32."""
    return np.clip(
        np.nan_to_num(np.asarray(values) / RELATIVE_SCALE, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0
    ).astype(np.float32)


def patch_of(
    later: lasco.CoronagraphImage,
    difference: np.ndarray,
    reference: lasco.CoronagraphImage,
    geometry: Geometry,
    size: int = cme_synthetic.IMAGE_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """(image [size, size], polar `POLAR_SHAPE`) of one difference [H, W] of `later` minus `reference`."""
    relative = difference / radial_background(reference)
    east_west, north_south = grid_offsets(geometry, size)
    radius = np.hypot(east_west, north_south)
    inside = (radius >= geometry.occulter_rsun) & (radius <= geometry.field_stop_rsun)
    image = np.where(inside, lasco.sample_sky(later, east_west, north_south, relative), np.nan)
    polar = lasco.polar_remap(
        later, relative, num_angles=POLAR_SHAPE[1], num_heights=POLAR_SHAPE[0], heights_rsun=tuple(geometry)
    )
    return _stored(image), _stored(polar)


def sequence_patches(
    images: Sequence[lasco.CoronagraphImage],
    kind: str = "running",
    geometry: Geometry | None = None,
    size: int = cme_synthetic.IMAGE_SIZE,
) -> list[CmePatch]:
    """The N - 1 CME patches of a time-ordered sequence of N >= 2 frames of one detector.

    Args:
      images: frames of one detector, shape and units, in increasing time order.
      kind: 'running' or 'base' (`lasco.difference_images`).
      geometry: the patch grid's field of view; default the detector's (`cme_physics.GEOMETRIES`).
      size: grid side in pixels.

    Raises:
      ValueError: as `lasco.difference_images`.
    """
    differences = lasco.difference_images(images, kind)
    geometry = geometry or GEOMETRIES[images[0].meta["detector"]]
    patches = []
    for i, difference in enumerate(differences):
        reference, later = (images[0] if kind == "base" else images[i]), images[i + 1]
        image, polar = patch_of(later, difference, reference, geometry, size)
        patches.append(
            CmePatch(
                image=image,
                polar=polar,
                t_obs=later.meta["date_obs"],
                reference_t_obs=reference.meta["date_obs"],
                detector=later.meta["detector"],
                kind=kind,
                source=f"{reference.path.name};{later.path.name}",
            )
        )
    return patches


def grid_image(image: np.ndarray, geometry: Geometry = C2_GEOMETRY) -> lasco.CoronagraphImage:
    """A patch-grid image [S, S] (row 0 at the top, e.g. a synthetic CME) as a `lasco.CoronagraphImage`
    with the grid's geometry (rows flipped to FITS order), so the `lasco` views apply to it."""
    size = image.shape[0]
    meta = {
        "detector": "C2" if geometry == C2_GEOMETRY else "C3",
        "centre_px": ((size - 1) / 2, (size - 1) / 2),
        "arcsec_per_px": geometry.rsun_per_pixel(size),
        "rsun_arcsec": 1.0,
        "roll_deg": 0.0,
        "occulter_rsun": tuple(geometry),
        "units": "relative",
        "source": "grid",
    }
    return lasco.CoronagraphImage(
        data=np.ascontiguousarray(np.flipud(image), np.float32), meta=meta, path=pathlib.Path("<grid>")
    )


def grid_polar(images: np.ndarray, geometry: Geometry = C2_GEOMETRY) -> np.ndarray:
    """float32 [N, *POLAR_SHAPE]: the polar views of patch-grid images [N, S, S] (e.g. synthetic CMEs)."""
    return (
        np.stack(
            [
                _stored(
                    lasco.polar_remap(
                        grid_image(image, geometry),
                        num_angles=POLAR_SHAPE[1],
                        num_heights=POLAR_SHAPE[0],
                        heights_rsun=tuple(geometry),
                    )
                )
                for image in np.asarray(images, np.float32)
            ]
        )
        if len(images)
        else np.zeros((0, *POLAR_SHAPE), np.float32)
    )
