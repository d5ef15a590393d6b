"""A local JSOC replaying SDO/AIA level-1 records, for the tests of `solarjax.data.aia`.

`AiaReplay` is `jsoc_replay.JsocReplay` (same endpoints, JSON formats, exports, file serving and
fault injection) with the two AIA level-1 series instead of SHARPs:

    series aia.lev1_euv_12s (12 s slots) and aia.lev1_uv_24s (24 s slots), prime keys T_REC, WAVELNTH;
    keywords T_REC, T_OBS (``2014-01-01T00:00:01Z``, ``2014-01-01T00:00:08.57Z``: UTC as JSOC prints
    AIA times), WAVELNTH, EXPTIME, QUALITY (decimal), MISSING when absent; segment ``image``.

Records come from the headers of real level-1 FITS files (`write_aia_file` makes them: a copy of
sunpy's test file ``aia_171_level1.fits`` with the keywords of another record; the image is
unchanged). Record sets understood: ``series[T/<D>@<S>][w1,w2]{image}`` (JSOC's slotted sampling:
per step ``T + kS`` the records of the slot starting there, i.e. ``0 <= T_REC - T < D`` and
``(T_REC - T) mod S`` below the series' slot length), ``series[T/<D>]``, ``series[T]``, and recnum
lists ``series[:#r1,#r2]{image}``. Exported files are named by the request's ``filenamefmt`` with
``{segment}`` rendered as the stored file's stem ``image_lev1``, as JSOC does.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import pathlib
import re
import warnings

from jsoc_replay import JsocReplay, RecordSetError, _parse_duration

SERIES_SLOT_S = {"aia.lev1_euv_12s": 12, "aia.lev1_uv_24s": 24}
UV_WAVELENGTHS = (1600, 1700)
KEYWORD_TYPES = {"T_REC": "time", "T_OBS": "time", "WAVELNTH": "int", "EXPTIME": "double", "QUALITY": "int"}
SEGMENT_FILE_STEM = "image_lev1"
FIRST_RECNUM = 150_000_000


@dataclasses.dataclass(frozen=True)
class AiaReplayRecord:
    """One replayed AIA record: series, prime keys, recnum, jsoc_info-formatted keywords, its file."""

    series: str
    t_rec: datetime.datetime
    wavelength: int
    recnum: int
    keywords: dict[str, str]
    files: dict[str, pathlib.Path]


def series_for(wavelength: int) -> str:
    return "aia.lev1_uv_24s" if wavelength in UV_WAVELENGTHS else "aia.lev1_euv_12s"


def t_rec_text(t: datetime.datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%S}Z"


def t_obs_text(t: datetime.datetime) -> str:
    """T_OBS as AIA headers and jsoc_info write it: centiseconds, e.g. ``2014-01-01T00:00:08.57Z``."""
    centiseconds = round(t.microsecond / 1e4)
    whole = t.replace(microsecond=0) + datetime.timedelta(seconds=centiseconds // 100)
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{centiseconds % 100:02d}Z"


def write_aia_file(
    source: pathlib.Path,
    destination: pathlib.Path,
    *,
    t_rec: datetime.datetime,
    wavelength: int,
    t_obs: datetime.datetime | None,
    exptime: float,
    quality: int,
) -> pathlib.Path:
    """A copy of the real level-1 file ``source`` carrying another record's keywords (image unchanged)."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test file's BLANK card on float data
        with fits.open(source) as hdus:
            header = hdus[0].header
            header["T_REC"] = t_rec_text(t_rec)
            header["WAVELNTH"] = wavelength
            header["EXPTIME"] = exptime
            header["QUALITY"] = quality
            if t_obs is None:
                del header["T_OBS"]
            else:
                header["T_OBS"] = t_obs_text(t_obs)
            hdus.writeto(destination, overwrite=True)
    return destination


def _keyword_text(name: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "MISSING"
    if KEYWORD_TYPES[name] == "int":
        return str(int(value))
    if KEYWORD_TYPES[name] == "double":
        return repr(float(value))
    return str(value)


def load_aia_records(paths: list[pathlib.Path]) -> list[AiaReplayRecord]:
    """One record per file, keywords from its header; recnums in (T_REC, WAVELNTH) order."""
    from astropy.io import fits

    rows = []
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.getheader(path, 0)
        values = {name: header.get(name) for name in KEYWORD_TYPES}
        t_rec = datetime.datetime.fromisoformat(values["T_REC"].removesuffix("Z"))
        rows.append((t_rec, int(values["WAVELNTH"]), values, path))
    rows.sort(key=lambda row: row[:2])
    return [
        AiaReplayRecord(
            series_for(w),
            t,
            w,
            FIRST_RECNUM + i,
            {name: _keyword_text(name, v) for name, v in values.items()},
            {"image": path},
        )
        for i, (t, w, values, path) in enumerate(rows)
    ]


def _parse_time(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text.strip().removesuffix("Z"))
    except ValueError:
        raise RecordSetError(f"bad time {text!r}") from None


def _time_matcher(spec: str, slot_s: int):
    spec = spec.strip()
    if "/" not in spec:
        exact = _parse_time(spec)
        return lambda t: t == exact
    start_text, rest = spec.split("/", 1)
    duration_text, _, step_text = rest.partition("@")
    start = _parse_time(start_text)
    duration = _parse_duration(duration_text).total_seconds()
    step = _parse_duration(step_text).total_seconds() if step_text else None

    def matches(t: datetime.datetime) -> bool:
        offset = (t - start).total_seconds()
        return 0 <= offset < duration and (step is None or offset % step < slot_s)

    return matches


def select_aia(records: list[AiaReplayRecord], query: str) -> tuple[list[AiaReplayRecord], list[str] | None]:
    """The records an AIA record-set query names, and its ``{segments}`` (None if absent)."""
    match = re.fullmatch(r"\s*([\w.]+)\s*((?:\[[^\]]*\]\s*)*)(?:\{([^}]*)\})?\s*", query)
    if not match:
        raise RecordSetError(f"Bad record-set query '{query}'.")
    series, filter_text, segment_text = match.groups()
    series = series.lower()
    if series not in SERIES_SLOT_S:
        raise RecordSetError(f"Cannot export series '{series}' - it does not exist.")
    pool = [r for r in records if r.series == series]
    filters = re.findall(r"\[([^\]]*)\]", filter_text)
    segments = None if segment_text is None else [s for s in re.split(r"[\s,]+", segment_text) if s]
    if len(filters) > 2 or any(f.strip().startswith("?") for f in filters):
        raise RecordSetError(f"the replay does not evaluate {query!r}")
    if filters and filters[0].startswith(":"):
        tokens = [t.strip() for t in filters[0][1:].split(",")]
        if len(filters) > 1 or not all(re.fullmatch(r"#\d+", t) for t in tokens):
            raise RecordSetError(f"bad recnum list in {query!r}")
        wanted = {int(t[1:]) for t in tokens}
        return [r for r in pool if r.recnum in wanted], segments
    if filters and filters[0].strip():
        time_ok = _time_matcher(filters[0], SERIES_SLOT_S[series])
        pool = [r for r in pool if time_ok(r.t_rec)]
    if len(filters) > 1 and filters[1].strip():
        tokens = [t.strip() for t in filters[1].split(",")]
        if not all(t.isdigit() for t in tokens):
            raise RecordSetError(f"bad WAVELNTH list {filters[1]!r}")
        pool = [r for r in pool if r.wavelength in {int(t) for t in tokens}]
    return pool, segments


def render_filename(fmt: str, record: AiaReplayRecord, segment: str) -> str:
    """jsoc_fetch's filenamefmt for AIA: {seriesname} {T_REC:A} {WAVELNTH} {recnum:%lld} {segment}; '.fits' appended."""
    values = {
        "seriesname": record.series,
        "T_REC:A": f"{record.t_rec:%Y-%m-%dT%H%M%S}Z",
        "WAVELNTH": str(record.wavelength),
        "recnum:%lld": str(record.recnum),
        "segment": SEGMENT_FILE_STEM if segment == "image" else segment,
    }

    def substitute(match):
        if match[1] not in values:
            raise RecordSetError(f"unknown filenamefmt field {{{match[1]}}}")
        return values[match[1]]

    return re.sub(r"\{([^}]*)\}", substitute, fmt) + ".fits"


class AiaReplay(JsocReplay):
    """`JsocReplay` serving AIA level-1 records (see the module docstring)."""

    def series_description(self, series: str) -> dict | None:
        if series not in SERIES_SLOT_S:
            return None
        return {
            "note": f"AIA level 1, {SERIES_SLOT_S[series]} s slots (replay)",
            "retention": 10000,
            "unitsize": 1,
            "archive": 1,
            "tapegroup": 1,
            "primekeys": ["T_REC", "WAVELNTH"],
            "primekeysinfo": [{"name": "T_REC_index", "slotted": 1}, {"name": "WAVELNTH", "slotted": 0}],
            "dbindex": ["T_REC_index", "WAVELNTH"],
            "keywords": [
                {"name": name, "type": kind, "recscope": "variable", "defval": "", "units": "", "note": ""}
                for name, kind in KEYWORD_TYPES.items()
            ],
            "links": [],
            "segments": [
                {"name": s, "type": "int", "units": "DN", "protocol": "fits", "dims": "4096x4096", "note": ""}
                for s in ("image", "spikes")
            ],
            "status": 0,
        }

    def select(self, query: str):
        return select_aia(self.records, query)

    def export_entries(self, records, segments, fmt):
        fmt = fmt or "{seriesname}.{recnum:%lld}.{segment}"
        files = []
        for r in records:
            for s in segments or ["image", "spikes"]:
                path = r.files.get(s)
                name = render_filename(fmt, r, s) if path is not None else "NoDataFile"
                files.append((f"{r.series}[{t_rec_text(r.t_rec)}][{r.wavelength}]{{{s}}}", name, path))
        return files
