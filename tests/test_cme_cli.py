"""`solarjax data build --dataset cme_patches`: builds, and one-line errors with exit 2."""

import tensorflow_datasets as tfds

from solarjax import cli


def test_cli_builds_synthetic_cmes(tmp_path, capsys):
    assert (
        cli.main(["data", "build", "--dataset", "cme_patches", "--num-examples", "20", "--data-dir", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    assert "train: 16 patches" in out and "test: 2 patches" in out
    import data_builders  # noqa: F401

    source = tfds.data_source("cme_patches/synthetic", data_dir=tmp_path)["validation"]
    assert len(source) == 2 and source[0]["image"].shape == (128, 128, 1)


def test_cli_errors_are_one_line(tmp_path, capsys):
    base = ["data", "build", "--dataset", "cme_patches", "--data-dir", str(tmp_path)]
    assert cli.main([*base, "--config", "files"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --manual-dir (not given): the files config needs a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not LASCO")
    assert cli.main([*base, "--config", "files_c3", "--manual-dir", str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {empty}: no sequence of two or more LASCO C3 frames (0 broken, 1 ignored; the build log lists them)"
    ]
    assert cli.main([*base, "--config", "fits", "--manual-dir", str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown config 'fits'")
