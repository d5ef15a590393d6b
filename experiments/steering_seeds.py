r"""The steering families' figures repeated over GAN seeds: mean and spread of the demo-size comparison.

Command::

    python -m experiments.steering_seeds --tfds-dir demo_out/tfds --out results/steering_seeds \
        [--seeds 0 1 2] [--gan-steps 1500] [--directions-samples 10000] [--latents 100]

For each seed, the demo's GAN config (`experiments/configs/gan_synthetic.py`, sized as the FULL
demo) is trained with ``config.seed = seed`` into ``OUT/gan_seed<seed>`` (a killed run resumes),
the directions are fitted with their diagnosis (`fit_directions`, piecewise boundaries included),
and every family is evaluated on the same base latents (`evaluate_families`: monotonicity and
conditional leakage with bootstrap 95% intervals, realism against the first 1,000 train patches).
``steering_seeds.json`` holds each seed's report and, per family and quantity, the mean and
standard deviation over seeds of monotonicity, its lower interval end, the largest leakage and the
Frechet ratio, and how often each family ranked best; ``diagnosis`` the same for the held-out
accuracies of the four feature sets.

Runtime (2-core CPU, idle): about 10 min of GAN training and 3-4 min of directions and evaluation
per seed, so about 40 min for three seeds. Expected: the local family monotone (>= 0.95) for every
quantity on every seed; see experiments/README.md for the measured figures.
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


def run_seed(
    seed: int,
    tfds_dir: pathlib.Path,
    out: pathlib.Path,
    gan_steps: int,
    directions_samples: int,
    latents: int,
    reference: np.ndarray,
) -> dict:
    """Trains (or resumes) one GAN seed, fits its directions and evaluates every family."""
    from solarjax import gan
    from solarjax.demo import FULL, _gan_config
    from solarjax.steering import directions as directions_lib
    from solarjax.steering import evaluate
    from solarjax.train import gan as gan_train

    config = _gan_config(tfds_dir, FULL)
    config.seed = seed
    config.total_steps = gan_steps
    config.eval_every = gan_steps
    config.sample_every = max(gan_steps // 3, 1)
    workdir = out / f"gan_seed{seed}"
    started = time.perf_counter()
    gan_train.train_and_evaluate(config, workdir)
    trained = time.perf_counter()
    generator = gan.load(workdir)
    directions = directions_lib.fit_directions(generator, n=directions_samples)
    directions.save(workdir / "directions")
    families = evaluate.evaluate_families(generator, directions, n_latents=latents, reference_images=reference)
    return {
        "seed": seed,
        "gan_seconds": trained - started,
        "steering_seconds": time.perf_counter() - trained,
        "diagnosis": directions.diagnosis,
        "paper_accuracy": directions.test_accuracy,
        "piecewise_accuracy": directions.piecewise_accuracy,
        "families": families,
    }


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
    diagnosis = {
        name: {
            features: spread([run["diagnosis"]["quantities"][name]["accuracy"][features] for run in runs])
            for features in ("z", "z_norm", "folded", "folded_norm")
        }
        for name in runs[0]["diagnosis"]["quantities"]
    }
    best = [run["families"]["best"] for run in runs]
    return {"families": families, "diagnosis": diagnosis, "best": {m: best.count(m) for m in set(best)}}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tfds-dir",
        type=pathlib.Path,
        required=True,
        help="TFDS data directory holding sharp_patches/synthetic (e.g. a demo's tfds/)",
    )
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gan-steps", type=int, default=1500)
    parser.add_argument("--directions-samples", type=int, default=10_000)
    parser.add_argument("--latents", type=int, default=100, help="base latents of the family comparison")
    args = parser.parse_args(argv)
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
            run_seed(seed, args.tfds_dir, args.out, args.gan_steps, args.directions_samples, args.latents, reference)
        )
        (args.out / f"seed{seed}.json").write_text(json.dumps(jsonable(runs[-1]), indent=1))
    result = {
        "settings": vars(args) | {"tfds_dir": str(args.tfds_dir), "out": str(args.out)},
        "summary": summarise(runs),
        "runs": runs,
    }
    (args.out / "steering_seeds.json").write_text(json.dumps(jsonable(result), indent=1))
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
