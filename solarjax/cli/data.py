"""`solarjax data`: download SHARP, AIA and LASCO files (`download`, `download-aia`, `download-lasco`) and build
the TFDS datasets from them (`build`)."""

from __future__ import annotations

import pathlib
import sys

from solarjax.cli.arguments import add_data_dir_argument, add_dataset_arguments


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser(
        "data",
        help="download SHARPs from JSOC and build the sharp_patches dataset",
        description="Data: `download` fetches SHARP CEA segments from JSOC; `build` writes the TFDS dataset.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    from solarjax.data import aia_download_cli, lasco_download, sharp_download_cli

    downloads = (
        (
            "download",
            "download SHARP CEA segments from JSOC (resumable)",
            "Select hmi.sharp_cea_720s records (time range, cadence per HARP, HARP/NOAA numbers, QUALITY == 0, "
            "distance from disk centre) and export their segments as FITS into OUT_DIR. A manifest.json in "
            "OUT_DIR records what finished and what failed; rerunning resumes without re-downloading finished "
            "files and fetches truncated ones again.",
            sharp_download_cli.add_download_arguments,
            sharp_download_cli.run_download,
        ),
        (
            "download-aia",
            "download SDO/AIA level-1 images from JSOC, channels matched in time (resumable)",
            "Query aia.lev1_euv_12s / aia.lev1_uv_24s at a cadence, keep the slots where every requested channel "
            "has a clean image (QUALITY, T_OBS within a tolerance of the slot) and export them as FITS into "
            "OUT_DIR, with the same manifest.json, resume and integrity checks as `download`. --route fido uses "
            "sunpy's Fido (VSO) instead.",
            aia_download_cli.add_aia_download_arguments,
            aia_download_cli.run_aia_download,
        ),
        (
            "download-lasco",
            "download SOHO/LASCO C2 or C3 images (JPEG2000) from the Helioviewer API (resumable)",
            "Sample the Helioviewer archive every --cadence from --start to --end, keep each distinct LASCO image "
            "of the detector once and fetch it as JPEG2000 (FITS header inside) into OUT_DIR, with the same "
            "manifest.json, resume and integrity checks as `download`. Build cme_patches from the folder with "
            "`solarjax data build --dataset cme_patches --config files --manual-dir OUT_DIR`.",
            lasco_download.add_lasco_download_arguments,
            lasco_download.run_lasco_download,
        ),
    )
    for name, help_text, description, add_arguments, run in downloads:
        download = commands.add_parser(name, help=help_text, description=description)
        add_arguments(download)
        download.set_defaults(func=run)

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
    add_dataset_arguments(
        build,
        dataset_help="which dataset (default sharp_patches; cme_patches: CME difference images of LASCO)",
        config_help="builder config (default synthetic; cme_patches: synthetic, files for LASCO C2, files_c3 for "
        "LASCO C3)",
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
    add_data_dir_argument(build)
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
    build.set_defaults(func=run_data_build)


def run_data_build(args) -> int:
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
