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
    with exclusive(tmp_path):          # released when the first run ends
        pass


def test_demo_command_refuses_a_busy_output_folder(tmp_path, capsys):
    from solarjax.cli import main
    from solarjax.stages import exclusive

    with exclusive(tmp_path):
        assert main(["demo", "--quick", "--outdir", str(tmp_path)]) == 2
    assert "in use by another run" in capsys.readouterr().err
    assert not (tmp_path / "dataset").exists()
