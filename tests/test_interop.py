"""solarjax.interop: SHARP patches to and from sunpy Maps; physical quantities as astropy Quantities."""

import math

import astropy.units as u
import numpy as np
import pytest
import sunpy.map

from solarjax import interop, physics
from solarjax.data import preprocess_patch, read_sharp


@pytest.fixture(scope="module")
def patch_1449(real_br_files):
    """HARP 1449 at 2012-03-06 14:24 TAI (the README's example)."""
    (path,) = [p for p in real_br_files if ".1449.20120306_142400_TAI." in p.name]
    return read_sharp(path)


def test_a_map_gives_the_cli_numbers_with_units(patch_1449):
    smap = sunpy.map.Map(patch_1449.path)
    got = interop.physical_quantities(smap)
    prepared = preprocess_patch(patch_1449)
    expected = {
        k: float(v[0])
        for k, v in physics.physical_quantities(prepared.image[None], np.float32(prepared.pixel_size_mm)).items()
    }
    for name, key in interop._FROM_PHYSICS.items():
        assert got[name].unit == interop.PHYSICAL_UNITS[name]
        want = math.degrees(expected[key]) if name == "tilt" else expected[key]
        assert got[name].value == pytest.approx(want, rel=1e-5), name
    full_res = physics.unsigned_flux_above_mx(patch_1449.data, patch_1449.meta["pixel_area_cm2"])
    assert got["unsigned_flux_full_res"].to_value(u.Mx) == pytest.approx(float(full_res), rel=1e-6)
    # the physical tilt of HARP 1449 (square Mm pixels), not the squashed 128 x 128 grid's
    assert got["tilt"].to_value(u.deg) == pytest.approx(-6.34, abs=0.01)
    assert got["unsigned_flux"].to(u.Wb).value == pytest.approx(got["unsigned_flux"].value * 1e-8)


def test_field_quantities_in_any_field_unit_agree(patch_1449):
    pixel = patch_1449.meta["pixel_size_mm"] * u.Mm
    gauss = interop.physical_quantities(patch_1449.data * u.G, pixel_size=pixel)
    tesla = interop.physical_quantities(patch_1449.data * 1e-4 * u.T, pixel_size=pixel)
    surface = interop.physical_quantities(patch_1449.data * u.Mx / u.cm**2, pixel_size=0.03 * u.deg)
    from_patch = interop.physical_quantities(patch_1449)
    for name in gauss:
        for other in (tesla, surface, from_patch):
            np.testing.assert_allclose(other[name].to_value(gauss[name].unit), gauss[name].value, rtol=1e-5)


def test_two_squares_known_answer():
    """+500 G and -500 G squares of 10 x 10 pixels, 40 pixels apart along a row, 1 Mm pixels."""
    image = np.zeros((128, 128), np.float32)
    image[60:70, 20:30], image[60:70, 60:70] = 0.5, -0.5
    got = interop.physical_quantities(image, pixel_size=1 * u.Mm)
    assert got["unsigned_flux"].to_value(u.Mx) == pytest.approx(200 * 500 * 1e16, rel=1e-6)
    assert got["net_flux"].to_value(u.Mx) == pytest.approx(0, abs=1e13)
    assert got["psep"].to_value(u.Mm) == pytest.approx(40, rel=1e-6)
    assert got["area"].to_value(u.Mm**2) == pytest.approx(200, rel=1e-6)
    assert got["tilt"].to_value(u.deg) == pytest.approx(0, abs=1e-6)
    assert got["lead_polarity"].to_value(u.Mm) == pytest.approx(-40, rel=1e-6)  # the positive square trails
    assert got["tpf"].to_value(u.G) == pytest.approx(500, rel=1e-6)
    doubled = interop.physical_quantities(np.stack([image, image]), pixel_size=(2, 2) * u.Mm)
    assert doubled["unsigned_flux"].shape == (2,)
    np.testing.assert_allclose(doubled["unsigned_flux"].to_value(u.Mx), 4 * 200 * 500 * 1e16, rtol=1e-6)
    np.testing.assert_allclose(doubled["psep"].to_value(u.Mm), 80, rtol=1e-6)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda p: p.data,
            "normalised patches s = B / 1000 G lie in \\[-1, 1\\], but \\|values\\| reach 2580.*Quantity",
        ),
        (lambda p: p.data * u.m, "expected a magnetic field \\(G, T or Mx/cm\\^2\\), got a quantity in m"),
        (lambda p: p.data * u.G, "the pixel size is unknown: pass pixel_size"),
    ],
)
def test_unit_mistakes_are_refused_with_the_fix(patch_1449, make, message):
    with pytest.raises(ValueError, match=message):
        interop.physical_quantities(make(patch_1449))


def test_a_helioprojective_map_is_refused():
    smap = sunpy.map.Map(
        np.zeros((8, 8)),
        {
            "CTYPE1": "HPLN-TAN",
            "CTYPE2": "HPLT-TAN",
            "CDELT1": 0.6,
            "CDELT2": 0.6,
            "CUNIT1": "arcsec",
            "CUNIT2": "arcsec",
            "BUNIT": "G",
            "DATE-OBS": "2012-03-06T14:24:00",
        },
    )
    with pytest.raises(ValueError, match="a SHARP CEA map is needed .* got HPLN-TAN/HPLT-TAN"):
        interop.physical_quantities(smap)


@pytest.mark.filterwarnings("ignore:Missing metadata for observer")  # no observer distance in SHARP metadata
def test_patch_to_map_and_back(patch_1449):
    smap = interop.to_map(patch_1449)
    assert smap.unit == u.Mx / u.cm**2 and smap.data.shape == patch_1449.data.shape
    assert smap.scale.axis1.to_value(u.deg / u.pix) == pytest.approx(patch_1449.meta["cdelt1"])
    centre = smap.wcs.pixel_to_world_values(patch_1449.meta["crpix1"] - 1, patch_1449.meta["crpix2"] - 1)
    np.testing.assert_allclose(centre, (patch_1449.meta["crval1"], patch_1449.meta["crval2"]), atol=1e-9)
    back = interop.patch_from_map(smap)
    np.testing.assert_array_equal(back.data, patch_1449.data)
    for key in ("harpnum", "t_rec", "noaa_ar", "pixel_size_mm", "lat_deg", "lon_deg", "USFLUX"):
        assert (
            back.meta[key] == pytest.approx(patch_1449.meta[key])
            if isinstance(back.meta[key], float)
            else back.meta[key] == patch_1449.meta[key]
        ), key
    # the map read from the file and the patch read by read_sharp agree too
    from_file = interop.patch_from_map(sunpy.map.Map(patch_1449.path))
    np.testing.assert_allclose(from_file.data, patch_1449.data, atol=1e-3)
    assert from_file.meta["pixel_size_mm"] == pytest.approx(patch_1449.meta["pixel_size_mm"])
