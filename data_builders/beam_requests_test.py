"""Beam build requests that must be refused with one clear line, whether or not apache-beam is installed."""

import sys

import pytest

import data_builders  # noqa: F401  (registers the builders)
from data_builders import common, sharp_patches
from solarjax import cli


@pytest.fixture
def no_beam(monkeypatch):
    """apache_beam cannot be imported (as in the project's own venv)."""
    monkeypatch.setitem(sys.modules, "apache_beam", None)


def test_without_beam_the_options_name_the_beam_venv(no_beam):
    with pytest.raises(common.BeamUnavailableError, match="make beam-venv"):
        common.beam_pipeline_options("DirectRunner", 2)


def test_cli_without_beam_is_one_line_and_exit_2(no_beam, shared_data, tmp_path, capsys):
    code = cli.main(
        [
            "data",
            "build",
            "--config",
            "fits",
            "--manual-dir",
            str(shared_data / "sharp_cea"),
            "--data-dir",
            str(tmp_path),
            "--beam-runner",
            "DirectRunner",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "apache-beam" in err and "make beam-venv" in err
    assert not (tmp_path / "sharp_patches").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--beam-workers", "2"], "need --beam-runner"),
        (["--beam-option=--direct_num_workers=2"], "need --beam-runner"),
        (
            ["--dataset", "cme_patches", "--config", "files", "--beam-runner", "DirectRunner"],
            "cme_patches has no Beam build",
        ),
    ],
)
def test_cli_refuses_inconsistent_beam_flags(shared_data, tmp_path, capsys, extra, message):
    argv = [
        "data",
        "build",
        "--config",
        "fits",
        "--manual-dir",
        str(shared_data / "sharp_cea"),
        "--data-dir",
        str(tmp_path),
    ] + extra
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_beam_builds_read_files(tmp_path):
    with pytest.raises(ValueError, match="give a fits config"):
        sharp_patches.build("synthetic", tmp_path, num_examples=8, beam_runner="DirectRunner")
    with pytest.raises(ValueError, match="without a beam_runner"):
        sharp_patches.build("fits", tmp_path, manual_dir=tmp_path, beam_options=object())
