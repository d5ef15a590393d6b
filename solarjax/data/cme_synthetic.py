"""Synthetic CME difference images with ground truth: the coronagraph family's embedded default.

Each example is a 128x128 base-difference image of a LASCO C2-like field of view (Sun at the grid
centre, occulter 2.2 Rsun, field stop 6 Rsun at the edge, `RSUN_PER_PIXEL` per pixel, north up, east
left) holding one CME seen as a bright front above a darker cavity, on noise. Brightness is radially
normalised (the usual view for finding CMEs, where the r^-2..-3 fall of Thomson-scattered light is divided
out), so a front is as visible at 5 Rsun as at 3. The truth per example is its central position angle
(deg, from north through east), angular width (deg, 360 for a full halo), front height (Rsun, the
brightest radius of the front) and the excess brightness it adds (image units x pixels, a mass proxy).

Distributions follow the LASCO CDAW catalogue statistics as summarised by Yashiro et al. (2004, JGR
109, A07105) and Gopalswamy (2010): widths mostly 20-120 deg (a log-normal about 50 deg), ~4% full
halos, central position angles clustered about the equator-facing limbs; fronts anywhere in the field
of view. Brightness scales are arbitrary (the images are normalised to [-1, 1]).
"""
from __future__ import annotations

import dataclasses

import numpy as np

IMAGE_SIZE = 128
OCCULTER_RSUN = 2.2
FIELD_STOP_RSUN = 6.0
RSUN_PER_PIXEL = FIELD_STOP_RSUN / (IMAGE_SIZE / 2)
HALO_FRACTION = 0.04
NOISE_SIGMA = 0.02


@dataclasses.dataclass(frozen=True)
class SyntheticCmes:
    """A batch of synthetic CME difference images and their truth.

    Attributes:
      images: float32 [N, 128, 128] in [-1, 1]; row 0 at the top (north up), column 0 east.
      cpa_deg, width_deg, front_height_rsun, excess: float32 [N] truth (see the module docstring).
    """

    images: np.ndarray
    cpa_deg: np.ndarray
    width_deg: np.ndarray
    front_height_rsun: np.ndarray
    excess: np.ndarray


def polar_grid(size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(radius in Rsun, position angle in deg from north through east) of every pixel centre; each [size, size]."""
    centre = (size - 1) / 2
    row, column = np.mgrid[0:size, 0:size].astype(np.float64)
    north, west = (centre - row) * RSUN_PER_PIXEL, (column - centre) * RSUN_PER_PIXEL
    return np.hypot(north, west), np.degrees(np.arctan2(-west, north)) % 360.0


def generate(n: int, seed: int) -> SyntheticCmes:
    """`n` synthetic CME difference images drawn with `seed` (the same seed gives the same images)."""
    rng = np.random.default_rng(seed)
    radius, angle = polar_grid()
    halo = rng.random(n) < HALO_FRACTION
    width = np.where(halo, 360.0, np.clip(rng.lognormal(np.log(50.0), 0.5, n), 10.0, 200.0))
    limb = rng.choice([90.0, 270.0], n)                       # east / west limb
    cpa = (limb + rng.normal(0.0, 35.0, n)) % 360.0
    height = rng.uniform(OCCULTER_RSUN + 0.8, FIELD_STOP_RSUN - 0.2, n)
    brightness = np.clip(rng.lognormal(np.log(0.5), 0.5, n), 0.15, 1.0)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    excess = np.empty(n, np.float32)
    for i in range(n):
        cme = _render(radius, angle, cpa[i], width[i], height[i], brightness[i])
        noise = rng.normal(0.0, NOISE_SIGMA, radius.shape)
        seen = (radius >= OCCULTER_RSUN) & (radius <= FIELD_STOP_RSUN)
        excess[i] = float(cme[seen].sum())
        images[i] = np.clip(np.where(seen, cme + noise, 0.0), -1.0, 1.0)
    return SyntheticCmes(images=images, cpa_deg=cpa.astype(np.float32), width_deg=width.astype(np.float32),
                         front_height_rsun=height.astype(np.float32), excess=excess)


def _render(radius, angle, cpa, width, height, brightness):
    """A front (Gaussian, sigma 0.18 Rsun) at `height` over a cavity, spanning `width` deg about `cpa`."""
    offset = (angle - cpa + 180.0) % 360.0 - 180.0
    across = 1.0 if width >= 360.0 else 1.0 / (1.0 + np.exp((np.abs(offset) - width / 2) / 2.0))
    front = np.exp(-0.5 * ((radius - height) / 0.18) ** 2) * (radius <= height + 0.6)
    cavity = -0.25 * np.exp(-0.5 * ((radius - (height - 0.5)) / 0.3) ** 2) * (radius < height)
    return brightness * across * (front + cavity)
