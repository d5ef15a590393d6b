"""Synthetic SDO/AIA-like multi-channel patches rendered from the synthetic active regions.

The AIA counterpart of `solarjax.data.synthetic`: patch i of ``generate(n, seed)`` is the corona and
chromosphere above the synthetic Br patch i of ``synthetic.generate(n, seed)``, in the AIA data
contract's physical unit, DN/s per full-resolution (0.6 arcsec) AIA pixel, exposure-normalised level 1
without degradation correction. The image lives on the Br patch's own grid (rows north, columns west,
the SHARP box's effective pixel size in Mm per row and column), as an AIA cut-out remapped onto that
box would, so that EUV brightness and the field can be compared pixel by pixel.

Where and when the patch is (deg, arcsec)
  The patch follows its synthetic region: the Stonyhurst latitude, the longitude (carried west by
  the region's rotation from frame to frame) and the observation time (frames a cadence apart) are
  those of the Br frame (``synthetic.generate``'s truth latitude_deg, longitude_deg, obs_time),
  the time on the 12 s EUV cadence; the field, so the EUV brightness, evolves with the region.
  ``longitude_range_deg`` (default None) instead places every patch at a longitude uniform in a
  range (e.g. one fixed longitude), at the frame's time. SDO's B0 angle and distance come from
  sunpy's ephemeris (Earth's position); from them the helioprojective centre (hpc_x, hpc_y;
  Thompson 2006, A&A 449, 791, observer at finite distance) and mu = cos(heliocentric angle) as
  seen from the observer.

What emits (intensities relative to each channel's quiet Sun, then scaled to DN/s)
  The field that shapes the atmosphere is the unsigned field above the HMI noise,
  b = max(|Br| - 30 G, 0), smoothed with a Gaussian over a height-like scale (the field spreads
  with height): 2 Mm for the quiet network, 6 Mm for the AR core, 1 Mm for the chromosphere.
  The instrument PSF (Gaussian sigma 0.45 Mm, ~1.5 arcsec FWHM) is folded into every smoothing.
  * Quiet corona: an optically thin layer at log T = 6.1 (DEM width 0.1 dex), brighter above the
    network, q = sqrt((min(b_2Mm, 100 G) + 10 G) / (4 G + 10 G)) (4 G: the median b_2Mm of quiet
    pixels, so that q ~ 1 there; up to 2.8 above plage, the "moss").
  * Active-region core: diffuse hot plasma (log T = 6.35, DEM width 0.15 dex) whose emission
    measure, relative to the quiet corona's, is (min(b_6Mm, 1000 G) / 100 G)**1.5 (EUV and X-ray
    brightness grow as a power ~1-2 of the field, e.g. L_X ~ Phi**1.15, Pevtsov et al. 2003).
  * Loops: semicircular arcs (diameter = footpoint distance, plane tilted from the vertical by up to
    30 deg) between opposite polarities. One loop per 2e20 Mx of strong (|Br| > 100 G) positive
    flux, at most 48. The positive footpoint is drawn in proportion to the positive flux of 4x4-pixel
    cells; its negative partner in proportion to a cell's negative flux / (distance**2 + (5 Mm)**2),
    a crude potential-field connectivity. A loop 2 Mm wide has an emission measure, relative to the
    quiet corona, of 3 sqrt(B_foot / 300 G) (B_foot the geometric mean of its two cells' mean |Br|)
    and a temperature log T = 5.95 + 0.3 log10(B_foot / 300 G) + N(0, 0.08) within [5.85, 6.5]
    (DEM width 0.05 dex): loops rooted in weak field are the ~0.9 MK loops of 171 A, those rooted in
    strong field are hotter. A point at height h appears shifted towards the limb by h tan(theta)
    on the surface (theta the heliocentric angle), and a loop's surface brightness grows as 1 / mu
    (its column is seen obliquely).
  * Coronal channels (94, 131, 171, 193, 211, 335) see each component through their temperature
    response, modelled as Gaussians in log T at the peaks of Boerner et al. (2012, Sol. Phys. 275,
    41): 94 at 6.05 and 6.85, 131 at 5.6 and 7.05, 171 at 5.93, 193 at 6.19 and 7.25, 211 at 6.29,
    335 at 6.42. A component's DEM is a Gaussian in log T, so the response it excites is the
    convolution of the two (``relative_response``). Per unit emission measure the AR core is 0.13x
    the quiet corona in 171, 0.69x in 193, 1.5x in 211 and 3.4x in 335: 171 shows loops, 193 and
    211 the diffuse core.
  * Chromospheric channels: 304 (He II network and plage), 1600 and 1700 (UV continuum and C IV,
    plage bright points) brighten with b_1Mm and darken over umbrae:
    I / I_qs = (1 - U) (1 + a b / (b + 300 G)) + U f, with U = b**4 / (b**4 + (1000 G)**4) the
    umbral share, a = 8 (304), 4 (1600), 2 (1700) and f = 0.6, 0.4, 0.3.
  * Centre-to-limb: optically thin coronal emission from a layer of height H = 60 Mm (the scale
    height at ~1.2 MK) brightens as the path length through a shell on the sphere,
    (sqrt(mu**2 + 2 h + h**2) - mu) / h with h = H / R_sun (1.0 at disk centre, 1.56 at mu = 0.6,
    2.1 at mu = 0.4); the UV continua darken as 1 - u (1 - mu) (u = 0.5 for 1600, 0.6 for 1700);
    304 is kept flat.

Levels (``CHANNELS``: disk-centre quiet Sun, DN/s per full-resolution pixel)
  171: 120 (measured: the quiet disk within 0.5 R_sun of disk centre in sunpy's test file
  aia_171_level1.fits, 2011-02-15, is 110-125 DN/s; the whole disk's median is 149 DN/s);
  193: 180 and 211: 50 (typical quiet-Sun ratios to 171 of ~1.5 and ~0.4); 94: 1, 131: 5, 335: 3,
  304: 40, 1600: 70, 1700: 1100 (order-of-magnitude early-mission level-1 values; the instrument has
  degraded since, by up to ~2x in 171 and much more in 304). Each channel documents the range of
  the quiet-Sun median (``quiet_sun_range_dn_s``); with these defaults the disk-centre equivalent
  of the quiet pixels' median is within 0.9-1.35x of the level (0.6-1.9x in the photon-starved 94
  and the AR-contaminated 335). The brightest 0.5 % of pixels of regions above 1e22 Mx reach ~26x
  the quiet Sun in 171 (loops), ~23x in 193 and ~39x in 211 (AR core).

Photon noise
  A patch pixel spans m = pixel area x mu / (AIA pixel)**2 full-resolution pixels (the AIA pixel is
  0.6 arcsec at the observer's distance, ~0.435 Mm); one smaller than an AIA pixel (m < 1) is an
  interpolation of AIA pixels and carries the noise of one. Over the exposure t the pixel counts
  N ~ Poisson(lambda) photons, lambda = I t max(m, 1) / (DN per photon), with
  DN per photon = (12398.4 eV A / wavelength) / (3.65 eV per electron) / gain and the gain in e-/DN
  (17.7 for 171, 18.3 for 94, 17.6 for 131: aiapy's V8 response table; 18 assumed for the others);
  then I = N (DN per photon) / (t max(m, 1)). Above 100 expected photons the normal approximation
  N(lambda, lambda), clipped at 0, replaces the Poisson draw (skewness < 0.1). Each channel's noise
  has its own stream, so a channel's image does not depend on the other channels rendered with it.

Seeding: patch i (patch k of ``generate(n, seed, start=s)`` has i = s + k) takes its Br map from
``synthetic.generate`` (stream ``SeedSequence(seed, spawn_key=(i,))``), its position and loops from
``SeedSequence(seed, spawn_key=(i, AIA_STREAM))`` and channel w's noise from
``SeedSequence(seed, spawn_key=(i, AIA_STREAM, w))``, so it depends only on (seed, i, config) and
never on n or on how generation is split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import astropy.units as u
import numpy as np
import threadpoolctl
from astropy.constants import R_sun
from astropy.time import Time

from solarjax.data import synthetic

AIA_STREAM = 0xA1A  # second element of the spawn key of this module's per-patch random streams
AIA_PIXEL_ARCSEC = 0.6
EV_ANGSTROM = 12398.4  # photon energy [eV] times wavelength [A]
EV_PER_ELECTRON = 3.65  # silicon: mean energy per electron-hole pair
SOLAR_RADIUS_MM = R_sun.to_value(u.Mm)
CELL = 4  # loops' footpoints are drawn on cells of CELL x CELL pixels
_NORMAL_ABOVE_PHOTONS = 100.0
_GAUSSIAN_CUT = 18.0  # smoothing kernels stop at 6 sigma (exp(-18) ~ 1e-8; float32 denormals are slow)
_CHUNK = 128  # patches rendered at a time (memory only: results do not depend on it)


@dataclasses.dataclass(frozen=True)
class Channel:
    """How one AIA channel sees the synthetic Sun.

    quiet_sun_dn_s: disk-centre quiet-Sun intensity [DN/s per full-resolution pixel].
    quiet_sun_range_dn_s: range within which the median over quiet pixels near disk centre falls.
    response: coronal channels: the temperature response as Gaussians in log10 T,
      ((peak log T, width dex, weight), ...); empty for chromospheric channels.
    plage_contrast: chromospheric channels: brightening a in 1 + a b / (b + plage_half_gauss).
    umbra_fraction: chromospheric channels: intensity over umbrae / quiet Sun (f).
    limb_darkening: chromospheric channels: u in 1 - u (1 - mu).
    exposure_s: typical exposure time [s].
    gain_e_per_dn: camera gain [electrons / DN].
    """

    quiet_sun_dn_s: float
    quiet_sun_range_dn_s: tuple[float, float]
    exposure_s: float
    gain_e_per_dn: float = 18.0
    response: tuple[tuple[float, float, float], ...] = ()
    plage_contrast: float = 0.0
    umbra_fraction: float = 1.0
    limb_darkening: float = 0.0

    @property
    def coronal(self) -> bool:
        return bool(self.response)


CHANNELS: dict[int, Channel] = {
    94: Channel(1.0, (0.5, 1.5), 2.9, 18.3, response=((6.05, 0.12, 0.3), (6.85, 0.12, 1.0))),
    131: Channel(5.0, (3.5, 7.5), 2.9, 17.6, response=((5.6, 0.2, 1.0), (7.05, 0.10, 1.5))),
    171: Channel(120.0, (85.0, 180.0), 2.0, 17.7, response=((5.93, 0.12, 1.0),)),
    193: Channel(180.0, (125.0, 270.0), 2.0, response=((6.19, 0.13, 1.0), (7.25, 0.10, 0.4))),
    211: Channel(50.0, (35.0, 80.0), 2.9, response=((6.29, 0.13, 1.0),)),
    335: Channel(3.0, (2.0, 6.0), 2.9, response=((6.42, 0.16, 1.0),)),
    304: Channel(40.0, (28.0, 60.0), 2.9, plage_contrast=8.0, umbra_fraction=0.6),
    1600: Channel(70.0, (45.0, 105.0), 2.0, plage_contrast=4.0, umbra_fraction=0.4, limb_darkening=0.5),
    1700: Channel(1100.0, (700.0, 1650.0), 1.0, plage_contrast=2.0, umbra_fraction=0.3, limb_darkening=0.6),
}
"""The channels by wavelength [A]; see the module docstring for where the numbers come from."""


@dataclasses.dataclass(frozen=True)
class AiaSyntheticConfig:
    """Knobs of the AIA renderer; units in the names. Defaults are the module docstring's values.

    synthetic: the Br generator's config.
    field_cut_gauss: the unsigned field b = max(|Br| - cut, 0) drives the atmosphere (HMI noise is
      6-27 G rms at 128x128).
    longitude_range_deg: None (the region's own longitude at the frame's time), or (lo, hi) within
      +-80: the patch centre's Stonyhurst longitude is uniform in that range instead.
    network_smoothing_mm, core_smoothing_mm, chromosphere_smoothing_mm: heights over which the
      field is smoothed for the quiet-corona texture, the AR core and the chromosphere.
    network_floor_gauss, network_typical_gauss, network_saturation_gauss: the quiet-corona texture
      sqrt((min(b, saturation) + floor) / (typical + floor)).
    quiet_log_t, quiet_dem_width: the quiet corona's temperature [log10 K] and DEM width [dex].
    core_log_t, core_dem_width, core_reference_gauss, core_power, core_saturation_gauss: the AR
      core's temperature, DEM width, and emission measure relative to the quiet corona,
      (min(b, saturation) / reference)**power.
    max_loops, flux_per_loop_mx: loops per patch: strong positive flux / flux_per_loop, at most max.
    footpoint_min_gauss: cells count only pixels with |Br| above this as footpoint flux.
    connection_scale_mm: d0 in the partner weight flux / (d**2 + d0**2).
    loop_width_mm, loop_samples, loop_inclination_deg: a loop's width, points along it, and the
      largest tilt of its plane from the vertical (uniform in +-).
    loop_emission, loop_reference_gauss, loop_power: emission measure over the loop's width relative
      to the quiet corona, loop_emission * (B_foot / reference)**power (B_foot the geometric mean of
      its two cells' mean |Br|).
    loop_log_t, loop_log_t_per_dex, loop_log_t_scatter, loop_log_t_range, loop_dem_width: loop
      temperature log T = loop_log_t + per_dex log10(B_foot / reference) + N(0, scatter), clipped.
    coronal_layer_height_mm: H of the centre-to-limb brightening of optically thin emission.
    plage_half_gauss: |B| at which chromospheric plage reaches half its brightening.
    umbra_gauss: b at which umbral darkening is half-way.
    instrument_psf_mm: Gaussian sigma of AIA's point spread function, folded into every smoothing.
    photon_noise: draw photon noise (False: the expected intensities).
    """

    synthetic: synthetic.SyntheticConfig = synthetic.SyntheticConfig()
    field_cut_gauss: float = 30.0
    longitude_range_deg: tuple[float, float] | None = None
    network_smoothing_mm: float = 2.0
    core_smoothing_mm: float = 6.0
    chromosphere_smoothing_mm: float = 1.0
    network_floor_gauss: float = 10.0
    network_typical_gauss: float = 4.0
    network_saturation_gauss: float = 100.0
    quiet_log_t: float = 6.1
    quiet_dem_width: float = 0.1
    core_log_t: float = 6.35
    core_dem_width: float = 0.15
    core_reference_gauss: float = 130.0
    core_power: float = 1.5
    core_saturation_gauss: float = 1000.0
    max_loops: int = 48
    flux_per_loop_mx: float = 2e20
    footpoint_min_gauss: float = 100.0
    connection_scale_mm: float = 5.0
    loop_width_mm: float = 2.0
    loop_samples: int = 128
    loop_inclination_deg: float = 30.0
    loop_emission: float = 3.0
    loop_reference_gauss: float = 300.0
    loop_power: float = 0.5
    loop_log_t: float = 5.95
    loop_log_t_per_dex: float = 0.3
    loop_log_t_scatter: float = 0.08
    loop_log_t_range: tuple[float, float] = (5.85, 6.5)
    loop_dem_width: float = 0.05
    coronal_layer_height_mm: float = 60.0
    plage_half_gauss: float = 300.0
    umbra_gauss: float = 1000.0
    instrument_psf_mm: float = 0.45
    photon_noise: bool = True


@dataclasses.dataclass(frozen=True)
class AiaSyntheticBatch:
    """n synthetic AIA patches, their position and the field they were rendered from.

    images: float32 [n, size, size, C], DN/s per full-resolution AIA pixel, channels in `wavelengths`.
    wavelengths: int32 [C], Angstrom.
    t_obs: str [n], ISO 8601 UTC ('2014-03-01T12:00:12Z').
    hpc_x, hpc_y: float32 [n], helioprojective patch centre [arcsec].
    mu: float32 [n], cosine of the heliocentric angle at the patch centre, seen from SDO.
    latitude, longitude: float32 [n], Stonyhurst coordinates of the patch centre [deg].
    br: float32 [n, size, size], the synthetic Br [G] (synthetic.generate's br_gauss).
    pixel_size_mm: float32 [n, 2], effective (row, col) pixel size on the surface [Mm].
    full_res_pixels: float32 [n], full-resolution AIA pixels per patch pixel (sky-projected area).
    truth: the synthetic generator's ground truth (see synthetic.SyntheticBatch).
    """

    images: np.ndarray
    wavelengths: np.ndarray
    t_obs: np.ndarray
    hpc_x: np.ndarray
    hpc_y: np.ndarray
    mu: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    br: np.ndarray
    pixel_size_mm: np.ndarray
    full_res_pixels: np.ndarray
    truth: dict[str, np.ndarray]

    def __len__(self) -> int:
        return self.images.shape[0]


def generate(
    n: int,
    seed: int,
    wavelengths: Sequence[int] = (171, 193, 211),
    *,
    start: int = 0,
    config: AiaSyntheticConfig = AiaSyntheticConfig(),
) -> AiaSyntheticBatch:
    """Renders the AIA patches with indices start, ..., start + n - 1 of the synthetic set `seed`.

    A patch depends only on (seed, index, config), and a channel's image only on (seed, index,
    config, wavelength): ``generate(a + b, s)`` equals ``generate(a, s)`` followed by
    ``generate(b, s, start=a)``, and the image of a channel is the same whichever channels are
    rendered with it and in whatever order.

    Args:
      n: number of patches (>= 0).
      seed: non-negative int naming the set (the same set as synthetic.generate's).
      wavelengths: channels in Angstrom (sequence or 1-D array), keys of CHANNELS, no repeats; the
        image channel order.
      start: index of the first patch (>= 0).
      config: the renderer's knobs.
    Returns:
      AiaSyntheticBatch with arrays of leading size n.
    """
    wavelengths = _check_wavelengths(wavelengths)
    if not isinstance(config, AiaSyntheticConfig):
        raise TypeError(f"generate: config must be an AiaSyntheticConfig, got {type(config).__name__}")
    _check_config(config)
    fields = synthetic.generate(n, seed, config.synthetic, start=start)
    indices = np.arange(start, start + n)
    generators = [_patch_generator(seed, i) for i in indices]
    place = np.array([g.random(2) for g in generators]).reshape(n, 2)  # [:, 1] spare: the loops' draws follow
    if config.longitude_range_deg is None:
        longitude = fields.truth["longitude_deg"].astype(np.float64)
    else:
        west_of, east_of = config.longitude_range_deg
        longitude = west_of + place[:, 0] * (east_of - west_of)
    latitude = fields.truth["latitude_deg"].astype(np.float64)
    t_obs = _on_cadence(fields.truth["obs_time"])
    view = _viewing_geometry(latitude, longitude, t_obs)
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        chunks = [
            _render_chunk(
                seed,
                indices[lo : lo + _CHUNK],
                fields.br_gauss[lo : lo + _CHUNK],
                fields.pixel_size_mm[lo : lo + _CHUNK],
                {k: v[lo : lo + _CHUNK] for k, v in view.items()},
                generators[lo : lo + _CHUNK],
                wavelengths,
                config,
            )
            for lo in range(0, n, _CHUNK)
        ]
    size = config.synthetic.size
    return AiaSyntheticBatch(
        images=np.concatenate(chunks) if chunks else np.zeros((0, size, size, len(wavelengths)), np.float32),
        wavelengths=np.array(wavelengths, np.int32),
        t_obs=np.array([f"{t}Z" for t in np.datetime_as_string(t_obs, unit="s")], dtype=str).reshape(n),
        hpc_x=view["hpc_x"].astype(np.float32),
        hpc_y=view["hpc_y"].astype(np.float32),
        mu=view["mu"].astype(np.float32),
        latitude=latitude.astype(np.float32),
        longitude=longitude.astype(np.float32),
        br=fields.br_gauss,
        pixel_size_mm=fields.pixel_size_mm,
        full_res_pixels=_full_res_pixels(fields.pixel_size_mm, view).astype(np.float32),
        truth=fields.truth,
    )


def _patch_generator(seed: int, index: int, *key: int) -> np.random.Generator:
    """The random stream of patch `index` (and of a sub-key, e.g. a channel's noise) in set `seed`."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index), AIA_STREAM, *key)))


def _check_wavelengths(wavelengths: Sequence[int]) -> list[int]:
    """The wavelengths (a sequence or a 1-D array) as ints, in order; ValueError naming the bad entry."""
    if isinstance(wavelengths, np.ndarray) and wavelengths.ndim == 1:
        wavelengths = wavelengths.tolist()
    if isinstance(wavelengths, (str, bytes)) or not isinstance(wavelengths, Sequence) or not wavelengths:
        raise ValueError(f"generate: wavelengths must be a non-empty sequence of ints, got {wavelengths!r}")
    for w in wavelengths:
        if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or int(w) not in CHANNELS:
            raise ValueError(f"generate: unknown AIA wavelength {w!r}; known: {sorted(CHANNELS)}")
    if len(set(int(w) for w in wavelengths)) != len(wavelengths):
        raise ValueError(f"generate: wavelengths repeat a channel: {list(wavelengths)}")
    return [int(w) for w in wavelengths]


def _check_config(c: AiaSyntheticConfig) -> None:
    """ValueError naming the first knob out of its range."""
    lon = c.longitude_range_deg
    checks = [
        (
            "longitude_range_deg",
            lon is None or (len(lon) == 2 and -80 <= lon[0] <= lon[1] <= 80),
            "None or (lo, hi) within [-80, 80]",
        ),
        *[
            (name, getattr(c, name) > 0, "positive")
            for name in (
                "network_smoothing_mm",
                "core_smoothing_mm",
                "chromosphere_smoothing_mm",
                "network_floor_gauss",
                "network_typical_gauss",
                "network_saturation_gauss",
                "core_reference_gauss",
                "core_saturation_gauss",
                "flux_per_loop_mx",
                "connection_scale_mm",
                "loop_width_mm",
                "loop_reference_gauss",
                "coronal_layer_height_mm",
                "plage_half_gauss",
                "umbra_gauss",
                "instrument_psf_mm",
            )
        ],
        *[
            (name, getattr(c, name) >= 0, "non-negative")
            for name in (
                "field_cut_gauss",
                "quiet_dem_width",
                "core_dem_width",
                "core_power",
                "footpoint_min_gauss",
                "loop_emission",
                "loop_power",
                "loop_log_t_scatter",
                "loop_dem_width",
            )
        ],
        ("max_loops", isinstance(c.max_loops, int) and c.max_loops >= 0, "an int >= 0"),
        ("loop_samples", isinstance(c.loop_samples, int) and c.loop_samples >= 2, "an int >= 2"),
        ("loop_inclination_deg", 0 <= c.loop_inclination_deg < 90, "in [0, 90)"),
        ("loop_log_t_range", c.loop_log_t_range[0] <= c.loop_log_t_range[1], "(lo, hi) with lo <= hi"),
        (
            "synthetic",
            isinstance(c.synthetic, synthetic.SyntheticConfig) and c.synthetic.size % CELL == 0,
            f"a SyntheticConfig whose size is a multiple of {CELL}",
        ),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise ValueError(f"AiaSyntheticConfig.{name} must be {expected}, got {getattr(c, name)!r}")


def _on_cadence(obs_time: np.ndarray) -> np.ndarray:
    """Frame times datetime64 [n] -> the nearest 12 s EUV cadence step (from midnight), datetime64[s] [n]."""
    seconds = obs_time.astype("datetime64[s]").astype(np.int64)
    return (12 * np.floor(seconds / 12 + 0.5).astype(np.int64)).astype("datetime64[s]")


def _viewing_geometry(latitude_deg: np.ndarray, longitude_deg: np.ndarray, t_obs: np.ndarray) -> dict[str, np.ndarray]:
    """Where each patch centre is seen from SDO (at Earth) at t_obs.

    Heliocentric-Cartesian coordinates (Thompson 2006: x west, y north in the sky, z towards the
    observer) of the point at Stonyhurst (lat, lon) on the photosphere, then helioprojective angles.

    Returns float64 [n] arrays: hpc_x, hpc_y [arcsec]; mu; lean_west, lean_north (the surface shift
    of a point at unit height, tan(theta) towards the limb); observer_mm (distance to Sun centre).
    """
    from sunpy.coordinates import get_earth  # deferred: sunpy's coordinates take ~1 s to import

    if len(latitude_deg) == 0:
        return {k: np.zeros(0) for k in ("hpc_x", "hpc_y", "mu", "lean_west", "lean_north", "observer_mm")}
    earth = get_earth(Time(t_obs, scale="utc"))
    b0 = earth.lat.to_value(u.rad)
    distance = earth.radius.to_value(u.Mm)
    lat, lon, r = np.deg2rad(latitude_deg), np.deg2rad(longitude_deg), SOLAR_RADIUS_MM
    x = r * np.cos(lat) * np.sin(lon)
    y = r * (np.sin(lat) * np.cos(b0) - np.cos(lat) * np.cos(lon) * np.sin(b0))
    z = r * (np.sin(lat) * np.sin(b0) + np.cos(lat) * np.cos(lon) * np.cos(b0))
    to_observer = np.sqrt(x**2 + y**2 + (distance - z) ** 2)
    mu = (distance * z - r**2) / (r * to_observer)
    # Components of the unit vector to the observer along the local west and north directions.
    towards_west = -distance * np.sin(lon) * np.cos(b0) / to_observer
    towards_north = distance * (np.cos(lat) * np.sin(b0) - np.sin(lat) * np.cos(lon) * np.cos(b0)) / to_observer
    arcsec = np.rad2deg(1.0) * 3600
    return {
        "hpc_x": np.arctan2(x, distance - z) * arcsec,
        "hpc_y": np.arcsin(y / to_observer) * arcsec,
        "mu": mu,
        "lean_west": -towards_west / mu,
        "lean_north": -towards_north / mu,
        "observer_mm": distance,
    }


def _full_res_pixels(pixel_mm: np.ndarray, view: dict[str, np.ndarray]) -> np.ndarray:
    """Full-resolution AIA pixels in the sky-projected area of a patch pixel, float64 [n]."""
    aia_pixel_mm = (view["observer_mm"] - SOLAR_RADIUS_MM) * np.deg2rad(AIA_PIXEL_ARCSEC / 3600)
    return pixel_mm[:, 0].astype(np.float64) * pixel_mm[:, 1] * view["mu"] / aia_pixel_mm**2


def thin_layer_brightening(mu: np.ndarray, layer_height_mm: float) -> np.ndarray:
    """Path length through an emitting shell [R, R + H] along the line of sight, in units of H.

    (sqrt(mu**2 + 2 h + h**2) - mu) / h with h = H / R_sun: 1 at disk centre, sqrt(2 / h + 1) at the limb.
    """
    h = layer_height_mm / SOLAR_RADIUS_MM
    return (np.sqrt(mu**2 + 2 * h + h**2) - mu) / h


def relative_response(channel: Channel, log_t: np.ndarray, dem_width: float, c: AiaSyntheticConfig) -> np.ndarray:
    """A channel's response to plasma at log_t (Gaussian DEM of width dem_width dex), over the quiet corona's.

    Each Gaussian (peak p, width w, weight a) of the response excites
    a w / sqrt(w**2 + s**2) exp(-(log_t - p)**2 / (2 (w**2 + s**2))) from a DEM of width s.
    """

    def excited(t, s):
        return sum(
            a * w / np.sqrt(w**2 + s**2) * np.exp(-((t - p) ** 2) / (2 * (w**2 + s**2))) for p, w, a in channel.response
        )

    return excited(np.asarray(log_t, np.float64), dem_width) / excited(c.quiet_log_t, c.quiet_dem_width)


def _gaussian_matrices(sigma_px: np.ndarray, size: int) -> np.ndarray:
    """Row-normalised Gaussian smoothing matrices, float32 [n, size, size] (each row sums to 1), cut at 6 sigma."""
    scaled = np.arange(size, dtype=np.float32) ** 2 / (2 * sigma_px.astype(np.float32)[:, None] ** 2)
    kernel = np.where(scaled < _GAUSSIAN_CUT, np.exp(-np.minimum(scaled, _GAUSSIAN_CUT)), 0.0).astype(np.float32)
    offsets = np.arange(size)
    weights = kernel[:, np.abs(offsets[:, None] - offsets[None, :])]
    return weights / _last_axis_sum(weights)[..., None]


def _last_axis_sum(x: np.ndarray) -> np.ndarray:
    """Sums along the last axis in a fixed order (numpy's sum can round differently with the leading
    shape, which would make a patch depend on the chunk it is rendered in)."""
    return np.cumsum(x, -1)[..., -1]


def _smooth(images: np.ndarray, sigma_mm: float | np.ndarray, pixel_mm: np.ndarray) -> np.ndarray:
    """Gaussian smoothing of images [n, ..., size, size] by sigma_mm (scalar or [n]) on each patch's grid."""
    sigma = np.broadcast_to(np.asarray(sigma_mm, np.float64), (len(images),))
    size = images.shape[-1]
    batch = (len(images),) + (1,) * (images.ndim - 3) + (size, size)
    rows = _gaussian_matrices(sigma / pixel_mm[:, 0], size).reshape(batch)
    cols = _gaussian_matrices(sigma / pixel_mm[:, 1], size).reshape(batch)
    return np.matmul(np.matmul(rows, images), np.swapaxes(cols, -1, -2))


def _loops(
    br: np.ndarray,
    pixel_mm: np.ndarray,
    view: dict[str, np.ndarray],
    draws: dict[str, np.ndarray],
    c: AiaSyntheticConfig,
) -> dict[str, np.ndarray]:
    """Footpoints, shape and plasma of each patch's loops.

    Args:
      br: [n, size, size] Br [G]; pixel_mm: [n, 2]; view: _viewing_geometry's output (this chunk).
      draws: 'cells' uniform [n, K, 2] (positive, negative cell), 'jitter' uniform [n, K, 4],
        'tilt' uniform [n, K], 'temperature' N(0, 1) [n, K].
    Returns:
      row, col: float32 [n, K, S] loop points projected on the patch grid [pixels];
      weight: [n, K] emission measure times width times arc length per point [Mm**2, quiet-corona units];
      log_t: [n, K] loop temperatures.
    """
    n, size = br.shape[0], br.shape[-1]
    cells = size // CELL
    # Cells as rows of CELL * CELL pixels [n, cells**2, CELL**2].
    blocks = br.reshape(n, cells, CELL, cells, CELL).transpose(0, 1, 3, 2, 4).reshape(n, cells * cells, -1)
    strong = np.abs(blocks) > c.footpoint_min_gauss
    area_cm2 = pixel_mm[:, :1].astype(np.float64) * pixel_mm[:, 1:] * synthetic.CM2_PER_MM2
    positive = _last_axis_sum(np.where(strong, np.maximum(blocks, 0), 0)) * area_cm2  # [n, cells**2], Mx
    negative = _last_axis_sum(np.where(strong, np.maximum(-blocks, 0), 0)) * area_cm2
    mean_field = _last_axis_sum(np.abs(blocks)) / blocks.shape[-1]
    # Cell centres [Mm] (x west = column, y north = row).
    centre = (np.arange(cells) + 0.5) * CELL - 0.5
    cell_y = (centre[:, None] * pixel_mm[:, :1, None]).reshape(n, cells, 1).repeat(cells, -1).reshape(n, -1)
    cell_x = (centre[None, :] * pixel_mm[:, 1:, None]).reshape(n, 1, cells).repeat(cells, 1).reshape(n, -1)

    k = draws["cells"].shape[1]
    positive_total, negative_total = _last_axis_sum(positive), _last_axis_sum(negative)
    n_loops = np.minimum(np.ceil(positive_total / c.flux_per_loop_mx), k) * (negative_total > 0)
    live = np.arange(k) < n_loops[:, None]
    first = _categorical(positive, draws["cells"][..., 0])  # [n, K]
    x1, y1 = np.take_along_axis(cell_x, first, 1), np.take_along_axis(cell_y, first, 1)
    d2 = (cell_x[:, None, :] - x1[..., None]).astype(np.float32) ** 2 + (cell_y[:, None, :] - y1[..., None]).astype(
        np.float32
    ) ** 2
    partner = negative.astype(np.float32)[:, None, :] / (d2 + np.float32(c.connection_scale_mm**2))
    second = _categorical(partner.reshape(n * k, -1), draws["cells"][..., 1].reshape(n * k, 1)).reshape(n, k)
    jitter = (draws["jitter"] - 0.5) * CELL
    x1 = x1 + jitter[..., 0] * pixel_mm[:, 1:]
    y1 = y1 + jitter[..., 1] * pixel_mm[:, :1]
    x2 = np.take_along_axis(cell_x, second, 1) + jitter[..., 2] * pixel_mm[:, 1:]
    y2 = np.take_along_axis(cell_y, second, 1) + jitter[..., 3] * pixel_mm[:, :1]

    # Semicircles: phase s along the loop, baseline b, height h, inclination sideways.
    phase = np.pi * (np.arange(c.loop_samples) + 0.5) / c.loop_samples
    bx, by = x2 - x1, y2 - y1
    length = np.hypot(bx, by)
    unit_x, unit_y = -by / np.maximum(length, 1e-9), bx / np.maximum(length, 1e-9)  # across the baseline
    tilt = np.deg2rad(c.loop_inclination_deg) * (2 * draws["tilt"] - 1)
    radius = (length / 2)[..., None] * np.sin(phase)
    along = ((1 - np.cos(phase)) / 2)[None, None]
    height = radius * np.cos(tilt)[..., None]
    side = radius * np.sin(tilt)[..., None]
    x = x1[..., None] + bx[..., None] * along + unit_x[..., None] * side + height * view["lean_west"][:, None, None]
    y = y1[..., None] + by[..., None] * along + unit_y[..., None] * side + height * view["lean_north"][:, None, None]

    foot_field = np.sqrt(np.take_along_axis(mean_field, first, 1) * np.take_along_axis(mean_field, second, 1))
    ratio = foot_field / c.loop_reference_gauss
    log_t = np.clip(
        c.loop_log_t
        + c.loop_log_t_per_dex * np.log10(np.maximum(ratio, 1e-6))
        + c.loop_log_t_scatter * draws["temperature"],
        *c.loop_log_t_range,
    )
    arc_step = np.pi * length / 2 / c.loop_samples
    weight = np.where(live, c.loop_emission * ratio**c.loop_power * c.loop_width_mm * arc_step, 0.0)
    return {
        "row": (y / pixel_mm[:, :1, None]).astype(np.float32),
        "col": (x / pixel_mm[:, 1:, None]).astype(np.float32),
        "weight": weight,
        "log_t": log_t,
    }


def _categorical(weights: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Indices drawn from each row of weights by inverse CDF: weights [r, m] >= 0, u [r, q] in (0, 1) -> [r, q].

    A row of zero weights gives index m - 1. Each row is searched on its own (the result of a row
    does not depend on the others, so neither on how patches are chunked).
    """
    cdf = np.cumsum(weights, -1)
    total = cdf[:, -1:]
    cdf = cdf / np.where(total > 0, total, 1.0)
    return np.minimum((cdf[:, None, :] < u[..., None]).sum(-1), weights.shape[-1] - 1)


def _bilinear_corners(row: np.ndarray, col: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Where points [n, m] (pixel coordinates) deposit on [n, size, size] grids: flat indices and weights [4, n * m].

    Corners outside the grid get weight 0 (what falls off the patch is lost).
    """
    n = row.shape[0]
    r0, c0 = np.floor(row), np.floor(col)
    fr, fc = row - r0, col - c0
    patch = np.arange(n)[:, None] * size * size
    indices, weights = [], []
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            rr, cc = r0 + dr, c0 + dc
            inside = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
            indices.append((patch + np.where(inside, rr * size + cc, 0).astype(np.int64)).ravel())
            weights.append(np.where(inside, wr * wc, 0.0).ravel())
    return np.stack(indices), np.stack(weights)


def _deposit(corners: tuple[np.ndarray, np.ndarray], point_weight: np.ndarray, n: int, size: int) -> np.ndarray:
    """Sums weights [n * m] of points into [n, size, size] by their _bilinear_corners."""
    indices, weights = corners
    image = sum(np.bincount(i, w * point_weight, n * size * size) for i, w in zip(indices, weights))
    return image.reshape(n, size, size).astype(np.float32)


def _render_chunk(
    seed: int,
    indices: np.ndarray,
    br: np.ndarray,
    pixel_mm: np.ndarray,
    view: dict[str, np.ndarray],
    generators: list[np.random.Generator],
    wavelengths: list[int],
    c: AiaSyntheticConfig,
) -> np.ndarray:
    """The images of the patches `indices`, float32 [n, size, size, C] in DN/s."""
    k = c.max_loops
    draws = {
        "cells": np.stack([g.random((k, 2)) for g in generators]),
        "jitter": np.stack([g.random((k, 4)) for g in generators]),
        "tilt": np.stack([g.random(k) for g in generators]),
        "temperature": np.stack([g.standard_normal(k) for g in generators]),
    }
    mu = view["mu"][:, None, None]
    magnetic = np.maximum(np.abs(br) - np.float32(c.field_cut_gauss), 0)  # unsigned field above the noise
    network = _smooth(magnetic, np.hypot(c.network_smoothing_mm, c.instrument_psf_mm), pixel_mm)
    texture = np.sqrt(
        (np.minimum(network, c.network_saturation_gauss) + c.network_floor_gauss)
        / (c.network_typical_gauss + c.network_floor_gauss)
    )
    coronal = [w for w in wavelengths if CHANNELS[w].coronal]
    if coronal:
        core = (
            np.minimum(
                _smooth(magnetic, np.hypot(c.core_smoothing_mm, c.instrument_psf_mm), pixel_mm), c.core_saturation_gauss
            )
            / c.core_reference_gauss
        ) ** c.core_power
        loop_images = _loop_images(br, pixel_mm, view, draws, coronal, c)
        layer = thin_layer_brightening(mu, c.coronal_layer_height_mm)
    if len(coronal) < len(wavelengths):
        chromosphere = _smooth(magnetic, np.hypot(c.chromosphere_smoothing_mm, c.instrument_psf_mm), pixel_mm)
        plage = chromosphere / (chromosphere + c.plage_half_gauss)
        umbra = chromosphere**4 / (chromosphere**4 + c.umbra_gauss**4)
    images = []
    for wavelength in wavelengths:
        ch = CHANNELS[wavelength]
        if ch.coronal:
            core_response = relative_response(ch, c.core_log_t, c.core_dem_width, c)
            relative = layer * (texture + core_response * core) + loop_images[:, coronal.index(wavelength)]
        else:
            limb = 1 - ch.limb_darkening * (1 - mu)
            relative = limb * ((1 - umbra) * (1 + ch.plage_contrast * plage) + umbra * ch.umbra_fraction)
        images.append(relative * np.float32(ch.quiet_sun_dn_s))
    images = np.stack(images, 1)  # [n, C, size, size]
    if c.photon_noise:
        images = np.stack(
            [
                _photon_noise(
                    images[:, j], _photons_per_dn_s(w, pixel_mm, view), [_patch_generator(seed, i, w) for i in indices]
                )
                for j, w in enumerate(wavelengths)
            ],
            1,
        )
    return np.moveaxis(images, 1, -1).astype(np.float32)


def _loop_images(
    br: np.ndarray,
    pixel_mm: np.ndarray,
    view: dict[str, np.ndarray],
    draws: dict[str, np.ndarray],
    wavelengths: list[int],
    c: AiaSyntheticConfig,
) -> np.ndarray:
    """The loops as coronal channels see them, relative to the quiet corona: float32 [n, C, size, size].

    Each loop point deposits its share of the loop's emission (weight / pixel area / mu: a loop seen
    obliquely shows its column) bilinearly; the deposits are smoothed to the loop width and the
    instrument PSF in quadrature (at least 0.7 pixel, so that the points of a loop merge into a line).
    """
    n, size = br.shape[0], br.shape[-1]
    loops = _loops(br, pixel_mm, view, draws, c)
    corners = _bilinear_corners(loops["row"].reshape(n, -1), loops["col"].reshape(n, -1), size)
    pixel_area = pixel_mm[:, 0].astype(np.float64) * pixel_mm[:, 1]
    per_loop = loops["weight"] / (pixel_area * view["mu"])[:, None]  # [n, K]
    deposits = [
        _deposit(
            corners,
            np.repeat(
                per_loop * relative_response(CHANNELS[w], loops["log_t"], c.loop_dem_width, c), c.loop_samples
            ).ravel(),
            n,
            size,
        )
        for w in wavelengths
    ]
    loop_sigma_mm = np.maximum(
        np.hypot(c.loop_width_mm / np.sqrt(8 * np.log(2)), c.instrument_psf_mm), 0.7 * pixel_mm.max(-1)
    )
    return _smooth(np.stack(deposits, 1), loop_sigma_mm, pixel_mm)


def _photons_per_dn_s(wavelength: int, pixel_mm: np.ndarray, view: dict[str, np.ndarray]) -> np.ndarray:
    """Photons behind a patch pixel per DN/s of full-resolution intensity, float64 [n].

    A patch pixel smaller than an AIA pixel (m < 1) is an interpolation of AIA pixels and carries
    the noise of one.
    """
    channel = CHANNELS[wavelength]
    dn_per_photon = EV_ANGSTROM / wavelength / EV_PER_ELECTRON / channel.gain_e_per_dn
    return channel.exposure_s / dn_per_photon * np.maximum(_full_res_pixels(pixel_mm, view), 1.0)


def _photon_noise(
    intensity: np.ndarray, photons_per_dn_s: np.ndarray, generators: list[np.random.Generator]
) -> np.ndarray:
    """Intensities [n, size, size] in DN/s redrawn from the photons they stand for (module docstring)."""
    noisy = np.empty(intensity.shape, np.float64)
    for i, g in enumerate(generators):
        expected = intensity[i].astype(np.float64) * photons_per_dn_s[i]
        counts = np.maximum(expected + np.sqrt(expected) * g.standard_normal(expected.shape, dtype=np.float32), 0.0)
        few = expected < _NORMAL_ABOVE_PHOTONS
        counts[few] = g.poisson(expected[few])
        noisy[i] = counts / photons_per_dn_s[i]
    return noisy
