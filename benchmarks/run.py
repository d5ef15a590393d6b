"""Run named benchmarks and write their figures, with a description of the machine, as JSON.

Comparisons between frameworks run each side in its own process, alternated over rounds
(`benchmarks.isolated`); the report's 'ratios' lists every such ratio with its flag, 'idle' or
'loaded' (load average or other processes above 0.5 per core): only idle ones are idle figures.

    python -m benchmarks.run                       # all of them, JSON on stdout
    python -m benchmarks.run physics.quantities --out bench.json
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import sys

import jax
import numpy as np

BENCHMARKS = {
    "physics.quantities": "benchmarks.physics_bench:quantities_throughput",
    "gan.train_step": "benchmarks.gan_bench:run",
    "simsiam.train_step": "benchmarks.simsiam_bench:run",
    "retrieval.scann": "benchmarks.retrieval_bench:run",
    "steering.inversion": "benchmarks.inversion_bench:run",
    "app.load": "benchmarks.app_load_bench:run",
    "xla.compile_level": "benchmarks.compile_level:run",
}
"""name -> 'module:function'; a benchmark's module (and PyTorch, for the reference baselines) is
imported only when it runs. The PyTorch baselines need `pip install torch==2.13.0` (CPU build)."""


def _benchmark(name: str):
    module, _, function = BENCHMARKS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the figures were measured on."""
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": len(os.sched_getaffinity(0)),
        "load_average_before": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(device) for device in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def ratio_flags(results: dict, prefix: str = "") -> dict:
    """Every `benchmarks.isolated.ratio_summary` inside `results`, by dotted path:
    {path: {'median', 'flag'}}; a 'loaded' flag means the ratio is not an idle figure."""
    found = {}
    for key, value in results.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and {"per_round", "median", "flag"} <= set(value):
            found[path] = {"median": value["median"], "flag": value["flag"]}
        elif isinstance(value, dict):
            found.update(ratio_flags(value, path + "."))
    return found


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--out", help="write the JSON report to this file (default: stdout)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}")
    report = {"machine": machine(), "results": {}}
    for name in args.names or BENCHMARKS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report["results"][name] = _benchmark(name)()
    report["machine"]["load_average_after"] = list(os.getloadavg())
    report["ratios"] = ratio_flags(report["results"])
    text = json.dumps(report, indent=2)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return report


if __name__ == "__main__":
    main()
