"""solarjax.data.lasco on sunpy's real LASCO C3 Helioviewer JPEG2000 image, and on FITS files written with
sunpy's real LASCO C2 (level 1) and C3 (level 0.5) headers around analytic coronae with known answers."""

import datetime
import math
import pathlib

import numpy as np
import pytest
import sunpy.data.test
from astropy.io import fits

from solarjax.data import lasco

JP2 = pathlib.Path(sunpy.data.test.get_test_filepath("2013_05_13__16_54_06_137__SOHO_LASCO_C3_white-light.jp2"))


def _real_header(name: str) -> fits.Header:
    header = fits.Header.fromtextfile(sunpy.data.test.get_test_filepath(name))
    for key in ("SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "BSCALE", "BZERO", "BLANK", "HISTORY", "COMMENT"):
        header.remove(key, ignore_missing=True, remove_all=True)
    return header


def _write(path: pathlib.Path, data: np.ndarray, header: fits.Header) -> pathlib.Path:
    fits.PrimaryHDU(data.astype(np.float32), header).writeto(path)
    return path


def _pixel_of(header: fits.Header, position_angle_deg: float, height_rsun: float, rsun_arcsec: float):
    """Forward geometry written out independently: (x, y) 0-based pixel of a point on the sky."""
    pa = math.radians(position_angle_deg)
    east_west, north_south = -height_rsun * math.sin(pa), height_rsun * math.cos(pa)
    roll = math.radians(header.get("CROTA1", 0.0))
    per_px = rsun_arcsec / header["CDELT1"]
    dx = per_px * (math.cos(roll) * east_west + math.sin(roll) * north_south)
    dy = per_px * (-math.sin(roll) * east_west + math.cos(roll) * north_south)
    return header["CRPIX1"] - 1 + dx, header["CRPIX2"] - 1 + dy


def _blob(shape, centre, sigma_px=1.5, amplitude=100.0):
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return amplitude * np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * sigma_px**2))


def test_real_helioviewer_c3_image_reads_with_its_geometry():
    image = lasco.read_lasco(JP2)
    meta = image.meta
    assert image.data.shape == (102, 102) and image.data.dtype == np.float32
    assert meta["detector"] == "C3" and meta["units"] == "display" and meta["source"] == "jp2"
    assert meta["date_obs"] == datetime.datetime(2013, 5, 13, 16, 54, 6, 137000, tzinfo=datetime.UTC)
    assert meta["occulter_rsun"] == (4.4, 31.5) and meta["roll_deg"] == pytest.approx(-173.554)
    assert meta["arcsec_per_px"] == pytest.approx(56.0 * 1024 / 102)
    assert 945 < meta["rsun_arcsec"] < 965  # 949.6" from the Earth on 2013-05-13, 1% more from L1
    radius = lasco.radius_rsun(image)
    occulted = image.data[radius < 3.0]
    corona = image.data[(radius > 5.0) & (radius < 8.0)]
    assert occulted.size >= 9 and np.median(occulted) < 0.5 * np.median(corona)  # centre and scale are right
    assert lasco.field_of_view_mask(image).sum() > 0.5 * image.data.size


def test_level_05_fits_becomes_dn_per_second(tmp_path):
    header = _real_header("lasco_c3.header")
    rate = np.linspace(0.0, 500.0, 64 * 64).reshape(64, 64)
    header["CRPIX1"], header["CRPIX2"] = 32.5, 32.5
    raw = header["OFFSET"] + header["EXPTIME"] * rate
    image = lasco.read_lasco(_write(tmp_path / "c3.fts", raw, header))
    assert image.meta["units"] == "DN/s" and image.meta["level"] == "0.5"
    assert image.meta["date_obs"] == datetime.datetime(2002, 5, 21, 0, 18, 6, 516000, tzinfo=datetime.UTC)
    np.testing.assert_allclose(image.data, rate, atol=1e-3)


def test_position_angle_and_polar_remap_find_a_blob_where_it_was_put(tmp_path):
    header = _real_header("lasco_c2_25299383_s.header")  # level 1, roll 0.475 deg, RSUN 978.57"
    centre = _pixel_of(header, 60.0, 4.0, header["RSUN"])
    image = lasco.read_lasco(_write(tmp_path / "c2.fts", 1.0 + _blob((128, 128), centre), header))
    assert image.meta["units"] == "MSB" and image.meta["occulter_rsun"] == (2.2, 6.0)
    peak = np.unravel_index(np.argmax(image.data), image.data.shape)
    assert lasco.position_angle_deg(image)[peak] == pytest.approx(60.0, abs=2.0)
    assert lasco.radius_rsun(image)[peak] == pytest.approx(4.0, abs=0.1)
    polar = lasco.polar_remap(image, num_angles=360, num_heights=76)  # 0.05 Rsun per row from 2.2 Rsun
    row, column = np.unravel_index(np.nanargmax(polar), polar.shape)
    assert (column + 0.5) == pytest.approx(60.0, abs=1.0)
    assert 2.2 + (row + 0.5) * 0.05 == pytest.approx(4.0, abs=0.06)


def test_cardinal_directions_with_no_roll(tmp_path):
    header = _real_header("lasco_c2_25299383_s.header")
    header["CROTA1"] = header["CROTA2"] = header["CROTA"] = 0.0
    image = lasco.read_lasco(_write(tmp_path / "c2.fts", np.ones((128, 128)), header))
    cx, cy = header["CRPIX1"] - 1, header["CRPIX2"] - 1
    angles = lasco.position_angle_deg(image)
    north, east, south, west = (
        angles[int(cy) + 30, int(cx)],
        angles[int(cy), int(cx) - 30],
        angles[int(cy) - 30, int(cx)],
        angles[int(cy), int(cx) + 30],
    )
    np.testing.assert_allclose([north, east, south, west], [0.0, 90.0, 180.0, 270.0], atol=1.0)


def test_running_and_base_differences_isolate_a_moving_front(tmp_path):
    header = _real_header("lasco_c2_25299383_s.header")
    files = []
    for step, height in enumerate((3.0, 4.0, 5.0)):
        header["DATE-OBS"] = f"2009-02-28T00:{5 + 12 * step:02d}:33.380"
        data = 1.0 + _blob((128, 128), _pixel_of(header, 120.0, height, header["RSUN"]))
        files.append(_write(tmp_path / f"c2_{step}.fts", data, header))
    images = [lasco.read_lasco(f) for f in files]
    running = lasco.difference_images(images, "running")
    base = lasco.difference_images(images, "base")
    assert running.shape == base.shape == (2, 128, 128)
    polar = lasco.polar_remap(images[0], running[1], num_angles=360, num_heights=76)
    heights = 2.2 + (np.arange(76) + 0.5) * 0.05
    profile = polar[:, 119]  # PA 119.5 deg
    assert heights[np.nanargmax(profile)] == pytest.approx(5.0, abs=0.1)  # the front now
    assert heights[np.nanargmin(profile)] == pytest.approx(4.0, abs=0.1)  # where it was
    seen = lasco.field_of_view_mask(images[0])
    np.testing.assert_allclose(base[1][seen], (images[2].data - images[0].data)[seen], atol=1e-6)
    assert np.isnan(base[1][~seen]).all()
    assert np.isnan(running[0][lasco.radius_rsun(images[0]) < 2.0]).all()  # behind the occulter
    with pytest.raises(ValueError, match="increasing time order"):
        lasco.difference_images(images[::-1])


def test_bad_files_name_their_problem(tmp_path):
    aia = pathlib.Path(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    with pytest.raises(lasco.LascoReadError, match="not a LASCO image: DETECTOR"):
        lasco.read_lasco(aia)
    cut = tmp_path / "cut.jp2"
    cut.write_bytes(JP2.read_bytes()[:3000])
    with pytest.raises(lasco.LascoReadError, match="corrupt image data|no header"):
        lasco.read_lasco(cut)
    empty = tmp_path / "empty.fts"
    empty.write_bytes(b"")
    with pytest.raises(lasco.LascoReadError, match="empty file"):
        lasco.read_lasco(empty)
    header = _real_header("lasco_c2_25299383_s.header")
    del header["EXPTIME"]
    with pytest.raises(lasco.LascoReadError, match="missing metadata: no EXPTIME"):
        lasco.read_lasco(_write(tmp_path / "noexp.fts", np.ones((128, 128)), header))
