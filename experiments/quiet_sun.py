r"""Where a generator's quiet-Sun and gradient mismatch comes from (issue 23): its measured instrument noise
rescaled after training, and the field's gradient split by field strength.

    python -m experiments.quiet_sun --run OUT/edge_instrument_threshold_minibatch/seed23 --step 550 \
        --data-dir DEMO/tfds --out results/quiet_sun [--num 500]

For a GAN run of an instrument-noise architecture (`solarjax.models.gan.INSTRUMENT_NOISE_ARCHITECTURES`):

1. the scale s of the calibrated noise widths whose generated median quiet-pixel width
   (`quality.noise_width`) equals the *training* split's (bisection on 250 generated patches, fitting
   latents apart from the scoring ones); nothing is chosen on the validation split;
2. the quality figures of ``--num`` generated against ``--num`` *validation* patches at s = 1 (as trained)
   and at the fitted s, with 95% bootstrap intervals (`experiments.gan_candidates.bootstrap_intervals`);
3. for the data and both generators: the share of pixels and the mean |grad Br| (G/px) in four field bands
   (|Br| < 50, 50-200, 200-500, >= 500 G), and each band's contribution to the patch's mean gradient.

Writes ``quiet_sun.json`` in ``--out`` and prints it.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

BANDS_GAUSS = ((0.0, 50.0), (50.0, 200.0), (200.0, 500.0), (500.0, np.inf))
"""Field-strength bands (|Br|, G) of the gradient split."""
FIGURES = (
    "realism_score",
    "realism/ks_noise_width_gauss",
    "realism/ks_spectral_slope",
    "realism/ks_mean_gradient_gauss_per_pixel",
    "realism/strong_pixel_ratio",
    "realism/r_median_ratio",
    "ks_mean",
    "frechet",
)


def gradient_by_band(images) -> dict[str, dict[str, float]]:
    """Per band of |Br|: pixel share, mean |grad Br| there (G/px) and its contribution to the mean over all pixels."""
    from solarjax.train import quality

    field = quality.field_gauss(images)
    rows, cols = np.gradient(field, axis=(1, 2))
    gradient = np.hypot(rows, cols)
    bands = {}
    for low, high in BANDS_GAUSS:
        inside = (np.abs(field) >= low) & (np.abs(field) < high)
        bands[f"{low:g}-{high:g} G"] = {
            "pixel_share": float(inside.mean()),
            "mean_gradient": float(gradient[inside].mean()) if inside.any() else float("nan"),
            "contribution": float((gradient * inside).mean()),
        }
    return bands


def noise_scaled_sampler(generator, scale: float):
    """``z -> images`` of `generator` (a `solarjax.gan.TrainedGenerator`) with its noise widths times `scale`."""
    import jax
    import ml_collections

    from solarjax.train import gan as gan_train
    from solarjax.train import sharding

    config = ml_collections.ConfigDict(generator.config)
    config.model.noise_widths = [float(w) * scale for w in config.model.noise_widths]
    module = gan_train.programs_for(config, sharding.make_data_mesh()).generator
    apply = jax.jit(lambda params, z: module.apply({"params": params}, z))
    return lambda z: np.concatenate(
        [np.asarray(apply(generator.params, z[i : i + 250])) for i in range(0, len(z), 250)]
    )


def fit_noise_scale(generator, target_width: float, latents: np.ndarray, rounds: int = 10) -> float:
    """The noise-width scale in [0.2, 1.5] whose median generated quiet width is `target_width` (G), by bisection."""
    from solarjax.train import quality

    low, high = 0.2, 1.5
    for _ in range(rounds):
        middle = 0.5 * (low + high)
        width = float(np.nanmedian(quality.noise_width(noise_scaled_sampler(generator, middle)(latents))))
        low, high = (middle, high) if width < target_width else (low, middle)
    return 0.5 * (low + high)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=pathlib.Path, required=True, help="GAN run directory (instrument-noise arch)")
    parser.add_argument("--step", default="best", help="checkpoint: 'best', 'latest' or a step")
    parser.add_argument("--data-dir", type=pathlib.Path, required=True, help="TFDS folder of sharp_patches/synthetic")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--num", type=int, default=500, help="patches per set (default 500)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default 200)")
    args = parser.parse_args(argv)

    from experiments import common
    from experiments.gan_candidates import bootstrap_intervals
    from solarjax import gan
    from solarjax.models import gan as gan_models
    from solarjax.train import quality

    generator = gan.load(args.run, step=int(args.step) if args.step.isdigit() else args.step)
    if generator.config["model"]["arch"] not in gan_models.INSTRUMENT_NOISE_ARCHITECTURES:
        parser.error(f"--run {args.run}: {generator.config['model']['arch']!r} adds no calibrated instrument noise")
    train = common.load_patches(args.data_dir, "synthetic", "train", limit=args.num, seed=0)["image"]
    validation = common.load_patches(args.data_dir, "synthetic", "validation", limit=args.num, seed=0)["image"]
    target = float(np.nanmedian(quality.noise_width(train)))
    scale = fit_noise_scale(generator, target, generator.sample_latents(250, seed=7))
    encoder = quality.random_feature_encoder(0)
    reference = quality.summarise([validation[i : i + 250] for i in range(0, len(validation), 250)], encoder)
    latents = generator.sample_latents(args.num, seed=1000 + int(generator.config["seed"]))
    result = {
        "run": str(args.run),
        "step": generator.step,
        "train_median_quiet_width_gauss": target,
        "fitted_noise_scale": scale,
        "data_gradient_by_band": gradient_by_band(validation),
        "generators": {},
    }
    for label, value in (("as_trained", 1.0), ("noise_scale_fitted", scale)):
        images = noise_scaled_sampler(generator, value)(latents)
        generated = quality.summarise([images[i : i + 250] for i in range(0, len(images), 250)], encoder)
        figures = quality.quality_figures(generated, reference)
        intervals = bootstrap_intervals(generated, reference, args.bootstrap, seed=0)
        result["generators"][label] = {
            "noise_scale": value,
            "median_quiet_width_gauss": float(np.nanmedian(quality.noise_width(images))),
            "figures": {k: [figures[k], *intervals.get(k, (float("nan"), float("nan")))] for k in FIGURES},
            "gradient_by_band": gradient_by_band(images),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    print(common.write_json(args.out, "quiet_sun.json", result).read_text())
    return result


if __name__ == "__main__":
    main()
