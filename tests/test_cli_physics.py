"""`solarjax physics` on the real frames, and the full-resolution flux against the header's USFLUX."""

import json

import numpy as np
import pytest
import scipy.stats

from solarjax import cli, physics
from solarjax.data import read_sharp


def test_unsigned_flux_rank_correlates_with_usflux(real_br_files):
    """USFLUX uses the HARP bitmap and a noise mask, so only the ranking is expected to agree."""
    patches = [read_sharp(path) for path in real_br_files]
    flux = [float(physics.unsigned_flux_above_mx(p.data, p.meta["pixel_area_cm2"], 150.0)) for p in patches]
    usflux = [p.meta["USFLUX"] for p in patches]
    assert len(patches) == 40
    rho = scipy.stats.spearmanr(flux, usflux).statistic
    assert rho >= 0.88, rho
    # Typically the same order of magnitude (the patch holds more than the HARP's bitmap area).
    ratio = np.array(flux) / np.array(usflux)
    assert 0.5 < np.median(ratio) < 4, np.median(ratio)


def test_physics_command_lists_good_files_and_reports_broken_ones(real_br_files, corrupt_files, capsys):
    status = cli.main(["physics", "--json", *map(str, real_br_files), *map(str, corrupt_files)])
    captured = capsys.readouterr()
    records = json.loads(captured.out)
    assert status == 1
    assert len(records) == 40
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3
    assert "empty file" in errors[0] and "truncated" in errors[1] and "truncated" in errors[2]
    for path in corrupt_files:
        assert any(path.name in line for line in errors)
    first = records[0]
    assert set(first["quantities"]) == set(physics.QUANTITY_NAMES)
    assert {"unsigned_flux_mx", "psep_mm", "area_mm2", "unsigned_flux_full_res_mx"} <= set(first["physical"])
    assert first["meta"]["harpnum"] == int(real_br_files[0].name.split(".")[2])


def test_physics_command_matches_the_library(real_br_files, capsys):
    from solarjax.data import preprocess_patch

    path = real_br_files[5]
    assert cli.main(["physics", "--json", str(path)]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    image = preprocess_patch(read_sharp(path)).image
    expected = physics.quantities(image[None])
    for name in physics.QUANTITY_NAMES:
        value = record["quantities"][name]  # JSON has null where a quantity is undefined (NaN)
        assert (np.nan if value is None else value) == pytest.approx(float(expected[name][0]), rel=1e-6, nan_ok=True)


def test_physics_table_output(real_br_files, capsys):
    assert cli.main(["physics", *map(str, real_br_files[:3])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["HARP", "T_REC", "TUF"]
    assert lines[-1] == "3 patches"


def test_physics_command_refuses_segments_other_than_br(real_br_files, capsys):
    br = real_br_files[1]
    others = [br.parent / br.name.replace(".Br.", f".{s}.") for s in ("Bp", "Bt", "bitmap", "magnetogram")]
    others = [p for p in others if p.exists()]
    assert len(others) >= 3
    status = cli.main(["physics", "--json", str(br), *map(str, others)])
    captured = capsys.readouterr()
    assert status == 1
    assert [r["path"] for r in json.loads(captured.out)] == [str(br)]
    errors = captured.err.strip().splitlines()
    assert len(errors) == len(others)
    for path, line in zip(others, errors):
        assert path.name in line and "segment: the method's quantities are defined on Br" in line
