"""Physical units of an uploaded Br map: its plate scale from the FITS header, and the query's quantities
with names and units (flux in Mx, lengths in Mm, area in Mm^2 and MSH) where that scale is known.

Plate scale (the (row, col) size of one pixel on the Sun, in Mm) from CDELT1/2 and CUNIT1/2:

    heliographic (CTYPE CRLN-/CRLT-/HGLN-/HGLT-, e.g. SHARP CEA; or no CTYPE with CUNIT deg or none):
        CDELT in heliographic degrees -> Mm on the solar surface (`solarjax.interop`'s conversion);
    helioprojective (CTYPE HPLN-/HPLT-, or an arcsec CUNIT without CTYPE):
        CDELT as an angle seen from the observer -> Mm at disk centre, by RSUN_OBS (the Sun's angular
        radius: R_sun / RSUN_OBS per unit angle) or else DSUN_OBS (the observer's distance, m);
    a length CUNIT (Mm, km, m): taken as it is.

Anything else (no CDELT, an unknown unit, a helioprojective scale without RSUN_OBS or DSUN_OBS) leaves the
scale unknown: the quantities are then stated in patch units (s = B / 1000 G on the 128 x 128 grid, see
`solarjax.physics`), with the reason.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

PATCH_UNITS = "patch units"

PHYSICAL_ROWS = (
    # (interop name, label, unit shown)
    ("unsigned_flux", "total unsigned flux", "Mx"),
    ("unsigned_flux_full_res", "unsigned flux above 150 G, full resolution", "Mx"),
    ("net_flux", "net flux", "Mx"),
    ("tpf", "mean positive field", "G"),
    ("tnf", "mean negative field (magnitude)", "G"),
    ("psep", "polarity separation", "Mm"),
    ("tilt", "tilt", "deg"),
    ("area", "area of both polarities", "Mm^2"),
    ("area", "area of both polarities", "MSH"),
    ("lead_polarity", "leading-polarity offset", "Mm"),
    ("r_value", "Schrijver R", "Mx"),
)
"""Rows of the physical quantities table, in display order (area twice: Mm^2 and millionths of a hemisphere)."""

LABELS = {
    "tuf": "total unsigned flux",
    "tpf": "mean positive field",
    "tnf": "mean negative field (magnitude)",
    "net_flux": "net flux",
    "psep": "polarity separation",
    "tilt": "tilt",
    "area": "area of both polarities",
    "lead_polarity": "leading-polarity offset",
    "r_value": "Schrijver R",
}
"""Names of `solarjax.physics.QUANTITY_NAMES`, for the patch-unit table."""

SCALE_KEYWORDS = ("CDELT1", "CDELT2", "CUNIT1", "CUNIT2", "CTYPE1", "CTYPE2", "RSUN_OBS", "DSUN_OBS")
"""The header keywords `plate_scale` reads."""

_HELIOGRAPHIC = ("CRLN", "CRLT", "HGLN", "HGLT")
_HELIOPROJECTIVE = ("HPLN", "HPLT")


@dataclasses.dataclass(frozen=True)
class PlateScale:
    """The size of one pixel of a map on the Sun.

    Attributes:
      pixel_size_mm: (row, col) in Mm, or None when unknown.
      source: how it was found (e.g. 'CDELT1/2 = 0.03 deg (CRLN-CEA), heliographic'), or why it is unknown.
    """

    pixel_size_mm: tuple[float, float] | None
    source: str


def msh_unit():
    """astropy unit of a millionth of the solar hemisphere (2 pi R_sun^2 / 1e6, R_sun = `R_SUN_MM`)."""
    import astropy.units as u

    from solarjax.data import R_SUN_MM

    return u.def_unit("MSH", 2.0 * math.pi * (R_SUN_MM * u.Mm) ** 2 * 1e-6)


def plate_scale(header: Mapping[str, Any]) -> PlateScale:
    """The plate scale of a map from its FITS header keywords (CDELT1/2, CUNIT1/2, CTYPE1/2, RSUN_OBS,
    DSUN_OBS; upper-case keys), see the module docstring."""
    import astropy.units as u

    from solarjax.data import MM_PER_DEGREE, R_SUN_MM

    cdelt = [_finite(header.get(f"CDELT{axis}")) for axis in (1, 2)]
    if None in cdelt or not all(value > 0 for value in map(abs, cdelt)):
        return PlateScale(None, "no CDELT1/CDELT2 in the header")
    ctype = " ".join(str(header.get(f"CTYPE{axis}") or "").upper() for axis in (1, 2))
    units = []
    for axis in (1, 2):
        text = str(header.get(f"CUNIT{axis}") or "").strip()
        if not text:
            units.append(u.arcsec if ctype.startswith(_HELIOPROJECTIVE) else u.deg)
            continue
        try:
            units.append(u.Unit(text))
        except ValueError:
            return PlateScale(None, f"CUNIT{axis} {text!r} is not a unit")
    sizes = [abs(value) * unit for value, unit in zip(cdelt, units)]  # (col, row)
    described = f"CDELT1/2 = {cdelt[0]:g} {units[0]}, {cdelt[1]:g} {units[1]}" + (
        f" ({ctype.strip()})" if ctype.strip() else ""
    )
    if all(size.unit.physical_type == "length" for size in sizes):
        col, row = (size.to_value(u.Mm) for size in sizes)
        return PlateScale((row, col), described)
    if not all(size.unit.physical_type == "angle" for size in sizes):
        return PlateScale(None, f"{described}: neither both angles nor both lengths")
    helioprojective = ctype.startswith(_HELIOPROJECTIVE) or (
        not ctype.strip() and all(unit in (u.arcsec, u.arcmin) for unit in units)
    )
    if not helioprojective:
        if ctype.strip() and not ctype.startswith(_HELIOGRAPHIC):
            return PlateScale(None, f"{described}: a coordinate type that is neither heliographic nor helioprojective")
        col, row = (size.to_value(u.deg) * MM_PER_DEGREE for size in sizes)
        return PlateScale((row, col), f"{described}, heliographic degrees")
    rsun_obs = _finite(header.get("RSUN_OBS"))
    if rsun_obs is not None and rsun_obs > 0:
        col, row = (R_SUN_MM * (size / (rsun_obs * u.arcsec)).to_value(u.one) for size in sizes)
        return PlateScale(
            (row, col), f"{described}, helioprojective, R_sun / RSUN_OBS = {R_SUN_MM / rsun_obs:.4g} Mm/arcsec"
        )
    dsun_obs = _finite(header.get("DSUN_OBS"))
    if dsun_obs is not None and dsun_obs > 0:
        col, row = ((dsun_obs * u.m * np.tan(size.to_value(u.rad))).to_value(u.Mm) for size in sizes)
        return PlateScale((row, col), f"{described}, helioprojective, DSUN_OBS = {dsun_obs:.6g} m")
    return PlateScale(None, f"{described}: helioprojective without RSUN_OBS or DSUN_OBS")


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def physical_payload(field_gauss: np.ndarray, scale: PlateScale) -> dict:
    """The 'physical' part of a query: quantities of a Br map [H, W] (G, NaN allowed) in physical units.

    Returns:
      {"known": bool, "pixel_size_mm": [row, col] of the full-resolution map or None, "plate_scale":
      `PlateScale.source`, "quantities": [{"name", "label", "value", "unit"}, ...] (empty when unknown),
      "units": "physical" or `PATCH_UNITS`}. Values come from `solarjax.interop.physical_quantities`
      (preprocessed as the query, threshold 150 G); NaN becomes None.
    """
    if scale.pixel_size_mm is None:
        return {
            "known": False,
            "pixel_size_mm": None,
            "plate_scale": scale.source,
            "quantities": [],
            "units": PATCH_UNITS,
        }
    import astropy.units as u

    from solarjax import interop

    field = np.nan_to_num(np.asarray(field_gauss, np.float64), nan=0.0)
    values = interop.physical_quantities(field * u.G, pixel_size=u.Quantity(scale.pixel_size_mm, u.Mm))
    msh = msh_unit()
    rows = []
    for name, label, unit in PHYSICAL_ROWS:
        quantity = values[name].to(msh) if unit == "MSH" else values[name]
        value = float(quantity.value)
        rows.append({"name": name, "label": label, "value": value if math.isfinite(value) else None, "unit": unit})
    return {
        "known": True,
        "pixel_size_mm": [float(size) for size in scale.pixel_size_mm],
        "plate_scale": scale.source,
        "quantities": rows,
        "units": "physical",
    }


def patch_units_payload(reason: str) -> dict:
    """The 'physical' part of a query without a plate scale (generated patches, NPY uploads, table rows)."""
    return {"known": False, "pixel_size_mm": None, "plate_scale": reason, "quantities": [], "units": PATCH_UNITS}
