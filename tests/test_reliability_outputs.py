"""Commands that write user outputs (`steer fit/generate/invert`, `search --png`) refuse an existing
output without --overwrite, naming it in one line, and with it replace the output atomically."""

import json
import shutil

import numpy as np
from astropy.io import fits

from solarjax import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _refusal(capsys, needle: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "already exist" in err[0] and "--overwrite" in err[0], err
    return err[0]


def _no_partials(folder) -> None:
    assert not [p.name for p in folder.iterdir() if ".partial" in p.name or ".replaced" in p.name]


def test_steer_generate_refuses_existing_outputs_before_any_work(demo_workdir, tmp_path, capsys):
    (tmp_path / "mine.fits").write_bytes(b"the user's own cube")
    args = [
        "steer",
        "generate",
        "--gan",
        str(tmp_path / "no_gan_here"),
        "--set",
        "tuf=+20%",
        "--out",
        str(tmp_path / "mine"),
    ]
    assert cli.main(args) == 2  # refused before the (missing) GAN is even looked at
    _refusal(capsys, "mine.fits")
    assert (tmp_path / "mine.fits").read_bytes() == b"the user's own cube"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.fits"]


def test_steer_invert_outputs_are_refused_then_replaced_with_overwrite(demo_workdir, real_br_files, tmp_path, capsys):
    """`steer generate` writes through the same `_write_steer_outputs`."""
    out = tmp_path / "mine"
    (tmp_path / "mine.json").write_text("the user's own notes")
    args = [
        "steer",
        "invert",
        str(real_br_files[0]),
        "--gan",
        str(demo_workdir / "gan"),
        "--restarts",
        "1",
        "--steps",
        "2",
        "--out",
        str(out),
    ]
    assert cli.main(args) == 2
    _refusal(capsys, "mine.json")
    assert (tmp_path / "mine.json").read_text() == "the user's own notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.json"]  # nothing else written

    assert cli.main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    [row] = json.loads((tmp_path / "mine.json").read_text())
    assert row["path"] == str(real_br_files[0]) and np.isfinite(row["masked_mse"])
    assert (tmp_path / "mine.png").read_bytes()[:8] == PNG_MAGIC
    with fits.open(tmp_path / "mine.fits") as hdus:
        assert hdus[0].data.shape[0] == 1 and hdus["LATENTS"].data.shape[0] == 1
    _no_partials(tmp_path)


def test_steer_fit_refuses_existing_directions_then_replaces_them(demo_workdir, tmp_path, capsys):
    from solarjax import gan, steering

    gan_dir = tmp_path / "gan"
    # the checkpoint the demo fitted its directions on: a 60-step GAN's last one can draw mostly one-polarity
    # patches, whose quantities are undefined (24 of 64 defined on one CPU)
    best = gan.load(demo_workdir / "gan").step
    shutil.copytree(demo_workdir / "gan" / "checkpoints" / str(best), gan_dir / "checkpoints" / str(best))
    (gan_dir / "directions").mkdir()
    (gan_dir / "directions" / "notes.txt").write_text("mine")
    args = ["steer", "fit", "--gan", str(gan_dir), "-n", "64"]
    assert cli.main(args) == 2
    _refusal(capsys, str(gan_dir / "directions"))
    assert (gan_dir / "directions" / "notes.txt").read_text() == "mine"

    assert cli.main([*args, "--overwrite"]) == 0
    assert "directions saved to" in capsys.readouterr().out
    assert sorted(p.name for p in (gan_dir / "directions").iterdir()) == ["directions.json", "directions.npz"]
    _no_partials(gan_dir)
    directions = steering.load_directions(gan_dir / "directions", gan.load(gan_dir))
    assert np.allclose(np.linalg.norm(directions.normals, axis=-1), 1.0, atol=1e-4)


def test_search_png_is_refused_then_replaced_with_overwrite(demo_workdir, real_br_files, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(b"the user's own figure")
    args = [
        "search",
        str(real_br_files[0]),
        "--index",
        str(demo_workdir / "index"),
        "--ssl",
        str(demo_workdir / "simsiam"),
        "-k",
        "2",
        "--png",
        str(sheet),
        "--data-dir",
        str(demo_workdir / "tfds"),
    ]
    assert cli.main(args) == 2
    _refusal(capsys, "sheet.png")
    assert sheet.read_bytes() == b"the user's own figure"
    assert cli.main([*args, "--overwrite"]) == 0
    assert f"contact sheet: {sheet}" in capsys.readouterr().out
    assert sheet.read_bytes()[:8] == PNG_MAGIC
    _no_partials(tmp_path)
