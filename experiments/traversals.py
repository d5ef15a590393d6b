r"""Latent traversals along SVM normals, plain and conditional, with quantity curves, and a steered GIF
(the paper's Figure 4 and its animation).

Command::

    python -m experiments.traversals --workdir demo_out --out results/traversals [--num 32] \
        [--traversals tuf tuf:psep psep psep:tuf r_value r_value:tuf] [--alpha-max 3] [--keep-norm]

A traversal ``q`` moves latents along q's SVM normal; ``q:h1,h2`` along the conditional direction
(the normal of q projected off the normals of h1, h2: q changes, h1 and h2 are held). Each row of
``traversals.png`` shows one base latent (the same for every row) edited by alpha in
[-alpha_max, alpha_max]; beside it, the median over ``--num`` base latents (band: 25-75 %) of the change
of the target (solid) and of the held or, for a plain traversal, the other two of TUF, PSEP and R
(dashed) from alpha = 0, in prior standard deviations. ``steered.gif`` animates the first
conditional traversal (alpha from -alpha_max to alpha_max and back, latents kept on their Gaussian
shell as in the authors' animation), with TUF, PSEP and R written on every frame.

``traversals.json``: per traversal, the monotonicity of the target (mean over the base latents of the
Spearman correlation of the quantity with alpha, over the alphas where it is defined: a patch with an
empty polarity has no TUF; ``rows_used`` traversals are defined at 3 or more alphas;
``monotonicity_fully_defined`` is `solarjax.steering.evaluate.monotonicity`, over the traversals
defined everywhere), the median change of target and held
quantities from alpha = 0 to alpha_max (prior standard deviations), and the curves (25, 50, 75 %).

Runtime (2-core CPU, shared, load ~10): 55-70 s with the defaults. The dataset arguments are accepted for a uniform
command line; traversals depend only on the GAN and its directions.
Expected: monotonicity near 1 for TUF and R; conditioning keeps the held quantity's change small
against the plain traversal (e.g. PSEP along TUF|PSEP); see the directions report of the demo.
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence

import numpy as np

from experiments import common, plotting
from solarjax import steering
from solarjax.steering import evaluate
from solarjax.train import monitor

DEFAULT_TRAVERSALS = ("tuf", "tuf:psep", "psep", "psep:tuf", "r_value", "r_value:tuf")
SHOWN = ("tuf", "psep", "r_value")
"""Quantities drawn as curves when a traversal holds nothing."""


def parse_traversal(text: str, names: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """'tuf' -> ('tuf', ()); 'tuf:psep,r_value' -> ('tuf', ('psep', 'r_value')); unknown names raise."""
    target, _, held = text.partition(":")
    held = tuple(h for h in held.split(",") if h)
    unknown = [n for n in (target, *held) if n not in names]
    if unknown:
        raise ValueError(f"traversal {text!r}: no direction for {unknown}; the directions have {', '.join(names)}")
    return target, held


def label(target: str, held: Sequence[str]) -> str:
    name = plotting.QUANTITY_LABELS.get(target, target)
    if not held:
        return f"{name} up"
    return f"{name} up, {' and '.join(plotting.QUANTITY_LABELS.get(h, h) for h in held)} held"


def monotonicity_where_defined(values: np.ndarray, alphas: np.ndarray) -> float:
    """Mean over traversals [N, A] of the Spearman correlation of the quantity with alpha, each over the
    alphas where it is defined; traversals defined at fewer than 3 alphas are left out (NaN if none is left).

    `solarjax.steering.evaluate.monotonicity` leaves out every traversal with an undefined value; a
    generator whose patches lose a polarity at one end of the range then has none left.
    """
    defined = np.isfinite(values)
    scores = [
        evaluate.monotonicity(row[keep][None], alphas[keep]) for row, keep in zip(values, defined) if keep.sum() >= 3
    ]
    return float(np.mean(scores)) if scores else float("nan")


def traversal_summary(
    values: dict[str, np.ndarray], alphas: np.ndarray, target: str, held: Sequence[str], scales: dict[str, float]
) -> dict:
    """Monotonicity and changes of one traversal from quantities name -> [N, A] along it."""
    centre = int(np.argmin(np.abs(alphas)))
    shown = tuple(held) or tuple(q for q in SHOWN if q != target)

    def change(name):  # [N, A] change from alpha = 0 in prior standard deviations
        return (values[name] - values[name][:, centre : centre + 1]) / scales[name]

    def span(name):  # median change from alpha = 0 to the largest alpha
        up = change(name)[:, -1]
        return float(np.nanmedian(up)) if np.isfinite(up).any() else float("nan")

    with np.errstate(all="ignore"):
        bands = {name: np.nanpercentile(change(name), [25, 50, 75], axis=0) for name in (target, *shown)}
    return {
        "target": target,
        "held": list(held),
        "monotonicity": monotonicity_where_defined(values[target], alphas),
        "monotonicity_fully_defined": evaluate.monotonicity(values[target], alphas),
        "rows_used": int((np.isfinite(values[target]).sum(axis=1) >= 3).sum()),
        "defined_fraction": float(np.isfinite(values[target]).mean()),
        "target_change": span(target),
        "other_change": {name: span(name) for name in shown},
        "held_change_over_target": (
            max(abs(span(h)) for h in held) / abs(span(target)) if held and abs(span(target)) > 0 else float("nan")
        ),
        "alphas": alphas,
        "curves": {name: {"p25": band[0], "median": band[1], "p75": band[2]} for name, band in bands.items()},
    }


def plot_traversals(path, rows: Sequence[tuple[str, np.ndarray, dict]], frame_alphas: np.ndarray):
    """One row per traversal: patches at ``frame_alphas`` and the quantity curves."""
    frames = len(frame_alphas)
    figure = plotting.new_figure(1.55 * frames + 5.5, 2.05 * len(rows) + 0.6)
    subfigures = np.atleast_2d(figure.subfigures(len(rows), 2, width_ratios=(1.55 * frames, 5.5)))
    colours = {"tuf": "tab:blue", "psep": "tab:orange", "r_value": "tab:green"}
    for (title, images, summary), (left, right) in zip(rows, subfigures):
        axes = left.subplots(1, frames)
        for ax, image, alpha in zip(axes, images, frame_alphas):
            artist = monitor.show_field(ax, image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"alpha {alpha:+.1f}", fontsize=8)
        left.colorbar(artist, ax=axes, label="Br [G]", shrink=0.9, pad=0.01)
        left.suptitle(
            f"{title} (monotonicity of {plotting.QUANTITY_LABELS[summary['target']]} "
            f"{summary['monotonicity']:.2f} over {summary['rows_used']} traversals)",
            fontsize=10,
            x=0.02,
            ha="left",
        )
        ax = right.subplots()
        alphas = np.asarray(summary["alphas"])
        for name, curve in summary["curves"].items():
            is_target = name == summary["target"]
            colour = colours.get(name, "tab:purple")
            ax.plot(
                alphas,
                curve["median"],
                color=colour,
                ls="-" if is_target else "--",
                lw=2 if is_target else 1.3,
                label=plotting.QUANTITY_LABELS.get(name, name) + (" (held)" if name in summary["held"] else ""),
            )
            ax.fill_between(alphas, curve["p25"], curve["p75"], color=colour, alpha=0.15)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xlim(alphas[0], alphas[-1])
        ax.set_xlabel("alpha (latent units; curves where defined)", fontsize=8)
        ax.set_ylabel("change [prior std]", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left")
    return plotting.save(figure, path)


def render_gif(
    path, images: np.ndarray, alphas: np.ndarray, values: dict[str, np.ndarray], title: str, frame_ms: int = 120
):
    """An animated GIF of patches [F, 128, 128, 1] (hmimag, +-1000 G) with alpha, TUF and PSEP per frame."""
    from PIL import Image

    frames = []
    for i, image in enumerate(images):
        figure = plotting.new_figure(4.6, 4.3)
        ax = figure.subplots()
        artist = monitor.show_field(ax, image)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{title}\nalpha {alphas[i]:+.2f}", fontsize=9)
        shown = "   ".join(f"{plotting.QUANTITY_LABELS[n]} {values[n][i]:.3g}" for n in SHOWN)
        ax.set_xlabel(
            shown if np.isfinite(values["tuf"][i]) else "quantities undefined: a polarity is empty (< 150 G)",
            fontsize=8,
        )
        figure.colorbar(artist, ax=ax, label="Br [G]", shrink=0.85)
        buffer = io.BytesIO()
        figure.savefig(buffer, dpi=80, format="png")
        frames.append(Image.open(buffer).convert("RGB").quantize(colors=128))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


def run(args) -> dict:
    """Writes ``traversals.png``, ``steered.gif`` and ``traversals.json``; returns the JSON."""
    started = time.perf_counter()
    generator = common.load_generator(args.workdir)
    directions = common.load_directions(args.workdir, generator)
    specs = [parse_traversal(t, directions.names) for t in args.traversals]
    curve_alphas = np.linspace(-args.alpha_max, args.alpha_max, 13)
    frame_alphas = np.linspace(-args.alpha_max, args.alpha_max, args.frames)
    z = steering.sample_latents(args.num, generator.latent_dim, args.seed)
    base = steering.sample_latents(1, generator.latent_dim, args.seed + 1)
    rows, results = [], {}
    for target, held in specs:
        direction = directions.direction(target, held)
        values = evaluate.traversal_quantities(generator, z, direction, curve_alphas, keep_norm=args.keep_norm)
        summary = traversal_summary(values, curve_alphas, target, held, directions.std)
        edited = np.asarray(steering.edit(base, direction, frame_alphas, keep_norm=args.keep_norm))[0]
        rows.append((label(target, held), steering.map_generated(generator, edited), summary))
        results[":".join((target, ",".join(held))) if held else target] = summary
    figures = [plot_traversals(args.out / "traversals.png", rows, frame_alphas)]

    target, held = next(((t, h) for t, h in specs if h), specs[0])
    gif_alphas = np.concatenate(
        [
            np.linspace(-args.alpha_max, args.alpha_max, args.gif_frames),
            np.linspace(args.alpha_max, -args.alpha_max, args.gif_frames)[1:-1],
        ]
    )
    edited = np.asarray(steering.edit(base, directions.direction(target, held), gif_alphas, keep_norm=True))[0]
    gif_values = steering.latent_quantities(generator, edited)
    figures.append(
        render_gif(
            args.out / "steered.gif",
            steering.map_generated(generator, edited),
            gif_alphas,
            gif_values,
            label(target, held),
        )
    )
    result = {
        "num_latents": args.num,
        "seed": args.seed,
        "keep_norm": args.keep_norm,
        "gan_step": generator.step,
        "traversals": results,
        "gif": {"traversal": label(target, held), "frames": len(gif_alphas)},
        "figures": common.relative_paths(figures, args.out),
        "seconds": time.perf_counter() - started,
    }
    common.write_json(args.out, "traversals.json", result)
    return result


def main(argv: Sequence[str] | None = None) -> dict:
    parser = common.parser(__doc__)
    parser.add_argument("--num", type=int, default=32, help="base latents of the curves (default 32)")
    parser.add_argument(
        "--traversals",
        nargs="+",
        default=list(DEFAULT_TRAVERSALS),
        help="target or target:held1,held2 (default: TUF, PSEP, R plain and conditional)",
    )
    parser.add_argument("--alpha-max", type=float, default=3.0, help="largest |alpha| (latent units, default 3)")
    parser.add_argument("--frames", type=int, default=7, help="patches per row (default 7)")
    parser.add_argument("--gif-frames", type=int, default=25, help="frames from -alpha_max to alpha_max (default 25)")
    parser.add_argument("--keep-norm", action="store_true", help="rescale edited latents to their base norm")
    args = common.parse(parser, argv)
    result = run(args)
    for name, row in result["traversals"].items():
        print(f"{name}: monotonicity {row['monotonicity']:.3f}, target change {row['target_change']:.2f} std")
    return result


if __name__ == "__main__":
    main()
