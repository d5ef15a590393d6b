"""Compares the synthetic active regions with the 40 real SHARP Br frames, quantity by quantity.

Command (about a minute on 2 CPU cores):
  .venv/bin/python experiments/compare_synthetic_real.py [--n 2000] [--seed 0] [--out result.json]

Both sets are scored on the preprocessed 128x128 image s = clip(Br / 1000 G, -1, 1) by
`solarjax.physics.quantities` (the paper's TUF, TPF, TNF, net flux, PSEP, tilt, area, leading
polarity, R), plus the unsigned flux in Mx of the whole patch (`physical_quantities`), the largest
|s|, the share of saturated pixels (|s| > 0.99), the quiet-Sun texture (robust rms of neighbour
differences, and mean |Br|, over quiet pixels |s| < 0.06, in G) and the SHARP box size in Mm.
Prints, per quantity, the 5/25/50/75/95 % quantiles of the real and synthetic values, the
two-sample Kolmogorov-Smirnov distance, and the share of real values inside the synthetic 1-99 %
range; "matched" repeats the synthetic quantiles and the KS distance for the synthetic patches
within the real flux range. --out writes the same as JSON.

Expected: the 40 real frames are large active regions of 2011-2017 (the high-flux end), so the
synthetic set covers them and extends to small regions; within the real flux range the KS
distances of the paper's quantities are about 0.1-0.2 (the 5 % critical value for 40 against
2000 samples is 0.22), except the tilt (the 16 real HARPs are mostly tilted one way).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np
import scipy.stats

from solarjax import physics
from solarjax.data import synthetic
from solarjax.data.fits import SharpReadError, read_sharp
from solarjax.data.preprocess import NORMALISATION_GAUSS, preprocess_patch

SHARP_DIR = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "sharp_cea"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUIET = 0.06  # |s| below 60 G counts as quiet Sun


def read_real(directory: pathlib.Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The real Br frames of `directory`, preprocessed, and their effective pixel sizes.

    Returns:
      images float32 [m, size, size] in [-1, 1]; pixel_size_mm float32 [m, 2] (row, col).
    """
    images, pixel_sizes = [], []
    for path in sorted(directory.glob("*.Br.fits")):
        try:
            patch = preprocess_patch(read_sharp(path), size)
        except SharpReadError as error:
            print(f"skipped: {error}", file=sys.stderr)
            continue
        images.append(patch.image)
        pixel_sizes.append(patch.pixel_size_mm)
    if not images:
        sys.exit(f"no readable *.Br.fits files in {directory}")
    return np.stack(images), np.asarray(pixel_sizes, np.float32)


def quiet_sun_levels(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Robust rms of neighbour differences and mean |Br| over quiet pixels, in G; each [m]."""
    diff = (images[:, :, 1:] - images[:, :, :-1]) / np.sqrt(2)
    both_quiet = (np.abs(images[:, :, 1:]) < QUIET) & (np.abs(images[:, :, :-1]) < QUIET)
    rms = np.array([1.4826 * np.median(np.abs(d[q])) if q.any() else np.nan for d, q in zip(diff, both_quiet)])
    mean_abs = np.array([np.abs(s[np.abs(s) < QUIET]).mean() for s in images])
    return rms * NORMALISATION_GAUSS, mean_abs * NORMALISATION_GAUSS


def scores(images: np.ndarray, pixel_size_mm: np.ndarray) -> dict[str, np.ndarray]:
    """The paper's quantities and the extras of the module docstring, per image; NaN where undefined."""
    out = {name: np.asarray(value, np.float64) for name, value in physics.quantities(images).items()}
    out["tilt"] = np.degrees(out.pop("tilt"))
    flux = physics.physical_quantities(images, pixel_size_mm)["unsigned_flux_mx"]
    out["log10_flux_mx"] = np.log10(np.asarray(flux, np.float64))
    out["max_abs"] = np.abs(images).max((1, 2))
    out["saturated_share"] = (np.abs(images) > 0.99).mean((1, 2))
    out["quiet_rms_gauss"], out["quiet_mean_abs_gauss"] = quiet_sun_levels(images)
    out["box_rows_mm"] = pixel_size_mm[:, 0] * images.shape[1]
    out["box_cols_mm"] = pixel_size_mm[:, 1] * images.shape[2]
    return out


def compare(real: dict[str, np.ndarray], synth: dict[str, np.ndarray]) -> dict[str, dict]:
    """Quantiles, KS distances and coverage per quantity (NaNs dropped)."""
    flux = real["log10_flux_mx"]
    matched = (synth["log10_flux_mx"] >= np.nanmin(flux)) & (synth["log10_flux_mx"] <= np.nanmax(flux))
    table = {}
    for name in real:
        r = real[name][np.isfinite(real[name])]
        g, m = (v[np.isfinite(v)] for v in (synth[name], synth[name][matched]))
        lo, hi = np.quantile(g, [0.01, 0.99])
        table[name] = {
            "real": np.quantile(r, QUANTILES).tolist(),
            "synthetic": np.quantile(g, QUANTILES).tolist(),
            "matched": np.quantile(m, QUANTILES).tolist(),
            "ks": float(scipy.stats.ks_2samp(r, g).statistic),
            "ks_matched": float(scipy.stats.ks_2samp(r, m).statistic),
            "real_covered": float(np.mean((r >= lo) & (r <= hi))),
            "n_real": int(r.size), "n_synthetic": int(g.size), "n_matched": int(m.size),
        }
    return table


def print_table(table: dict[str, dict]) -> None:
    print(f"{'quantity':20s} {'set':5s} " + " ".join(f"{int(q * 100):>9d}%" for q in QUANTILES)
          + "      KS  KS_matched  covered")
    for name, row in table.items():
        for kind in ("real", "synthetic", "matched"):
            tail = ""
            if kind == "real":
                tail = f" {row['ks']:7.3f}  {row['ks_matched']:10.3f}  {row['real_covered']:7.2f}"
            print(f"{name:20s} {kind[:5]:5s} " + " ".join(f"{v:10.4g}" for v in row[kind]) + tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="synthetic patches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sharp-dir", type=pathlib.Path, default=SHARP_DIR)
    parser.add_argument("--out", type=pathlib.Path, help="JSON file for the table")
    args = parser.parse_args(argv)

    config = synthetic.SyntheticConfig()
    real_images, real_pixels = read_real(args.sharp_dir, config.size)
    batch = synthetic.generate(args.n, args.seed, config)
    table = compare(scores(real_images, real_pixels), scores(batch.images, batch.pixel_size_mm))
    print_table(table)
    if args.out:
        args.out.write_text(json.dumps({"n_synthetic": args.n, "seed": args.seed, "config": repr(config),
                                        "table": table}, indent=1))


if __name__ == "__main__":
    main()
