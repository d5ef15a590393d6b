"""Generation with a trained GAN: `solarjax sample` (random patches) and `solarjax steer` (fit the physical
directions, generate patches with requested physics, invert real patches)."""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

from solarjax.cli.arguments import positive_int
from solarjax.cli.outputs import existing_outputs, replaced_atomically
from solarjax.jsonable import jsonable


def add_commands(subparsers) -> None:
    _add_sample(subparsers)
    _add_steer(subparsers)


# ---------------------------------------------------------------------------------------- sample
def _add_sample(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="generate patches from a trained GAN (PNG grid + FITS cube)",
        description="Draw z ~ N(0, I) with SEED, generate N patches with the GAN of WORKDIR and write OUT.png "
        "(hmimag, +-1000 G) and OUT.fits (Br in G, latents in the LATENTS extension).",
    )
    parser.add_argument("--workdir", required=True, help="GAN run directory")
    parser.add_argument("-n", type=positive_int, default=64, help="number of patches (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    parser.add_argument("--out", default="samples", help="output path without suffix (default ./samples)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT.png / OUT.fits if they exist")
    parser.set_defaults(func=run_sample)


def run_sample(args) -> int:
    from solarjax import gan

    outputs = [pathlib.Path(f"{args.out}{suffix}") for suffix in (".png", ".fits")]
    if refused := existing_outputs(outputs, args.overwrite):
        print(f"solarjax sample: {refused}", file=sys.stderr)
        return 2
    generator = gan.load(args.workdir)
    z = generator.sample_latents(args.n, seed=args.seed)
    images = np.asarray(generator.generate(z))
    with replaced_atomically(outputs[0]) as partial:
        gan.sample_grid_png(images, partial)
    with replaced_atomically(outputs[1]) as partial:
        gan.write_fits_cube(
            images, partial, latents=z, header={**generator.fits_header(), "SEED": (args.seed, "seed of the latents")}
        )
    print("\n".join(map(str, outputs)))
    return 0


# ----------------------------------------------------------------------------------------- steer
def _add_steer(subparsers) -> None:
    parser = subparsers.add_parser(
        "steer",
        help="physical directions in the GAN's latent space; steered generation; inversion",
        description="fit: SVM normals of every quantity; generate: patches with requested physics; "
        "invert: latents that reproduce real patches.",
    )
    commands = parser.add_subparsers(dest="steer_command", metavar="STEER_COMMAND", required=True)
    fit = commands.add_parser(
        "fit",
        help="fit the directions (saved to GAN/directions)",
        description="Sample N latents (seed 23), generate, compute the quantities, fit a "
        "linear SVM per quantity on a median split; save the unit normals.",
    )
    fit.add_argument("--gan", required=True, help="GAN run directory")
    fit.add_argument("-n", type=positive_int, default=10_000, help="latents (default 10000, as the paper)")
    fit.add_argument(
        "--method",
        choices=("svm", "logistic", "ridge"),
        default="svm",
        help="the linear model whose unit normal is a direction: linear SVM (the paper), logistic "
        "regression, or ridge regression on the value (default svm)",
    )
    fit.add_argument(
        "--overwrite", action="store_true", help="replace an existing GAN/directions (written beside, then swapped)"
    )
    fit.set_defaults(func=run_steer_fit)

    generate = commands.add_parser(
        "generate",
        help="generate patches with requested physics",
        description="Steer latents so that the generated patches reach the requested quantities "
        "(--set tuf=+50% psep=0.3; relative '+50%', '-20%', 'x2' or absolute), holding the --hold "
        "quantities. --method paper|piecewise|local moves each latent along that family's traversal "
        "of one quantity (alpha in [-3, 3]) to the value closest to the target; optimise runs "
        "gradient-based targeting (any number of targets); best (default) is the family the "
        "directions' evaluation ranked first (local when there is none). Writes OUT.png, OUT.fits "
        "and OUT.json (quantities before/after).",
    )
    generate.add_argument("--gan", required=True, help="GAN run directory")
    generate.add_argument("--set", nargs="+", required=True, metavar="NAME=TARGET", help="targets, e.g. tuf=+50%%")
    generate.add_argument(
        "--hold", default="", help="comma-separated quantities to keep, e.g. psep,lead_polarity (default: none)"
    )
    generate.add_argument("-n", type=positive_int, default=16, help="patches (default 16)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the starting latents z ~ N(0, I) (default 0)")
    generate.add_argument("--out", default="steered", help="output path without suffix (default ./steered)")
    generate.add_argument(
        "--overwrite", action="store_true", help="replace OUT.png / OUT.fits / OUT.json if they exist"
    )
    generate.add_argument(
        "--method",
        choices=("best", "paper", "piecewise", "local", "optimise"),
        default="best",
        help="steering family (default: best by the evaluation next to the directions)",
    )
    generate.add_argument(
        "--directions",
        default=None,
        help="directions folder (default GAN/directions); its evaluation/report.json (or the "
        "sibling ../evaluation) names the best family",
    )
    generate.set_defaults(func=run_steer_generate)

    invert = commands.add_parser(
        "invert",
        help="find latents reproducing real SHARP patches",
        description="The paper's masked-MSE inversion (restarts, best kept) of SHARP Br FITS files; prints the "
        "reconstruction error and the quantities of each file next to its reconstruction.",
    )
    invert.add_argument("files", nargs="+", metavar="FILE", help="SHARP Br FITS files (e.g. *.Br.fits)")
    invert.add_argument("--gan", required=True, help="GAN run directory")
    invert.add_argument(
        "--restarts",
        type=positive_int,
        default=10,
        help="random starting latents per file; the lowest masked MSE is kept (default 10)",
    )
    invert.add_argument("--steps", type=positive_int, default=1000, help="optimiser steps per restart (default 1000)")
    invert.add_argument(
        "--out", default="inverted", help="output path without suffix (PNG, FITS, JSON; default ./inverted)"
    )
    invert.add_argument("--overwrite", action="store_true", help="replace OUT.png / OUT.fits / OUT.json if they exist")
    invert.set_defaults(func=run_steer_invert)


def run_steer_fit(args) -> int:
    from solarjax import gan, steering

    out = pathlib.Path(args.gan) / "directions"
    if refused := existing_outputs([out], args.overwrite):
        print(f"solarjax steer fit: {refused}", file=sys.stderr)
        return 2
    generator = gan.load(args.gan)
    directions = steering.fit_directions(generator, n=args.n, method=args.method)
    with replaced_atomically(out) as partial:
        directions.save(partial)
    print(json.dumps(jsonable(directions.summary()), indent=1))
    for name, row in directions.diagnosis.get("quantities", {}).items():
        accuracy = ", ".join(f"{k} {v:.3f}" for k, v in row["accuracy"].items())
        print(
            f"diagnosis {name}: held-out SVM accuracy {accuracy}; corr q(z),q(-z) {row['corr_negation']:.2f}, "
            f"q(z),q(Qz) {row['corr_rotation']:.2f} -> {row['explanation']}; best feature set "
            f"{row['best_features']} {row['best_accuracy']:.3f}"
        )
    print(f"directions saved to {out}")
    return 0


def _steer_method(args, directions_dir) -> str:
    """The family `steer generate` uses: --method, or for 'best' the evaluation's choice (local without one)."""
    if args.method != "best":
        return args.method
    from solarjax.steering import evaluate

    for folder in (directions_dir / "evaluation", directions_dir.parent / "evaluation"):
        if (folder / "report.json").is_file():
            return evaluate.load_best_method(folder, default="local")
    return "local"


def run_steer_generate(args) -> int:
    from solarjax import gan, steering

    targets = {}
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            targets[name.strip()] = steering.parse_target(value)
        except ValueError as error:
            print(f"error: --set {item}: {error}", file=sys.stderr)
            return 2
    hold = [h.strip() for h in args.hold.split(",") if h.strip()]
    from solarjax.physics import QUANTITY_NAMES

    if unknown := [n for n in [*targets, *hold] if n not in QUANTITY_NAMES]:
        print(
            f"error: unknown quantity {unknown[0]!r} in --set/--hold; known: {', '.join(QUANTITY_NAMES)}",
            file=sys.stderr,
        )
        return 2
    outputs = _steer_outputs(args.out)
    if refused := existing_outputs(outputs, args.overwrite):
        print(f"solarjax steer generate: {refused}", file=sys.stderr)
        return 2
    directions_dir = pathlib.Path(args.directions) if args.directions else pathlib.Path(args.gan) / "directions"
    method = _steer_method(args, directions_dir)
    generator = gan.load(args.gan)
    z0 = generator.sample_latents(args.n, seed=args.seed)
    if method == "optimise":
        result = steering.steer_to(generator, z0, targets, hold=hold)
        images, latents, success = result.images, result.latents, result.success
        initial, reached, alpha = result.initial_quantities, result.quantities, None
    else:
        if len(targets) != 1:
            print(
                f"error: --method {method} moves one quantity; got {len(targets)} targets (use --method optimise)",
                file=sys.stderr,
            )
            return 2
        directions = None
        if method != "local" or (directions_dir / "directions.json").is_file():
            try:
                directions = steering.load_directions(directions_dir, generator)
            except (steering.DirectionsFileError, steering.GeneratorMismatchError) as error:
                print(f"error: {directions_dir}: {error}", file=sys.stderr)
                return 2
        ((name, request),) = targets.items()
        scales = directions.std if directions is not None else steering.prior_scales(generator)
        try:
            moved = steering.steer_along(method, generator, directions, z0, name, request, hold=hold, scales=scales)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        latents, success, alpha = moved["latents"], moved["success"], moved["alpha"]
        images = np.asarray(generator.generate(latents))
        initial, reached = moved["initial"], moved["reached"]
    report = {
        "targets": args.set,
        "hold": hold,
        "method": method,
        "success": success.tolist(),
        "alpha": None if alpha is None else alpha.tolist(),
        "initial": {k: v.tolist() for k, v in initial.items()},
        "reached": {k: v.tolist() for k, v in reached.items()},
    }
    _write_steer_outputs(outputs, images, latents, generator, report, title=f"{' '.join(args.set)} ({method})")
    print(f"{int(success.sum())}/{len(success)} requests met within 5% ({method}); wrote {args.out}.png/.fits/.json")
    return 0


def _steer_outputs(out: str) -> list[pathlib.Path]:
    """OUT.png, OUT.fits, OUT.json of `steer generate` / `steer invert`."""
    return [pathlib.Path(f"{out}{suffix}") for suffix in (".png", ".fits", ".json")]


def _write_steer_outputs(outputs, images, latents, generator, report, title: str) -> None:
    """The PNG grid, FITS cube and JSON report, each written beside its path and renamed onto it."""
    from solarjax import gan

    png, cube, text = outputs
    with replaced_atomically(png) as partial:
        gan.sample_grid_png(images, partial, title=title)
    with replaced_atomically(cube) as partial:
        gan.write_fits_cube(
            images,
            partial,
            latents=latents,
            header={**generator.fits_header(), "STEERED": (title, "solarjax steer request")},
        )
    with replaced_atomically(text) as partial:
        partial.write_text(json.dumps(jsonable(report), indent=1))


def run_steer_invert(args) -> int:
    from solarjax import gan, steering

    outputs = _steer_outputs(args.out)
    if refused := existing_outputs(outputs, args.overwrite):
        print(f"solarjax steer invert: {refused}", file=sys.stderr)
        return 2
    generator = gan.load(args.gan)
    result, failures = steering.invert_files(args.files, generator, restarts=args.restarts, steps=args.steps)
    for path, reason in failures:
        print(f"error: {path}: {reason}", file=sys.stderr)
    if result is not None:
        good = [p for p in args.files if str(p) not in {str(f) for f, _ in failures}]
        rows = [
            {
                "path": path,
                "masked_mse": float(result.error[i]),
                "real": {k: float(v[i]) for k, v in result.quantities_real.items()},
                "reconstruction": {k: float(v[i]) for k, v in result.quantities_reconstructed.items()},
            }
            for i, path in enumerate(good)
        ]
        _write_steer_outputs(outputs, result.reconstructions, result.latents, generator, rows, title="reconstructions")
        for row in rows:
            print(f"{row['path']}: masked MSE {row['masked_mse']:.4g}")
    return (1 if result is not None else 2) if failures else 0
