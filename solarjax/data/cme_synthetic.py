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

A rare tail planted on purpose: `RARE_FRACTION` of the examples (drawn last, so every other example is
the same with or without it) are double CMEs: a second, narrower front (20-50 deg) in the opposite
hemisphere (its CPA 180 +- 30 deg from the first) at another height, as two CMEs launched close in time
are seen. Their truth is that of the first CME except the excess (both); ``rare`` marks them.
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
RARE_FRACTION = 0.01


@dataclasses.dataclass(frozen=True)
class SyntheticCmes:
    """A batch of synthetic CME difference images and their truth.

    Attributes:
      images: float32 [N, 128, 128] in [-1, 1]; row 0 at the top (north up), column 0 east.
      cpa_deg, width_deg, front_height_rsun, excess: float32 [N] truth (see the module docstring).
      rare: bool [N], the planted double CMEs.
    """

    images: np.ndarray
    cpa_deg: np.ndarray
    width_deg: np.ndarray
    front_height_rsun: np.ndarray
    excess: np.ndarray
    rare: np.ndarray


def polar_grid(size: int = IMAGE_SIZE, rsun_per_pixel: float = RSUN_PER_PIXEL) -> tuple[np.ndarray, np.ndarray]:
    """(radius in Rsun, position angle in deg from north through east) of every pixel centre; each [size, size].

    The Sun is at the grid centre, north up (row 0 at the top), east left; `rsun_per_pixel` sets the scale
    (default: the C2-like synthetic grid; a LASCO C3 grid of the same size has 30 / 64 Rsun per pixel).
    """
    centre = (size - 1) / 2
    row, column = np.mgrid[0:size, 0:size].astype(np.float64)
    north, west = (centre - row) * rsun_per_pixel, (column - centre) * rsun_per_pixel
    return np.hypot(north, west), np.degrees(np.arctan2(-west, north)) % 360.0


def generate(n: int, seed: int, start: int = 0) -> SyntheticCmes:
    """Examples ``start .. start + n - 1`` of the synthetic set `seed`.

    Example i is drawn from its own generator (seeded with (seed, i)), so it does not depend on how the set is
    cut into calls: ``generate(10, s)`` equals ``generate(4, s)`` followed by ``generate(6, s, start=4)``.
    """
    radius, angle = polar_grid()
    seen = (radius >= OCCULTER_RSUN) & (radius <= FIELD_STOP_RSUN)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), np.float32)
    truth = np.empty((4, n), np.float64)
    rare = np.zeros(n, bool)
    for i in range(n):
        rng = np.random.default_rng((seed, start + i))
        halo = rng.random() < HALO_FRACTION
        width = 360.0 if halo else float(np.clip(rng.lognormal(np.log(50.0), 0.5), 10.0, 200.0))
        limb = rng.choice([90.0, 270.0])  # east / west limb
        cpa = (limb + rng.normal(0.0, 35.0)) % 360.0
        height = rng.uniform(OCCULTER_RSUN + 0.8, FIELD_STOP_RSUN - 0.2)
        brightness = float(np.clip(rng.lognormal(np.log(0.5), 0.5), 0.15, 1.0))
        cme = _render(radius, angle, cpa, width, height, brightness)
        noise = rng.normal(0.0, NOISE_SIGMA, radius.shape)
        rare[i] = rng.random() < RARE_FRACTION
        if rare[i]:
            second_cpa = (cpa + 180.0 + rng.uniform(-30.0, 30.0)) % 360.0
            second_height = rng.uniform(OCCULTER_RSUN + 0.8, FIELD_STOP_RSUN - 0.2)
            cme = cme + _render(
                radius, angle, second_cpa, rng.uniform(20.0, 50.0), second_height, float(rng.uniform(0.4, 1.0))
            )
        truth[:, i] = cpa, width, height, float(cme[seen].sum())
        images[i] = np.clip(np.where(seen, cme + noise, 0.0), -1.0, 1.0)
    return SyntheticCmes(
        images=images,
        cpa_deg=truth[0].astype(np.float32),
        width_deg=truth[1].astype(np.float32),
        front_height_rsun=truth[2].astype(np.float32),
        excess=truth[3].astype(np.float32),
        rare=rare,
    )


def _render(radius, angle, cpa, width, height, brightness):
    """A front (Gaussian, sigma 0.18 Rsun) at `height` over a cavity, spanning `width` deg about `cpa`."""
    offset = (angle - cpa + 180.0) % 360.0 - 180.0
    across = 1.0 if width >= 360.0 else 1.0 / (1.0 + np.exp((np.abs(offset) - width / 2) / 2.0))
    front = np.exp(-0.5 * ((radius - height) / 0.18) ** 2) * (radius <= height + 0.6)
    cavity = -0.25 * np.exp(-0.5 * ((radius - (height - 0.5)) / 0.3) ** 2) * (radius < height)
    return brightness * across * (front + cavity)
