"""CME quantities of coronagraph difference images, in JAX: the coronagraph family's `physics`.

Images are [N, 128, 128] (or [N, 128, 128, 1]) base-difference images on the grid of
`solarjax.data.cme_synthetic` (Sun at the centre, north up, east left, `RSUN_PER_PIXEL` per pixel).
Pixels brighter than `threshold` inside the field of view are the CME. Quantities (NaN where no pixel
passes the threshold), as the CDAW catalogue measures them by eye on LASCO movies:

- cpa_deg: central position angle, the excess-weighted circular mean of the position angle (deg from
  north through east);
- width_deg: angular width, the share of 1-degree position-angle bins whose excess exceeds
  `width_fraction` of the brightest bin, times 360;
- front_height_rsun: the radius (Rsun) where the CME's excess summed over position angle peaks (the
  front), in `RADIAL_BIN_RSUN` bins;
- excess: total excess brightness of the CME pixels (image units x pixels; a mass proxy).
`angular_profile` is the CME excess per 1-degree position-angle bin (what the width counts; rare-case
mining looks for more than one front in it). All functions are batched and jit-able. `quantities`
measures on the synthetic C2-like grid by default; a `Geometry` of another field of view (e.g. `C3_GEOMETRY`, the LASCO C3 field resampled on a 128x128 grid
by `solarjax.data.cme_prep`) sets the occulter, field stop and plate scale instead.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from solarjax.data.cme_synthetic import FIELD_STOP_RSUN, IMAGE_SIZE, OCCULTER_RSUN, polar_grid
from solarjax.data.lasco import OCCULTER_RSUN as OCCULTER_RSUN_OF

QUANTITY_NAMES = ("cpa_deg", "width_deg", "front_height_rsun", "excess")
NUM_ANGLE_BINS = 360
RADIAL_BIN_RSUN = 0.1


class Geometry(NamedTuple):
    """The field of view of a square image grid centred on the Sun: radii in Rsun; the grid's half side
    spans `field_stop_rsun` (so ``rsun_per_pixel = field_stop_rsun / (size / 2)``)."""

    occulter_rsun: float
    field_stop_rsun: float

    def rsun_per_pixel(self, size: int = IMAGE_SIZE) -> float:
        return self.field_stop_rsun / (size / 2)


C2_GEOMETRY = Geometry(OCCULTER_RSUN, FIELD_STOP_RSUN)
C3_GEOMETRY = Geometry(*OCCULTER_RSUN_OF["C3"])
GEOMETRIES = {"C2": C2_GEOMETRY, "C3": C3_GEOMETRY}
"""The grid geometry of each LASCO detector (the nominal fields of view of `solarjax.data.lasco.OCCULTER_RSUN`)."""
assert C2_GEOMETRY == Geometry(*OCCULTER_RSUN_OF["C2"]), "the synthetic grid is LASCO C2's field of view"


def _polar_view(images: jax.Array, geometry: Geometry) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Difference images [N, S, S] or [N, S, S, 1] as float32 [N, S, S], with their grid's radius (Rsun) and
    position angle (deg from north through east), each float32 [S, S], and the field of view (occulter to field
    stop) bool [S, S]."""
    images = jnp.asarray(images, jnp.float32)
    if images.ndim == 4:
        images = images[..., 0]
    size = images.shape[-1]
    radius, angle = (jnp.asarray(g, jnp.float32) for g in polar_grid(size, geometry.rsun_per_pixel(size)))
    seen = (radius >= geometry.occulter_rsun) & (radius <= geometry.field_stop_rsun)
    return images, radius, angle, seen


@functools.partial(jax.jit, static_argnames=("geometry",))
def quantities(
    images: jax.Array, threshold: float = 0.1, width_fraction: float = 0.1, geometry: Geometry = C2_GEOMETRY
) -> dict[str, jax.Array]:
    """The CME quantities of a batch of difference images [N, S, S] or [N, S, S, 1]; each value is float32 [N]."""
    images, radius, angle, seen = _polar_view(images, geometry)
    weight = jnp.where(seen & (images > threshold), images, 0.0)
    total = weight.sum(axis=(1, 2))
    defined = total > 0
    radians = jnp.deg2rad(angle)
    sine, cosine = (weight * jnp.sin(radians)).sum(axis=(1, 2)), (weight * jnp.cos(radians)).sum(axis=(1, 2))
    cpa = jnp.rad2deg(jnp.arctan2(sine, cosine)) % 360.0
    per_bin = _per_angle_bin(weight, angle)
    width = 360.0 * (per_bin > width_fraction * per_bin.max(axis=1, keepdims=True)).mean(axis=1)
    num_radial = int(np.ceil(geometry.field_stop_rsun / RADIAL_BIN_RSUN)) + 1
    rings = jnp.clip(jnp.floor(radius / RADIAL_BIN_RSUN).astype(jnp.int32), 0, num_radial - 1).reshape(-1)
    per_ring = jax.vmap(lambda w: jax.ops.segment_sum(w.reshape(-1), rings, num_radial))(weight)
    height = (jnp.argmax(per_ring, axis=1) + 0.5) * RADIAL_BIN_RSUN
    nan = jnp.float32(jnp.nan)
    return {
        "cpa_deg": jnp.where(defined, cpa, nan),
        "width_deg": jnp.where(defined, width, nan),
        "front_height_rsun": jnp.where(defined, height, nan),
        "excess": total,
    }


def _per_angle_bin(weight: jax.Array, angle: jax.Array) -> jax.Array:
    """[N, NUM_ANGLE_BINS] sums of weight [N, S, S] over the 1-degree position-angle bins of angle [S, S] (deg)."""
    bins = jnp.clip(jnp.floor(angle).astype(jnp.int32), 0, NUM_ANGLE_BINS - 1).reshape(-1)
    return jax.vmap(lambda w: jax.ops.segment_sum(w.reshape(-1), bins, NUM_ANGLE_BINS))(weight)


@functools.partial(jax.jit, static_argnames=("geometry",))
def angular_profile(images: jax.Array, threshold: float = 0.1, geometry: Geometry = C2_GEOMETRY) -> jax.Array:
    """float32 [N, 360]: the CME excess (pixels above `threshold` in the field of view, as `quantities`) of
    difference images [N, S, S] or [N, S, S, 1] summed in 1-degree position-angle bins (bin j: j..j+1 deg
    from north through east)."""
    images, _, angle, seen = _polar_view(images, geometry)
    return _per_angle_bin(jnp.where(seen & (images > threshold), images, 0.0), angle)


def angle_difference_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed smallest difference a - b of angles in degrees, in [-180, 180)."""
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0


SSL_TARGETS = ("cos_cpa", "sin_cpa", "width_deg", "front_height_rsun", "log1p_excess")
"""What the SimSiam physics head predicts of each view (`ssl_targets`; ``config.physics_targets = 'cme'``)."""


def ssl_targets(images: jax.Array) -> jax.Array:
    """The self-supervised targets of difference images [N, 128, 128, 1]: float32 [N, 5], columns `SSL_TARGETS`.

    The CPA as (cos, sin) (circular; a rotation of the view about the Sun by theta rotates it by theta), the
    width (deg), the front height (Rsun) and log(1 + excess) of `quantities` on the C2 grid; NaN where no
    pixel is a CME pixel (the loss skips them). A halo's CPA is ill defined: its cos/sin are those of the
    weighted mean direction, near 0 length, and kept.
    """
    q = quantities(images)
    radians = jnp.deg2rad(q["cpa_deg"])
    return jnp.stack(
        [jnp.cos(radians), jnp.sin(radians), q["width_deg"], q["front_height_rsun"], jnp.log1p(q["excess"])], axis=1
    ).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("geometry",))
def smooth_quantities(
    images: jax.Array,
    threshold: float = 0.1,
    sharpness: float = 0.02,
    width_fraction: float = 0.1,
    geometry: Geometry = C2_GEOMETRY,
) -> dict[str, jax.Array]:
    """Differentiable stand-ins of `quantities` (what gradient steering follows); each float32 [N].

    Pixels pass the threshold softly (a sigmoid of width `sharpness`); cpa_deg is the same weighted
    circular mean (not wrapped: atan2 in (-180, 180]); width_deg counts 1-degree bins softly (a sigmoid of
    the bin's excess over `width_fraction` of the brightest, width 0.05 of it); front_height_rsun is the
    excess-weighted mean radius; excess the soft total.
    """
    images, radius, angle, seen = _polar_view(images, geometry)
    weight = jnp.where(seen, images * jax.nn.sigmoid((images - threshold) / sharpness), 0.0)
    total = weight.sum(axis=(1, 2))
    radians = jnp.deg2rad(angle)
    sine, cosine = (weight * jnp.sin(radians)).sum(axis=(1, 2)), (weight * jnp.cos(radians)).sum(axis=(1, 2))
    per_bin = _per_angle_bin(weight, angle)
    brightest = jnp.maximum(per_bin.max(axis=1, keepdims=True), 1e-6)
    width = 360.0 * jax.nn.sigmoid((per_bin / brightest - width_fraction) / 0.05).mean(axis=1)
    height = (weight * radius).sum(axis=(1, 2)) / jnp.maximum(total, 1e-6)
    return {
        "cpa_deg": jnp.rad2deg(jnp.arctan2(sine, cosine)),
        "width_deg": width,
        "front_height_rsun": height,
        "excess": total,
    }
