"""A generic JSOC client: connect with drms, export record sets as url/fits, fetch the files.

Each JSOC downloader makes its own selection (the SHARP one in `solarjax.data.jsoc`, the SDO/AIA one
in `solarjax.data.aia`): it queries keywords, picks records, names the files, marks them requested
in the folder's manifest and hands ``(record set, file names)`` batches to `export_and_fetch`, with
one `TransferOptions` for the retries, polling and timeouts of every request and file. Exports use
method ``url`` and protocol ``fits``; drms polls ``exp_status`` until the export is ready (status
0; 1, 2 and 6 mean pending). Files go through `solarjax.data.download.fetch_files` (``.part``
files, integrity check, manifest, resume). `FetchReport` is the fetch part of every downloader's
report.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import pathlib
import time
from collections.abc import Callable, Iterable, Sequence

from solarjax.data.download import (
    DownloadItem,
    Manifest,
    RetryPolicy,
    call_with_retries,
    describe_error,
    fetch_files,
)

logger = logging.getLogger(__name__)

JSOC_BASE_URL = "http://jsoc.stanford.edu"
JSOC_EMAIL_REGISTRATION = "http://jsoc.stanford.edu/ajax/register_email.html"


class JsocError(RuntimeError):
    """JSOC refused or failed a request; the message names the request and JSOC's answer."""


@dataclasses.dataclass(frozen=True)
class TransferOptions:
    """The transport settings shared by every request and file of one download run.

    Attributes:
      policy: retries (attempts and backoff) of every request, status poll and file.
      sleep: the backoff wait function (tests inject a recorder).
      poll_seconds: wait between export status polls, seconds.
      export_timeout_s: give up on an export not ready after this long, seconds.
      timeout_s: socket timeout of each file download (connect and each read), seconds.
    """

    policy: RetryPolicy = RetryPolicy()
    sleep: Callable[[float], None] = time.sleep
    poll_seconds: float = 5.0
    export_timeout_s: float = 3600.0
    timeout_s: float = 60.0


def jsoc_client(
    base_url: str = JSOC_BASE_URL,
    email: str | None = None,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
):
    """A ``drms.Client`` for the JSOC CGIs under ``base_url``; checks ``email`` if given.

    The server layout is JSOC's: ``<base>/cgi-bin/ajax/{jsoc_info,jsoc_fetch,checkAddress.sh}`` and
    exported files under ``<base>/``.

    Raises:
      JsocError: the address is not registered for exports (or JSOC could not be reached).
    """
    import drms

    base = base_url.rstrip("/") + "/"
    config = drms.ServerConfig(
        name=f"JSOC at {base}",
        cgi_baseurl=base + "cgi-bin/ajax/",
        cgi_jsoc_info="jsoc_info",
        cgi_jsoc_fetch="jsoc_fetch",
        cgi_check_address="checkAddress.sh",
        http_download_baseurl=base,
    )
    try:
        return call_with_retries(lambda: drms.Client(server=config, email=email), policy, sleep=sleep)
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as err:
        raise JsocError(f"cannot reach JSOC at {base}: {describe_error(err)}") from None
    except ValueError as err:  # drms: "Email address is invalid or not registered"
        raise JsocError(
            f"{email!r} is not registered for JSOC exports at {base} ({err}); register it at {JSOC_EMAIL_REGISTRATION}"
        ) from None


def quality_flags(value, source: str) -> int:
    """QUALITY as an int: jsoc_info sends it as hex text (``0x00010400``)."""
    try:
        if isinstance(value, str):
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        return int(value)
    except (TypeError, ValueError):
        raise JsocError(f"{source}: QUALITY value {value!r} is not an integer") from None


def chunked(items: Sequence, size: int) -> list[Sequence]:
    """``items`` in consecutive slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def export_urls(
    client, query: str, email: str, *, filenamefmt: str, transfer: TransferOptions = TransferOptions()
) -> tuple[str, dict[str, str]]:
    """Submit one url/fits export of record set ``query`` and wait for it.

    Args:
      client: a `jsoc_client`.
      query: the record set to export, with its ``{segments}``.
      email: address registered with JSOC.
      filenamefmt: JSOC's file name template (e.g. `SHARP_FILENAME_FORMAT`).
      transfer: retries of the request and of each status poll, the poll interval and the export
        time limit.

    Returns:
      (request id, {file name: URL}).

    Raises:
      JsocError: JSOC refused the export or it was not ready in time.
    """
    import drms

    try:
        export = call_with_retries(
            lambda: client.export(query, method="url", protocol="fits", filenamefmt=filenamefmt, email=email),
            transfer.policy,
            sleep=transfer.sleep,
        )
        ready = call_with_retries(
            lambda: export.wait(timeout=transfer.export_timeout_s, sleep=transfer.poll_seconds),
            transfer.policy,
            sleep=transfer.sleep,
        )
        if not ready:
            raise JsocError(f"JSOC export {export.id} of {query!r} not ready after {transfer.export_timeout_s:g} s")
        table = export.urls
    except drms.DrmsError as err:
        raise JsocError(f"JSOC export of {query!r} failed: {err}") from None
    return export.id, dict(zip(table.filename, table.url))


@dataclasses.dataclass
class ExportFetchResult:
    """Outcome of `export_and_fetch`: names fetched, failures with reasons, bytes, JSOC request ids."""

    downloaded: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    bytes_downloaded: int = 0
    export_ids: list[str] = dataclasses.field(default_factory=list)


def export_and_fetch(
    client,
    batches: Iterable[tuple[str, Sequence[str]]],
    manifest: Manifest,
    *,
    email: str,
    filenamefmt: str,
    transfer: TransferOptions = TransferOptions(),
    log: Callable[[str], None] | None = None,
) -> ExportFetchResult:
    """Export each batch from JSOC (url/fits) and fetch its files with `fetch_files`.

    Shared by every JSOC downloader (SHARP in `solarjax.data.jsoc`, AIA in `solarjax.data.aia`). A batch is
    ``(record set, file names expected from it)``; the names must already be marked requested in
    ``manifest`` (their record descriptions go into failure reasons). A failed export marks its
    names failed (0 attempts) and the next batch goes on; a name JSOC's answer lacks (e.g. its
    segment is ``NoDataFile``) is marked failed too. The manifest is saved after every batch.

    Args:
      client: a `jsoc_client` with ``email`` checked.
      batches: (record set with ``{segments}``, expected local file names) pairs.
      manifest: the output folder's manifest, updated in place.
      email: address registered with JSOC.
      filenamefmt: JSOC's file name template; it must render the expected names.
      transfer: retries, polling and timeouts of every request and file.
      log: progress lines (default: this module's logger at INFO).
    """
    log = log or logger.info
    outcome = ExportFetchResult()
    for query, names in batches:
        try:
            export_id, urls = export_urls(client, query, email, filenamefmt=filenamefmt, transfer=transfer)
        except (JsocError, OSError, http.client.HTTPException, json.JSONDecodeError) as err:
            reason = describe_error(err)
            log(f"export of {len(names)} files failed: {reason}")
            for name in names:
                manifest.mark_failed(name, reason, attempts=0, url=None)
                outcome.failed[name] = reason
            manifest.save()
            continue
        outcome.export_ids.append(export_id)
        log(f"export {export_id}: {len(urls)} files ready")
        for name in names:
            if name not in urls:
                reason = f"JSOC export {export_id} has no file for {manifest.requested[name]['record']}"
                manifest.mark_failed(name, reason, attempts=0, url=None)
                outcome.failed[name] = reason
        items = [DownloadItem(n, urls[n], manifest.requested[n]["record"]) for n in names if n in urls]
        result = fetch_files(
            items, manifest, policy=transfer.policy, sleep=transfer.sleep, timeout_s=transfer.timeout_s, log=log
        )
        outcome.downloaded += result.downloaded
        outcome.failed.update(result.failed)
        outcome.bytes_downloaded += result.bytes_downloaded
    manifest.save()
    return outcome


@dataclasses.dataclass(kw_only=True)
class FetchReport:
    """The fetch part of a download report, shared by `DownloadReport` and `solarjax.data.aia.AiaDownloadReport`.

    Attributes:
      out_dir: the output folder.
      files: every file name the selection needs.
      downloaded: names fetched by this run.
      skipped: names already finished before this run (not exported or fetched again).
      failed: name -> reason, for files this run could not fetch.
      bytes_downloaded: bytes fetched by this run.
      estimated_bytes: expected bytes of the files that were still missing (typical size per file).
      export_ids: JSOC export request ids used by this run.
      dry_run: True if nothing was exported or written.
    """

    out_dir: pathlib.Path
    files: list[str]
    downloaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    bytes_downloaded: int = 0
    estimated_bytes: int = 0
    export_ids: list[str] = dataclasses.field(default_factory=list)
    dry_run: bool = False

    def add_fetched(self, outcome: ExportFetchResult) -> None:
        """Add one `export_and_fetch` outcome (names, failures, bytes, export ids) to this report."""
        self.downloaded += outcome.downloaded
        self.failed.update(outcome.failed)
        self.bytes_downloaded += outcome.bytes_downloaded
        self.export_ids += outcome.export_ids

    def fetch_lines(self, *, lead: str = "", estimate: str) -> list[str]:
        """Summary lines of the fetch.

        ``<lead>N files; M already in <out_dir>``, then either ``dry run: K files to fetch,
        estimated <estimate>`` or ``downloaded N files (X MB), K failed`` and one
        ``  failed <name>: <reason>`` line per failure, sorted by name.

        Args:
          lead: text put before the file count on its line (e.g. the selection's counts).
          estimate: the dry run's size text, e.g. ``3.1 MB``.
        """
        lines = [f"{lead}{len(self.files)} files; {len(self.skipped)} already in {self.out_dir}"]
        if self.dry_run:
            missing = len(self.files) - len(self.skipped)
            lines.append(f"dry run: {missing} files to fetch, estimated {estimate}")
        else:
            lines.append(
                f"downloaded {len(self.downloaded)} files ({self.bytes_downloaded / 1e6:.1f} MB), "
                f"{len(self.failed)} failed"
            )
            lines += [f"  failed {name}: {reason}" for name, reason in sorted(self.failed.items())]
        return lines
