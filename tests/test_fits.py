"""Tests of solarjax.data.fits on the real SHARP files of ../shared/data and on broken files."""

import datetime
import math
import pathlib
import re

import h5py
import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyError

from solarjax.data import (
    MM_PER_DEGREE,
    FolderReadResult,
    SharpPatch,
    SharpReadError,
    read_sharp,
    read_sharp_folder,
    read_sharp_hdf5,
)

NAME = re.compile(r"hmi\.sharp_cea_720s\.(\d+)\.(\d{8}_\d{6})_TAI\.(\w+)\.fits")


def _tai_minus_utc_seconds(day: datetime.datetime) -> int:
    """TAI - UTC (IERS Bulletin C) for the years of the test data."""
    if day < datetime.datetime(2012, 7, 1):
        return 34
    if day < datetime.datetime(2015, 7, 1):
        return 35
    if day < datetime.datetime(2017, 1, 1):
        return 36
    return 37


@pytest.fixture(scope="module")
def br_patches(real_br_files) -> dict[str, SharpPatch]:
    return {path.name: read_sharp(path) for path in real_br_files}


def _patch(br_patches, harp_and_time: str) -> SharpPatch:
    return br_patches[f"hmi.sharp_cea_720s.{harp_and_time}_TAI.Br.fits"]


def test_every_real_br_frame_reads(br_patches):
    assert len(br_patches) == 40
    assert len({p.meta["harpnum"] for p in br_patches.values()}) == 16
    for name, patch in br_patches.items():
        height, width = patch.data.shape
        assert patch.data.dtype == np.float32, name
        assert 105 <= height <= 460 and 163 <= width <= 1167, name
        assert patch.segment == "Br" and patch.meta["segment"] == "Br"
        assert patch.meta["bunit"] == "Mx/cm^2"
        finite = patch.data[np.isfinite(patch.data)]
        assert finite.size > 0.5 * patch.data.size, name
        assert -5000.0 < finite.min() < 0.0 < finite.max() < 5000.0, name
    lowest = min(np.nanmin(p.data) for p in br_patches.values())
    highest = max(np.nanmax(p.data) for p in br_patches.values())
    assert lowest < -2800.0 and highest > 2600.0


def test_nan_is_kept_where_the_file_has_no_data(br_patches, shared_data):
    patch = _patch(br_patches, "1422.20120306_142400")
    assert 0.5 < np.isfinite(patch.data).mean() < 0.6
    with fits.open(patch.path) as hdus:
        expected = np.asarray(hdus[1].data, dtype=np.float32)
    np.testing.assert_array_equal(patch.data, expected)
    assert all(np.isfinite(p.data).all() for n, p in br_patches.items() if ".1422." not in n)


def test_harpnum_and_t_rec_match_the_file_name(br_patches):
    for name, patch in br_patches.items():
        harpnum, time_label, segment = NAME.fullmatch(name).groups()
        file_time = datetime.datetime.strptime(time_label, "%Y%m%d_%H%M%S")
        assert patch.meta["harpnum"] == int(harpnum)
        assert patch.meta["t_rec_tai"] == file_time
        assert patch.meta["t_rec_raw"].startswith(file_time.strftime("%Y.%m.%d_%H:%M:%S"))
        leap = datetime.timedelta(seconds=_tai_minus_utc_seconds(file_time))
        assert patch.meta["t_rec"] == (file_time - leap).replace(tzinfo=datetime.UTC)
        assert patch.meta["t_rec"].utcoffset() == datetime.timedelta(0)


def test_known_metadata_of_the_x_flare_region(br_patches):
    meta = _patch(br_patches, "1449.20120306_142400").meta
    assert meta["noaa_ar"] == 11429 and meta["noaa_ars"] == [11429, 11430]
    assert meta["quality"] == 0
    assert meta["USFLUX"] == pytest.approx(5.219715e22)
    assert meta["R_VALUE"] == pytest.approx(5.169)
    assert meta["AREA_ACR"] == pytest.approx(1918.095581)
    assert (meta["ctype1"], meta["ctype2"]) == ("CRLN-CEA", "CRLT-CEA")
    assert meta["carrington_lon_deg"] == pytest.approx(304.611481)
    assert meta["lat_deg"] == pytest.approx(17.5305)
    assert meta["lon_deg"] == pytest.approx(304.611481 - 333.951019)  # CRVAL1 - CRLN_OBS
    assert math.isnan(meta["GWILL"])
    no_noaa = _patch(br_patches, "1441.20120306_142400").meta
    assert no_noaa["noaa_ar"] == 0 and no_noaa["noaa_ars"] == []


def test_pixel_size_follows_from_cdelt(br_patches):
    side_mm = 0.03 * 695.7 * math.pi / 180.0
    assert side_mm == pytest.approx(0.364268, rel=1e-5)
    for patch in br_patches.values():
        row_mm, col_mm = patch.meta["pixel_size_mm"]
        assert row_mm == pytest.approx(side_mm, rel=1e-6) and col_mm == pytest.approx(side_mm, rel=1e-6)
        assert patch.meta["pixel_area_cm2"] == pytest.approx(side_mm**2 * 1e16, rel=1e-6)
    assert MM_PER_DEGREE == pytest.approx(12.1422, rel=1e-4)


def test_pixel_area_reproduces_the_sharp_active_region_area(shared_data):
    """count(strong-field HARP pixels) x pixel area = AREA_ACR (micro-hemispheres), as JSOC computes it."""
    bitmaps = sorted((shared_data / "sharp_cea").glob("*.bitmap.fits"))[::5]
    assert len(bitmaps) >= 10
    for path in bitmaps:
        patch = read_sharp(path)
        assert patch.segment == "bitmap"
        strong_pixels = np.count_nonzero(patch.data == 34)
        hemisphere_cm2 = 2.0 * math.pi * (695.7e8) ** 2
        area_uhem = strong_pixels * patch.meta["pixel_area_cm2"] / hemisphere_cm2 * 1e6
        assert area_uhem == pytest.approx(patch.meta["AREA_ACR"], rel=0.03), path.name


def test_patch_centre_is_the_centre_of_the_patch_box(br_patches):
    """lat/lon of the centre = middle of the patch's Stonyhurst box LATDTMIN..LONDTMAX (JSOC's own)."""
    for name, patch in br_patches.items():
        meta = patch.meta
        height, width = patch.data.shape
        assert (meta["crpix1"], meta["crpix2"]) == ((width + 1) / 2, (height + 1) / 2), name
        assert meta["lat_deg"] == pytest.approx((meta["LATDTMIN"] + meta["LATDTMAX"]) / 2, abs=1e-3), name
        assert meta["lon_deg"] == pytest.approx((meta["LONDTMIN"] + meta["LONDTMAX"]) / 2, abs=1e-3), name
        assert meta["LATDTMAX"] - meta["LATDTMIN"] == pytest.approx(height * meta["cdelt2"], rel=0.01)
        assert meta["LONDTMAX"] - meta["LONDTMIN"] == pytest.approx(width * meta["cdelt1"], rel=0.01)
        assert 0.0 <= meta["carrington_lon_deg"] < 360.0


def test_bare_nan_and_inf_cards_are_repaired_with_warnings(br_patches):
    inf_card = _patch(br_patches, "1441.20120307_022400")
    with fits.open(inf_card.path) as hdus, pytest.raises(VerifyError):
        hdus[1].header["ERRMSHA"]  # astropy refuses the card ...
    assert inf_card.meta["ERRMSHA"] == math.inf  # ... the reader repairs it
    assert any("ERRMSHA" in w and "'inf'" in w for w in inf_card.meta["header_warnings"])
    nan_summary = _patch(br_patches, "377.20110215_020000").meta
    assert math.isnan(nan_summary["R_VALUE"])
    assert any("R_VALUE" in w for w in nan_summary["header_warnings"])
    assert nan_summary["USFLUX"] == pytest.approx(2.71476e22)
    standard = _patch(br_patches, "2007.20120907_000000").meta  # blank values, standard FITS
    assert standard["header_warnings"] == []
    assert math.isnan(standard["GWILL"]) and standard["R_VALUE"] == pytest.approx(3.47902107)


def test_real_corrupt_downloads_raise_distinct_reasons(corrupt_files):
    reasons = {}
    for path in corrupt_files:
        with pytest.raises(SharpReadError) as caught:
            read_sharp(path)
        assert caught.value.path == path
        assert path.name in str(caught.value)
        reasons[path.name] = caught.value.reason
    assert reasons["hmi.sharp_cea_720s.1446.20120306_142400_TAI.Br.fits"] == "empty file: 0 bytes"
    assert reasons["hmi.sharp_cea_720s.1447.20120307_022400_TAI.Br.fits"] == (
        "truncated: 182881 bytes on disk, HDU 1 needs 365760 bytes"
    )
    assert reasons["hmi.sharp_cea_720s.1455.20120306_202400_TAI.magnetogram.fits"] == (
        "truncated: 73441 bytes on disk, HDU 1 needs 146880 bytes"
    )


@pytest.fixture()
def good_file(real_br_files) -> pathlib.Path:
    return next(p for p in real_br_files if ".1441.20120307_022400_" in p.name)


def _expect_failure(path: pathlib.Path, reason_start: str) -> str:
    with pytest.raises(SharpReadError) as caught:
        read_sharp(path)
    assert path.name in str(caught.value)
    assert caught.value.reason.startswith(reason_start), caught.value.reason
    return caught.value.reason


def test_synthetic_bad_files(tmp_path, good_file):
    text = tmp_path / "hmi.sharp_cea_720s.1.20120101_000000_TAI.Br.fits"
    text.write_text("<html>JSOC export failed</html>\n")
    _expect_failure(text, "not a FITS file")

    header_only = tmp_path / "hmi.sharp_cea_720s.2.20120101_000000_TAI.Br.fits"
    fits.PrimaryHDU().writeto(header_only)
    assert "PrimaryHDU NAXIS=0" in _expect_failure(header_only, "no image HDU")

    table_only = tmp_path / "hmi.sharp_cea_720s.3.20120101_000000_TAI.Br.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])])]).writeto(
        table_only
    )
    _expect_failure(table_only, "no image HDU")

    _expect_failure(tmp_path / "hmi.sharp_cea_720s.4.20120101_000000_TAI.Br.fits", "no such file")

    contents = good_file.read_bytes()
    for cut in (100, 3380, 25160, len(contents) - 100):
        truncated = tmp_path / f"cut{cut}" / good_file.name
        truncated.parent.mkdir()
        truncated.write_bytes(contents[:cut])
        _expect_failure(truncated, "truncated")


def test_garbled_compressed_data(tmp_path, good_file):
    contents = bytearray(good_file.read_bytes())
    contents[30000:32000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    garbled = tmp_path / good_file.name
    garbled.write_bytes(bytes(contents))
    assert "decompression" in _expect_failure(garbled, "corrupt image data")


def test_segment_from_name_header_or_argument(tmp_path, good_file):
    unsupported = tmp_path / good_file.name.replace(".Br.", ".conf_disambig.")
    unsupported.symlink_to(good_file)
    _expect_failure(unsupported, "unsupported segment 'conf_disambig'")

    renamed = tmp_path / "my_patch.fits"  # a real Br file under a name that says nothing
    renamed.symlink_to(good_file)
    patch = read_sharp(renamed)
    assert patch.segment == "Br" and patch.meta["harpnum"] == 1441
    assert any("read as Br" in w for w in patch.meta["header_warnings"])
    patch = read_sharp(renamed, segment="Br")
    assert patch.segment == "Br" and patch.meta["harpnum"] == 1441
    assert patch.meta["t_rec_tai"] == datetime.datetime(2012, 3, 7, 2, 24)


@pytest.mark.parametrize("segment, described", [("bitmap", "a bitmap"), ("magnetogram", "line-of-sight")])
def test_a_non_br_file_named_br_is_judged_by_its_header(tmp_path, good_file, segment, described):
    real = good_file.parent / good_file.name.replace(".Br.", f".{segment}.")
    disguised = tmp_path / good_file.name  # the real bitmap / LOS magnetogram, named *.Br.fits
    disguised.symlink_to(real)
    assert described in _expect_failure(disguised, "segment mismatch: named 'Br'")
    anonymous = tmp_path / "region.fits"
    anonymous.symlink_to(real)
    assert read_sharp(anonymous).segment == segment


def test_a_compressed_image_bomb_is_refused_from_its_header_in_bounded_memory(tmp_path, good_file):
    import subprocess
    import sys

    bomb = tmp_path / "hmi.sharp_cea_720s.1441.20120307_022400_TAI.Br.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(np.zeros((6000, 6000), np.int16), compression_type="RICE_1")]
    ).writeto(bomb)
    assert bomb.stat().st_size < 2_000_000
    script = (
        "import sys\n"
        "from solarjax.data import SharpReadError, read_sharp\n"
        "try:\n    read_sharp(sys.argv[1])\nexcept SharpReadError as err:\n    print(err.reason)\n"
        "print(next(int(line.split()[1]) for line in open('/proc/self/status') if line.startswith('VmHWM')) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, check=True)
    reason, peak_mb = out.stdout.strip().splitlines()
    assert reason.startswith("image too large: 6000 x 6000 pixels")
    assert int(peak_mb) < 300, f"peak RSS {peak_mb} MB"


def _replace_card(contents: bytes, keyword: str, new_card: str) -> bytes:
    start = contents.index(keyword.ljust(8).encode() + b"=")
    assert start % 80 == 0
    return contents[:start] + new_card.ljust(80).encode() + contents[start + 80 :]


def test_unparsable_metadata_card_is_left_out_with_a_warning(tmp_path, good_file):
    broken = tmp_path / good_file.name
    broken.write_bytes(_replace_card(good_file.read_bytes(), "R_VALUE", "R_VALUE = 'unterminated string"))
    meta = read_sharp(broken).meta
    assert "R_VALUE" not in meta
    assert any(w.startswith("R_VALUE: unparsable card left out") for w in meta["header_warnings"])
    assert meta["USFLUX"] == pytest.approx(8.166106e20)

    no_harpnum = tmp_path / "renamed.Br.fits"
    no_harpnum.write_bytes(_replace_card(good_file.read_bytes(), "HARPNUM", "COMMENT HARPNUM removed"))
    _expect_failure(no_harpnum, "missing metadata: no harpnum")


def test_folder_keeps_good_files_and_reports_bad_ones(tmp_path, real_br_files, corrupt_files):
    good = real_br_files[:3]
    for path in good + corrupt_files:
        (tmp_path / path.name).symlink_to(path)
    (tmp_path / "hmi.sharp_cea_720s.9.20120101_000000_TAI.Br.fits").write_text("not fits")
    result = read_sharp_folder(tmp_path, pattern="*.fits")
    assert isinstance(result, FolderReadResult)
    assert [p.path.name for p in result.patches] == sorted(p.name for p in good)
    assert [path.name for path, _ in result.failures] == sorted(
        [p.name for p in corrupt_files] + ["hmi.sharp_cea_720s.9.20120101_000000_TAI.Br.fits"]
    )
    assert len({reason for _, reason in result.failures}) == 4
    again = read_sharp_folder(tmp_path, pattern="*.fits")
    assert [p.path for p in again.patches] == [p.path for p in result.patches]
    assert again.failures == result.failures

    from_list = read_sharp_folder(list(reversed(real_br_files)) + corrupt_files)
    assert [p.path for p in from_list.patches] == real_br_files
    assert [path for path, _ in from_list.failures] == corrupt_files

    with pytest.raises(NotADirectoryError, match="not a folder"):
        read_sharp_folder(real_br_files[0])


@pytest.fixture(scope="module")
def four_segments(shared_data) -> list[SharpPatch]:
    """Br, Bp, Bt and the magnetogram of HARP 1425 at 2012-03-06 20:24 TAI."""
    stem = shared_data / "sharp_cea" / "hmi.sharp_cea_720s.1425.20120306_202400_TAI"
    return [read_sharp(f"{stem}.{segment}.fits") for segment in ("Br", "Bp", "Bt", "magnetogram")]


@pytest.mark.parametrize("layout", ["CHW", "HWC"])
def test_hdf5_stack_round_trip(tmp_path, four_segments, layout):
    stack = np.stack([p.data for p in four_segments], axis=0 if layout == "CHW" else -1)
    path = tmp_path / "frame.h5"
    with h5py.File(path, "w") as file:
        file.attrs["HARPNUM"] = 1425
        dataset = file.create_dataset("sharp", data=stack)
        dataset.attrs["T_REC"] = "2012.03.06_20:24:00_TAI"
        dataset.attrs["CDELT1"] = 0.03
        dataset.attrs["CDELT2"] = 0.03
    patches = read_sharp_hdf5(path)
    assert [p.segment for p in patches] == ["Br", "Bp", "Bt", "magnetogram"]
    for patch, original in zip(patches, four_segments):
        assert patch.data.dtype == np.float32 and patch.data.shape == original.data.shape
        np.testing.assert_array_equal(patch.data, original.data)
        assert patch.meta["harpnum"] == 1425 and patch.meta["hdf5_layout"] == layout
        assert patch.meta["t_rec"] == original.meta["t_rec"]
        assert patch.meta["pixel_size_mm"] == pytest.approx(original.meta["pixel_size_mm"])


def test_hdf5_layout_errors(tmp_path, four_segments):
    br = four_segments[0].data
    several = tmp_path / "hmi.sharp_cea_720s.1425.20120306_202400_TAI.h5"
    with h5py.File(several, "w") as file:
        file["a/stack"] = np.stack([br] * 4)
        file["b"] = br
    with pytest.raises(SharpReadError, match="expected one dataset, found 2"):
        read_sharp_hdf5(several)
    patches = read_sharp_hdf5(several, dataset="a/stack")
    assert patches[0].meta["harpnum"] == 1425  # from the file name
    assert patches[0].meta["t_rec_tai"] == datetime.datetime(2012, 3, 6, 20, 24)
    with pytest.raises(SharpReadError, match="expected a 3-D stack, found shape"):
        read_sharp_hdf5(several, dataset="b")

    ambiguous = tmp_path / "ambiguous.h5"
    with h5py.File(ambiguous, "w") as file:
        file["x"] = np.zeros((4, 10, 4), np.float32)
    with pytest.raises(SharpReadError, match="ambiguous"):
        read_sharp_hdf5(ambiguous)

    wrong_channels = tmp_path / "three.h5"
    with h5py.File(wrong_channels, "w") as file:
        file["x"] = np.zeros((3, 10, 12), np.float32)
    with pytest.raises(SharpReadError, match="no end axis of 4 channels"):
        read_sharp_hdf5(wrong_channels)
    assert [p.segment for p in read_sharp_hdf5(wrong_channels, channels=("Br", "Bp", "Bt"))] == ["Br", "Bp", "Bt"]

    cut = tmp_path / "cut.h5"
    cut.write_bytes(wrong_channels.read_bytes()[:1000])
    with pytest.raises(SharpReadError, match="corrupt HDF5 file"):
        read_sharp_hdf5(cut)

    not_hdf5 = tmp_path / "fits_in_disguise.h5"
    not_hdf5.write_bytes(four_segments[0].path.read_bytes()[:2880])
    with pytest.raises(SharpReadError, match="not an HDF5 file"):
        read_sharp_hdf5(not_hdf5)
