"""`solarjax data download-aia`: the arguments and the command of the AIA downloader (`solarjax.data.aia`)."""

from __future__ import annotations

import argparse
import sys
import types

from solarjax.data.aia import (
    DEFAULT_WAVELENGTHS,
    EUV_WAVELENGTHS,
    UV_WAVELENGTHS,
    download_aia,
    fido_download,
)
from solarjax.data.download_cli import (
    add_range_arguments,
    add_transport_arguments,
    download_status,
    duration_seconds,
    jsoc_transport,
)


def quality_bits(text: str) -> int:
    """argparse type: QUALITY bits as decimal or 0x-prefixed hex, >= 0."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected QUALITY bits like 0x400 or 1024, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"QUALITY bits must be >= 0, got {text!r}")
    return value


def add_aia_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``solarjax data download-aia`` (consumed by `run_aia_download`)."""
    add_range_arguments(parser, files="FITS files", start_help="first slot, UTC (2012-03-07T00:00)", time_scale="UTC")
    parser.add_argument(
        "--cadence",
        type=duration_seconds,
        default=3600,
        help="slot spacing: 600s, 10m, 1h; a multiple of 12 s (24 s with UV channels) (default 1h)",
    )
    parser.add_argument(
        "--wavelengths",
        type=int,
        nargs="+",
        choices=EUV_WAVELENGTHS + UV_WAVELENGTHS,
        default=list(DEFAULT_WAVELENGTHS),
        help="channels in Angstrom (default 171 193 211)",
    )
    parser.add_argument(
        "--tolerance-s",
        type=float,
        default=None,
        help="largest |T_OBS - slot time| in seconds (default 12, or 24 with UV channels)",
    )
    parser.add_argument(
        "--allowed-quality-bits",
        type=quality_bits,
        default=0,
        help="QUALITY bits tolerated, e.g. 0x400 (default 0: QUALITY == 0 only)",
    )
    parser.add_argument(
        "--route",
        choices=("jsoc", "fido"),
        default="jsoc",
        help="jsoc: drms export with manifest and matching (default); fido: sunpy Fido via the VSO",
    )
    add_transport_arguments(parser, dry_run_help="print slot counts and estimated size only")


def run_aia_download(args: argparse.Namespace) -> int:
    """Run ``solarjax data download-aia``: 0 if every file is present, 1 if some failed, 2 on a fatal error."""
    if args.route == "fido":

        def download():
            _, failed = fido_download(
                args.out_dir,
                args.start,
                args.end,
                cadence_s=args.cadence,
                wavelengths=args.wavelengths,
                dry_run=args.dry_run,
            )
            return types.SimpleNamespace(failed=failed)

    else:

        def download():
            return download_aia(
                args.out_dir,
                args.start,
                args.end,
                cadence_s=args.cadence,
                wavelengths=tuple(args.wavelengths),
                tolerance_s=args.tolerance_s,
                allowed_quality_bits=args.allowed_quality_bits,
                **jsoc_transport(args),
            )

    try:
        return download_status(download)
    except ConnectionError as err:
        print(f"error: {args.route} route: {err}", file=sys.stderr)
        return 2
