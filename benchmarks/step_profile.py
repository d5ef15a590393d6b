"""Where the time of one train step goes: per-XLA-op times of the JAX step, per-aten-op times of PyTorch's.

    python -m benchmarks.step_profile gan            # the paper's 'simple' GAN step, batch 32
    python -m benchmarks.step_profile gan_default    # the default config's GAN (`solarjax.configs.gan`)
    python -m benchmarks.step_profile simsiam        # SimSiam update, ResNet-18 width 64, batch 64
    python -m benchmarks.step_profile torch_gan      # the PyTorch baselines (torch.profiler)
    python -m benchmarks.step_profile torch_simsiam

The JAX sides run the benchmarks' own jitted steps (`benchmarks.gan_bench`, `benchmarks.simsiam_bench`)
under `jax.profiler`, with XLA:CPU's per-thunk trace events turned on (``--xla_cpu_enable_xprof_traceme``,
set here before JAX starts), and sum each compiled HLO instruction's events over the worker threads.
Reported per step: the step's wall time, the op time summed over threads, the time per category (the
HLO opcode, with the fusion kind: ``fusion:kCustom`` = a YNNPACK matmul/convolution fusion,
``fusion:kLoop`` = elementwise, pads, slices, transposes; ``concatenate``; ``dot``; ``convolution`` =
XLA's own convolution loop) and the most expensive instructions with their HLO line. Op times are
CPU-thread time, so their proportions stay meaningful on a loaded machine where the wall time does not.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable

TRACEME_FLAG = "--xla_cpu_enable_xprof_traceme=true"
_INSTRUCTION = re.compile(r"\s*(?:ROOT )?%?([\w.\-]+) = .*?\s([a-z][\w\-]*)\(")


def hlo_instructions(hlo_text: str) -> dict[str, tuple[str, str]]:
    """Instruction name -> (category, HLO line) of a compiled module's text (``compiled.as_text()``).

    The category is the opcode, with ``:kind`` for fusions (``fusion:kLoop``) and
    ``:target`` for custom calls.
    """
    instructions = {}
    for line in hlo_text.splitlines():
        match = _INSTRUCTION.match(line)
        if not match or line.lstrip().startswith(("HloModule", "//")):
            continue
        name, opcode = match.groups()
        detail = re.search(r"kind=(\w+)", line) if opcode == "fusion" else None
        target = re.search(r'custom_call_target="([^"]+)"', line) if opcode == "custom-call" else None
        suffix = detail.group(1) if detail else (target.group(1) if target else "")
        instructions[name] = (f"{opcode}:{suffix}" if suffix else opcode, line.strip())
    return instructions


def aggregate(events: list[tuple[str, int]], instructions: dict[str, tuple[str, str]], steps: int) -> dict:
    """Per-category and per-instruction milliseconds per step from (event name, duration ns) pairs.

    Events whose name is not an instruction of the module (Python frames, executor waits) are left out.
    Returns {'op_ms_per_step', 'by_category': {category: ms}, 'by_instruction': {name: ms}}, both
    sorted by time, largest first.
    """
    by_instruction: collections.Counter = collections.Counter()
    for name, duration_ns in events:
        if name in instructions:
            by_instruction[name] += duration_ns
    by_category: collections.Counter = collections.Counter()
    for name, duration_ns in by_instruction.items():
        by_category[instructions[name][0]] += duration_ns
    scale = 1e-6 / steps
    return {
        "op_ms_per_step": sum(by_instruction.values()) * scale,
        "by_category": {k: v * scale for k, v in by_category.most_common()},
        "by_instruction": {k: v * scale for k, v in by_instruction.most_common()},
    }


def profile_jax(run: Callable[[int], None], hlo_text: str, steps: int) -> dict:
    """`aggregate` of `steps` calls of ``run(1)``-style steps under `jax.profiler`, plus wall times.

    ``run(n)`` runs n steps and blocks; it must be warmed up. XLA's per-thunk events exist only when JAX
    started with `TRACEME_FLAG` in ``XLA_FLAGS``.
    """
    import jax

    started = time.perf_counter()
    run(steps)
    wall = (time.perf_counter() - started) / steps
    directory = tempfile.mkdtemp(prefix="step_profile_")
    jax.profiler.start_trace(directory)
    run(steps)
    jax.profiler.stop_trace()
    path = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)[0]
    data = jax.profiler.ProfileData.from_file(path)
    events = [(e.name, e.duration_ns) for plane in data.planes for line in plane.lines for e in line.events]
    return {"wall_ms_per_step": wall * 1e3, **aggregate(events, hlo_instructions(hlo_text), steps)}


def _gan_workload(arch: str, batch: int, conv_impl: str) -> tuple[Callable[[int], None], str]:
    """``run(steps)`` and the compiled HLO text of the GAN step `benchmarks.gan_bench` times."""
    import jax

    from benchmarks import gan_bench
    from solarjax.train import gan as gan_train
    from solarjax.train import sharding

    mesh = sharding.make_data_mesh()
    if arch == "default":
        from solarjax.configs import gan_synthetic

        # an instrument-noise default calibrates on the benchmark's own patches, as a run does on its data
        config = gan_train.calibrated(gan_synthetic.get_config(), gan_bench._real_batch(batch))
        programs = gan_train.programs_for(config, mesh)
    else:
        programs = gan_train.build_programs(arch, conv_impl, 100, gan_bench.ADAM, mesh)
    batch_arrays = {"image": jax.device_put(gan_bench._real_batch(batch), sharding.batch_sharded(mesh))}
    holder = {"state": programs.init(jax.random.key(0))}
    text = programs.train_step.lower(holder["state"], batch_arrays, jax.random.key(1)).compile().as_text()

    def run(steps: int) -> None:
        state = holder["state"]
        for _ in range(steps):
            state, metrics = programs.train_step(state, batch_arrays, gan_train.step_key(state))
        jax.block_until_ready(metrics)
        holder["state"] = state

    run(1)
    return run, text


def _simsiam_workload(batch: int) -> tuple[Callable[[int], None], str]:
    """``run(steps)`` and the compiled HLO text of the SimSiam update `benchmarks.simsiam_bench` times."""
    import jax
    import jax.numpy as jnp

    from benchmarks import simsiam_bench

    view1, view2 = (jnp.asarray(v) for v in simsiam_bench._views(batch))
    state, update, _ = simsiam_bench._jax_steps(batch)
    text = update.lower(state, view1, view2).compile().as_text()
    holder = {"state": state}

    def run(steps: int) -> None:
        for _ in range(steps):
            holder["state"], metrics = update(holder["state"], view1, view2)
        jax.block_until_ready(metrics["loss"])

    run(1)
    return run, text


def print_jax(result: dict, title: str, batch: int, top: int) -> None:
    wall = result["wall_ms_per_step"]
    print(
        f"{title}: {wall:.1f} ms/step wall ({batch / wall * 1e3:.1f} images/s), op time summed over threads "
        f"{result['op_ms_per_step']:.1f} ms/step, 1-minute load {os.getloadavg()[0]:.2f}"
    )
    total = result["op_ms_per_step"] or 1.0
    print("\nms/step  share  category")
    for category, ms in result["by_category"].items():
        print(f"{ms:8.1f} {100 * ms / total:5.1f}%  {category}")
    print(f"\nms/step  share  top {top} instructions")
    for name, ms in list(result["by_instruction"].items())[:top]:
        print(f"{ms:8.1f} {100 * ms / total:5.1f}%  {result['lines'][name][:160]}")


def profile_torch(name: str, steps: int, rows: int) -> None:
    """Prints torch.profiler's per-op table (self CPU time, and by input shape) of the PyTorch baseline step."""
    import torch

    if name == "torch_gan":
        from benchmarks import gan_bench

        run, batch = gan_bench.torch_runner(32), 32
        step = lambda: run(1)  # noqa: E731
    else:
        from benchmarks import simsiam_bench

        batch = 64
        view1, view2 = simsiam_bench._views(batch)
        torch_step = simsiam_bench._torch_step(batch)
        t1, t2 = (torch.from_numpy(v.transpose(0, 3, 1, 2).copy()) for v in (view1, view2))
        step = lambda: torch_step(t1, t2).item()  # noqa: E731
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - started) / steps
    print(
        f"{name}: {wall * 1e3:.1f} ms/step wall ({batch / wall:.1f} images/s), {torch.get_num_threads()} threads, "
        f"1-minute load {os.getloadavg()[0]:.2f}"
    )
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as profile:
        for _ in range(steps):
            step()
    averages = profile.key_averages(group_by_input_shape=True)
    print(
        averages.table(
            sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40, max_shapes_column_width=80
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=("gan", "gan_default", "simsiam", "torch_gan", "torch_simsiam"))
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after one warm-up step)")
    parser.add_argument("--batch", type=int, default=None, help="default: 32 for the GAN, 64 for SimSiam")
    parser.add_argument("--conv-impl", default="matmul", choices=("matmul", "xla"), help="the GAN's conv_impl")
    parser.add_argument("--top", type=int, default=30, help="instructions (or torch ops) listed")
    args = parser.parse_args(argv)
    if args.workload.startswith("torch"):
        profile_torch(args.workload, args.steps, args.top)
        return
    if "jax" in sys.modules and TRACEME_FLAG not in os.environ.get("XLA_FLAGS", ""):
        raise SystemExit("step_profile: JAX was imported before XLA_FLAGS could be set; run it as a script")
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TRACEME_FLAG}".strip()
    if args.workload == "simsiam":
        batch = args.batch or 64
        run, text = _simsiam_workload(batch)
    else:
        batch = args.batch or 32
        run, text = _gan_workload("default" if args.workload == "gan_default" else "simple", batch, args.conv_impl)
    result = profile_jax(run, text, args.steps)
    result["lines"] = {name: line for name, (_, line) in hlo_instructions(text).items()}
    print_jax(result, f"{args.workload} (batch {batch})", batch, args.top)


if __name__ == "__main__":
    main()
