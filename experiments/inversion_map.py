r"""GAN inversion error of real patches against their position on the disk (longitude and latitude).

Command (the paper's study is on real SHARPs)::

    python -m experiments.inversion_map --workdir demo_out --out results/inversion \
        --dataset fits --data-dir ~/tensorflow_datasets [--num 40] [--split all] [--steps 1000] [--restarts 10]

Up to ``--num`` patches (a seeded random choice) of ``--split`` are inverted with
`solarjax.steering.invert` (the authors' masked MSE: weight 1 where |s| > 0.05, 0.5 elsewhere; Adam,
``--restarts`` random starts, the best kept). ``inversion_map.png``: the patches at their Stonyhurst
(longitude, latitude) coloured by the error; error against |longitude| (does the GAN reproduce patches
near the limb, foreshortened in CEA, worse?), against |latitude| and against TUF (bigger regions have
more to reproduce); the three best and three worst patches above their reconstructions.
``inversion_map.json``: per patch its split, example index, HARP, latitude, longitude, error and TUF of
patch and reconstruction; the Spearman correlations of the error with |lon|, |lat| and TUF.

Synthetic patches have a latitude but no longitude (NaN): the longitude panels then say so.

Runtime (2-core CPU shared with other jobs, load ~13): 624 s for the defaults (40 patches x 4
restarts x 200 steps, about 19 ms per patch, restart and step); the paper's 10 restarts x 1000 steps
are 12x more: use an accelerator for them (see README.md).
Expected: the error grows with TUF (Spearman 0.87 for the full demo's GAN on the 40 real frames).
The paper studies the error against longitude: with a GAN trained on real SHARPs, expect it to grow
towards the limb, where CEA patches are reprojected from foreshortened pixels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from experiments import common, plotting
from solarjax.train import monitor

EXAMPLES = 3
"""Best and worst patches shown."""


def plot_inversion(path, patches: dict, result, dataset: str):
    """Position map, error against |lon|, |lat| and TUF, and the best and worst reconstructions."""
    error = result.error
    lat, lon = patches["lat_deg"].astype(float), patches["lon_deg"].astype(float)
    tuf = result.quantities_real["tuf"]
    has_lon = np.isfinite(lon).any()
    figure = plotting.new_figure(17, 9.5)
    top, bottom = figure.subfigures(2, 1, height_ratios=(1.0, 1.05))
    axes = top.subplots(1, 4)

    ax = axes[0]
    if has_lon:
        points = ax.scatter(lon, lat, c=error, cmap="magma_r", s=30, edgecolor="k", lw=0.3)
        top.colorbar(points, ax=ax, label="error", shrink=0.9)
        ax.set_xlim(-90, 90)
        ax.set_ylim(-60, 60)
        ax.set_xlabel("Stonyhurst longitude [deg]")
        ax.set_ylabel("Stonyhurst latitude [deg]")
        ax.set_title("patch centres, coloured by error")
    else:
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            f"sharp_patches/{dataset} has no longitudes\n(synthetic regions: latitude only)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    for ax, x, xlabel in (
        (axes[1], np.abs(lon), "|longitude| [deg]"),
        (axes[2], np.abs(lat), "|latitude| [deg]"),
        (axes[3], tuf, "TUF of the patch"),
    ):
        finite = np.isfinite(x)
        if not finite.any():
            ax.set_axis_off()
            ax.text(
                0.5,
                0.5,
                f"no {xlabel.split(' [')[0]} in this dataset",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            continue
        ax.scatter(x[finite], error[finite], s=18, color="tab:red")
        ax.set_xlabel(xlabel)
        if ax is axes[1]:
            ax.set_ylabel("inversion error (masked MSE)")
        ax.set_title(f"Spearman rho = {common.spearman(x, error):.2f} ({finite.sum()} patches)")

    order = np.argsort(error)
    shown = np.concatenate([order[:EXAMPLES], order[::-1][:EXAMPLES]])[: len(error)]
    panels = bottom.subplots(2, len(shown), squeeze=False)
    for column, i in enumerate(shown):
        kind = "best" if column < min(EXAMPLES, len(error)) else "worst"
        where = f"lon {lon[i]:+.0f}, lat {lat[i]:+.0f}" if np.isfinite(lon[i]) else f"lat {lat[i]:+.0f}"
        for row, (image, caption) in enumerate(
            (
                (patches["image"][i], f"{kind}: {where}\nerror {error[i]:.4f}"),
                (result.reconstructions[i], "reconstruction G(z*)"),
            )
        ):
            ax = panels[row, column]
            artist = monitor.show_field(ax, image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(caption, fontsize=8)
    bottom.colorbar(artist, ax=panels, label="Br [G]", shrink=0.85)
    return plotting.save(figure, path)


def run(args) -> dict:
    """Inverts the patches; writes ``inversion_map.png`` and ``inversion_map.json``; returns the JSON."""
    from solarjax import steering

    started = time.perf_counter()
    patches = common.load_patches(
        args.data_dir,
        args.dataset,
        args.split,
        keys=("image", "lat_deg", "lon_deg", "harpnum"),
        limit=args.num,
        seed=args.seed,
    )
    generator = common.load_generator(args.workdir)
    result = steering.invert(patches["image"], generator, restarts=args.restarts, steps=args.steps, seed=args.seed)
    figure = plot_inversion(args.out / "inversion_map.png", patches, result, args.dataset)
    lat, lon = patches["lat_deg"].astype(float), patches["lon_deg"].astype(float)
    tuf = result.quantities_real["tuf"]
    rows = [
        {
            "split": str(patches["split"][i]),
            "example_index": int(patches["example_index"][i]),
            "harpnum": int(patches["harpnum"][i]),
            "lat_deg": lat[i],
            "lon_deg": lon[i],
            "error": float(result.error[i]),
            "tuf": float(tuf[i]),
            "tuf_reconstructed": float(result.quantities_reconstructed["tuf"][i]),
        }
        for i in range(len(lat))
    ]
    summary = {
        "num_patches": len(rows),
        "steps": args.steps,
        "restarts": args.restarts,
        "gan_step": generator.step,
        "dataset": args.dataset,
        "split": args.split,
        "median_error": float(np.median(result.error)),
        "spearman_error_vs_abs_lon": common.spearman(np.abs(lon), result.error),
        "spearman_error_vs_abs_lat": common.spearman(np.abs(lat), result.error),
        "spearman_error_vs_tuf": common.spearman(tuf, result.error),
    }
    output = {
        **summary,
        "patches": rows,
        "figures": common.relative_paths([figure], args.out),
        "seconds": time.perf_counter() - started,
    }
    common.write_json(args.out, "inversion_map.json", output)
    return output


def main(argv: Sequence[str] | None = None) -> dict:
    parser = common.parser(__doc__)
    parser.add_argument("--num", type=int, default=40, help="patches inverted (default 40)")
    parser.add_argument("--split", default="all", help="train, validation, test or all (default all)")
    parser.add_argument("--steps", type=int, default=200, help="Adam steps (the paper: 1000)")
    parser.add_argument("--restarts", type=int, default=4, help="random starts per patch (the paper: 10)")
    args = common.parse(parser, argv)
    result = run(args)
    print(
        f"inverted {result['num_patches']} patches: median error {result['median_error']:.4f}; Spearman with "
        f"|lon| {result['spearman_error_vs_abs_lon']:.2f}, |lat| {result['spearman_error_vs_abs_lat']:.2f}, "
        f"TUF {result['spearman_error_vs_tuf']:.2f}"
    )
    return result


if __name__ == "__main__":
    main()
