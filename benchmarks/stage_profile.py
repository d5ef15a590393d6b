"""Where a demo stage's time goes: its wall and CPU time, and every XLA compilation it makes.

    python -m benchmarks.stage_profile DEMO_OUT directions --out /tmp/profile   # the quick sizes (default)
    python -m benchmarks.stage_profile DEMO_OUT gan --size full --out /tmp/profile

Runs one stage of `solarjax.demo` on a copy of a finished demo's outputs (the stages it depends on are copied to
``--out``, the dataset linked), under `cProfile` and with JAX's compile log. Prints the wall time, the process's
CPU time (user + system, far less sensitive to other load than the wall time), the load average, the number of
XLA compilations and their seconds per jitted function, and the slowest Python calls by cumulative time.
Compilations are the figure that matters at the quick sizes, where a stage is mostly compiling.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import logging
import os
import pathlib
import pstats
import resource
import shutil
import time

STAGES = ("gan", "directions", "simsiam", "retrieval")
COPIED = ("gan", "directions", "simsiam", "index", "dataset")


class _CompileLog(logging.Handler):
    """Collects (function, seconds) of JAX's 'Finished XLA compilation of jit(f) in s sec' records."""

    def __init__(self):
        super().__init__()
        self.compiles: list[tuple[str, float]] = []

    def emit(self, record):
        message = record.getMessage()
        if message.startswith("Finished XLA compilation of "):
            name, _, rest = message[len("Finished XLA compilation of ") :].rpartition(" in ")
            self.compiles.append((name, float(rest.split()[0])))


def _run_stage(demo, stage: str, out: pathlib.Path, size) -> None:
    if stage == "gan":
        demo._stage_gan(out / "gan", demo._gan_config(out / "tfds", size), size)
    elif stage == "directions":
        demo._stage_directions(out / "directions", out / "gan", size)
    elif stage == "simsiam":
        demo._stage_simsiam(out / "simsiam", demo._simsiam_config(out / "tfds", size), size)
    else:
        demo._stage_retrieval(out / "retrieval", out, out / "tfds", size)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=pathlib.Path, help="a finished demo's output folder (its stages are copied)")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--out", type=pathlib.Path, required=True, help="scratch folder, replaced")
    parser.add_argument("--size", choices=("quick", "full"), default="quick")
    parser.add_argument("--top", type=int, default=25, help="Python calls listed (default 25)")
    args = parser.parse_args(argv)

    import jax

    from solarjax import demo

    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    for name in COPIED:
        if name != args.stage and (args.demo / name).exists():
            shutil.copytree(args.demo / name, args.out / name)
    (args.out / "tfds").symlink_to((args.demo / "tfds").resolve())
    (args.out / args.stage).mkdir()
    log = _CompileLog()
    dispatch = logging.getLogger("jax._src.dispatch")
    dispatch.addHandler(log)
    dispatch.propagate = False  # keep JAX's compile messages off the terminal; the handler has them
    jax.config.update("jax_log_compiles", True)

    size = demo.QUICK if args.size == "quick" else demo.FULL
    start, profile = time.perf_counter(), cProfile.Profile()
    profile.enable()
    _run_stage(demo, args.stage, args.out, size)
    profile.disable()
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds, counts = collections.defaultdict(float), collections.Counter()
    for name, sec in log.compiles:
        seconds[name] += sec
        counts[name] += 1
    report = {
        "stage": args.stage,
        "size": args.size,
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "load_average_after": list(os.getloadavg()),
        "compilations": len(log.compiles),
        "compile_s": round(sum(seconds.values()), 1),
    }
    print(" ".join(f"{k}={v}" for k, v in report.items()))
    for name in sorted(seconds, key=seconds.get, reverse=True)[:15]:
        print(f"{seconds[name]:8.1f} s {counts[name]:3d}x {name}")
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(args.top)
    print(text.getvalue())
    return report


if __name__ == "__main__":
    main()
