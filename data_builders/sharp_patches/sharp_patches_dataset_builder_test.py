"""Tests of the sharp_patches builder: pytest into tmp_path, no TensorFlow (DatasetBuilderTestCase needs it)."""

import json
import logging
import os
import pathlib
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

import data_builders  # noqa: F401  (registers sharp_patches)
from data_builders.common import OldBuildError
from data_builders.sharp_patches import BUILD_LOG_NAME, build, harp_split
from data_builders.sharp_patches.sharp_patches_dataset_builder import (
    FRAMES_PER_REGION,
    Builder,
    physics_feature_names,
    resize_nearest,
)
from solarjax import physics
from solarjax.data import synthetic
from solarjax.data.fits import read_sharp
from solarjax.data.preprocess import preprocess_patch

PHYSICS = physics_feature_names()


def write_dummy_export(folder: pathlib.Path) -> pathlib.Path:
    """A tiny fake JSOC export in SHARP's format (no real data), written with astropy.

    Each field is two Gaussian spots (+1800 G, -1300 G) plus 10 G white noise, RICE-compressed in HDU 1;
    the bitmap is an uncompressed primary image. HARP -> split: 1 -> train (two times, one with a
    bitmap of codes 1/33/34), 2 -> validation (30x30, first 4 columns NaN), 19 -> test (20x60) with a
    magnetogram cut 1000 bytes short (an interrupted download), and a README.md that is not a SHARP file.
    """
    from astropy.io import fits

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def header(harp, t_rec, noaa, crval1, crval2):
        return {
            "HARPNUM": harp,
            "T_REC": t_rec,
            "NOAA_AR": noaa,
            "QUALITY": 0,
            "BUNIT": "Mx/cm^2",
            "CTYPE1": "CRLN-CEA",
            "CTYPE2": "CRLT-CEA",
            "CDELT1": 0.03,
            "CDELT2": 0.03,
            "CRVAL1": crval1,
            "CRVAL2": crval2,
            "CRLN_OBS": 100.0,
        }

    def field(shape):
        rows, cols = np.indices(shape)
        spot = lambda r, c, peak: peak * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * (shape[0] / 8) ** 2))
        b = spot(shape[0] / 2, shape[1] / 3, 1800.0) + spot(shape[0] / 2, 2 * shape[1] / 3, -1300.0)
        return (b + rng.normal(0.0, 10.0, shape)).astype(np.float32)

    def write_field(name, data, cards):
        hdu = fits.CompImageHDU(data, compression_type="RICE_1", quantize_level=-0.01)
        hdu.header.update(cards)
        path = folder / f"hmi.sharp_cea_720s.{name}.fits"
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
        return path

    one = header(1, "2012.03.06_14:24:00_TAI", 11429, 70.0, 17.5)
    write_field("1.20120306_142400_TAI.Br", field((24, 40)), one)
    bitmap = np.ones((24, 40), np.uint8)
    bitmap[6:18, 8:32] = 33
    bitmap[9:15, 12:28] = 34
    primary = fits.PrimaryHDU(bitmap)
    primary.header.update(one)
    primary.writeto(folder / "hmi.sharp_cea_720s.1.20120306_142400_TAI.bitmap.fits", overwrite=True)
    write_field("1.20120306_202400_TAI.Br", field((24, 40)), header(1, "2012.03.06_20:24:00_TAI", 11429, 73.0, 17.5))
    two = field((30, 30))
    two[:, :4] = np.nan
    write_field("2.20120306_142400_TAI.Br", two, header(2, "2012.03.06_14:24:00_TAI", 0, 130.0, -12.0))
    nineteen = header(19, "2012.03.06_14:24:00_TAI", 11430, 95.0, 22.0)
    write_field("19.20120306_142400_TAI.Br", field((20, 60)), nineteen)
    magnetogram = write_field("19.20120306_142400_TAI.magnetogram", field((20, 60)), nineteen)
    magnetogram.write_bytes(magnetogram.read_bytes()[:-1000])
    (folder / "README.md").write_text("a fake JSOC export for the builder test\n")
    return folder


@pytest.fixture(scope="module")
def fits_data_dir(shared_data, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    build("fits", data_dir, manual_dir=shared_data / "sharp_cea")
    return data_dir


def _all_examples(source):
    return [source[i] for i in range(len(source))]


def _link_into(folder, files):
    folder.mkdir(exist_ok=True)
    for path in files:
        os.symlink(path, folder / path.name)
    return folder


def test_fits_build_of_the_dummy_export(tmp_path):
    """4 fake Br frames of HARPs 1 (train), 2 (validation), 19 (test), one bitmap, one truncated
    magnetogram (see `write_dummy_export`)."""
    dummy = write_dummy_export(tmp_path / "dummy_export")
    truncated_size = (dummy / "hmi.sharp_cea_720s.19.20120306_142400_TAI.magnetogram.fits").stat().st_size
    info = build("fits", tmp_path / "tfds", manual_dir=dummy)
    assert {name: s.num_examples for name, s in info.splits.items()} == {"train": 2, "validation": 1, "test": 1}
    [failure] = info.metadata["failures"]
    assert os.path.basename(failure["path"]) == "hmi.sharp_cea_720s.19.20120306_142400_TAI.magnetogram.fits"
    assert failure["reason"] == f"truncated: {truncated_size} bytes is not a whole number of 2880-byte FITS blocks"
    [ignored] = info.metadata["ignored"]
    assert os.path.basename(ignored["path"]) == "README.md"
    assert ignored["reason"].startswith("not a SHARP CEA file name")
    assert info.metadata["unused_segments"] == {}

    sources = tfds.data_source("sharp_patches/fits", data_dir=tmp_path / "tfds")
    [validation] = _all_examples(sources["validation"])
    assert validation["record"] == b"hmi.sharp_cea_720s[2][2012.03.06_14:24:00_TAI]"
    assert validation["original_shape"].tolist() == [30, 30] and validation["noaa_ar"] == 0
    np.testing.assert_allclose(validation["pixel_size_mm"], 0.03 * np.pi / 180 * 695.7 * 30 / 128, rtol=1e-6)
    assert validation["lat_deg"] == -12.0 and validation["lon_deg"] == 30.0  # CRVAL1 130 - CRLN_OBS 100
    assert np.all(validation["image"][:, :3] == 0.0)  # NaN columns (0..3 of 30) -> 0 under columns 0..12 of 128
    train = {e["record"].decode(): e for e in _all_examples(sources["train"])}
    with_bitmap = train["hmi.sharp_cea_720s[1][2012.03.06_14:24:00_TAI]"]
    assert with_bitmap["has_bitmap"] and set(np.unique(with_bitmap["bitmap"])) == {1, 33, 34}
    assert not train["hmi.sharp_cea_720s[1][2012.03.06_20:24:00_TAI]"]["has_bitmap"]


def test_fits_build_holds_every_real_frame_with_each_harp_in_one_split(fits_data_dir):
    sources = tfds.data_source("sharp_patches/fits", data_dir=fits_data_dir)
    harps_by_split = {split: {int(e["harpnum"]) for e in _all_examples(s)} for split, s in sources.items()}
    assert sum(len(s) for s in sources.values()) == 40
    assert {split: len(s) for split, s in sources.items()} == {"train": 18, "validation": 11, "test": 11}
    assert set().union(*harps_by_split.values()) == {
        377,
        1422,
        1425,
        1441,
        1445,
        1446,
        1447,
        1449,
        1455,
        1456,
        1457,
        1460,
        2007,
        2875,
        3700,
        7115,
    }
    for split, harps in harps_by_split.items():
        assert all(harp_split(h) == split for h in harps)
        for other, other_harps in harps_by_split.items():
            assert other == split or not harps & other_harps

    log = json.loads((fits_data_dir / "sharp_patches/fits" / str(Builder.VERSION) / BUILD_LOG_NAME).read_text())
    assert log["failures"] == []
    assert len(log["ignored"]) == 24  # bitmaps of HARPs 5011, 5107, 6223 and of a 1446 frame without Br
    assert all(entry["reason"] == "bitmap without a Br file of the same record" for entry in log["ignored"])
    assert log["unused_segments"] == {"Bp": 43, "Bt": 42, "magnetogram": 33}


def test_fits_examples_equal_the_preprocessed_files(fits_data_dir, real_br_files):
    patches = {}
    for path in real_br_files:
        patch = read_sharp(path)
        record = f"hmi.sharp_cea_720s[{patch.meta['harpnum']}][{patch.meta['t_rec_raw']}]"
        patches[record] = patch
    examples = [
        e for s in tfds.data_source("sharp_patches/fits", data_dir=fits_data_dir).values() for e in _all_examples(s)
    ]
    assert sorted(e["record"].decode() for e in examples) == sorted(patches)

    images = []
    for example in examples:
        patch = patches[example["record"].decode()]
        prepared = preprocess_patch(patch)
        images.append(prepared.image)
        np.testing.assert_array_equal(example["image"][..., 0], prepared.image)
        np.testing.assert_array_equal(example["original_shape"], patch.data.shape)
        np.testing.assert_allclose(example["pixel_size_mm"], prepared.pixel_size_mm, rtol=1e-6)
        assert example["harpnum"] == patch.meta["harpnum"]
        assert example["noaa_ar"] == patch.meta["noaa_ar"]
        assert example["t_rec"].decode() == patch.meta["t_rec"].isoformat()
        assert example["lat_deg"] == np.float32(patch.meta["lat_deg"])
        assert example["lon_deg"] == np.float32(patch.meta["lon_deg"])
        assert example["source"] == b"fits"
        assert example["truth_n_bipoles"] == 0 and example["truth_cycle_parity"] == -1
        assert np.isnan(example["truth_latitude_deg"]) and np.all(np.isnan(example["truth_bipole_flux_mx"]))
        bitmap_path = patch.path.with_name(patch.path.name.replace(".Br.", ".bitmap."))
        if bitmap_path.exists():
            assert example["has_bitmap"]
            np.testing.assert_array_equal(example["bitmap"][..., 0], resize_nearest(read_sharp(bitmap_path).data))
        else:
            assert not example["has_bitmap"] and not example["bitmap"].any()
    assert sum(bool(e["has_bitmap"]) for e in examples) == 26

    images = np.stack(images)
    pixel_size_mm = np.stack([e["pixel_size_mm"] for e in examples])
    expected = {**physics.quantities(images), **physics.physical_quantities(images, pixel_size_mm)}
    for name in PHYSICS:
        stored = np.array([e[name] for e in examples])
        np.testing.assert_allclose(stored, np.asarray(expected[name], np.float32), rtol=1e-5, equal_nan=True)
    both_polarities = (images > 0.15).any(axis=(1, 2)) & (images < -0.15).any(axis=(1, 2))
    np.testing.assert_array_equal(np.isfinite([e["tuf"] for e in examples]), both_polarities)
    assert both_polarities.sum() >= 30


def test_corrupt_files_are_logged_and_the_build_goes_on(shared_data, corrupt_files, tmp_path, caplog):
    good = sorted(
        p for p in (shared_data / "sharp_cea").iterdir() if re.match(r"hmi\.sharp_cea_720s\.(1446|1447|1455)\.", p.name)
    )
    manual_dir = _link_into(tmp_path / "manual", good + corrupt_files)
    good_br = [p for p in good if p.name.endswith(".Br.fits")]

    with caplog.at_level(logging.WARNING):
        info = build("fits", tmp_path / "tfds", manual_dir=manual_dir)

    assert sum(s.num_examples for s in info.splits.values()) == len(good_br) == 13
    failures = {os.path.basename(entry["path"]): entry["reason"] for entry in info.metadata["failures"]}
    assert failures == {
        "hmi.sharp_cea_720s.1446.20120306_142400_TAI.Br.fits": "empty file: 0 bytes",
        "hmi.sharp_cea_720s.1447.20120307_022400_TAI.Br.fits": "truncated: 182881 bytes is not a whole number of 2880-byte FITS blocks",
        "hmi.sharp_cea_720s.1455.20120306_202400_TAI.magnetogram.fits": "truncated: 73441 bytes is not a whole number of 2880-byte FITS blocks",
    }
    on_disk = json.loads((tmp_path / "tfds/sharp_patches/fits" / str(Builder.VERSION) / BUILD_LOG_NAME).read_text())
    assert on_disk["failures"] == info.metadata["failures"]
    for name in failures:
        assert name in caplog.text


def test_renamed_and_duplicate_files_are_refused(shared_data, tmp_path):
    """Splits go by the HARP of the file name; a renamed file must not smuggle a region across."""
    real = shared_data / "sharp_cea"
    manual_dir = tmp_path / "manual"
    _link_into(manual_dir, [real / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"])
    renamed = manual_dir / "hmi.sharp_cea_720s.9999.20120306_142400_TAI.Br.fits"
    os.symlink(real / "hmi.sharp_cea_720s.1449.20120306_142400_TAI.Br.fits", renamed)
    _link_into(manual_dir / "again", [real / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"])

    info = build("fits", tmp_path / "tfds", manual_dir=manual_dir)

    assert sum(s.num_examples for s in info.splits.values()) == 1
    [failure] = info.metadata["failures"]
    assert failure["path"] == str(renamed)
    assert "HARP 1449" in failure["reason"] and "HARP 9999" in failure["reason"]
    [duplicate] = info.metadata["ignored"]
    name = "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"  # the first in path order is kept
    assert duplicate == {"path": str(manual_dir / name), "reason": f"duplicate of {manual_dir / 'again' / name}"}


def test_synthetic_build_splits_by_region_and_round_trips(tmp_path):
    frames = FRAMES_PER_REGION
    n = 20 * frames  # 20 regions: 16 train, 2 validation, 2 test
    info = build("synthetic", tmp_path, num_examples=n)
    assert {name: s.num_examples for name, s in info.splits.items()} == {
        "train": 16 * frames,
        "validation": 2 * frames,
        "test": 2 * frames,
    }

    generated = synthetic.generate(n, 23)
    expected = {
        **physics.quantities(generated.images),
        **physics.physical_quantities(generated.images, generated.pixel_size_mm),
    }
    sources = tfds.data_source("sharp_patches/synthetic", data_dir=tmp_path)
    harps = {}
    for split, indices in {
        "train": range(0, 16 * frames),
        "validation": range(16 * frames, 18 * frames),
        "test": range(18 * frames, n),
    }.items():
        examples = _all_examples(sources[split])
        records = {e["record"].decode(): e for e in examples}
        assert sorted(records) == sorted(f"synthetic[23][{i}]" for i in indices)
        harps[split] = {int(e["harpnum"]) for e in examples}
        for i in indices:
            example = records[f"synthetic[23][{i}]"]
            np.testing.assert_array_equal(example["image"][..., 0], generated.images[i])
            np.testing.assert_array_equal(example["pixel_size_mm"], generated.pixel_size_mm[i])
            assert example["harpnum"] == i // frames + 1 == generated.truth["region_id"][i] + 1
            assert example["t_rec"].decode() == f"{generated.truth['obs_time'][i]}+00:00"
            assert example["truth_frame_index"] == i % frames
            assert example["truth_n_bipoles"] == generated.truth["n_bipoles"][i]
            assert example["truth_delta"] == generated.truth["delta"][i]
            assert example["truth_hemisphere"] == generated.truth["hemisphere"][i]
            assert example["truth_cycle"] == generated.truth["cycle"][i]
            np.testing.assert_allclose(example["truth_total_flux_mx"], generated.truth["total_flux_mx"][i], rtol=1e-6)
            np.testing.assert_array_equal(example["truth_bipole_tilt_deg"], generated.truth["bipole_tilt_deg"][i])
            assert example["lat_deg"] == generated.truth["latitude_deg"][i]
            assert example["lon_deg"] == generated.truth["longitude_deg"][i]
            assert example["source"] == b"synthetic" and not example["has_bitmap"]
            for name in PHYSICS:
                np.testing.assert_allclose(example[name], np.float32(expected[name][i]), rtol=1e-5, equal_nan=True)
    assert not harps["train"] & harps["validation"] and not harps["train"] & harps["test"]
    assert not harps["validation"] & harps["test"]
    assert len(harps["train"]) == 16 and len(harps["test"]) == 2


def test_an_older_build_is_refused_with_the_rebuild_command(tmp_path, monkeypatch):
    old_version = tfds.core.Version("1.0.0")
    with monkeypatch.context() as patch:
        patch.setattr(Builder, "VERSION", old_version)
        patch.setattr(Builder, "SUPPORTED_VERSIONS", [])
        build("synthetic", tmp_path, num_examples=16)
    assert (tmp_path / "sharp_patches/synthetic/1.0.0/dataset_info.json").exists()
    with pytest.raises(
        OldBuildError,
        match=r"built by version 1\.0\.0; this code reads version " + re.escape(str(Builder.VERSION)) + ".*"
        r"solarjax data build --config synthetic",
    ):
        tfds.data_source("sharp_patches/synthetic", data_dir=tmp_path)
    rebuilt = build("synthetic", tmp_path, num_examples=16)  # building over it is allowed
    assert sum(s.num_examples for s in rebuilt.splits.values()) == 16
    assert len(tfds.data_source("sharp_patches/synthetic", data_dir=tmp_path, split="train")) == 16


def test_harp_split_is_a_fixed_hash_with_the_documented_fractions():
    splits = np.array([harp_split(h) for h in range(1, 20_001)])
    assert [harp_split(h) for h in (1449, 1441, 377)] == ["train", "train", "train"]
    assert harp_split(1446) == "test" and harp_split(1455) == "validation"
    for split, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        assert abs(np.mean(splits == split) - share) < 0.01


def test_resize_nearest_takes_the_pixel_under_each_centre():
    mask = np.arange(256)[:, None] * 1000 + np.arange(384)[None, :]
    expected = (2 * np.arange(128) + 1)[:, None] * 1000 + (3 * np.arange(128) + 1)  # rows 1, 3, ..; cols 1, 4, ..
    np.testing.assert_array_equal(resize_nearest(mask), expected)
    small = np.arange(64 * 32).reshape(64, 32)
    np.testing.assert_array_equal(resize_nearest(small), small[np.arange(128) // 2][:, np.arange(128) // 4])
    square = np.arange(128 * 128).reshape(128, 128)
    np.testing.assert_array_equal(resize_nearest(square), square)


def test_bad_build_requests_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config 'fit'"):
        build("fit", tmp_path)
    with pytest.raises(ValueError, match="fits config needs manual_dir"):
        build("fits", tmp_path)
    with pytest.raises(ValueError, match="num_examples must be positive"):
        build("synthetic", tmp_path, num_examples=0)
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    (manual_dir / "notes.txt").write_text("not a SHARP file")
    with pytest.raises(FileNotFoundError, match=f"{manual_dir}: no usable hmi.sharp_cea_720s"):
        build("fits", tmp_path / "tfds", manual_dir=manual_dir)
