"""Compares the synthetic active regions with the 40 real SHARP Br frames, quantity by quantity.

Command (a few minutes on 2 CPU cores):
  .venv/bin/python experiments/compare_synthetic_real.py [--n 2048] [--seed 0] [--speed-patches 512] [--out result.json]

Both sets are scored on the preprocessed 128x128 image s = clip(Br / 1000 G, -1, 1) by
`solarjax.physics` (threshold 150 G). Printed:

1. Per quantity, the 5/50/95 % quantiles of the real and synthetic values, the two-sample
   Kolmogorov-Smirnov distance and its 5 % critical value 1.358 * sqrt((n + m) / (n m)) (asymptotic;
   the frames count as independent, which the 40 frames of 16 HARPs are not, so the real test is
   laxer than printed): TUF, PSEP, R, tilt (deg), area, the net/unsigned flux ratio (the paper's net
   flux over pixels beyond +-150 G divided by sum |s| over the patch) and the box aspect (columns /
   rows in Mm); then, for information, log10 unsigned flux [Mx] and the box rows and columns [Mm].
2. The share of frames with tilt < 0 and the share whose leading sign (sign of `lead_polarity`)
   follows Hale's law for cycle 24 (negative leads in the north), with the real frames' 95 %
   Clopper-Pearson interval, and the Pearson correlation of the leading sign with the hemisphere.
3. Build speed: patches/s of the builder's work (generation and the physics of a 256-patch chunk)
   for the default generator and for the previous one (independent patches, at commit
   OLD_GENERATOR_COMMIT, read from git history), alternated in this run.

Note: the generator's defaults were chosen against these 40 frames, so the KS distances are a fit,
not held-out evidence.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.stats

from solarjax import physics
from solarjax.data import synthetic
from solarjax.data.fits import SharpReadError, read_sharp
from solarjax.data.preprocess import preprocess_patch

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARP_DIR = REPO.parent / "shared" / "data" / "sharp_cea"
OLD_GENERATOR_COMMIT = "94a30a572d99c2655356926d61a2e7ca4f7f2741"
"""Last commit whose synthetic generator drew every patch independently (the previous default)."""
KS_QUANTITIES = ("tuf", "psep", "r_value", "tilt_deg", "area", "net_unsigned_ratio", "box_aspect")
INFO_QUANTITIES = ("log10_flux_mx", "box_rows_mm", "box_cols_mm")
QUANTILES = (0.05, 0.5, 0.95)


def read_real(directory: pathlib.Path, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The real Br frames of `directory`, preprocessed.

    Returns:
      images float32 [m, size, size] in [-1, 1]; pixel_size_mm float32 [m, 2] (row, col);
      latitude [m] (deg, signed); harpnum int [m].
    """
    images, pixel_sizes, latitudes, harps = [], [], [], []
    for path in sorted(directory.glob("*.Br.fits")):
        try:
            sharp = read_sharp(path)
        except SharpReadError as error:
            print(f"skipped: {error}", file=sys.stderr)
            continue
        patch = preprocess_patch(sharp, size)
        images.append(patch.image)
        pixel_sizes.append(patch.pixel_size_mm)
        latitudes.append(sharp.meta.get("lat_deg", np.nan))
        harps.append(sharp.meta["harpnum"])
    if not images:
        sys.exit(f"no readable *.Br.fits files in {directory}")
    return np.stack(images), np.asarray(pixel_sizes, np.float32), np.asarray(latitudes, float), np.asarray(harps)


def scores(images: np.ndarray, pixel_size_mm: np.ndarray) -> dict[str, np.ndarray]:
    """The compared quantities per image (module docstring), float64 [m]; NaN where undefined."""
    q = {name: np.asarray(value, np.float64) for name, value in physics.quantities(images).items()}
    flux = np.asarray(physics.physical_quantities(images, pixel_size_mm)["unsigned_flux_mx"], np.float64)
    size = images.shape[1] * images.shape[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "tuf": q["tuf"], "psep": q["psep"], "r_value": q["r_value"], "tilt_deg": np.degrees(q["tilt"]),
            "area": q["area"], "net_unsigned_ratio": q["net_flux"] / (q["tuf"] * size),
            "box_aspect": pixel_size_mm[:, 1].astype(np.float64) / pixel_size_mm[:, 0],
            "lead_polarity": q["lead_polarity"],
            "log10_flux_mx": np.log10(flux),
            "box_rows_mm": pixel_size_mm[:, 0].astype(np.float64) * images.shape[1],
            "box_cols_mm": pixel_size_mm[:, 1].astype(np.float64) * images.shape[2],
        }


def ks_critical(n: int, m: int, alpha: float = 0.05) -> float:
    """Asymptotic two-sample KS critical value."""
    return float(np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((n + m) / (n * m)))


def compare(real: dict[str, np.ndarray], synth: dict[str, np.ndarray]) -> dict[str, dict]:
    """Quantiles, KS distance and critical value per quantity (NaNs dropped)."""
    table = {}
    for name in KS_QUANTITIES + INFO_QUANTITIES:
        r, g = (v[name][np.isfinite(v[name])] for v in (real, synth))
        ks = float(scipy.stats.ks_2samp(r, g).statistic)
        critical = ks_critical(r.size, g.size)
        table[name] = {"real": np.quantile(r, QUANTILES).tolist(), "synthetic": np.quantile(g, QUANTILES).tolist(),
                       "ks": ks, "critical": critical, "below": ks < critical,
                       "n_real": int(r.size), "n_synthetic": int(g.size)}
    return table


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = scipy.stats.beta.ppf(a, k, n - k + 1) if k > 0 else 0.0
    hi = scipy.stats.beta.ppf(1 - a, k + 1, n - k) if k < n else 1.0
    return float(lo), float(hi)


def hemispheric_laws(real: dict, real_latitude: np.ndarray, synth: dict, synth_latitude: np.ndarray) -> dict:
    """tilt < 0 share and Hale agreement (cycle 24 orientation) of both sets, the real ones with intervals."""
    out = {}
    for name, (r_values, g_values) in {
        "tilt_negative": (real["tilt_deg"], synth["tilt_deg"]),
        "hale_cycle24": (-np.sign(real["lead_polarity"]) * np.sign(real_latitude),
                         -np.sign(synth["lead_polarity"]) * np.sign(synth_latitude)),
    }.items():
        r_ok, g_ok = np.isfinite(r_values), np.isfinite(g_values)
        hit_r = (r_values[r_ok] < 0) if name == "tilt_negative" else (r_values[r_ok] > 0)
        hit_g = (g_values[g_ok] < 0) if name == "tilt_negative" else (g_values[g_ok] > 0)
        lo, hi = clopper_pearson(int(hit_r.sum()), int(hit_r.size))
        share = float(hit_g.mean())
        out[name] = {"real": float(hit_r.mean()), "real_k": int(hit_r.sum()), "real_n": int(hit_r.size),
                     "real_interval": [lo, hi], "synthetic": share, "within": lo <= share <= hi}
    for name, (lead, lat) in {"real": (real["lead_polarity"], real_latitude),
                              "synthetic": (synth["lead_polarity"], synth_latitude)}.items():
        ok = np.isfinite(lead) & np.isfinite(lat)
        out.setdefault("sign_hemisphere_correlation", {})[name] = float(
            np.corrcoef(np.sign(lead[ok]), np.sign(lat[ok]))[0, 1])
    return out


def old_generator():
    """The previous synthetic generator, loaded from git history (None if the history is missing)."""
    try:
        source = subprocess.run(["git", "-C", str(REPO), "show", f"{OLD_GENERATOR_COMMIT}:solarjax/data/synthetic.py"],
                                capture_output=True, text=True, check=True).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    path = pathlib.Path(tempfile.mkdtemp()) / "synthetic_old.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("synthetic_old", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def build_speed(n: int, repeats: int = 5) -> dict[str, float]:
    """Median patches/s of generation + chunked physics, default and previous generator alternated."""
    from data_builders.sharp_patches.sharp_patches_dataset_builder import CHUNK_SIZE, physics_features

    generators = {"default": synthetic}
    old = old_generator()
    if old is None:
        print(f"build speed: no git history with {OLD_GENERATOR_COMMIT[:10]}; only the default is timed",
              file=sys.stderr)
    else:
        generators["previous"] = old
    physics_features(np.zeros((1, 128, 128), np.float32), np.ones((1, 2), np.float32))  # compile once
    rates = {name: [] for name in generators}
    for repeat in range(repeats):
        for name, module in generators.items():
            started = time.perf_counter()
            for start in range(0, n, CHUNK_SIZE):
                batch = module.generate(min(CHUNK_SIZE, n - start), 100 + repeat, start=start)
                physics_features(batch.images, batch.pixel_size_mm)
            rates[name].append(n / (time.perf_counter() - started))
    return {name: float(np.median(values)) for name, values in rates.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="synthetic patches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speed-patches", type=int, default=512, help="patches per build-speed run (0: skip)")
    parser.add_argument("--sharp-dir", type=pathlib.Path, default=SHARP_DIR)
    parser.add_argument("--out", type=pathlib.Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    if not args.sharp_dir.is_dir():
        print(f"{args.sharp_dir}: no such folder of SHARP CEA files (give --sharp-dir)", file=sys.stderr)
        return 2

    config = synthetic.SyntheticConfig()
    real_images, real_pixels, real_latitude, harps = read_real(args.sharp_dir, config.size)
    batch = synthetic.generate(args.n, args.seed, config)
    real, synth = scores(real_images, real_pixels), scores(batch.images, batch.pixel_size_mm)
    table = compare(real, synth)
    laws = hemispheric_laws(real, real_latitude, synth, batch.truth["latitude_deg"].astype(float))

    print(f"real: {len(real_images)} frames of {len(set(harps.tolist()))} HARPs; synthetic: {args.n} patches "
          f"({args.n // config.frames_per_region} regions) of set {args.seed}")
    print(f"{'quantity':20s} {'real 5/50/95 %':>30s} {'synthetic 5/50/95 %':>30s} {'KS':>6s} {'crit5%':>7s}")
    for name, row in table.items():
        flag = "" if name in INFO_QUANTITIES else ("  below" if row["below"] else "  ABOVE")
        quantiles = "".join(f"{v:10.3g}" for v in row["real"] + row["synthetic"])
        print(f"{name:20s} {quantiles} {row['ks']:6.3f} {row['critical']:7.3f}{flag}")
    for name in ("tilt_negative", "hale_cycle24"):
        row = laws[name]
        print(f"{name:20s} real {row['real']:.3f} ({row['real_k']}/{row['real_n']}, 95% CI "
              f"{row['real_interval'][0]:.3f}-{row['real_interval'][1]:.3f})  synthetic {row['synthetic']:.3f}  "
              + ("within" if row["within"] else "OUTSIDE"))
    corr = laws["sign_hemisphere_correlation"]
    print(f"{'sign/hemisphere r':20s} real {corr['real']:+.3f}  synthetic {corr['synthetic']:+.3f}")
    speed = build_speed(args.speed_patches) if args.speed_patches > 0 else {}
    for name, rate in speed.items():
        print(f"build speed {name:9s} {rate:7.1f} patches/s (generation + physics, median of 5, alternated)")
    if args.out:
        args.out.write_text(json.dumps({"n_synthetic": args.n, "seed": args.seed, "config": repr(config),
                                        "table": table, "laws": laws, "build_speed": speed}, indent=1, default=bool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
