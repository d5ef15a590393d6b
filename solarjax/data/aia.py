"""Download SDO/AIA level-1 full-disk images from JSOC (drms), channels matched in time.

    report = download_aia("aia/", "2012-03-07T00:00", "2012-03-08T00:00", cadence_s=3600,
                          wavelengths=(171, 193, 211), email="me@example.org")
    report.downloaded    # e.g. aia.lev1_euv_12s.2012-03-07T000001Z.171.image_lev1.fits

Steps (each a small function below, checked against a local JSOC replay in the tests):

1. Query. `aia_query` builds one record set per series and window, JSOC's slotted-time syntax
   ``aia.lev1_euv_12s[2012-03-07T00:00:00Z/3600s@600s][171,193]``: JSOC returns, per requested
   wavelength, the record of the 12 s (EUV) or 24 s (UV, ``aia.lev1_uv_24s``) slot at each step of
   the cadence. drms asks ``jsoc_info op=rs_list`` for `AIA_QUERY_KEYWORDS`.
2. Match (`match_channels`, pure). Cadence slot k sits at ``start + k * cadence``. A record is
   usable when QUALITY has no bit outside ``allowed_quality_bits`` (default 0: QUALITY == 0), T_OBS
   (mid-exposure time) is known and EXPTIME > 0 (images become DN/s downstream). Per slot and
   wavelength the usable record whose T_OBS is nearest the slot time within ``tolerance_s`` is
   taken (default 12 s, 24 s when a UV channel is asked: the series' cadences); a slot lacking
   any requested wavelength is dropped, with the reason per missing wavelength.
3. Export. Records whose file is still missing go to ``jsoc_fetch op=exp_request`` (method url,
   protocol fits) as recnum lists ``aia.lev1_euv_12s[:#r1,#r2]{image}``, one series at a time,
   ``records_per_export`` per request, through the generic client's `solarjax.data.jsoc_export.export_and_fetch`.
4. Fetch. `solarjax.data.download.fetch_files` (via ``export_and_fetch``): ``.part`` files,
   length and FITS checks, retries, ``manifest.json``; reruns skip finished files.

Times are UTC, as AIA's T_REC and T_OBS (``2014-01-01T00:00:01Z``, ``2014-01-01T00:00:08.57Z``).
File names are JSOC's for the template ``{series}.{T_REC:A}.{WAVELNTH}.{segment}``: JSOC writes
the ``image`` segment under its stored file name, ``image_lev1``, giving
``aia.lev1_euv_12s.2014-01-01T000001Z.304.image_lev1.fits``.

The dry run queries and matches but exports and writes nothing; its size estimate is (files still
to fetch) x `TYPICAL_AIA_FILE_BYTES`.

`fido_query` / `fido_download` are the alternative route through sunpy's Fido (VSO), into the
same folder; it has its own downloader (parfive), so files are checked after the fetch but not
entered in ``manifest.json``.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime
import functools
import http.client
import json
import logging
import math
import operator
import os
import pathlib
import re
import time
from collections.abc import Callable, Iterable, Sequence

from solarjax.data.download import (
    CorruptFileError,
    RetryPolicy,
    call_with_retries,
    check_fits_file,
    describe_error,
    load_manifest,
)
from solarjax.data.jsoc_export import (
    JSOC_BASE_URL,
    JSOC_EMAIL_REGISTRATION,
    FetchReport,
    JsocError,
    TransferOptions,
    chunked,
    export_and_fetch,
    jsoc_client,
    quality_flags,
)

logger = logging.getLogger(__name__)

AIA_EUV_SERIES = "aia.lev1_euv_12s"
AIA_UV_SERIES = "aia.lev1_uv_24s"
EUV_WAVELENGTHS = (94, 131, 171, 193, 211, 304, 335)
UV_WAVELENGTHS = (1600, 1700)
DEFAULT_WAVELENGTHS = (171, 193, 211)
SERIES_STEP_S = {AIA_EUV_SERIES: 12, AIA_UV_SERIES: 24}
AIA_SEGMENT = "image"
AIA_SEGMENT_FILE_STEM = "image_lev1"  # what JSOC writes for {segment} of the image segment
AIA_QUERY_KEYWORDS = ("*recnum*", "T_REC", "T_OBS", "WAVELNTH", "EXPTIME", "QUALITY")

# Expected bytes of one exported level-1 full-disk file (4096 x 4096 int16, RICE-compressed): 12 MB,
# the middle of the 10-15 MB such files take (33.6 MB raw, compressed about 2-3x depending on the
# channel's counts). An assumption, not a measurement: no full-size level-1 file is available offline.
TYPICAL_AIA_FILE_BYTES = 12_000_000


# ------------------------------------------------------------------------------------------ times
_ISO_UTC = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_utc(value: str | datetime.datetime) -> datetime.datetime:
    """A naive `datetime` in UTC from ISO 8601 text or a datetime.

    Accepts ``2012-03-07``, ``2012-03-07T00:10``, ``2014-01-01T00:00:08.57Z`` (JSOC's AIA form),
    offsets (``+02:00``, converted to UTC) and naive datetimes (taken as UTC). A leap second
    (``23:59:60.5Z``) becomes the next minute's ``00.5`` s.

    Raises:
      ValueError: unparseable text, or a JSOC TAI time (``..._TAI``): AIA times are UTC.
    """
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return value
        return value.astimezone(datetime.UTC).replace(tzinfo=None)
    text = str(value).strip()
    match = _ISO_UTC.match(text)
    if not match:
        raise ValueError(
            f"cannot read UTC time {text!r}: use ISO 8601, e.g. 2012-03-07T00:10:00 or 2012-03-07T00:10:00Z"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    parsed = datetime.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0))
    parsed += datetime.timedelta(seconds=int(second or 0) + float(fraction or 0.0))
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        parsed -= sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return parsed


def format_utc(t: datetime.datetime) -> str:
    """JSOC's UTC form of a whole-second time, e.g. ``2012-03-07T00:00:01Z``."""
    return f"{t:%Y-%m-%dT%H:%M:%S}Z"


# ------------------------------------------------------------------------------------------ names
def aia_series(wavelength: int) -> str:
    """The level-1 series holding a channel: `AIA_EUV_SERIES` or `AIA_UV_SERIES`.

    Raises:
      ValueError: not an AIA EUV or UV channel.
    """
    if wavelength in EUV_WAVELENGTHS:
        return AIA_EUV_SERIES
    if wavelength in UV_WAVELENGTHS:
        return AIA_UV_SERIES
    raise ValueError(f"{wavelength} is not an AIA EUV {EUV_WAVELENGTHS} or UV {UV_WAVELENGTHS} channel (Angstrom)")


def aia_filenamefmt(series: str) -> str:
    """JSOC's file name template for a series: ``aia.lev1_euv_12s.{T_REC:A}.{WAVELNTH}.{segment}``."""
    return f"{series}.{{T_REC:A}}.{{WAVELNTH}}.{{segment}}"


@dataclasses.dataclass(frozen=True)
class AiaRecord:
    """The keywords of one AIA level-1 record that matching needs.

    Attributes:
      series: `AIA_EUV_SERIES` or `AIA_UV_SERIES`.
      t_rec: slot time (prime key with the wavelength), UTC, whole seconds.
      wavelength: WAVELNTH, Angstrom.
      recnum: JSOC record number (names the record in exports).
      t_obs: T_OBS, mid-exposure time, UTC; None when MISSING.
      exptime: EXPTIME, seconds; NaN when MISSING.
      quality: QUALITY bit flags; 0 is a clean image.
    """

    series: str
    t_rec: datetime.datetime
    wavelength: int
    recnum: int
    t_obs: datetime.datetime | None
    exptime: float
    quality: int


def aia_filename(record: AiaRecord) -> str:
    """JSOC's exported file name, e.g. ``aia.lev1_euv_12s.2014-01-01T000001Z.304.image_lev1.fits``."""
    return f"{record.series}.{record.t_rec:%Y-%m-%dT%H%M%S}Z.{record.wavelength}.{AIA_SEGMENT_FILE_STEM}.fits"


def aia_record_name(record: AiaRecord) -> str:
    """The record-set name of the image, e.g. ``aia.lev1_euv_12s[2014-01-01T00:00:01Z][304]{image}``."""
    return f"{record.series}[{format_utc(record.t_rec)}][{record.wavelength}]{{{AIA_SEGMENT}}}"


def aia_query(series: str, start: datetime.datetime, slots: int, cadence_s: int, wavelengths: Sequence[int]) -> str:
    """Record set of ``slots`` cadence steps from ``start``: ``series[<start>Z/<slots*cadence>s@<cadence>s][w1,w2]``."""
    if slots < 1:
        raise ValueError(f"slots must be >= 1, got {slots}")
    waves = ",".join(str(int(w)) for w in wavelengths)
    return f"{series}[{format_utc(start)}/{slots * cadence_s}s@{cadence_s}s][{waves}]"


def export_recordset(records: Sequence[AiaRecord]) -> str:
    """Record set naming ``records`` (one series) by recnum: ``aia.lev1_euv_12s[:#1,#2]{image}``."""
    if not records:
        raise ValueError("no records to export")
    series = {r.series for r in records}
    if len(series) != 1:
        raise ValueError(f"one export holds one series, got {sorted(series)}")
    return f"{series.pop()}[:{','.join(f'#{r.recnum}' for r in records)}]{{{AIA_SEGMENT}}}"


# ------------------------------------------------------------------------------------ validation
def check_wavelengths(wavelengths: Sequence[int]) -> tuple[int, ...]:
    """The requested channels as ints, in order; raises ValueError on unknown or repeated ones."""
    waves = tuple(int(w) for w in wavelengths)
    if not waves:
        raise ValueError("wavelengths is empty: give AIA channels, e.g. 171 193 211")
    for w in waves:
        aia_series(w)
    if len(set(waves)) != len(waves):
        raise ValueError(f"wavelengths repeat a channel: {list(waves)}")
    return waves


def series_of(wavelengths: Sequence[int]) -> dict[str, list[int]]:
    """``{series: its requested wavelengths}``, EUV before UV."""
    grouped: dict[str, list[int]] = {}
    for series in (AIA_EUV_SERIES, AIA_UV_SERIES):
        waves = [w for w in wavelengths if aia_series(w) == series]
        if waves:
            grouped[series] = waves
    return grouped


def default_tolerance_s(wavelengths: Sequence[int]) -> float:
    """12 s for EUV channels only, 24 s when a UV channel is asked (the series' cadences)."""
    return float(max(SERIES_STEP_S[s] for s in series_of(wavelengths)))


def check_cadence(cadence_s: float, wavelengths: Sequence[int]) -> int:
    """The cadence in whole seconds; it must be a positive multiple of every involved series' step.

    Raises:
      ValueError: e.g. 30 s (not a multiple of 12 s) or 36 s with a UV channel (24 s steps).
    """
    step = math.lcm(*(SERIES_STEP_S[s] for s in series_of(wavelengths)))
    if not (cadence_s > 0 and float(cadence_s).is_integer() and int(cadence_s) % step == 0):
        raise ValueError(
            f"cadence_s must be a positive multiple of {step} s for channels {list(wavelengths)}, got {cadence_s}"
        )
    return int(cadence_s)


def slot_count(start: datetime.datetime, end: datetime.datetime, cadence_s: int) -> int:
    """Number of cadence slots ``start + k * cadence < end``."""
    if not end > start:
        raise ValueError(f"end {end} must be after start {start}")
    return math.ceil((end - start).total_seconds() / cadence_s)


# ------------------------------------------------------------------------------------ JSOC queries
def records_from_keywords(table, series: str, source: str) -> list[AiaRecord]:
    """`AiaRecord` list from the keyword table drms returns for `AIA_QUERY_KEYWORDS`.

    Args:
      table: ``pandas.DataFrame`` with one column per keyword.
      series: the series queried.
      source: the record-set query, for error messages.

    Raises:
      JsocError: a keyword column is missing or a value cannot be read.
    """
    if not len(table):
        return []
    absent = [k for k in AIA_QUERY_KEYWORDS if k not in table.columns]
    if absent:
        raise JsocError(f"{source}: JSOC answer lacks keywords {absent}")
    records = []
    for recnum, t_rec, t_obs, wavelength, exptime, quality in table[list(AIA_QUERY_KEYWORDS)].itertuples(
        index=False, name=None
    ):
        try:
            t_rec_value = parse_utc(t_rec)
            t_obs_value = None if not isinstance(t_obs, str) or t_obs in ("MISSING", "") else parse_utc(t_obs)
            record = AiaRecord(
                series=series,
                t_rec=t_rec_value,
                wavelength=int(wavelength),
                recnum=int(recnum),
                t_obs=t_obs_value,
                exptime=float(exptime),
                quality=quality_flags(quality, source) & 0xFFFFFFFF,  # 32 bits; signed text has bit 31 < 0
            )
        except (TypeError, ValueError) as err:
            raise JsocError(f"{source}: record {t_rec}/{wavelength}: {err}") from None
        records.append(record)
    return records


def query_aia_records(
    client,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    cadence_s: int,
    wavelengths: Sequence[int],
    max_slots_per_query: int = 2000,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[AiaRecord]:
    """The records JSOC returns at every cadence step of ``[start, end)`` for ``wavelengths``.

    One query per series and per window of at most ``max_slots_per_query`` slots (windows start on
    the cadence grid, so they tile it exactly).

    Raises:
      JsocError: JSOC rejected a query, or stayed unreachable through the retries.
    """
    import drms

    if max_slots_per_query < 1:
        raise ValueError(f"max_slots_per_query must be >= 1, got {max_slots_per_query}")
    total = slot_count(start, end, cadence_s)
    records = []
    for series, waves in series_of(wavelengths).items():
        for first in range(0, total, max_slots_per_query):
            window_start = start + datetime.timedelta(seconds=first * cadence_s)
            query = aia_query(series, window_start, min(max_slots_per_query, total - first), cadence_s, waves)
            try:
                table = call_with_retries(
                    # QUALITY is read by `quality_flags` (hex or decimal text), see jsoc.query_sharp_records.
                    lambda q=query: client.query(q, key=list(AIA_QUERY_KEYWORDS), skip_conversion=["QUALITY"]),
                    policy,
                    sleep=sleep,
                )
            except drms.DrmsError as err:
                raise JsocError(f"JSOC query {query!r} failed: {err}") from None
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as err:
                raise JsocError(f"JSOC query {query!r} failed after retries: {describe_error(err)}") from None
            records.extend(records_from_keywords(table, series, query))
    return records


# -------------------------------------------------------------------------------------- matching
@dataclasses.dataclass(frozen=True)
class MatchedSlot:
    """One cadence slot with a usable record for every requested wavelength.

    Attributes:
      time: slot time ``start + k * cadence``, UTC.
      records: one record per requested wavelength, in the requested order.
    """

    time: datetime.datetime
    records: tuple[AiaRecord, ...]


@dataclasses.dataclass(frozen=True)
class DroppedSlot:
    """A cadence slot left out, and why: ``reasons`` maps each unmatched wavelength to its cause."""

    time: datetime.datetime
    reasons: dict[int, str]


@dataclasses.dataclass
class AiaSelection:
    """Outcome of `match_channels`.

    Attributes:
      slots: complete slots, in time order.
      dropped: incomplete slots, in time order.
      rejected: every record found unusable, with the reason (see `record_problem`).
    """

    slots: list[MatchedSlot]
    dropped: list[DroppedSlot]
    rejected: list[tuple[AiaRecord, str]]

    @property
    def records(self) -> list[AiaRecord]:
        return [r for slot in self.slots for r in slot.records]

    def summary_lines(self) -> list[str]:
        """Counts: complete and dropped slots, dropped slots per cause, rejected records per cause."""
        total = len(self.slots) + len(self.dropped)
        lines = [f"{len(self.slots)} of {total} slots complete, {len(self.dropped)} dropped"]
        causes = collections.Counter(f"{w} A: {why}" for slot in self.dropped for w, why in slot.reasons.items())
        lines += [f"  dropped slots lacking {cause}: {n}" for cause, n in sorted(causes.items())]
        problems = collections.Counter(why for _, why in self.rejected)
        lines += [f"  records rejected for {why}: {n}" for why, n in sorted(problems.items())]
        return lines


def record_problem(record: AiaRecord, *, allowed_quality_bits: int = 0) -> str | None:
    """Why a record is unusable, or None: QUALITY bits outside the allowed ones, no T_OBS, EXPTIME <= 0."""
    if record.quality & ~allowed_quality_bits:
        return f"QUALITY 0x{record.quality:08x}"
    if record.t_obs is None:
        return "T_OBS missing"
    if not record.exptime > 0:
        return f"EXPTIME {record.exptime:g} s"
    return None


def _observed(record: AiaRecord) -> datetime.datetime:
    """Time used to place a record: T_OBS, or T_REC when T_OBS is missing."""
    return record.t_obs if record.t_obs is not None else record.t_rec


def match_channels(
    records: Iterable[AiaRecord],
    *,
    start: datetime.datetime,
    end: datetime.datetime,
    cadence_s: int,
    wavelengths: Sequence[int],
    tolerance_s: float | None = None,
    allowed_quality_bits: int = 0,
) -> AiaSelection:
    """One usable record per wavelength per cadence slot, matched on T_OBS; incomplete slots dropped.

    Slot k is at ``start + k * cadence_s`` for ``start + k * cadence_s < end``. For each slot and
    wavelength, the usable record (`record_problem` is None) nearest the slot time with
    ``|T_OBS - slot| <= tolerance_s`` is taken (ties: the earlier one); a record serves one slot
    at most. A slot lacking a wavelength is dropped with the reason: the problems of the unusable
    records within the tolerance, else ``no record within <tolerance> s``.

    Args:
      records: candidates (any order), e.g. from `query_aia_records`.
      start, end: time range, UTC.
      cadence_s: slot spacing, seconds.
      wavelengths: channels every slot must have, Angstrom.
      tolerance_s: largest |T_OBS - slot time|, seconds (None: `default_tolerance_s`).
      allowed_quality_bits: QUALITY bits tolerated (0: keep QUALITY == 0 only).

    Returns:
      An `AiaSelection`.
    """
    waves = check_wavelengths(wavelengths)
    tolerance = default_tolerance_s(waves) if tolerance_s is None else float(tolerance_s)
    if not tolerance >= 0:
        raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
    by_wave: dict[int, list[AiaRecord]] = {w: [] for w in waves}
    for record in records:
        if record.wavelength in by_wave:
            by_wave[record.wavelength].append(record)
    for candidates in by_wave.values():
        candidates.sort(key=lambda r: (_observed(r), r.recnum))
    times = {w: [_observed(r) for r in rs] for w, rs in by_wave.items()}
    problems = {
        r.recnum: why
        for rs in by_wave.values()
        for r in rs
        if (why := record_problem(r, allowed_quality_bits=allowed_quality_bits)) is not None
    }
    window = datetime.timedelta(seconds=tolerance)
    used: set[int] = set()
    slots, dropped = [], []
    for k in range(slot_count(start, end, cadence_s)):
        slot_time = start + datetime.timedelta(seconds=k * cadence_s)
        chosen, reasons = [], {}
        for w in waves:
            low = bisect.bisect_left(times[w], slot_time - window)
            high = bisect.bisect_right(times[w], slot_time + window)
            near = [r for r in by_wave[w][low:high] if r.recnum not in used]
            usable = [r for r in near if r.recnum not in problems]
            if usable:
                chosen.append(min(usable, key=lambda r: (abs(_observed(r) - slot_time), _observed(r))))
            elif near:
                reasons[w] = "; ".join(sorted({problems[r.recnum] for r in near}))
            else:
                reasons[w] = f"no record within {tolerance:g} s"
        if reasons:
            dropped.append(DroppedSlot(slot_time, reasons))
        else:
            used.update(r.recnum for r in chosen)
            slots.append(MatchedSlot(slot_time, tuple(chosen)))
    rejected = [(r, problems[r.recnum]) for rs in by_wave.values() for r in rs if r.recnum in problems]
    return AiaSelection(slots=slots, dropped=dropped, rejected=rejected)


# ---------------------------------------------------------------------------------------- download
@dataclasses.dataclass(kw_only=True)
class AiaDownloadReport(FetchReport):
    """What `download_aia` matched, fetched, skipped and could not fetch: a `FetchReport` plus the matching.

    Attributes:
      selection: matched and dropped slots, rejected records.
      files: every file name the complete slots need.
      estimated_bytes: files still missing x `TYPICAL_AIA_FILE_BYTES`.
    """

    selection: AiaSelection

    def summary(self) -> str:
        """Human-readable lines: matching, then what was (or would be) fetched."""
        estimate = f"{self.estimated_bytes / 1e9:.2f} GB ({TYPICAL_AIA_FILE_BYTES / 1e6:g} MB per file)"
        return "\n".join(self.selection.summary_lines() + self.fetch_lines(estimate=estimate))


def _whole_seconds(t: datetime.datetime, what: str) -> datetime.datetime:
    if t.microsecond:
        raise ValueError(f"{what} {t.isoformat()} must be a whole second (JSOC record sets use whole seconds)")
    return t


def download_aia(
    out_dir: str | os.PathLike,
    start: str | datetime.datetime,
    end: str | datetime.datetime,
    *,
    cadence_s: int = 3600,
    wavelengths: Sequence[int] = DEFAULT_WAVELENGTHS,
    tolerance_s: float | None = None,
    allowed_quality_bits: int = 0,
    email: str | None = None,
    base_url: str = JSOC_BASE_URL,
    dry_run: bool = False,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 5.0,
    export_timeout_s: float = 3600.0,
    records_per_export: int = 100,
    max_slots_per_query: int = 2000,
    timeout_s: float = 120.0,
    log: Callable[[str], None] | None = None,
) -> AiaDownloadReport:
    """Match AIA level-1 channels in time on JSOC and download their images as FITS into ``out_dir``.

    See the module docstring for the steps. Rerunning with the same arguments resumes: finished
    files (size and SHA-256 as in ``out_dir/manifest.json``) are neither exported nor fetched again.

    Args:
      out_dir: output folder (created when something is downloaded).
      start, end: time range of the slots ``start + k * cadence < end``, UTC (`parse_utc` forms),
        whole seconds.
      cadence_s: slot spacing in seconds, a multiple of 12 (24 with a UV channel). The default,
        one an hour, is a choice: 8,760 full-disk sets a year.
      wavelengths: channels, Angstrom, from `EUV_WAVELENGTHS` and `UV_WAVELENGTHS`.
      tolerance_s: largest |T_OBS - slot time| (None: 12 s, 24 s with a UV channel).
      allowed_quality_bits: QUALITY bits tolerated (0: QUALITY == 0 only).
      email: address registered with JSOC (required unless ``dry_run``).
      base_url: JSOC's address (tests point it at a local replay).
      dry_run: query and match, print counts and estimated size, export and write nothing.
      policy: retries for every request and every file.
      sleep: backoff wait function (tests inject a recorder).
      poll_seconds: wait between export status polls.
      export_timeout_s: give up on an export not ready after this long.
      records_per_export: records per export request (keeps request URLs short).
      max_slots_per_query: cadence slots per keyword query.
      timeout_s: socket timeout of each file download.
      log: progress lines.

    Returns:
      An `AiaDownloadReport`.

    Raises:
      ValueError: bad arguments (times, channels, cadence, missing email).
      JsocError: the address is not registered, or a query failed.
      ManifestError: ``out_dir/manifest.json`` is unreadable.
    """
    log = log or logger.info
    start = _whole_seconds(parse_utc(start), "start")
    end = _whole_seconds(parse_utc(end), "end")
    waves = check_wavelengths(wavelengths)
    cadence = check_cadence(cadence_s, waves)
    slot_count(start, end, cadence)
    if records_per_export < 1:
        raise ValueError(f"records_per_export must be >= 1, got {records_per_export}")
    if not dry_run and not email:
        raise ValueError(f"JSOC exports need a registered email address (register at {JSOC_EMAIL_REGISTRATION})")
    out_dir = pathlib.Path(out_dir)
    manifest = load_manifest(out_dir)

    client = jsoc_client(base_url, None if dry_run else email, policy=policy, sleep=sleep)
    candidates = query_aia_records(
        client,
        start,
        end,
        cadence_s=cadence,
        wavelengths=waves,
        max_slots_per_query=max_slots_per_query,
        policy=policy,
        sleep=sleep,
    )
    selection = match_channels(
        candidates,
        start=start,
        end=end,
        cadence_s=cadence,
        wavelengths=waves,
        tolerance_s=tolerance_s,
        allowed_quality_bits=allowed_quality_bits,
    )
    files = {aia_filename(r): r for r in selection.records}
    finished = {name for name in files if manifest.is_finished(name)}
    missing = [name for name in files if name not in finished]
    report = AiaDownloadReport(
        out_dir=out_dir,
        selection=selection,
        files=list(files),
        skipped=sorted(finished),
        estimated_bytes=len(missing) * TYPICAL_AIA_FILE_BYTES,
        dry_run=dry_run,
    )
    if dry_run:
        log(report.summary())
        return report

    for name, record in files.items():
        manifest.mark_requested(name, aia_record_name(record))
    manifest.save()
    transfer = TransferOptions(
        policy=policy, sleep=sleep, poll_seconds=poll_seconds, export_timeout_s=export_timeout_s, timeout_s=timeout_s
    )
    for series in series_of(waves):
        pending = [files[n] for n in missing if files[n].series == series]
        batches = [
            (export_recordset(chunk), [aia_filename(r) for r in chunk])
            for chunk in chunked(pending, records_per_export)
        ]
        outcome = export_and_fetch(
            client, batches, manifest, email=email, filenamefmt=aia_filenamefmt(series), transfer=transfer, log=log
        )
        report.add_fetched(outcome)
    log(report.summary())
    return report


# ----------------------------------------------------------------------------- sunpy Fido route
def fido_query(
    start: str | datetime.datetime,
    end: str | datetime.datetime,
    *,
    cadence_s: int = 3600,
    wavelengths: Sequence[int] = DEFAULT_WAVELENGTHS,
) -> tuple:
    """The ``Fido.search`` attributes of the same request: time range, AIA, wavelengths, sample.

    ``Fido.search(*fido_query(...))`` asks the VSO for AIA level-1 images in ``[start, end]`` (UTC),
    one of each channel per ``cadence_s`` (VSO's ``sample``), channels OR-ed.
    """
    import astropy.units as u
    from sunpy.net import attrs as a

    waves = check_wavelengths(wavelengths)
    cadence = check_cadence(cadence_s, waves)
    start, end = parse_utc(start), parse_utc(end)
    slot_count(start, end, cadence)
    channels = functools.reduce(operator.or_, (a.Wavelength(w * u.AA) for w in waves))
    return a.Time(start, end), a.Instrument.aia, a.Sample(cadence * u.s), channels


def check_fetched_files(paths: Iterable[str | os.PathLike]) -> tuple[list[pathlib.Path], dict[str, str]]:
    """Run `check_fits_file` on fetched files; delete the corrupt ones so a rerun fetches them again.

    Returns:
      (good files, {file name: reason} of the deleted corrupt ones).
    """
    good, corrupt = [], {}
    for path in map(pathlib.Path, paths):
        try:
            check_fits_file(path)
        except CorruptFileError as err:
            corrupt[path.name] = describe_error(err)
            path.unlink(missing_ok=True)
        else:
            good.append(path)
    return good, corrupt


def fido_download(
    out_dir: str | os.PathLike,
    start: str | datetime.datetime,
    end: str | datetime.datetime,
    *,
    cadence_s: int = 3600,
    wavelengths: Sequence[int] = DEFAULT_WAVELENGTHS,
    dry_run: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[list[pathlib.Path], dict[str, str]]:
    """Search the VSO with `fido_query` and fetch into ``out_dir`` (needs the internet).

    Files already in ``out_dir`` are not fetched again (Fido's ``overwrite=False``); corrupt ones
    are deleted (`check_fetched_files`). Time matching and QUALITY filtering are not applied here:
    the VSO's ``sample`` picks the images. A ``dry_run`` searches and prints, and creates nothing.

    Returns:
      (good files, {name or URL: reason} of corrupt files and failed transfers).

    Raises:
      ConnectionError: no VSO mirror answers (offline).
    """
    log = log or logger.info
    from sunpy.net import Fido

    out_dir = pathlib.Path(out_dir)
    result = Fido.search(*fido_query(start, end, cadence_s=cadence_s, wavelengths=wavelengths))
    log(f"Fido found {result.file_num} files")
    if dry_run:
        return [], {}
    out_dir.mkdir(parents=True, exist_ok=True)
    fetched = Fido.fetch(result, path=str(out_dir / "{file}"))
    good, failed = check_fetched_files(fetched)
    for error in fetched.errors:
        failed[str(error.url)] = str(error.exception)
    log(f"Fido: {len(good)} files in {out_dir}, {len(failed)} failed")
    return good, failed
