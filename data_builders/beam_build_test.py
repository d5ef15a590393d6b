"""Beam builds (`common.build_dataset` with a beam_runner) give the plain builds' examples, splits and build logs.

Needs apache-beam, which pins older protobuf, pyarrow, pillow and python-dateutil than the project's
venv: it runs in `.venv-beam` (`make test-beam`, which .ci/run calls) and is skipped elsewhere.
"""

import importlib.resources
import os
import pathlib
import re

import numpy as np
import pytest
import tensorflow_datasets as tfds
from astropy.io import fits

beam = pytest.importorskip("apache_beam")

import data_builders  # noqa: E402,F401  (registers the builders)
from data_builders import aia_patches, sharp_patches  # noqa: E402
from data_builders.common import beam_pipeline_options  # noqa: E402
from solarjax import cli  # noqa: E402

FULL_DISK = pathlib.Path(str(importlib.resources.files("sunpy") / "data/test/aia_171_level1.fits"))


def _link_into(folder: pathlib.Path, files) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        os.symlink(path, folder / path.name)
    return folder


def _examples_by_key(data_dir, name: str, key: str) -> dict[str, dict[str, dict]]:
    """split -> example[key] -> example, read back with tfds.data_source."""
    sources = tfds.data_source(name, data_dir=data_dir)
    return {split: {source[i][key]: source[i] for i in range(len(source))} for split, source in sources.items()}


def _assert_same_examples(plain: dict, beamed: dict) -> None:
    assert {split: sorted(examples) for split, examples in beamed.items()} == {
        split: sorted(examples) for split, examples in plain.items()
    }
    for split, examples in plain.items():
        for key, example in examples.items():
            other = beamed[split][key]
            assert sorted(other) == sorted(example)
            for feature, value in example.items():
                np.testing.assert_array_equal(
                    np.asarray(other[feature]), np.asarray(value), err_msg=f"{split} {key!r} {feature}"
                )


def _failure_set(info) -> set[tuple[str, str]]:
    return {(os.path.basename(entry["path"]), entry["reason"]) for entry in info.metadata["failures"]}


@pytest.fixture(scope="module")
def sharp_manual_dir(shared_data, corrupt_files, tmp_path_factory) -> pathlib.Path:
    """The 40 real Br frames (with their bitmaps and unused segments), the three real broken downloads
    (found while planning) and a real Br file renamed to another HARP (found while reading, in a worker)."""
    manual_dir = _link_into(
        tmp_path_factory.mktemp("sharp_manual"),
        [p for p in (shared_data / "sharp_cea").iterdir()] + list(corrupt_files),
    )
    os.symlink(
        shared_data / "sharp_cea" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits",
        manual_dir / "hmi.sharp_cea_720s.9999.20120306_142400_TAI.Br.fits",
    )
    return manual_dir


@pytest.fixture(scope="module")
def sharp_plain(sharp_manual_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("plain")
    return data_dir, sharp_patches.build("fits", data_dir, manual_dir=sharp_manual_dir)


@pytest.mark.parametrize("workers", [None, 2])
def test_sharp_beam_build_equals_the_plain_build(sharp_manual_dir, sharp_plain, workers, tmp_path):
    plain_dir, plain_info = sharp_plain
    info = sharp_patches.build(
        "fits",
        tmp_path,
        manual_dir=sharp_manual_dir,
        beam_runner="DirectRunner",
        beam_options=beam_pipeline_options("DirectRunner", workers),
    )

    plain = _examples_by_key(plain_dir, "sharp_patches/fits", "record")
    beamed = _examples_by_key(tmp_path, "sharp_patches/fits", "record")
    assert sum(len(examples) for examples in plain.values()) == 40
    _assert_same_examples(plain, beamed)
    assert {split: s.num_examples for split, s in info.splits.items()} == {
        split: s.num_examples for split, s in plain_info.splits.items()
    }
    failures = _failure_set(info)
    assert failures == _failure_set(plain_info)
    assert (
        "hmi.sharp_cea_720s.9999.20120306_142400_TAI.Br.fits",
        "header says segment Br of HARP 377, the file name Br of HARP 9999",
    ) in failures  # from a worker
    assert len(failures) == 4
    assert info.metadata["ignored"] == plain_info.metadata["ignored"]
    assert info.metadata["unused_segments"] == plain_info.metadata["unused_segments"]
    assert not list(pathlib.Path(info.data_dir).glob("beam_failures*"))


def test_aia_beam_build_equals_the_plain_build(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    with fits.open(FULL_DISK) as hdus:
        header, data = hdus[0].header.copy(), hdus[0].data
    for name, cards in (
        ("day1.fits", {}),
        ("day6.fits", {"T_OBS": "2011-02-20T00:00:01.34Z"}),
        ("flagged.fits", {"T_OBS": "2011-02-21T00:00:01.34Z", "QUALITY": 1024}),
    ):
        variant = header.copy()
        variant.update(cards)
        fits.PrimaryHDU(data, variant).writeto(manual_dir / name)
    config = aia_patches.AIAPatchesConfig(name="fits_171", source="fits", wavelengths=(171,))

    plain_info = aia_patches.build(config, tmp_path / "plain", manual_dir=manual_dir, degradation="skip")
    info = aia_patches.build(
        config, tmp_path / "beam", manual_dir=manual_dir, degradation="skip", beam_runner="DirectRunner"
    )

    plain = _examples_by_key(tmp_path / "plain", "aia_patches/fits_171", "id")
    beamed = _examples_by_key(tmp_path / "beam", "aia_patches/fits_171", "id")
    assert sum(len(examples) for examples in plain.values()) == 2
    _assert_same_examples(plain, beamed)
    assert (
        _failure_set(info)
        == _failure_set(plain_info)
        == {("flagged.fits", "QUALITY=0x00000400: flagged by the AIA pipeline")}
    )


def test_cli_beam_build(shared_data, tmp_path, capsys):
    manual_dir = _link_into(tmp_path / "manual", sorted((shared_data / "sharp_cea").glob("*.1449.*")))
    code = cli.main(
        [
            "data",
            "build",
            "--config",
            "fits",
            "--manual-dir",
            str(manual_dir),
            "--data-dir",
            str(tmp_path / "tfds"),
            "--beam-runner",
            "DirectRunner",
            "--beam-option=--direct_running_mode=in_memory",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    frames = len(list(manual_dir.glob("*.Br.fits")))
    assert frames >= 1
    assert re.search(rf"^\w+: {frames} patches$", out, re.M)
