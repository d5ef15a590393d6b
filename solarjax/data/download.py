"""Robust file downloads into a folder: manifest, resume, retries, integrity checks.

Archive-agnostic machinery shared by the JSOC SHARP downloader (`solarjax.data.jsoc`) and any
other archive (an SDO/AIA downloader can reuse it unchanged): give `fetch_files` a list of
`DownloadItem` (local file name, URL, record description) and a `Manifest`.

Guarantees:

* A file appears under its final name only after it was complete and passed its check: bytes go
  to ``<name>.part``, the byte count is compared with the server's Content-Length, the check
  (by default `check_fits_file`: astropy opens the file and reads every HDU's data) runs on the
  ``.part`` file, and only then is it renamed (atomic on POSIX).
* ``manifest.json`` in the output folder says which files were requested, which finished (with
  size in bytes and SHA-256) and which failed (with the reason). It is rewritten atomically after
  every file, so an interrupted run (crash, Ctrl-C, lost connection) loses at most the file in
  flight; the next run skips every finished file whose size and SHA-256 still match.
* Transient failures (HTTP 5xx/408/429, dropped or refused connections, timeouts, short or
  corrupt bodies) are retried with exponential backoff; permanent ones (other HTTP 4xx) are not.
  The sleep function is injectable so tests run without waiting.

An interrupted file restarts from byte 0 on the next attempt (no HTTP Range resume): SHARP and
AIA files are a few MB at most, and a fresh copy is what the integrity check needs anyway.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import http.client
import json
import logging
import os
import pathlib
import socket
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterable
from typing import TypeVar

from solarjax.fingerprint import file_sha256

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "solarjax-download-manifest/1"
PART_SUFFIX = ".part"
FITS_BLOCK_BYTES = 2880
_CHUNK_BYTES = 1 << 16
_USER_AGENT = "solarjax-downloader"
logger = logging.getLogger(__name__)
"""Progress of every downloader (`solarjax.data.download`, under the ``solarjax`` logger the CLI configures)."""

T = TypeVar("T")


class DownloadError(Exception):
    """A download failed; the message names the file or URL and the problem."""


class IncompleteDownloadError(DownloadError):
    """The body received is shorter or longer than the server's Content-Length."""


class CorruptFileError(DownloadError):
    """A downloaded file does not pass its integrity check (e.g. a truncated FITS file)."""


class ManifestError(DownloadError):
    """``manifest.json`` exists but cannot be read or has the wrong structure."""


# ------------------------------------------------------------------------------ integrity checks
def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of a file's bytes (`solarjax.fingerprint.file_sha256`)."""
    return file_sha256(path)


def check_fits_file(path: str | os.PathLike) -> None:
    """Raise `CorruptFileError` unless ``path`` is a complete, readable FITS file.

    Checks, in order: the size is a positive multiple of the 2880-byte FITS block (JSOC writes
    standard FITS, so any other size is a cut-off download); astropy opens it without reporting
    truncation; at least one HDU holds data; every HDU's data can be read, which decompresses
    RICE-compressed tiles and so catches a body cut at a block boundary. Malformed header cards
    (present in real SHARP exports) are tolerated: only the data matter here.

    Args:
      path: the file to check.

    Raises:
      CorruptFileError: naming the file and the problem.
    """
    path = pathlib.Path(path)
    size = path.stat().st_size
    if size == 0 or size % FITS_BLOCK_BYTES:
        raise CorruptFileError(
            f"{path}: {size} bytes is not a positive multiple of the {FITS_BLOCK_BYTES}-byte FITS block "
            "(truncated or empty download)"
        )
    from astropy.io import fits  # deferred: astropy import is slow and only needed here

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with fits.open(path, memmap=False) as hdus:
                sizes = [0 if hdu.data is None else hdu.data.size for hdu in hdus]
    except Exception as err:  # astropy raises OSError, TypeError, ValueError, ... on broken files
        raise CorruptFileError(f"{path}: astropy cannot read it: {type(err).__name__}: {err}") from err
    truncated = [str(w.message) for w in caught if "truncated" in str(w.message).lower()]
    if truncated:
        raise CorruptFileError(f"{path}: {truncated[0]}")
    if not any(sizes):
        raise CorruptFileError(f"{path}: no HDU holds image data ({len(sizes)} HDUs, all empty)")


# ----------------------------------------------------------------------------------------- retries
@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: after failure k (1-based) wait ``min(base_delay_s * 2**(k-1), max_delay_s)``.

    Attributes:
      max_attempts: attempts per operation, the first included (1 = no retry).
      base_delay_s: wait after the first failure, seconds.
      max_delay_s: cap on any single wait, seconds.
    """

    max_attempts: int = 5
    base_delay_s: float = 2.0
    max_delay_s: float = 60.0

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError(f"delays must be >= 0, got {self.base_delay_s}, {self.max_delay_s}")

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        return min(self.base_delay_s * 2.0 ** (failures - 1), self.max_delay_s)


def is_retryable(err: BaseException) -> bool:
    """Whether another attempt may succeed: transient network, server or content errors.

    HTTP 408/429/5xx, refused/reset/dropped connections, timeouts, truncated HTTP bodies, bad JSON
    from a server cut mid-answer, short or corrupt downloads: yes. Other HTTP errors (404, 403,
    ...) and everything else (programming errors, bad arguments): no.
    """
    if isinstance(err, urllib.error.HTTPError):
        return err.code in (408, 429) or err.code >= 500
    return isinstance(
        err,
        (
            urllib.error.URLError,
            ConnectionError,
            TimeoutError,
            socket.timeout,
            http.client.HTTPException,
            json.JSONDecodeError,
            IncompleteDownloadError,
            CorruptFileError,
        ),
    )


def describe_error(err: BaseException) -> str:
    """One line for logs and the manifest: the exception type and message."""
    return f"{type(err).__name__}: {err}"


def call_with_retries(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """``operation()``, retried on `is_retryable` errors with the policy's backoff.

    Args:
      operation: a call without arguments.
      policy: attempts and delays.
      sleep: called with each wait in seconds (inject a recorder in tests).
      on_retry: called as ``on_retry(failures, error, delay_s)`` before each wait.

    Returns:
      What ``operation`` returned on its first success.

    Raises:
      The last error when attempts are exhausted, or the first non-retryable error at once.
    """
    failures = 0
    while True:
        try:
            return operation()
        except Exception as err:  # re-raised below unless retryable and attempts remain
            failures += 1
            if failures >= policy.max_attempts or not is_retryable(err):
                raise
            delay = policy.delay_s(failures)
            if on_retry is not None:
                on_retry(failures, err, delay)
            sleep(delay)


def size_text(num_bytes: float) -> str:
    """Bytes as a short decimal text: ``812 B``, ``149.8 kB``, ``12.3 MB``, ``1.2 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes:.0f} B"


# -------------------------------------------------------------------------------- one file, once
@dataclasses.dataclass(frozen=True)
class FileFingerprint:
    """Size in bytes and hex SHA-256 of a finished file."""

    size: int
    sha256: str


def download_to_file(
    url: str,
    destination: str | os.PathLike,
    *,
    timeout_s: float = 60.0,
    check: Callable[[pathlib.Path], None] = check_fits_file,
) -> FileFingerprint:
    """Download ``url`` to ``destination`` through ``<destination>.part``, checked, then renamed.

    One attempt, no retries (see `call_with_retries`). On any failure the ``.part`` file is
    removed and ``destination`` is left as it was.

    Args:
      url: http(s) URL of the file.
      destination: final path; its folder must exist.
      timeout_s: socket timeout for connecting and for each read, seconds.
      check: integrity check run on the complete ``.part`` file; raises on a bad file.

    Returns:
      The finished file's size and SHA-256.

    Raises:
      urllib.error.HTTPError / URLError, http.client.HTTPException, OSError: transport failures.
      IncompleteDownloadError: fewer or more bytes than the Content-Length header announced.
      CorruptFileError: the check failed.
    """
    destination = pathlib.Path(destination)
    part = destination.with_name(destination.name + PART_SUFFIX)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response, open(part, "wb") as out:
            announced = response.headers.get("Content-Length")
            while True:
                try:
                    chunk = response.read(_CHUNK_BYTES)
                except http.client.IncompleteRead as err:
                    raise IncompleteDownloadError(
                        f"{url}: connection closed after {received + len(err.partial)} of {announced} bytes"
                    ) from err
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if announced is not None and int(announced) != received:
            raise IncompleteDownloadError(f"{url}: received {received} bytes, Content-Length said {announced}")
        check(part)
        os.replace(part, destination)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return FileFingerprint(size=received, sha256=digest.hexdigest())


# ---------------------------------------------------------------------------------------- manifest
def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclasses.dataclass
class Manifest:
    """What a download folder holds, persisted as ``<folder>/manifest.json``.

    JSON layout (file names are relative to the folder)::

        {"format": "solarjax-download-manifest/1",
         "requested": {name: {"record": str, "url": str | null}},
         "finished":  {name: {"size": int, "sha256": str, "url": str, "finished_at": ISO time}},
         "failed":    {name: {"reason": str, "attempts": int, "url": str | null, "failed_at": ISO time}}}

    A name is in at most one of ``finished`` and ``failed``; both are subsets of ``requested``.
    """

    folder: pathlib.Path
    requested: dict[str, dict] = dataclasses.field(default_factory=dict)
    finished: dict[str, dict] = dataclasses.field(default_factory=dict)
    failed: dict[str, dict] = dataclasses.field(default_factory=dict)

    @property
    def path(self) -> pathlib.Path:
        return self.folder / MANIFEST_NAME

    def to_json(self) -> dict:
        return {
            "format": MANIFEST_FORMAT,
            "requested": self.requested,
            "finished": self.finished,
            "failed": self.failed,
        }

    def save(self) -> None:
        """Write ``manifest.json`` atomically (temporary file, fsync, rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(MANIFEST_NAME + ".tmp")
        with open(tmp, "w") as stream:
            json.dump(self.to_json(), stream, indent=1, sort_keys=True)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, self.path)

    def mark_requested(self, name: str, record: str, url: str | None = None) -> None:
        entry = self.requested.setdefault(name, {"record": record, "url": None})
        entry["record"] = record
        if url is not None:
            entry["url"] = url

    def mark_finished(self, name: str, fingerprint: FileFingerprint, url: str) -> None:
        self.failed.pop(name, None)
        self.finished[name] = {
            "size": fingerprint.size,
            "sha256": fingerprint.sha256,
            "url": url,
            "finished_at": _now_iso(),
        }

    def mark_failed(self, name: str, reason: str, *, attempts: int, url: str | None) -> None:
        self.finished.pop(name, None)
        self.failed[name] = {"reason": reason, "attempts": attempts, "url": url, "failed_at": _now_iso()}

    def is_finished(self, name: str) -> bool:
        """True if ``name`` finished and the file on disk still has the recorded size and SHA-256."""
        entry = self.finished.get(name)
        if entry is None:
            return False
        path = self.folder / name
        return path.is_file() and path.stat().st_size == entry["size"] and sha256_of(path) == entry["sha256"]


def load_manifest(folder: str | os.PathLike) -> Manifest:
    """The folder's manifest, or an empty one if the folder has none yet.

    Raises:
      ManifestError: ``manifest.json`` is not valid JSON or not a manifest of this format.
    """
    folder = pathlib.Path(folder)
    path = folder / MANIFEST_NAME
    if not path.exists():
        return Manifest(folder=folder)
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{path}: cannot read the download manifest: {err}") from err
    if not isinstance(content, dict) or content.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: not a solarjax download manifest (expected format {MANIFEST_FORMAT!r})")
    sections = {key: content.get(key) for key in ("requested", "finished", "failed")}
    for key, value in sections.items():
        if not isinstance(value, dict):
            raise ManifestError(f"{path}: section {key!r} must be an object, got {type(value).__name__}")
    return Manifest(folder=folder, **sections)


# ------------------------------------------------------------------------------------ many files
@dataclasses.dataclass(frozen=True)
class DownloadItem:
    """One file to fetch: its local name in the output folder, its URL, and what it is."""

    name: str
    url: str
    record: str


@dataclasses.dataclass
class FetchResult:
    """Outcome of `fetch_files`: names downloaded now, names already finished, failures with reasons."""

    downloaded: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    bytes_downloaded: int = 0


def fetch_files(
    items: Iterable[DownloadItem],
    manifest: Manifest,
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    timeout_s: float = 60.0,
    check: Callable[[pathlib.Path], None] = check_fits_file,
    log: Callable[[str], None] | None = None,
) -> FetchResult:
    """Download every item not already finished into ``manifest.folder``, updating the manifest.

    Items whose file is finished (recorded size and SHA-256 match the file on disk) are skipped.
    Each other item is downloaded with `download_to_file` under `call_with_retries`; the manifest
    is saved after every item, so the folder can be resumed after an interruption at any point.
    A file that still fails after the policy's attempts is recorded in ``failed`` with the reason
    and the run goes on with the next one.

    Args:
      items: the files to fetch; names must be plain file names (no folders).
      manifest: the folder's manifest (see `load_manifest`); modified and saved in place.
      policy: retry attempts and backoff per file.
      sleep: wait function for the backoff.
      timeout_s: socket timeout per connection and read, seconds.
      check: integrity check for a downloaded file.
      log: one-line progress messages: one per downloaded file (count, name, size, rate), one per
        retry and failure (default: this module's logger at INFO).

    Returns:
      Names downloaded, skipped and failed (with reasons), and the bytes downloaded now.
    """
    log = log or logger.info
    items = list(items)
    result = FetchResult()
    manifest.folder.mkdir(parents=True, exist_ok=True)
    for number, item in enumerate(items, 1):
        if pathlib.PurePath(item.name).name != item.name:
            raise ValueError(f"download item name must be a plain file name, got {item.name!r}")
        manifest.mark_requested(item.name, item.record, item.url)
        if manifest.is_finished(item.name):
            result.skipped.append(item.name)
            continue
        attempts = 0

        def attempt(item=item):
            nonlocal attempts
            attempts += 1
            return download_to_file(item.url, manifest.folder / item.name, timeout_s=timeout_s, check=check)

        def report_retry(failures, err, delay, item=item):
            log(f"retry {failures}/{policy.max_attempts - 1} for {item.name} in {delay:g} s: {describe_error(err)}")

        started = time.perf_counter()
        try:
            fingerprint = call_with_retries(attempt, policy, sleep=sleep, on_retry=report_retry)
        except Exception as err:  # recorded as a failure; the other files go on
            reason = describe_error(err)
            manifest.mark_failed(item.name, reason, attempts=attempts, url=item.url)
            result.failed[item.name] = reason
            log(f"FAILED {item.name} after {attempts} attempt(s): {reason}")
        else:
            manifest.mark_finished(item.name, fingerprint, item.url)
            result.downloaded.append(item.name)
            result.bytes_downloaded += fingerprint.size
            seconds = max(time.perf_counter() - started, 1e-6)
            log(
                f"[{number}/{len(items)}] {item.name}: {size_text(fingerprint.size)} in {seconds:.1f} s "
                f"({size_text(fingerprint.size / seconds)}/s)"
            )
        finally:
            manifest.save()
    return result
