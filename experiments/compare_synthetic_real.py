"""Compares the synthetic active regions with the 40 real SHARP Br frames, quantity by quantity.

Command (~4 minutes on 2 busy CPU cores):
  .venv/bin/python experiments/compare_synthetic_real.py [--n 2048] [--seeds 0 1 2] [--speed-patches 512] [--out result.json]
Scan of generator knobs on the fit half of the HARPs (see 4.), e.g. (how 2.1.0's were chosen):
  .venv/bin/python experiments/compare_synthetic_real.py --scan plage_tilt_ratio=1.0,1.5,2.0 \
      --scan plage_field_gauss=250,300,400 --scan-dates-matched --n 1024 --seeds 7 8

Two comparisons: the default synthetic set (regions over the HMI era), and a set dated like the
real HARPs (equal blocks of regions at each HARP's date, hence its cycle phase, butterfly latitude
and Joy tilt: 11 of the 16 HARPs are from 6-7 March 2012, at higher latitudes than the era's mean).
Both sets are scored on the preprocessed 128x128 image s = clip(Br / 1000 G, -1, 1) by
`solarjax.physics` (threshold 150 G). Printed:

1. Per quantity, the 5/50/95 % quantiles of the real and synthetic values, the two-sample
   Kolmogorov-Smirnov distance and its 5 % critical value 1.358 * sqrt((n + m) / (n m)) (asymptotic,
   frames counted as independent), with the mean and range over the synthetic sets ``--seeds``:
   TUF, PSEP, R, tilt (deg), area, the net/unsigned flux ratio (the paper's net flux over pixels
   beyond +-150 G divided by sum |s| over the patch) and the box aspect (columns / rows in Mm); then,
   for information, log10 unsigned flux [Mx] and the box rows and columns [Mm].
   The 40 frames come from 16 HARPs (up to 5 frames each, 6 h apart) and frames of one HARP are
   nearly copies, so two laxer but honest tests follow: the KS against the critical value for the
   effective sample sizes n_eff = n / (1 + (n0 - 1) ICC) (ICC the intraclass correlation of the
   quantity within HARPs, resp. synthetic regions; n0 the ANOVA mean group size), and the KS of
   the HARP-weighted distribution (each HARP, and each synthetic region, weighs 1) against the
   critical value for 16 HARPs and the number of synthetic regions.
2. The share of frames with tilt < 0 and the share whose leading sign (sign of `lead_polarity`)
   follows Hale's law for cycle 24 (negative leads in the north), with the real frames' 95 %
   Clopper-Pearson interval, and the Pearson correlation of the leading sign with the hemisphere.
3. Build speed: patches/s of the builder's work (generation and the physics of a 256-patch chunk)
   for the default generator and for the earlier ones of PREVIOUS_GENERATORS (read from git
   history), alternated in this run.
4. The HARPs are split in two halves (sorted by number, alternately: ``harp_halves``). Knobs
   chosen by ``--scan`` look at the "fit" half only (HARP-weighted KS); the table then gives the
   HARP-weighted KS on each half, so the "check" half is held out from those choices.

Note: most of the generator's defaults were chosen against all 40 frames (SyntheticConfig's
docstring), so most KS distances are a fit, not held-out evidence; the Joy scatter and the flux
imbalance scale were chosen on the fit half only.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
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
PREVIOUS_GENERATORS = {
    "1.x": "94a30a572d99c2655356926d61a2e7ca4f7f2741",
    "2.0.0": "a1134a0418a2d99fd1caa8422eefbf12e099b7fa",
}
"""Commits of earlier default generators (independent patches; sharp_patches 2.0.0's regions)."""
KS_QUANTITIES = ("tuf", "psep", "r_value", "tilt_deg", "area", "net_unsigned_ratio", "box_aspect")
INFO_QUANTITIES = ("log10_flux_mx", "box_rows_mm", "box_cols_mm")
QUANTILES = (0.05, 0.5, 0.95)


def read_real(directory: pathlib.Path, size: int) -> tuple[np.ndarray, ...]:
    """The real Br frames of `directory`, preprocessed.

    Returns:
      images float32 [m, size, size] in [-1, 1]; pixel_size_mm float32 [m, 2] (row, col);
      latitude [m] (deg, signed); harpnum int [m]; decimal year of T_REC [m].
    """
    images, pixel_sizes, latitudes, harps, years = [], [], [], [], []
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
        t_rec = sharp.meta["t_rec"]
        years.append(t_rec.year + (t_rec.timetuple().tm_yday - 1 + t_rec.hour / 24) / 365.25)
    if not images:
        sys.exit(f"no readable *.Br.fits files in {directory}")
    return (
        np.stack(images),
        np.asarray(pixel_sizes, np.float32),
        np.asarray(latitudes, float),
        np.asarray(harps),
        np.asarray(years, float),
    )


def scores(images: np.ndarray, pixel_size_mm: np.ndarray) -> dict[str, np.ndarray]:
    """The compared quantities per image (module docstring), float64 [m]; NaN where undefined."""
    q = {name: np.asarray(value, np.float64) for name, value in physics.quantities(images).items()}
    flux = np.asarray(physics.physical_quantities(images, pixel_size_mm)["unsigned_flux_mx"], np.float64)
    size = images.shape[1] * images.shape[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "tuf": q["tuf"],
            "psep": q["psep"],
            "r_value": q["r_value"],
            "tilt_deg": np.degrees(q["tilt"]),
            "area": q["area"],
            "net_unsigned_ratio": q["net_flux"] / (q["tuf"] * size),
            "box_aspect": pixel_size_mm[:, 1].astype(np.float64) / pixel_size_mm[:, 0],
            "lead_polarity": q["lead_polarity"],
            "log10_flux_mx": np.log10(flux),
            "box_rows_mm": pixel_size_mm[:, 0].astype(np.float64) * images.shape[1],
            "box_cols_mm": pixel_size_mm[:, 1].astype(np.float64) * images.shape[2],
        }


def ks_critical(n: float, m: float, alpha: float = 0.05) -> float:
    """Asymptotic two-sample KS critical value."""
    return float(np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((n + m) / (n * m)))


def weighted_ks(a: np.ndarray, a_weight: np.ndarray, b: np.ndarray, b_weight: np.ndarray) -> float:
    """Largest distance between the weighted empirical CDFs of samples a [n] and b [m] (weights >= 0)."""
    grid = np.union1d(a, b)

    def cdf(x, w):
        order = np.argsort(x)
        cumulative = np.concatenate([[0.0], np.cumsum(w[order])]) / w.sum()
        return cumulative[np.searchsorted(x[order], grid, side="right")]

    return float(np.abs(cdf(a, a_weight) - cdf(b, b_weight)).max())


def group_weights(groups: np.ndarray) -> np.ndarray:
    """Weights [n] that make each group (HARP or synthetic region) weigh 1 in all: 1 / its size."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def effective_size(values: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """(ICC, n_eff) of values [n] in groups [n]: one-way ANOVA intraclass correlation (clipped to
    [0, 1]) and the design-effect size n / (1 + (n0 - 1) ICC), n0 the ANOVA mean group size."""
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    n, k = values.size, labels.size
    if k < 2 or k == n:
        return 0.0, float(n)
    means = np.bincount(inverse, values) / counts
    between = (counts * (means - values.mean()) ** 2).sum() / (k - 1)
    within = ((values - means[inverse]) ** 2).sum() / (n - k)
    n0 = (n - (counts**2).sum() / n) / (k - 1)
    icc = float(np.clip((between - within) / max(between + (n0 - 1) * within, 1e-300), 0.0, 1.0))
    return icc, float(n / (1 + (n0 - 1) * icc))


def harp_halves(harps: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks [n] of the "fit" and "check" halves: HARPs sorted by number, taken alternately."""
    ordered = np.unique(harps)
    return {"fit": np.isin(harps, ordered[0::2]), "check": np.isin(harps, ordered[1::2])}


def compare(
    real: dict[str, np.ndarray], harps: np.ndarray, synth: dict[str, np.ndarray], regions: np.ndarray
) -> dict[str, dict]:
    """Per quantity (NaNs dropped): quantiles, frame-level KS with its critical value, effective
    sizes with their critical value, HARP-weighted KS on all HARPs and on each half, its critical values."""
    halves = harp_halves(harps)
    table = {}
    for name in KS_QUANTITIES + INFO_QUANTITIES:
        r_ok, g_ok = np.isfinite(real[name]), np.isfinite(synth[name])
        r, g, r_groups, g_groups = real[name][r_ok], synth[name][g_ok], harps[r_ok], regions[g_ok]
        icc_r, n_eff = effective_size(r, r_groups)
        icc_g, m_eff = effective_size(g, g_groups)
        g_weight = group_weights(g_groups)
        row = {
            "real": np.quantile(r, QUANTILES).tolist(),
            "synthetic": np.quantile(g, QUANTILES).tolist(),
            "ks": float(scipy.stats.ks_2samp(r, g).statistic),
            "critical": ks_critical(r.size, g.size),
            "n_real": int(r.size),
            "n_synthetic": int(g.size),
            "icc_real": icc_r,
            "icc_synthetic": icc_g,
            "n_eff_real": n_eff,
            "n_eff_synthetic": m_eff,
            "critical_eff": ks_critical(n_eff, m_eff),
        }
        for part, mask in {"all": np.ones(r.size, bool), **{k: v[r_ok] for k, v in halves.items()}}.items():
            row[f"ks_harp_{part}"] = weighted_ks(r[mask], group_weights(r_groups[mask]), g, g_weight)
            row[f"critical_harp_{part}"] = ks_critical(np.unique(r_groups[mask]).size, np.unique(g_groups).size)
        table[name] = row
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
        "hale_cycle24": (
            -np.sign(real["lead_polarity"]) * np.sign(real_latitude),
            -np.sign(synth["lead_polarity"]) * np.sign(synth_latitude),
        ),
    }.items():
        r_ok, g_ok = np.isfinite(r_values), np.isfinite(g_values)
        hit_r = (r_values[r_ok] < 0) if name == "tilt_negative" else (r_values[r_ok] > 0)
        hit_g = (g_values[g_ok] < 0) if name == "tilt_negative" else (g_values[g_ok] > 0)
        lo, hi = clopper_pearson(int(hit_r.sum()), int(hit_r.size))
        share = float(hit_g.mean())
        out[name] = {
            "real": float(hit_r.mean()),
            "real_k": int(hit_r.sum()),
            "real_n": int(hit_r.size),
            "real_interval": [lo, hi],
            "synthetic": share,
            "within": lo <= share <= hi,
        }
    for name, (lead, lat) in {
        "real": (real["lead_polarity"], real_latitude),
        "synthetic": (synth["lead_polarity"], synth_latitude),
    }.items():
        ok = np.isfinite(lead) & np.isfinite(lat)
        out.setdefault("sign_hemisphere_correlation", {})[name] = float(
            np.corrcoef(np.sign(lead[ok]), np.sign(lat[ok]))[0, 1]
        )
    return out


def previous_generator(commit: str):
    """The synthetic generator of an earlier commit, loaded from git history (None if it is missing)."""
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{commit}:solarjax/data/synthetic.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        return None
    path = pathlib.Path(tempfile.mkdtemp()) / f"synthetic_{commit[:10]}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def build_speed(n: int, repeats: int = 7) -> dict[str, dict[str, float]]:
    """Median patches/s of generation + chunked physics, the default and the previous generators alternated
    (in rotating order):
    per wall-clock second and per CPU second of this process (the latter hardly moves with other
    programs' load on a shared machine)."""
    from data_builders.sharp_patches.sharp_patches_dataset_builder import CHUNK_SIZE, physics_features

    generators = {"default": synthetic}
    for name, commit in PREVIOUS_GENERATORS.items():
        module = previous_generator(commit)
        if module is None:
            print(f"build speed: no git history with {commit[:10]}; generator {name} not timed", file=sys.stderr)
        else:
            generators[name] = module
    physics_features(np.zeros((1, 128, 128), np.float32), np.ones((1, 2), np.float32))  # compile once
    rates = {name: {"wall": [], "cpu": []} for name in generators}
    names = list(generators)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:  # each goes first in turn
            module = generators[name]
            started, started_cpu = time.perf_counter(), time.process_time()
            for start in range(0, n, CHUNK_SIZE):
                batch = module.generate(min(CHUNK_SIZE, n - start), 100 + repeat, start=start)
                physics_features(batch.images, batch.pixel_size_mm)
            rates[name]["wall"].append(n / (time.perf_counter() - started))
            rates[name]["cpu"].append(n / (time.process_time() - started_cpu))
    out = {
        name: {clock: float(np.median(values)) for clock, values in by_clock.items()}
        for name, by_clock in rates.items()
    }
    for name in names[1:]:  # the default's CPU rate over this one's, repeat by repeat: median, min, max
        ratio = np.array(rates["default"]["cpu"]) / np.array(rates[name]["cpu"])
        out[name]["default_over_this_cpu"] = [float(np.median(ratio)), float(ratio.min()), float(ratio.max())]
    return out


def synthetic_scores(
    n: int, seed: int, config: synthetic.SyntheticConfig, harp_years: np.ndarray | None = None
) -> tuple[dict, np.ndarray, np.ndarray]:
    """(scores, region ids [n], signed latitudes [n]) of the synthetic set `seed`.

    With harp_years [k] (one date per real HARP), the set is dated like the real HARPs: k equal
    blocks of whole regions, block j drawn at date harp_years[j] (its cycle, butterfly latitude and
    Joy tilt), the rest of the model unchanged; otherwise the regions span config.era_years.
    """
    if harp_years is None:
        batch = synthetic.generate(n, seed, config)
    else:
        block = max(n // len(harp_years) // config.frames_per_region, 1) * config.frames_per_region
        blocks = [
            synthetic.generate(block, seed, dataclasses.replace(config, era_years=(year, year)), start=j * block)
            for j, year in enumerate(harp_years)
        ]
        batch = synthetic.SyntheticBatch(
            br_gauss=np.concatenate([b.br_gauss for b in blocks]),
            images=np.concatenate([b.images for b in blocks]),
            pixel_size_mm=np.concatenate([b.pixel_size_mm for b in blocks]),
            truth={key: np.concatenate([b.truth[key] for b in blocks]) for key in ("region_id", "latitude_deg")},
        )
    return (
        scores(batch.images, batch.pixel_size_mm),
        batch.truth["region_id"],
        batch.truth["latitude_deg"].astype(float),
    )


def parse_scan(text: str) -> tuple[str, list[float]]:
    """'field=v1,v2,...' -> (field, values); exits 2 naming the problem if it is not a number field."""
    name, _, values = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(synthetic.SyntheticConfig)}
    if name not in fields or not isinstance(getattr(synthetic.SyntheticConfig(), name), float):
        print(f"--scan {text}: {name!r} is not a float field of SyntheticConfig", file=sys.stderr)
        sys.exit(2)
    try:
        return name, [float(v) for v in values.split(",")]
    except ValueError:
        print(f"--scan {text}: values must be numbers separated by commas", file=sys.stderr)
        sys.exit(2)


def run_scan(
    scans: list[str], n: int, seeds: list[int], real: dict, harps: np.ndarray, harp_years: np.ndarray | None
) -> dict:
    """HARP-weighted KS on the fit half for every combination of the scanned knobs' values (the
    other knobs at their defaults), and its mean over the compared quantities (the choice criterion)."""
    parsed = [parse_scan(scan) for scan in scans]
    names = [name for name, _ in parsed]
    results = []
    print(
        f"scan: HARP-weighted KS on the fit half (HARPs {np.unique(harps[harp_halves(harps)['fit']]).tolist()}), "
        f"mean over seeds {seeds}" + (", synthetic dated like the HARPs" if harp_years is not None else "")
    )
    print(
        " ".join(f"{name:>14s}" for name in names)
        + " "
        + " ".join(f"{q[:10]:>10s}" for q in KS_QUANTITIES)
        + "       mean"
    )
    for values in itertools.product(*(values for _, values in parsed)):
        config = dataclasses.replace(synthetic.SyntheticConfig(), **dict(zip(names, values)))
        per_seed = [compare(real, harps, *synthetic_scores(n, seed, config, harp_years)[:2]) for seed in seeds]
        ks = {q: float(np.mean([t[q]["ks_harp_fit"] for t in per_seed])) for q in KS_QUANTITIES}
        results.append(
            {"values": dict(zip(names, values)), "ks_harp_fit": ks, "mean": float(np.mean(list(ks.values())))}
        )
        print(
            " ".join(f"{v:14.4g}" for v in values)
            + " "
            + " ".join(f"{ks[q]:10.3f}" for q in KS_QUANTITIES)
            + f" {results[-1]['mean']:10.4f}",
            flush=True,
        )
    best = min(results, key=lambda row: row["mean"])
    print(f"lowest mean: {best['values']}")
    return {"dates_matched": harp_years is not None, "seeds": seeds, "n": n, "results": results}


def summarise(tables: list[dict]) -> dict[str, dict]:
    """Per quantity and statistic, the mean and range over the seeds' tables."""
    out = {}
    for name in tables[0]:
        out[name] = {
            key: {
                "mean": float(np.mean([t[name][key] for t in tables])),
                "min": float(np.min([t[name][key] for t in tables])),
                "max": float(np.max([t[name][key] for t in tables])),
            }
            for key, value in tables[0][name].items()
            if not isinstance(value, list)
        }
    return out


def print_table(title: str, tables: list[dict], laws: list[dict], harps: np.ndarray, seeds: list[int]) -> dict:
    """Prints one comparison (module docstring, 1. and 2.); returns the seeds' summary."""
    summary = summarise(tables)
    print(f"\n== {title}: quantiles of seed {seeds[0]}; KS: mean [min-max] over seeds {seeds}")
    print(
        f"{'quantity':18s} {'real 5/50/95 %':>24s} {'synthetic 5/50/95 %':>24s} {'KS frames':>19s} {'crit':>5s}"
        f" {'n_eff':>5s} {'crit':>5s} {'KS HARP-weighted':>19s} {'crit':>5s} {'fit':>5s} {'check':>5s} {'crit':>5s}"
    )

    def ks_cell(name, key):
        v = summary[name][key]
        return f"{v['mean']:.3f} [{v['min']:.3f}-{v['max']:.3f}]"

    for name in KS_QUANTITIES + INFO_QUANTITIES:
        row, mean = tables[0][name], {k: v["mean"] for k, v in summary[name].items()}
        quantiles = "".join(f"{v:8.3g}" for v in row["real"] + row["synthetic"])
        flag = (
            "" if name in INFO_QUANTITIES else (" below" if summary[name]["ks"]["max"] < row["critical"] else " ABOVE")
        )
        print(
            f"{name:18s} {quantiles} {ks_cell(name, 'ks')} {row['critical']:5.3f} {row['n_eff_real']:5.1f}"
            f" {mean['critical_eff']:5.3f} {ks_cell(name, 'ks_harp_all')} {row['critical_harp_all']:5.3f}"
            f" {mean['ks_harp_fit']:5.3f} {mean['ks_harp_check']:5.3f} {row['critical_harp_check']:5.3f}{flag}"
        )
    for name in ("tilt_negative", "hale_cycle24"):
        row = laws[0][name]
        shares = [law[name]["synthetic"] for law in laws]
        within = all(law[name]["within"] for law in laws)
        print(
            f"{name:18s} real {row['real']:.3f} ({row['real_k']}/{row['real_n']}, 95% CI "
            f"{row['real_interval'][0]:.3f}-{row['real_interval'][1]:.3f})  synthetic {np.mean(shares):.3f} "
            f"[{min(shares):.3f}-{max(shares):.3f}]  " + ("within" if within else "OUTSIDE")
        )
    corr = [law["sign_hemisphere_correlation"]["synthetic"] for law in laws]
    print(
        f"{'sign/hemisphere r':18s} real {laws[0]['sign_hemisphere_correlation']['real']:+.3f}  synthetic "
        f"{np.mean(corr):+.3f} [{min(corr):+.3f}-{max(corr):+.3f}]"
    )
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2048, help="synthetic patches per set")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic sets compared")
    parser.add_argument("--speed-patches", type=int, default=512, help="patches per build-speed run (0: skip)")
    parser.add_argument(
        "--scan",
        action="append",
        help="field=v1,v2,...: KS on the fit half per value of a knob (repeat for a grid; no table)",
    )
    parser.add_argument(
        "--scan-dates-matched", action="store_true", help="--scan with the synthetic dated like the HARPs"
    )
    parser.add_argument("--sharp-dir", type=pathlib.Path, default=SHARP_DIR)
    parser.add_argument("--out", type=pathlib.Path, help="JSON file for the results")
    args = parser.parse_args(argv)
    if not args.sharp_dir.is_dir():
        print(f"{args.sharp_dir}: no such folder of SHARP CEA files (give --sharp-dir)", file=sys.stderr)
        return 2
    if args.n < 2 or any(seed < 0 for seed in args.seeds):
        print(f"--n must be >= 2 and --seeds non-negative, got {args.n} and {args.seeds}", file=sys.stderr)
        return 2

    config = synthetic.SyntheticConfig()
    real_images, real_pixels, real_latitude, harps, real_years = read_real(args.sharp_dir, config.size)
    real = scores(real_images, real_pixels)
    labels, first = np.unique(harps, return_index=True)
    harp_years = real_years[first]
    if args.scan:
        result = run_scan(args.scan, args.n, args.seeds, real, harps, harp_years if args.scan_dates_matched else None)
        if args.out:
            args.out.write_text(json.dumps(result, indent=1))
        return 0

    halves = harp_halves(harps)
    print(
        f"real: {len(real_images)} frames of {labels.size} HARPs; synthetic: {len(args.seeds)} sets of {args.n} patches "
        f"({args.n // config.frames_per_region} regions of {config.frames_per_region} frames)"
    )
    print(
        f"halves: fit HARPs {np.unique(harps[halves['fit']]).tolist()}, check HARPs {np.unique(harps[halves['check']]).tolist()}"
    )
    results = {}
    for title, years in {
        f"synthetic era {config.era_years[0]}-{config.era_years[1]} (the default dataset)": None,
        f"synthetic dated like the {labels.size} HARPs (n/{labels.size} patches at each HARP's date)": harp_years,
    }.items():
        tables, laws = [], []
        for seed in args.seeds:
            synth, regions, latitude = synthetic_scores(args.n, seed, config, years)
            tables.append(compare(real, harps, synth, regions))
            laws.append(hemispheric_laws(real, real_latitude, synth, latitude))
        results[title] = {
            "tables": tables,
            "laws": laws,
            "summary": print_table(title, tables, laws, harps, args.seeds),
        }
    speed = build_speed(args.speed_patches) if args.speed_patches > 0 else {}
    print()
    for name, rate in speed.items():
        paired = rate.get("default_over_this_cpu")
        print(
            f"build speed {name:9s} {rate['wall']:7.1f} patches per wall s, {rate['cpu']:7.1f} per CPU s "
            f"(generation + physics of {args.speed_patches}, median of 7, alternated)"
            + (f"; default / this per CPU s: {paired[0]:.2f} [{paired[1]:.2f}-{paired[2]:.2f}]" if paired else "")
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "n_synthetic": args.n,
                    "seeds": args.seeds,
                    "config": repr(config),
                    "harp_years": dict(zip(labels.tolist(), harp_years.tolist())),
                    "comparisons": results,
                    "build_speed": speed,
                },
                indent=1,
                default=bool,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
