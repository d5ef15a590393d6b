"""Real SHARP frames searched among themselves by several encoders (issue 16), with paired intervals.

For each trained SimSiam run (a run directory of `solarjax.train.simsiam`, at one checkpoint step),
the demo's real-data stage (`solarjax.demo._stage_real`, the functions of
`solarjax.retrieval.real_checks`) is run on the frames of ``--fits-dir``, so every run faces the
same queries and the same baselines (pixel L2, 8x8 thumbnail, untrained encoder, standardised
physics, random):

* same region beyond 12 h: precision@1 of finding the query's HARP at least 12 h away (frames of
  its HARP within +-12 h excluded);
* real-to-real: the query's whole HARP excluded, Spearman between the JSOC header keywords
  (USFLUX, R_VALUE, AREA_ACR, MEANGBZ) of query and top-1 match.

The hybrid's weight comes from ``--ranking-workdir``/index/ranking.json (chosen on the synthetic
validation split by the demo; never on these frames). Runs are then compared with each other, paired
on the same queries: their SSL (and hybrid) precision@1 and USFLUX Spearman, and every difference of two runs.

    python experiments/retrieval_real.py --fits-dir /work/shared/data/sharp_cea \\
        --run plain_s23=/tmp/h16/runs/plain_s23 --run aux1_s23=/tmp/h16/runs/aux1_s23 --step 75 \\
        --ranking-workdir /work/demo_s3 --out /work/h3/real

It runs unchanged on a user's thousands of frames (the checks are array functions; the exclusion
masks are built in chunks of 1,024 queries).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

import numpy as np

HEADER = "USFLUX"


def compare_runs(
    reports: dict[str, dict], method: str = "ssl", keyword: str = HEADER, num_resamples: int = 1_000, seed: int = 0
) -> dict:
    """One method's figures of several runs on the same frames, with paired intervals.

    Args:
      reports: {run: `_stage_real` result} over the same frames (same order).
      method: the ranker compared ('ssl' or 'hybrid').
      keyword: the header keyword of the real-to-real comparison.

    Returns:
      {'same_region': `bootstrap.precision_intervals` over runs, 'keyword': `bootstrap.correlation_intervals`
      over runs (Pearson, Spearman) on the frames where every run's match has the keyword}.
    """
    from solarjax.retrieval import bootstrap

    runs = list(reports)
    first = reports[runs[0]]
    eligible = np.asarray(first["same_region_precision"]["rows"], np.int64)
    region = np.asarray(first["regions"])
    hits = {}
    for run in runs:
        same = reports[run]["same_region_precision"]
        if same["rows"] != first["same_region_precision"]["rows"]:
            raise ValueError(f"run {run} was scored on other frames than {runs[0]}")
        rows = np.asarray(same["top1"][method], np.int64)
        hits[run] = (rows >= 0) & (region[np.maximum(rows, 0)] == region[eligible])
    same_region = bootstrap.precision_intervals(hits, bootstrap.resample_indices(len(eligible), num_resamples, seed))
    values = np.asarray(first["keywords"][keyword], np.float64)
    matched = {}
    for run in runs:
        rows = np.asarray(reports[run]["real_to_real"]["top1"][method], np.int64)
        matched[run] = np.where(rows >= 0, values[np.maximum(rows, 0)], np.nan)
    keep = np.isfinite(values)
    for m in matched.values():
        keep &= np.isfinite(m)
    agreement = bootstrap.correlation_intervals(
        values[keep],
        {run: m[keep] for run, m in matched.items()},
        bootstrap.resample_indices(int(keep.sum()), num_resamples, seed + 1),
    )
    return {"method": method, "keyword": keyword, "same_region": same_region, "keyword_agreement": agreement}


def format_comparison(comparison: dict) -> str:
    from solarjax.retrieval import bootstrap

    same, agreement = comparison["same_region"], comparison["keyword_agreement"]
    lines = [["run", f"same region p@1 (n={same['n']})", f"{comparison['keyword']} Spearman (n={agreement['n']})"]]
    for run in same["methods"]:
        lines.append(
            [
                run,
                bootstrap.format_interval(same["methods"][run]),
                bootstrap.format_interval(agreement["methods"][run]["spearman"]),
            ]
        )
    for key in same["differences"]:
        lines.append(
            [
                key,
                bootstrap.format_interval(same["differences"][key]),
                bootstrap.format_interval(agreement["differences"][key]["spearman"]),
            ]
        )
    widths = [max(len(line[j]) for line in lines) for j in range(3)]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fits-dir", type=pathlib.Path, required=True, help="folder of SHARP Br FITS files")
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        metavar="NAME=RUN_DIR",
        help="a SimSiam run directory to score (repeat)",
    )
    parser.add_argument("--step", type=int, help="checkpoint step of every run (default: each run's latest)")
    parser.add_argument(
        "--ranking-workdir",
        type=pathlib.Path,
        required=True,
        help="a demo directory whose index/ranking.json gives the hybrid weight",
    )
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    if not args.fits_dir.is_dir():
        parser.error(f"--fits-dir {args.fits_dir}: no such directory")
    runs = {}
    for item in args.run:
        name, _, directory = item.partition("=")
        if not directory or not pathlib.Path(directory).is_dir():
            parser.error(f"--run {item}: expected NAME=RUN_DIR with an existing directory")
        runs[name] = pathlib.Path(directory)

    from solarjax import demo, ssl
    from solarjax.jsonable import jsonable

    reports = {}
    for name, directory in runs.items():
        encoder = ssl.load(directory, step=args.step if args.step is not None else "latest")
        report = demo._stage_real(args.out / name, args.fits_dir, args.ranking_workdir, encoder=encoder)
        report["step"] = encoder.step
        reports[name] = report
        print(f"--- {name} (step {encoder.step}): {report['frames']} frames, {report['harps']} HARPs", flush=True)
        for title, table in report["tables"].items():
            print(f"{title}\n{table}", flush=True)
    comparisons = {method: compare_runs(reports, method) for method in ("ssl", "hybrid")}
    for method, comparison in comparisons.items():
        print(f"=== runs compared, {method} ranking (paired over the same frames)\n{format_comparison(comparison)}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"retrieval_real_step{args.step or 'latest'}_{'+'.join(runs)}.json"
    path.write_text(
        json.dumps(
            jsonable(
                {
                    "runs": {n: {k: v for k, v in r.items() if k != "tables"} for n, r in reports.items()},
                    "comparisons": comparisons,
                }
            ),
            indent=1,
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
