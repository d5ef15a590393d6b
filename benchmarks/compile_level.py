"""XLA:CPU's LLVM optimisation level: compile and run times of the project's programs at O3 (XLA's default), O2 (what
the `solarjax` program and the tests use, `solarjax.cli.program.CPU_COMPILE_LEVEL_FLAG`) and O1.

Each level runs in its own process (`benchmarks.isolated.run_rounds`, order alternated over rounds, load recorded),
with ``--xla_force_host_platform_device_count=1 --xla_backend_optimization_level=L`` as its whole XLA_FLAGS. A side
times, in one process: the default GAN's and the paper's 'simple' GAN's train step at batch 32
(`benchmarks.gan_bench.jax_runner`: first call = compilation, initialisation and, for the default, the noise
calibration; then seconds per step), `physics.quantities` of 4,000 patches on the device and the SimSiam update at
batch 32 (first call, then the median of repeated calls). Ratios are O2 (or O1) over O3 of each figure:

    python -m benchmarks.compile_level --rounds 2 --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

SIDES = ("O3", "O2", "O1")
FIGURES = (
    "gan_default_first_s",
    "gan_default_step_s",
    "gan_simple_first_s",
    "gan_simple_step_s",
    "physics_first_s",
    "physics_4000_s",
    "simsiam_first_s",
    "simsiam_step_s",
)


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_side(side: str) -> dict:
    """The `FIGURES` (seconds) at level ``side`` ('O3', 'O2', 'O1'); sets XLA_FLAGS before JAX starts."""
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count=1 --xla_backend_optimization_level={side[1]}"
    import jax
    import numpy as np

    from benchmarks import gan_bench, simsiam_bench
    from benchmarks.reference_physics import random_bipoles
    from solarjax import physics

    figures = {}
    for arch in ("default", "simple"):
        started = time.perf_counter()
        run = gan_bench.jax_runner("matmul", 32, arch)
        figures[f"gan_{arch}_first_s"] = time.perf_counter() - started
        figures[f"gan_{arch}_step_s"] = _median_seconds(lambda run=run: run(3), 3) / 3
    batch = jax.device_put(random_bipoles(np.random.default_rng(0), 4000))
    figures["physics_first_s"] = _median_seconds(lambda: jax.block_until_ready(physics.quantities(batch)), 1)
    figures["physics_4000_s"] = _median_seconds(lambda: jax.block_until_ready(physics.quantities(batch)), 5)
    state, update, _ = simsiam_bench._jax_steps(32)
    views = simsiam_bench._views(32)
    holder = {"state": state}

    def step() -> None:
        holder["state"], metrics = update(holder["state"], *views)
        jax.block_until_ready(metrics)

    figures["simsiam_first_s"] = _median_seconds(step, 1)
    figures["simsiam_step_s"] = _median_seconds(step, 3)
    return figures


def run(rounds: int = 2, settle_s: float = 90.0) -> dict:
    """Every level `rounds` times, each in its own process; {'runs': [...], 'ratios': {'O2/O3' | 'O1/O3': {figure:
    `benchmarks.isolated.ratio_summary`}}} (a ratio below 1 is faster than O3)."""
    from benchmarks import isolated

    cores = os.cpu_count() or 1
    runs = isolated.run_rounds("benchmarks.compile_level", SIDES, rounds, settle_s=settle_s)
    ratios = {
        f"{side}/O3": {figure: isolated.ratio_summary(runs, side, "O3", figure, cores) for figure in FIGURES}
        for side in SIDES[1:]
    }
    return {"runs": runs, "ratios": ratios}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=SIDES, help="run one level in this process (used by the rounds)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle-s", type=float, default=90.0, help="wait up to this long for an idle machine")
    parser.add_argument("--out", help="write every run and the ratios as JSON here")
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(run_side(args.side)))
        return 0
    from benchmarks import isolated

    result = run(args.rounds, args.settle_s)
    cores = os.cpu_count() or 1
    for side, by_figure in result["ratios"].items():
        for figure, summary in by_figure.items():
            print(isolated.readme_row(f"{figure} {side}", summary, cores))
    if args.out:
        with open(args.out, "w") as out:
            json.dump(result, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
