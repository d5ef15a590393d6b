r"""Latent maps: the GAN's latent space seen on planes spanned by SVM normals (the paper's Figure 3).

Command::

    python -m experiments.latent_maps --workdir demo_out --out results/latent_maps [--num 2000] \
        [--pairs tuf:psep tuf:r_value psep:r_value]

For a pair of quantities (a, b), latents z ~ N(0, I) are placed at x = n_a . z + c_a (signed distance to
a's SVM boundary, positive where a is high) and y = u . z, u the unit part of n_b orthogonal to n_a.
Since n_b lies in that plane, b's boundary n_b . z + c_b = 0 is the straight line
``cos(n_a, n_b) (x - c_a) + sin(n_a, n_b) y + c_b = 0`` there. Three panels colour the points by
TUF, PSEP and R (grey: undefined, a polarity is empty); a fourth places patches generated on a 5x5
grid of (x, y) in [-3, 3]^2 (one base latent whose components along n_a and u are replaced). Per quantity the plain map of
`solarjax.steering.evaluate.plot_latent_map` (normal against a random orthogonal direction) is drawn too.

Writes ``latent_map_<a>_<b>.png`` per pair, ``latent_map_<q>.png`` per quantity and
``latent_maps.json``: per pair the cosine of the normals, and per quantity the boundary accuracy on
these latents (share of points on the side that matches "above the SVM's label threshold") and the
Spearman correlation of the quantity with x.

Runtime (2-core CPU, shared, load ~10): 65-70 s with the defaults. The dataset arguments are accepted for a uniform
command line; the maps depend only on the GAN and its directions.
Expected (full demo): the TUF and R normals are close (cos 0.69: R, a flux, grows with TUF), PSEP's
nearly orthogonal to both (cos 0.23 and -0.01); the colours change across each boundary; boundary
accuracies TUF 0.91, PSEP 0.68, R 0.80 on these latents (SVM test accuracies 0.83 / 0.61 / 0.66 on
the fitting latents; both count only latents where the quantity is defined, 10 % of them here).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from experiments import common, plotting
from solarjax import steering
from solarjax.train import monitor

COLOURED = ("tuf", "psep", "r_value")
DEFAULT_PAIRS = ("tuf:psep", "tuf:r_value", "psep:r_value")
SPAN = 3.0
"""Half-width of the thumbnail grid in latent units."""


def plane(directions, a: str, b: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Orthonormal axes of the (a, b) plane: (n_a [D], u [D], cos(n_a, n_b)).

    Raises:
      ValueError: the two normals are parallel (no plane).
    """
    n_a, n_b = directions.normal(a), directions.normal(b)
    cosine = float(n_a @ n_b)
    rest = n_b - cosine * n_a
    if np.linalg.norm(rest) < 1e-6:
        raise ValueError(f"the normals of {a} and {b} are parallel: they span no plane")
    return n_a, rest / np.linalg.norm(rest), cosine


def boundary_line(x: np.ndarray, cosine: float, intercept_a: float, intercept_b: float) -> np.ndarray:
    """y of b's boundary at the map's x values (see the module docstring)."""
    sine = np.sqrt(1.0 - cosine**2)
    return (-intercept_b - cosine * (x - intercept_a)) / sine


def boundary_accuracy(directions, name: str, z: np.ndarray, values: np.ndarray) -> float:
    """Share of latents [N, D] with a defined value on the side of ``name``'s boundary matching
    value > its high label threshold (NaN when no value is defined)."""
    defined = np.isfinite(values)
    if not defined.any():
        return float("nan")
    high_side = z[defined] @ directions.normal(name) + directions.intercept(name) > 0
    return float(np.mean(high_side == (values[defined] > directions.label_thresholds[name][1])))


def plot_pair(path, generator, directions, a: str, b: str, z: np.ndarray, values: dict, grid: int = 5, seed: int = 0):
    """The (a, b) map: three coloured scatter panels and a thumbnail panel, both boundaries drawn."""
    n_a, u, cosine = plane(directions, a, b)
    c_a, c_b = directions.intercept(a), directions.intercept(b)
    x, y = z @ n_a + c_a, z @ u
    line_x = np.linspace(-SPAN - 0.6, SPAN + 0.6, 50)
    line_y = boundary_line(line_x, cosine, c_a, c_b)
    label_a, label_b = (plotting.QUANTITY_LABELS.get(q, q) for q in (a, b))

    def boundaries(ax):
        ax.axvline(0.0, color="k", ls="--", lw=1.5, label=f"{label_a} boundary")
        ax.plot(line_x, line_y, color="m", ls="-.", lw=1.5, label=f"{label_b} boundary")
        ax.set_xlim(-SPAN - 0.6, SPAN + 0.6)
        ax.set_ylim(-SPAN - 0.6, SPAN + 0.6)
        ax.set_aspect("equal")
        ax.set_xlabel(f"signed distance to the {label_a} boundary")
        ax.set_ylabel(f"{label_b} normal, orthogonal to {label_a}'s")

    figure = plotting.new_figure(13, 11.5)
    axes = figure.subplots(2, 2).ravel()
    for ax, name in zip(axes, COLOURED):
        v = values[name]
        defined = np.isfinite(v)
        ax.scatter(x[~defined], y[~defined], s=4, color="0.8", label=f"undefined ({(~defined).mean():.0%})")
        low, high = np.nanpercentile(v, [2, 98]) if defined.any() else (0.0, 1.0)
        points = ax.scatter(x[defined], y[defined], c=v[defined], s=6, cmap="viridis", vmin=low, vmax=high)
        boundaries(ax)
        ax.set_title(f"coloured by {plotting.QUANTITY_LABELS[name]}")
        figure.colorbar(points, ax=ax, shrink=0.85, label=f"{plotting.QUANTITY_LABELS[name]} (2-98 % range)")
    axes[0].legend(loc="lower left", fontsize="small")

    positions = np.linspace(-SPAN, SPAN, grid)
    base = steering.sample_latents(1, generator.latent_dim, seed + 1)[0].astype(np.float64)
    base -= (base @ n_a) * n_a + (base @ u) * u
    cells = [(gx, gy) for gy in positions for gx in positions]
    thumbs = steering.map_generated(generator, np.array([base + (gx - c_a) * n_a + gy * u for gx, gy in cells]))
    half = 0.45 * (positions[1] - positions[0])
    ax = axes[3]
    for (gx, gy), image in zip(cells, thumbs):
        field = monitor.show_field(ax, image, extent=(gx - half, gx + half, gy - half, gy + half))
    boundaries(ax)
    ax.set_title("generated patches on the plane")
    figure.colorbar(field, ax=ax, shrink=0.85, label="Br [G]")
    figure.suptitle(
        f"latent plane of the {label_a} and {label_b} normals (cos = {cosine:+.2f})\n"
        f"SVM test accuracy {label_a} {directions.test_accuracy[a]:.2f}, "
        f"{label_b} {directions.test_accuracy[b]:.2f}"
    )
    return plotting.save(figure, path)


def run(args) -> dict:
    """Writes the pair maps, the per-quantity maps and ``latent_maps.json``; returns the JSON."""
    from solarjax.steering import evaluate

    started = time.perf_counter()
    generator = common.load_generator(args.workdir)
    directions = common.load_directions(args.workdir, generator)
    z = steering.sample_latents(args.num, generator.latent_dim, args.seed).astype(np.float64)
    values = steering.latent_quantities(generator, z)
    pairs = [tuple(p.split(":")) for p in args.pairs]
    figures, pair_results = [], {}
    for a, b in pairs:
        n_a, u, cosine = plane(directions, a, b)
        figures.append(
            plot_pair(args.out / f"latent_map_{a}_{b}.png", generator, directions, a, b, z, values, seed=args.seed)
        )
        pair_results[f"{a}:{b}"] = {
            "cosine": cosine,
            "spearman_with_y": {q: common.spearman(z @ u, values[q]) for q in COLOURED},
        }
    quantities = sorted({q for pair in pairs for q in pair}, key=list(directions.names).index)
    for name in quantities:
        figures.append(
            evaluate.plot_latent_map(
                generator,
                directions,
                name,
                args.out / f"latent_map_{name}.png",
                n_points=min(args.num, 1000),
                seed=args.seed,
            )
        )
    per_quantity = {
        name: {
            "svm_test_accuracy": directions.test_accuracy[name],
            "boundary_accuracy": boundary_accuracy(directions, name, z, values[name]),
            "spearman_with_x": common.spearman(z @ directions.normal(name) + directions.intercept(name), values[name]),
            "defined_fraction": float(np.isfinite(values[name]).mean()),
        }
        for name in quantities
    }
    result = {
        "num_latents": args.num,
        "seed": args.seed,
        "gan_step": generator.step,
        "pairs": pair_results,
        "quantities": per_quantity,
        "figures": common.relative_paths(figures, args.out),
        "seconds": time.perf_counter() - started,
    }
    common.write_json(args.out, "latent_maps.json", result)
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    parser = common.parser(__doc__)
    parser.add_argument("--num", type=int, default=2000, help="latents on each map (default 2000)")
    parser.add_argument("--pairs", nargs="+", default=list(DEFAULT_PAIRS), help="quantity pairs a:b")
    args = common.parse(parser, argv)
    bad = [p for p in args.pairs if len(p.split(":")) != 2]
    if bad:
        parser.error(f"--pairs takes quantity pairs a:b, got {bad}")
    result = run(args)
    for name, row in result["quantities"].items():
        print(
            f"{name}: boundary accuracy {row['boundary_accuracy']:.3f}, Spearman with distance "
            f"{row['spearman_with_x']:.3f}"
        )
    return result


if __name__ == "__main__":
    main()
