"""Benchmark `simsiam.train_step`: SimSiam train steps per second, JAX against PyTorch.

Both sides run the same network (ResNet-18 with a 1-channel stem, projector 512-512-100,
predictor 100-128-100), the same batch of two 128 x 128 views and the same optimiser (SGD
momentum 0.9, weight decay 5e-4, lr 0.05 * batch / 256). On CPU each framework runs in its own
process (`benchmarks.isolated`), the order alternating over `rounds` rounds, with the load
average before and after each run; `ratio` is then a `ratio_summary` (per-round jax / torch,
median, flag 'idle' or 'loaded'). Reported:

  jax_images_per_s      `solarjax.train.simsiam.update` under jit (views given; the model and the
                        optimiser only: what PyTorch does)
  torch_images_per_s    `benchmarks.torch_simsiam_reference` (eager, train mode)
  ratio                 jax / torch (target >= 1.0)
  jax_full_step_images_per_s   `train_step`: also draws both views on device with the `paper`
                        augmentation recipe (PyTorch would do this in its data loader)

images/s = batch / median step time after a warm-up step (compilation excluded). On an
accelerator the PyTorch baseline (CPU build) is skipped and JAX is timed at batch 64 and 512.

Run: ``python -m benchmarks.simsiam_bench [--batch 64] [--steps 5] [--rounds 3]`` (prints JSON);
``--side jax|torch`` runs one side alone (what the rounds call). The harness calls `run`. Needs ``pip install torch==2.13.0`` (CPU) for the comparison; never a dependency.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import isolated
from solarjax import augment
from solarjax.models.simsiam import SimSiam
from solarjax.train import simsiam as simsiam_train

IMAGE_SIZE = 128
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4


def _views(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed batches [B, 128, 128, 1] in [-1, 1] standing in for augmented views."""
    rng = np.random.default_rng(seed)
    return tuple(np.tanh(rng.normal(size=(batch, IMAGE_SIZE, IMAGE_SIZE, 1))).astype(np.float32) for _ in range(2))


def _jax_steps(batch: int):
    """Jitted JAX update and full step with their (donated) state, ready to call."""
    model = SimSiam()
    optimizer = simsiam_train.make_optimizer(
        simsiam_train.paper_learning_rate(batch), momentum=MOMENTUM, weight_decay=WEIGHT_DECAY
    )
    state = simsiam_train.init_state(model, optimizer, jax.random.key(0), IMAGE_SIZE)
    update = jax.jit(functools.partial(simsiam_train.update, model, optimizer), donate_argnums=0)
    full = jax.jit(
        functools.partial(simsiam_train.train_step, model, optimizer, augment.RECIPES["paper"]), donate_argnums=0
    )
    return state, update, full


def _torch_step(batch: int):
    import torch

    from benchmarks import torch_simsiam_reference as reference

    torch.manual_seed(0)
    model = reference.SimSiam()
    return reference.make_train_step(model, simsiam_train.paper_learning_rate(batch), MOMENTUM, WEIGHT_DECAY)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def bench_batch(batch: int, steps: int, with_torch: bool, with_jax: bool = True) -> dict:
    """Images/s of each side at one batch size (see module docstring)."""
    view1, view2 = _views(batch)
    timers = {}
    if with_jax:
        images = {"image": jnp.asarray(view1)}
        v1, v2 = jnp.asarray(view1), jnp.asarray(view2)
        state, update, full = _jax_steps(batch)
        holder = {"state": state}

        def jax_update():
            holder["state"], metrics = update(holder["state"], v1, v2)
            jax.block_until_ready(metrics["loss"])

        def jax_full(key=jax.random.key(1)):
            holder["state"], metrics = full(holder["state"], images, key)
            jax.block_until_ready(metrics["loss"])

        timers = {"jax": jax_update, "jax_full_step": jax_full}
    if with_torch:
        import torch

        torch_step = _torch_step(batch)
        t1 = torch.from_numpy(view1.transpose(0, 3, 1, 2).copy())
        t2 = torch.from_numpy(view2.transpose(0, 3, 1, 2).copy())
        timers["torch"] = lambda: torch_step(t1, t2).item()

    for fn in timers.values():  # warm-up: compilation, allocator, oneDNN primitive caches
        fn()
    seconds = {name: [] for name in timers}
    for _ in range(steps):
        for name, fn in timers.items():
            seconds[name].append(_timed(fn))
    result = {"batch": batch, "steps": steps}
    for name, times in seconds.items():
        result[f"{name}_images_per_s"] = batch / statistics.median(times)
        result[f"{name}_step_s"] = [round(t, 4) for t in times]
    if with_torch and with_jax:
        result["ratio"] = result["jax_images_per_s"] / result["torch_images_per_s"]
    return result


def side_figures(side: str, batch: int, steps: int) -> dict:
    """One framework alone in this process: `bench_batch`'s figures for its timers only."""
    return bench_batch(batch, steps, with_torch=side == "torch", with_jax=side == "jax")


def _cpu_rounds(batch: int, steps: int, rounds: int, settle_s: float) -> dict:
    import importlib.util

    sides = ("jax", "torch") if importlib.util.find_spec("torch") else ("jax",)
    runs = isolated.run_rounds(
        "benchmarks.simsiam_bench", sides, rounds, ["--batch", str(batch), "--steps", str(steps)], settle_s=settle_s
    )
    result = {"batch": batch, "steps": steps, "rounds": rounds}
    for name in ("jax", "jax_full_step", "torch"):
        rates = [run["result"][f"{name}_images_per_s"] for run in runs if f"{name}_images_per_s" in run["result"]]
        if rates:
            result[f"{name}_images_per_s"] = statistics.median(rates)
            result[f"{name}_images_per_s_per_round"] = rates
    if "torch" in sides:
        result["ratio"] = isolated.ratio_summary(
            runs, "jax", "torch", "jax_images_per_s", os.cpu_count() or 1, denominator_metric="torch_images_per_s"
        )
    else:
        result["torch"] = "not installed (pip install torch==2.13.0, CPU build): no ratio"
    result["runs"] = runs
    return result


def run(batch_sizes: tuple[int, ...] | None = None, steps: int = 5, rounds: int = 3, settle_s: float = 90.0) -> dict:
    """The benchmark: {'device', 'results': [figures per batch size]} (see module docstring)."""
    on_cpu = jax.default_backend() == "cpu"
    batch_sizes = batch_sizes or ((64,) if on_cpu else (64, 512))
    device = jax.devices()[0]
    report = {
        "device": f"{device.platform}: {device.device_kind}, {jax.device_count()} device(s), "
        f"{os.cpu_count()} CPU threads",
        "model": "SimSiam ResNet-18 (1-channel stem) + projector 512-512-100 + predictor 100-128-100, 128x128",
        "optimizer": f"SGD momentum {MOMENTUM}, weight decay {WEIGHT_DECAY}, lr 0.05 * batch / 256",
        "target_ratio": 1.0,
    }
    if on_cpu:
        import torch

        report["torch"] = f"{torch.__version__}, {torch.get_num_threads()} threads"
    if on_cpu:
        report["results"] = [_cpu_rounds(b, steps, rounds, settle_s) for b in batch_sizes]
    else:
        report["results"] = [bench_batch(b, steps, with_torch=False) for b in batch_sizes]
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--settle", type=float, default=90.0, help="seconds to wait at most, before each run, for the load to fall"
    )
    parser.add_argument("--side", choices=("jax", "torch"), help="run this side alone, print its figures")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side_figures(args.side, (args.batch or [64])[0], args.steps)))
    else:
        print(
            json.dumps(run(tuple(args.batch) if args.batch else None, args.steps, args.rounds, args.settle), indent=1)
        )
