"""Tests of the aia_patches builder: pytest into tmp_path, no TensorFlow (DatasetBuilderTestCase needs it).

Real data: the 128x128 full-disk 171 A level-1 image shipped with sunpy (2011-02-15) and the
705x769 171 A cutout shipped with sunkit-image (2013-03-10). Multi-channel observations are made of
copies of the full-disk file relabelled as other channels (header cards changed, data kept or scaled).
"""

import datetime
import importlib.resources
import logging
import os
import pathlib

import astropy.units as u
import numpy as np
import pytest
import tensorflow_datasets as tfds
from astropy.io import fits
from astropy.time import Time

from data_builders.aia_patches import AIAPatchesConfig, build, day_split, group_by_time
from solarjax.data import aia_prep, aia_synthetic

FULL_DISK = pathlib.Path(str(importlib.resources.files("sunpy") / "data/test/aia_171_level1.fits"))
CUTOUT = pathlib.Path(str(importlib.resources.files("sunkit_image") / "data/test/aia_171_cutout.fits"))
RESPONSE_TABLE = pathlib.Path(
    str(importlib.resources.files("aiapy") / "tests/data/aia_V8_20171210_050627_response_table.txt")
)
FITS_171 = AIAPatchesConfig(name="fits_171", source="fits", wavelengths=(171,))

pytestmark = pytest.mark.filterwarnings("ignore:Invalid 'BLANK' keyword:astropy.io.fits.verify.VerifyWarning")


def write_variant(destination, data_scale=1.0, **cards):
    """A copy of the real full-disk file with header cards changed and the data scaled."""
    with fits.open(FULL_DISK) as hdus:
        header = hdus[0].header.copy()
        data = hdus[0].data * data_scale
    header.update(cards)
    fits.PrimaryHDU(data, header).writeto(destination)
    return destination


def _image_header(path):
    """The header of the file's image HDU (the primary HDU, or HDU 1 of a compressed file)."""
    with fits.open(path) as hdus:
        return next(hdu.header for hdu in hdus if hdu.header.get("NAXIS") == 2).copy()


def _link_into(folder, files):
    folder.mkdir(exist_ok=True)
    for path in files:
        os.symlink(path, folder / path.name)
    return folder


def _examples(data_dir, name):
    sources = tfds.data_source(f"aia_patches/{name}", data_dir=data_dir)
    return {split: [source[i] for i in range(len(source))] for split, source in sources.items()}


def test_fits_build_of_the_real_files_matches_their_headers(tmp_path):
    manual_dir = _link_into(tmp_path / "manual", [FULL_DISK, CUTOUT])
    (manual_dir / "README.txt").write_text("not an AIA file")
    write_variant(manual_dir / "five_days_later.fits", T_OBS="2011-02-20T00:00:01.34Z")
    info = build(FITS_171, tmp_path / "tfds", manual_dir=manual_dir, correction_table=RESPONSE_TABLE)

    assert info.metadata["failures"] == []
    assert info.metadata["ignored"] == [
        {"path": str(manual_dir / "README.txt"), "reason": "not a FITS file name (*.fits/*.fts/*.fit)"}
    ]
    assert info.metadata["degradation"] == {"applied": True, "table": str(RESPONSE_TABLE)}
    examples = _examples(tmp_path / "tfds", "fits_171")
    for split, split_examples in examples.items():
        assert all(day_split(e["t_obs"].decode()[:10]) == split for e in split_examples)
    # The 128x128 disk is one patch, the cutout a 5 x 6 grid (both days in train); 2011-02-20 is a validation day.
    assert {split: len(e) for split, e in examples.items()} == {"train": 1 + 30, "validation": 1}
    assert examples["validation"][0]["source"] == b"five_days_later.fits"
    everything = examples["train"]

    table = aia_prep.load_correction_table(RESPONSE_TABLE)
    for path, count in ((FULL_DISK, 1), (CUTOUT, 30)):
        header = _image_header(path)
        mine = [e for e in everything if e["source"].decode() == path.name]
        assert len(mine) == count
        t_obs = datetime.datetime.fromisoformat(header["T_OBS"].rstrip("Z")).replace(tzinfo=datetime.UTC)
        prepared = aia_prep.prepare_channel(path, correction_table=table)
        for example in mine:
            assert datetime.datetime.fromisoformat(example["t_obs"].decode()) == t_obs
            assert example["wavelengths"].tolist() == [header["WAVELNTH"]]
            r0, r1, c0, c1 = example["bbox"]
            expected = aia_prep.normalise(prepared.map.data[r0:r1, c0:c1].astype(np.float32), 171)
            np.testing.assert_array_equal(example["image"][..., 0], expected)
            hpc_x, hpc_y, mu = aia_prep.box_centres(prepared.map, example["bbox"][None])
            assert example["hpc_x"] == np.float32(hpc_x[0]) and example["hpc_y"] == np.float32(hpc_y[0])
            assert example["mu"] == np.float32(mu[0])
            assert example["id"].decode() == f"aia[{example['t_obs'].decode()}][171][r{r0}c{c0}]"
    [disk] = [e for e in everything if e["source"] == b"aia_171_level1.fits"]
    assert disk["bbox"].tolist() == [0, 128, 0, 128] and disk["mu"] > 0.9999
    image = disk["image"][..., 0]
    assert 0.0 <= image.min() and image.max() < 1.0
    assert image[48:80, 48:80].mean() > 2 * image[:10, :10].mean()  # the disk is brighter than the corner sky


def test_corrupt_and_flagged_files_are_reported_and_skipped(tmp_path, caplog):
    manual_dir = _link_into(tmp_path / "manual", [FULL_DISK])
    partial = manual_dir / "aia_partial_block.fits"
    partial.write_bytes(FULL_DISK.read_bytes()[:100_000])
    cut = manual_dir / "aia_whole_blocks.fits"
    cut.write_bytes(FULL_DISK.read_bytes()[: 2880 * 20])  # header intact: passes planning, fails on reading
    write_variant(manual_dir / "aia_flagged.fits", QUALITY=1024)

    with caplog.at_level(logging.WARNING):
        info = build(FITS_171, tmp_path / "tfds", manual_dir=manual_dir, degradation="skip")

    assert sum(s.num_examples for s in info.splits.values()) == 1
    failures = {pathlib.Path(f["path"]).name: f["reason"] for f in info.metadata["failures"]}
    assert failures == {
        "aia_partial_block.fits": "truncated: 100000 bytes is not a whole number of 2880-byte FITS blocks",
        "aia_whole_blocks.fits": "truncated: 57600 bytes on disk, HDU 0 needs 149760 bytes",
        "aia_flagged.fits": "QUALITY=0x00000400: flagged by the AIA pipeline",
    }
    assert info.metadata["degradation"] == {"applied": False, "table": None}
    for name in failures:
        assert name in caplog.text


def test_channels_are_grouped_by_time_into_observations(tmp_path):
    manual_dir = _link_into(tmp_path / "manual", [FULL_DISK])
    write_variant(manual_dir / "as_193.fits", 1.5, WAVELNTH=193, T_OBS="2011-02-15T00:00:05.84Z")
    write_variant(manual_dir / "as_211.fits", 0.5, WAVELNTH=211, T_OBS="2011-02-15T00:00:10.34Z")
    write_variant(manual_dir / "as_304.fits", WAVELNTH=304, T_OBS="2011-02-15T00:00:03.34Z")
    lonely = write_variant(manual_dir / "lonely_193.fits", WAVELNTH=193, T_OBS="2011-02-16T00:00:05.84Z")

    info = build("fits", tmp_path / "tfds", manual_dir=manual_dir, degradation="skip")

    ignored = {pathlib.Path(entry["path"]).name: entry["reason"] for entry in info.metadata["ignored"]}
    assert ignored == {
        "as_304.fits": "channel 304 A not in (171, 193, 211)",
        lonely.name: "incomplete observation at 2011-02-16T00:00:05.840: no 171, 211 A within 12.0 s",
    }
    [[example]] = _examples(tmp_path / "tfds", "fits").values()
    assert example["wavelengths"].tolist() == [171, 193, 211] and example["image"].shape == (128, 128, 3)
    assert example["source"] == b"aia_171_level1.fits;as_193.fits;as_211.fits"
    assert example["t_obs"] == b"2011-02-15T00:00:01.340000+00:00"
    dn_per_s = aia_prep.prepare_channel(FULL_DISK, degradation="skip").map.data.astype(np.float32)
    for channel, (wavelength, scale) in enumerate(((171, 1.0), (193, 1.5), (211, 0.5))):
        np.testing.assert_allclose(
            example["image"][..., channel], aia_prep.normalise(scale * dn_per_s, wavelength), atol=1e-6
        )


def test_patch_layout_options_of_a_config(tmp_path):
    config = AIAPatchesConfig(name="fits_limb", source="fits", wavelengths=(171,), overlap=64, max_mu=0.95)
    manual_dir = _link_into(tmp_path / "manual", [CUTOUT])
    info = build(config, tmp_path / "tfds", manual_dir=manual_dir, degradation="skip")
    examples = [e for split in _examples(tmp_path / "tfds", "fits_limb").values() for e in split]
    observation = aia_prep.prepare_observation([CUTOUT], degradation="skip")
    patches = aia_prep.extract_patches(observation, aia_prep.grid_boxes(observation.images.shape[:2], 128, 64))
    expected = sorted(aia_prep.patch_id(p) for p in patches if p.mu <= 0.95)
    assert 0 < len(expected) < 110 and sorted(e["id"].decode() for e in examples) == expected
    assert sum(s.num_examples for s in info.splits.values()) == len(expected)


def test_missing_degradation_table_stops_the_build(tmp_path):
    manual_dir = _link_into(tmp_path / "manual", [FULL_DISK])
    with pytest.raises(aia_prep.DegradationUnavailableError, match="degradation='skip'"):
        build(FITS_171, tmp_path / "tfds", manual_dir=manual_dir, correction_table=tmp_path / "missing.txt")


def test_synthetic_build_splits_by_index_and_round_trips(tmp_path):
    info = build("synthetic", tmp_path, num_examples=20)
    assert {name: s.num_examples for name, s in info.splits.items()} == {"train": 16, "validation": 2, "test": 2}
    generated = aia_synthetic.generate(20, 23, (171, 193, 211))
    for split, indices in {"train": range(0, 16), "validation": range(16, 18), "test": range(18, 20)}.items():
        examples = {e["id"].decode(): e for e in _examples(tmp_path, "synthetic")[split]}
        assert sorted(examples) == sorted(f"aia_synthetic[23][{i}]" for i in indices)
        for i in indices:
            example = examples[f"aia_synthetic[23][{i}]"]
            np.testing.assert_array_equal(
                example["image"], aia_prep.normalise_channels(generated.images[i], (171, 193, 211))
            )
            assert Time(example["t_obs"].decode()[:26]) == Time(str(generated.t_obs[i]).rstrip("Z"))
            assert example["hpc_x"] == generated.hpc_x[i] and example["mu"] == generated.mu[i]
            assert example["bbox"].tolist() == [-1, -1, -1, -1] and example["wavelengths"].tolist() == [171, 193, 211]


def test_group_by_time_is_greedy_within_the_tolerance():
    t0 = Time("2014-01-01T00:00:00")

    def at(seconds):
        return t0 + seconds * u.s

    files = [
        (pathlib.Path(name), wavelength, at(seconds))
        for name, wavelength, seconds in [
            ("a171", 171, 0.0),
            ("a193", 193, 4.0),
            ("b171", 171, 12.5),
            ("b193", 193, 16.0),
            ("c193", 193, 40.0),
            ("c171", 171, 50.0),
        ]
    ]
    observations, left_out = group_by_time(files, (193, 171), 12.0)
    assert [[p.name for p in o.paths] for o in observations] == [["a193", "a171"], ["b193", "b171"], ["c193", "c171"]]
    assert observations[0].t_obs == at(4.0) and left_out == []
    observations, left_out = group_by_time(files, (193, 171), 9.0)
    assert [[p.name for p in o.paths] for o in observations] == [["a193", "a171"], ["b193", "b171"]]
    assert [p.name for p, _ in left_out] == ["c193", "c171"]


def test_day_split_keeps_days_whole_with_the_documented_fractions():
    days = [(datetime.date(2010, 5, 1) + datetime.timedelta(days=d)).isoformat() for d in range(5000)]
    splits = np.array([day_split(day) for day in days])
    for split, share in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        assert abs(np.mean(splits == split) - share) < 0.015
    assert [day_split(day) for day in ("2011-02-15", "2013-03-10", "2011-02-20")] == ["train", "train", "validation"]


def test_bad_build_requests_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown config 'fit'"):
        build("fit", tmp_path)
    with pytest.raises(ValueError, match="fits config needs manual_dir"):
        build("fits", tmp_path)
    with pytest.raises(ValueError, match="num_examples must be positive"):
        build("synthetic", tmp_path, num_examples=0)
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    (manual_dir / "notes.txt").write_text("not AIA")
    with pytest.raises(FileNotFoundError, match=rf"{manual_dir}: no complete observation of \(171,\) A"):
        build(FITS_171, tmp_path / "tfds", manual_dir=manual_dir, degradation="skip")
