"""Every `solarjax` subcommand, given bad input (a missing file, the wrong kind of file, a bad number,
the wrong artefact), exits 2 with exactly one line on stderr naming the problem, and no traceback.

The subcommands are listed from the parser itself: a new subcommand without cases here fails
`test_every_subcommand_has_bad_input_cases`."""

import argparse
import shutil

import numpy as np
import pytest
from helpers import cli_status

from solarjax import cli

BR = "hmi.sharp_cea_720s.1449.20120306_142400_TAI.Br.fits"
OFFLINE = "http://127.0.0.1:9"  # nothing listens there: a case that got past its check would fail loudly

# (subcommand path, argv as words separated by spaces, text the one error line must hold)
CASES = [
    (("physics",), "physics {tmp}/missing.Br.fits", "missing.Br.fits: no such file"),
    (("physics",), "physics {png}", "picture.png: not a FITS file"),
    (("physics",), "physics --size 0 {br}", "--size: must be at least 1"),
    (("physics",), "physics --threshold -1 {br}", "--threshold: must be in (0, 1]"),
    (
        ("data", "download"),
        "data download {tmp}/o --start junk --end 2012-03-07 --dry-run --base-url " + OFFLINE,
        "cannot read time 'junk'",
    ),
    (
        ("data", "download"),
        "data download {tmp}/o --start 2012-03-06 --end 2012-03-07 --max-attempts x",
        "--max-attempts: invalid int value",
    ),
    (
        ("data", "download-aia"),
        "data download-aia {tmp}/o --start junk --end 2012-03-08 --dry-run --base-url " + OFFLINE,
        "cannot read UTC time 'junk'",
    ),
    (
        ("data", "download-lasco"),
        "data download-lasco {tmp}/l --start junk --end 2013-05-14 --dry-run --base-url " + OFFLINE,
        "expected a UTC time like 2013-05-13T12:00",
    ),
    (
        ("data", "download-lasco"),
        "data download-lasco {tmp}/l --start 2013-05-13 --end 2013-05-14 --cadence fast",
        "--cadence: expected a duration",
    ),
    (
        ("data", "build"),
        "data build --config fits --manual-dir {tmp}/missing --data-dir {tmp}/tfds",
        "{tmp}/missing: the fits config needs a folder of downloaded files",
    ),
    (
        ("data", "build"),
        "data build --dataset cme_patches --config files --data-dir {tmp}/tfds",
        "--manual-dir (not given): the files config needs a folder",
    ),
    (("data", "build"), "data build --dataset pictures", "--dataset: invalid choice: 'pictures'"),
    (("train", "gan"), "train gan --config {tmp}/missing.py --workdir {tmp}/w", "missing.py"),
    (("train", "gan"), "train gan --config gan_synthetic --workdir {simsiam_copy}", "fingerprint"),
    (("train", "simsiam"), "train simsiam --config simsiam_synthetic --workdir {png}", "File exists: '{png}'"),
    (("train", "simsiam"), "train simsiam --config {png} --workdir {tmp}/w", "{png} is not a Python config file"),
    (("sample",), "sample --workdir {tmp}/nothing --out {tmp}/s", "no GAN checkpoints in"),
    (
        ("sample",),
        "sample --workdir {demo}/simsiam --out {tmp}/s",
        "{demo}/simsiam holds a SimSiam encoder run (1 input channel(s)), not a GAN",
    ),
    (("sample",), "sample --workdir {demo}/gan -n 0", "-n: must be at least 1"),
    (("steer", "fit"), "steer fit --gan {demo}/simsiam", "not a GAN"),
    (("steer", "fit"), "steer fit --gan {demo}/gan -n ten", "-n: expected a whole number"),
    (
        ("steer", "generate"),
        "steer generate --gan {demo}/gan --set tuf=junk --out {tmp}/g",
        "--set tuf=junk: target 'junk' is not",
    ),
    (("steer", "generate"), "steer generate --gan {demo}/gan --set flux=+10% --out {tmp}/g", "unknown quantity 'flux'"),
    (("steer", "generate"), "steer generate --gan {demo}/simsiam --set tuf=+10% --out {tmp}/g", "not a GAN"),
    (
        ("steer", "invert"),
        "steer invert {tmp}/missing.Br.fits --gan {demo}/gan --restarts 1 --steps 1 --out {tmp}/inv",
        "missing.Br.fits: no such file",
    ),
    (("steer", "invert"), "steer invert {br} --gan {demo}/gan --restarts 0", "--restarts: must be at least 1"),
    (
        ("index", "build"),
        "index build --ssl {demo}/gan --data-dir {demo}/tfds --out {tmp}/i",
        "{demo}/gan holds a GAN run",
    ),
    (
        ("index", "build"),
        "index build --ssl {demo}/simsiam --data-dir {tmp} --out {tmp}/i",
        "dataset sharp_patches/synthetic is not built in {tmp}",
    ),
    (
        ("index", "build"),
        "index build --ssl {demo} --data-dir {demo}/tfds --out {tmp}/i",
        "did you mean {demo}/simsiam?",
    ),
    (("search",), "search {br} --index {tmp}/missing --ssl {demo}/simsiam", "not an index directory"),
    (("search",), "search {br} --index {demo}/index --ssl {demo}/gan", "not a SimSiam encoder"),
    (("search",), "search {br} --index {demo}/index --ssl {demo}/simsiam -k 0", "-k: must be at least 1"),
    (("search",), "search {png} --index {demo}/index --ssl {demo}/simsiam", "not a FITS file"),
    (
        ("search",),
        "search {br} --index {demo}/index --ssl {demo}/simsiam --start junk",
        "'junk' is not an ISO 8601 time",
    ),
    (("search",), "search {nan_npy} --index {demo}/index --ssl {demo}/simsiam", "no finite pixel"),
    (
        ("search",),
        "search {obj_npy} --index {demo}/index --ssl {demo}/simsiam",
        "obj.npy: not a plain .npy array of numbers",
    ),
    (("serve",), "serve --workdir {tmp}/missing", "no GAN run"),
    (("serve",), "serve --workdir {demo} --aia-index {tmp}/x", "--aia-index and --aia-ssl go together"),
    (("serve",), "serve --port junk", "--port: invalid int value"),
    (("demo",), "demo --outdir {user_dir}", "{user_dir}"),
    (("demo",), "demo --outdir {png}", "File exists"),
]


def _leaves(parser: argparse.ArgumentParser, prefix=()):
    """Paths of the runnable subcommands (those without subcommands of their own)."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield prefix
        return
    for name, sub in actions[0].choices.items():
        yield from _leaves(sub, (*prefix, name))


def test_every_subcommand_has_bad_input_cases():
    leaves = set(_leaves(cli.build_parser()))
    assert len(leaves) >= 14
    missing = leaves - {path for path, _, _ in CASES}
    assert not missing, f"subcommands without bad-input cases: {sorted(missing)}"
    for leaf in leaves:  # each one is also driven past argparse (a bad file or artefact, not only an option)
        assert any(
            path == leaf and not needle.startswith("-") and "invalid" not in needle for path, _, needle in CASES
        ), leaf


@pytest.fixture
def inputs(tmp_path, shared_data, demo_workdir, request):
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    np.save(tmp_path / "nan.npy", np.full((64, 64), np.nan, np.float32))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    user_dir = tmp_path / "my_results"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("the user's own file")
    return {
        "tmp": tmp_path,
        "png": png,
        "br": shared_data / "sharp_cea" / BR,
        "demo": demo_workdir,
        "nan_npy": tmp_path / "nan.npy",
        "obj_npy": tmp_path / "obj.npy",
        "user_dir": user_dir,
    }


@pytest.mark.parametrize("path, argv, needle", CASES, ids=[f"{' '.join(c[0])}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_no_traceback(
    inputs, demo_workdir, tmp_path, capsys, monkeypatch, path, argv, needle
):
    monkeypatch.delenv("SOLARJAX_TRACEBACK", raising=False)
    if "{simsiam_copy}" in argv:
        shutil.copytree(demo_workdir / "simsiam" / "checkpoints", tmp_path / "simsiam_copy" / "checkpoints")
        inputs = {**inputs, "simsiam_copy": tmp_path / "simsiam_copy"}
    argv = [word.format(**inputs) for word in argv.split()]
    needle = needle.format(**inputs)
    status = cli_status(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, (status, err)
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert needle in lines[0], lines[0]
    if path == ("demo",) and "my_results" in argv[-1]:
        assert (inputs["user_dir"] / "notes.txt").read_text() == "the user's own file"
