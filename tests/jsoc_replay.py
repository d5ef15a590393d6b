"""A local JSOC that replays real SHARP files, for the tests of `solarjax.data.jsoc`.

It serves on 127.0.0.1 the part of JSOC that drms 0.9 uses, in JSOC's JSON formats (as written by
JSOC's CGI programs jsoc_info and jsoc_fetch):

    /cgi-bin/ajax/checkAddress.sh?address=..&checkonly=1   {"status": 2 registered | 4 not, "msg"}
    /cgi-bin/ajax/jsoc_info?op=series_struct&ds=SERIES     primekeys, keywords (name, type, ...), segments
    /cgi-bin/ajax/jsoc_info?op=rs_list&ds=RS&key=K1,K2     {"keywords": [{"name", "values"}], "segments": [],
                                                            "links": [], "count", "runtime", "status": 0}
    /cgi-bin/ajax/jsoc_fetch?op=exp_request&ds=RS&...      {"status": 2, "requestid": "JSOC_...", "method",
                                                            "protocol", "wait", "rcount", "size" (MB)}
    /cgi-bin/ajax/jsoc_fetch?op=exp_status&requestid=ID    status 6 (not registered yet), 1 (processing),
                                                            then 0 with "dir", "data": [{"record", "filename"}]
    /SUM<k>/D<n>/S00000/<file name>                        the exported files, streamed from disk

Records: one per (HARPNUM, T_REC) among the file names in the source folders (earlier folders
win); keyword values come from that record's first readable header (Br first), formatted as
jsoc_info does (strings; QUALITY in hex; MISSING for absent values). A segment without a file is
exported as ``NoDataFile``, JSOC's marker. Record sets understood: ``series[h1,h2][T/<n>s]``
(HARP list or range, time interval ``[T, T + n)`` or single time; an empty ``[]`` matches all),
and ``series[:#r1,#r2]`` recnum lists, each with an optional ``{seg1,seg2}``; SQL ``[? ?]``
clauses are refused rather than guessed.

Faults, each consumed once per injection (`JsocReplay.inject`):
  "drop":              send half the file under the full Content-Length, then reset the connection;
  "truncate_correct":  send the first half (cut at a 2880-byte block) with that shorter length;
  "truncate_wrong":    send the first half under the full Content-Length, then close cleanly;
  "http_500":          answer HTTP 500; the key is a file name or an endpoint such as
                       "jsoc_info:rs_list", "jsoc_fetch:exp_status", "checkAddress".
Exports answer ``export_notfound_polls`` times status 6, then ``export_pending_polls`` times
status 1, then 0. `JsocReplay.requests` counts every request by the same keys.

The series-specific parts are three methods (``series_description``, ``select``,
``export_entries``); `jsoc_replay_aia.AiaReplay` overrides them to replay the AIA level-1 series.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import http.server
import json
import math
import pathlib
import re
import socket
import struct
import threading
import urllib.parse
import warnings

SERIES = "hmi.sharp_cea_720s"
REGISTERED_EMAIL = "solarjax-test@example.org"
FIRST_RECNUM = 3_100_000
KEYWORD_TYPES = {
    "HARPNUM": "int",
    "T_REC": "time",
    "QUALITY": "int",
    "LON_FWT": "float",
    "LAT_FWT": "float",
    "CRLT_OBS": "float",
    "NOAA_AR": "int",
    "NOAA_NUM": "int",
    "NOAA_ARS": "string",
    "USFLUX": "float",
}
SEGMENT_UNITS = {"Br": "Mx/cm^2", "Bp": "Mx/cm^2", "Bt": "Mx/cm^2", "magnetogram": "Mx/cm^2", "bitmap": " "}
FAULT_KINDS = ("drop", "truncate_correct", "truncate_wrong", "http_500")
_FILE_NAME = re.compile(r"^hmi\.sharp_cea_720s\.(\d+)\.(\d{8}_\d{6})_TAI\.(\w+)\.fits$")
_BLOCK = 2880


# ------------------------------------------------------------------------------------------- data
@dataclasses.dataclass(frozen=True)
class ReplayRecord:
    """One replayed SHARP record: prime keys, recnum, jsoc_info-formatted keywords, segment files."""

    harpnum: int
    t_rec: datetime.datetime
    recnum: int
    keywords: dict[str, str]
    files: dict[str, pathlib.Path]


def t_rec_text(t_rec: datetime.datetime) -> str:
    return t_rec.strftime("%Y.%m.%d_%H:%M:%S_TAI")


def _format_value(name: str, value) -> str:
    """A header value as jsoc_info prints it: always a string, MISSING when absent."""
    kind = KEYWORD_TYPES[name]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "MISSING"
    if name == "QUALITY":
        return f"0x{int(value):08x}"
    if kind == "int":
        return str(int(value))
    if kind == "float":
        return repr(float(value))
    return str(value)


def _header_keywords(paths: list[pathlib.Path]) -> dict[str, object]:
    """KEYWORD_TYPES values from the image header of the first file astropy can open."""
    from astropy.io import fits

    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with fits.open(path) as hdus:
                    header = hdus[-1].header
                    values = {}
                    for name in KEYWORD_TYPES:
                        try:
                            values[name] = header[name]
                        except Exception:  # absent or malformed card (real SHARP headers have some)
                            values[name] = None
                    return values
        except Exception:  # an unreadable file (the corrupt folder): try the record's next file
            continue
    raise ValueError(f"no readable header among {[str(p) for p in paths]}")


def load_records(*folders: pathlib.Path) -> list[ReplayRecord]:
    """Records of every SHARP CEA file name in ``folders``; a segment's first occurrence wins."""
    grouped: dict[tuple[int, datetime.datetime], dict[str, pathlib.Path]] = collections.defaultdict(dict)
    for folder in folders:
        for path in sorted(pathlib.Path(folder).iterdir()):
            match = _FILE_NAME.match(path.name)
            if match:
                key = (int(match[1]), datetime.datetime.strptime(match[2], "%Y%m%d_%H%M%S"))
                grouped[key].setdefault(match[3], path)
    records = []
    for i, (harpnum, t_rec) in enumerate(sorted(grouped)):
        files = grouped[(harpnum, t_rec)]
        ordered = sorted(files.values(), key=lambda p: (not p.name.endswith(".Br.fits"), p.name))
        values = _header_keywords(ordered)
        values["HARPNUM"], values["T_REC"] = harpnum, t_rec_text(t_rec)
        keywords = {name: _format_value(name, values[name]) for name in KEYWORD_TYPES}
        records.append(ReplayRecord(harpnum, t_rec, FIRST_RECNUM + i, keywords, dict(files)))
    return records


# ------------------------------------------------------------------------------------ record sets
class RecordSetError(ValueError):
    """A record-set query the replay (or JSOC) cannot evaluate."""


def _parse_time(text: str) -> datetime.datetime:
    text = text.strip().removesuffix("_TAI")
    for fmt in ("%Y.%m.%d_%H:%M:%S", "%Y.%m.%d_%H:%M:%S.%f", "%Y.%m.%d_%H:%M", "%Y.%m.%d"):
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            pass
    raise RecordSetError(f"bad time {text!r}")


def _parse_duration(text: str) -> datetime.timedelta:
    match = re.fullmatch(r"([0-9.]+)([smhd])", text.strip())
    if not match:
        raise RecordSetError(f"bad time increment {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match[2]]
    return datetime.timedelta(**{unit: float(match[1])})


def _harp_matcher(spec: str):
    if not spec.strip():
        return lambda harpnum: True
    allowed = []
    for token in spec.split(","):
        low, _, high = token.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise RecordSetError(f"bad HARPNUM list {spec!r}")
        allowed.append((int(low), int(high or low)))
    return lambda harpnum: any(a <= harpnum <= b for a, b in allowed)


def _time_matcher(spec: str):
    spec = spec.strip()
    if not spec:
        return lambda t: True
    if "/" in spec:
        start_text, duration_text = spec.split("/", 1)
        if "@" in duration_text:
            raise RecordSetError(f"the replay does not evaluate @ steps: {spec!r}")
        start = _parse_time(start_text)
        end = start + _parse_duration(duration_text)
        return lambda t: start <= t < end
    exact = _parse_time(spec)
    return lambda t: t == exact


def select(records: list[ReplayRecord], query: str) -> tuple[list[ReplayRecord], list[str] | None]:
    """The records a record-set query names, and its ``{segments}`` (None if absent)."""
    match = re.fullmatch(r"\s*([\w.]+)\s*((?:\[[^\]]*\]\s*)*)(?:\{([^}]*)\})?\s*", query)
    if not match:
        raise RecordSetError(f"Bad record-set query '{query}'.")
    series, filter_text, segment_text = match.groups()
    if series.lower() != SERIES:
        raise RecordSetError(f"Cannot export series '{series}' - it does not exist.")
    filters = re.findall(r"\[([^\]]*)\]", filter_text)
    segments = None if segment_text is None else [s for s in re.split(r"[\s,]+", segment_text) if s]
    if any(f.strip().startswith("?") for f in filters):
        raise RecordSetError(f"the replay does not evaluate SQL clauses: {query!r}")
    if filters and filters[0].startswith(":"):
        if len(filters) > 1:
            raise RecordSetError(f"Bad record-set subset specification '{query}'.")
        tokens = filters[0][1:].split(",")
        if not all(re.fullmatch(r"#\d+", t.strip()) for t in tokens):
            raise RecordSetError(f"bad recnum list {filters[0]!r}")
        wanted = {int(t.strip()[1:]) for t in tokens}
        return [r for r in records if r.recnum in wanted], segments
    if len(filters) > 2:
        raise RecordSetError(f"Bad record-set subset specification '{query}'.")
    harp_ok = _harp_matcher(filters[0] if filters else "")
    time_ok = _time_matcher(filters[1] if len(filters) > 1 else "")
    return [r for r in records if harp_ok(r.harpnum) and time_ok(r.t_rec)], segments


def render_filename(fmt: str, record: ReplayRecord, segment: str) -> str:
    """jsoc_fetch's filenamefmt: {seriesname} {HARPNUM} {T_REC:A} {recnum:%lld} {segment}; '.fits' appended."""
    values = {
        "seriesname": SERIES,
        "HARPNUM": str(record.harpnum),
        "T_REC:A": record.t_rec.strftime("%Y%m%d_%H%M%S_TAI"),
        "recnum:%lld": str(record.recnum),
        "segment": segment,
    }

    def substitute(match):
        if match[1] not in values:
            raise RecordSetError(f"unknown filenamefmt field {{{match[1]}}}")
        return values[match[1]]

    return re.sub(r"\{([^}]*)\}", substitute, fmt) + ".fits"


# ------------------------------------------------------------------------------------------ server
@dataclasses.dataclass
class _Export:
    request_id: str
    directory: str
    method: str
    protocol: str
    records: list[ReplayRecord]
    files: list[tuple[str, str, pathlib.Path | None]]  # (record name, file name, path or None)
    polls: int = 0

    @property
    def size_mb(self) -> int:
        return math.ceil(sum(p.stat().st_size for _, _, p in self.files if p is not None) / 1e6)


class JsocReplay:
    """The replay server; use as a context manager. ``base_url`` is what drms's config needs."""

    def __init__(self, records: list[ReplayRecord], *, export_notfound_polls: int = 0, export_pending_polls: int = 0):
        self.records = records
        self.export_notfound_polls = export_notfound_polls
        self.export_pending_polls = export_pending_polls
        self.requests: collections.Counter[str] = collections.Counter()
        self.exports: dict[str, _Export] = {}
        self._faults = {kind: collections.Counter() for kind in FAULT_KINDS}
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.replay = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> JsocReplay:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def inject(self, kind: str, key: str, times: int = 1) -> None:
        """Make the next ``times`` requests for ``key`` fail with fault ``kind`` (see module docstring)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {FAULT_KINDS}")
        with self._lock:
            self._faults[kind][key] += times

    def take_fault(self, kind: str, key: str) -> bool:
        with self._lock:
            if self._faults[kind][key] > 0:
                self._faults[kind][key] -= 1
                return True
            return False

    def count(self, key: str) -> None:
        with self._lock:
            self.requests[key] += 1

    # ---- series-specific parts (a replay of another series overrides these three)
    def series_description(self, series: str) -> dict | None:
        """jsoc_info op=series_struct's answer for ``series`` (lower case), None if unknown."""
        if series != SERIES:
            return None
        return {
            "note": "SHARP CEA, 720s cadence (replay)",
            "retention": 10000,
            "unitsize": 1,
            "archive": 1,
            "tapegroup": 1,
            "primekeys": ["HARPNUM", "T_REC"],
            "primekeysinfo": [{"name": "HARPNUM", "slotted": 0}, {"name": "T_REC_index", "slotted": 1}],
            "dbindex": ["HARPNUM", "T_REC_index"],
            "keywords": [
                {"name": name, "type": kind, "recscope": "variable", "defval": "", "units": "", "note": ""}
                for name, kind in KEYWORD_TYPES.items()
            ],
            "links": [],
            "segments": [
                {"name": s, "type": "int", "units": u, "protocol": "fits", "dims": "VARxVAR", "note": ""}
                for s, u in SEGMENT_UNITS.items()
            ],
            "status": 0,
        }

    def select(self, query: str) -> tuple[list, list[str] | None]:
        """The records a record-set query names and its ``{segments}`` (None if absent)."""
        return select(self.records, query)

    def export_entries(self, records: list, segments: list[str] | None, fmt: str | None):
        """(record name, file name or 'NoDataFile', path or None) of every exported segment."""
        fmt = fmt or "{seriesname}.{recnum:%lld}.{segment}"
        files = []
        for r in records:
            for s in segments or list(SEGMENT_UNITS):
                path = r.files.get(s)
                name = render_filename(fmt, r, s) if path is not None else "NoDataFile"
                files.append((f"{SERIES}[{r.harpnum}][{t_rec_text(r.t_rec)}]{{{s}}}", name, path))
        return files

    # ---- JSON endpoints
    def check_address(self, params) -> dict:
        address = urllib.parse.unquote_plus(params.get("address", ""))
        if address == REGISTERED_EMAIL:
            return {"status": 2, "msg": f"{address} is registered"}
        return {"status": 4, "msg": f"{address} has neither been validated nor registered"}

    def series_struct(self, params) -> dict:
        description = self.series_description(params.get("ds", "").lower())
        if description is None:
            return {"status": 1, "error": f"Cannot find series {params.get('ds')!r}"}
        return description

    def rs_list(self, params) -> dict:
        if params.get("seg") or params.get("link"):
            return {"status": 1, "error": "the replay answers keyword lists only"}
        try:
            records, _ = self.select(params.get("ds", ""))
        except RecordSetError as err:
            return {"status": 1, "error": str(err)}
        names = [k for k in params.get("key", "").split(",") if k]
        keywords = []
        for name in names:
            if name == "*recnum*":
                values = [r.recnum for r in records]
            else:
                values = [r.keywords.get(name, "Invalid KeyLink") for r in records]
            keywords.append({"name": name, "values": values})
        return {"keywords": keywords, "segments": [], "links": [], "count": len(records), "runtime": 0.001, "status": 0}

    def exp_request(self, params) -> dict:
        if params.get("notify") != REGISTERED_EMAIL:
            return {"status": 4, "error": f"Email address {params.get('notify')!r} is not registered"}
        method, protocol = params.get("method", "url"), params.get("protocol", "as-is")
        if method != "url" or protocol != "fits":
            return {"status": 4, "error": f"the replay exports method=url protocol=fits only, not {method}/{protocol}"}
        try:
            records, segments = self.select(params.get("ds", ""))
            files = self.export_entries(records, segments, params.get("filenamefmt"))
        except RecordSetError as err:
            return {"status": 4, "error": str(err)}
        if not records:
            return {"status": 4, "error": "RecordSet specified does not exist"}
        with self._lock:
            number = len(self.exports) + 1
            request_id = f"JSOC_20250101_{number:03d}"
            export = _Export(
                request_id, f"/SUM{number % 7 + 1}/D{4_000_000 + number}/S00000", method, protocol, records, files
            )
            self.exports[request_id] = export
        return {
            "status": 2,
            "requestid": request_id,
            "method": method,
            "protocol": protocol,
            "wait": 0,
            "rcount": len(records),
            "size": export.size_mb,
        }

    def exp_status(self, params) -> dict:
        request_id = params.get("requestid", "")
        if not re.fullmatch(r"JSOC_\d{8}_\d+(_IN)?", request_id):
            return {"status": 4, "error": f"Bad RequestID '{request_id}' provided."}
        with self._lock:
            export = self.exports.get(request_id)
            if export is None:
                return {"status": 6, "error": f"Cant locate export request: jsoc.export[{request_id}]"}
            export.polls += 1
            polls = export.polls
        if polls <= self.export_notfound_polls:
            return {"status": 6, "error": f"Cant locate export request: jsoc.export[{request_id}]"}
        common = {
            "requestid": request_id,
            "method": export.method,
            "protocol": export.protocol,
            "rcount": len(export.records),
            "size": export.size_mb,
        }
        if polls <= self.export_notfound_polls + self.export_pending_polls:
            return {"status": 1, "wait": 1, **common}
        data = [{"record": record, "filename": name} for record, name, _ in export.files]
        return {
            "status": 0,
            "wait": 0,
            "dir": export.directory,
            "count": len(data),
            "exptime": "2025-01-01 00:00:10Z",
            "tarfile": "",
            "keywords": "",
            "data": data,
            **common,
        }

    def exported_file(self, path: str) -> pathlib.Path | None:
        directory, _, name = path.rpartition("/")
        with self._lock:
            exports = list(self.exports.values())
        for export in exports:
            if export.directory == directory:
                for _, file_name, file_path in export.files:
                    if file_name == name and file_path is not None:
                        return file_path
        return None


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "JSOC-replay/1"

    def log_message(self, format, *args) -> None:  # keep test output clean
        pass

    def _send_json(self, content: dict) -> None:
        body = json.dumps(content).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        replay: JsocReplay = self.server.replay
        url = urllib.parse.urlsplit(self.path)
        params = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        endpoints = {
            "/cgi-bin/ajax/checkAddress.sh": ("checkAddress", replay.check_address),
            "/cgi-bin/ajax/jsoc_info": (f"jsoc_info:{params.get('op')}", None),
            "/cgi-bin/ajax/jsoc_fetch": (f"jsoc_fetch:{params.get('op')}", None),
        }
        key, handler = endpoints.get(url.path, (url.path.rpartition("/")[2], None))
        replay.count(key)
        if replay.take_fault("http_500", key):
            self.send_error(500, "Internal Server Error (injected)")
            return
        operations = {
            "jsoc_info:series_struct": replay.series_struct,
            "jsoc_info:rs_list": replay.rs_list,
            "jsoc_fetch:exp_request": replay.exp_request,
            "jsoc_fetch:exp_status": replay.exp_status,
        }
        handler = handler or operations.get(key)
        if handler is not None:
            self._send_json(handler(params))
        elif url.path.startswith("/cgi-bin/"):
            self._send_json({"status": 1, "error": f"unknown operation {params.get('op')!r}"})
        else:
            self._send_file(replay, url.path, key)

    def _send_file(self, replay: JsocReplay, path: str, name: str) -> None:
        file_path = replay.exported_file(path)
        if file_path is None:
            self.send_error(404, "Not Found")
            return
        data = file_path.read_bytes()
        half = (len(data) // 2) // _BLOCK * _BLOCK
        drop = replay.take_fault("drop", name)
        if drop or replay.take_fault("truncate_wrong", name):
            announced, body = len(data), data[:half]
        elif replay.take_fault("truncate_correct", name):
            announced, body = half, data[:half]
        else:
            announced, body = len(data), data
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        try:
            for i in range(0, len(body), 1 << 16):
                self.wfile.write(body[i : i + (1 << 16)])
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if drop:  # abort: close with SO_LINGER 0, so the client sees a reset instead of a clean end
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        self.close_connection = True
