"""`solarjax demo`: the whole method end to end on synthetic data (SHARP magnetograms or CME images)."""

from __future__ import annotations

import sys


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole method end to end on synthetic data; writes report.html",
        description=(
            "Build the synthetic dataset, train the GAN, fit the physical directions, train SimSiam, build the "
            "index, steer and search, evaluate, and write OUTDIR/report.html and OUTDIR/metrics.json. Finished "
            "stages are cached by config fingerprint: a rerun skips them, an interrupted run resumes. The "
            "full size takes about 26 min on an idle 2-core CPU (GAN about 10, directions about 9); --quick (smoke "
            "test) about 5.3 min, most of it XLA compilation."
        ),
    )
    parser.add_argument("--outdir", default="demo_out", help="output directory (default demo_out)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    parser.add_argument(
        "--fits-dir", help="real SHARP Br FITS files to embed and search (default: ../shared/data/sharp_cea)"
    )
    parser.add_argument(
        "--dataset",
        choices=("sharp", "cme"),
        default="sharp",
        help="sharp (default): SHARP magnetograms; cme: synthetic CME difference images "
        "(solarjax.cme_demo: GAN, steering, SimSiam, index, search and rare-case mining)",
    )
    parser.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from solarjax.demo import run_demo as run_sharp_demo
    from solarjax.stages import OutdirError

    try:
        if args.dataset == "cme":
            from solarjax.cme_demo import run_cme_demo

            run_cme_demo(args.outdir, quick=args.quick)
        else:
            run_sharp_demo(args.outdir, quick=args.quick, fits_dir=args.fits_dir)
    except OutdirError as err:
        print(f"solarjax demo: {err}", file=sys.stderr)
        return 2
    return 0
