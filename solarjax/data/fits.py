"""Reading SDO/HMI SHARP CEA segment files: JSOC FITS exports and the authors' HDF5 stacks.

A JSOC export of ``hmi.sharp_cea_720s`` holds one segment per file, named
``hmi.sharp_cea_720s.<HARPNUM>.<YYYYMMDD_HHMMSS>_TAI.<segment>.fits``. Field segments (Br, Bp, Bt,
magnetogram) are RICE-compressed image HDUs (HDU 1) with the full SHARP header; the bitmap segment is
an uncompressed primary image. Fields are in Mx/cm^2, which is gauss.

JSOC writes missing or non-finite keyword values as bare ``nan`` / ``inf`` (``GWILL = nan``,
``ERRMSHA = inf``), which FITS does not allow and astropy refuses to parse on access. 205 of the 208
files in the shared test data carry such cards (in HARP 1441 at 2012-03-07 02:24 TAI ``ERRMSHA = inf``,
in HARP 377 the summary keyword ``R_VALUE = nan``). The reader screens the raw header cards itself:
``nan``/``inf`` values become floats, a metadata card astropy still cannot parse is left out, and
every repair is recorded in ``meta['header_warnings']``.

Geometry: CDELT1/CDELT2 of the cylindrical equal-area (CEA) grid are in degrees of heliographic arc
(0.03 deg for SHARP). One degree of arc is ``R_SUN_MM * pi / 180`` = 12.142 Mm with R_sun = 695.7 Mm
(IAU 2015 nominal radius), so the nominal SHARP pixel is 0.3643 Mm on a side (exact at the
projection's centre, the patch centre). The projection being equal-area, every pixel covers
0.3643^2 Mm^2 = 1.327e15 cm^2 of the solar surface wherever it lies (checked against the SHARP
AREA_ACR keyword in the tests).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import io
import math
import os
import pathlib
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import h5py
import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError, VerifyWarning
from astropy.time import Time
from astropy.utils.exceptions import AstropyUserWarning

from solarjax.data.download import FITS_BLOCK_BYTES

R_SUN_MM = 695.7
"""Solar radius in Mm (IAU 2015 nominal value) used to turn degrees of heliographic arc into Mm."""

MM_PER_DEGREE = R_SUN_MM * math.pi / 180.0
"""Length of one degree of heliographic arc on the solar surface, in Mm."""

SHARP_CEA_PIXEL_DEG = 0.03
"""Pixel size of the SHARP CEA grid, degrees of heliographic arc (row and column)."""
SHARP_CEA_PIXEL_MM = SHARP_CEA_PIXEL_DEG * MM_PER_DEGREE

MAX_IMAGE_PIXELS = 4096 * 4096
"""Largest image any reader decodes (an AIA/HMI full disk; the largest SHARP CEA boxes are far smaller):
the size is read from the header before any decompression, so a small compressed 'bomb' is refused."""

CM2_PER_MM2 = 1e16
"""Square centimetres in a square megametre (1 Mm = 1e8 cm)."""

SEGMENTS = ("Br", "Bp", "Bt", "magnetogram", "bitmap")
"""SHARP CEA segments this reader accepts."""

HDF5_CHANNELS = ("Br", "Bp", "Bt", "magnetogram")
"""Channel order of the authors' HDF5 stacks (Br, Bp, Bt, B_los); B_los is the magnetogram segment."""

SHARP_SUMMARY_KEYWORDS = (
    # Space-weather quantities (Bobra et al. 2014).
    "USFLUX",
    "MEANGAM",
    "MEANGBT",
    "MEANGBZ",
    "MEANGBH",
    "MEANJZD",
    "TOTUSJZ",
    "MEANALP",
    "MEANJZH",
    "TOTUSJH",
    "ABSNJZH",
    "SAVNCPP",
    "MEANPOT",
    "TOTPOT",
    "MEANSHR",
    "SHRGT45",
    "R_VALUE",
    "GWILL",
    # Line-of-sight variants written by later SHARP versions.
    "USFLUXL",
    "MEANGBL",
    "CMASKL",
    "ERRUSIL",
    # HARP statistics: sizes, areas (micro-hemispheres), flux moments, bounding boxes (deg):
    # LAT_MIN..LON_MAX bound the HARP pixels, LATDTMIN..LONDTMAX the patch (Stonyhurst).
    "NPIX",
    "SIZE",
    "AREA",
    "NACR",
    "SIZE_ACR",
    "AREA_ACR",
    "MTOT",
    "MNET",
    "MPOS_TOT",
    "MNEG_TOT",
    "MMEAN",
    "MSTDEV",
    "MSKEW",
    "MKURT",
    "LAT_MIN",
    "LON_MIN",
    "LAT_MAX",
    "LON_MAX",
    "LAT_FWT",
    "LON_FWT",
    "LATFWTPO",
    "LONFWTPO",
    "LATFWTNE",
    "LONFWTNE",
    "LATDTMIN",
    "LONDTMIN",
    "LATDTMAX",
    "LONDTMAX",
    # Uncertainties of the space-weather quantities.
    "ERRGAM",
    "ERRTAI",
    "ERRBH",
    "ERRMPOT",
    "ERRBT",
    "ERRTUI",
    "ERRBZ",
    "CMASK",
    "ERRJZ",
    "ERRVF",
    "ERRALP",
    "ERRMIH",
    "ERRMSHA",
    "ERRUSI",
    "DOFFSET",
    "ERRTPOT",
    "ERRJHT",
)
"""SHARP summary keywords copied into the metadata (upper case, float, NaN where blank)."""

_WCS_FLOAT_KEYWORDS = ("CRPIX1", "CRPIX2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2")
_WCS_TEXT_KEYWORDS = ("CTYPE1", "CTYPE2")
_METADATA_KEYWORDS = (
    ("HARPNUM", "T_REC", "NOAA_AR", "NOAA_ARS", "QUALITY", "BUNIT", "CRLN_OBS", "SEGMENT")
    + _WCS_FLOAT_KEYWORDS
    + _WCS_TEXT_KEYWORDS
    + SHARP_SUMMARY_KEYWORDS
)

_FITS_CARD_BYTES = 80
_FITS_SIGNATURE = b"SIMPLE  ="
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

_FILE_NAME = re.compile(
    r"^hmi\.sharp_cea_720s\.(?P<harpnum>\d+)\.(?P<time>\d{8}_\d{6})_TAI"
    r"(?:\.(?P<segment>[A-Za-z_]+))?\.(?:fits|h5|hdf5)$"
)
_T_REC = re.compile(r"^(?P<date>\d{4}\.\d{2}\.\d{2})_(?P<time>\d{2}:\d{2}:\d{2}(?:\.\d*)?)(?:_TAI)?$")
_NONFINITE_CARD = re.compile(
    r"^(?P<keyword>[A-Z0-9_\-]{1,8}) *= *(?P<value>[+-]?(?:nan|inf|infinity)) *(?:/.*)?$",
    re.IGNORECASE,
)


class FitsReadError(Exception):
    """A file that cannot be read (base of `SharpReadError` and `aia_prep.AIAReadError`).

    Attributes:
      path: the file.
      reason: what is wrong with it (see the subclasses for the reasons each can give).
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = pathlib.Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class SharpReadError(FitsReadError):
    """A file that cannot be read as a SHARP segment.

    Attributes:
      path: the file.
      reason: what is wrong with it, starting with one of: 'no such file', 'empty file',
        'truncated', 'not a FITS file', 'not an HDF5 file', 'corrupt HDF5 file', 'corrupt header',
        'no image HDU', 'image too large', 'corrupt image data', 'unsupported segment', 'unknown segment', 'segment mismatch',
        'missing metadata',
        'bad metadata', 'bad HDF5 layout'.
    """


@dataclasses.dataclass(frozen=True, eq=False)
class SharpPatch:
    """One SHARP CEA segment.

    Attributes:
      data: float32 [H, W], rows along latitude (south to north), columns along longitude
        (east to west); field in G for Br/Bp/Bt/magnetogram, mask codes for bitmap; NaN kept
        where the file has no data.
      meta: normalised metadata (see `read_sharp`).
      path: the file it came from.
      segment: one of `SEGMENTS`.
    """

    data: np.ndarray
    meta: dict
    path: pathlib.Path
    segment: str


@dataclasses.dataclass(frozen=True, eq=False)
class FolderReadResult:
    """Outcome of `read_sharp_folder`: the patches read and the files that failed, each sorted by path."""

    patches: list[SharpPatch]
    failures: list[tuple[pathlib.Path, str]]


def read_sharp(path: str | os.PathLike, segment: str | None = None) -> SharpPatch:
    """Reads one JSOC SHARP CEA segment file.

    Args:
      path: a ``hmi.sharp_cea_720s.<HARPNUM>.<YYYYMMDD_HHMMSS>_TAI.<segment>.fits`` file; the
        image is the first 2-D image HDU (compressed HDU 1 for fields, the primary HDU for bitmaps).
      segment: overrides the segment named by the file name (JSOC name, or any name ending in
        ``.<segment>.fits``) or, failing both, by a SEGMENT header keyword.

    Returns:
      A `SharpPatch` whose ``data`` is float32 [H, W] and whose ``meta`` holds
        harpnum (int), t_rec (timezone-aware UTC datetime, converted from TAI with leap seconds),
        t_rec_tai (naive datetime, the TAI clock reading; equals the time in the file name),
        t_rec_raw (the header string), noaa_ar (int, 0 if none), noaa_ars (list[int]),
        crpix1/2, crval1/2, cdelt1/2 (float), ctype1/2 (str) where present,
        lat_deg, lon_deg (Stonyhurst latitude and longitude of the patch centre, deg; lon_deg is
        NaN without CRLN_OBS),
        carrington_lon_deg (Carrington longitude of the patch centre, deg),
        quality (int), bunit (str), segment (str),
        pixel_size_mm ((row, col) size of a pixel on the Sun in Mm) and pixel_area_cm2,
        every `SHARP_SUMMARY_KEYWORDS` entry present in the header (upper case, float, NaN blank),
        header_warnings (list[str], the header cards that were repaired or dropped).
      The patch centre is the CEA reference point: SHARP headers put CRPIX at the array centre, so
      CRVAL2 is its latitude and CRVAL1 its Carrington longitude; the Stonyhurst longitude is
      CRVAL1 - CRLN_OBS wrapped to [-180, 180) (CRLN_OBS: SDO's Carrington longitude). The
      flux-weighted centre LAT_FWT/LON_FWT is kept among the summary keywords.

    Raises:
      SharpReadError: for any file that cannot be read; the message names the file and the cause.
    """
    path = pathlib.Path(path)
    contents = read_file_bytes(path)
    if not contents.startswith(_FITS_SIGNATURE):
        raise SharpReadError(path, f"not a FITS file: it starts with {contents[:16]!r}, not 'SIMPLE  ='")
    segment = segment if segment is not None else _segment_from_file_name(path)
    with opened_fits(path, contents) as hdus:
        index = image_hdu_index(path, hdus)
        info = hdus.fileinfo(index)
        cards = _header_cards(contents[info["hdrLoc"] : info["datLoc"]])
        values, header_warnings = _header_values(cards)
        content = segment_content(hdus[index].header)
        data = image_data(path, hdus[index])
    if segment is None:
        segment = values.get("SEGMENT")
    segment = _segment_agreeing_with_content(path, segment, content, header_warnings)
    meta = _checked_metadata(path, values, _checked_segment(path, segment))
    meta["header_warnings"] = header_warnings + meta["header_warnings"]
    for required in ("harpnum", "t_rec"):
        if required not in meta:
            raise SharpReadError(path, f"missing metadata: no {required} in the header or the file name")
    return SharpPatch(data=data, meta=meta, path=path, segment=meta["segment"])


def read_sharp_hdf5(
    path: str | os.PathLike,
    channels: tuple[str, ...] = HDF5_CHANNELS,
    dataset: str | None = None,
) -> list[SharpPatch]:
    """Reads the authors' HDF5 layout: one dataset stacking the channels of one SHARP frame.

    The dataset is [C, H, W] or [H, W, C] with C = len(channels); the layout is detected as the
    only end axis whose length is C (a shape with C at both ends is rejected as ambiguous).
    Attributes of the file root and of the dataset (the dataset's win) are normalised like FITS
    header keywords by `sharp_metadata`; HARPNUM and T_REC may also come from a JSOC-style file name.

    Args:
      path: the HDF5 file.
      channels: segment names of the channels in stacking order (default Br, Bp, Bt, magnetogram).
      dataset: name of the dataset to read; needed only when the file holds several.

    Returns:
      One `SharpPatch` per channel, in stacking order, with float32 [H, W] data as stored.

    Raises:
      SharpReadError: when the file is not HDF5 or the layout does not match.
    """
    path = pathlib.Path(path)
    contents = read_file_bytes(path)
    if not contents.startswith(_HDF5_SIGNATURE):
        raise SharpReadError(path, f"not an HDF5 file: it starts with {contents[:16]!r}")
    for name in channels:
        _checked_segment(path, name)
    try:
        stack, attributes = _hdf5_stack(path, io.BytesIO(contents), dataset)
    except OSError as error:
        raise SharpReadError(path, f"corrupt HDF5 file: {error}") from error
    channel_axis = _channel_axis(path, stack.shape, len(channels))
    stack = np.moveaxis(stack, channel_axis, 0)
    patches = []
    for name, image in zip(channels, stack):
        meta = _checked_metadata(path, attributes, name)
        meta["hdf5_layout"] = "CHW" if channel_axis == 0 else "HWC"
        patches.append(SharpPatch(data=np.ascontiguousarray(image), meta=meta, path=path, segment=name))
    return patches


def read_sharp_folder(
    folder_or_paths: str | os.PathLike | Iterable[str | os.PathLike],
    pattern: str = "*.Br.fits",
) -> FolderReadResult:
    """Reads every SHARP FITS file of a folder (or a list of files); a bad file never stops the rest.

    Args:
      folder_or_paths: a folder, whose files matching ``pattern`` are read, or an iterable of files.
      pattern: glob pattern used when a folder is given.

    Returns:
      `FolderReadResult` with the patches and the (path, reason) failures, both sorted by path.

    Raises:
      NotADirectoryError: when a single path is given that is not a folder.
    """
    if isinstance(folder_or_paths, (str, os.PathLike)):
        folder = pathlib.Path(folder_or_paths)
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder}: not a folder")
        paths = sorted(folder.glob(pattern))
    else:
        paths = sorted(pathlib.Path(p) for p in folder_or_paths)
    patches, failures = [], []
    for path in paths:
        try:
            patches.append(read_sharp(path))
        except SharpReadError as error:
            failures.append((path, error.reason))
    return FolderReadResult(patches=patches, failures=failures)


def sharp_metadata(values: Mapping[str, Any], file_name: str, segment: str) -> dict:
    """Normalises SHARP header values into the metadata dict described in `read_sharp`.

    Args:
      values: header keyword (upper case) -> value; None or NaN where blank.
      file_name: the file's name; HARPNUM and T_REC fall back to a JSOC-style name.
      segment: the segment name.

    Returns:
      The metadata; keys that cannot be derived are absent. ``header_warnings`` lists conflicts
      between the header and the file name.
    """
    meta: dict[str, Any] = {"segment": segment, "header_warnings": []}
    name_match = _FILE_NAME.match(file_name)
    if values.get("HARPNUM") is not None:
        meta["harpnum"] = int(values["HARPNUM"])
        if name_match and int(name_match["harpnum"]) != meta["harpnum"]:
            meta["header_warnings"].append(
                f"HARPNUM {meta['harpnum']} in the header, {name_match['harpnum']} in the file name"
            )
    elif name_match:
        meta["harpnum"] = int(name_match["harpnum"])
    if values.get("T_REC") is not None:
        meta["t_rec_raw"] = str(values["T_REC"])
        meta["t_rec_tai"] = parse_t_rec(meta["t_rec_raw"])
    elif name_match:
        meta["t_rec_raw"] = name_match["time"] + "_TAI"
        meta["t_rec_tai"] = datetime.datetime.strptime(name_match["time"], "%Y%m%d_%H%M%S")
    if "t_rec_tai" in meta:
        meta["t_rec"] = tai_to_utc(meta["t_rec_tai"])
    meta["noaa_ar"] = _as_int(values.get("NOAA_AR"), default=0)
    meta["noaa_ars"] = _noaa_numbers(values.get("NOAA_ARS"), meta["noaa_ar"])
    meta["quality"] = _as_int(values.get("QUALITY"), default=0)
    meta["bunit"] = str(values.get("BUNIT") or "").strip()
    for keyword in _WCS_FLOAT_KEYWORDS:
        if keyword in values:
            meta[keyword.lower()] = _as_float(values[keyword])
    for keyword in _WCS_TEXT_KEYWORDS:
        if keyword in values:
            meta[keyword.lower()] = str(values[keyword]).strip()
    if "crval1" in meta and "crval2" in meta:
        meta["lat_deg"] = meta["crval2"]
        meta["carrington_lon_deg"] = meta["crval1"] % 360.0
        observer_lon = _as_float(values.get("CRLN_OBS"))
        meta["lon_deg"] = (meta["crval1"] - observer_lon + 180.0) % 360.0 - 180.0
    if "cdelt1" in meta and "cdelt2" in meta:
        row_mm, col_mm = meta["cdelt2"] * MM_PER_DEGREE, meta["cdelt1"] * MM_PER_DEGREE
        meta["pixel_size_mm"] = (row_mm, col_mm)
        meta["pixel_area_cm2"] = row_mm * col_mm * CM2_PER_MM2
    for keyword in SHARP_SUMMARY_KEYWORDS:
        if keyword in values:
            meta[keyword] = _as_float(values[keyword])
    return meta


def parse_t_rec(t_rec: str) -> datetime.datetime:
    """Parses a JSOC T_REC such as '2012.03.06_14:24:00_TAI' into a naive datetime (TAI clock reading).

    Raises:
      ValueError: when the string is not a JSOC slot time.
    """
    match = _T_REC.match(t_rec.strip())
    if not match:
        raise ValueError(f"T_REC {t_rec!r} is not like '2012.03.06_14:24:00_TAI'")
    seconds_format = "%S.%f" if "." in match["time"] else "%S"
    return datetime.datetime.strptime(f"{match['date']} {match['time']}", f"%Y.%m.%d %H:%M:{seconds_format}")


@functools.lru_cache(maxsize=4096)
def tai_to_utc(tai: datetime.datetime) -> datetime.datetime:
    """Converts a naive TAI datetime into a timezone-aware UTC datetime (TAI - UTC = 34 s in 2012).

    Cached: every HARP observed in a 12-minute slot shares its T_REC.
    """
    return Time(tai, scale="tai").utc.to_datetime(timezone=datetime.UTC)


def read_file_bytes(path: pathlib.Path, error_type: type[FitsReadError] = SharpReadError) -> bytes:
    """The whole file; ``error_type`` for a missing, unreadable or empty one."""
    try:
        contents = path.read_bytes()
    except FileNotFoundError as error:
        raise error_type(path, "no such file") from error
    except OSError as error:
        raise error_type(path, f"cannot open the file: {error.strerror or error}") from error
    if not contents:
        raise error_type(path, "empty file: 0 bytes")
    return contents


def _checked_metadata(path: pathlib.Path, values: Mapping[str, Any], segment: str) -> dict:
    try:
        return sharp_metadata(values, file_name=path.name, segment=segment)
    except (TypeError, ValueError) as error:
        raise SharpReadError(path, f"bad metadata: {error}") from error


@contextlib.contextmanager
def opened_fits(path: pathlib.Path, contents: bytes, error_type: type[FitsReadError] = SharpReadError):
    """The HDUs of a whole FITS file's bytes, with astropy's header warnings silenced in the block.

    Raises ``error_type`` when astropy cannot open the bytes (a partial last block: 'truncated',
    otherwise 'corrupt header') or when the file is incomplete: the last HDU's data runs past the
    end, or a partial block follows it (astropy silently drops an HDU whose header was cut off).
    """
    size = len(contents)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", VerifyWarning)
        try:
            hdus = fits.open(io.BytesIO(contents), memmap=False, lazy_load_hdus=False)
        except (OSError, ValueError, VerifyError) as error:
            if size % FITS_BLOCK_BYTES:
                reason = (
                    f"truncated: {size} bytes is not a whole number of {FITS_BLOCK_BYTES}-byte FITS blocks ({error})"
                )
            else:
                reason = f"corrupt header: {error}"
            raise error_type(path, reason) from error
        with hdus:
            last = len(hdus) - 1
            info = hdus.fileinfo(last)
            expected = info["datLoc"] + info["datSpan"]
            if expected > size:
                raise error_type(path, f"truncated: {size} bytes on disk, HDU {last} needs {expected} bytes")
            if size % FITS_BLOCK_BYTES:
                raise error_type(
                    path,
                    f"truncated: {size} bytes is not a whole number of {FITS_BLOCK_BYTES}-byte FITS blocks "
                    f"(an incomplete header follows HDU {last})",
                )
            yield hdus


def image_hdu_index(path: pathlib.Path, hdus: fits.HDUList, error_type: type[FitsReadError] = SharpReadError) -> int:
    """Index of the first HDU holding a 2-D image; ``error_type`` ('no image HDU') when none does."""
    for index, hdu in enumerate(hdus):
        if hdu.is_image and hdu.header.get("NAXIS", 0) == 2:
            return index
    structure = ", ".join(f"{type(hdu).__name__} NAXIS={hdu.header.get('NAXIS', 0)}" for hdu in hdus)
    raise error_type(path, f"no image HDU: the file holds {structure}")


def image_data(
    path: pathlib.Path,
    hdu,
    dtype=np.float32,
    error_type: type[FitsReadError] = SharpReadError,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> np.ndarray:
    """An image HDU's data as ``dtype``; ``error_type`` ('corrupt image data') when it cannot be decoded, or
    ('image too large') when its header declares more than ``max_pixels`` pixels (checked before decoding)."""
    shape = tuple(int(hdu.header.get(f"NAXIS{axis}", 0)) for axis in (2, 1))
    if math.prod(shape) > max_pixels:
        raise error_type(
            path,
            f"image too large: {shape[0]} x {shape[1]} pixels in the header, more than the {max_pixels:,} "
            "a SHARP or AIA image can have",
        )
    try:
        data = hdu.data
    except Exception as error:  # noqa: BLE001 - decoders raise many types (CfitsioException, ...)
        raise error_type(path, f"corrupt image data: {type(error).__name__}: {error}") from error
    return np.asarray(data, dtype=dtype)


def _header_cards(header_bytes: bytes) -> list[str]:
    """The 80-character cards of one raw header, up to (not including) END."""
    text = header_bytes.decode("ascii", errors="replace")
    cards = []
    for start in range(0, len(text) - _FITS_CARD_BYTES + 1, _FITS_CARD_BYTES):
        card = text[start : start + _FITS_CARD_BYTES]
        if card.rstrip() == "END":
            break
        cards.append(card)
    return cards


def _header_values(cards: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Values of the `_METADATA_KEYWORDS` in raw header cards, repairing what astropy refuses.

    Returns:
      values: upper-case keyword -> int, float, bool or str; None where the value is blank.
        Bare nan/inf values become floats.
      header_warnings: one line per repaired card and per unparsable metadata card (left out).
    """
    repaired: dict[str, float] = {}
    kept, header_warnings = [], []
    for number, card in enumerate(cards, start=1):
        nonfinite = _NONFINITE_CARD.match(card.rstrip())
        if nonfinite:
            keyword = nonfinite["keyword"].upper()
            repaired[keyword] = float(nonfinite["value"])
            header_warnings.append(
                f"card {number} {keyword}: non-standard value {nonfinite['value']!r} read as {repaired[keyword]}"
            )
        else:
            kept.append(card)
    header = fits.Header.fromstring("".join(kept))
    values: dict[str, Any] = {}
    for keyword in _METADATA_KEYWORDS:
        if keyword in repaired:
            values[keyword] = repaired[keyword]
        elif keyword in header:
            try:
                value = header[keyword]
            except (VerifyError, ValueError) as error:
                header_warnings.append(f"{keyword}: unparsable card left out ({error})")
                continue
            values[keyword] = None if isinstance(value, fits.card.Undefined) else value
    return values, header_warnings


def _segment_from_file_name(path: pathlib.Path) -> str | None:
    """The JSOC name's segment, else a known segment before '.fits' ('ar11429.Br.fits' -> 'Br')."""
    match = _FILE_NAME.match(path.name)
    if match:
        return match["segment"]
    suffixes = path.name.split(".")
    return suffixes[-2] if len(suffixes) > 2 and suffixes[-2] in SEGMENTS else None


FIELD_UNITS = ("Mx/cm^2", "Mx/cm2", "G", "Gauss")
"""BUNIT values of a magnetic-field segment (JSOC writes Mx/cm^2, which is gauss)."""

_CONTENT_SEGMENTS = {"vector": ("Br", "Bp", "Bt"), "magnetogram": ("magnetogram",), "bitmap": ("bitmap",)}


def segment_content(header: fits.Header) -> str | None:
    """What a JSOC SHARP CEA image header says the data are: 'vector' (Br, Bp or Bt), 'magnetogram', 'bitmap'.

    JSOC headers do not name the segment; these traces tell the kinds apart in every export seen here
    (208 files, 16 HARPs): field segments carry BUNIT Mx/cm^2 and are quantised at BSCALE 0.01 G (vector
    components) or 0.1 G (line-of-sight magnetogram); the bitmap is an integer image with an empty BUNIT.
    Br, Bp and Bt headers are identical. None when the header matches none of these (files written by
    other tools).
    """
    unit = str(header.get("BUNIT", "") or "").strip()
    bscale = header.get("BSCALE")
    if unit in FIELD_UNITS and isinstance(bscale, float):
        if math.isclose(bscale, 0.01):
            return "vector"
        if math.isclose(bscale, 0.1):
            return "magnetogram"
    if "BUNIT" in header and not unit and header.get("BITPIX", 0) > 0 and header.get("BSCALE", 1) == 1:
        return "bitmap"
    return None


def _segment_agreeing_with_content(
    path: pathlib.Path, segment: str | None, content: str | None, header_warnings: list[str]
) -> str:
    """The segment named by the caller, file name or header, checked against the header's content."""
    if segment is None:
        if content is None:
            raise SharpReadError(
                path,
                "unknown segment: the file name does not end in .<segment>.fits, the header has no SEGMENT "
                "and its units/scaling match no SHARP segment",
            )
        segment = _CONTENT_SEGMENTS[content][0]
        if content == "vector":
            header_warnings.append(
                "segment not named by the file or header: read as Br (the headers of Br, Bp and Bt are identical)"
            )
        return segment
    if content is not None and segment in SEGMENTS and segment not in _CONTENT_SEGMENTS[content]:
        described = {
            "vector": "a vector-field component (Br, Bp or Bt)",
            "magnetogram": "a line-of-sight magnetogram (BSCALE 0.1)",
            "bitmap": "a bitmap (integer codes, no field unit)",
        }[content]
        raise SharpReadError(path, f"segment mismatch: named {segment!r} but the header describes {described}")
    return segment


def _checked_segment(path: pathlib.Path, segment: str) -> str:
    if segment not in SEGMENTS:
        raise SharpReadError(path, f"unsupported segment {segment!r}: expected one of {SEGMENTS}")
    return segment


def _as_float(value: Any) -> float:
    """Header value -> float; blank (None) and unparsable strings are NaN."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _as_int(value: Any, default: int) -> int:
    """Header value -> int; accepts hexadecimal strings such as '0x00000400' (JSOC QUALITY)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return default
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return default
        return int(text, 16) if text.lower().startswith("0x") else int(float(text))
    return int(value)


def _noaa_numbers(noaa_ars: Any, noaa_ar: int) -> list[int]:
    """NOAA_ARS ('11429,11430', an int, or blank) -> list of region numbers."""
    if noaa_ars is None:
        return [noaa_ar] if noaa_ar else []
    if isinstance(noaa_ars, (int, np.integer)):
        return [int(noaa_ars)] if noaa_ars else []
    return [int(part) for part in str(noaa_ars).split(",") if part.strip() and int(part) != 0]


def _hdf5_stack(path: pathlib.Path, file_object: io.BytesIO, dataset: str | None) -> tuple[np.ndarray, dict]:
    """The float32 stack of the (only, or named) dataset and the merged file + dataset attributes."""
    with h5py.File(file_object, "r") as file:
        names = _hdf5_dataset_names(file)
        if dataset is None:
            if len(names) != 1:
                raise SharpReadError(
                    path, f"bad HDF5 layout: expected one dataset, found {len(names)} {names}; pass dataset="
                )
            dataset = names[0]
        elif dataset not in names:
            raise SharpReadError(path, f"bad HDF5 layout: no dataset {dataset!r} (found {names})")
        stack = np.asarray(file[dataset][()], dtype=np.float32)
        attributes = {**_hdf5_attributes(file.attrs), **_hdf5_attributes(file[dataset].attrs)}
    return stack, attributes


def _hdf5_dataset_names(file: h5py.File) -> list[str]:
    names: list[str] = []
    file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return sorted(names)


def _hdf5_attributes(attributes: h5py.AttributeManager) -> dict[str, Any]:
    """HDF5 attributes -> upper-case keyword -> Python scalar or str."""
    values = {}
    for key, value in attributes.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, (np.generic, np.ndarray)) and np.size(value) == 1:
            value = np.asarray(value).item()
        values[key.upper()] = value.decode() if isinstance(value, bytes) else value
    return values


def _channel_axis(path: pathlib.Path, shape: tuple[int, ...], num_channels: int) -> int:
    """0 for [C, H, W], 2 for [H, W, C]."""
    if len(shape) != 3:
        raise SharpReadError(path, f"bad HDF5 layout: expected a 3-D stack, found shape {shape}")
    first, last = shape[0] == num_channels, shape[2] == num_channels
    if first and last:
        raise SharpReadError(
            path, f"bad HDF5 layout: shape {shape} is ambiguous, both end axes have {num_channels} entries"
        )
    if first:
        return 0
    if last:
        return 2
    raise SharpReadError(path, f"bad HDF5 layout: shape {shape} has no end axis of {num_channels} channels")
