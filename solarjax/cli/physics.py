"""`solarjax physics`: the method's physical quantities of SHARP FITS files."""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from solarjax.cli.arguments import positive_int, unit_fraction
from solarjax.jsonable import jsonable


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "physics",
        help="physical quantities of SHARP FITS files",
        description=(
            "Read SHARP CEA segment files (Br), preprocess them as the method does (clip +-1000 G, "
            "/1000, NaN -> 0, antialiased resize to SIZE x SIZE) and report the method's quantities "
            "(TUF, TPF, TNF, net flux, PSEP, tilt, area, leading polarity, R; threshold 150 G) in the "
            "normalised form and in physical units, next to the header's USFLUX. Unreadable files are "
            "reported on stderr with the reason; the exit status is 1 if some file failed, 2 if none could be read."
        ),
    )
    parser.add_argument("files", nargs="+", help="SHARP FITS files (e.g. *.Br.fits)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    parser.add_argument("--size", type=positive_int, default=128, help="resize target in pixels (default 128)")
    parser.add_argument(
        "--threshold",
        type=unit_fraction,
        default=0.15,
        help="polarity threshold, normalised units in (0, 1] (default 0.15 = 150 G)",
    )
    parser.set_defaults(func=run_physics)


def run_physics(args) -> int:
    from solarjax import physics
    from solarjax.data import SharpReadError, preprocess_patch, read_sharp

    patches, failures = [], []
    for path in args.files:
        try:
            patch = read_sharp(path)
        except SharpReadError as err:
            failures.append(err)
            continue
        if patch.segment == "Br" and not np.isfinite(patch.data).any():
            failures.append(SharpReadError(path, "no finite pixel (all NaN or inf): no data"))
        elif patch.segment == "Br":
            patches.append(patch)
        else:
            failures.append(
                SharpReadError(path, f"a {patch.segment} segment: the method's quantities are defined on Br")
            )
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
        json.dump(jsonable(records), sys.stdout, indent=1)
        print()
    else:
        _print_physics_table(records)
    return (1 if records else 2) if failures else 0


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
