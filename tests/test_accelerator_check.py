"""benchmarks/accelerator_check.sh --tiny runs on CPU and writes a complete, finite report."""

import json
import math
import pathlib
import subprocess
import sys

import pytest

from benchmarks import accelerator_check
from tests.helpers import one_device_env

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEP_KEYS = {
    "batch",
    "compute_dtype",
    "compile_seconds",
    "flops",
    "compiled_memory_bytes",
    "images_per_s",
    "step_seconds",
    "achieved_flops_per_s",
    "mfu_vs_measured_matmul",
    "mfu_vs_spec",
    "device_peak_bytes",
    "timed_steps",
}
OPTIONAL = {"mfu_vs_spec", "device_peak_bytes", "compiled_memory_bytes"}  # None where the backend cannot say


def _numbers(tree, path=""):
    """(path, value) of every number in a JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _numbers(value, f"{path}/{key}")
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from _numbers(value, f"{path}[{index}]")
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield path, tree


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("accelerator_check") / "report.json"
    env = one_device_env(PYTHON=sys.executable, JAX_PLATFORMS="cpu")  # one device, as on an accelerator
    completed = subprocess.run(
        [str(ROOT / "benchmarks" / "accelerator_check.sh"), str(out), "--tiny"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(out.read_text())


def test_report_has_every_section_without_errors(report):
    assert report["mode"] == "tiny"
    assert report["machine"]["backend"] == "cpu"
    for section in accelerator_check.SECTIONS:
        assert section in report, section
        assert "error" not in report[section], report[section]
        assert report["section_seconds"][section] > 0


def test_training_steps_cover_every_batch_and_dtype(report):
    for section in ("gan", "simsiam"):
        results = report[section]["results"]
        grid = {(r["batch"], r["compute_dtype"]) for r in results}
        assert grid == {(b, d) for b in accelerator_check.TINY.batches for d in accelerator_check.DTYPES}
        for result in results:
            assert set(result) == STEP_KEYS, set(result) ^ STEP_KEYS
            for key, value in result.items():
                if value is None:
                    assert key in OPTIONAL, key
            assert math.isclose(result["images_per_s"], result["batch"] / result["step_seconds"])
            assert 0 < result["mfu_vs_measured_matmul"] < 1.5


def test_every_number_is_finite_and_positive(report):
    numbers = list(_numbers({k: v for k, v in report.items() if k != "sizes"}))
    assert len(numbers) > 60
    bad = [(path, value) for path, value in numbers if not (math.isfinite(value) and value > 0)]
    assert not bad, bad


def test_search_exact_on_device_matches_numpy_and_scann_recall_is_a_share(report):
    search = report["search"]
    assert search["device_exact_agreement_with_numpy"] == 1.0
    assert 0 < search["scann_recall_at_10"] <= 1.0
    assert search["rows"] == accelerator_check.TINY.search_rows
    assert report["physics"]["patches"] == accelerator_check.TINY.physics_patches
