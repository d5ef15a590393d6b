"""The `solarjax` command.

Each subcommand imports what it needs when it runs, so `solarjax --help` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import pathlib
import shutil
import sys
from collections.abc import Sequence

import numpy as np

from solarjax.jsonable import jsonable

_DESCRIPTION = """\
solarjax: generate solar active regions with the physical properties you ask for, and retrieve the
real SDO/HMI SHARP observations that match them.

Pipeline: SHARP Br patches -> GAN -> latent directions of physical quantities (SVM normals)
-> steered generated patch -> SimSiam embedding -> nearest real SHARP patches (ScaNN).
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `solarjax CMD: error: MESSAGE (see solarjax CMD --help)`, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def unit_fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that describe bad input or missing artefacts (one line, exit 2), not bugs."""
    from solarjax.data.download import DownloadError
    from solarjax.data.fits import FitsReadError
    from solarjax.data.jsoc import JsocError
    from solarjax.stages import OutdirError

    return (OSError, ValueError, FitsReadError, OutdirError, JsocError, DownloadError)


# --------------------------------------------------------------------------------------- physics
def _add_physics(subparsers) -> None:
    parser = subparsers.add_parser(
        "physics",
        help="physical quantities of SHARP FITS files",
        description=(
            "Read SHARP CEA segment files (Br), preprocess them as the method does (clip +-1000 G, "
            "/1000, NaN -> 0, antialiased resize to SIZE x SIZE) and report the method's quantities "
            "(TUF, TPF, TNF, net flux, PSEP, tilt, area, leading polarity, R; threshold 150 G) in the "
            "normalised form and in physical units, next to the header's USFLUX. Unreadable files are "
            "reported on stderr with the reason; the exit status is 1 if some file failed, 2 if none could be read."
        ),
    )
    parser.add_argument("files", nargs="+", help="SHARP FITS files (e.g. *.Br.fits)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per file")
    parser.add_argument("--size", type=positive_int, default=128, help="resize target in pixels (default 128)")
    parser.add_argument(
        "--threshold",
        type=unit_fraction,
        default=0.15,
        help="polarity threshold, normalised units in (0, 1] (default 0.15 = 150 G)",
    )
    parser.set_defaults(func=_run_physics)


def _run_physics(args) -> int:
    from solarjax import physics
    from solarjax.data import SharpReadError, preprocess_patch, read_sharp

    patches, failures = [], []
    for path in args.files:
        try:
            patch = read_sharp(path)
        except SharpReadError as err:
            failures.append(err)
            continue
        if patch.segment == "Br" and not np.isfinite(patch.data).any():
            failures.append(SharpReadError(path, "no finite pixel (all NaN or inf): no data"))
        elif patch.segment == "Br":
            patches.append(patch)
        else:
            failures.append(
                SharpReadError(path, f"a {patch.segment} segment: the method's quantities are defined on Br")
            )
    for err in failures:
        print(f"error: {err}", file=sys.stderr)

    records = []
    if patches:
        prepared = [preprocess_patch(p, size=args.size) for p in patches]
        images = np.stack([p.image for p in prepared])
        pixel_size_mm = np.array([p.pixel_size_mm for p in prepared], dtype=np.float32)
        normalised = {k: np.asarray(v) for k, v in physics.quantities(images, threshold=args.threshold).items()}
        physical = {
            k: np.asarray(v)
            for k, v in physics.physical_quantities(images, pixel_size_mm, threshold=args.threshold).items()
        }
        for i, patch in enumerate(patches):
            full_res_flux = float(
                physics.unsigned_flux_above_mx(
                    patch.data, patch.meta["pixel_area_cm2"], threshold_gauss=1000.0 * args.threshold
                )
            )
            records.append(
                {
                    "path": str(patch.path),
                    "meta": patch.meta,
                    "quantities": {k: float(v[i]) for k, v in normalised.items()},
                    "physical": {
                        **{k: float(v[i]) for k, v in physical.items()},
                        "unsigned_flux_full_res_mx": full_res_flux,
                    },
                }
            )

    if args.json:
        json.dump(jsonable(records), sys.stdout, indent=1)
        print()
    else:
        _print_physics_table(records)
    return (1 if records else 2) if failures else 0


def _print_physics_table(records) -> None:
    columns = [
        ("HARP", lambda r: f"{r['meta'].get('harpnum', '')}"),
        ("T_REC", lambda r: f"{r['meta'].get('t_rec_raw', '')}"),
        ("TUF", lambda r: f"{r['quantities']['tuf']:.4f}"),
        ("PSEP", lambda r: f"{r['quantities']['psep']:.4f}"),
        ("tilt_deg", lambda r: f"{math.degrees(r['quantities']['tilt']):.1f}"),
        ("R", lambda r: f"{r['quantities']['r_value']:.2f}"),
        ("area", lambda r: f"{r['quantities']['area']:.4f}"),
        ("flux_Mx", lambda r: f"{r['physical']['unsigned_flux_mx']:.3e}"),
        ("psep_Mm", lambda r: f"{r['physical']['psep_mm']:.1f}"),
        ("flux>150G_Mx", lambda r: f"{r['physical']['unsigned_flux_full_res_mx']:.3e}"),
        ("USFLUX_Mx", lambda r: f"{r['meta'].get('USFLUX', float('nan')):.3e}"),
    ]
    rows = [[name for name, _ in columns]] + [[fmt(r) for _, fmt in columns] for r in records]
    widths = [max(len(row[j]) for row in rows) for j in range(len(columns))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    print(f"{len(records)} patches")


# ------------------------------------------------------------------------------------------ data
def _add_data(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="download SHARPs from JSOC and build the sharp_patches dataset",
        description="Data: `download` fetches SHARP CEA segments from JSOC; `build` writes the TFDS dataset.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    from solarjax.data.sharp_download_cli import add_download_arguments, run_download

    download = commands.add_parser(
        "download",
        help="download SHARP CEA segments from JSOC (resumable)",
        description=(
            "Select hmi.sharp_cea_720s records (time range, cadence per HARP, HARP/NOAA numbers, QUALITY == 0, "
            "distance from disk centre) and export their segments as FITS into OUT_DIR. A manifest.json in "
            "OUT_DIR records what finished and what failed; rerunning resumes without re-downloading finished "
            "files and fetches truncated ones again."
        ),
    )
    add_download_arguments(download)
    download.set_defaults(func=run_download)

    from solarjax.data.aia import add_aia_download_arguments, run_aia_download

    download_aia = commands.add_parser(
        "download-aia",
        help="download SDO/AIA level-1 images from JSOC, channels matched in time (resumable)",
        description=(
            "Query aia.lev1_euv_12s / aia.lev1_uv_24s at a cadence, keep the slots where every requested channel "
            "has a clean image (QUALITY, T_OBS within a tolerance of the slot) and export them as FITS into "
            "OUT_DIR, with the same manifest.json, resume and integrity checks as `download`. --route fido uses "
            "sunpy's Fido (VSO) instead."
        ),
    )
    add_aia_download_arguments(download_aia)
    download_aia.set_defaults(func=run_aia_download)

    from solarjax.data.lasco_download import add_lasco_download_arguments, run_lasco_download

    download_lasco = commands.add_parser(
        "download-lasco",
        help="download SOHO/LASCO C2 or C3 images (JPEG2000) from the Helioviewer API (resumable)",
        description=(
            "Sample the Helioviewer archive every --cadence from --start to --end, keep each distinct LASCO image "
            "of the detector once and fetch it as JPEG2000 (FITS header inside) into OUT_DIR, with the same "
            "manifest.json, resume and integrity checks as `download`. Build cme_patches from the folder with "
            "`solarjax data build --dataset cme_patches --config files --manual-dir OUT_DIR`."
        ),
    )
    add_lasco_download_arguments(download_lasco)
    download_lasco.set_defaults(func=run_lasco_download)

    build = commands.add_parser(
        "build",
        help="build the TFDS dataset sharp_patches or aia_patches (synthetic or from FITS)",
        description=(
            "Write the TFDS dataset DATASET/CONFIG (array_record) into DATA_DIR: 'synthetic' generates "
            "realistic synthetic active regions (SHARP Br, or AIA 171/193/211 A rendered from them; no download "
            "needed); 'fits' reads the FITS files of --manual-dir (SHARP CEA files from `solarjax data download`, "
            "or AIA level-1 files from `solarjax data download-aia`). SHARP splits never share an active region, "
            "AIA splits never share a day. Unreadable files are listed in build_log.json and skipped. Read it "
            "back with tfds.data_source('DATASET/CONFIG', data_dir=DATA_DIR) after `import data_builders`."
        ),
    )
    build.add_argument(
        "--dataset",
        choices=("sharp_patches", "aia_patches", "cme_patches"),
        default="sharp_patches",
        help="which dataset (default sharp_patches; cme_patches: CME difference images of LASCO)",
    )
    build.add_argument(
        "--config",
        choices=("synthetic", "fits", "files", "files_c3"),
        default="synthetic",
        help="builder config (default synthetic; cme_patches: synthetic, files for LASCO C2, files_c3 for LASCO C3)",
    )
    build.add_argument(
        "--manual-dir", help="folder of SHARP or AIA FITS files (fits config), or of LASCO files (files)"
    )
    build.add_argument(
        "--skip-degradation",
        action="store_true",
        help="aia_patches fits: build without aiapy's degradation correction (its tables need the "
        "network; the build log records that it was not applied)",
    )
    build.add_argument(
        "--data-dir",
        default=_default_data_dir(),
        help="TFDS data directory (default: $SOLARJAX_DATA_DIR or ~/tensorflow_datasets)",
    )
    build.add_argument(
        "--num-examples",
        type=int,
        help="synthetic: patches over all splits (default 20000); fits: at most this many files",
    )
    build.add_argument(
        "--beam-runner",
        help="sharp_patches/aia_patches fits: generate through Apache Beam on this runner (DirectRunner "
        "locally; DataflowRunner, FlinkRunner, SparkRunner with their --beam-option flags). Needs "
        "apache-beam, which lives in a venv of its own: `make beam-venv`, then .venv-beam/bin/solarjax",
    )
    build.add_argument(
        "--beam-workers",
        type=int,
        help="DirectRunner worker processes (multi_processing mode; default: one, in process)",
    )
    build.add_argument(
        "--beam-option",
        action="append",
        default=[],
        metavar="FLAG",
        help="a Beam pipeline flag, repeatable (e.g. --beam-option=--temp_location=gs://bucket/tmp; default: none)",
    )
    build.set_defaults(func=_run_data_build)


def _default_data_dir() -> str:
    import os

    return os.environ.get("SOLARJAX_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))


def _run_data_build(args) -> int:
    if args.config != "synthetic":
        manual = pathlib.Path(args.manual_dir) if args.manual_dir else None
        if manual is None or not manual.is_dir() or not any(manual.iterdir()):
            print(
                f"error: --manual-dir {args.manual_dir or '(not given)'}: the {args.config} config needs a folder of "
                "downloaded files (from `solarjax data download`, `download-aia` or `download-lasco`)",
                file=sys.stderr,
            )
            return 2
    from data_builders.common import BeamUnavailableError

    beam = {}
    try:
        if args.beam_runner is not None:
            from data_builders.common import beam_pipeline_options

            if args.dataset == "cme_patches":
                raise ValueError("--beam-runner: cme_patches has no Beam build (sharp_patches and aia_patches have)")
            beam = dict(
                beam_runner=args.beam_runner,
                beam_options=beam_pipeline_options(args.beam_runner, args.beam_workers, args.beam_option),
            )
        elif args.beam_workers is not None or args.beam_option:
            raise ValueError("--beam-workers and --beam-option need --beam-runner")
        if args.dataset == "aia_patches":
            from data_builders.aia_patches import build

            info = build(
                args.config,
                args.data_dir,
                manual_dir=args.manual_dir,
                num_examples=args.num_examples,
                degradation="skip" if args.skip_degradation else "apply",
                **beam,
            )
        elif args.dataset == "cme_patches":
            from data_builders.cme_patches import build

            info = build(args.config, args.data_dir, manual_dir=args.manual_dir, num_examples=args.num_examples)
        else:
            from data_builders.sharp_patches import build

            info = build(args.config, args.data_dir, manual_dir=args.manual_dir, num_examples=args.num_examples, **beam)
    except (FileNotFoundError, ValueError, BeamUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, split in sorted(info.splits.items()):
        print(f"{name}: {split.num_examples} patches")
    failures = info.metadata["failures"]
    for failure in failures:
        print(f"skipped {failure['path']}: {failure['reason']}", file=sys.stderr)
    print(f"dataset in {info.data_dir}")
    return 0


# ----------------------------------------------------------------------------------------- train
def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the GAN or the SimSiam encoder",
        description="Train a model from a config (a packaged one such as gan_synthetic, or a .py file defining "
        "get_config()) into WORKDIR; rerunning with the same WORKDIR resumes from the last checkpoint "
        "(a different model config is refused).",
    )
    models = parser.add_subparsers(dest="model", metavar="MODEL", required=True)
    for name, text in (
        (
            "gan",
            "the GAN (config gan_synthetic; the paper's generator: gan_paper; real SHARPs at scale: gan_sharp_full)",
        ),
        ("simsiam", "the SimSiam encoder (config simsiam_synthetic; simsiam_aia_synthetic, simsiam_sharp_full)"),
    ):
        model = models.add_parser(
            name,
            help=text,
            description=f"Train {text}. Any field of the config can be set on the command line "
            "as ml_collections' config flags do: --config.FIELD=VALUE (e.g. "
            "--config.batch_size=64 --config.optimizer.b1=0.9), parsed as the field's "
            "type; an unknown field or a wrong type is refused. The config is locked.",
        )
        model.add_argument(
            "--config",
            required=True,
            help="a packaged config MODEL[:VARIANT] (solarjax.configs: gan:synthetic (default), "
            "gan:paper, gan:sharp_full; simsiam:synthetic (default), simsiam:aia_synthetic, "
            "simsiam:sharp_full, simsiam:cme_synthetic; old names such as gan_paper still work) "
            "or a .py file defining get_config() (FILE.py:ARG calls get_config(ARG))",
        )
        model.add_argument("--workdir", required=True, help="run directory (config.json, metrics.jsonl, checkpoints/)")
        model.add_argument("--data-dir", help="override config.data.data_dir (the TFDS data directory)")
        model.add_argument(
            "--multihost",
            action="store_true",
            help="call jax.distributed.initialize() first (one process per host; the cluster "
            "environment, e.g. SLURM or a TPU pod, supplies the coordinator)",
        )
        model.set_defaults(func=_run_train)


def _run_train(args) -> int:
    from solarjax import configs

    named_file = str(args.config).split(":", 1)[0]
    if os.path.isfile(named_file) and not named_file.endswith(".py"):
        print(
            f"solarjax train {args.model}: error: --config {args.config}: {named_file} is not a Python config file "
            "(a .py file defining get_config()) nor a packaged config name",
            file=sys.stderr,
        )
        return 2
    config = configs.load(args.config, getattr(args, "config_overrides", ()))
    if args.multihost:
        import jax

        jax.distributed.initialize()
    if args.data_dir:
        config.data.data_dir = args.data_dir
    if args.model == "gan":
        from solarjax.train.gan import train_and_evaluate
    else:
        from solarjax.train.simsiam import train_and_evaluate
    train_and_evaluate(config, args.workdir)
    return 0


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
    parser.set_defaults(func=_run_sample)


def _run_sample(args) -> int:
    from solarjax import gan

    outputs = [pathlib.Path(f"{args.out}{suffix}") for suffix in (".png", ".fits")]
    if refused := _existing_outputs(outputs, args.overwrite):
        print(f"solarjax sample: {refused}", file=sys.stderr)
        return 2
    generator = gan.load(args.workdir)
    z = generator.sample_latents(args.n, seed=args.seed)
    images = np.asarray(generator.generate(z))
    with _replaced_atomically(outputs[0]) as partial:
        gan.sample_grid_png(images, partial)
    with _replaced_atomically(outputs[1]) as partial:
        gan.write_fits_cube(
            images, partial, latents=z, header={**generator.fits_header(), "SEED": (args.seed, "seed of the latents")}
        )
    print("\n".join(map(str, outputs)))
    return 0


def _existing_outputs(paths: Sequence[pathlib.Path], overwrite: bool) -> str | None:
    """None when the outputs may be written; else the one-line refusal naming what exists."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        return f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}: pass --overwrite to replace"
    return None


@contextlib.contextmanager
def _replaced_atomically(path: pathlib.Path):
    """Yields a partial path (file or folder) beside `path`; moved onto `path` when the block succeeds (an
    existing folder is moved aside first and deleted after), removed if the block fails."""
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield partial
        if path.is_dir():
            old = path.with_name(f".{path.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(partial, path)
            shutil.rmtree(old)
        else:
            os.replace(partial, path)
    finally:
        if partial.is_dir():
            shutil.rmtree(partial)
        else:
            partial.unlink(missing_ok=True)


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
    fit.set_defaults(func=_run_steer_fit)

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
    generate.set_defaults(func=_run_steer_generate)

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
    invert.set_defaults(func=_run_steer_invert)


def _run_steer_fit(args) -> int:
    import pathlib

    from solarjax import gan, steering

    out = pathlib.Path(args.gan) / "directions"
    if refused := _existing_outputs([out], args.overwrite):
        print(f"solarjax steer fit: {refused}", file=sys.stderr)
        return 2
    generator = gan.load(args.gan)
    directions = steering.fit_directions(generator, n=args.n, method=args.method)
    with _replaced_atomically(out) as partial:
        directions.save(partial)
    print(json.dumps(jsonable(directions.summary()), indent=1))
    for name, row in directions.diagnosis.get("quantities", {}).items():
        accuracy = ", ".join(f"{k} {v:.3f}" for k, v in row["accuracy"].items())
        print(
            f"diagnosis {name}: held-out SVM accuracy {accuracy}; corr q(z),q(-z) {row['corr_negation']:.2f}, "
            f"q(z),q(Qz) {row['corr_rotation']:.2f} -> {row['explanation']}"
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


def _run_steer_generate(args) -> int:
    import pathlib

    import numpy as np

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
    if refused := _existing_outputs(outputs, args.overwrite):
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
    with _replaced_atomically(png) as partial:
        gan.sample_grid_png(images, partial, title=title)
    with _replaced_atomically(cube) as partial:
        gan.write_fits_cube(
            images,
            partial,
            latents=latents,
            header={**generator.fits_header(), "STEERED": (title, "solarjax steer request")},
        )
    with _replaced_atomically(text) as partial:
        partial.write_text(json.dumps(jsonable(report), indent=1))


def _run_steer_invert(args) -> int:
    from solarjax import gan, steering

    outputs = _steer_outputs(args.out)
    if refused := _existing_outputs(outputs, args.overwrite):
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


# ---------------------------------------------------------------------------------- index, search
def _add_index(subparsers) -> None:
    parser = subparsers.add_parser(
        "index",
        help="embed a dataset split and build a search index",
        description="build: embed every patch of DATASET/CONFIG:SPLIT (sharp_patches, or aia_patches of AIA EUV "
        "channels) with the SimSiam encoder of --ssl into OUT/table (memory-mapped, with the dataset's "
        "metadata: HARP, T_REC, physics for SHARPs; id, t_obs, wavelengths, bbox, hpc, mu for AIA) and "
        "build OUT/index (exact for small tables, ScaNN above 100,000 rows; recall against exact is "
        "measured at build time).",
    )
    commands = parser.add_subparsers(dest="index_command", metavar="INDEX_COMMAND", required=True)
    build = commands.add_parser("build", help="embed a split and build the index")
    build.add_argument("--ssl", required=True, help="SimSiam run directory")
    build.add_argument(
        "--data-dir",
        default=_default_data_dir(),
        help="TFDS data directory (default: $SOLARJAX_DATA_DIR or ~/tensorflow_datasets)",
    )
    build.add_argument(
        "--dataset",
        choices=("sharp_patches", "aia_patches", "cme_patches"),
        default="sharp_patches",
        help="TFDS dataset (default sharp_patches)",
    )
    build.add_argument(
        "--config",
        choices=("synthetic", "fits", "files", "files_c3"),
        default="synthetic",
        help="builder config (default synthetic; cme_patches: synthetic, files (C2), files_c3)",
    )
    build.add_argument("--split", default="train", help="split to embed (default train)")
    build.add_argument("--out", required=True, help="output directory (refused if it exists, unless --overwrite)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing OUT (built beside, then swapped)")
    build.add_argument(
        "--kind",
        choices=("auto", "exact", "scann"),
        default="auto",
        help="exact search, ScaNN, or auto (ScaNN from 10,000 rows) (default auto)",
    )
    build.add_argument("--metric", choices=("l2", "cosine"), default="l2", help="distance (default l2)")
    build.add_argument(
        "--multihost",
        action="store_true",
        help="call jax.distributed.initialize() first and run the same command on every host (OUT on "
        "a shared file system): each host embeds a contiguous share of the split on its own "
        "devices into .OUT.hosts/, then process 0 merges the shares into OUT/table (dataset "
        "order) and builds OUT/index",
    )
    build.set_defaults(func=_run_index_build)


def _run_index_build(args) -> int:
    import pathlib

    from solarjax import ssl
    from solarjax.data import pipeline
    from solarjax.retrieval import build_index, embed_dataset
    from solarjax.retrieval.table import dataset_features

    out = pathlib.Path(args.out)
    if refused := _existing_outputs([out], args.overwrite):
        print(f"solarjax index build: {refused}", file=sys.stderr)
        return 2
    if not (pathlib.Path(args.data_dir) / args.dataset / args.config).is_dir():
        print(
            f"solarjax index build: error: dataset {args.dataset}/{args.config} is not built in {args.data_dir}: "
            f"run `solarjax data build --dataset {args.dataset} --config {args.config} --data-dir {args.data_dir}` "
            "first",
            file=sys.stderr,
        )
        return 2
    encoder = ssl.load(args.ssl)
    batch_size = 128
    batches = pipeline.make_iterator(
        args.split,
        batch_size=batch_size,
        seed=0,
        data_dir=args.data_dir,
        config=args.config,
        dataset=args.dataset,
        num_epochs=1,
        shuffle=False,
        drop_remainder=False,
        keys=dataset_features(args.dataset),
    )
    dataset = f"{args.dataset}/{args.config}:{args.split}"
    shares = None
    if args.multihost:
        from solarjax.retrieval import hosts

        process_index, process_count = hosts.initialize_distributed()
        rows = len(pipeline.load_split(args.split, data_dir=args.data_dir, config=args.config, dataset=args.dataset))
        shares = out.parent / f".{out.name}.hosts"
        hosts.embed_host_share(
            shares,
            encoder.embed,
            encoder.fingerprint,
            batches,
            num_batches=-(-rows // batch_size),
            process_index=process_index,
            process_count=process_count,
            dataset=dataset,
            dataset_name=args.dataset,
        )
        if process_index != 0:
            print(f"host {process_index} of {process_count}: share embedded; process 0 merges into {out}")
            return 0
    with _replaced_atomically(out) as partial:
        shutil.rmtree(partial, ignore_errors=True)  # left by an interrupted build
        if shares is None:
            table = embed_dataset(
                partial / "table",
                encoder.embed,
                encoder.fingerprint,
                batches,
                dataset=dataset,
                dataset_name=args.dataset,
            )
        else:
            table = hosts.merge_host_tables(hosts.wait_for_hosts(shares, process_count), partial / "table")
        index = build_index(table, kind=args.kind, metric=args.metric)
        index.save(partial / "index")
    if shares is not None:
        shutil.rmtree(shares, ignore_errors=True)
    print(f"{table.num_rows} rows, {index.kind} index in {out / 'index'}")
    return 0


def _add_search(subparsers) -> None:
    parser = subparsers.add_parser(
        "search",
        help="find the real patches that match a query",
        description="QUERY: SHARP Br FITS files (read and preprocessed as in training) or .npy arrays of Br maps "
        "in gauss, [H, W] or [N, H, W] (preprocessed the same way; a map whose largest |value| is 1 or "
        "less is refused as already normalised); for an aia_patches index, .npy arrays of "
        "normalised patches [N, 128, 128, C] (or [128, 128, C]) in the index's channel order. Prints the "
        "top-k rows per query.",
    )
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="SHARP Br FITS files or .npy arrays (see above)")
    parser.add_argument("--index", required=True, help="directory written by `solarjax index build` (OUT)")
    parser.add_argument("--ssl", required=True, help="SimSiam run directory (the index's encoder)")
    parser.add_argument("-k", type=positive_int, default=10, help="results per query (default 10)")
    parser.add_argument("--start", help="earliest observation time, T_REC or AIA t_obs (ISO)")
    parser.add_argument("--end", help="latest observation time, T_REC or AIA t_obs (ISO)")
    parser.add_argument("--mu-min", type=float, help="smallest mu = cos(heliocentric angle) of the patch centre (AIA)")
    parser.add_argument("--mu-max", type=float, help="largest mu (AIA)")
    parser.add_argument("--harp", type=int, nargs="+", help="only these HARPs")
    parser.add_argument("--exclude-harp", type=int, nargs="+", default=(), help="never these HARPs (default: none)")
    parser.add_argument("--one-per-harp", action="store_true", help="at most one result per HARP")
    parser.add_argument("--exclude-own-harp-days", type=float, help="drop the query's own HARP within +-N days")
    parser.add_argument(
        "--hemisphere",
        choices=("north", "south"),
        help="only patches whose centre lies north (Stonyhurst latitude > 0 deg) or south (< 0 "
        "deg) of the equator (default: both)",
    )
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    parser.add_argument("--png", help="write a contact sheet of the queries and their matches to this PNG")
    parser.add_argument("--overwrite", action="store_true", help="replace the --png file if it exists")
    parser.add_argument(
        "--data-dir",
        default=_default_data_dir(),
        help="TFDS data directory of the indexed dataset, for --png (default: $SOLARJAX_DATA_DIR or "
        "~/tensorflow_datasets)",
    )
    parser.add_argument(
        "--rank",
        choices=("ssl", "hybrid", "physics"),
        help="order of the results: SSL similarity, hybrid (SSL candidates re-ordered with the query's "
        "exact TUF, PSEP, R and area), or physics alone (default: the mode chosen on validation "
        "in INDEX/ranking.json, else ssl)",
    )
    parser.set_defaults(func=_run_search)


def _run_search(args) -> int:
    import pathlib

    from solarjax import ssl
    from solarjax.retrieval import Filters, load_index

    encoder = ssl.load(args.ssl)
    index = load_index(pathlib.Path(args.index) / "index", expected_fingerprint=encoder.fingerprint)
    filters = Filters(
        t_rec_range=(args.start, args.end) if (args.start or args.end) else None,
        harp_include=args.harp,
        harp_exclude=tuple(args.exclude_harp),
        one_per_harp=args.one_per_harp,
        exclude_own_harp_days=args.exclude_own_harp_days,
        hemisphere=args.hemisphere,
        mu_range=(args.mu_min, args.mu_max) if (args.mu_min is not None or args.mu_max is not None) else None,
    )
    if index.table.dataset_name == "aia_patches":
        if args.rank not in (None, "ssl"):
            print(
                f"error: --rank {args.rank} ranks by SHARP physics quantities; an aia_patches index ranks by ssl only",
                file=sys.stderr,
            )
            return 2
        return _search_aia(args, index, encoder, filters)
    from solarjax import physics
    from solarjax.retrieval import QueryContext, embed_images
    from solarjax.retrieval import ranking as ranking_lib

    try:
        saved = ranking_lib.load_ranking(args.index)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    chosen = saved.with_rank(args.rank or saved.rank)
    if args.png and (refused := _existing_outputs([pathlib.Path(args.png)], args.overwrite)):
        print(f"solarjax search: {refused}", file=sys.stderr)
        return 2
    arrays = [q for q in args.queries if q.endswith(".npy")]
    files = [q for q in args.queries if not q.endswith(".npy")]
    results, labels, query_images = [], [], []

    def ranked(images, context=None):
        images = np.asarray(images, np.float32)
        embeddings = np.asarray(embed_images(encoder.embed, images))
        quantities = {k: np.asarray(v) for k, v in physics.quantities(images).items()}
        return ranking_lib.search(index, embeddings, quantities, args.k, filters, context, ranking=chosen)

    if files:
        from solarjax.data import preprocess_patch, read_sharp
        from solarjax.data.query_checks import check_gauss_map

        patches = [read_sharp(f) for f in files]
        for patch in patches:
            if patch.segment != "Br":
                raise ValueError(f"{patch.path}: a {patch.segment} segment: the index holds Br patches")
            check_gauss_map(patch.data, str(patch.path))
        images = np.stack([preprocess_patch(p).image for p in patches])
        results += ranked(images, QueryContext.from_metadata([p.meta for p in patches]))
        labels += files
        query_images += list(images)
    for path in arrays:
        images = _gauss_npy_queries(path)
        results += ranked(images)
        labels += [f"{path}[{i}]" for i in range(len(images))]
        query_images += list(images)
    origin = "chosen on validation" if saved.validation else "default"
    note = (
        f"ranking: {chosen.rank}"
        + (f" (weight {chosen.weight:g})" if chosen.rank == "hybrid" else "")
        + f"; {origin}: {saved.rank}"
    )
    if args.json:
        _print_search_json(labels, results, rank=chosen.rank)
    else:
        print(note)
        _print_search_text(
            labels,
            results,
            lambda m: (
                f"HARP {m.get('harpnum')}  NOAA {m.get('noaa_ar')}  {m.get('t_rec')}  "
                f"TUF {m.get('tuf', float('nan')):.4f}  PSEP {m.get('psep', float('nan')):.4f}  "
                f"R {m.get('r_value', float('nan')):.3g}  {m.get('record', '')}"
            ),
        )
    if args.png:
        with _replaced_atomically(pathlib.Path(args.png)) as partial:
            _write_contact_sheet(partial, np.stack(query_images), results, index, args.data_dir)
        print(f"contact sheet: {args.png}")
    return 0


def _gauss_npy_queries(path: str) -> np.ndarray:
    """Preprocessed queries [N, 128, 128] from a .npy of Br maps in gauss, [H, W], [N, H, W] or [N, H, W, 1]."""
    from solarjax.data import preprocess
    from solarjax.data.query_checks import check_gauss_map

    try:
        maps = np.load(path, allow_pickle=False)
    except ValueError as error:  # pickled objects, a bad header
        raise ValueError(f"{path}: not a plain .npy array of numbers: {error}") from error
    maps = maps[..., 0] if maps.ndim == 4 and maps.shape[-1] == 1 else maps
    maps = maps[None] if maps.ndim == 2 else maps
    if maps.ndim != 3 or min(maps.shape[1:], default=0) < 1 or len(maps) == 0:
        raise ValueError(f"{path}: Br maps in gauss of shape [H, W] or [N, H, W] expected, got shape {maps.shape}")
    return np.stack([preprocess(check_gauss_map(m, f"{path}[{i}]")) for i, m in enumerate(maps)])


def _print_search_json(labels, results, rank: str = "ssl") -> None:
    out = [
        {
            "query": label,
            "rank": rank,
            "results": [
                {
                    "row": h.row,
                    "distance": h.distance,
                    "similarity": h.similarity,
                    "score": h.score,
                    "metadata": h.metadata,
                }
                for h in hits
            ],
        }
        for label, hits in zip(labels, results)
    ]
    json.dump(jsonable(out), sys.stdout, indent=1)
    print()


def _print_search_text(labels, results, describe) -> None:
    """One 'query LABEL' line per query, then one ranked line per hit: similarity and describe(metadata)."""
    for label, hits in zip(labels, results):
        print(f"query {label}")
        for rank, h in enumerate(hits, 1):
            print(f"  {rank:2d}. sim {h.similarity:.3f}  {describe(h.metadata)}")


def _search_aia(args, index, encoder, filters) -> int:
    """`solarjax search` on an aia_patches index: .npy queries of normalised [N, 128, 128, C] patches."""
    not_arrays = [q for q in args.queries if not q.endswith(".npy")]
    if not_arrays:
        print(
            f"error: {not_arrays[0]}: an aia_patches index takes .npy arrays of normalised patches "
            "[N, 128, 128, C] as queries",
            file=sys.stderr,
        )
        return 2
    if args.png:
        print("error: --png draws Br contact sheets; it is not available for an aia_patches index", file=sys.stderr)
        return 2
    num_channels = int(encoder.config["model"]["input_channels"])
    channels = index.table.rows([0])[0]["wavelengths"] if index.num_rows else "unknown"
    results, labels = [], []
    for path in args.queries:
        images = np.load(path).astype(np.float32)
        images = images[None] if images.ndim == 3 else images
        if images.ndim != 4 or images.shape[-1] != num_channels:
            print(
                f"error: {path}: patches of shape {images.shape}, expected [N, 128, 128, {num_channels}] in the "
                f"index's channel order ({channels} Angstrom)",
                file=sys.stderr,
            )
            return 2
        results += index.search_images(images, encoder, k=args.k, filters=filters)
        labels += [f"{path}[{i}]" for i in range(len(images))]
    if args.json:
        _print_search_json(labels, results)
        return 0
    _print_search_text(
        labels,
        results,
        lambda m: (
            f"{m['id']}  {m['t_obs']}  {m['wavelengths']} A  mu {m['mu']:.3f}  "
            f"hpc ({m['hpc_x']:.0f}, {m['hpc_y']:.0f}) arcsec  bbox {m['bbox']}  {m['source']}"
        ),
    )
    return 0


def _write_contact_sheet(path, query_images, results, index, data_dir) -> None:
    """Queries next to their matches; match images are read back from the indexed TFDS split."""
    import tensorflow_datasets as tfds

    import data_builders  # noqa: F401  (registers sharp_patches)
    from solarjax import physics
    from solarjax.retrieval.evaluate import plot_query_matches

    names = ("tuf", "psep", "r_value")
    rows = np.full((len(results), max(len(h) for h in results)), -1, np.int64)
    for q, hits in enumerate(results):
        rows[q, : len(hits)] = [h.row for h in hits]
    used = np.unique(rows[rows >= 0])
    sources = {}
    database = np.zeros((index.num_rows, *query_images.shape[1:]), np.float32)
    for row in used:
        name = index.table.column("dataset")[row]  # text columns are stored as UTF-8 bytes
        dataset, _, split = (name.decode() if isinstance(name, bytes) else str(name)).partition(":")
        if dataset not in sources:
            sources[dataset] = tfds.data_source(dataset, data_dir=data_dir, split=split)
        database[row] = np.asarray(sources[dataset][int(index.table.column("example_index")[row])]["image"])[..., 0]
    query_values = np.stack([np.asarray(physics.quantities(query_images)[n]) for n in names], axis=1)
    table_values = np.stack([index.table.column(n) for n in names], axis=1)
    plot_query_matches(path, query_images, query_values, rows, database, table_values, names)


# ----------------------------------------------------------------------------------------- serve
def _add_serve(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="the reverse image-search web application",
        description="Load the GAN, directions, encoder and index of a demo output directory (fingerprints must "
        "match) and serve the search page and its JSON API (OpenAPI at /docs).",
    )
    parser.add_argument("--workdir", default="demo_out", help="directory written by `solarjax demo` (default demo_out)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--aia-index",
        help="also serve this AIA index (OUT of `solarjax index build --dataset "
        "aia_patches`): a dataset selector appears on the page",
    )
    parser.add_argument("--aia-ssl", help="the SimSiam run that embedded the AIA index (with --aia-index)")
    parser.add_argument(
        "--aia-data-dir",
        default=_default_data_dir(),
        help="TFDS data directory of the AIA index's aia_patches rows, for their images (default: "
        "$SOLARJAX_DATA_DIR or ~/tensorflow_datasets)",
    )
    parser.set_defaults(func=_run_serve)


def _run_serve(args) -> int:
    from solarjax.app import ArtefactError, load_aia_artefacts, serve

    if bool(args.aia_index) != bool(args.aia_ssl):
        print("error: --aia-index and --aia-ssl go together (the index and the encoder that built it)", file=sys.stderr)
        return 2
    try:
        aia = load_aia_artefacts(args.aia_index, args.aia_ssl, args.aia_data_dir) if args.aia_index else None
        serve(args.workdir, host=args.host, port=args.port, aia=aia)
    except ArtefactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


# ------------------------------------------------------------------------------------------ demo
def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole method end to end on synthetic data; writes report.html",
        description=(
            "Build the synthetic dataset, train the GAN, fit the physical directions, train SimSiam, build the "
            "index, steer and search, evaluate, and write OUTDIR/report.html and OUTDIR/metrics.json. Finished "
            "stages are cached by config fingerprint: a rerun skips them, an interrupted run resumes. The "
            "full size takes about 18 min on an idle 2-core CPU (GAN ~10 min); --quick (smoke test) ~4 min."
        ),
    )
    parser.add_argument("--outdir", default="demo_out", help="output directory (default demo_out)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    parser.add_argument(
        "--fits-dir", help="real SHARP Br FITS files to embed and search (default: ../shared/data/sharp_cea)"
    )
    parser.add_argument(
        "--dataset",
        choices=("sharp", "cme"),
        default="sharp",
        help="sharp (default): SHARP magnetograms; cme: synthetic CME difference images "
        "(solarjax.cme_demo: GAN, steering, SimSiam, index, search and rare-case mining)",
    )
    parser.set_defaults(func=_run_demo)


def _run_demo(args) -> int:
    from solarjax.demo import run_demo
    from solarjax.stages import OutdirError

    try:
        if args.dataset == "cme":
            from solarjax.cme_demo import run_cme_demo

            run_cme_demo(args.outdir, quick=args.quick)
        else:
            run_demo(args.outdir, quick=args.quick, fits_dir=args.fits_dir)
    except OutdirError as err:
        print(f"solarjax demo: {err}", file=sys.stderr)
        return 2
    return 0


# ------------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    from solarjax import __version__

    parser = _Parser(prog="solarjax", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"solarjax {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more progress on stderr: -v solarjax's debug lines, -vv also other libraries' INFO "
        "(orbax, absl, jax); allowed anywhere on the line (default: solarjax's progress lines)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0,
        help="less on stderr: -q only warnings and errors, -qq only errors (results still go to stdout)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_physics(subparsers)
    _add_data(subparsers)
    _add_train(subparsers)
    _add_sample(subparsers)
    _add_steer(subparsers)
    _add_index(subparsers)
    _add_search(subparsers)
    _add_serve(subparsers)
    _add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command; bad input or a missing artefact is one line on stderr and exit 2
    (SOLARJAX_TRACEBACK=1 shows the traceback instead)."""
    _use_compilation_cache()
    argv, config_overrides = _split_config_overrides(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(_verbosity_first(argv))
    configure_logging(args.verbose - args.quiet)
    if config_overrides and getattr(args, "func", None) is not _run_train:
        print(
            f"solarjax {args.command}: error: --config.{config_overrides[0]}: config overrides are for "
            "`solarjax train` (see solarjax train gan --help)",
            file=sys.stderr,
        )
        return 2
    args.config_overrides = config_overrides
    try:
        return args.func(args)
    except _user_errors() as err:
        if os.environ.get("SOLARJAX_TRACEBACK"):
            raise
        nested = ("data_command", "model", "steer_command", "index_command")
        command = " ".join([args.command, *(str(getattr(args, name)) for name in nested if getattr(args, name, None))])
        print(f"solarjax {command}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


def _use_compilation_cache() -> None:
    """XLA programs persist across commands in $XDG_CACHE_HOME/solarjax/jax (or ~/.cache/...), so a second
    `steer`/`search`/`sample` skips most compilation; JAX_COMPILATION_CACHE_DIR chooses another folder
    (an empty value turns the cache off)."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ or "jax" in sys.modules:
        return
    cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "solarjax" / "jax"
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


_VERBOSITY_FLAGS = frozenset({"-v", "-vv", "-vvv", "--verbose", "-q", "-qq", "--quiet"})


def _verbosity_first(argv: list[str]) -> list[str]:
    """argv with its -v/-q flags moved before the command, so `solarjax demo -q` works as `solarjax -q demo`."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in _VERBOSITY_FLAGS]
    return flags + [a for a in argv[:end] if a not in _VERBOSITY_FLAGS] + argv[end:]


class _StderrHandler(logging.StreamHandler):
    """A handler that writes to whatever sys.stderr is when a record arrives (tests and notebooks swap it)."""

    _solarjax = True

    def __init__(self):
        super().__init__()
        self.setFormatter(_ProgramFormatter())

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


class _ProgramFormatter(logging.Formatter):
    """solarjax's lines as they are; other libraries' with their level and logger name."""

    def format(self, record):
        if record.name == "solarjax" or record.name.startswith("solarjax."):
            return record.getMessage()
        return f"{record.levelname} {record.name}: {record.getMessage()}"


def configure_logging(verbosity: int = 0) -> None:
    """The program's logging (the library only logs; this is for the `solarjax` command): one stderr handler
    on the root logger, added once; ``solarjax.*`` at INFO (verbosity 1+: DEBUG, -1: WARNING, -2: ERROR),
    other libraries at WARNING (verbosity 2+: INFO) so orbax and absl progress chatter is hidden."""
    root = logging.getLogger()
    if not any(getattr(handler, "_solarjax", False) for handler in root.handlers):
        root.addHandler(_StderrHandler())
    own = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG if verbosity > 0 else logging.ERROR)
    logging.getLogger("solarjax").setLevel(own)
    others = logging.INFO if verbosity >= 2 else (logging.ERROR if verbosity <= -2 else logging.WARNING)
    root.setLevel(others)
    for noisy in ("absl", "orbax", "jax"):  # set their own levels, so they cannot override the root's
        logging.getLogger(noisy).setLevel(others)


def _split_config_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """argv without its ``--config.FIELD=VALUE`` / ``--config.FIELD VALUE`` items, and those as FIELD=VALUE."""
    rest, overrides = [], []
    items = iter(argv)
    for item in items:
        if item.startswith("--config."):
            field = item[len("--config.") :]
            overrides.append(field if "=" in field else f"{field}={next(items, '')}")
        else:
            rest.append(item)
    return rest, overrides


if __name__ == "__main__":
    sys.exit(main())
