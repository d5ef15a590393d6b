"""`solarjax data download`: the arguments and the command of the SHARP downloader (`solarjax.data.jsoc`)."""

from __future__ import annotations

import argparse
import os
import sys

from solarjax.data.download import ManifestError, RetryPolicy
from solarjax.data.jsoc import SHARP_SEGMENTS, download_sharps
from solarjax.data.jsoc_export import JSOC_BASE_URL, JsocError


def _number_or_none(text: str) -> float | None:
    """argparse type: a float, or 'none' for no limit."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def add_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``solarjax data download`` (consumed by `run_download`)."""
    parser.add_argument("out_dir", help="output folder (holds the FITS files and manifest.json)")
    parser.add_argument("--start", required=True, help="first T_REC, TAI (2012-03-06T00:00 or 2012.03.06_00:00:00_TAI)")
    parser.add_argument("--end", required=True, help="end of the range (exclusive), TAI")
    parser.add_argument(
        "--cadence-hours",
        type=_number_or_none,
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
        type=_number_or_none,
        default=60.0,
        help="keep |LON_FWT| <= this, degrees; 'none' for no cut (default 60)",
    )
    parser.add_argument("--min-mu", type=float, default=None, help="keep mu >= this at the flux-weighted centre")
    parser.add_argument("--email", help="address registered with JSOC (default: $JSOC_EMAIL)")
    parser.add_argument("--base-url", default=JSOC_BASE_URL, help=f"JSOC server (default {JSOC_BASE_URL})")
    parser.add_argument("--dry-run", action="store_true", help="print record count and estimated size only")
    parser.add_argument("--max-attempts", type=int, default=5, help="attempts per request and file (default 5)")
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="export status poll interval (default 5)")


def run_download(args: argparse.Namespace) -> int:
    """Run ``solarjax data download``: 0 if every file is present, 1 if some failed, 2 on a fatal error."""
    try:
        report = download_sharps(
            args.out_dir,
            args.start,
            args.end,
            cadence_hours=args.cadence_hours,
            harpnums=args.harpnums,
            noaa=args.noaa,
            segments=tuple(args.segments),
            max_lon_deg=args.max_lon_deg,
            min_mu=args.min_mu,
            email=args.email or os.environ.get("JSOC_EMAIL"),
            base_url=args.base_url,
            dry_run=args.dry_run,
            policy=RetryPolicy(max_attempts=args.max_attempts),
            poll_seconds=args.poll_seconds,
        )
    except (ValueError, JsocError, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if report.failed else 0
