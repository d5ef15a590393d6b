r"""The steering families' figures repeated over GAN seeds: mean and spread of the demo-size comparison.

Command::

    python -m experiments.steering_seeds --tfds-dir demo_out/tfds --out results/steering_seeds \
        [--seeds 0 1 2] [--gan-steps 1500] [--directions-samples 10000] [--latents 100] \
        [--gan-run 0=demo_out/gan --directions 0=demo_out/directions/directions] [--gan-step 0=1100] \
        [--targeting-latents 20]

``--gan-run SEED=PATH`` evaluates an already trained GAN run for that seed instead of training one
(nothing is written into PATH), and ``--directions SEED=PATH`` reuses directions fitted on that GAN
(their fingerprint must match; otherwise they are fitted into ``OUT/seed<SEED>_directions``).
``--gan-step SEED=STEP`` loads that saved checkpoint step of the seed's GAN instead of its best-ranked one.
With ``--targeting-latents N`` > 0, `steer_to` is also evaluated (`evaluate_targeting`, the
demo's requests, 150 steps x 3 rounds).

For each seed, the demo's GAN config (`experiments/configs/gan_synthetic.py`, sized as the FULL
demo) is trained with ``config.seed = seed`` into ``OUT/gan_seed<seed>`` (a killed run resumes),
the directions are fitted with their diagnosis (`fit_directions`, piecewise boundaries included),
and every family is evaluated on the same base latents (`evaluate_families`: monotonicity and
conditional leakage with bootstrap 95% intervals, realism against the first 1,000 train patches).
``steering_seeds.json`` holds each seed's report and, per family and quantity, the mean and
standard deviation over seeds of monotonicity, its lower interval end, the largest leakage and the
Frechet ratio, and how often each family ranked best; ``diagnosis`` the same for the held-out
accuracies of the four feature sets.

Runtime (2-core CPU at load 10-15, other jobs running): 32 min to train a seed's GAN (1,100 steps),
29 min to evaluate the families on 100 latents and `steer_to` on 20 with existing directions. The
measured figures (local monotone >= 0.97 for every quantity on the demo GAN) are in
experiments/README.md, section 'Issue 15'.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from collections.abc import Sequence

import numpy as np

from solarjax.jsonable import jsonable


def _reference_images(tfds_dir: pathlib.Path, count: int) -> np.ndarray:
    from solarjax.demo import _split_batches

    images, total = [], 0
    for batch in _split_batches(tfds_dir, "train", ("image",)):
        images.append(np.asarray(batch["image"]))
        total += len(images[-1])
        if total >= count:
            break
    return np.concatenate(images)[:count]


DEMO_ALPHAS = np.linspace(-3.0, 3.0, 7)
"""Alphas of the demo's family comparison (`solarjax.demo`), so that seed figures compare with the demo's."""


def run_seed(
    seed: int,
    tfds_dir: pathlib.Path,
    out: pathlib.Path,
    gan_steps: int,
    directions_samples: int,
    latents: int,
    reference: np.ndarray,
    gan_run: pathlib.Path | None = None,
    directions_dir: pathlib.Path | None = None,
    targeting_latents: int = 0,
    alphas: np.ndarray = DEMO_ALPHAS,
    gan_step: int | str = "best",
) -> dict:
    """Trains (or resumes) one GAN seed, or takes the trained run ``gan_run``; fits its directions (or loads
    ``directions_dir``) and evaluates every family (and `steer_to` with ``targeting_latents`` > 0)."""
    from solarjax import gan
    from solarjax.demo import FULL, _gan_config
    from solarjax.steering import directions as directions_lib
    from solarjax.steering import evaluate
    from solarjax.train import gan as gan_train

    started = time.perf_counter()
    if gan_run is None:
        config = _gan_config(tfds_dir, FULL)
        config.seed = seed
        config.total_steps = gan_steps
        config.eval_every = gan_steps
        config.sample_every = max(gan_steps // 3, 1)
        workdir = out / f"gan_seed{seed}"
        gan_train.train_and_evaluate(config, workdir)
        directions_out = workdir / "directions"
    else:
        workdir = gan_run
        directions_out = out / f"seed{seed}_directions"
    trained = time.perf_counter()
    generator = gan.load(workdir, step=gan_step)
    directions = None
    if directions_dir is not None:
        try:
            directions = directions_lib.load_directions(directions_dir, generator)
        except (directions_lib.DirectionsFileError, directions_lib.GeneratorMismatchError) as error:
            print(f"seed {seed}: refitting directions ({error})", flush=True)
    if directions is None:
        directions = directions_lib.fit_directions(generator, n=directions_samples)
        directions.save(directions_out)
    families = evaluate.evaluate_families(
        generator, directions, n_latents=latents, alphas=alphas, reference_images=reference
    )
    targeting = (
        evaluate.evaluate_targeting(
            generator, n_latents=targeting_latents, seed=1, scales=directions.std, steps=150, rounds=3
        )
        if targeting_latents > 0
        else None
    )
    return {
        "seed": seed,
        "gan_run": str(workdir),
        "gan_step": getattr(generator, "step", gan_step),
        "fingerprint": generator.fingerprint,
        "gan_seconds": trained - started,
        "steering_seconds": time.perf_counter() - trained,
        "diagnosis": directions.diagnosis,
        "paper_accuracy": directions.test_accuracy,
        "piecewise_accuracy": directions.piecewise_accuracy,
        "families": families,
        "targeting": targeting,
    }


def _seed_paths(pairs: Sequence[str], flag: str) -> dict[int, pathlib.Path]:
    """{seed: path} from 'SEED=PATH' strings (ValueError naming the flag on a malformed one)."""
    result = {}
    for pair in pairs:
        seed, sep, path = pair.partition("=")
        if not sep or not seed.strip().lstrip("-").isdigit() or not path:
            raise ValueError(f"{flag} takes SEED=PATH, got {pair!r}")
        result[int(seed)] = pathlib.Path(path)
    return result


def _seed_steps(pairs: Sequence[str]) -> dict[int, int]:
    """{seed: step} from '--gan-step SEED=STEP' strings (ValueError on a malformed one)."""
    steps = {}
    for seed, value in _seed_paths(pairs, "--gan-step").items():
        if not str(value).isdigit():
            raise ValueError(f"--gan-step takes SEED=STEP with a checkpoint step number, got {seed}={value}")
        steps[seed] = int(str(value))
    return steps


def summarise(runs: Sequence[dict]) -> dict:
    """Mean and standard deviation over seeds of each family's figures and of the diagnosis accuracies."""

    def spread(values):
        values = np.asarray([v for v in values if v is not None], np.float64)
        return {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values)), "values": values.tolist()}

    families = {}
    for method, rows in runs[0]["families"]["results"].items():
        families[method] = {}
        for name in rows:
            per_seed = [run["families"]["results"][method][name] for run in runs]
            families[method][name] = {
                "monotonicity": spread([r["monotonicity"]["value"] for r in per_seed]),
                "monotonicity_low": spread([r["monotonicity"]["low"] for r in per_seed]),
                "max_leakage": spread([r["max_leakage"] for r in per_seed]),
                "frechet_ratio": spread([r["realism"].get("frechet_ratio") for r in per_seed]),
            }
    diagnosis = {}
    for name, row in runs[0]["diagnosis"]["quantities"].items():
        feature_sets = [
            f for f in row["accuracy"] if all(f in r["diagnosis"]["quantities"][name]["accuracy"] for r in runs)
        ]
        diagnosis[name] = {
            features: spread([run["diagnosis"]["quantities"][name]["accuracy"][features] for run in runs])
            for features in feature_sets
        }
        if all(run.get("piecewise_accuracy") and name in run["piecewise_accuracy"] for run in runs):
            diagnosis[name]["piecewise"] = spread([run["piecewise_accuracy"][name] for run in runs])
    best = [run["families"]["best"] for run in runs]
    targeting = [run["targeting"]["success_rate"] for run in runs if run.get("targeting")]
    return {
        "families": families,
        "diagnosis": diagnosis,
        "best": {m: best.count(m) for m in set(best)},
        "targeting_success": spread(targeting) if targeting else None,
    }


def _cell(figure: dict) -> str:
    return f"{figure['value']:.3f} [{figure['low']:.3f}, {figure['high']:.3f}]"


def markdown_table(runs: Sequence[dict], summary: dict) -> str:
    """Markdown: per seed and family, monotonicity with its interval, undefined fraction, largest conditional
    leakage and Frechet ratio per quantity; then the mean +- standard deviation over seeds and targeting."""
    lines = []
    for run in runs:
        lines += [
            f"### seed {run['seed']} ({run.get('gan_run', '')}"
            + (f" step {run['gan_step']}" if run.get("gan_step") is not None else "")
            + f", fingerprint {run.get('fingerprint', '?')}; "
            f"best family: {run['families']['best']})",
            "",
            "| family | quantity | monotonicity [95%] | conditional [95%] | undefined | max leakage sd/sd [95%] "
            "| Frechet ratio |alpha|=2 | matched ratio |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for method, rows in run["families"]["results"].items():
            for name, row in rows.items():
                leak = row["leakage"]
                worst = max(leak, key=lambda held: leak[held]["value"]) if leak else None
                lines.append(
                    f"| {method} | {name} | {_cell(row['monotonicity'])} | {_cell(row['monotonicity_conditional'])} "
                    f"| {row['undefined_fraction']:.2f} | {(_cell(leak[worst]) + ' ' + worst) if worst else '-'} "
                    f"| {row['realism'].get('frechet_ratio', float('nan')):.2f} "
                    f"| {row['realism'].get('matched_frechet_ratio', float('nan')):.2f} |"
                )
        if run.get("targeting"):
            t = run["targeting"]
            low, high = t["success_interval"]
            lines.append(
                f"\nsteer_to: {t['success_rate']:.3f} [{low:.3f}, {high:.3f}] of {t['in_range']} in-range requests "
                f"within 5%"
            )
        lines.append("")
    lines += [
        f"### mean +- sd over {len(runs)} seed(s)",
        "",
        "| family | quantity | monotonicity | lower end | max leakage | Frechet ratio |",
        "|---|---|---|---|---|---|",
    ]
    for method, rows in summary["families"].items():
        for name, row in rows.items():
            lines.append(
                f"| {method} | {name} | "
                + " | ".join(
                    f"{row[key]['mean']:.3f} +- {row[key]['std']:.3f}"
                    for key in ("monotonicity", "monotonicity_low", "max_leakage", "frechet_ratio")
                )
                + " |"
            )
    if summary.get("targeting_success"):
        t = summary["targeting_success"]
        lines.append(f"\nsteer_to success: {t['mean']:.3f} +- {t['std']:.3f} (per seed {t['values']})")
    lines.append(f"\nbest family per seed: {summary['best']}")
    return "\n".join(lines) + "\n"


def write_results(out: pathlib.Path, settings: dict, runs: Sequence[dict]) -> dict:
    """Writes OUT/steering_seeds.json (settings, summary, runs) and OUT/steering_seeds.md; returns the result."""
    result = {"settings": settings, "summary": summarise(runs), "runs": list(runs)}
    (out / "steering_seeds.json").write_text(json.dumps(jsonable(result), indent=1))
    (out / "steering_seeds.md").write_text(markdown_table(runs, result["summary"]))
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tfds-dir",
        type=pathlib.Path,
        help="TFDS data directory holding sharp_patches/synthetic (e.g. a demo's tfds/); required unless --combine",
    )
    parser.add_argument(
        "--combine",
        type=pathlib.Path,
        nargs="+",
        metavar="SEED_JSON",
        help="summarise these per-seed files (OUT/seed<S>.json of earlier runs) into OUT; nothing is run",
    )
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--directions-samples", type=int, default=10_000)
    parser.add_argument("--latents", type=int, default=100, help="base latents of the family comparison")
    parser.add_argument(
        "--gan-run", action="append", default=[], metavar="SEED=PATH", help="evaluate this trained GAN run as SEED"
    )
    parser.add_argument(
        "--directions", action="append", default=[], metavar="SEED=PATH", help="directions fitted on SEED's GAN"
    )
    parser.add_argument(
        "--gan-step", action="append", default=[], metavar="SEED=STEP", help="load this checkpoint step of SEED's GAN"
    )
    parser.add_argument("--targeting-latents", type=int, default=0, help="base latents per steer_to request (0: none)")
    args = parser.parse_args(argv)
    try:
        gan_runs = _seed_paths(args.gan_run, "--gan-run")
        directions_dirs = _seed_paths(args.directions, "--directions")
        gan_steps = _seed_steps(args.gan_step)
    except ValueError as error:
        parser.exit(2, f"error: {error}\n")
    for seed, path in gan_runs.items():
        if not (path / "checkpoints").is_dir():
            parser.exit(2, f"error: {path}: not a trained GAN run (no checkpoints/), given for seed {seed}\n")
    if args.combine:
        runs = []
        for path in args.combine:
            try:
                runs.append(json.loads(path.read_text()))
            except (OSError, ValueError) as error:
                parser.exit(2, f"error: {path}: not a readable seed result ({error})\n")
        args.out.mkdir(parents=True, exist_ok=True)
        return write_results(args.out, {"combined": [str(p) for p in args.combine]}, runs)
    if args.tfds_dir is None:
        parser.exit(2, "error: --tfds-dir is required (unless --combine)\n")
    if not (args.tfds_dir / "sharp_patches").is_dir():
        parser.exit(
            2,
            f"error: {args.tfds_dir}: no sharp_patches dataset (run `solarjax demo` or `solarjax data build` first)\n",
        )
    args.out.mkdir(parents=True, exist_ok=True)
    reference = _reference_images(args.tfds_dir, 1000)
    runs = []
    for seed in args.seeds:
        runs.append(
            run_seed(
                seed,
                args.tfds_dir,
                args.out,
                args.gan_steps,
                args.directions_samples,
                args.latents,
                reference,
                gan_run=gan_runs.get(seed),
                directions_dir=directions_dirs.get(seed),
                targeting_latents=args.targeting_latents,
                gan_step=gan_steps.get(seed, "best"),
            )
        )
        (args.out / f"seed{seed}.json").write_text(json.dumps(jsonable(runs[-1]), indent=1))
    settings = vars(args) | {"tfds_dir": str(args.tfds_dir), "out": str(args.out), "alphas": DEMO_ALPHAS}
    result = write_results(args.out, settings, runs)
    for method, rows in result["summary"]["families"].items():
        for name, row in rows.items():
            print(
                f"{method:9s} {name:8s} monotonicity {row['monotonicity']['mean']:.3f} +- "
                f"{row['monotonicity']['std']:.3f}  max leakage {row['max_leakage']['mean']:.3f} +- "
                f"{row['max_leakage']['std']:.3f}"
            )
    return result


if __name__ == "__main__":
    main()
