"""`solarjax data download`: the arguments and the command of the SHARP downloader (`solarjax.data.jsoc`)."""

from __future__ import annotations

import argparse

from solarjax.data.download_cli import (
    add_range_arguments,
    add_transport_arguments,
    download_status,
    jsoc_transport,
    number_or_none,
)
from solarjax.data.jsoc import SHARP_SEGMENTS, download_sharps


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``solarjax data download`` (consumed by `run_download`)."""
    add_range_arguments(
        parser,
        files="FITS files",
        start_help="first T_REC, TAI (2012-03-06T00:00 or 2012.03.06_00:00:00_TAI)",
        time_scale="TAI",
    )
    parser.add_argument(
        "--cadence-hours",
        type=number_or_none,
        default=24.0,
        help="one record per HARP per this many hours; 'none' keeps every 12-minute record (default 24)",
    )
    parser.add_argument("--harpnum", dest="harpnums", type=int, nargs="+", help="HARP numbers (default: all)")
    parser.add_argument("--noaa", type=int, nargs="+", help="keep records containing one of these NOAA numbers")
    parser.add_argument(
        "--segments", nargs="+", choices=SHARP_SEGMENTS, default=["Br"], help="segments to fetch (default Br)"
    )
    parser.add_argument(
        "--max-lon-deg",
        type=number_or_none,
        default=60.0,
        help="keep |LON_FWT| <= this, degrees; 'none' for no cut (default 60)",
    )
    parser.add_argument("--min-mu", type=float, default=None, help="keep mu >= this at the flux-weighted centre")
    add_transport_arguments(parser, dry_run_help="print record count and estimated size only")


def run_download(args: argparse.Namespace) -> int:
    """Run ``solarjax data download``: 0 if every file is present, 1 if some failed, 2 on a fatal error."""
    return download_status(
        lambda: download_sharps(
            args.out_dir,
            args.start,
            args.end,
            cadence_hours=args.cadence_hours,
            harpnums=args.harpnums,
            noaa=args.noaa,
            segments=tuple(args.segments),
            max_lon_deg=args.max_lon_deg,
            min_mu=args.min_mu,
            **jsoc_transport(args),
        )
    )
