"""What the `solarjax data download*` commands share: argparse types, the arguments every downloader takes (the
folder and time range: `add_range_arguments`; how files are fetched: `add_transport_arguments`) and the exit
status of a download (`download_status`)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable

from solarjax.data.download import ManifestError, RetryPolicy
from solarjax.data.jsoc_export import JSOC_BASE_URL, JsocError


def number_or_none(text: str) -> float | None:
    """argparse type: a float, or 'none' for no limit."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'none', got {text!r}") from None


def duration_seconds(text: str) -> int:
    """argparse type: a whole number of seconds from ``600``, ``600s``, ``10m``, ``1h`` or ``1d``."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 600s, 10m, 1h, got {text!r}")
    return int(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def add_range_arguments(parser: argparse.ArgumentParser, *, files: str, start_help: str, time_scale: str) -> None:
    """OUT_DIR (where the `files` and manifest.json go), --start (help `start_help`) and --end, exclusive, in
    `time_scale` (UTC or TAI)."""
    parser.add_argument("out_dir", help=f"output folder (holds the {files} and manifest.json)")
    parser.add_argument("--start", required=True, help=start_help)
    parser.add_argument("--end", required=True, help=f"end of the range (exclusive), {time_scale}")


def add_transport_arguments(
    parser: argparse.ArgumentParser,
    *,
    dry_run_help: str,
    server: str = "JSOC server",
    base_url: str = JSOC_BASE_URL,
    jsoc_export: bool = True,
) -> None:
    """The options of how files are fetched: --base-url of the `server`, --dry-run, --max-attempts and, for a
    JSOC export (`jsoc_export`), --email before them and --poll-seconds after (read by `jsoc_transport`)."""
    if jsoc_export:
        parser.add_argument("--email", help="address registered with JSOC (default: $JSOC_EMAIL)")
    parser.add_argument("--base-url", default=base_url, help=f"{server} (default {base_url})")
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    parser.add_argument("--max-attempts", type=int, default=5, help="attempts per request and file (default 5)")
    if jsoc_export:
        parser.add_argument("--poll-seconds", type=float, default=5.0, help="export status poll interval (default 5)")


def jsoc_transport(args: argparse.Namespace) -> dict:
    """The keyword arguments of a JSOC download (`download_sharps`, `download_aia`) from its transport options."""
    return dict(
        email=args.email or os.environ.get("JSOC_EMAIL"),
        base_url=args.base_url,
        dry_run=args.dry_run,
        policy=RetryPolicy(max_attempts=args.max_attempts),
        poll_seconds=args.poll_seconds,
    )


def download_status(download: Callable[[], object]) -> int:
    """Runs `download` (returns a report with ``.failed``): 0 if every file is present, 1 if some failed, 2 (one
    line on stderr) when JSOC refused, an argument was bad or the manifest is unreadable."""
    try:
        report = download()
    except (ValueError, JsocError, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if report.failed else 0
