"""StageRunner: finished stages are skipped, interrupted ones rerun from an empty directory unless they
resume (trainers), and a changed config never sees the old stage's files."""

import json

import pytest

from solarjax.stages import StageRunner


class Interrupted(Exception):
    pass


def _write_then_fail(stage_dir):
    (stage_dir / "partial.txt").write_text("left by an interrupted run")
    raise Interrupted


def _list_files(stage_dir):
    return {"files": sorted(p.name for p in stage_dir.iterdir())}


def _runner(tmp_path):
    return StageRunner(tmp_path, total=1, log=lambda line: None)


def test_finished_stage_is_skipped(tmp_path):
    calls = []

    def work(stage_dir):
        calls.append(stage_dir)
        return {"value": 3}

    assert _runner(tmp_path).run("s", {"a": 1}, work) == {"value": 3}
    assert _runner(tmp_path).run("s", {"a": 1}, work) == {"value": 3}
    assert len(calls) == 1
    assert json.loads((tmp_path / "s" / "stage.json").read_text())["result"] == {"value": 3}


def test_interrupted_stage_reruns_in_an_empty_directory(tmp_path):
    with pytest.raises(Interrupted):
        _runner(tmp_path).run("s", {"a": 1}, _write_then_fail)
    assert _runner(tmp_path).run("s", {"a": 1}, _list_files) == {"files": ["stage.started.json"]}


def test_interrupted_resumable_stage_keeps_its_files(tmp_path):
    with pytest.raises(Interrupted):
        _runner(tmp_path).run("s", {"a": 1}, _write_then_fail, resumable=True)
    result = _runner(tmp_path).run("s", {"a": 1}, _list_files, resumable=True)
    assert result == {"files": ["partial.txt", "stage.started.json"]}


def test_changed_config_never_resumes_old_files(tmp_path):
    with pytest.raises(Interrupted):
        _runner(tmp_path).run("s", {"a": 1}, _write_then_fail, resumable=True)
    assert _runner(tmp_path).run("s", {"a": 2}, _list_files, resumable=True) == {"files": ["stage.started.json"]}


def test_finished_stage_with_changed_config_reruns_from_scratch(tmp_path):
    def write(stage_dir):
        (stage_dir / "table").mkdir()
        return {}

    _runner(tmp_path).run("s", {"a": 1}, write, resumable=True)
    _runner(tmp_path).run("s", {"a": 2}, write, resumable=True)
    assert json.loads((tmp_path / "s" / "stage.json").read_text())["config"] == {"a": 2}


def test_changed_upstream_reruns_the_stage(tmp_path):
    seen = []
    _runner(tmp_path).run("up", {"a": 1}, lambda d: {})
    _runner(tmp_path).run("down", {}, lambda d: seen.append(1) or {}, depends_on=("up",))
    _runner(tmp_path).run("up", {"a": 2}, lambda d: {})
    _runner(tmp_path).run("down", {}, lambda d: seen.append(1) or {}, depends_on=("up",))
    assert len(seen) == 2


def test_a_second_run_in_the_same_folder_is_refused(tmp_path):
    from solarjax.stages import OutdirInUseError, exclusive

    with exclusive(tmp_path):
        with pytest.raises(OutdirInUseError, match="in use by another run"):
            with exclusive(tmp_path):
                pass
    with exclusive(tmp_path):  # released when the first run ends
        pass


def test_demo_command_refuses_a_busy_output_folder(tmp_path, capsys):
    from solarjax.cli import main
    from solarjax.stages import exclusive

    with exclusive(tmp_path):
        assert main(["demo", "--quick", "--outdir", str(tmp_path)]) == 2
    assert "in use by another run" in capsys.readouterr().err
    assert not (tmp_path / "dataset").exists()


def test_demo_refuses_a_folder_holding_the_users_files_and_deletes_nothing(tmp_path, capsys):
    from solarjax.cli import main

    (tmp_path / "gan").mkdir()
    (tmp_path / "gan" / "my_weights.npz").write_bytes(b"user data")
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--quick", "--outdir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "notes.txt" in err[0] and str(tmp_path) in err[0]
    assert (tmp_path / "gan" / "my_weights.npz").read_bytes() == b"user data"
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "dataset").exists()


def test_a_stage_folder_without_a_stage_record_is_never_emptied(tmp_path):
    from solarjax.stages import OutdirNotOwnedError

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "user.txt").write_text("mine")
    with pytest.raises(OutdirNotOwnedError, match="no solarjax run wrote"):
        _runner(tmp_path).run("s", {"a": 1}, lambda d: {})
    assert (tmp_path / "s" / "user.txt").read_text() == "mine"


def test_claimed_marks_new_and_older_demo_folders_and_refuses_foreign_ones(tmp_path):
    from solarjax.stages import OWNER_MARK, OutdirNotOwnedError, claimed

    with claimed(tmp_path / "new"):
        pass
    assert (tmp_path / "new" / OWNER_MARK).exists()
    older = tmp_path / "older"  # what an earlier solarjax demo left: known names only
    (older / "gan").mkdir(parents=True)
    (older / "report.html").write_text("<html>")
    with claimed(older, frozenset({"gan", "report.html"})):
        pass
    assert (older / OWNER_MARK).exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "data.fits").write_bytes(b"x")
    with pytest.raises(OutdirNotOwnedError, match="data.fits"):
        with claimed(foreign, frozenset({"gan"})):
            pass
    assert not (foreign / OWNER_MARK).exists()
