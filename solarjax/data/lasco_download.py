"""Downloading SOHO/LASCO C2/C3 images from the Helioviewer API (JPEG2000 files with their FITS header).

    report = download_lasco("lasco_c2", "2013-05-13T12:00", "2013-05-13T18:00", detector="C2")

Helioviewer's API (version 2) serves, for a data source (`SOURCE_IDS`: LASCO C2 white light is 4, C3 is
5) and a time, the image closest to that time: ``getClosestImage/?date=...&sourceId=...`` answers its
metadata as JSON (``{"id": 34205701, "date": "2014-01-02 00:00:02", "scale": ..., "width": ...,
"height": ..., "refPixelX": ..., "refPixelY": ..., "sunCenterOffsetParams": [], "layeringOrder": 1}``),
``getJP2Image/?date=...&sourceId=...`` the JPEG2000 file itself. A failed request answers
``{"error": "...", "errno": N}``. There is no listing of a time range, so the range is sampled: the
closest image to every `cadence_s` step from `start` to `end`, each distinct image whose time lies in
[start, end) kept once (a cadence at or below the instrument's, 12 min for C2 and C3 in their usual
programme, finds every image).

The files land in `out_dir` under Helioviewer's naming,
``YYYY_MM_DD__HH_MM_SS__SOHO_LASCO_<C2|C3>_white-light.jp2``, with the manifest, resume, retries and
integrity checks of `solarjax.data.download` (a file counts as complete once `solarjax.data.lasco`
reads it as an image of the requested detector). Read them with `solarjax.data.lasco.read_lasco` or
build ``cme_patches/files`` from the folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import pathlib
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from solarjax.data import download, lasco
from solarjax.data.download import (
    CorruptFileError,
    DownloadError,
    DownloadItem,
    FetchResult,
    ManifestError,
    RetryPolicy,
)

logger = logging.getLogger(__name__)

HELIOVIEWER_API_URL = "https://api.helioviewer.org/v2/"
SOURCE_IDS = {"C2": 4, "C3": 5}
"""Helioviewer data-source ids of the LASCO white-light images."""

DEFAULT_CADENCE_S = 720
_USER_AGENT = "solarjax-downloader"


class HelioviewerError(DownloadError):
    """The Helioviewer API answered with an error or with something that is not its JSON."""


@dataclasses.dataclass(frozen=True)
class HelioviewerImage:
    """One image of the archive: its Helioviewer id, observation time (UTC) and detector."""

    id: int
    date: datetime.datetime
    detector: str

    @property
    def file_name(self) -> str:
        return f"{self.date:%Y_%m_%d__%H_%M_%S}__SOHO_LASCO_{self.detector}_white-light.jp2"


def parse_time(text: str | datetime.datetime) -> datetime.datetime:
    """A UTC time from ISO 8601 text ('2013-05-13', '2013-05-13T12:00', a trailing 'Z' allowed)."""
    if isinstance(text, datetime.datetime):
        value = text
    else:
        try:
            value = datetime.datetime.fromisoformat(str(text).strip().rstrip("Z").replace(" ", "T"))
        except ValueError:
            raise ValueError(f"expected a UTC time like 2013-05-13T12:00, got {text!r}") from None
    return value.replace(tzinfo=datetime.UTC) if value.tzinfo is None else value.astimezone(datetime.UTC)


def _api_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def closest_image_url(base_url: str, when: datetime.datetime, detector: str) -> str:
    return f"{base_url.rstrip('/')}/getClosestImage/?" + urllib.parse.urlencode(
        {"date": _api_time(when), "sourceId": SOURCE_IDS[detector]}
    )


def jp2_image_url(base_url: str, image: HelioviewerImage) -> str:
    return f"{base_url.rstrip('/')}/getJP2Image/?" + urllib.parse.urlencode(
        {"date": _api_time(image.date), "sourceId": SOURCE_IDS[image.detector]}
    )


def _get_json(url: str, timeout_s: float) -> dict:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        if error.code >= 500 or error.code in (408, 429):
            raise  # retried by call_with_retries
        body = error.read()
        detail = _error_text(body) or f"HTTP {error.code} {error.reason}"
        raise HelioviewerError(f"{url}: {detail}") from None
    try:
        content = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HelioviewerError(f"{url}: the answer is not JSON: {body[:80]!r}") from None
    if not isinstance(content, dict):
        raise HelioviewerError(f"{url}: expected a JSON object, got {type(content).__name__}")
    if "error" in content:
        raise HelioviewerError(f"{url}: Helioviewer says: {content['error']}")
    return content


def _error_text(body: bytes) -> str | None:
    try:
        content = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return f"Helioviewer says: {content['error']}" if isinstance(content, dict) and "error" in content else None


def closest_image(
    base_url: str, when: datetime.datetime, detector: str, *, timeout_s: float = 60.0
) -> HelioviewerImage:
    """The archive's image of `detector` closest to `when` (one getClosestImage request, no retry)."""
    url = closest_image_url(base_url, when, detector)
    content = _get_json(url, timeout_s)
    try:
        date = datetime.datetime.strptime(str(content["date"]), "%Y-%m-%d %H:%M:%S")
        return HelioviewerImage(id=int(content["id"]), date=date.replace(tzinfo=datetime.UTC), detector=detector)
    except (KeyError, ValueError, TypeError) as error:
        raise HelioviewerError(f"{url}: unexpected image metadata {content!r}: {error!r}") from None


def list_images(
    start: str | datetime.datetime,
    end: str | datetime.datetime,
    detector: str,
    *,
    cadence_s: int = DEFAULT_CADENCE_S,
    base_url: str = HELIOVIEWER_API_URL,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> list[HelioviewerImage]:
    """The distinct images of `detector` in [start, end), found by sampling every `cadence_s` (time order).

    Raises:
      ValueError: an unknown detector, an empty range or a cadence below 1 s.
      HelioviewerError: the API answered an error (after retries of transient failures).
    """
    log = log or logger.info
    if detector not in SOURCE_IDS:
        raise ValueError(f"detector must be one of {sorted(SOURCE_IDS)}, got {detector!r}")
    start, end = parse_time(start), parse_time(end)
    if end <= start:
        raise ValueError(f"--end {end.isoformat()} must be after --start {start.isoformat()}")
    if cadence_s < 1:
        raise ValueError(f"cadence must be at least 1 s, got {cadence_s}")
    found: dict[int, HelioviewerImage] = {}
    when = start
    while when < end:

        def ask(when=when):
            return closest_image(base_url, when, detector, timeout_s=timeout_s)

        def report_retry(failures, error, delay, when=when):
            log(
                f"retry {failures}/{policy.max_attempts - 1} of the image closest to {_api_time(when)} in "
                f"{delay:g} s: {download.describe_error(error)}"
            )

        image = download.call_with_retries(ask, policy, sleep=sleep, on_retry=report_retry)
        if start <= image.date < end:
            found.setdefault(image.id, image)
        when += datetime.timedelta(seconds=cadence_s)
    return sorted(found.values(), key=lambda image: (image.date, image.id))


def check_lasco_file(detector: str) -> Callable[[pathlib.Path], None]:
    """A `download.fetch_files` check: the file reads as a LASCO image of `detector` (header and pixels)."""

    def check(path: pathlib.Path) -> None:
        try:
            image = lasco.read_lasco(path)
        except lasco.LascoReadError as error:
            raise CorruptFileError(str(error)) from None
        if image.meta["detector"] != detector:
            raise CorruptFileError(f"{path}: a LASCO {image.meta['detector']} image, {detector} was requested")

    return check


@dataclasses.dataclass
class LascoDownloadReport:
    """What `download_lasco` found and did (``result`` is None for a dry run)."""

    images: list[HelioviewerImage]
    result: FetchResult | None

    @property
    def failed(self) -> dict[str, str]:
        return {} if self.result is None else self.result.failed


def download_lasco(
    out_dir: str | pathlib.Path,
    start: str | datetime.datetime,
    end: str | datetime.datetime,
    *,
    detector: str = "C2",
    cadence_s: int = DEFAULT_CADENCE_S,
    base_url: str = HELIOVIEWER_API_URL,
    dry_run: bool = False,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> LascoDownloadReport:
    """Downloads the LASCO `detector` images of [start, end) into `out_dir` (resumable; see the module docstring).

    Args:
      out_dir: output folder: the JPEG2000 files and ``manifest.json``; a dry run creates nothing.
      start, end: UTC time range, end exclusive.
      detector: 'C2' or 'C3'.
      cadence_s: sampling step of the range, seconds.
      base_url: the Helioviewer API (version 2) root.
      dry_run: list the images and print what would be fetched; download nothing.
      policy, sleep, timeout_s: retries and socket timeout of every request and file.
      log: one-line progress messages.

    Raises:
      ValueError, HelioviewerError, ManifestError: bad arguments, an API error, an unreadable manifest.
    """
    log = log or logger.info
    out_dir = pathlib.Path(out_dir)
    manifest = download.load_manifest(out_dir)  # an unreadable manifest stops the run before any request
    images = list_images(
        start,
        end,
        detector,
        cadence_s=cadence_s,
        base_url=base_url,
        policy=policy,
        sleep=sleep,
        timeout_s=timeout_s,
        log=log,
    )
    if dry_run:
        done = sum(manifest.is_finished(image.file_name) for image in images)
        log(
            f"dry run: {len(images)} LASCO {detector} images in [{parse_time(start).isoformat()}, "
            f"{parse_time(end).isoformat()}), {done} already in {out_dir}; nothing downloaded"
        )
        for image in images:
            log(f"  {image.file_name}")
        return LascoDownloadReport(images, None)
    items = [
        DownloadItem(
            name=image.file_name,
            url=jp2_image_url(base_url, image),
            record=f"helioviewer[{image.id}] LASCO {detector} {image.date.isoformat()}",
        )
        for image in images
    ]
    result = download.fetch_files(
        items, manifest, policy=policy, sleep=sleep, timeout_s=timeout_s, check=check_lasco_file(detector), log=log
    )
    log(
        f"{len(result.downloaded)} downloaded, {len(result.skipped)} already present, {len(result.failed)} failed "
        f"of {len(images)} LASCO {detector} images in {out_dir}"
    )
    return LascoDownloadReport(images, result)


# ------------------------------------------------------------------------------------------------ CLI
def add_lasco_download_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``solarjax data download-lasco`` (consumed by `run_lasco_download`)."""
    from solarjax.data.download_cli import add_range_arguments, add_transport_arguments, duration_seconds

    add_range_arguments(
        parser, files="JPEG2000 files", start_help="start of the range, UTC (2013-05-13T12:00)", time_scale="UTC"
    )
    parser.add_argument("--detector", choices=sorted(SOURCE_IDS), default="C2", help="LASCO detector (default C2)")
    parser.add_argument(
        "--cadence",
        type=duration_seconds,
        default=DEFAULT_CADENCE_S,
        help="sampling step of the range: 600s, 12m, 1h (default 12m, every image)",
    )
    add_transport_arguments(
        parser,
        dry_run_help="list the images only; download nothing",
        server="Helioviewer API",
        base_url=HELIOVIEWER_API_URL,
        jsoc_export=False,
    )


def run_lasco_download(args: argparse.Namespace) -> int:
    """Run ``solarjax data download-lasco``: 0 if every file is present, 1 if some failed, 2 on a fatal error."""
    try:
        report = download_lasco(
            args.out_dir,
            args.start,
            args.end,
            detector=args.detector,
            cadence_s=args.cadence,
            base_url=args.base_url,
            dry_run=args.dry_run,
            policy=RetryPolicy(max_attempts=args.max_attempts),
        )
    except (ValueError, HelioviewerError, ManifestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        print(f"error: Helioviewer unreachable at {args.base_url}: {download.describe_error(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the output folder cannot be written
        print(f"error: {args.out_dir}: {error}", file=sys.stderr)
        return 2
    return 1 if report.failed else 0
