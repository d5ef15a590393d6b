"""A good citizen in a user's process: the library logs (no prints), the CLI alone sets up logging (-v/-q),
and no module switches a user's matplotlib backend, at import or when it writes a figure."""

import logging
import subprocess
import sys

import pytest

from solarjax import cli
from solarjax.cli import program
from solarjax.stages import StageRunner


@pytest.fixture
def restored_logging():
    """Undoes `cli.configure_logging`: the root handler it adds and the levels it sets."""
    root = logging.getLogger()
    names = ("solarjax", "absl", "orbax", "jax")
    saved = root.level, list(root.handlers), {n: logging.getLogger(n).level for n in names}
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def test_stage_progress_goes_to_the_solarjax_logger_not_stdout(tmp_path, caplog, capsys):
    runner = StageRunner(tmp_path, total=1)
    with caplog.at_level(logging.INFO, logger="solarjax"):
        assert runner.run("one", {"a": 1}, lambda d: {"value": 3}) == {"value": 3}
    assert capsys.readouterr().out == ""
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    assert [name for name, _ in lines] == ["solarjax.stages", "solarjax.stages"]
    assert lines[0][1].startswith("[1/1] one: running") and lines[1][1].startswith("[1/1] one: finished in")


@pytest.mark.parametrize(
    "verbosity, own_shown, own_debug_shown, other_info_shown, other_warning_shown",
    [
        (-2, False, False, False, False),
        (-1, False, False, False, True),
        (0, True, False, False, True),
        (1, True, True, False, True),
        (2, True, True, True, True),
    ],
)
def test_cli_logging_levels(
    verbosity, own_shown, own_debug_shown, other_info_shown, other_warning_shown, restored_logging, capsys
):
    cli.configure_logging(verbosity)
    cli.configure_logging(verbosity)  # idempotent: one handler
    assert sum(getattr(h, "_solarjax", False) for h in logging.getLogger().handlers) == 1
    logging.getLogger("solarjax.demo").info("own info")
    logging.getLogger("solarjax.demo").debug("own debug")
    logging.getLogger("absl").info("other info")
    logging.getLogger("orbax.checkpoint").info("orbax info")
    logging.getLogger("some.library").warning("other warning")
    err = capsys.readouterr().err.splitlines()
    assert ("own info" in err) == own_shown  # solarjax's lines as they are
    assert ("own debug" in err) == own_debug_shown
    assert ("INFO absl: other info" in err) == other_info_shown
    assert ("INFO orbax.checkpoint: orbax info" in err) == other_info_shown
    assert ("WARNING some.library: other warning" in err) == other_warning_shown


def test_verbosity_flags_anywhere_on_the_line_and_results_stay_on_stdout(real_br_files, restored_logging, capsys):
    moved = program._verbosity_first(["demo", "-q", "--outdir", "x", "--", "-v"])
    assert moved == ["-q", "demo", "--outdir", "x", "--", "-v"]
    assert cli.main(["physics", "--json", "--size", "32", str(real_br_files[0]), "-qq"]) == 0
    out, err = capsys.readouterr()
    assert out.lstrip().startswith("[") and err == ""
    assert logging.getLogger("solarjax").level == logging.ERROR


def test_one_line_errors_are_unchanged_by_quiet(tmp_path, restored_logging, capsys):
    missing = tmp_path / "missing.Br.fits"
    assert cli.main(["-qq", "train", "gan", "--config", str(tmp_path / "none.py"), "--workdir", "w"]) == 2
    err = capsys.readouterr().err
    assert err == f"solarjax train gan: error: config file {tmp_path / 'none.py'} not found\n"
    assert cli.main(["physics", str(missing), "-q"]) != 0  # the status is the physics command's own policy
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err


BACKEND_PROBE = r"""
import sys
import matplotlib
matplotlib.use("svg")                        # the user's choice, e.g. a notebook's inline backend
import numpy as np
import solarjax.gan, solarjax.train.monitor, solarjax.retrieval.evaluate
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
from solarjax.train.monitor import save_comparison_grid, save_sample_grid
from solarjax.retrieval.evaluate import plot_query_matches, plot_query_vs_match
out = sys.argv[1]
images = np.linspace(-1, 1, 4 * 16 * 16, dtype=np.float32).reshape(4, 16, 16)
save_sample_grid(images, f"{out}/grid.png")
save_comparison_grid(images, -images, f"{out}/compare.png", columns=2)
values = np.arange(12, dtype=np.float32).reshape(4, 3)
plot_query_matches(f"{out}/matches.png", images[:2], values[:2], np.array([[0, 1], [2, -1]]), images, values,
                   ["tuf", "psep", "r_value"])
correlations = {"ssl": {n: {"pearson": 0.5, "spearman": 0.4} for n in ("tuf", "psep", "r_value")}}
plot_query_vs_match(f"{out}/scatter.png", values, {"ssl": values[::-1]}, correlations, ["tuf", "psep", "r_value"])
assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
pyplot = sys.modules.get("matplotlib.pyplot")
assert pyplot is None or pyplot.get_fignums() == [], "figures left open in pyplot"
print("ok")
"""


def test_no_module_switches_the_users_matplotlib_backend(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", BACKEND_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    for name in ("grid", "compare", "matches", "scatter"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
