"""`solarjax data build --dataset aia_patches`: the synthetic default and a clear error on incomplete FITS."""

import shutil

import sunpy.data.test
import tensorflow_datasets as tfds

import data_builders  # noqa: F401  (registers the builders)
from solarjax import cli


def test_builds_synthetic_aia_patches(tmp_path, capsys):
    assert (
        cli.main(["data", "build", "--dataset", "aia_patches", "--num-examples", "30", "--data-dir", str(tmp_path)])
        == 0
    )
    assert "train: 24 patches" in capsys.readouterr().out
    train = tfds.data_source("aia_patches/synthetic", data_dir=tmp_path)["train"]
    assert len(train) == 24 and train[0]["image"].shape == (128, 128, 3)
    assert list(train[0]["wavelengths"]) == [171, 193, 211]


def test_fits_folder_without_every_channel_is_a_clear_error(tmp_path, capsys):
    folder = tmp_path / "aia"
    folder.mkdir()
    shutil.copy(sunpy.data.test.rootdir / "aia_171_level1.fits", folder)
    code = cli.main(
        [
            "data",
            "build",
            "--dataset",
            "aia_patches",
            "--config",
            "fits",
            "--manual-dir",
            str(folder),
            "--data-dir",
            str(tmp_path / "tfds"),
            "--skip-degradation",
        ]
    )
    assert code == 2
    assert "no complete observation of (171, 193, 211) A" in capsys.readouterr().err
