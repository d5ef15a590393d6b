"""CLI commands never overwrite what exists without --overwrite, and replace outputs atomically."""
import numpy as np
from astropy.io import fits

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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.fits", "mine.png"]   # no partial files left
