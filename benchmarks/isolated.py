"""Benchmark sides in their own processes, alternated over rounds, with the machine's load.

A comparison between two frameworks (JAX against PyTorch, JAX against the NumPy reference) is
only fair when each runs alone with its own thread pools, and only an *idle* figure when no other
job competes for the cores. `run_rounds` runs every side as ``python -m MODULE --side NAME`` (the
side prints one JSON object on its last stdout line), in an order that alternates from round to
round (A B, then B A, ...), and records around each run:

  load_before / load_after   the kernel's 1-, 5- and 15-minute load averages;
  others_busy_cores          the cores that *other* processes kept busy during the run: machine
                             busy time from /proc/stat minus the side's own CPU time, over the
                             wall time (the load average cannot tell the two apart).

Before each run it waits (up to `settle_s`) for the 1-minute load average to fall to the idle
limit, since the previous side's own load lingers in it. `ratio_summary` then gives the per-round
ratios of two sides and their median, flagged ``'idle'`` only when every run of both sides
started at a 1-minute load average <= LOADED_PER_CORE per core and other processes kept at most
that many cores busy during it; otherwise ``'loaded'``. `readme_row` writes a loaded figure only
with its label: no loaded ratio is ever presented as an idle one.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

LOADED_PER_CORE = 0.5  # load (1-minute average, or other processes' busy cores) per core


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat; (0, 0) if absent."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (not guest: in user)
    return total - idle, total


def others_busy_cores(
    busy_jiffies: int, total_jiffies: int, own_cpu_seconds: float, wall_seconds: float, cores: int
) -> float:
    """Cores kept busy by other processes during a run: machine busy time less the run's own.

    Args:
      busy_jiffies, total_jiffies: increments of `cpu_jiffies` over the run (all cores).
      own_cpu_seconds: user + system CPU seconds of the run's process (and its children).
      wall_seconds: the run's wall time.
      cores: cores of the machine.
    """
    if total_jiffies <= 0 or wall_seconds <= 0:
        return float("nan")
    machine_busy_seconds = busy_jiffies / total_jiffies * cores * wall_seconds
    return max(0.0, machine_busy_seconds - own_cpu_seconds) / wall_seconds


def is_loaded(load_1min: float, others_cores: float, cores: int, per_core: float = LOADED_PER_CORE) -> bool:
    """True when the 1-minute load before a run, or other processes' busy cores during it,
    exceed `per_core` per core (a NaN measurement counts as loaded: unknown is not idle)."""
    limit = per_core * cores
    return not (load_1min <= limit and others_cores <= limit)


def run_flag(run: dict, cores: int, per_core: float = LOADED_PER_CORE) -> str:
    """'idle' or 'loaded' for one record of `run_rounds`."""
    loaded = is_loaded(run["load_before"][0], run["others_busy_cores"], cores, per_core)
    return "loaded" if loaded else "idle"


def ratio_summary(
    runs: Sequence[dict],
    numerator: str,
    denominator: str,
    metric: str,
    cores: int,
    per_core: float = LOADED_PER_CORE,
    denominator_metric: str | None = None,
) -> dict:
    """Ratio of `metric` between two sides, round by round, with the load flag.

    Args:
      runs: records of `run_rounds` ({'round', 'side', 'result', 'load_before', ...}).
      numerator, denominator: side names (the same name compares two metrics of one side);
      metric: key of each side's result (e.g. images_per_s); denominator_metric: the
        denominator's key when it differs.
      cores: cores of the machine; per_core: the idle limit.

    Returns:
      {'per_round': [ratio per round that has both sides], 'median': median ratio or None,
       'flag': 'idle' | 'loaded', 'loaded_runs': how many of the runs used were loaded,
       'max_load_1min': the highest 1-minute load before a run used,
       'max_others_busy_cores': the highest other processes' busy cores during a run used}.
    """
    by_round: dict[int, dict[str, dict]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["side"]] = run
    ratios, used = [], []
    for round_index in sorted(by_round):
        sides = by_round[round_index]
        if numerator in sides and denominator in sides:
            top = sides[numerator]["result"].get(metric)
            bottom = sides[denominator]["result"].get(denominator_metric or metric)
            if top is not None and bottom:
                ratios.append(top / bottom)
                used += [sides[numerator]] + ([sides[denominator]] if denominator != numerator else [])
    loaded_runs = sum(run_flag(run, cores, per_core) == "loaded" for run in used)
    return {
        "per_round": ratios,
        "median": statistics.median(ratios) if ratios else None,
        "flag": "loaded" if loaded_runs or not ratios else "idle",
        "loaded_runs": loaded_runs,
        "max_load_1min": max((run["load_before"][0] for run in used), default=None),
        "max_others_busy_cores": max((run["others_busy_cores"] for run in used), default=None),
    }


def readme_row(label: str, summary: dict, cores: int) -> str:
    """One Markdown table row for benchmarks/README.md; a loaded ratio is labelled as such.

    An idle ratio reads ``| label | 1.23x | idle (load <= 1.0) |``; a loaded one
    ``| label | (1.23x) | LOADED: load 6.1, other processes 1.8 cores; not an idle figure |``.
    """
    if summary["median"] is None:
        return f"| {label} | - | no complete round |"
    ratio = f"{summary['median']:.2f}x"
    if summary["flag"] == "idle":
        return f"| {label} | {ratio} | idle (load <= {LOADED_PER_CORE * cores:.1f}) |"
    return (
        f"| {label} | ({ratio}) | LOADED: load {summary['max_load_1min']:.1f}, other processes "
        f"{summary['max_others_busy_cores']:.1f} cores; not an idle figure |"
    )


def wait_for_idle(
    cores: int, settle_s: float, per_core: float = LOADED_PER_CORE, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Wait up to `settle_s` seconds for the 1-minute load to reach the idle limit; returns the
    seconds waited."""
    waited = 0.0
    while os.getloadavg()[0] > per_core * cores and waited < settle_s:
        sleep(5.0)
        waited += 5.0
    return waited


def run_side(module: str, side: str, args: Sequence[str] = (), timeout_s: float = 3600) -> dict:
    """One side in its own process: ``python -m module --side side *args``; the record of
    `run_rounds` without 'round' (result: the JSON on the side's last stdout line)."""
    cores = os.cpu_count() or 1
    command = [sys.executable, "-m", module, "--side", side, *args]
    load_before = list(os.getloadavg())
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, total_before = cpu_jiffies()
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    wall = time.perf_counter() - started
    busy_after, total_after = cpu_jiffies()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({completed.returncode}): {completed.stderr.strip().splitlines()[-1:]}"
        )
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    return {
        "side": side,
        "result": json.loads(lines[-1]),
        "load_before": load_before,
        "load_after": list(os.getloadavg()),
        "others_busy_cores": others_busy_cores(
            busy_after - busy_before, total_after - total_before, own_cpu, wall, cores
        ),
        "own_cpu_seconds": own_cpu,
        "wall_seconds": wall,
    }


def side_order(sides: Sequence[str], round_index: int) -> list[str]:
    """The sides in the order of one round: as given in even rounds, reversed in odd ones."""
    return list(sides) if round_index % 2 == 0 else list(reversed(sides))


def run_rounds(
    module: str, sides: Sequence[str], rounds: int = 3, args: Sequence[str] = (), settle_s: float = 90.0
) -> list[dict]:
    """Every side of `module` once per round, each in its own process, alternating the order.

    Returns one record per run: {'round', 'side', 'result', 'load_before', 'load_after',
    'others_busy_cores', 'own_cpu_seconds', 'wall_seconds', 'settle_seconds'}.
    """
    cores = os.cpu_count() or 1
    runs = []
    for round_index in range(rounds):
        for side in side_order(sides, round_index):
            waited = wait_for_idle(cores, settle_s)
            print(
                f"  round {round_index + 1}/{rounds}: {module} --side {side} (load {os.getloadavg()[0]:.2f})",
                file=sys.stderr,
                flush=True,
            )
            record = run_side(module, side, args)
            runs.append({"round": round_index, "settle_seconds": waited, **record})
    return runs
