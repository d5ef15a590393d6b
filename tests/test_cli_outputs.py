"""CLI behaviour a user relies on: nothing existing is overwritten without --overwrite, outputs are replaced
atomically, and bad input is one line on stderr with exit 2."""

import numpy as np
import pytest
from astropy.io import fits
from helpers import cli_status

from solarjax import cli


def test_sample_refuses_existing_outputs_then_replaces_them_with_overwrite(demo_workdir, tmp_path, capsys):
    out = tmp_path / "mine"
    (tmp_path / "mine.png").write_bytes(b"the user's own figure")
    args = ["sample", "--workdir", str(demo_workdir / "gan"), "-n", "4", "--out", str(out)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mine.png already exists: pass --overwrite" in err[0]
    assert (tmp_path / "mine.png").read_bytes() == b"the user's own figure"
    assert not (tmp_path / "mine.fits").exists()

    assert cli.main([*args, "--overwrite"]) == 0
    assert (tmp_path / "mine.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with fits.open(tmp_path / "mine.fits") as hdus:
        cube = hdus[0].data if hdus[0].data is not None else hdus[1].data
        assert np.asarray(cube).shape[0] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.fits", "mine.png"]  # no partial files left


BR = "hmi.sharp_cea_720s.1449.20120306_142400_TAI.Br.fits"


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["physics", "--size", "0", "{data}/" + BR], "--size: must be at least 1"),
        (["physics", "--threshold", "-1", "{data}/" + BR], "--threshold: must be in (0, 1]"),
        (["sample", "--workdir", "{tmp}/nothing", "-n", "x"], "-n: expected a whole number"),
        (["sample", "--workdir", "{tmp}/nothing", "--out", "{tmp}/s"], "no GAN checkpoints in"),
        (["train", "gan", "--config", "{tmp}/missing.py", "--workdir", "{tmp}/w"], "missing.py not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(shared_data, tmp_path, capsys, argv, needle):
    argv = [a.format(data=shared_data / "sharp_cea", tmp=tmp_path) for a in argv]
    status = cli_status(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0], err
