"""solarjax with sunpy and astropy: SHARP patches to and from `sunpy.map.Map`, quantities as astropy Quantities.

    import sunpy.map, solarjax.interop as sji
    smap = sunpy.map.Map("hmi.sharp_cea_720s.1449.20120306_142400_TAI.Br.fits")
    sji.physical_quantities(smap)["unsigned_flux"]       # <Quantity 6.73e+22 Mx>, the method's TUF in Mx
    sji.to_map(solarjax.data.read_sharp(path))           # a SharpPatch as a sunpy Map (CEA WCS)

`physical_quantities` takes a Map, a `SharpPatch`, a field Quantity (G, T, Mx/cm^2; [H, W] or [N, H, W]) with its
pixel size, or normalised patches s = B / 1000 G; every value it returns carries its unit (Mx, G, Mm, Mm^2, deg).
Bare arrays are taken as normalised patches only: one whose |values| exceed 1 (raw Gauss) is refused with the fix
named, so a field in G cannot silently give a flux 1000 times too large.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from typing import Any

import astropy.units as u
import numpy as np

from solarjax import physics
from solarjax.data import MM_PER_DEGREE, NORMALISATION_GAUSS, SharpPatch, preprocess, sharp_metadata

PHYSICAL_UNITS = {
    "unsigned_flux": u.Mx,
    "net_flux": u.Mx,
    "tpf": u.G,
    "tnf": u.G,
    "psep": u.Mm,
    "tilt": u.deg,
    "area": u.Mm**2,
    "lead_polarity": u.Mm,
    "r_value": u.Mx,
}
"""The unit of each value of `physical_quantities` (``unsigned_flux_full_res`` is Mx too)."""

_FROM_PHYSICS = {  # physics.physical_quantities' names and float units -> these names
    "unsigned_flux": "unsigned_flux_mx",
    "net_flux": "net_flux_mx",
    "tpf": "tpf_g",
    "tnf": "tnf_g",
    "psep": "psep_mm",
    "tilt": "tilt_rad",
    "area": "area_mm2",
    "lead_polarity": "lead_polarity_mm",
    "r_value": "r_value_mx",
}
_CEA_TYPES = ("CRLN-CEA", "CRLT-CEA")
_FIELD = u.G


def _field_gauss(values) -> np.ndarray:
    """A field Quantity (G, T, Mx/cm^2) as float64 G; anything else is refused."""
    try:
        return np.asarray(u.Quantity(values).to_value(_FIELD), np.float64)
    except u.UnitConversionError:
        raise ValueError(f"expected a magnetic field (G, T or Mx/cm^2), got a quantity in {values.unit}") from None


def patch_from_map(smap, segment: str = "Br") -> SharpPatch:
    """A `SharpPatch` (field in G, float32, metadata as `solarjax.data.read_sharp` gives) from a SHARP CEA map.

    Args:
      smap: a `sunpy.map.GenericMap` of a SHARP CEA segment, e.g. ``sunpy.map.Map(path_of_a_Br_file)``.
      segment: the segment it holds (default Br, the one the method's quantities are defined on).
    Raises:
      ValueError: a map that is not CEA (CTYPE CRLN-CEA / CRLT-CEA) or whose unit is not a field.
    """
    types = (str(smap.meta.get("ctype1", "")).upper(), str(smap.meta.get("ctype2", "")).upper())
    if types != _CEA_TYPES:
        raise ValueError(f"a SHARP CEA map is needed (CTYPE1/2 {'/'.join(_CEA_TYPES)}), got {'/'.join(types)}")
    unit = smap.unit if smap.unit is not None else _FIELD
    data = _field_gauss(u.Quantity(smap.data, unit)).astype(np.float32)
    values = {str(k).upper(): v for k, v in smap.meta.items() if not isinstance(v, (dict, list))}
    meta = sharp_metadata(values, file_name=str(smap.meta.get("filename", "")), segment=segment)
    for required in ("harpnum", "t_rec"):
        if required not in meta:
            raise ValueError(f"the map's header has no {required.upper()}: not a SHARP map")
    path = pathlib.Path(str(smap.meta.get("filename", f"map of HARP {meta['harpnum']}")))
    return SharpPatch(data=data, meta=meta, path=path, segment=segment)


def to_map(patch: SharpPatch):
    """A SHARP patch as a `sunpy.map.Map` (Br in Mx/cm^2 = G, the CEA WCS of its header, SDO/HMI observer).

    The header holds what `solarjax.data.read_sharp` keeps: CRPIX/CRVAL/CDELT/CTYPE, T_REC, HARPNUM, NOAA_AR,
    QUALITY and the summary keywords; `patch_from_map` reads it back to the same data and metadata.
    """
    import sunpy.map

    meta = patch.meta
    missing = [k for k in ("crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2") if k not in meta]
    if missing:
        raise ValueError(f"{patch.path}: no CEA WCS in its metadata (missing {', '.join(missing)})")
    header: dict[str, Any] = {
        "CTYPE1": meta.get("ctype1", _CEA_TYPES[0]),
        "CTYPE2": meta.get("ctype2", _CEA_TYPES[1]),
        "CUNIT1": "deg",
        "CUNIT2": "deg",
        "BUNIT": "Mx/cm^2",
        "TELESCOP": "SDO/HMI",
        "INSTRUME": "HMI_SIDE1",
        "CONTENT": f"{patch.segment} (SHARP CEA segment)",
        "T_REC": meta["t_rec_raw"] if "t_rec_raw" in meta else meta["t_rec_tai"].strftime("%Y.%m.%d_%H:%M:%S_TAI"),
        "DATE-OBS": meta["t_rec"].strftime("%Y-%m-%dT%H:%M:%S"),
        "HARPNUM": int(meta["harpnum"]),
        "NOAA_AR": int(meta.get("noaa_ar", 0)),
        "QUALITY": int(meta.get("quality", 0)),
        "NAXIS1": patch.data.shape[1],
        "NAXIS2": patch.data.shape[0],
        "WAVELNTH": 6173.0,
        "WAVEUNIT": "angstrom",
    }
    for key in ("crpix1", "crpix2", "crval1", "crval2", "cdelt1", "cdelt2"):
        header[key.upper()] = float(meta[key])
    if "lon_deg" in meta and math.isfinite(meta["lon_deg"]):
        header["CRLN_OBS"] = float((meta["crval1"] - meta["lon_deg"]) % 360.0)
    for key, value in meta.items():
        if key.isupper() and isinstance(value, float) and math.isfinite(value):
            header[key] = value  # the SHARP summary keywords (USFLUX, ...)
    return sunpy.map.Map(np.asarray(patch.data, np.float32), header)


@dataclasses.dataclass(frozen=True)
class _Prepared:
    images: np.ndarray  # [N, size, size] normalised
    pixel_size_mm: np.ndarray | None  # [N, 2] of the resized images
    full_res_flux_mx: np.ndarray | None  # [N] flux above the threshold at full resolution


def _is_map(source) -> bool:
    import sunpy.map

    return isinstance(source, sunpy.map.GenericMap)


def _prepared(source, size: int, pixel_size, threshold_gauss: float) -> _Prepared:
    if _is_map(source):
        source = patch_from_map(source)
    if isinstance(source, SharpPatch):
        if source.segment != "Br":
            raise ValueError(f"{source.path}: a {source.segment} segment; the method's quantities are defined on Br")
        if "pixel_size_mm" not in source.meta:
            raise ValueError(f"{source.path}: no CDELT1/2 in its metadata, so no pixel size for physical units")
        fields, pixel_size = source.data[None], u.Quantity(source.meta["pixel_size_mm"], u.Mm)
    elif isinstance(source, u.Quantity):
        fields = _field_gauss(source)
        fields = fields[None] if fields.ndim == 2 else fields
    else:
        images = np.asarray(source, np.float32)
        images = images[None] if images.ndim == 2 else images
        peak = float(np.nanmax(np.abs(images))) if images.size else 0.0
        if peak > 1.0 + 1e-6:
            raise ValueError(
                f"normalised patches s = B / 1000 G lie in [-1, 1], but |values| reach {peak:g}: a raw "
                "field? pass it as a Quantity (e.g. br * astropy.units.G) or a sunpy Map, or "
                "preprocess it with solarjax.data.preprocess"
            )
        return _Prepared(images, _per_image_mm(pixel_size, len(images)), None)
    if fields.ndim != 3:
        raise ValueError(f"expected a field [H, W] or [N, H, W], got shape {fields.shape}")
    count, height, width = fields.shape
    images = np.stack([preprocess(f, size) for f in fields])
    pixel_mm = _per_image_mm(pixel_size, count)
    full_res = None
    if pixel_mm is not None:
        pixel_area_cm2 = pixel_mm[:, 0] * pixel_mm[:, 1] * physics.CM_PER_MM**2
        full_res = np.asarray(physics.unsigned_flux_above_mx(fields, pixel_area_cm2, threshold_gauss))
        pixel_mm = pixel_mm * np.array([height / size, width / size])
    return _Prepared(images, pixel_mm, full_res)


def _per_image_mm(pixel_size, count: int) -> np.ndarray | None:
    """pixel_size (a length per pixel, or an angle of heliographic CEA degrees, scalar or (row, col)) as [N, 2] Mm."""
    if pixel_size is None:
        return None
    size = u.Quantity(pixel_size)
    if size.unit.physical_type == "angle":
        mm = size.to_value(u.deg) * MM_PER_DEGREE
    else:
        try:
            mm = size.to_value(u.Mm)
        except u.UnitConversionError:
            raise ValueError(f"pixel_size must be a length (e.g. 0.364 Mm) or CEA degrees, got {size.unit}") from None
    try:
        return np.broadcast_to(np.asarray(mm, np.float64), (count, 2)).copy()
    except ValueError:
        raise ValueError(
            f"pixel_size must be a scalar, (row, col) or [N, 2] for N = {count}, got shape {np.shape(mm)}"
        ) from None


def physical_quantities(source, *, pixel_size=None, threshold=150 * u.G, size: int = 128) -> dict[str, u.Quantity]:
    """The method's quantities of Br patches in physical units, as astropy Quantities.

    Args:
      source: a SHARP CEA `sunpy.map.Map` (Br), a `SharpPatch`, a field Quantity [H, W] or [N, H, W] (G, T,
        Mx/cm^2; preprocessed as the method does: clip +-1000 G, resize to size x size), or normalised patches
        s = B / 1000 G [H, W] / [N, H, W] already at their final size (bare arrays with |s| > 1 are refused).
      pixel_size: the pixel's size on the Sun (Quantity: a length such as 0.364 Mm, or CEA degrees; scalar or
        (row, col)) for Quantity fields and normalised patches; maps and patches take it from the header.
      threshold: the polarity threshold (a Quantity in G or T; default 150 G).
      size: side of the resized patch in pixels (fields only).

    Returns:
      name -> Quantity [N] (a scalar for one map or patch): `PHYSICAL_UNITS`, computed by
      `solarjax.physics.physical_quantities` on the preprocessed patch; for fields (maps, patches, Quantities)
      also ``unsigned_flux_full_res`` (Mx), the unsigned flux above the threshold at full resolution.
    Raises:
      ValueError: no pixel size, a field in other units, raw Gauss in a bare array, a non-CEA map.
    """
    threshold_gauss = float(u.Quantity(threshold).to_value(_FIELD)) if isinstance(threshold, u.Quantity) else None
    if threshold_gauss is None:
        raise ValueError(f"threshold must be a field Quantity (e.g. 150 * astropy.units.G), got {threshold!r}")
    single = isinstance(source, SharpPatch) or _is_map(source) or np.ndim(source) == 2
    prepared = _prepared(source, size, pixel_size, threshold_gauss)
    if prepared.pixel_size_mm is None:
        raise ValueError(
            "the pixel size is unknown: pass pixel_size (e.g. 0.364 * astropy.units.Mm or "
            "0.03 * astropy.units.deg for SHARP CEA), or a sunpy Map / SharpPatch with its header"
        )
    values = physics.physical_quantities(
        prepared.images, prepared.pixel_size_mm.astype(np.float32), threshold=threshold_gauss / NORMALISATION_GAUSS
    )
    result = {name: np.asarray(values[key], np.float64) for name, key in _FROM_PHYSICS.items()}
    result["tilt"] = np.degrees(result["tilt"])
    out = {name: u.Quantity(value, PHYSICAL_UNITS[name]) for name, value in result.items()}
    if prepared.full_res_flux_mx is not None:
        out["unsigned_flux_full_res"] = u.Quantity(prepared.full_res_flux_mx, u.Mx)
    return {name: q[0] for name, q in out.items()} if single else out
