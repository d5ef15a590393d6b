"""sharp_patches/fits build speed: plain single-process build against Beam DirectRunner builds with 1, 2, 4 workers.

Every side builds the same manual dir (default: the real frames of ../shared/data/sharp_cea) into a
fresh temporary data dir, in its own process (`benchmarks.isolated.run_rounds`, order alternated
over rounds, load recorded). A side's figure is Br patches written per second of the whole build
(planning, reading, preprocessing, physics, writing; for Beam also the pipeline and its worker
processes starting), not counting the interpreter's imports. Needs apache-beam (`make beam-venv`):

    .venv-beam/bin/python -m benchmarks.beam_build_bench --rounds 3 --out benchmarks/results/beam_build.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

SIDES = ("plain", "beam1", "beam2", "beam4")
DEFAULT_MANUAL_DIR = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sharp_cea"


def run_side(side: str, manual_dir: pathlib.Path) -> dict:
    """Builds sharp_patches/fits from ``manual_dir`` as ``side``; returns {patches, seconds, patches_per_s}."""
    import data_builders  # noqa: F401
    from data_builders.common import beam_pipeline_options
    from data_builders.sharp_patches import build

    beam = {}
    if side != "plain":
        workers = int(side.removeprefix("beam"))
        beam = dict(beam_runner="DirectRunner", beam_options=beam_pipeline_options("DirectRunner", workers))
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.perf_counter()
        info = build("fits", data_dir, manual_dir=manual_dir, **beam)
        seconds = time.perf_counter() - started
    patches = sum(split.num_examples for split in info.splits.values())
    return {"patches": patches, "seconds": seconds, "patches_per_s": patches / seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=SIDES, help="run one side in this process (used by the rounds)")
    parser.add_argument("--manual-dir", default=str(DEFAULT_MANUAL_DIR), help="SHARP CEA files to build")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle-s", type=float, default=90.0, help="wait up to this long for an idle machine")
    parser.add_argument("--out", help="write every run and the ratios as JSON here")
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(run_side(args.side, pathlib.Path(args.manual_dir))))
        return 0
    from benchmarks import isolated

    cores = os.cpu_count() or 1
    runs = isolated.run_rounds(
        "benchmarks.beam_build_bench",
        SIDES,
        args.rounds,
        ["--manual-dir", args.manual_dir],
        settle_s=args.settle_s,
    )
    summary = {}
    for side in SIDES:
        rates = [run["result"]["patches_per_s"] for run in runs if run["side"] == side]
        summary[side] = {"patches_per_s": rates, "median": sorted(rates)[len(rates) // 2]}
        if side != "plain":
            summary[side]["vs_plain"] = isolated.ratio_summary(runs, side, "plain", "patches_per_s", cores)
    for side, figures in summary.items():
        ratio = figures.get("vs_plain")
        extra = f", {isolated.readme_row(f'{side} / plain', ratio, cores)}" if ratio else ""
        print(
            f"{side}: {figures['median']:.1f} patches/s (rounds {[round(r, 1) for r in figures['patches_per_s']]}){extra}"
        )
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps({"runs": runs, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
