"""ML-ready packaging of SDO/AIA level-1 images: calibration, registration, patches, normalisation.

The steps, in order, for one file (`prepare_channel`):
  1. `read_aia`: the FITS file into a sunpy `AIAMap`, refusing what is not a level-1 AIA image
     (`AIAReadError` names the file and the cause).
  2. `normalise_exposure`: DN -> DN/s (division by EXPTIME).
  3. `correct_degradation` (optional): division by aiapy's time-dependent degradation factor
     (`aiapy.calibrate.degradation`). Its correction tables come from SSW or JSOC (network) or a
     local ``aia_V*_response_table.txt``; when none can be loaded, `load_correction_table` raises
     `DegradationUnavailableError`, and only ``degradation='skip'`` lets a run go on without the
     correction. Whether it was applied is recorded per channel.
  4. `register`: north up, plate scale `target_plate_scale` (0.6 arcsec/px at full resolution, i.e.
     0.6 * 4096 / N for a full-disk N x N image), and for full-disk images the Sun at the centre
     of an image of the input's shape (`aiapy.calibrate.register`: needs an AIAMap of a full disk
     and works offline). Cutouts are rotated and scaled in place (`GenericMap.rotate`; a cutout
     cannot be recentred). The pointing update that aiapy advises beforehand needs the JSOC
     pointing table (network) and is not done: registration uses the file's pointing keywords.
  5. `downsample` (optional): block mean over ``factor x factor`` pixels. A mean keeps the unit
     DN/s per pixel of the registered grid's intensity scale, so `CHANNEL_SCALES` hold at any factor.
Channels of one time are stacked on the grid of the first (`stack_channels`), then cut into patches
(`grid_boxes`, `centred_boxes`, `extract_patches`, `select_by_mu`) and normalised per channel
(`normalise`, `denormalise`).

Array conventions: images are [rows, cols, channels] in FITS order, row 0 the southernmost (the
registered map's ``data`` as stored); a bounding box is (row0, row1, col0, col1), end exclusive.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import pathlib
import warnings
from collections.abc import Sequence

import astropy.units as u
import numpy as np
import scipy.ndimage
import sunpy.map
import zarr
from aiapy.calibrate import degradation as aiapy_degradation
from aiapy.calibrate import register as aiapy_register
from aiapy.calibrate.util import get_correction_table
from astropy.coordinates import SkyCoord, UnitSphericalRepresentation
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.table import Table
from astropy.time import Time
from sunpy.coordinates.frames import BaseHeliographic
from sunpy.map import contains_full_disk
from sunpy.map.sources.sdo import AIAMap

from solarjax.data.download import FITS_BLOCK_BYTES
from solarjax.data.fits import FitsReadError, image_data, image_hdu_index, opened_fits, read_file_bytes

AIA_CHANNELS = (94, 131, 171, 193, 211, 304, 335, 1600, 1700)
"""AIA channels (wavelengths in Angstrom): EUV 94..335, UV 1600 and 1700."""

FULL_RESOLUTION_PLATE_SCALE_ARCSEC = 0.6
"""Plate scale of a registered (level 1.5) full-resolution AIA image, arcsec per pixel."""

FULL_DISK_PIXELS = 4096
"""Side of a full-resolution AIA image in pixels."""

DEFAULT_TIME_TOLERANCE_S = 12.0
"""Largest spread of observation times among the channels of one observation (one EUV cycle), s."""

CHANNEL_SCALES = {
    94: (1.0, 5_600.0),
    131: (5.0, 5_600.0),
    171: (120.0, 8_200.0),
    193: (180.0, 8_200.0),
    211: (50.0, 5_600.0),
    304: (40.0, 5_600.0),
    335: (3.0, 5_600.0),
    1600: (70.0, 8_200.0),
    1700: (1_100.0, 16_400.0),
}
"""wavelength -> (a_c, x_max_c) of `normalise`, both in DN/s per pixel.

a_c (softening) is the channel's typical quiet-Sun disk-centre intensity (the values
`solarjax.data.aia_synthetic` renders): below it the stretch is linear, above it logarithmic.
x_max_c is the largest unsaturated rate at the channel's nominal exposure: 16,383 DN (14 bits)
over 2.0 s (171, 193, 1600), 1.0 s (1700) or 2.9 s (94, 131, 211, 304, 335), rounded. Brighter
pixels (flares, short automatic exposures) are clipped to 1.
"""

_FITS_SIGNATURE = b"SIMPLE  ="


class AIAReadError(FitsReadError):
    """A file that cannot be read as an AIA level-1 image.

    Attributes:
      path: the file.
      reason: what is wrong with it, starting with one of: 'no such file', 'cannot open the file',
        'empty file', 'not a FITS file', 'truncated', 'corrupt header', 'no image HDU',
        'corrupt image data', 'bad metadata', 'not an AIA image', 'not level 1', 'unknown channel',
        'bad exposure time', 'missing metadata'.
    """


class DegradationUnavailableError(RuntimeError):
    """The degradation correction was asked for but its correction table cannot be loaded."""


@dataclasses.dataclass(frozen=True, eq=False)
class PreparedChannel:
    """One AIA file after `prepare_channel`.

    Attributes:
      map: the registered (and downsampled) map; data float64 [H, W] in DN/s.
      wavelength: the channel, Angstrom.
      t_obs: observation time (T_OBS), UTC.
      path: the file it came from.
      exposure_s: EXPTIME of the file, s.
      degradation_factor: the factor the data were divided by; None when the correction was skipped.
      full_disk: whether the image holds the whole disk (then the Sun is at the image centre).
      quality: the QUALITY keyword (0: no flag).
    """

    map: sunpy.map.GenericMap
    wavelength: int
    t_obs: Time
    path: pathlib.Path
    exposure_s: float
    degradation_factor: float | None
    full_disk: bool
    quality: int


@dataclasses.dataclass(frozen=True, eq=False)
class Observation:
    """The channels of one time registered onto one grid.

    Attributes:
      images: float32 [H, W, C] in DN/s, channels in the order of ``wavelengths``.
      wavelengths: channel wavelengths, Angstrom.
      t_obs: observation time of the first channel, UTC.
      grid: the first channel's registered map (its WCS, observer and solar radius describe
        ``images``; its data are the first channel's).
      channels: the `PreparedChannel` of each channel.
    """

    images: np.ndarray
    wavelengths: tuple[int, ...]
    t_obs: Time
    grid: sunpy.map.GenericMap
    channels: tuple[PreparedChannel, ...]

    @property
    def sources(self) -> str:
        """The channels' file names, ';'-joined."""
        return ";".join(channel.path.name for channel in self.channels)

    @property
    def degradation_applied(self) -> bool:
        """Whether every channel was corrected for degradation."""
        return all(channel.degradation_factor is not None for channel in self.channels)


@dataclasses.dataclass(frozen=True, eq=False)
class AIAPatch:
    """One patch of an `Observation` with the metadata of the AIA data contract.

    Attributes:
      image: float32 [size, size, C] in DN/s (see `normalise` for the stored form).
      t_obs: observation time, ISO 8601 UTC.
      wavelengths: int32 [C], Angstrom.
      bbox: int32 [4], (row0, row1, col0, col1) in the registered grid, end exclusive.
      hpc_x, hpc_y: helioprojective longitude and latitude of the patch centre, arcsec.
      mu: cosine of the heliocentric angle at the patch centre; NaN off the disk.
      source: the channels' file names, ';'-joined.
    """

    image: np.ndarray
    t_obs: str
    wavelengths: np.ndarray
    bbox: np.ndarray
    hpc_x: float
    hpc_y: float
    mu: float
    source: str


# ------------------------------------------------------------------------------------------ reading
def read_aia(path: str | os.PathLike) -> AIAMap:
    """Reads an AIA level-1 FITS file (uncompressed, or RICE-compressed as JSOC exports it).

    Args:
      path: the file; the image is its first 2-D image HDU.

    Returns:
      The `AIAMap`, data float64 [H, W] in DN as stored.

    Raises:
      AIAReadError: for a missing, empty, truncated or corrupt file, a file that is not an AIA
        image, not level 1 (LVL_NUM), of an unknown channel (WAVELNTH), without a positive EXPTIME
        or without T_OBS. The message names the file and the cause.
    """
    path = pathlib.Path(path)
    contents = read_file_bytes(path, AIAReadError)
    if not contents.startswith(_FITS_SIGNATURE):
        raise AIAReadError(path, f"not a FITS file: it starts with {contents[:16]!r}, not 'SIMPLE  ='")
    header, data = _fits_image(path, contents)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            smap = sunpy.map.Map(data, header)
    except Exception as error:  # noqa: BLE001 - sunpy raises many types for bad metadata
        raise AIAReadError(path, f"bad metadata: {type(error).__name__}: {error}") from error
    if not isinstance(smap, AIAMap):
        raise AIAReadError(
            path, f"not an AIA image: INSTRUME={header.get('INSTRUME')!r}, TELESCOP={header.get('TELESCOP')!r}"
        )
    if header.get("LVL_NUM") != 1:
        raise AIAReadError(path, f"not level 1: LVL_NUM={header.get('LVL_NUM')!r}")
    wavelength = header.get("WAVELNTH")
    if wavelength not in AIA_CHANNELS:
        raise AIAReadError(path, f"unknown channel: WAVELNTH={wavelength!r}, expected one of {AIA_CHANNELS}")
    exposure = header.get("EXPTIME")
    if not isinstance(exposure, (int, float)) or not exposure > 0:
        raise AIAReadError(path, f"bad exposure time: EXPTIME={exposure!r} (a dark or a broken frame)")
    if "T_OBS" not in header:
        raise AIAReadError(path, "missing metadata: no T_OBS in the header")
    return smap


def read_aia_channel_and_time(path: str | os.PathLike) -> tuple[int, Time]:
    """(WAVELNTH, T_OBS) of an AIA file from its image header alone (for grouping files by time).

    Raises:
      AIAReadError: for an empty file, a file that is not FITS or not whole FITS blocks, a header
        that cannot be parsed, or an unknown channel or missing T_OBS. Data are not read:
        `read_aia` checks them.
    """
    path = pathlib.Path(path)
    try:
        with path.open("rb") as file:
            start = file.read(len(_FITS_SIGNATURE))
        size = path.stat().st_size
    except OSError as error:
        raise AIAReadError(path, f"cannot open the file: {error.strerror or error}") from error
    if size == 0:
        raise AIAReadError(path, "empty file: 0 bytes")
    if start != _FITS_SIGNATURE:
        raise AIAReadError(path, f"not a FITS file: it starts with {start!r}, not 'SIMPLE  ='")
    if size % FITS_BLOCK_BYTES:
        raise AIAReadError(
            path, f"truncated: {size} bytes is not a whole number of {FITS_BLOCK_BYTES}-byte FITS blocks"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with fits.open(path, memmap=False) as hdus:
                header = next((h.header for h in hdus if h.is_image and h.header.get("NAXIS", 0) == 2), None)
        except (OSError, ValueError, VerifyError) as error:
            raise AIAReadError(path, f"corrupt header: {error}") from error
    if header is None:
        raise AIAReadError(path, "no image HDU")
    if header.get("WAVELNTH") not in AIA_CHANNELS:
        raise AIAReadError(
            path, f"unknown channel: WAVELNTH={header.get('WAVELNTH')!r}, expected one of {AIA_CHANNELS}"
        )
    if "T_OBS" not in header:
        raise AIAReadError(path, "missing metadata: no T_OBS in the header")
    try:
        return int(header["WAVELNTH"]), Time(str(header["T_OBS"]).rstrip("Z"), scale="utc")
    except ValueError as error:
        raise AIAReadError(path, f"bad metadata: T_OBS={header['T_OBS']!r} ({error})") from error


def observation_time(smap: sunpy.map.GenericMap) -> Time:
    """T_OBS of an AIA map (the middle of the exposure), UTC."""
    return Time(str(smap.meta["t_obs"]).rstrip("Z"), scale="utc")


def _fits_image(path: pathlib.Path, contents: bytes) -> tuple[fits.Header, np.ndarray]:
    """Header and float64 data of the first 2-D image HDU, after checking the file is complete."""
    with opened_fits(path, contents, AIAReadError) as hdus:
        hdu = hdus[image_hdu_index(path, hdus, AIAReadError)]
        return hdu.header.copy(), image_data(path, hdu, np.float64, AIAReadError)


# -------------------------------------------------------------------------------------- calibration
def normalise_exposure(smap: AIAMap) -> AIAMap:
    """The map divided by its exposure time: DN -> DN/s (BUNIT 'DN/s', EXPTIME 1 s afterwards)."""
    exposure = float(smap.meta["exptime"])
    meta = smap.meta.copy()
    meta["bunit"] = "DN/s"
    meta["exptime"] = 1.0
    return sunpy.map.Map(smap.data / exposure, meta)


def load_correction_table(source: str | os.PathLike | Table = "SSW") -> Table:
    """The degradation correction table for `aiapy.calibrate.degradation`.

    Args:
      source: 'SSW' or 'JSOC' (downloaded by aiapy; SSW's copy is cached after the first time),
        a local ``aia_V*_response_table.txt`` file, or a table already loaded (returned as is).

    Raises:
      DegradationUnavailableError: when the table cannot be loaded (offline, missing or bad file);
        the message says how to go on without the correction.
    """
    if isinstance(source, Table):
        return source
    if not isinstance(source, str) or source.upper() not in ("SSW", "JSOC"):
        source = pathlib.Path(source)
        if not source.is_file():
            raise DegradationUnavailableError(_degradation_advice(source, "no such file"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return get_correction_table(source)
    except Exception as error:  # noqa: BLE001 - network, parsing and column errors alike
        raise DegradationUnavailableError(_degradation_advice(source, f"{type(error).__name__}: {error}")) from error


def _degradation_advice(source, problem: str) -> str:
    return (
        f"AIA degradation correction table unavailable from {source} ({problem}). Pass "
        "correction_table=<a local aia_V*_response_table.txt> to correct, or degradation='skip' to "
        "go on without the correction (it is recorded as not applied)."
    )


def correct_degradation(smap: AIAMap, correction_table: Table) -> tuple[AIAMap, float]:
    """The map divided by `aiapy.calibrate.degradation` at its T_OBS, and that factor.

    Raises:
      DegradationUnavailableError: the table has no correction for the channel and time.
    """
    t_obs = observation_time(smap)
    try:
        factor = float(aiapy_degradation(smap.wavelength, t_obs, correction_table=correction_table)[0])
    except Exception as error:  # noqa: BLE001 - aiapy raises several types for a missing epoch or channel
        raise DegradationUnavailableError(
            f"no degradation correction for {smap.wavelength} at {t_obs.isot} in the table "
            f"({type(error).__name__}: {error}); pass degradation='skip' to go on without it"
        ) from error
    return sunpy.map.Map(smap.data / factor, smap.meta.copy()), factor


# ------------------------------------------------------------------------------------- registration
def target_plate_scale(smap: sunpy.map.GenericMap) -> float:
    """Plate scale of the registered image, arcsec/px: 0.6 times the image's binning, the nearest
    integer to its native scale / 0.6 (0.6 * 4096 / N for a full-disk N x N image; aiapy's rule)."""
    binning = max(1, round(smap.scale[0].to_value(u.arcsec / u.pix) / FULL_RESOLUTION_PLATE_SCALE_ARCSEC))
    return FULL_RESOLUTION_PLATE_SCALE_ARCSEC * binning


def register(smap: AIAMap, order: int = 3) -> sunpy.map.GenericMap:
    """North up at `target_plate_scale`; a full-disk image also gets the Sun at its centre.

    Full disk: `aiapy.calibrate.register` (rotation, scaling and shift in one spline interpolation
    of ``order``), which moves the reference pixel to the image centre. The reference pixel is
    first moved to the disk centre (CRVAL1/2 = 0; level-1 files from JSOC have it there already,
    resampled files such as sunpy's test image do not), and aiapy's output, which may lack a pixel
    or two, is padded back to the input's shape, so the Sun lands at the centre of an image of the
    input's shape. Cutout: `GenericMap.rotate` to north up at the target scale about the reference
    pixel. Pixels from outside the input are 0 DN/s.
    """
    target = target_plate_scale(smap)
    if contains_full_disk(smap):
        registered = aiapy_register(_referenced_at_disk_centre(smap), missing=0.0, order=order)
        registered = _padded_to_shape(registered, smap.data.shape)
    else:
        zoom = smap.scale[0].to_value(u.arcsec / u.pix) / target
        registered = smap.rotate(order=order, missing=0.0, scale=zoom)
    scales = [registered.scale[i].to_value(u.arcsec / u.pix) for i in (0, 1)]
    if not np.allclose(scales, target, rtol=1e-6):
        raise ValueError(f"registration gave {scales} arcsec/px, expected {target}")
    return registered


def _referenced_at_disk_centre(smap: sunpy.map.GenericMap) -> sunpy.map.GenericMap:
    """The same map with its WCS reference point moved to disk centre: CRVAL1/2 = 0 at the pixel
    where the old WCS puts (0", 0"). Changing the tangent point of the projection by a few arcsec
    moves positions on the disk by ~1e-4 arcsec."""
    if smap.meta.get("crval1", 0.0) == 0.0 and smap.meta.get("crval2", 0.0) == 0.0:
        return smap
    centre = SkyCoord(0 * u.arcsec, 0 * u.arcsec, frame=smap.coordinate_frame)
    x, y = (float(v) for v in smap.wcs.world_to_pixel(centre))
    meta = smap.meta.copy()
    meta.update({"crpix1": x + 1.0, "crpix2": y + 1.0, "crval1": 0.0, "crval2": 0.0})
    return sunpy.map.Map(smap.data, meta)


def _padded_to_shape(smap: sunpy.map.GenericMap, shape: tuple[int, int]) -> sunpy.map.GenericMap:
    """The map padded with 0 (or cropped) evenly on both sides to ``shape``, its WCS shifted along."""
    if tuple(smap.data.shape) == tuple(shape):
        return smap
    before = [(target - have) // 2 for target, have in zip(shape, smap.data.shape)]
    data = np.zeros(shape, smap.data.dtype)
    source = tuple(slice(max(0, -b), max(0, -b) + min(t, h)) for b, t, h in zip(before, shape, smap.data.shape))
    target = tuple(slice(max(0, b), max(0, b) + min(t, h)) for b, t, h in zip(before, shape, smap.data.shape))
    data[target] = smap.data[source]
    meta = smap.meta.copy()
    meta.update({"crpix1": meta["crpix1"] + before[1], "crpix2": meta["crpix2"] + before[0]})
    return sunpy.map.Map(data, meta)


def downsample(smap: sunpy.map.GenericMap, factor: int) -> sunpy.map.GenericMap:
    """Block mean over ``factor x factor`` pixels (rows and columns beyond a whole block are dropped)."""
    if int(factor) != factor or factor < 1:
        raise ValueError(f"downsample factor must be a positive integer, got {factor}")
    if factor == 1:
        return smap
    return smap.superpixel(u.Quantity([factor, factor], u.pix), func=np.mean)


def prepare_channel(
    path: str | os.PathLike,
    *,
    degradation: str = "apply",
    correction_table: str | os.PathLike | Table = "SSW",
    downsample_factor: int = 1,
) -> PreparedChannel:
    """Reads, calibrates and registers one AIA level-1 file (steps 1-5 of the module docstring).

    Args:
      path: the FITS file.
      degradation: 'apply' (raise `DegradationUnavailableError` when the table cannot be loaded)
        or 'skip'.
      correction_table: see `load_correction_table`; pass a loaded table when preparing many files.
      downsample_factor: integer block-mean factor after registration.

    Raises:
      AIAReadError: the file cannot be read (see `read_aia`).
      DegradationUnavailableError: degradation='apply' without a loadable table.
    """
    if degradation not in ("apply", "skip"):
        raise ValueError(f"degradation must be 'apply' or 'skip', got {degradation!r}")
    path = pathlib.Path(path)
    smap = read_aia(path)
    exposure = float(smap.meta["exptime"])
    calibrated = normalise_exposure(smap)
    factor = None
    if degradation == "apply":
        calibrated, factor = correct_degradation(calibrated, load_correction_table(correction_table))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registered = downsample(register(calibrated), downsample_factor)
    return PreparedChannel(
        map=registered,
        wavelength=int(smap.meta["wavelnth"]),
        t_obs=observation_time(smap),
        path=path,
        exposure_s=exposure,
        degradation_factor=factor,
        full_disk=bool(contains_full_disk(smap)),
        quality=int(smap.meta.get("quality") or 0),
    )


# ------------------------------------------------------------------------------------------ stacking
def stack_channels(
    channels: Sequence[PreparedChannel], time_tolerance_s: float = DEFAULT_TIME_TOLERANCE_S
) -> Observation:
    """Stacks prepared channels of one time onto the grid of the first.

    A channel whose grid differs from the first's (shape, scale or pointing; e.g. cutouts) is
    resampled onto it by cubic spline interpolation through the helioprojective coordinates of the
    first grid's pixel centres; pixels it does not cover are 0 DN/s.

    Raises:
      ValueError: for no channels, a wavelength given twice, or observation times spread wider
        than ``time_tolerance_s`` (the message names the files and their times).
    """
    if not channels:
        raise ValueError("no channels to stack")
    wavelengths = [channel.wavelength for channel in channels]
    if len(set(wavelengths)) != len(wavelengths):
        files = ", ".join(f"{c.path} ({c.wavelength} A)" for c in channels)
        raise ValueError(f"a wavelength appears twice among {files}")
    offsets = [(channel.t_obs - channels[0].t_obs).to_value(u.s) for channel in channels]
    if max(offsets) - min(offsets) > time_tolerance_s:
        times = ", ".join(f"{c.path} (T_OBS {c.t_obs.isot})" for c in channels)
        raise ValueError(
            f"channel times differ by {max(offsets) - min(offsets):.1f} s, more than the tolerance "
            f"{time_tolerance_s} s: {times}"
        )
    grid = channels[0].map
    images = [np.asarray(grid.data, np.float32)]
    for channel in channels[1:]:
        images.append(resample_onto(channel.map, grid).astype(np.float32))
    return Observation(
        images=np.stack(images, axis=-1),
        wavelengths=tuple(wavelengths),
        t_obs=channels[0].t_obs,
        grid=grid,
        channels=tuple(channels),
    )


def resample_onto(smap: sunpy.map.GenericMap, grid: sunpy.map.GenericMap, order: int = 3) -> np.ndarray:
    """The data of ``smap`` on the pixels of ``grid``: float64 [grid rows, grid cols].

    Helioprojective coordinates are taken as shared by both maps (channels seconds apart); a map
    on the same pixel grid (corners and centre agree to 1e-3 px) is returned as is.
    """
    if smap.data.shape == grid.data.shape:
        height, width = grid.data.shape
        probe_cols = np.array([0.0, width - 1, 0.0, width - 1, (width - 1) / 2])
        probe_rows = np.array([0.0, 0.0, height - 1, height - 1, (height - 1) / 2])
        x, y = smap.wcs.world_to_pixel_values(*grid.wcs.pixel_to_world_values(probe_cols, probe_rows))
        if np.max(np.abs(x - probe_cols)) < 1e-3 and np.max(np.abs(y - probe_rows)) < 1e-3:
            return np.asarray(smap.data, np.float64)
    rows, cols = np.indices(grid.data.shape, dtype=np.float64)
    x, y = smap.wcs.world_to_pixel_values(*grid.wcs.pixel_to_world_values(cols.ravel(), rows.ravel()))
    return scipy.ndimage.map_coordinates(
        np.asarray(smap.data, np.float64), [y.reshape(rows.shape), x.reshape(rows.shape)], order=order, cval=0.0
    )


def prepare_observation(
    paths: Sequence[str | os.PathLike],
    *,
    degradation: str = "apply",
    correction_table: str | os.PathLike | Table = "SSW",
    downsample_factor: int = 1,
    time_tolerance_s: float = DEFAULT_TIME_TOLERANCE_S,
) -> Observation:
    """`prepare_channel` for each file (channels in the order of ``paths``), then `stack_channels`."""
    table = load_correction_table(correction_table) if degradation == "apply" else None
    channels = [
        prepare_channel(path, degradation=degradation, correction_table=table, downsample_factor=downsample_factor)
        for path in paths
    ]
    return stack_channels(channels, time_tolerance_s)


# ------------------------------------------------------------------------------------------- patches
def grid_boxes(shape: tuple[int, int], patch_size: int, overlap: int = 0) -> np.ndarray:
    """Bounding boxes of a regular grid of square patches, centred in the image.

    Along an axis of n pixels with stride s = patch_size - overlap there are
    floor((n - patch_size) / s) + 1 patches; the leftover pixels are shared evenly by both ends.

    Returns:
      int32 [k, 4]: (row0, row1, col0, col1), end exclusive, rows first.
    """
    if not 0 <= overlap < patch_size:
        raise ValueError(f"overlap must be in [0, patch_size={patch_size}), got {overlap}")
    stride = patch_size - overlap
    starts = []
    for n in shape:
        if n < patch_size:
            raise ValueError(f"image of shape {tuple(shape)} is smaller than a {patch_size}-pixel patch")
        count = (n - patch_size) // stride + 1
        offset = (n - patch_size - (count - 1) * stride) // 2
        starts.append(offset + stride * np.arange(count))
    row0, col0 = (a.ravel() for a in np.meshgrid(*starts, indexing="ij"))
    return np.stack([row0, row0 + patch_size, col0, col0 + patch_size], axis=1).astype(np.int32)


def centred_boxes(grid: sunpy.map.GenericMap, coordinates: SkyCoord, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes of patches centred on given coordinates (helioprojective, Stonyhurst, any sunpy frame
    with an obstime), e.g. HARP centres; those not wholly inside the image, or on the far side of
    the Sun (`Helioprojective.is_visible`, to 1 km), are left out. Heliographic coordinates without
    a radius are taken on the map's solar surface (``rsun_meters``).

    The patch's centre (pixel col0 + (size - 1) / 2) is the pixel position of the coordinate rounded
    to the nearest pixel (or half pixel, for even sizes).

    Returns:
      boxes: int32 [k, 4] (row0, row1, col0, col1); kept: int64 [k], index of each box's coordinate.
    """
    coordinates = np.atleast_1d(coordinates)
    if isinstance(coordinates.frame, BaseHeliographic) and isinstance(coordinates.data, UnitSphericalRepresentation):
        coordinates = SkyCoord(coordinates.lon, coordinates.lat, grid.rsun_meters, frame=coordinates.frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seen = coordinates.transform_to(grid.coordinate_frame)
        x, y = grid.wcs.world_to_pixel(seen)
        visible = np.atleast_1d(seen.is_visible(tolerance=1 * u.km))
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    half = (patch_size - 1) / 2
    finite = np.isfinite(x) & np.isfinite(y) & visible
    col0 = np.round(np.where(finite, x, 0.0) - half).astype(np.int64)
    row0 = np.round(np.where(finite, y, 0.0) - half).astype(np.int64)
    rows, cols = grid.data.shape
    inside = finite & (row0 >= 0) & (col0 >= 0) & (row0 + patch_size <= rows) & (col0 + patch_size <= cols)
    kept = np.flatnonzero(inside)
    boxes = np.stack([row0[kept], row0[kept] + patch_size, col0[kept], col0[kept] + patch_size], axis=1)
    return boxes.astype(np.int32).reshape(-1, 4), kept


def mu_of_helioprojective(
    hpc_x_arcsec: np.ndarray, hpc_y_arcsec: np.ndarray, observer_distance_m: float, solar_radius_m: float
) -> np.ndarray:
    """Cosine of the heliocentric angle of the surface point seen at (hpc_x, hpc_y); NaN off the disk.

    Exact for a spherical Sun seen from a finite distance D: a line of sight at angle rho from disk
    centre meets the sphere of radius R where mu = sqrt(1 - (D sin(rho) / R)^2), with
    cos(rho) = cos(hpc_x) cos(hpc_y).

    Returns:
      float64 with the broadcast shape of the inputs.
    """
    tx = np.deg2rad(np.asarray(hpc_x_arcsec, np.float64) / 3600.0)
    ty = np.deg2rad(np.asarray(hpc_y_arcsec, np.float64) / 3600.0)
    sin_rho = np.sqrt(np.clip(1.0 - (np.cos(tx) * np.cos(ty)) ** 2, 0.0, None))
    reach = (observer_distance_m * sin_rho / solar_radius_m) ** 2
    with np.errstate(invalid="ignore"):
        return np.where(reach <= 1.0, np.sqrt(1.0 - reach), np.nan)


def box_centres(grid: sunpy.map.GenericMap, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hpc_x, hpc_y in arcsec, mu) at the centres of boxes [k, 4] of the grid; float64 [k] each."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    rows = (boxes[:, 0] + boxes[:, 1] - 1) / 2
    cols = (boxes[:, 2] + boxes[:, 3] - 1) / 2
    centres = grid.pixel_to_world(cols * u.pix, rows * u.pix)
    hpc_x = np.atleast_1d(centres.Tx.to_value(u.arcsec))
    hpc_y = np.atleast_1d(centres.Ty.to_value(u.arcsec))
    mu = mu_of_helioprojective(hpc_x, hpc_y, grid.dsun.to_value(u.m), grid.rsun_meters.to_value(u.m))
    return hpc_x, hpc_y, mu


def extract_patches(observation: Observation, boxes: np.ndarray) -> list[AIAPatch]:
    """The patches of the observation in the given boxes [k, 4] (inside the image), with their metadata."""
    boxes = np.asarray(boxes, np.int32).reshape(-1, 4)
    rows, cols = observation.images.shape[:2]
    outside = (boxes[:, 0] < 0) | (boxes[:, 2] < 0) | (boxes[:, 1] > rows) | (boxes[:, 3] > cols)
    if outside.any():
        raise ValueError(f"boxes {boxes[outside].tolist()} leave the {rows}x{cols} image")
    hpc_x, hpc_y, mu = box_centres(observation.grid, boxes)
    t_obs = iso_utc(observation.t_obs)
    wavelengths = np.asarray(observation.wavelengths, np.int32)
    return [
        AIAPatch(
            image=np.ascontiguousarray(observation.images[r0:r1, c0:c1]),
            t_obs=t_obs,
            wavelengths=wavelengths,
            bbox=np.array([r0, r1, c0, c1], np.int32),
            hpc_x=float(x),
            hpc_y=float(y),
            mu=float(m),
            source=observation.sources,
        )
        for (r0, r1, c0, c1), x, y, m in zip(boxes, hpc_x, hpc_y, mu)
    ]


def select_by_mu(
    patches: Sequence[AIAPatch], min_mu: float | None = None, max_mu: float | None = None
) -> list[AIAPatch]:
    """Patches whose centre mu lies in [min_mu, max_mu] (on-disk: min_mu=0; limb: max_mu=0.3, say).
    A bound left None is not checked; an off-disk patch (mu NaN) fails every bound."""
    kept = []
    for patch in patches:
        if min_mu is not None and not patch.mu >= min_mu:
            continue
        if max_mu is not None and not patch.mu <= max_mu:
            continue
        kept.append(patch)
    return kept


def patch_id(patch: AIAPatch) -> str:
    """Unique id of a patch: 'aia[<t_obs>][<wavelengths, -joined>][r<row0>c<col0>]'."""
    return f"aia[{patch.t_obs}][{'-'.join(map(str, patch.wavelengths))}][r{patch.bbox[0]}c{patch.bbox[2]}]"


def iso_utc(time: Time) -> str:
    """ISO 8601 UTC with offset, microseconds kept: '2011-02-15T00:00:01.340000+00:00'."""
    return time.utc.to_datetime(timezone=datetime.UTC).isoformat(timespec="microseconds")


# ------------------------------------------------------------------------------------ normalisation
def _channel_scale(wavelength: int) -> tuple[float, float]:
    if int(wavelength) not in CHANNEL_SCALES:
        raise ValueError(f"no normalisation constants for {wavelength} A; known: {sorted(CHANNEL_SCALES)}")
    return CHANNEL_SCALES[int(wavelength)]


def normalise(x: np.ndarray, wavelength: int) -> np.ndarray:
    """asinh(x / a_c) / asinh(x_max_c / a_c) clipped to [0, 1]; x in DN/s, constants `CHANNEL_SCALES`.

    Computed in float64; returns the floating dtype of ``x`` (float32 for integer input).
    """
    softening, maximum = _channel_scale(wavelength)
    x = np.asarray(x)
    dtype = np.result_type(x.dtype, np.float32)
    y = np.arcsinh(x.astype(np.float64) / softening) / math.asinh(maximum / softening)
    return np.clip(y, 0.0, 1.0).astype(dtype)


def denormalise(y: np.ndarray, wavelength: int) -> np.ndarray:
    """Inverse of `normalise` on [0, 1]: a_c sinh(y asinh(x_max_c / a_c)), DN/s (values outside
    [0, 1] are refused: they have no preimage)."""
    softening, maximum = _channel_scale(wavelength)
    y = np.asarray(y)
    if y.size and (np.nanmin(y) < 0.0 or np.nanmax(y) > 1.0):
        raise ValueError(f"denormalise takes values in [0, 1], got range [{np.nanmin(y)}, {np.nanmax(y)}]")
    dtype = np.result_type(y.dtype, np.float32)
    return (softening * np.sinh(y.astype(np.float64) * math.asinh(maximum / softening))).astype(dtype)


def normalise_channels(images: np.ndarray, wavelengths: Sequence[int]) -> np.ndarray:
    """`normalise` of each channel of images [..., C] with its wavelength; same shape."""
    return _per_channel(normalise, images, wavelengths)


def denormalise_channels(images: np.ndarray, wavelengths: Sequence[int]) -> np.ndarray:
    """`denormalise` of each channel of images [..., C] with its wavelength; same shape."""
    return _per_channel(denormalise, images, wavelengths)


def _per_channel(function, images: np.ndarray, wavelengths: Sequence[int]) -> np.ndarray:
    images = np.asarray(images)
    if images.shape[-1] != len(wavelengths):
        raise ValueError(
            f"images have {images.shape[-1]} channels, wavelengths {tuple(wavelengths)} name {len(wavelengths)}"
        )
    return np.stack([function(images[..., c], w) for c, w in enumerate(wavelengths)], axis=-1)


# -------------------------------------------------------------------------------------------- zarr
def to_zarr(patches: Sequence[AIAPatch], path: str | os.PathLike, chunk_patches: int = 64) -> None:
    """Writes patches of one channel set as a Zarr v3 group at ``path`` (replacing it), for use outside TFDS.

    Arrays (n patches, rows in the given order): ``image`` float32 [n, size, size, C], normalised
    (`normalise_channels`; chunks of ``chunk_patches`` patches); ``id``, ``t_obs``, ``source`` str [n];
    ``bbox`` int32 [n, 4]; ``hpc_x``, ``hpc_y``, ``mu`` float32 [n]. Group attributes:
    ``wavelengths`` and ``channel_scales`` ({wavelength: [a_c, x_max_c]}, for `denormalise`).
    """
    if not patches:
        raise ValueError(f"{path}: no patches to write")
    wavelengths = [int(w) for w in patches[0].wavelengths]
    if any([int(w) for w in patch.wavelengths] != wavelengths for patch in patches):
        raise ValueError(f"{path}: patches of different channel sets cannot share one image array")
    images = np.stack([normalise_channels(patch.image, wavelengths) for patch in patches])
    group = zarr.open_group(os.fspath(path), mode="w")
    group.attrs["wavelengths"] = wavelengths
    group.attrs["channel_scales"] = {str(w): list(CHANNEL_SCALES[w]) for w in wavelengths}
    group.create_array("image", data=images.astype(np.float32), chunks=(chunk_patches, *images.shape[1:]))
    for name, values in (
        ("id", [patch_id(p) for p in patches]),
        ("t_obs", [p.t_obs for p in patches]),
        ("source", [p.source for p in patches]),
    ):
        array = group.create_array(name, shape=(len(patches),), dtype=str)
        array[:] = np.array(values, dtype=object)
    group.create_array("bbox", data=np.stack([p.bbox for p in patches]).astype(np.int32))
    for name in ("hpc_x", "hpc_y", "mu"):
        group.create_array(name, data=np.array([getattr(p, name) for p in patches], np.float32))
