"""Download SHARP CEA patches (``hmi.sharp_cea_720s``) from JSOC with drms.

    report = download_sharps("sharps/", "2012-03-06T00:00", "2012-03-08T00:00", cadence_hours=6,
                             harpnums=[1449], segments=("Br",), email="me@example.org")
    report.downloaded        # file names in sharps/, e.g. hmi.sharp_cea_720s.1449.20120306_000000_TAI.Br.fits

Steps (each a small function below, all checked against a local JSOC replay in the tests):

1. Query. `sharp_query` builds record sets ``hmi.sharp_cea_720s[<HARPs>][<start>/<seconds>s]``
   (prime keys only), one per time window of ``query_window_days`` so no answer grows huge, and
   drms asks ``jsoc_info op=rs_list`` for `QUERY_KEYWORDS` of every 12-minute record.
2. Select (`select_records`, pure). Keep QUALITY == 0; |LON_FWT| <= ``max_lon_deg`` (Stonyhurst
   longitude of the patch's flux-weighted centre, degrees); optionally mu >= ``min_mu`` (cosine of
   the heliocentric angle of that centre, `heliocentric_mu`); optionally a NOAA number among
   NOAA_ARS. Then thin: time bins of ``cadence_hours`` anchored at ``start``, and per HARP the
   earliest kept record of each bin, so a missing or flagged frame at a bin's start is replaced by
   the next good frame of the bin rather than leaving the bin empty.
3. Export. The selected records that still lack a file go to ``jsoc_fetch op=exp_request``
   (method ``url``, protocol ``fits``) as recnum lists ``hmi.sharp_cea_720s[:#r1,#r2,...]{Br}``
   (JSOC's own canonical form for explicit lists), ``records_per_export`` at a time; drms polls
   ``exp_status`` until the export is ready (status 0; 1, 2 and 6 mean pending). Steps 3 and 4
   are the generic client's `export_and_fetch` (`solarjax.data.jsoc_export`, shared with the
   SDO/AIA downloader `solarjax.data.aia`), as is `FetchReport`, the fetch part of both reports.
4. Fetch. `solarjax.data.download.fetch_files` downloads each file to ``<name>.part``, checks its
   length and that astropy reads it, renames it, and records it in ``manifest.json``; reruns skip
   finished files and retry failed ones.

Times are TAI, like SHARP's T_REC (TAI = UTC + 34 to 37 s over the SDO mission, so a bound given
in UTC shifts the range by about half a minute and can move a record sitting on the bound). File
names follow JSOC's default for this series:
``hmi.sharp_cea_720s.<HARPNUM>.<YYYYMMDD_HHMMSS>_TAI.<segment>.fits``.

The dry run queries and selects but exports and writes nothing; it estimates the download size as
(number of files still to fetch) x `TYPICAL_SEGMENT_BYTES` of their segment, the mean size of
each segment's real RICE-compressed files in the project's test data. (JSOC reports an export's
size only after the export was made, which a dry run must not do.)
"""

from __future__ import annotations

import dataclasses
import datetime
import http.client
import json
import logging
import math
import os
import pathlib
import time
from collections.abc import Callable, Collection, Iterable, Sequence

from solarjax.data.download import (  # noqa: F401  (ManifestError: importable from here as before)
    ManifestError,
    RetryPolicy,
    call_with_retries,
    describe_error,
    load_manifest,
)
from solarjax.data.jsoc_export import (  # noqa: F401  (the generic client, importable from here as before)
    JSOC_BASE_URL,
    JSOC_EMAIL_REGISTRATION,
    ExportFetchResult,
    FetchReport,
    JsocError,
    TransferOptions,
    chunked,
    export_and_fetch,
    export_urls,
    jsoc_client,
    quality_flags,
)
from solarjax.data.jsoc_time import format_t_rec, parse_tai  # noqa: F401

logger = logging.getLogger(__name__)

SHARP_SERIES = "hmi.sharp_cea_720s"
SHARP_SEGMENTS = ("Br", "Bp", "Bt", "magnetogram", "bitmap")
SHARP_FILENAME_FORMAT = SHARP_SERIES + ".{HARPNUM}.{T_REC:A}.{segment}"
QUERY_KEYWORDS = ("*recnum*", "HARPNUM", "T_REC", "QUALITY", "LON_FWT", "LAT_FWT", "CRLT_OBS", "NOAA_ARS")

# Mean bytes of a real exported file per segment: 40 Br, 43 Bp, 42 Bt, 33 magnetogram and 50 bitmap
# files of ../shared/data/sharp_cea (16 + 3 HARPs, 2011-2017). tests/test_jsoc.py recomputes them.
TYPICAL_SEGMENT_BYTES = {"Br": 313_000, "Bp": 336_000, "Bt": 344_000, "magnetogram": 235_000, "bitmap": 482_000}


def sharp_filename(harpnum: int, t_rec: datetime.datetime, segment: str) -> str:
    """JSOC's exported file name of one SHARP CEA segment (`SHARP_FILENAME_FORMAT` rendered)."""
    return f"{SHARP_SERIES}.{harpnum}.{t_rec:%Y%m%d_%H%M%S}_TAI.{segment}.fits"


def sharp_record_name(harpnum: int, t_rec: datetime.datetime, segment: str) -> str:
    """The record-set name of one segment, e.g. ``hmi.sharp_cea_720s[1449][2012.03.06_14:24:00_TAI]{Br}``."""
    return f"{SHARP_SERIES}[{harpnum}][{format_t_rec(t_rec)}]{{{segment}}}"


# ------------------------------------------------------------------------------------- selection
@dataclasses.dataclass(frozen=True)
class SharpRecord:
    """The keywords of one SHARP CEA record that selection needs.

    Attributes:
      harpnum: HARP number (prime key).
      t_rec: record time, TAI (prime key).
      recnum: JSOC record number (names this version of the record in exports).
      quality: QUALITY bit flags; 0 is a clean observation.
      lon_fwt: Stonyhurst longitude of the flux-weighted centre, degrees (NaN when missing).
      lat_fwt: latitude of the flux-weighted centre, degrees (NaN when missing).
      crlt_obs: heliographic latitude of SDO, the solar B0 angle, degrees (NaN when missing).
      noaa_ars: NOAA active-region numbers inside the patch (NOAA_ARS), possibly empty.
    """

    harpnum: int
    t_rec: datetime.datetime
    recnum: int
    quality: int
    lon_fwt: float
    lat_fwt: float
    crlt_obs: float
    noaa_ars: tuple[int, ...]


def heliocentric_mu(lat_deg: float, lon_deg: float, b0_deg: float) -> float:
    """mu = cos(heliocentric angle) of the point at Stonyhurst (lat, lon) seen from solar latitude B0.

    ``sin(B0) sin(lat) + cos(B0) cos(lat) cos(lon)``, observer at infinity (at 1 AU the exact
    value differs by < 0.005). 1 at disk centre, 0 on the limb, negative behind it; NaN in, NaN out.
    """
    lat, lon, b0 = (math.radians(v) for v in (lat_deg, lon_deg, b0_deg))
    return math.sin(b0) * math.sin(lat) + math.cos(b0) * math.cos(lat) * math.cos(lon)


def _prime_keys(record: SharpRecord) -> tuple[int, datetime.datetime]:
    return record.harpnum, record.t_rec


def passes_filters(
    record: SharpRecord,
    *,
    max_lon_deg: float | None,
    min_mu: float | None,
    noaa: Collection[int] | None,
) -> bool:
    """QUALITY == 0, and each given cut: |LON_FWT| <= max_lon_deg, mu >= min_mu, NOAA among NOAA_ARS.

    A record whose keyword needed by a cut is missing (NaN) fails that cut.
    """
    if record.quality != 0:
        return False
    if max_lon_deg is not None and not abs(record.lon_fwt) <= max_lon_deg:
        return False
    if min_mu is not None and not heliocentric_mu(record.lat_fwt, record.lon_fwt, record.crlt_obs) >= min_mu:
        return False
    if noaa is not None and not any(n in noaa for n in record.noaa_ars):
        return False
    return True


def _check_cadence(cadence_hours: float | None) -> None:
    if cadence_hours is not None and not cadence_hours > 0:
        raise ValueError(f"cadence_hours must be > 0 or None, got {cadence_hours}")


def select_records(
    records: Iterable[SharpRecord],
    *,
    start: datetime.datetime,
    cadence_hours: float | None,
    max_lon_deg: float | None = None,
    min_mu: float | None = None,
    noaa: Iterable[int] | None = None,
) -> list[SharpRecord]:
    """The records to download: filtered by `passes_filters`, then one per HARP per cadence bin.

    Bin k of a HARP holds ``start + k * cadence <= T_REC < start + (k + 1) * cadence``; the
    earliest record passing the filters represents it.

    Args:
      records: candidates (any order, no duplicates).
      start: anchor of the cadence bins (the start of the requested time range), TAI.
      cadence_hours: bin width in hours, > 0; None keeps every record that passes the filters.
      max_lon_deg, min_mu, noaa: cuts of `passes_filters` (None: no cut).

    Returns:
      Selected records sorted by (HARPNUM, T_REC).
    """
    _check_cadence(cadence_hours)
    noaa = None if noaa is None else frozenset(noaa)
    kept = sorted(
        (r for r in records if passes_filters(r, max_lon_deg=max_lon_deg, min_mu=min_mu, noaa=noaa)),
        key=_prime_keys,
    )
    if cadence_hours is None:
        return kept
    cadence = datetime.timedelta(hours=cadence_hours)
    chosen: dict[tuple[int, int], SharpRecord] = {}
    for record in kept:
        chosen.setdefault((record.harpnum, (record.t_rec - start) // cadence), record)
    return list(chosen.values())


# ----------------------------------------------------------------------------------- JSOC queries
def time_windows(
    start: datetime.datetime, end: datetime.datetime, window_days: float
) -> list[tuple[datetime.datetime, datetime.datetime]]:
    """Consecutive half-open windows ``[a, b)`` of at most ``window_days`` covering ``[start, end)``."""
    if not end > start:
        raise ValueError(f"end {end} must be after start {start}")
    if not window_days > 0:
        raise ValueError(f"window_days must be > 0, got {window_days}")
    step = datetime.timedelta(days=window_days)
    windows, a = [], start
    while a < end:
        b = min(a + step, end)
        windows.append((a, b))
        a = b
    return windows


def sharp_query(start: datetime.datetime, end: datetime.datetime, harpnums: Sequence[int] | None = None) -> str:
    """Record set of the SHARP CEA records with ``start <= T_REC < end`` of the given HARPs (all if None).

    Example: ``hmi.sharp_cea_720s[1449,1455][2012.03.06_14:24:00_TAI/86400s]``.
    """
    seconds = (end - start).total_seconds()
    if not seconds > 0:
        raise ValueError(f"end {end} must be after start {start}")
    if harpnums is not None and not len(harpnums):
        raise ValueError("harpnums is empty: give HARP numbers, or None for all HARPs")
    harps = "" if harpnums is None else ",".join(str(int(h)) for h in harpnums)
    return f"{SHARP_SERIES}[{harps}][{format_t_rec(start)}/{seconds:g}s]"


def export_recordset(records: Sequence[SharpRecord], segments: Sequence[str]) -> str:
    """Record set naming ``records`` by recnum with ``segments``: ``hmi.sharp_cea_720s[:#1,#2]{Br,Bp}``."""
    if not records:
        raise ValueError("no records to export")
    recnums = ",".join(f"#{r.recnum}" for r in records)
    return f"{SHARP_SERIES}[:{recnums}]{{{','.join(segments)}}}"


def _noaa_numbers(value, source: str) -> tuple[int, ...]:
    if not isinstance(value, str):  # drms gives NaN for MISSING
        return ()
    tokens = [t.strip() for t in value.split(",") if t.strip() and t.strip() != "MISSING"]
    if not all(t.isdigit() for t in tokens):
        raise JsocError(f"{source}: NOAA_ARS value {value!r} is not a comma-separated list of numbers")
    return tuple(int(t) for t in tokens)


def records_from_keywords(table, source: str) -> list[SharpRecord]:
    """`SharpRecord` list from the keyword table drms returns for `QUERY_KEYWORDS`.

    Args:
      table: ``pandas.DataFrame`` with one column per keyword (drms converted numeric ones).
      source: the record-set query, for error messages.

    Raises:
      JsocError: a keyword column is missing or a value cannot be read.
    """
    if not len(table):
        return []
    absent = [k for k in QUERY_KEYWORDS if k not in table.columns]
    if absent:
        raise JsocError(f"{source}: JSOC answer lacks keywords {absent}")
    records = []
    for row in table[list(QUERY_KEYWORDS)].itertuples(index=False, name=None):
        recnum, harpnum, t_rec, quality, lon, lat, b0, noaa_ars = row
        if any(isinstance(v, float) and math.isnan(v) for v in (recnum, harpnum)):
            raise JsocError(f"{source}: record {harpnum}/{t_rec} lacks *recnum* or HARPNUM")
        try:
            time_value = parse_tai(t_rec)
        except ValueError as err:
            raise JsocError(f"{source}: {err}") from None
        records.append(
            SharpRecord(
                harpnum=int(harpnum),
                t_rec=time_value,
                recnum=int(recnum),
                quality=quality_flags(quality, source),
                lon_fwt=float(lon),
                lat_fwt=float(lat),
                crlt_obs=float(b0),
                noaa_ars=_noaa_numbers(noaa_ars, source),
            )
        )
    return records


def query_sharp_records(
    client,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    harpnums: Sequence[int] | None = None,
    window_days: float = 10.0,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[SharpRecord]:
    """Every SHARP CEA record with ``start <= T_REC < end`` (of ``harpnums`` if given), one query per window.

    Raises:
      JsocError: JSOC rejected a query, or stayed unreachable through the retries.
    """
    import drms

    records = []
    for a, b in time_windows(start, end, window_days):
        query = sharp_query(a, b, harpnums)
        try:
            table = call_with_retries(
                # drms 0.9 converts hex QUALITY only for object columns, so with pandas >= 3 (str
                # columns) it would turn every QUALITY into NaN: `quality_flags` reads it instead.
                lambda q=query: client.query(q, key=list(QUERY_KEYWORDS), skip_conversion=["QUALITY"]),
                policy,
                sleep=sleep,
            )
        except drms.DrmsError as err:
            raise JsocError(f"JSOC query {query!r} failed: {err}") from None
        except (OSError, http.client.HTTPException, json.JSONDecodeError) as err:
            raise JsocError(f"JSOC query {query!r} failed after retries: {describe_error(err)}") from None
        records.extend(records_from_keywords(table, query))
    return records


def estimate_bytes(segment_counts: dict[str, int]) -> int:
    """Expected bytes of ``{segment: number of files}`` at `TYPICAL_SEGMENT_BYTES` each."""
    return sum(TYPICAL_SEGMENT_BYTES[segment] * n for segment, n in segment_counts.items())


# ---------------------------------------------------------------------------------------- download
@dataclasses.dataclass(kw_only=True)
class DownloadReport(FetchReport):
    """What `download_sharps` selected, fetched, skipped and could not fetch: a `FetchReport` plus the records.

    Attributes:
      records: selected records, sorted by (HARPNUM, T_REC).
      files: every file name the selection needs (records x segments).
      estimated_bytes: files still missing x `TYPICAL_SEGMENT_BYTES` of their segment.
    """

    records: list[SharpRecord]

    def summary(self) -> str:
        """Human-readable lines: selection, then what was (or would be) fetched."""
        harps = len({r.harpnum for r in self.records})
        lead = f"{len(self.records)} SHARP records selected ({harps} HARPs), "
        return "\n".join(self.fetch_lines(lead=lead, estimate=f"{self.estimated_bytes / 1e6:.1f} MB"))


def download_sharps(
    out_dir: str | os.PathLike,
    start: str | datetime.datetime,
    end: str | datetime.datetime,
    *,
    cadence_hours: float | None = 24.0,
    harpnums: Sequence[int] | None = None,
    noaa: Sequence[int] | None = None,
    segments: Sequence[str] = ("Br",),
    max_lon_deg: float | None = 60.0,
    min_mu: float | None = None,
    email: str | None = None,
    base_url: str = JSOC_BASE_URL,
    dry_run: bool = False,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 5.0,
    export_timeout_s: float = 3600.0,
    records_per_export: int = 200,
    query_window_days: float = 10.0,
    timeout_s: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> DownloadReport:
    """Select SHARP CEA records on JSOC and download their segments as FITS into ``out_dir``.

    See the module docstring for the steps. Rerunning with the same arguments resumes: finished
    files (size and SHA-256 as in ``out_dir/manifest.json``) are neither exported nor fetched again.

    Args:
      out_dir: output folder (created when something is downloaded).
      start, end: time range ``start <= T_REC < end``, TAI (`parse_tai` forms).
      cadence_hours: one record per HARP per this many hours (see `select_records`); None: all.
        The default, one a day, is a choice: a few thousand HARPs over the SDO mission, each
        about nine days within +-60 deg, make tens of thousands of patches, the scale of the
        paper's ~44,000.
      harpnums: HARP numbers to query (None: all HARPs).
      noaa: keep records whose NOAA_ARS contains one of these NOAA numbers (None: no cut).
      segments: segments to fetch, from `SHARP_SEGMENTS`.
      max_lon_deg: keep |LON_FWT| <= this, degrees (None: no cut). Default 60 (a choice; the
        paper states no cut): projection effects grow towards the limb.
      min_mu: keep mu >= this at the flux-weighted centre (None: no cut).
      email: address registered with JSOC (required unless ``dry_run``).
      base_url: JSOC's address (tests point it at a local replay).
      dry_run: query and select, print count and estimated size, export and write nothing.
      policy: retries for every request and every file.
      sleep: backoff wait function (tests inject a recorder).
      poll_seconds: wait between export status polls (drms sleeps it).
      export_timeout_s: give up on an export not ready after this long.
      records_per_export: records per export request (keeps request URLs short).
      query_window_days: time span of one keyword query.
      timeout_s: socket timeout of each file download.
      log: progress lines.

    Returns:
      A `DownloadReport`.

    Raises:
      ValueError: bad arguments (times, segments, cadence, missing email).
      JsocError: the address is not registered, or a query failed.
      ManifestError: ``out_dir/manifest.json`` is unreadable.
    """
    log = log or logger.info
    start, end = parse_tai(start), parse_tai(end)
    if not end > start:
        raise ValueError(f"end {end} must be after start {start}")
    _check_cadence(cadence_hours)
    unknown = [s for s in segments if s not in SHARP_SEGMENTS]
    if not segments or unknown:
        raise ValueError(f"segments must be a non-empty subset of {SHARP_SEGMENTS}, got {list(segments)}")
    if records_per_export < 1:
        raise ValueError(f"records_per_export must be >= 1, got {records_per_export}")
    if not dry_run and not email:
        raise ValueError(f"JSOC exports need a registered email address (register at {JSOC_EMAIL_REGISTRATION})")
    out_dir = pathlib.Path(out_dir)
    manifest = load_manifest(out_dir)

    client = jsoc_client(base_url, None if dry_run else email, policy=policy, sleep=sleep)
    candidates = query_sharp_records(
        client, start, end, harpnums=harpnums, window_days=query_window_days, policy=policy, sleep=sleep
    )
    records = select_records(
        candidates, start=start, cadence_hours=cadence_hours, max_lon_deg=max_lon_deg, min_mu=min_mu, noaa=noaa
    )
    files = {sharp_filename(r.harpnum, r.t_rec, s): (r, s) for r in records for s in segments}
    finished = {name for name in files if manifest.is_finished(name)}
    missing = {name for name in files if name not in finished}
    report = DownloadReport(
        out_dir=out_dir,
        records=records,
        files=list(files),
        skipped=sorted(finished),
        estimated_bytes=estimate_bytes({s: sum(files[n][1] == s for n in missing) for s in segments}),
        dry_run=dry_run,
    )
    if dry_run:
        log(report.summary())
        return report

    for name in files:
        record, segment = files[name]
        manifest.mark_requested(name, sharp_record_name(record.harpnum, record.t_rec, segment))
    manifest.save()
    pending = [r for r in records if any(sharp_filename(r.harpnum, r.t_rec, s) in missing for s in segments)]
    batches = [
        (
            export_recordset(chunk, segments),
            [n for r in chunk for s in segments if (n := sharp_filename(r.harpnum, r.t_rec, s)) in missing],
        )
        for chunk in chunked(pending, records_per_export)
    ]
    transfer = TransferOptions(
        policy=policy, sleep=sleep, poll_seconds=poll_seconds, export_timeout_s=export_timeout_s, timeout_s=timeout_s
    )
    outcome = export_and_fetch(
        client, batches, manifest, email=email, filenamefmt=SHARP_FILENAME_FORMAT, transfer=transfer, log=log
    )
    report.add_fetched(outcome)
    log(report.summary())
    return report


_MOVED = {name: "solarjax.data.sharp_download_cli" for name in ("add_download_arguments", "run_download")}


def __getattr__(name):
    """The command-line pieces moved to `solarjax.data.sharp_download_cli` (still importable from here)."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
