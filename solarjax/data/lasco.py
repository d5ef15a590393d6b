"""Reading SOHO/LASCO C2/C3 coronagraph images and making the standard CME views.

Files: level 0.5 / 1 FITS (raw or calibrated, one 2-D image) and the Helioviewer JPEG2000 form (an 8-bit
scaled image with the FITS header in its XML box). `read_lasco` returns the image with the geometry
every view needs: the Sun's centre (0-based pixel (x, y)), the plate scale, the roll (CROTA: the
angle from the pixel axes to solar north), the solar radius in arcsec and the occulter's inner and
outer radii in solar radii.

Units: level 0.5 FITS hold raw DN with a bias (OFFSET); they are turned into DN/s,
``(DN - OFFSET) / EXPTIME``. Level 1 FITS (BUNIT 'MSB', mean solar brightness) are already
calibrated and kept as they are. Helioviewer JPEG2000 images are display bytes (0-255) and cannot be
calibrated; ``meta['units']`` says which of the three an image holds.

Geometry (FITS convention, rows from the bottom): helioprojective offsets of pixel (x, y) are
``[X, Y] = cdelt * R(CROTA) @ [x - cx, y - cy]``, and the position angle of a point is measured from
solar north through east (counter-clockwise on the sky, east to the left): ``PA = atan2(-X, Y)``.
The solar radius comes from RSUN, else from the date as seen from SOHO (at L1, 1% nearer the Sun than
the Earth). The occulter radii come from the Helioviewer keywords HV_ROCC_INNER/OUTER, else from
`OCCULTER_RSUN` (the instrument's nominal field of view, Brueckner et al. 1995, Sol. Phys. 162, 357).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import pathlib
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from solarjax.data.fits import FitsReadError, image_data, image_hdu_index, opened_fits, read_file_bytes

DETECTORS = ("C2", "C3")

OCCULTER_RSUN = {"C2": (2.2, 6.0), "C3": (3.7, 30.0)}
"""Nominal (inner, outer) radii of each coronagraph's field of view, in solar radii."""

SOHO_SUN_DISTANCE_AU = 0.99
"""SOHO's distance from the Sun near L1 (the Sun looks 1% larger than from the Earth)."""

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_FITS_SIGNATURE = b"SIMPLE  ="


class LascoReadError(FitsReadError):
    """A file that cannot be read as a LASCO image (reasons as `FitsReadError`, and 'not a LASCO image',
    'not a JPEG2000 file', 'no header in the JPEG2000 file', 'missing metadata')."""


@dataclasses.dataclass(frozen=True, eq=False)
class CoronagraphImage:
    """One coronagraph image.

    Attributes:
      data: float32 [H, W], row 0 at the bottom (FITS order); DN/s, MSB or display bytes (see meta['units']).
      meta: detector ('C2' | 'C3'), date_obs (UTC datetime), exptime_s, centre_px ((x, y), 0-based),
        arcsec_per_px, roll_deg (CROTA), rsun_arcsec, occulter_rsun ((inner, outer)), level (str),
        units ('DN/s' | 'MSB' | 'display'), filter, polar, source ('fits' | 'jp2').
      path: the file it came from.
    """

    data: np.ndarray
    meta: dict
    path: pathlib.Path


def read_lasco(path: str | os.PathLike) -> CoronagraphImage:
    """Reads a LASCO C2/C3 FITS (level 0.5 or 1) or Helioviewer JPEG2000 file.

    Raises:
      LascoReadError: the file cannot be read or is not a LASCO C2/C3 image; the message names the cause.
    """
    path = pathlib.Path(path)
    contents = read_file_bytes(path, LascoReadError)
    if contents.startswith(_JP2_SIGNATURE):
        data, header = _read_jp2(path, contents)
        source = "jp2"
    elif contents.startswith(_FITS_SIGNATURE):
        with opened_fits(path, contents, LascoReadError) as hdus:
            hdu = hdus[image_hdu_index(path, hdus, LascoReadError)]
            header = {key: hdu.header[key] for key in hdu.header if key not in ("COMMENT", "HISTORY", "")}
            data = image_data(path, hdu, np.float32, LascoReadError)
        source = "fits"
    else:
        raise LascoReadError(path, f"not a LASCO image: it starts with {contents[:16]!r}, neither FITS nor JPEG2000")
    meta = lasco_metadata(path, header, data.shape, source)
    if meta["units"] == "DN/s":
        data = (data - np.float32(meta["offset_dn"])) / np.float32(meta["exptime_s"])
    return CoronagraphImage(data=np.ascontiguousarray(data, dtype=np.float32), meta=meta, path=path)


def lasco_metadata(path: pathlib.Path, header: Mapping[str, Any], shape: tuple[int, int], source: str) -> dict:
    """The geometry and calibration metadata of `read_lasco` from FITS header values.

    A header written for a larger image than ``shape`` (Helioviewer's reduced JPEG2000 files) has its plate
    scale and centre rescaled to the image's size.
    """
    detector = str(header.get("DETECTOR", "")).strip().upper()
    if detector not in DETECTORS:
        raise LascoReadError(path, f"not a LASCO image: DETECTOR {detector!r}, expected one of {DETECTORS}")
    missing = [k for k in ("CRPIX1", "CRPIX2", "CDELT1", "EXPTIME") if _number(header.get(k)) is None]
    if missing:
        raise LascoReadError(path, f"missing metadata: no {', '.join(missing)} in the header")
    height, width = shape
    scale = float(_number(header.get("NAXIS1")) or width) / width
    date_obs = _date_obs(path, header)
    level = str(header.get("LEVEL", "0.5")).strip()
    bunit = str(header.get("BUNIT", "")).strip().upper()
    if source == "jp2":
        units = "display"
    elif bunit == "MSB" or level.startswith("1"):
        units = "MSB"
    else:
        units = "DN/s"
    rsun = _number(header.get("RSUN")) or _number(header.get("RSUN_ARC"))
    occulter = OCCULTER_RSUN[detector]
    inner, outer = _number(header.get("HV_ROCC_INNER")), _number(header.get("HV_ROCC_OUTER"))
    return {
        "detector": detector,
        "date_obs": date_obs,
        "exptime_s": float(_number(header["EXPTIME"])),
        "offset_dn": float(_number(header.get("OFFSET")) or 0.0),
        "centre_px": (
            (float(_number(header["CRPIX1"])) - 0.5) / scale - 0.5,
            (float(_number(header["CRPIX2"])) - 0.5) / scale - 0.5,
        ),
        "arcsec_per_px": float(_number(header["CDELT1"])) * scale,
        "roll_deg": float(_number(header.get("CROTA1")) or _number(header.get("CROTA")) or 0.0),
        "rsun_arcsec": float(rsun) if rsun else solar_radius_arcsec(date_obs),
        "occulter_rsun": (inner or occulter[0], outer or occulter[1]),
        "level": level,
        "units": units,
        "filter": str(header.get("FILTER", "")).strip(),
        "polar": str(header.get("POLAR", "")).strip(),
        "source": source,
    }


def solar_radius_arcsec(when: datetime.datetime) -> float:
    """The Sun's angular radius seen from SOHO at `when` (arcsec)."""
    from sunpy.coordinates import sun

    return float(sun.angular_radius(when).to_value("arcsec")) / SOHO_SUN_DISTANCE_AU


# ------------------------------------------------------------------------------------------ geometry
def sky_offsets_rsun(image: CoronagraphImage) -> tuple[np.ndarray, np.ndarray]:
    """Helioprojective offsets (X west, Y north) of every pixel centre, in solar radii; each [H, W]."""
    height, width = image.data.shape
    meta = image.meta
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    dx, dy = x - meta["centre_px"][0], y - meta["centre_px"][1]
    roll = math.radians(meta["roll_deg"])
    scale = meta["arcsec_per_px"] / meta["rsun_arcsec"]
    return (scale * (math.cos(roll) * dx - math.sin(roll) * dy), scale * (math.sin(roll) * dx + math.cos(roll) * dy))


def radius_rsun(image: CoronagraphImage) -> np.ndarray:
    """Distance of every pixel from the Sun's centre on the sky, solar radii, [H, W]."""
    east_west, north_south = sky_offsets_rsun(image)
    return np.hypot(east_west, north_south)


def position_angle_deg(image: CoronagraphImage) -> np.ndarray:
    """Position angle of every pixel, degrees in [0, 360) from solar north through east, [H, W]."""
    east_west, north_south = sky_offsets_rsun(image)
    return np.degrees(np.arctan2(-east_west, north_south)) % 360.0


def field_of_view_mask(image: CoronagraphImage) -> np.ndarray:
    """True where the coronagraph sees the corona: between the occulter and the outer field stop, [H, W]."""
    inner, outer = image.meta["occulter_rsun"]
    radius = radius_rsun(image)
    return (radius >= inner) & (radius <= outer)


# ------------------------------------------------------------------------------------------ CME views
def difference_images(images: Sequence[CoronagraphImage], kind: str = "running") -> np.ndarray:
    """Base- or running-difference images of a time-ordered sequence of one detector.

    Args:
      images: N >= 2 images of one detector and shape, in time order, in the same units.
      kind: 'running' (image i minus image i - 1) or 'base' (image i minus the first image).

    Returns:
      float32 [N - 1, H, W]; NaN outside the field of view of either image.

    Raises:
      ValueError: fewer than two images, mixed detectors, shapes or units, or times out of order.
    """
    if kind not in ("running", "base"):
        raise ValueError(f"kind must be 'running' or 'base', got {kind!r}")
    if len(images) < 2:
        raise ValueError(f"a difference needs at least two images, got {len(images)}")
    first = images[0]
    for image in images[1:]:
        for key in ("detector", "units"):
            if image.meta[key] != first.meta[key]:
                raise ValueError(
                    f"{image.path}: {key} {image.meta[key]!r} differs from {first.meta[key]!r} of {first.path}"
                )
        if image.data.shape != first.data.shape:
            raise ValueError(f"{image.path}: shape {image.data.shape} differs from {first.data.shape} of {first.path}")
    times = [image.meta["date_obs"] for image in images]
    if any(later <= earlier for earlier, later in zip(times, times[1:])):
        raise ValueError("images must be in increasing time order")
    masked = [np.where(field_of_view_mask(image), image.data, np.nan) for image in images]
    reference = [masked[0]] * (len(images) - 1) if kind == "base" else masked[:-1]
    return np.stack([later - earlier for earlier, later in zip(reference, masked[1:])]).astype(np.float32)


def polar_remap(
    image: CoronagraphImage,
    data: np.ndarray | None = None,
    num_angles: int = 360,
    num_heights: int = 128,
    heights_rsun: tuple[float, float] | None = None,
) -> np.ndarray:
    """The image resampled on a (height, position angle) grid: the standard view for tracking CMEs.

    Args:
      image: gives the geometry (and the data unless `data` is given).
      data: float [H, W] on the image's grid (e.g. a difference image); default ``image.data``.
      num_angles: position-angle samples over [0, 360) degrees, from solar north through east.
      num_heights: height samples.
      heights_rsun: (lowest, highest) height in solar radii; default the occulter's radii.

    Returns:
      float32 [num_heights, num_angles]: row j is height ``lowest + (j + 0.5) * step``, column i position angle
      ``(i + 0.5) * 360 / num_angles``; bilinear interpolation, NaN outside the image or field of view.
    """
    low, high = image.meta["occulter_rsun"] if heights_rsun is None else heights_rsun
    heights = low + (np.arange(num_heights) + 0.5) * (high - low) / num_heights
    angles = np.radians((np.arange(num_angles) + 0.5) * 360.0 / num_angles)
    east_west = -np.outer(heights, np.sin(angles))  # PA 90 deg = east = negative X
    north_south = np.outer(heights, np.cos(angles))
    return sample_sky(image, east_west, north_south, data)


def sample_sky(
    image: CoronagraphImage, east_west_rsun: np.ndarray, north_south_rsun: np.ndarray, data: np.ndarray | None = None
) -> np.ndarray:
    """The image (or `data` on its grid) at sky points given by helioprojective offsets in solar radii.

    Args:
      image: gives the geometry (and the data unless `data` is given).
      east_west_rsun, north_south_rsun: offsets X (west positive) and Y (north positive), any one shape.
      data: float [H, W] on the image's grid; default ``image.data``.

    Returns:
      float32 of the offsets' shape: bilinear interpolation, NaN outside the image or its field of view.
    """
    from scipy import ndimage

    values = image.data if data is None else np.asarray(data, dtype=np.float64)
    east_west, north_south = np.asarray(east_west_rsun, np.float64), np.asarray(north_south_rsun, np.float64)
    roll = math.radians(image.meta["roll_deg"])
    per_rsun = image.meta["rsun_arcsec"] / image.meta["arcsec_per_px"]
    dx = per_rsun * (math.cos(roll) * east_west + math.sin(roll) * north_south)
    dy = per_rsun * (-math.sin(roll) * east_west + math.cos(roll) * north_south)
    cx, cy = image.meta["centre_px"]
    inside = np.where(field_of_view_mask(image), values, np.nan)
    filled = np.nan_to_num(inside, nan=0.0)
    valid = ndimage.map_coordinates(
        np.isfinite(inside).astype(np.float64), [cy + dy, cx + dx], order=1, mode="constant", cval=0.0
    )
    sampled = ndimage.map_coordinates(filled, [cy + dy, cx + dx], order=1, mode="constant", cval=0.0)
    return np.where(valid > 0.999, sampled, np.nan).astype(np.float32)


# ------------------------------------------------------------------------------------------ helpers
def _read_jp2(path: pathlib.Path, contents: bytes) -> tuple[np.ndarray, dict]:
    import imagecodecs

    try:
        data = imagecodecs.jpeg2k_decode(contents)
    except Exception as error:  # noqa: BLE001 - the decoder raises its own error types
        raise LascoReadError(path, f"corrupt image data: {type(error).__name__}: {error}") from error
    start, end = contents.find(b"<meta>"), contents.find(b"</meta>")
    if start < 0 or end < 0:
        raise LascoReadError(path, "no header in the JPEG2000 file: no <meta> XML box (not a Helioviewer file?)")
    try:
        root = ElementTree.fromstring(contents[start : end + len(b"</meta>")].decode("utf-8", errors="replace"))
    except ElementTree.ParseError as error:
        raise LascoReadError(path, f"corrupt header: {error}") from error
    header = {}
    for element in root.iter():
        if element.tag not in ("meta", "fits", "helioviewer", "history", "comment") and element.text is not None:
            header[element.tag.upper().replace("_OBS", "-OBS")] = element.text.strip()
    # Helioviewer stores rows top-down like any raster image; FITS order has row 0 at the bottom.
    return np.flipud(np.asarray(data, dtype=np.float32)), header


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _date_obs(path: pathlib.Path, header: Mapping[str, Any]) -> datetime.datetime:
    """DATE-OBS (ISO, or 'YYYY/MM/DD' with TIME-OBS) as a UTC datetime."""
    date = str(header.get("DATE-OBS") or header.get("DATE_OBS") or "").strip()
    time = str(header.get("TIME-OBS") or "").strip()
    text = date if "T" in date or not time else f"{date}T{time}"
    text = re.sub(r"^(\d{4})/(\d{2})/(\d{2})", r"\1-\2-\3", text)
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise LascoReadError(path, f"missing metadata: DATE-OBS {date!r} / TIME-OBS {time!r} is not a time") from None
    return parsed.replace(tzinfo=datetime.UTC)
