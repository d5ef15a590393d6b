"""A damaged newest checkpoint (truncated or garbled array file, deleted metadata) is skipped with a
warning naming it, and the newest intact one is used; a run directory of the wrong model is refused."""

import gc
import logging
import shutil

import grain
import jax.numpy as jnp
import numpy as np
import pytest

from solarjax.train import checkpoint as checkpoint_lib

FINGERPRINT = "0123456789abcdef"


def _damage(step_dir, how: str) -> None:
    """Damages a checkpoint folder written by `RunCheckpoints.save` as a crash or a bad disk would."""
    arrays = sorted(
        (p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
        key=lambda p: p.stat().st_size,
    )
    biggest = arrays[-1]
    if how == "truncated":
        data = biggest.read_bytes()
        biggest.write_bytes(data[: len(data) // 2])
    elif how == "garbled":
        data = bytearray(biggest.read_bytes())
        for i in range(8, len(data), 61):
            data[i] ^= 0xA5
        biggest.write_bytes(bytes(data))
    elif how == "state metadata deleted":
        (step_dir / "state" / "_METADATA").unlink()
    elif how == "array manifest deleted":
        (step_dir / "state" / "manifest.ocdbt").unlink()
    elif how == "run record deleted":
        (step_dir / "run" / "metadata").unlink()
    else:
        raise ValueError(how)


def _state(step: int) -> dict:
    return {
        "weights": jnp.full((96, 80), float(step), jnp.float32) + jnp.arange(80, dtype=jnp.float32),
        "step": jnp.asarray(step, jnp.int32),
    }


def _iterator():
    return iter(grain.MapDataset.range(1000).to_iter_dataset())


def _write_run(directory, steps=(1, 2, 3)) -> None:
    checkpoints = checkpoint_lib.RunCheckpoints(directory, fingerprint=FINGERPRINT, keep_last=5)
    iterator = _iterator()
    for step in steps:
        next(iterator)  # one batch per step: the position after step s is s
        checkpoints.save(step, _state(step), iterator, config={"model": {"arch": "toy"}})
        checkpoints.wait_until_finished()
    checkpoints.close()


@pytest.mark.parametrize("how", ["truncated", "garbled", "array manifest deleted", "run record deleted"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, caplog, how):
    directory = tmp_path / "checkpoints"
    _write_run(directory)
    _damage(directory / "3", how)

    caplog.set_level(logging.WARNING, logger="solarjax.train.checkpoint")
    checkpoints = checkpoint_lib.RunCheckpoints(directory, fingerprint=FINGERPRINT, keep_last=5)
    start = checkpoints.latest_step()
    iterator = _iterator()
    state = checkpoints.restore(start, _state(0), iterator)

    assert int(state["step"]) == 2
    np.testing.assert_array_equal(np.asarray(state["weights"]), np.asarray(_state(2)["weights"]))
    assert next(iterator) == 2  # the data position saved with step 2
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{directory}/3 is unreadable" in m for m in warned), warned
    # the bad folder is kept for inspection but moved out of the way, so step 3 can be trained and saved again
    assert (tmp_path / "checkpoints.unreadable" / "3").is_dir()
    assert checkpoints.all_steps() == [1, 2]
    checkpoints.save(3, _state(3), iterator, config={"model": {"arch": "toy"}})
    checkpoints.wait_until_finished()
    assert int(checkpoints.restore_state(3, _state(0))["step"]) == 3
    checkpoints.close()


def test_no_readable_checkpoint_is_one_error_naming_every_step(tmp_path):
    directory = tmp_path / "checkpoints"
    _write_run(directory, steps=(1, 2))
    _damage(directory / "1", "truncated")
    _damage(directory / "2", "garbled")
    checkpoints = checkpoint_lib.RunCheckpoints(directory, fingerprint=FINGERPRINT)
    with pytest.raises(checkpoint_lib.CheckpointReadError) as error:
        checkpoints.restore(checkpoints.latest_step(), _state(0), _iterator())
    message = str(error.value)
    assert "\n" not in message and "step 2: " in message and "step 1: " in message and str(directory) in message
    checkpoints.close()


@pytest.mark.parametrize("how", ["garbled", "state metadata deleted"])
@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_encoder_load_skips_a_damaged_newest_checkpoint_and_leaves_it(demo_workdir, tmp_path, caplog, how):
    from solarjax import ssl

    run = tmp_path / "simsiam"
    shutil.copytree(demo_workdir / "simsiam" / "checkpoints", run / "checkpoints")
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir())
    newest, older = steps[-1], steps[-2]
    intact = ssl.load(run)
    assert intact.step == newest
    _damage(run / "checkpoints" / str(newest), how)

    caplog.set_level(logging.WARNING, logger="solarjax.train.checkpoint")
    encoder = ssl.load(run)
    assert encoder.step == older
    assert any(f"checkpoints/{newest} is unreadable" in r.getMessage() for r in caplog.records)
    assert (run / "checkpoints" / str(newest)).is_dir()  # a reader changes nothing on disk
    embedding = np.asarray(encoder.embed(np.zeros((1, 128, 128), np.float32)))
    assert embedding.shape == (1, intact.dim) and np.isfinite(embedding).all()
    with pytest.raises(checkpoint_lib.CheckpointReadError, match=f"step {newest}: "):
        ssl.load(run, step=newest)  # an explicit step never falls back

    # the failed read's sibling array reads end before orbax's event loop closes: none is left to print
    # "Event loop is closed" or "exception was never retrieved" later (outside pytest, on stderr; in CI
    # they once landed inside another command's one-line error). Unraisable errors fail this test.
    gc.collect()
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"]


def test_wrong_kind_of_run_is_refused_naming_it(demo_workdir):
    from solarjax import gan, ssl

    with pytest.raises(checkpoint_lib.ArtefactKindError, match="holds a GAN run .* not a SimSiam encoder"):
        ssl.load(demo_workdir / "gan")
    with pytest.raises(checkpoint_lib.ArtefactKindError, match="holds a SimSiam encoder run .* not a GAN"):
        gan.load(demo_workdir / "simsiam")
    with pytest.raises(FileNotFoundError, match="did you mean .*simsiam"):
        ssl.load(demo_workdir)
