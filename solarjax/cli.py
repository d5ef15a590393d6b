"""The `solarjax` command.

Each subcommand imports what it needs when it runs, so `solarjax --help` stays instant.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from typing import Sequence

import numpy as np

_DESCRIPTION = """\
solarjax: generate solar active regions with the physical properties you ask for, and retrieve the
real SDO/HMI SHARP observations that match them.

Pipeline: SHARP Br patches -> GAN -> latent directions of physical quantities (SVM normals)
-> steered generated patch -> SimSiam embedding -> nearest real SHARP patches (ScaNN).
"""


def _jsonable(value):
    """Metadata values as JSON: datetimes to ISO text, NaN to null, numpy scalars to Python."""
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


# --------------------------------------------------------------------------------------- physics
def _add_physics(subparsers) -> None:
    parser = subparsers.add_parser(
        "physics",
        help="physical quantities of SHARP FITS files",
        description=(
            "Read SHARP CEA segment files (Br), preprocess them as the method does (clip +-1000 G, "
            "/1000, NaN -> 0, antialiased resize to SIZE x SIZE) and report the method's quantities "
            "(TUF, TPF, TNF, net flux, PSEP, tilt, area, leading polarity, R; threshold 150 G) in the "
            "normalised form and in physical units, next to the header's USFLUX. Unreadable files are "
            "reported on stderr with the reason; the exit status is 1 if any file failed."
        ),
    )
    parser.add_argument("files", nargs="+", help="SHARP FITS files (e.g. *.Br.fits)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    parser.add_argument("--size", type=int, default=128, help="resize target in pixels (default 128)")
    parser.add_argument(
        "--threshold", type=float, default=0.15, help="polarity threshold, normalised units (default 0.15 = 150 G)"
    )
    parser.set_defaults(func=_run_physics)


def _run_physics(args) -> int:
    from solarjax import physics
    from solarjax.data import SharpReadError, preprocess_patch, read_sharp

    patches, failures = [], []
    for path in args.files:
        try:
            patches.append(read_sharp(path))
        except SharpReadError as err:
            failures.append(err)
    for err in failures:
        print(f"error: {err}", file=sys.stderr)

    records = []
    if patches:
        prepared = [preprocess_patch(p, size=args.size) for p in patches]
        images = np.stack([p.image for p in prepared])
        pixel_size_mm = np.array([p.pixel_size_mm for p in prepared], dtype=np.float32)
        normalised = {k: np.asarray(v) for k, v in physics.quantities(images, threshold=args.threshold).items()}
        physical = {
            k: np.asarray(v)
            for k, v in physics.physical_quantities(images, pixel_size_mm, threshold=args.threshold).items()
        }
        for i, patch in enumerate(patches):
            full_res_flux = float(
                physics.unsigned_flux_above_mx(
                    patch.data, patch.meta["pixel_area_cm2"], threshold_gauss=1000.0 * args.threshold
                )
            )
            records.append(
                {
                    "path": str(patch.path),
                    "meta": patch.meta,
                    "quantities": {k: float(v[i]) for k, v in normalised.items()},
                    "physical": {
                        **{k: float(v[i]) for k, v in physical.items()},
                        "unsigned_flux_full_res_mx": full_res_flux,
                    },
                }
            )

    if args.json:
        json.dump(_jsonable(records), sys.stdout, indent=1)
        print()
    else:
        _print_physics_table(records)
    return 1 if failures else 0


def _print_physics_table(records) -> None:
    columns = [
        ("HARP", lambda r: f"{r['meta'].get('harpnum', '')}"),
        ("T_REC", lambda r: f"{r['meta'].get('t_rec_raw', '')}"),
        ("TUF", lambda r: f"{r['quantities']['tuf']:.4f}"),
        ("PSEP", lambda r: f"{r['quantities']['psep']:.4f}"),
        ("tilt_deg", lambda r: f"{math.degrees(r['quantities']['tilt']):.1f}"),
        ("R", lambda r: f"{r['quantities']['r_value']:.2f}"),
        ("area", lambda r: f"{r['quantities']['area']:.4f}"),
        ("flux_Mx", lambda r: f"{r['physical']['unsigned_flux_mx']:.3e}"),
        ("psep_Mm", lambda r: f"{r['physical']['psep_mm']:.1f}"),
        ("flux>150G_Mx", lambda r: f"{r['physical']['unsigned_flux_full_res_mx']:.3e}"),
        ("USFLUX_Mx", lambda r: f"{r['meta'].get('USFLUX', float('nan')):.3e}"),
    ]
    rows = [[name for name, _ in columns]] + [[fmt(r) for _, fmt in columns] for r in records]
    widths = [max(len(row[j]) for row in rows) for j in range(len(columns))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    print(f"{len(records)} patches")


# ------------------------------------------------------------------------------------------ data
def _add_data(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="download SHARPs from JSOC and build the sharp_patches dataset",
        description="Data: `download` fetches SHARP CEA segments from JSOC; `build` writes the TFDS dataset.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    from solarjax.data.jsoc import add_download_arguments, run_download

    download = commands.add_parser(
        "download",
        help="download SHARP CEA segments from JSOC (resumable)",
        description=(
            "Select hmi.sharp_cea_720s records (time range, cadence per HARP, HARP/NOAA numbers, QUALITY == 0, "
            "distance from disk centre) and export their segments as FITS into OUT_DIR. A manifest.json in "
            "OUT_DIR records what finished and what failed; rerunning resumes without re-downloading finished "
            "files and fetches truncated ones again."
        ),
    )
    add_download_arguments(download)
    download.set_defaults(func=run_download)

    build = commands.add_parser(
        "build",
        help="build the TFDS dataset sharp_patches (synthetic or from FITS)",
        description=(
            "Write the TFDS dataset sharp_patches/CONFIG (array_record) into DATA_DIR: 'synthetic' generates "
            "realistic synthetic active regions (the default dataset, no download needed); 'fits' reads the "
            "SHARP FITS files of --manual-dir (e.g. from `solarjax data download`). Splits never share an "
            "active region. Unreadable files are listed in build_log.json and skipped. Read it back with "
            "tfds.data_source('sharp_patches/CONFIG', data_dir=DATA_DIR) after `import data_builders`."
        ),
    )
    build.add_argument("--config", choices=("synthetic", "fits"), default="synthetic", help="builder config")
    build.add_argument("--manual-dir", help="folder of SHARP FITS files (fits config)")
    build.add_argument(
        "--data-dir", default=_default_data_dir(), help="TFDS data directory (default: $SOLARJAX_DATA_DIR or ~/tensorflow_datasets)"
    )
    build.add_argument(
        "--num-examples", type=int, help="synthetic: patches over all splits (default 20000); fits: at most this many files"
    )
    build.set_defaults(func=_run_data_build)


def _default_data_dir() -> str:
    import os

    return os.environ.get("SOLARJAX_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def _run_data_build(args) -> int:
    from data_builders.sharp_patches import build

    info = build(args.config, args.data_dir, manual_dir=args.manual_dir, num_examples=args.num_examples)
    for name, split in sorted(info.splits.items()):
        print(f"{name}: {split.num_examples} patches")
    failures = info.metadata["failures"]
    for failure in failures:
        print(f"skipped {failure['path']}: {failure['reason']}", file=sys.stderr)
    print(f"dataset in {info.data_dir}")
    return 0


# ------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solarjax", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_physics(subparsers)
    _add_data(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
