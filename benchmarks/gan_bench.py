"""Benchmark `gan.train_step`: train images/s of the paper's 'simple' GAN, JAX against PyTorch,
and of the default generator.

Both frameworks run the same generator and discriminator, the same batch (32 real patches
128 x 128), the same losses and the same optimiser (Adam 5e-4): `solarjax.train.gan`'s jitted
step and `benchmarks.torch_gan_reference` (eager PyTorch, as the authors train; the two compute
the same numbers, see tests/test_gan_models.py). On CPU each side runs in its own process
(`benchmarks.isolated`: its own thread pools, nothing else of ours running), the order
alternating over `rounds` rounds, with the load average before and after each run and the
cores other processes kept busy. Sides:

  jax          the paper's 'simple' pair, conv_impl='matmul' (the CPU default)
  torch        the same in PyTorch (its default intra-op threads)
  jax_default  the default config's models, matched statistics and Adam betas (`solarjax.configs.gan_synthetic`,
               its instrument noise calibrated on the benchmark's batch), no PyTorch counterpart
  jax_plain    the same config with `PLAIN_MODEL` ('resize_conv_small' with nothing added, the default before
               issue 23): ``default_over_plain`` is what the issue-23 default costs per step
  jax_xla      (with --with-xla) 'simple' with conv_impl='xla' (lax.conv_transpose / conv)

Reported: each side's images/s per round (batch * steps / seconds, median over `blocks` timed
blocks after a warm-up step, compilation excluded) and `ratio` = jax / torch per round, their
median and the flag 'idle' or 'loaded' (`benchmarks.isolated.ratio_summary`): a ratio measured
on a loaded machine is reported, never as an idle figure. On an accelerator the PyTorch
baseline (CPU build) is skipped and JAX is timed in-process at batch 32 and at the largest
power-of-two batch that fits, with the device's peak memory.

Run: ``python -m benchmarks.gan_bench [--batch 32] [--steps 4] [--blocks 3] [--rounds 3]``
(prints JSON); ``--side NAME`` runs one side alone (what the rounds call). The harness calls
`run`. Needs ``pip install torch==2.13.0`` (CPU) for the comparison; never a dependency.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from collections.abc import Callable

import jax
import numpy as np

from benchmarks import isolated
from solarjax.train import gan as gan_train
from solarjax.train import sharding

ADAM = (5e-4, 0.9, 0.999)


def _real_batch(batch: int, seed: int = 0) -> np.ndarray:
    """A fixed batch [B, 128, 128, 1] in [-1, 1] standing in for real patches."""
    return np.tanh(np.random.default_rng(seed).normal(size=(batch, 128, 128, 1))).astype(np.float32)


def jax_runner(conv_impl: str, batch: int, arch: str = "simple") -> Callable[[int], None]:
    """``run(steps)``: that many jitted train steps on a fixed batch (warmed up, state donated).

    arch 'default' means the default config's programs (`solarjax.configs.gan_synthetic`), 'plain' the same
    config with `solarjax.configs.gan.PLAIN_MODEL` (the default before issue 23).
    """
    mesh = sharding.make_data_mesh()
    if arch in ("default", "plain"):
        import ml_collections

        from solarjax.configs import gan as gan_configs

        config = gan_configs.get_config("synthetic")
        if arch == "plain":
            config.model = ml_collections.ConfigDict(gan_configs.PLAIN_MODEL)
        # an instrument-noise default calibrates on the benchmark's own patches, as a run does on its data
        programs = gan_train.programs_for(gan_train.calibrated(config, _real_batch(batch)), mesh)
    else:
        programs = gan_train.build_programs(arch, conv_impl, 100, ADAM, mesh)
    images = jax.device_put(_real_batch(batch), sharding.batch_sharded(mesh))
    holder = {"state": programs.init(jax.random.key(0))}

    def run(steps: int) -> None:
        state = holder["state"]
        for _ in range(steps):
            state, metrics = programs.train_step(state, {"image": images}, gan_train.step_key(state))
        jax.block_until_ready(metrics)
        holder["state"] = state

    run(1)
    return run


def torch_runner(batch: int) -> Callable[[int], None]:
    """``run(steps)``: that many PyTorch train steps on a fixed batch (warmed up)."""
    import torch

    from benchmarks import torch_gan_reference

    trainer = torch_gan_reference.TorchGanTrainer(ADAM[0])
    real = torch.from_numpy(_real_batch(batch).transpose(0, 3, 1, 2).copy())

    def run(steps: int) -> None:
        for _ in range(steps):
            trainer.step(real)

    run(1)
    return run


def images_per_second(run: Callable[[int], None], batch: int, steps: int) -> float:
    start = time.perf_counter()
    run(steps)
    return batch * steps / (time.perf_counter() - start)


SIDES = ("jax", "torch", "jax_default", "jax_plain")


def side_figures(side: str, batch: int, steps: int, blocks: int) -> dict:
    """One side alone in this process: images/s of each timed block and their median."""
    if side == "torch":
        import torch

        runner, threads = torch_runner(batch), torch.get_num_threads()
    else:
        conv_impl = "xla" if side == "jax_xla" else "matmul"
        arch = {"jax_default": "default", "jax_plain": "plain"}.get(side, "simple")
        runner, threads = jax_runner(conv_impl, batch, arch), None
    rates = [images_per_second(runner, batch, steps) for _ in range(blocks)]
    return {
        "side": side,
        "images_per_s": statistics.median(rates),
        "blocks": [round(r, 2) for r in rates],
        "threads": threads,
    }


def _cpu_comparison(batch: int, steps: int, blocks: int, rounds: int, sides: tuple[str, ...], settle_s: float) -> dict:
    runs = isolated.run_rounds(
        "benchmarks.gan_bench",
        sides,
        rounds,
        ["--batch", str(batch), "--steps", str(steps), "--blocks", str(blocks)],
        settle_s=settle_s,
    )
    cores = os.cpu_count() or 1
    per_side = {side: [run["result"]["images_per_s"] for run in runs if run["side"] == side] for side in sides}
    result = {f"{side}_images_per_s": statistics.median(rates) for side, rates in per_side.items()}
    result["images_per_s_per_round"] = per_side
    if "torch" in sides:
        result["ratio"] = isolated.ratio_summary(runs, "jax", "torch", "images_per_s", cores)
    if "jax_xla" in sides:
        result["jax_xla_ratio"] = isolated.ratio_summary(runs, "jax_xla", "torch", "images_per_s", cores)
    result["default_over_simple"] = isolated.ratio_summary(runs, "jax_default", "jax", "images_per_s", cores)
    if "jax_plain" in sides:
        result["default_over_plain"] = isolated.ratio_summary(runs, "jax_default", "jax_plain", "images_per_s", cores)
    result["runs"] = runs
    return result


def _accelerator_figures(steps: int) -> dict:
    """Images/s and peak memory at batch 32 and at the largest power-of-two batch that fits."""
    device = jax.devices()[0]
    figures = {}
    batch, largest = 32, None
    while batch <= 65536:
        try:
            rate = images_per_second(jax_runner("xla", batch), batch, steps)
        except jax.errors.JaxRuntimeError as error:
            if "RESOURCE_EXHAUSTED" not in str(error):
                raise
            break
        stats = device.memory_stats() or {}
        figures[str(batch)] = {"images_per_s": rate, "peak_bytes_in_use": stats.get("peak_bytes_in_use")}
        largest = batch
        batch *= 2
    return {"by_batch": figures, "largest_batch": largest}


def run(
    batch: int = 32, steps: int = 4, blocks: int = 3, rounds: int = 3, with_xla: bool = False, settle_s: float = 90.0
) -> dict:
    """The figures described in the module docstring (a JSON-serialisable dict)."""
    result = {
        "batch": batch,
        "steps_per_block": steps,
        "blocks": blocks,
        "rounds": rounds,
        "backend": jax.default_backend(),
        "devices": jax.device_count(),
        "load_average_before": list(os.getloadavg()),
    }
    if jax.default_backend() == "cpu":
        sides = SIDES + (("jax_xla",) if with_xla else ())
        if importlib.util.find_spec("torch") is None:  # no baseline: JAX sides only, said so
            sides = tuple(side for side in sides if side != "torch")
            result["torch"] = "not installed (pip install torch==2.13.0, CPU build): no ratio"
        result.update(_cpu_comparison(batch, steps, blocks, rounds, sides, settle_s))
    else:
        result.update(_accelerator_figures(steps))
    result["load_average_after"] = list(os.getloadavg())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=3, help="timed blocks per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of all sides")
    parser.add_argument("--with-xla", action="store_true", help="also time conv_impl='xla'")
    parser.add_argument(
        "--settle", type=float, default=90.0, help="seconds to wait at most, before each run, for the load to fall"
    )
    parser.add_argument(
        "--side", choices=SIDES + ("jax_xla",), help="run this side alone in this process and print its figures"
    )
    args = parser.parse_args()
    if args.side:
        print(json.dumps(side_figures(args.side, args.batch, args.steps, args.blocks)))
        return
    print(json.dumps(run(args.batch, args.steps, args.blocks, args.rounds, args.with_xla, args.settle), indent=2))


if __name__ == "__main__":
    main()
