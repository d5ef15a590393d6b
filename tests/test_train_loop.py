"""`solarjax.train.loop.run` with a model of its own: a least-squares fit of 4x4 images, plugged in through a
`loop.Task` as any later model would be (the GAN and SimSiam tests run the same loop with their models)."""

import json

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from solarjax.data import pipeline
from solarjax.train import checkpoint as checkpoint_lib
from solarjax.train import loop, monitor

SHAPE = (4, 4, 1)
TRUE_W = np.linspace(-1.0, 1.0, 16, dtype=np.float32)


@flax.struct.dataclass
class FitState:
    step: jax.Array
    rng: jax.Array
    w: jax.Array


class Batches:
    """Batch k: rows (k * 4 + i) mod 32 of fixed random images, with grain's get_state/set_state protocol."""

    def __init__(self, fail_at=None):
        self.images = np.random.default_rng(0).normal(size=(32, *SHAPE)).astype(np.float32)
        self.position, self.fail_at = 0, fail_at

    def __iter__(self):
        return self

    def __next__(self):
        if self.position == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        rows = (self.position * 4 + np.arange(4)) % len(self.images)
        self.position += 1
        return {"image": self.images[rows]}

    def get_state(self) -> bytes:
        return json.dumps({"position": self.position}).encode()

    def set_state(self, state: bytes) -> None:
        self.position = json.loads(state)["position"]

    def start_prefetch(self) -> None:
        pass


def fit_step(state, batch, key):
    """One SGD step on 0.5 * mean((x . w - x . TRUE_W + noise(key))^2); metrics: the loss."""
    x = batch["image"].reshape(batch["image"].shape[0], -1)
    target = x @ TRUE_W + 0.01 * jax.random.normal(key, (x.shape[0],))

    def loss_fn(w):
        return 0.5 * jnp.mean((x @ w - target) ** 2)

    loss, grad = jax.value_and_grad(loss_fn)(state.w)
    return state.replace(step=state.step + 1, w=state.w - 0.1 * grad), {"loss": loss}


def make_task(workdir, samples, fingerprint="fit-v1"):
    def build(mesh):
        init = jax.jit(lambda: FitState(jnp.zeros((), jnp.int32), jax.random.key(7), jnp.zeros(16)))

        def evaluate(state):
            return {"error": float(jnp.linalg.norm(state.w - TRUE_W))}

        def sample(state, step):
            samples.append(step)
            (workdir / f"sample_{step}.txt").write_text(str(np.asarray(state.w).tolist()))

        return loop.Programs(
            init=init, train_step=loop.jit_train_step(fit_step, mesh), evaluate=evaluate, sample=sample
        )

    return loop.Task(
        name="fit",
        fingerprint=fingerprint,
        run_config={"what": "least squares"},
        image_shape=SHAPE,
        build=build,
        best_metric="error",
        best_mode="min",
        log_prefix="eval/",
        progress_fields={"loss": ".3f"},
    )


def config(total_steps=8):
    return ml_collections.ConfigDict(
        {
            "batch_size": 4,
            "total_steps": total_steps,
            "log_every": 2,
            "checkpoint_every": 4,
            "keep_checkpoints": 1,
            "eval_every": 3,
            "sample_every": 5,
        }
    )


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("straight")
    samples = []
    state = loop.run(make_task(workdir, samples), config(), workdir, Batches)
    return workdir, state, samples


def test_a_plugged_in_model_trains_logs_samples_evaluates_and_ranks(straight_run):
    workdir, state, samples = straight_run
    assert int(state.step) == 8
    assert float(jnp.linalg.norm(state.w - TRUE_W)) < float(jnp.linalg.norm(TRUE_W))  # it learnt
    records = monitor.read_metrics(workdir / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6, 8]  # log_every 2; step 1 starts the clock
    assert all(r["images_per_second"] > 0 for r in records if "loss" in r)
    evaluations = {r["step"]: r["eval/error"] for r in records if "eval/error" in r}
    assert sorted(evaluations) == [3, 6, 8]  # eval_every 3, and the last step
    assert samples == [5, 8]  # sample_every 5, and the last step
    assert json.loads((workdir / "config.json").read_text()) == {"what": "least squares"}
    checkpoints = checkpoint_lib.RunCheckpoints(
        workdir / "checkpoints", fingerprint=None, best_metric="error", best_mode="min"
    )
    assert checkpoints.best_step() == min(evaluations, key=evaluations.get)
    assert checkpoints.latest_step() == 8 and checkpoints.run_info(8)["config"] == {"what": "least squares"}
    assert checkpoints.all_steps() == sorted({8, checkpoints.best_step()})  # keep_checkpoints 1, plus the best
    checkpoints.close()


def test_a_killed_run_resumes_to_the_same_state_and_writes_no_step_twice(straight_run, tmp_path):
    _, straight, _ = straight_run
    with pytest.raises(KeyboardInterrupt):
        loop.run(make_task(tmp_path, []), config(), tmp_path, lambda: Batches(fail_at=6))  # dies in step 7
    resumed = loop.run(make_task(tmp_path, []), config(), tmp_path, Batches)
    np.testing.assert_array_equal(np.asarray(resumed.w), np.asarray(straight.w))  # same batches and keys
    steps = [r["step"] for r in monitor.read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 8


def test_batches_become_global_through_the_pipeline(monkeypatch, tmp_path):
    calls = []
    real = pipeline.to_global_batch
    monkeypatch.setattr(
        pipeline, "to_global_batch", lambda batch, mesh: calls.append(batch["image"].shape) or real(batch, mesh)
    )
    loop.run(make_task(tmp_path, []), config(total_steps=3), tmp_path, Batches)
    assert calls == [(4, *SHAPE)] * 3


def test_another_models_checkpoints_and_bad_batches_are_refused(straight_run, tmp_path):
    workdir, _, _ = straight_run
    before = (workdir / "config.json").read_text()
    with pytest.raises(checkpoint_lib.FingerprintMismatchError, match="fit-v2"):
        loop.run(make_task(workdir, [], fingerprint="fit-v2"), config(), workdir, Batches)
    assert (workdir / "config.json").read_text() == before  # the refused run wrote nothing
    wrong = lambda: iter([{"image": np.zeros((4, 5, 5, 1), np.float32)}])  # noqa: E731
    with pytest.raises(ValueError, match=r"shape \(4, 5, 5, 1\), expected \(4, 4, 4, 1\)"):
        loop.run(make_task(tmp_path, []), config(), tmp_path, wrong)


def test_the_old_step_name_is_read_and_a_clash_refused(tmp_path):
    old = ml_collections.ConfigDict({**config(total_steps=2).to_dict(), "num_steps": 2})
    del old["total_steps"]
    state = loop.run(make_task(tmp_path / "old", []), old, tmp_path / "old", Batches)
    assert int(state.step) == 2
    clash = config(total_steps=2)
    clash.num_steps = 5
    from solarjax.configs import ConfigError

    with pytest.raises(ConfigError, match="num_steps is the old name of total_steps"):
        loop.run(make_task(tmp_path / "clash", []), clash, tmp_path / "clash", Batches)
