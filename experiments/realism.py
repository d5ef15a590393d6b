r"""Real against generated patches: sample grids and realism diagnostics.

Command (synthetic default; for real SHARPs add ``--dataset fits --data-dir DIR``)::

    python -m experiments.realism --workdir demo_out --out results/realism [--num 1000] [--split all]

Real patches: up to ``--num`` examples (a seeded random choice) of the dataset's ``--split``;
generated: as many G(z), z ~ N(0, I) (seed ``--seed``), from the work directory's GAN. Both sets are
scored the same way, on s = B / 1000 G:

* pixel histogram of Br in G over [-1000, 1000] G;
* noise width: per patch, the standard deviation of the quiet pixels (|s| < 0.05, 50 G), in G;
* radial power spectrum: |FFT|^2 of the mean-subtracted patch, averaged over rings of integer
  wavenumber k (cycles per 128 pixels); its slope is the least-squares slope of log P against log k
  over 3 <= k <= 48, per patch;
* mean gradient magnitude: mean over pixels of |grad Br| (central differences), in G per pixel;
* strong-pixel fraction: per patch, the share of pixels beyond +-500 G;
* the library's figures (`solarjax.train.quality.realism_figures`: strong-pixel density ratio, spectral
  peak ratios at k = 16, 32, 48, median-R ratio, ``realism_score``), the ones logged during training;
* the quiet-field coherence (`solarjax.train.gan.quiet_coherence`), the log10 power in the wavenumber bands of
  `solarjax.train.quality.SPECTRUM_BAND_EDGES` (`quality.band_power`, G^2) and the orientation contrast in the
  bands of `quality.ORIENTATION_BAND_EDGES` (`quality.orientation_contrast`: log10 axis over diagonal power), per
  patch;
* two-sample KS distance between the sets for every `solarjax.physics` quantity and every per-patch value above;
* a classifier two-sample test (`two_sample_test`): how well a logistic regression and gradient-boosted trees
  tell the sets apart from all those per-patch values (5-fold cross-validated accuracy, 95% bootstrap interval over
  patches; 0.5 = indistinguishable), and the values that tell them apart best one at a time.

Writes ``realism.png`` (4x4 grids of both sets on hmimag, then the diagnostic panels) and
``realism.json`` (per-set medians, KS distances, sizes).

Runtime (2-core CPU, shared, load ~10): 40-45 s for ``--num 1000`` on the full demo's work directory.
Expected: the KS distances restate what the GAN learned: for the full demo GAN (1,500 steps, a
first look) large distances (0.3-0.9) for most quantities; a converged GAN on real SHARPs should
bring them towards 0.1. The real power-spectrum slopes are steeper than the generated ones when the
generator adds checkerboard texture (excess power at high k).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from experiments import common, plotting
from solarjax import physics
from solarjax.train import quality

QUIET_LEVEL = quality.QUIET_LEVEL_GAUSS / physics.GAUSS_PER_UNIT
"""|s| below 50 G counts as quiet (noise) pixels."""
SLOPE_RANGE = quality.SLOPE_RANGE
HISTOGRAM_BINS = np.linspace(-1000.0, 1000.0, 81)
DIAGNOSTICS = quality.PER_PATCH_DIAGNOSTICS
_field = quality.field_gauss
radial_power_spectrum = quality.radial_power_spectrum


# ---------------------------------------------------------------------------------- diagnostics
def texture_diagnostics(images: np.ndarray, batch: int = 256) -> dict[str, np.ndarray]:
    """[N] per patch: ``quiet_coherence`` (`solarjax.train.gan.quiet_coherence`), ``log_band_power_k{a}-{b}``, the
    log10 of `quality.band_power` (G^2, +1e-12) in each band [a, b) of `quality.SPECTRUM_BAND_EDGES`, and
    ``orientation_contrast_k{a}-{b}`` (`quality.orientation_contrast`) in those of `quality.ORIENTATION_BAND_EDGES`."""
    import jax.numpy as jnp

    from solarjax.train import gan as gan_train

    images = np.asarray(images, np.float32).reshape(len(images), 128, 128, 1)
    coherence = np.concatenate(
        [
            np.asarray(gan_train.quiet_coherence(jnp.asarray(images[i : i + batch])))
            for i in range(0, len(images), batch)
        ]
    )
    bands = np.log10(quality.band_power(_field(images)) + 1e-12)
    edges = quality.SPECTRUM_BAND_EDGES
    names = [f"log_band_power_k{low}-{high - 1}" for low, high in zip(edges[:-1], edges[1:])]
    contrast = quality.orientation_contrast(_field(images))
    edges = quality.ORIENTATION_BAND_EDGES
    contrast_names = [f"orientation_contrast_k{low}-{high - 1}" for low, high in zip(edges[:-1], edges[1:])]
    return {
        "quiet_coherence": coherence.astype(np.float64),
        **dict(zip(names, bands.T.astype(np.float64))),
        **dict(zip(contrast_names, contrast.T.astype(np.float64))),
    }


def diagnostics(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-patch realism diagnostics [N] (`solarjax.train.quality.realism_diagnostics`), `texture_diagnostics` and
    every physics quantity (normalised units)."""
    per_patch, _, _ = quality.realism_diagnostics(images)
    quantities = {name: np.asarray(v, np.float64) for name, v in physics.quantities(images).items()}
    return {**per_patch, **texture_diagnostics(images), **quantities}


def two_sample_test(
    real: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray], folds: int = 5, resamples: int = 1000, seed=0
) -> dict:
    """Classifier two-sample test on the per-patch values of `diagnostics` (non-finite values set to each column's
    median): the 5-fold cross-validated accuracy of a standardised logistic regression and of gradient-boosted
    trees at telling generated from real, each with a 95% bootstrap interval over patches (0.5: the sets cannot
    be told apart; 1: every patch is sorted), and every value's accuracy alone (logistic, same folds), best first."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    names = sorted(real)
    features = np.concatenate([np.stack([np.asarray(s[n], np.float64) for n in names], 1) for s in (real, generated)])
    finite = np.isfinite(features)
    medians = np.array([np.median(c[f]) if f.any() else 0.0 for c, f in zip(features.T, finite.T)])
    features = np.where(finite, features, medians)
    labels = np.r_[np.zeros(len(real[names[0]])), np.ones(len(generated[names[0]]))]
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(labels), (resamples, len(labels)))

    def scored(model, x) -> dict:
        # one OpenMP thread: the trees' spinning thread pool took 490x longer (375 s against 0.8 s for 400 patches)
        # on a 2-core machine with other work running
        with threadpool_limits(limits=1, user_api="openmp"):
            correct = (cross_val_predict(model, x, labels, cv=splits) == labels).astype(np.float64)
        boot = correct[draws].mean(axis=1)
        return {"accuracy": float(correct.mean()), "interval": [float(q) for q in np.percentile(boot, [2.5, 97.5])]}

    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    single = {name: scored(logistic, features[:, [j]])["accuracy"] for j, name in enumerate(names)}
    return {
        "logistic": scored(logistic, features),
        "boosted_trees": scored(HistGradientBoostingClassifier(random_state=seed), features),
        "single_value": dict(sorted(single.items(), key=lambda item: -item[1])),
        "patches": [int(len(labels) - labels.sum()), int(labels.sum())],
    }


def compare(real: Mapping[str, np.ndarray], generated: Mapping[str, np.ndarray]) -> dict:
    """KS distance and the median of each set for every per-patch value of `diagnostics`."""
    return {
        name: {
            "ks": quality.ks_distance(real[name], generated[name]),
            "median_real": float(np.nanmedian(real[name])) if np.isfinite(real[name]).any() else float("nan"),
            "median_generated": (
                float(np.nanmedian(generated[name])) if np.isfinite(generated[name]).any() else float("nan")
            ),
        }
        for name in real
    }


# --------------------------------------------------------------------------------------- figure
def plot_realism(
    path,
    real_images: np.ndarray,
    generated_images: np.ndarray,
    real: Mapping[str, np.ndarray],
    generated: Mapping[str, np.ndarray],
    table: Mapping[str, Mapping[str, float]],
    labels: Sequence[str] = ("real", "generated"),
    grid: int = 4,
):
    """Sample grids of both sets above six diagnostic panels; returns the PNG path."""
    figure = plotting.new_figure(16, 14.5)
    top, bottom = figure.subfigures(2, 1, height_ratios=(1.0, 1.15))
    left, right = top.subfigures(1, 2)
    shown = grid * grid
    plotting.field_grid(left, real_images[:shown], grid, f"{labels[0]} patches")
    plotting.field_grid(right, generated_images[:shown], grid, f"{labels[1]} patches (G(z), z ~ N(0, I))")
    axes = bottom.subplots(2, 3)
    colours = {labels[0]: "tab:blue", labels[1]: "tab:orange"}
    sets = ((labels[0], real_images, real), (labels[1], generated_images, generated))

    ax = axes[0, 0]
    for label, images, _ in sets:
        ax.hist(
            _field(images).ravel(),
            bins=HISTOGRAM_BINS,
            density=True,
            histtype="step",
            lw=1.5,
            color=colours[label],
            label=label,
        )
    ax.set_yscale("log")
    ax.set_xlabel("Br [G] (clipped at +-1000 G)")
    ax.set_ylabel("pixel density [1/G]")
    ax.set_title("pixel histogram")
    ax.legend()

    for ax, name, xlabel, title in (
        (axes[0, 1], "noise_width_gauss", "std of quiet pixels (|Br| < 50 G) [G]", "noise width"),
        (axes[1, 0], "mean_gradient_gauss_per_pixel", "mean |grad Br| [G / pixel]", "mean gradient magnitude"),
        (
            axes[1, 1],
            "spectral_slope",
            f"slope of log P vs log k, k = {SLOPE_RANGE[0]}-{SLOPE_RANGE[1]}",
            "radial power-spectrum slope",
        ),
    ):
        values = [v[name][np.isfinite(v[name])] for _, _, v in sets]
        both = np.concatenate(values)
        bins = np.linspace(both.min(), both.max(), 31) if both.size and np.ptp(both) > 0 else 10
        for (label, _, _), v in zip(sets, values):
            ax.hist(
                v,
                bins=bins,
                histtype="step",
                lw=1.5,
                color=colours[label],
                label=f"{label}: median {np.median(v):.3g}" if v.size else label,
            )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("patches")
        ax.set_title(f"{title} (KS {table[name]['ks']:.2f})")
        ax.legend(fontsize="small")

    ax = axes[0, 2]
    for label, images, _ in sets:
        k, power = radial_power_spectrum(images)
        ax.loglog(k, np.exp(np.mean(np.log(np.maximum(power, 1e-30)), axis=0)), color=colours[label], label=label)
    ax.axvspan(*SLOPE_RANGE, color="grey", alpha=0.12, label="slope fit range")
    ax.set_xlabel("wavenumber k [cycles per 128 pixels]")
    ax.set_ylabel("power [G^2] (geometric mean over patches)")
    ax.set_title("radial power spectrum")
    ax.legend(fontsize="small")

    ax = axes[1, 2]
    names = list(table)
    ks = [table[n]["ks"] if np.isfinite(table[n]["ks"]) else 0.0 for n in names]
    ax.barh(
        np.arange(len(names)), ks, color=["tab:green" if n in physics.QUANTITY_NAMES else "tab:purple" for n in names]
    )
    ax.set_yticks(
        np.arange(len(names)), [plotting.QUANTITY_LABELS.get(n, n.replace("_", " ")) for n in names], fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("KS distance (0: same distribution, 1: disjoint)")
    ax.set_title(f"KS {labels[0]} vs {labels[1]}\n(green: physics quantities, purple: diagnostics)", fontsize=10)
    return plotting.save(figure, path)


# ----------------------------------------------------------------------------------------- main
def run(args) -> dict:
    """Draws the two sets, scores them, writes ``realism.png`` and ``realism.json``; returns the JSON."""
    from solarjax import steering

    started = time.perf_counter()
    real_images = common.load_patches(args.data_dir, args.dataset, args.split, limit=args.num, seed=args.seed)["image"]
    generator = common.load_generator(args.workdir)
    z = steering.sample_latents(len(real_images), generator.latent_dim, args.seed)
    generated_images = steering.map_generated(generator, z)
    real, generated = diagnostics(real_images), diagnostics(generated_images)
    table = compare(real, generated)
    sorting = two_sample_test(real, generated, seed=args.seed)
    encoder = quality.random_feature_encoder(0)
    summaries = [
        quality.summarise([images[i : i + 250] for i in range(0, len(images), 250)], encoder)
        for images in (generated_images, real_images)
    ]
    library = quality.quality_figures(*summaries)
    figure = plot_realism(
        args.out / "realism.png",
        real_images,
        generated_images,
        real,
        generated,
        table,
        labels=(f"{args.dataset} ({args.split})", "generated"),
    )
    result = {
        "dataset": args.dataset,
        "split": args.split,
        "num_real": len(real_images),
        "num_generated": len(generated_images),
        "gan_step": generator.step,
        "seed": args.seed,
        "quiet_level": QUIET_LEVEL,
        "slope_range": SLOPE_RANGE,
        "table": table,
        "two_sample_test": sorting,
        "realism": {k: v for k, v in library.items() if k.startswith("realism")},
        "figures": common.relative_paths([figure], args.out),
        "seconds": time.perf_counter() - started,
    }
    common.write_json(args.out, "realism.json", result)
    return result


def main(argv=None) -> dict:
    parser = common.parser(__doc__)
    parser.add_argument("--num", type=int, default=1000, help="patches per set (default 1000)")
    parser.add_argument("--split", default="all", help="split of the real patches: train, validation, test or all")
    args = common.parse(parser, argv)
    result = run(args)
    worst = max(result["table"].items(), key=lambda item: np.nan_to_num(item[1]["ks"], nan=-1.0))
    sorting = result["two_sample_test"]
    telling = ", ".join(f"{name} {accuracy:.2f}" for name, accuracy in list(sorting["single_value"].items())[:3])
    print(
        f"realism: {result['num_real']} real vs {result['num_generated']} generated; largest KS "
        f"{worst[0]} {worst[1]['ks']:.3f}; told apart with accuracy {sorting['logistic']['accuracy']:.3f} (logistic), "
        f"{sorting['boosted_trees']['accuracy']:.3f} (trees), best alone: {telling}; {args.out / 'realism.png'}"
    )
    return result


if __name__ == "__main__":
    main()
