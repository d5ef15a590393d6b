"""Tests of solarjax.data.aia_prep on the real AIA files shipped in the sunpy and sunkit-image wheels:
a 128x128 full-disk 171 A level-1 image (2011-02-15) and a 705x769 171 A cutout (2013-03-10)."""

import importlib.resources
import math
import pathlib

import astropy.units as u
import numpy as np
import pytest
import sunpy.map
import zarr
from aiapy.calibrate import degradation as aiapy_degradation
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.time import Time
from sunpy.coordinates import HeliographicStonyhurst

from solarjax.data import aia_prep

pytestmark = pytest.mark.filterwarnings("ignore:Invalid 'BLANK' keyword:astropy.io.fits.verify.VerifyWarning")

FULL_DISK = pathlib.Path(str(importlib.resources.files("sunpy") / "data/test/aia_171_level1.fits"))
CUTOUT = pathlib.Path(str(importlib.resources.files("sunkit_image") / "data/test/aia_171_cutout.fits"))
RESPONSE_TABLE = pathlib.Path(
    str(importlib.resources.files("aiapy") / "tests/data/aia_V8_20171210_050627_response_table.txt")
)


def write_variant(source, destination, data=None, **cards):
    """A copy of a real file with some header cards changed (and optionally other data)."""
    with fits.open(source) as hdus:
        header = hdus[0].header.copy()
        original = hdus[0].data
    header.update(cards)
    fits.PrimaryHDU(original if data is None else data, header).writeto(destination)
    return destination


@pytest.fixture(scope="module")
def full_disk():
    return aia_prep.prepare_channel(FULL_DISK, degradation="skip")


@pytest.fixture(scope="module")
def cutout():
    return aia_prep.prepare_channel(CUTOUT, degradation="skip")


def test_read_aia_keeps_the_header(full_disk):
    smap = aia_prep.read_aia(FULL_DISK)
    assert isinstance(smap, sunpy.map.sources.AIAMap) and smap.data.shape == (128, 128)
    assert aia_prep.read_aia_channel_and_time(FULL_DISK) == (171, Time("2011-02-15T00:00:01.34"))
    assert full_disk.wavelength == 171 and full_disk.exposure_s == 2.000191 and full_disk.full_disk
    assert full_disk.t_obs == Time("2011-02-15T00:00:01.34") and full_disk.quality == 0
    assert aia_prep.read_aia_channel_and_time(CUTOUT)[1] == Time("2013-03-10T12:00:12.341")


@pytest.mark.parametrize("path", [FULL_DISK, CUTOUT], ids=["full_disk", "cutout"])
def test_exposure_normalisation_divides_by_exptime(path):
    raw_data, header = fits.getdata(path, header=True)
    normalised = aia_prep.normalise_exposure(aia_prep.read_aia(path))
    np.testing.assert_array_equal(normalised.data, raw_data.astype(np.float64) / header["EXPTIME"])
    assert normalised.meta["bunit"] == "DN/s" and normalised.meta["exptime"] == 1.0


def test_degradation_correction_divides_by_aiapy_factor(full_disk):
    table = aia_prep.load_correction_table(RESPONSE_TABLE)
    corrected = aia_prep.prepare_channel(FULL_DISK, correction_table=table)
    expected = float(aiapy_degradation(171 * u.angstrom, Time("2011-02-15T00:00:01.34"), correction_table=table)[0])
    assert corrected.degradation_factor == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(corrected.map.data, full_disk.map.data / expected, rtol=1e-12, atol=1e-12)
    later = aia_prep.prepare_channel(CUTOUT, correction_table=table).degradation_factor
    assert 0.5 < later < corrected.degradation_factor < 1.0  # 171 A loses sensitivity with time
    assert full_disk.degradation_factor is None


def test_missing_correction_table_is_a_clear_error_unless_skipped(tmp_path, monkeypatch):
    missing = tmp_path / "aia_V10_response_table.txt"
    with pytest.raises(aia_prep.DegradationUnavailableError, match="degradation='skip'") as error:
        aia_prep.prepare_channel(FULL_DISK, correction_table=missing)
    assert str(missing) in str(error.value)

    def offline(source):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(aia_prep, "get_correction_table", offline)
    with pytest.raises(aia_prep.DegradationUnavailableError, match=r"from SSW \(ConnectionError: Name or service"):
        aia_prep.prepare_channel(FULL_DISK)
    assert aia_prep.prepare_channel(FULL_DISK, degradation="skip").degradation_factor is None
    with pytest.raises(ValueError, match="'apply' or 'skip'"):
        aia_prep.prepare_channel(FULL_DISK, degradation="no")


def _disk_centre_pixel(smap):
    centre = SkyCoord(0 * u.arcsec, 0 * u.arcsec, frame=smap.coordinate_frame)
    return np.array([float(v) for v in smap.wcs.world_to_pixel(centre)])


@pytest.mark.parametrize("shift, roll_deg", [((0.0, 0.0), 0.0), ((6.3, -4.7), 10.0)])
def test_registration_centres_the_sun_north_up_at_the_plate_scale(shift, roll_deg):
    """The real image, and the same image declared shifted by (6.3, -4.7) px and rolled by 10 deg.

    This file's reference coordinate lies (-4.5", 2.9") from disk centre (CRVAL1/2), its disk
    centre 0.24 px from the image centre; aiapy alone would keep that offset."""
    smap = aia_prep.normalise_exposure(aia_prep.read_aia(FULL_DISK))
    meta = smap.meta.copy()
    meta["crpix1"] += shift[0]
    meta["crpix2"] += shift[1]
    meta["crota2"] = roll_deg
    moved = sunpy.map.Map(smap.data, meta)
    assert np.abs(_disk_centre_pixel(moved) - 63.5 - np.array(shift)).max() < 0.5

    registered = aia_prep.register(moved)
    assert registered.data.shape == (128, 128)
    for axis in (0, 1):
        assert registered.scale[axis].to_value(u.arcsec / u.pix) == pytest.approx(0.6 * 4096 / 128, rel=1e-9)
    np.testing.assert_allclose(registered.rotation_matrix, np.eye(2), atol=1e-12)
    assert np.abs(_disk_centre_pixel(registered) - 63.5).max() < 0.01


def test_padding_a_registered_map_keeps_its_sky(full_disk):
    """aiapy returns 4094 x 4094 pixels for a 4096 x 4096 image; `register` pads back to the input's shape."""
    smap = full_disk.map
    short = sunpy.map.Map(smap.data[1:-1, 1:-1], smap.meta.copy())
    padded = aia_prep._padded_to_shape(short, (128, 128))
    assert padded.data.shape == (128, 128)
    np.testing.assert_array_equal(padded.data[1:-1, 1:-1], smap.data[1:-1, 1:-1])
    assert not padded.data[0].any() and not padded.data[:, -1].any()
    np.testing.assert_allclose(_disk_centre_pixel(padded), _disk_centre_pixel(short) + 1.0, atol=1e-9)
    cropped = aia_prep._padded_to_shape(smap, (120, 124))
    np.testing.assert_array_equal(cropped.data, smap.data[4:-4, 2:-2])
    np.testing.assert_allclose(_disk_centre_pixel(cropped), _disk_centre_pixel(smap) - [2.0, 4.0], atol=1e-9)


def test_registered_cutout_is_north_up_at_full_resolution(cutout):
    smap = cutout.map
    assert not cutout.full_disk
    assert [smap.scale[i].to_value(u.arcsec / u.pix) for i in (0, 1)] == pytest.approx([0.6, 0.6], rel=1e-9)
    np.testing.assert_allclose(smap.rotation_matrix, np.eye(2), atol=1e-12)
    raw = aia_prep.normalise_exposure(aia_prep.read_aia(CUTOUT))
    # A corner-free interior: same sky, intensity kept (the scale changes by 0.1 %, the roll is 0.02 deg).
    inner = (slice(100, -100), slice(100, -100))
    assert smap.data[inner].mean() == pytest.approx(raw.data[inner].mean(), rel=0.01)


def test_downsampling_is_a_block_mean(full_disk):
    smap = aia_prep.downsample(full_disk.map, 2)
    assert smap.data.shape == (64, 64)
    assert smap.scale[0].to_value(u.arcsec / u.pix) == pytest.approx(38.4)
    np.testing.assert_allclose(smap.data, full_disk.map.data.reshape(64, 2, 64, 2).mean(axis=(1, 3)), rtol=1e-12)
    assert np.abs(_disk_centre_pixel(smap) - 31.5).max() < 1.0
    three = aia_prep.downsample(full_disk.map, 3)
    assert three.data.shape == (42, 42)  # 128 = 3 * 42 + 2: the partial block is dropped
    with pytest.raises(ValueError, match="positive integer"):
        aia_prep.downsample(full_disk.map, 1.5)


def _mu_from_stonyhurst(lon_deg, lat_deg, observer):
    """cos(heliocentric angle) of a surface point from the Sun-centre angle gamma between the point
    and the observer and the angle rho at the observer: theta = gamma + rho (triangle Sun-observer-point)."""
    lon, lat = np.deg2rad(lon_deg), np.deg2rad(lat_deg)
    b0, l0 = observer.lat.to_value(u.rad), observer.lon.to_value(u.rad)
    distance, radius = observer.radius.to_value(u.m), 696_000_000.0
    cos_gamma = np.sin(lat) * np.sin(b0) + np.cos(lat) * np.cos(b0) * np.cos(lon - l0)
    gamma = np.arccos(cos_gamma)
    sight = np.sqrt(radius**2 + distance**2 - 2 * radius * distance * cos_gamma)
    rho = np.arcsin(radius * np.sin(gamma) / sight)
    return np.cos(gamma + rho)


def test_mu_is_one_at_disk_centre_and_matches_sunpy_geometry(full_disk):
    grid = full_disk.map
    distance, radius = grid.dsun.to_value(u.m), grid.rsun_meters.to_value(u.m)
    assert aia_prep.mu_of_helioprojective(0.0, 0.0, distance, radius) == 1.0
    assert np.isnan(aia_prep.mu_of_helioprojective(0.0, 980.0, distance, radius))  # R_sun is 971.8"

    lon = np.array([0.0, 30.0, -45.0, 60.0, 75.0, -85.0])
    lat = np.array([0.0, 20.0, -30.0, 10.0, -60.0, 5.0])
    surface = SkyCoord(
        lon * u.deg, lat * u.deg, radius, unit=(u.deg, u.deg, u.m), frame=HeliographicStonyhurst(obstime=grid.date)
    )
    seen = surface.transform_to(grid.coordinate_frame)
    mu = aia_prep.mu_of_helioprojective(seen.Tx.to_value(u.arcsec), seen.Ty.to_value(u.arcsec), distance, radius)
    np.testing.assert_allclose(mu, _mu_from_stonyhurst(lon, lat, grid.observer_coordinate), atol=1e-6)


def test_centred_patches_at_disk_centre_and_limb(full_disk):
    observation = aia_prep.stack_channels([full_disk])
    grid = observation.grid
    targets = SkyCoord(
        [0.0, 0.0, 0.0, 2000.0] * u.arcsec, [0.0, -940.0, 960.0, 0.0] * u.arcsec, frame=grid.coordinate_frame
    )
    boxes, kept = aia_prep.centred_boxes(grid, targets, 8)
    assert kept.tolist() == [0, 1, 2]  # 2000" lies outside the 1229" half-width image
    centre, south, north = aia_prep.extract_patches(observation, boxes)
    assert centre.mu > 1 - 1e-4 and math.hypot(centre.hpc_x, centre.hpc_y) < 0.5 * 19.2 * math.sqrt(2)
    assert 0.0 < south.mu < 0.3 and 0.0 < north.mu < 0.3
    assert south.hpc_y == pytest.approx(-940.0, abs=19.2) and south.image.shape == (8, 8, 1)

    harp_centre = SkyCoord(30 * u.deg, 20 * u.deg, frame=HeliographicStonyhurst(obstime=grid.date))
    [[row0, row1, col0, col1]], kept = aia_prep.centred_boxes(grid, harp_centre, 16)
    assert kept.tolist() == [0]
    x, y = (float(v) for v in grid.wcs.world_to_pixel(harp_centre.transform_to(grid.coordinate_frame)))
    assert abs((col0 + col1 - 1) / 2 - x) <= 0.5 and abs((row0 + row1 - 1) / 2 - y) <= 0.5
    [patch] = aia_prep.extract_patches(observation, [[row0, row1, col0, col1]])
    assert patch.mu == pytest.approx(_mu_from_stonyhurst(30.0, 20.0, grid.observer_coordinate), abs=0.02)
    far_side = SkyCoord(150 * u.deg, 0 * u.deg, frame=HeliographicStonyhurst(obstime=grid.date))
    assert len(aia_prep.centred_boxes(grid, far_side, 8)[1]) == 0


@pytest.mark.parametrize("overlap, rows, cols", [(0, 5, 6), (64, 10, 11), (96, 19, 21)])
def test_grid_patch_count_for_an_overlap(cutout, overlap, rows, cols):
    boxes = aia_prep.grid_boxes((705, 769), 128, overlap)
    assert len(boxes) == rows * cols  # floor((n - 128) / (128 - overlap)) + 1 per axis
    assert np.all(boxes[:, 1] - boxes[:, 0] == 128) and np.all(boxes[:, 3] - boxes[:, 2] == 128)
    assert boxes[:, 0].min() >= 0 and boxes[:, 1].max() <= 705 and boxes[:, 3].max() <= 769
    # Centred: the unused margins at both ends differ by at most one pixel.
    assert abs(boxes[:, 0].min() - (705 - boxes[:, 1].max())) <= 1
    assert abs(boxes[:, 2].min() - (769 - boxes[:, 3].max())) <= 1
    assert np.unique(np.diff(np.unique(boxes[:, 0]))).tolist() == [128 - overlap]
    observation = aia_prep.stack_channels([cutout])
    assert (
        len(aia_prep.extract_patches(observation, aia_prep.grid_boxes(observation.images.shape[:2], 128, overlap)))
        == rows * cols
    )
    with pytest.raises(ValueError, match="overlap must be in"):
        aia_prep.grid_boxes((705, 769), 128, 128)


def test_patches_carry_the_contract_metadata(cutout):
    observation = aia_prep.stack_channels([cutout])
    patches = aia_prep.extract_patches(observation, aia_prep.grid_boxes(observation.images.shape[:2], 128))
    first = patches[0]
    r0, r1, c0, c1 = first.bbox
    np.testing.assert_array_equal(first.image[..., 0], cutout.map.data[r0:r1, c0:c1].astype(np.float32))
    assert first.t_obs == "2013-03-10T12:00:12.341000+00:00" and first.source == "aia_171_cutout.fits"
    assert first.wavelengths.tolist() == [171] and first.image.dtype == np.float32
    centre = cutout.map.pixel_to_world(((c0 + c1 - 1) / 2) * u.pix, ((r0 + r1 - 1) / 2) * u.pix)
    assert first.hpc_x == pytest.approx(centre.Tx.to_value(u.arcsec)) and first.hpc_y == pytest.approx(
        centre.Ty.to_value(u.arcsec)
    )
    mu = np.array([p.mu for p in patches])
    assert np.all((mu > 0.6) & (mu < 1.0))  # the cutout lies between 40" and 480" from disk centre
    assert len(aia_prep.select_by_mu(patches, min_mu=0.95)) == np.sum(mu >= 0.95) > 0
    assert len(aia_prep.select_by_mu(patches, max_mu=0.9)) == np.sum(mu <= 0.9) > 0
    assert aia_prep.patch_id(first) == f"aia[2013-03-10T12:00:12.341000+00:00][171][r{r0}c{c0}]"


def test_select_by_mu_drops_off_disk_patches_for_any_bound(full_disk):
    observation = aia_prep.stack_channels([full_disk])
    patches = aia_prep.extract_patches(observation, aia_prep.grid_boxes((128, 128), 16))
    # Patch centres lie 8, 24, 40 or 56 px from the disk centre along each axis; R_sun = 971.8" = 50.6 px.
    # On disk: both offsets <= 40 px, but not (40, 40) (56.6 px): 36 - 4 = 32. Near the limb: the
    # 8 centres at (40, 24) px, 46.6 px out, mu = sqrt(1 - (46.6 / 50.6)^2) = 0.39.
    off_disk = [p for p in patches if np.isnan(p.mu)]
    assert len(off_disk) == 32 and len(aia_prep.select_by_mu(patches)) == 64
    assert len(aia_prep.select_by_mu(patches, min_mu=0.0)) == 32
    limb = aia_prep.select_by_mu(patches, max_mu=0.45)
    assert len(limb) == 8 and all(0.35 < p.mu < 0.42 for p in limb)


def test_channels_stack_on_one_grid_and_times_must_agree(tmp_path, full_disk):
    raw = fits.getdata(FULL_DISK)
    hot = write_variant(
        FULL_DISK, tmp_path / "as_193.fits", data=raw * 1.5, WAVELNTH=193, T_OBS="2011-02-15T00:00:05.84Z"
    )
    late = write_variant(FULL_DISK, tmp_path / "late_211.fits", WAVELNTH=211, T_OBS="2011-02-15T00:00:31.34Z")
    observation = aia_prep.prepare_observation([hot, FULL_DISK], degradation="skip")
    assert observation.images.shape == (128, 128, 2) and observation.wavelengths == (193, 171)
    np.testing.assert_allclose(observation.images[..., 0], 1.5 * observation.images[..., 1], rtol=1e-6)
    np.testing.assert_array_equal(observation.images[..., 1], full_disk.map.data.astype(np.float32))
    assert (
        observation.t_obs == Time("2011-02-15T00:00:05.84") and observation.sources == "as_193.fits;aia_171_level1.fits"
    )
    assert not observation.degradation_applied

    with pytest.raises(ValueError, match="differ by 30.0 s") as error:
        aia_prep.prepare_observation([FULL_DISK, late], degradation="skip")
    assert str(late) in str(error.value) and str(FULL_DISK) in str(error.value)
    assert (
        aia_prep.prepare_observation([FULL_DISK, late], degradation="skip", time_tolerance_s=60).images.shape[-1] == 2
    )
    with pytest.raises(ValueError, match="a wavelength appears twice"):
        aia_prep.stack_channels([full_disk, full_disk])


def test_resampling_onto_another_grid_follows_the_sky():
    """A cutout cropped by 7 rows and 11 columns lands back on the uncropped grid where they overlap."""
    smap = aia_prep.read_aia(CUTOUT)
    meta = smap.meta.copy()
    meta["crpix1"] -= 11
    meta["crpix2"] -= 7
    cropped = sunpy.map.Map(smap.data[7:, 11:], meta)
    resampled = aia_prep.resample_onto(cropped, smap)
    np.testing.assert_allclose(resampled[20:-20, 20:-20], smap.data[20:-20, 20:-20], rtol=1e-6)
    assert np.all(resampled[:6] == 0.0) and np.all(resampled[:, :10] == 0.0)  # not covered: 0 DN/s
    np.testing.assert_array_equal(aia_prep.resample_onto(smap, smap), smap.data)


@pytest.mark.parametrize("wavelength", aia_prep.AIA_CHANNELS)
def test_normalise_and_denormalise_are_inverse(wavelength):
    softening, maximum = aia_prep.CHANNEL_SCALES[wavelength]
    y = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_allclose(aia_prep.normalise(aia_prep.denormalise(y, wavelength), wavelength), y, atol=1e-12)
    y32 = y.astype(np.float32)
    back = aia_prep.normalise(aia_prep.denormalise(y32, wavelength), wavelength)
    assert back.dtype == np.float32 and np.abs(back - y32).max() < 1e-6
    x = np.geomspace(1e-3, maximum, 500)
    np.testing.assert_allclose(aia_prep.denormalise(aia_prep.normalise(x, wavelength), wavelength), x, rtol=1e-6)
    assert aia_prep.normalise(np.array([softening]), wavelength)[0] == pytest.approx(
        math.asinh(1.0) / math.asinh(maximum / softening), rel=1e-12
    )
    np.testing.assert_allclose(
        aia_prep.normalise(np.array([-5.0, 0.0, maximum, 10 * maximum]), wavelength), [0, 0, 1, 1], atol=1e-15
    )


def test_normalisation_errors_and_channel_stacks():
    images = np.random.default_rng(0).uniform(0, 3000, (2, 4, 4, 3)).astype(np.float32)
    normalised = aia_prep.normalise_channels(images, (171, 193, 211))
    np.testing.assert_array_equal(normalised[..., 2], aia_prep.normalise(images[..., 2], 211))
    np.testing.assert_allclose(aia_prep.denormalise_channels(normalised, (171, 193, 211)), images, rtol=2e-5)
    with pytest.raises(ValueError, match="no normalisation constants for 195"):
        aia_prep.normalise(images, 195)
    with pytest.raises(ValueError, match=r"takes values in \[0, 1\]"):
        aia_prep.denormalise(np.array([1.5]), 171)
    with pytest.raises(ValueError, match="3 channels"):
        aia_prep.normalise_channels(images, (171, 193))


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p, d: d.write_bytes(b""), "empty file: 0 bytes"),
        (lambda p, d: d.write_bytes(b"<html>404 Not Found</html>"), "not a FITS file"),
        (
            lambda p, d: d.write_bytes(p.read_bytes()[:100_000]),
            "truncated: 100000 bytes on disk, HDU 0 needs 149760 bytes",
        ),
        (
            lambda p, d: d.write_bytes(p.read_bytes()[: 2880 * 20]),
            "truncated: 57600 bytes on disk, HDU 0 needs 149760 bytes",
        ),
        (lambda p, d: write_variant(p, d, INSTRUME="HMI_FRONT2", TELESCOP="SDO/HMI"), "not an AIA image"),
        (lambda p, d: write_variant(p, d, LVL_NUM=1.5), "not level 1: LVL_NUM=1.5"),
        (lambda p, d: write_variant(p, d, EXPTIME=0.0), "bad exposure time: EXPTIME=0.0"),
        (lambda p, d: write_variant(p, d, WAVELNTH=195), "unknown channel: WAVELNTH=195"),
    ],
    ids=["empty", "html", "partial_block", "whole_blocks", "hmi", "level_1_5", "dark", "channel"],
)
def test_bad_files_are_refused_naming_the_file(tmp_path, make, reason):
    broken = tmp_path / "aia_broken.fits"
    make(FULL_DISK, broken)
    with pytest.raises(aia_prep.AIAReadError) as error:
        aia_prep.read_aia(broken)
    assert error.value.reason.startswith(reason) and str(broken) in str(error.value)
    with pytest.raises(aia_prep.AIAReadError):
        aia_prep.prepare_channel(broken, degradation="skip")


def test_to_zarr_round_trips_the_patches(tmp_path, cutout):
    observation = aia_prep.stack_channels([cutout])
    patches = aia_prep.extract_patches(observation, aia_prep.grid_boxes(observation.images.shape[:2], 128))
    aia_prep.to_zarr(patches, tmp_path / "patches.zarr", chunk_patches=8)
    group = zarr.open_group(tmp_path / "patches.zarr", mode="r")
    assert group["image"].shape == (30, 128, 128, 1) and group["image"].chunks == (8, 128, 128, 1)
    assert group.attrs["wavelengths"] == [171] and group.attrs["channel_scales"] == {"171": [120.0, 8200.0]}
    np.testing.assert_array_equal(group["image"][3], aia_prep.normalise_channels(patches[3].image, [171]))
    np.testing.assert_allclose(
        aia_prep.denormalise_channels(group["image"][3], [171]), patches[3].image, rtol=1e-4, atol=1e-3
    )
    assert list(group["id"][:]) == [aia_prep.patch_id(p) for p in patches]
    assert group["t_obs"][0] == patches[0].t_obs and group["source"][5] == "aia_171_cutout.fits"
    np.testing.assert_array_equal(group["bbox"][:], np.stack([p.bbox for p in patches]))
    np.testing.assert_array_equal(group["mu"][:], np.array([p.mu for p in patches], np.float32))
