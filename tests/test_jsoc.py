"""solarjax.data.jsoc and solarjax.data.download against a local JSOC replay of real SHARP files.

Known answers come from the real headers of ../shared/data/sharp_cea (see its README): HARP 5011 has
hourly records 2015-01-09 00:00..12:00 TAI without 09:00, QUALITY 0x10400 at 06:00, LON_FWT rising
from 54.17 to 60.56 deg; HARPs 1446 and 1449 have 6-hourly records 2012-03-06 14:24 .. 03-07 14:24
with QUALITY 0x10400 at 03-07 08:24; HARP 1422 sits at LON_FWT 81.9 deg.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import pathlib
import shutil
import statistics
import urllib.error

import pytest
from jsoc_replay import REGISTERED_EMAIL, JsocReplay, load_records

from solarjax.data import download, jsoc
from solarjax.data.download import CorruptFileError, ManifestError, RetryPolicy
from solarjax.data.jsoc import JsocError, SharpRecord

T = datetime.datetime


@pytest.fixture(scope="module")
def replay_records(shared_data):
    return load_records(shared_data / "sharp_cea", shared_data / "sharp_cea_corrupt")


@pytest.fixture
def replay(replay_records):
    with JsocReplay(replay_records) as server:
        yield server


class Sleeps(list):
    """Records backoff waits instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


def run_download(server, out_dir, *, start, end, sleeps=None, lines=None, **kwargs):
    kwargs = {
        "cadence_hours": 6.0,
        "max_lon_deg": 60.0,
        "email": REGISTERED_EMAIL,
        "policy": RetryPolicy(max_attempts=3, base_delay_s=1.0),
        "poll_seconds": 0.001,
        **kwargs,
    }
    return jsoc.download_sharps(
        out_dir,
        start,
        end,
        base_url=server.base_url,
        sleep=sleeps if sleeps is not None else Sleeps(),
        log=(lines if lines is not None else []).append,
        **kwargs,
    )


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


# Two HARPs, 5 records, 10 files; every one exists (uncorrupted) in the shared data.
SMALL = {"start": "2012-03-06T14:24", "end": "2012-03-07T14:24", "harpnums": [1441, 1445], "segments": ("Br", "Bt")}


# ------------------------------------------------------------------------------ names and geometry
def test_times_and_file_names_round_trip_real_names(real_br_files):
    assert jsoc.parse_tai("2012.03.06_14:24:00_TAI") == T(2012, 3, 6, 14, 24)
    assert jsoc.parse_tai("2012.09.07_00:00:00.000_TAI") == T(2012, 9, 7)
    assert jsoc.parse_tai("2012.03.06") == T(2012, 3, 6)
    assert jsoc.parse_tai("2012-03-06T14:24") == T(2012, 3, 6, 14, 24)
    assert jsoc.format_t_rec(T(2012, 3, 6, 14, 24)) == "2012.03.06_14:24:00_TAI"
    with pytest.raises(ValueError, match="UTC offset"):
        jsoc.parse_tai("2012-03-06T14:24+00:00")
    with pytest.raises(ValueError, match="cannot read time 'yesterday'"):
        jsoc.parse_tai("yesterday")
    for path in real_br_files:  # JSOC's own export names
        _, _, harp, stamp, segment, _ = path.name.split(".")
        t_rec = datetime.datetime.strptime(stamp, "%Y%m%d_%H%M%S_TAI")
        assert jsoc.sharp_filename(int(harp), t_rec, segment) == path.name
    record_name = jsoc.sharp_record_name(1449, T(2012, 3, 6, 14, 24), "Br")
    assert record_name == "hmi.sharp_cea_720s[1449][2012.03.06_14:24:00_TAI]{Br}"


def test_record_set_strings():
    assert (
        jsoc.sharp_query(T(2012, 3, 6, 14, 24), T(2012, 3, 7, 14, 24), [1449, 1455])
        == "hmi.sharp_cea_720s[1449,1455][2012.03.06_14:24:00_TAI/86400s]"
    )
    assert jsoc.sharp_query(T(2012, 3, 6), T(2012, 3, 6, 1)) == "hmi.sharp_cea_720s[][2012.03.06_00:00:00_TAI/3600s]"
    records = [SharpRecord(1, T(2012, 1, 1), recnum, 0, 0.0, 0.0, 0.0, ()) for recnum in (17, 4)]
    assert jsoc.export_recordset(records, ("Br", "Bt")) == "hmi.sharp_cea_720s[:#17,#4]{Br,Bt}"
    windows = jsoc.time_windows(T(2012, 1, 1), T(2012, 1, 3, 12), 1.0)
    assert windows == [
        (T(2012, 1, 1), T(2012, 1, 2)),
        (T(2012, 1, 2), T(2012, 1, 3)),
        (T(2012, 1, 3), T(2012, 1, 3, 12)),
    ]


def test_heliocentric_mu_known_values():
    assert jsoc.heliocentric_mu(0, 0, 0) == pytest.approx(1.0)
    assert jsoc.heliocentric_mu(0, 60, 0) == pytest.approx(0.5)
    assert jsoc.heliocentric_mu(0, -90, 0) == pytest.approx(0.0, abs=1e-12)
    assert jsoc.heliocentric_mu(-7.2, 0, -7.2) == pytest.approx(1.0)  # disk centre lies at latitude B0
    assert jsoc.heliocentric_mu(30, 0, 7) == pytest.approx(jsoc.heliocentric_mu(0, 23, 0))  # angle 23 deg both ways


# --------------------------------------------------------------------------------- pure selection
def _records(times_h, *, quality=None, lon=None, harpnum=1, noaa=()):
    quality, lon = quality or {}, lon or {}
    base = T(2020, 1, 1)
    return [
        SharpRecord(
            harpnum,
            base + datetime.timedelta(hours=h),
            1000 * harpnum + i,
            quality.get(h, 0),
            lon.get(h, 10.0),
            5.0,
            1.0,
            noaa,
        )
        for i, h in enumerate(times_h)
    ]


def test_select_records_thins_per_harp_with_fallback_inside_bins():
    times = [i * 0.2 for i in range(30)]  # 12-minute cadence over 6 h
    a = _records(times, quality={0.0: 4, 2.0: 1, 2.2: 1}, harpnum=1)
    b = _records(times, lon={t: 70.0 for t in times if t < 4.0}, harpnum=2)
    start = T(2020, 1, 1)
    chosen = jsoc.select_records(list(reversed(a + b)), start=start, cadence_hours=2.0, max_lon_deg=60.0)
    hours = [(r.harpnum, round((r.t_rec - start).total_seconds() / 3600, 1)) for r in chosen]
    # HARP 1: 00:00 flagged -> 00:12; 02:00, 02:12 flagged -> 02:24; HARP 2: only from 04:00 inside 60 deg.
    assert hours == [(1, 0.2), (1, 2.4), (1, 4.0), (2, 4.0)]
    every = jsoc.select_records(a, start=start, cadence_hours=None)
    assert len(every) == 27  # 30 minus three flagged
    assert len(jsoc.select_records(b, start=start, cadence_hours=None, max_lon_deg=None)) == 30
    # A record exactly at start + cadence opens the next bin.
    assert len(jsoc.select_records(_records([0.0, 1.0]), start=start, cadence_hours=1.0)) == 2
    assert len(jsoc.select_records(_records([0.0, 0.9]), start=start, cadence_hours=1.0)) == 1
    with pytest.raises(ValueError, match="cadence_hours"):
        jsoc.select_records(a, start=start, cadence_hours=0)


def test_select_records_missing_longitude_noaa_and_mu_cuts():
    start = T(2020, 1, 1)
    records = _records([0, 1], lon={1: float("nan")}, noaa=(12673,))
    assert [r.recnum for r in jsoc.select_records(records, start=start, cadence_hours=None, max_lon_deg=60)] == [1000]
    assert len(jsoc.select_records(records, start=start, cadence_hours=None, max_lon_deg=None)) == 2
    assert len(jsoc.select_records(records, start=start, cadence_hours=None, noaa=[12673, 1])) == 2
    assert jsoc.select_records(records, start=start, cadence_hours=None, noaa=[11429]) == []
    # lat 5, lon 10, B0 1: mu = cos(heliocentric angle) = 0.9838...
    mu = jsoc.heliocentric_mu(5.0, 10.0, 1.0)
    assert len(jsoc.select_records(records[:1], start=start, cadence_hours=None, min_mu=mu - 1e-9)) == 1
    assert jsoc.select_records(records[:1], start=start, cadence_hours=None, min_mu=mu + 1e-9) == []


# ------------------------------------------------------------------------- selection through JSOC
def test_query_returns_real_header_keywords_and_known_selection(replay):
    client = jsoc.jsoc_client(replay.base_url)
    start, end = T(2015, 1, 9), T(2015, 1, 9, 13)
    records = jsoc.query_sharp_records(client, start, end, harpnums=[5011])
    assert [r.t_rec.hour for r in records] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12]
    assert records[0].lon_fwt == 54.173168 and records[0].noaa_ars == (12253,)
    assert [r.quality for r in records if r.quality] == [0x10400]  # jsoc_info's hex text, 06:00
    hours = lambda rs: [r.t_rec.hour for r in rs]  # noqa: E731
    # 3-hour bins from 00:00: 06:00 flagged -> 07:00; 09:00 missing -> 10:00; 12:00 is at 60.56 deg.
    assert hours(jsoc.select_records(records, start=start, cadence_hours=3, max_lon_deg=60)) == [0, 3, 7, 10]
    assert hours(jsoc.select_records(records, start=start, cadence_hours=3, max_lon_deg=None)) == [0, 3, 7, 10, 12]
    # Windows smaller than the range give the same records, one rs_list each.
    before = replay.requests["jsoc_info:rs_list"]
    assert jsoc.query_sharp_records(client, start, end, harpnums=[5011], window_days=0.125) == records
    assert replay.requests["jsoc_info:rs_list"] - before == 5  # 13 h in 3-hour windows


def test_known_multi_harp_selection_and_noaa(replay):
    client = jsoc.jsoc_client(replay.base_url)
    start = T(2012, 3, 6, 14, 24)
    records = jsoc.query_sharp_records(client, start, T(2012, 3, 7, 14, 25), harpnums=[1422, 1446, 1449])
    chosen = jsoc.select_records(records, start=start, cadence_hours=12, max_lon_deg=60)
    expected_times = [T(2012, 3, 6, 14, 24), T(2012, 3, 7, 2, 24), T(2012, 3, 7, 14, 24)]
    assert [(r.harpnum, r.t_rec) for r in chosen] == [(h, t) for h in (1446, 1449) for t in expected_times]
    no_cut = jsoc.select_records(records, start=start, cadence_hours=12, max_lon_deg=None)
    assert [(r.harpnum, r.t_rec) for r in no_cut if r.harpnum == 1422] == [(1422, start)]
    # NOAA 11430 is the second region of HARP 1449 (NOAA_ARS '11429,11430').
    assert {r.harpnum for r in jsoc.select_records(records, start=start, cadence_hours=None, noaa=[11430])} == {1449}
    # All HARPs of February 2015: only HARP 5107 holds NOAA 12270.
    february = jsoc.query_sharp_records(client, T(2015, 1, 1), T(2015, 3, 1))
    assert len(february) == 15
    kept = jsoc.select_records(february, start=T(2015, 1, 1), cadence_hours=None, noaa=[12270])
    assert [(r.harpnum, r.t_rec.hour) for r in kept] == [(5107, 0), (5107, 1), (5107, 3)]


# ------------------------------------------------------------------------------------- downloads
def test_full_download_with_pending_export(replay_records, shared_data, tmp_path):
    with JsocReplay(replay_records, export_notfound_polls=1, export_pending_polls=2) as server:
        report = run_download(server, tmp_path / "out", **SMALL)
    names = [
        f"hmi.sharp_cea_720s.{h}.{stamp}_TAI.{s}.fits"
        for h, stamps in (
            (1441, ("20120306_142400", "20120306_202400", "20120307_022400")),
            (1445, ("20120306_142400", "20120306_202400")),
        )
        for stamp in stamps
        for s in ("Br", "Bt")
    ]
    assert sorted(report.downloaded) == sorted(names) and not report.failed and not report.skipped
    assert report.bytes_downloaded == sum((shared_data / "sharp_cea" / n).stat().st_size for n in names)
    for name in names:
        assert sha256(tmp_path / "out" / name) == sha256(shared_data / "sharp_cea" / name)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(names + ["manifest.json"])
    # One export of the 5 records by recnum, polled through status 6, 1, 1 to 0.
    assert server.requests["jsoc_fetch:exp_request"] == 1 and server.requests["jsoc_fetch:exp_status"] == 4
    (export,) = server.exports.values()
    assert [(r.harpnum, r.t_rec) for r in export.records] == [(r.harpnum, r.t_rec) for r in report.records]

    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["format"] == "solarjax-download-manifest/1" and manifest["failed"] == {}
    assert sorted(manifest["requested"]) == sorted(names) == sorted(manifest["finished"])
    entry = manifest["finished"]["hmi.sharp_cea_720s.1441.20120306_142400_TAI.Br.fits"]
    source = shared_data / "sharp_cea" / "hmi.sharp_cea_720s.1441.20120306_142400_TAI.Br.fits"
    assert entry["size"] == source.stat().st_size and entry["sha256"] == sha256(source)
    assert entry["url"].startswith(server.base_url + export.directory + "/")
    assert manifest["requested"]["hmi.sharp_cea_720s.1441.20120306_142400_TAI.Br.fits"]["record"] == (
        "hmi.sharp_cea_720s[1441][2012.03.06_14:24:00_TAI]{Br}"
    )


def test_interrupted_run_resumes_without_refetching(replay, tmp_path):
    out = tmp_path / "out"
    victim = "hmi.sharp_cea_720s.1441.20120307_022400_TAI.Br.fits"  # 5th of 10 files
    replay.inject("drop", victim)

    def ctrl_c(seconds):  # the user interrupts during the backoff after the dropped connection
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_download(replay, out, sleeps=ctrl_c, **SMALL)
    manifest = download.load_manifest(out)
    assert len(manifest.finished) == 4 and victim not in manifest.finished
    assert not (out / victim).exists() and not list(out.glob("*.part"))

    lines = []
    report = run_download(replay, out, lines=lines, **SMALL)
    assert len(report.skipped) == 4 and len(report.downloaded) == 6 and not report.failed
    files = [k for k in replay.requests if k.endswith(".fits")]
    assert len(files) == 10
    assert {k: replay.requests[k] for k in files if replay.requests[k] != 1} == {victim: 2}
    # The second export asked only for the 3 records with files still missing.
    assert [len(e.records) for e in replay.exports.values()] == [5, 3]
    assert "4 already in" in "\n".join(lines)
    # A third run has nothing to do: no export, no file request.
    report = run_download(replay, out, **SMALL)
    assert len(report.skipped) == 10 and not report.downloaded and len(replay.exports) == 2


def test_finished_file_changed_on_disk_is_fetched_again(replay, tmp_path):
    out = tmp_path / "out"
    run_download(replay, out, **{**SMALL, "segments": ("Br",)})
    name = "hmi.sharp_cea_720s.1445.20120306_142400_TAI.Br.fits"
    with open(out / name, "r+b") as stream:  # same size, different bytes
        stream.seek(5000)
        stream.write(b"\0" * 8)
    report = run_download(replay, out, **{**SMALL, "segments": ("Br",)})
    assert report.downloaded == [name] and replay.requests[name] == 2


@pytest.mark.parametrize(
    "fault, error", [("truncate_correct", "CorruptFileError"), ("truncate_wrong", "IncompleteDownloadError")]
)
def test_truncated_body_is_detected_and_fetched_again(replay, shared_data, tmp_path, fault, error):
    name = "hmi.sharp_cea_720s.1445.20120306_202400_TAI.Bt.fits"
    replay.inject(fault, name)
    sleeps, lines = Sleeps(), []
    report = run_download(replay, tmp_path / "out", sleeps=sleeps, lines=lines, **SMALL)
    assert not report.failed and name in report.downloaded
    assert replay.requests[name] == 2 and sleeps == [1.0]
    assert any(name in line and error in line for line in lines)
    assert sha256(tmp_path / "out" / name) == sha256(shared_data / "sharp_cea" / name)


def test_http_500_is_retried_with_exponential_backoff(replay, tmp_path):
    name = "hmi.sharp_cea_720s.1441.20120306_202400_TAI.Br.fits"
    replay.inject("http_500", "jsoc_info:rs_list")
    replay.inject("http_500", "jsoc_fetch:exp_request")
    replay.inject("http_500", name, times=2)
    sleeps = Sleeps()
    report = run_download(
        replay, tmp_path / "out", sleeps=sleeps, policy=RetryPolicy(max_attempts=4, base_delay_s=1.0), **SMALL
    )
    assert not report.failed and len(report.downloaded) == 10
    assert sleeps == [1.0, 1.0, 1.0, 2.0]  # query, export request, then the file twice
    assert replay.requests[name] == 3 and replay.requests["jsoc_info:rs_list"] == 2


def test_permanent_failures_are_recorded_with_reasons(replay, tmp_path):
    # HARP 1446 at 03-06 14:24: the server's Br is the real empty download of sharp_cea_corrupt.
    # HARP 1449 at 03-07 02:24: the record has no Br file at all, so JSOC exports 'NoDataFile'.
    report = run_download(
        replay,
        tmp_path / "out",
        start="2012-03-06T14:24",
        end="2012-03-07T08:00",
        harpnums=[1446, 1449],
        cadence_hours=12.0,
        policy=RetryPolicy(max_attempts=2, base_delay_s=0.5),
    )
    empty = "hmi.sharp_cea_720s.1446.20120306_142400_TAI.Br.fits"
    absent = "hmi.sharp_cea_720s.1449.20120307_022400_TAI.Br.fits"
    assert sorted(report.downloaded) == [
        "hmi.sharp_cea_720s.1446.20120307_022400_TAI.Br.fits",
        "hmi.sharp_cea_720s.1449.20120306_142400_TAI.Br.fits",
    ]
    assert set(report.failed) == {empty, absent}
    assert "CorruptFileError" in report.failed[empty] and "not a positive multiple" in report.failed[empty]
    assert "has no file for hmi.sharp_cea_720s[1449][2012.03.07_02:24:00_TAI]{Br}" in report.failed[absent]
    assert replay.requests[empty] == 2
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["failed"][empty]["attempts"] == 2 and manifest["failed"][absent]["attempts"] == 0
    assert not (tmp_path / "out" / empty).exists()


def test_failed_export_is_recorded_and_the_next_run_completes(replay, tmp_path):
    replay.inject("http_500", "jsoc_fetch:exp_request", times=2)
    first = run_download(replay, tmp_path / "out", policy=RetryPolicy(max_attempts=2, base_delay_s=1.0), **SMALL)
    assert len(first.failed) == 10 and not first.downloaded
    assert all("HTTPError: HTTP Error 500" in reason for reason in first.failed.values())
    assert len(download.load_manifest(tmp_path / "out").failed) == 10
    second = run_download(replay, tmp_path / "out", **SMALL)
    assert len(second.downloaded) == 10 and not second.failed
    manifest = download.load_manifest(tmp_path / "out")
    assert manifest.failed == {} and len(manifest.finished) == 10


def test_dry_run_logs_count_and_size_and_writes_nothing(replay, tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO, logger="solarjax")
    report = jsoc.download_sharps(
        tmp_path / "out",
        SMALL["start"],
        SMALL["end"],
        harpnums=SMALL["harpnums"],
        segments=("Br", "Bt"),
        cadence_hours=6,
        base_url=replay.base_url,
        dry_run=True,
    )
    assert capsys.readouterr().out == ""  # library code logs, never prints
    printed = "\n".join(r.getMessage() for r in caplog.records if r.name == "solarjax.data.jsoc")
    expected_bytes = 5 * (jsoc.TYPICAL_SEGMENT_BYTES["Br"] + jsoc.TYPICAL_SEGMENT_BYTES["Bt"])
    assert report.estimated_bytes == expected_bytes
    assert "5 SHARP records selected (2 HARPs), 10 files" in printed
    assert f"dry run: 10 files to fetch, estimated {expected_bytes / 1e6:.1f} MB" in printed
    assert not (tmp_path / "out").exists()
    assert replay.requests["jsoc_fetch:exp_request"] == 0 and replay.requests["checkAddress"] == 0
    assert not [k for k in replay.requests if k.endswith(".fits")]


def test_dry_run_after_partial_download_estimates_the_rest(replay, tmp_path):
    run_download(replay, tmp_path / "out", **{**SMALL, "segments": ("Br",)})
    report = run_download(replay, tmp_path / "out", dry_run=True, **SMALL)
    assert len(report.skipped) == 5 and report.estimated_bytes == 5 * jsoc.TYPICAL_SEGMENT_BYTES["Bt"]


def test_typical_segment_sizes_match_the_real_files(shared_data):
    for segment, typical in jsoc.TYPICAL_SEGMENT_BYTES.items():
        sizes = [p.stat().st_size for p in (shared_data / "sharp_cea").glob(f"*.{segment}.fits")]
        assert statistics.mean(sizes) == pytest.approx(typical, rel=0.01), segment


def test_bad_inputs_give_clear_errors(replay, tmp_path):
    with pytest.raises(JsocError, match="'nobody@example.org' is not registered for JSOC exports"):
        jsoc.jsoc_client(replay.base_url, "nobody@example.org")
    with pytest.raises(ValueError, match="registered email"):
        jsoc.download_sharps(tmp_path, "2012-03-06", "2012-03-07", base_url=replay.base_url)
    with pytest.raises(ValueError, match="segments must be"):
        jsoc.download_sharps(tmp_path, "2012-03-06", "2012-03-07", segments=("Bz",), dry_run=True)
    with pytest.raises(ValueError, match="harpnums is empty"):
        jsoc.download_sharps(tmp_path, "2012-03-06", "2012-03-07", harpnums=[], base_url=replay.base_url, dry_run=True)
    with pytest.raises(ValueError, match="must be after start"):
        jsoc.download_sharps(tmp_path, "2012-03-07", "2012-03-06", base_url=replay.base_url, dry_run=True)
    with pytest.raises(ValueError, match="cadence_hours must be > 0"):
        jsoc.download_sharps(tmp_path, "2012-03-06", "2012-03-07", cadence_hours=-6, dry_run=True)
    assert replay.requests["jsoc_info:rs_list"] == 0  # argument errors are found before any request
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match=str(tmp_path / "manifest.json")):
        jsoc.download_sharps(tmp_path, "2012-03-06", "2012-03-07", base_url=replay.base_url, dry_run=True)


def test_cli_helpers(replay, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="solarjax")
    parser = argparse.ArgumentParser()
    jsoc.add_download_arguments(parser)
    args = parser.parse_args(
        [
            str(tmp_path / "out"),
            "--start",
            "2015-01-09",
            "--end",
            "2015-01-09T13:00",
            "--harpnum",
            "5011",
            "--cadence-hours",
            "3",
            "--max-lon-deg",
            "none",
            "--segments",
            "bitmap",
            "--base-url",
            replay.base_url,
            "--email",
            REGISTERED_EMAIL,
            "--poll-seconds",
            "0.001",
        ]
    )
    assert args.max_lon_deg is None and args.cadence_hours == 3.0 and args.harpnums == [5011]
    assert jsoc.run_download(args) == 0
    assert "5 SHARP records selected (1 HARPs), 5 files" in caplog.text
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    assert len(progress) == 5 and all(".bitmap.fits: 800.6 kB in " in line for line in progress)  # one per file
    assert len(list((tmp_path / "out").glob("*.bitmap.fits"))) == 5
    args.email, args.base_url = "nobody@example.org", replay.base_url
    assert jsoc.run_download(args) == 2
    assert "not registered" in capsys.readouterr().err


# ------------------------------------------------------------------------------ download machinery
def test_check_fits_file_on_real_good_and_broken_files(shared_data, corrupt_files, tmp_path):
    for name in (
        "hmi.sharp_cea_720s.1449.20120306_142400_TAI.Br.fits",
        "hmi.sharp_cea_720s.5011.20150109_000000_TAI.bitmap.fits",  # uncompressed primary HDU
        "hmi.sharp_cea_720s.7115.20170906_120000_TAI.Br.fits",  # has unparsable header cards
    ):
        download.check_fits_file(shared_data / "sharp_cea" / name)
    for path in corrupt_files:
        with pytest.raises(CorruptFileError, match=path.name):
            download.check_fits_file(path)
    good = (shared_data / "sharp_cea" / "hmi.sharp_cea_720s.1441.20120306_142400_TAI.Br.fits").read_bytes()
    for size in (5000, 2 * 2880, len(good) // 2 // 2880 * 2880, len(good) - 2880):
        cut = tmp_path / f"cut{size}.fits"
        cut.write_bytes(good[:size])
        with pytest.raises(CorruptFileError, match=cut.name):
            download.check_fits_file(cut)
    # Full length but the second half zeroed (a crash after preallocation): only decompression sees it.
    zeroed = tmp_path / "zeroed.fits"
    zeroed.write_bytes(good[: len(good) // 2] + bytes(len(good) - len(good) // 2))
    with pytest.raises(CorruptFileError, match="zeroed.fits: astropy cannot read it: .*decompression"):
        download.check_fits_file(zeroed)


def test_retry_policy_and_classification():
    policy = RetryPolicy(max_attempts=6, base_delay_s=2.0, max_delay_s=10.0)
    assert [policy.delay_s(k) for k in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    not_found = urllib.error.HTTPError("http://x/f", 404, "Not Found", {}, None)
    busy = urllib.error.HTTPError("http://x/f", 503, "Busy", {}, None)
    assert not download.is_retryable(not_found) and download.is_retryable(busy)
    assert download.is_retryable(ConnectionResetError()) and not download.is_retryable(KeyError("x"))

    calls, sleeps = [], Sleeps()

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise busy
        return "ok"

    assert download.call_with_retries(flaky, policy, sleep=sleeps) == "ok" and sleeps == [2.0, 4.0]

    def missing():
        calls.append(1)
        raise not_found

    calls.clear()
    with pytest.raises(urllib.error.HTTPError):
        download.call_with_retries(missing, policy, sleep=sleeps)
    assert len(calls) == 1  # no retry on 404

    def always_busy():
        calls.append(1)
        raise busy

    calls.clear()
    with pytest.raises(urllib.error.HTTPError):
        download.call_with_retries(always_busy, RetryPolicy(max_attempts=3, base_delay_s=1.0), sleep=sleeps)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_manifest_round_trip_and_validation(shared_data, tmp_path):
    manifest = download.load_manifest(tmp_path / "new")
    assert (manifest.requested, manifest.finished, manifest.failed) == ({}, {}, {})
    source = shared_data / "sharp_cea" / "hmi.sharp_cea_720s.1445.20120306_142400_TAI.Br.fits"
    shutil.copy(source, tmp_path / "a.fits")
    fingerprint = download.FileFingerprint(source.stat().st_size, sha256(source))
    manifest = download.Manifest(folder=tmp_path)
    manifest.mark_requested("a.fits", "rec{a}")
    manifest.mark_failed("a.fits", "Boom: x", attempts=3, url="http://x/a")
    manifest.mark_finished("a.fits", fingerprint, "http://x/a")
    manifest.save()
    loaded = download.load_manifest(tmp_path)
    assert loaded.failed == {} and loaded.finished["a.fits"]["sha256"] == fingerprint.sha256
    assert loaded.requested == {"a.fits": {"record": "rec{a}", "url": None}}
    assert loaded.is_finished("a.fits")
    (tmp_path / "a.fits").write_bytes(source.read_bytes()[:-2880])
    assert not loaded.is_finished("a.fits")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ManifestError, match="not a solarjax download manifest"):
        download.load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(
        json.dumps({"format": download.MANIFEST_FORMAT, "requested": [], "finished": {}, "failed": {}})
    )
    with pytest.raises(ManifestError, match="section 'requested' must be an object"):
        download.load_manifest(tmp_path)


def test_size_text_of_progress_lines():
    assert [download.size_text(n) for n in (0, 812, 149_760, 12_345_678, 1.2e9)] == [
        "0 B",
        "812 B",
        "149.8 kB",
        "12.3 MB",
        "1.2 GB",
    ]


# The names `solarjax.data.jsoc` held before the generic client, the time text and the command moved out.
PUBLIC_BEFORE_THE_SPLIT = (
    "JSOC_BASE_URL",
    "JSOC_EMAIL_REGISTRATION",
    "SHARP_SERIES",
    "SHARP_SEGMENTS",
    "SHARP_FILENAME_FORMAT",
    "QUERY_KEYWORDS",
    "TYPICAL_SEGMENT_BYTES",
    "JsocError",
    "parse_tai",
    "format_t_rec",
    "sharp_filename",
    "sharp_record_name",
    "SharpRecord",
    "heliocentric_mu",
    "passes_filters",
    "select_records",
    "time_windows",
    "sharp_query",
    "export_recordset",
    "quality_flags",
    "records_from_keywords",
    "jsoc_client",
    "query_sharp_records",
    "estimate_bytes",
    "export_urls",
    "ExportFetchResult",
    "export_and_fetch",
    "FetchReport",
    "DownloadReport",
    "chunked",
    "download_sharps",
    "add_download_arguments",
    "run_download",
)


def _imported_modules(module) -> set[str]:
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))
    return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }


def test_generic_jsoc_client_is_apart_from_the_sharp_and_aia_selections():
    from solarjax.data import aia, aia_download_cli, jsoc_export, jsoc_time, sharp_download_cli

    for name in PUBLIC_BEFORE_THE_SPLIT:  # every public name still importable from the SHARP module
        assert getattr(jsoc, name) is not None, name
    assert jsoc.export_and_fetch is jsoc_export.export_and_fetch and jsoc.parse_tai is jsoc_time.parse_tai
    assert jsoc.run_download is sharp_download_cli.run_download
    with pytest.raises(AttributeError):
        jsoc.no_such_name  # noqa: B018
    # AIA takes the generic pieces from the generic module, never from the SHARP one; the generic module
    # knows no selection; argparse lives with the command, not with the SHARP selection
    assert "solarjax.data.jsoc_export" in _imported_modules(aia) and "solarjax.data.jsoc" not in _imported_modules(aia)
    assert not {"solarjax.data.jsoc", "solarjax.data.aia"} & _imported_modules(jsoc_export)
    assert "argparse" not in _imported_modules(jsoc) and "argparse" in _imported_modules(sharp_download_cli)
    assert "argparse" not in _imported_modules(aia) and "argparse" in _imported_modules(aia_download_cli)
    # one options object carries the transport settings of a run
    fields = {f.name for f in dataclasses.fields(jsoc_export.TransferOptions)}
    assert fields == {"policy", "sleep", "poll_seconds", "export_timeout_s", "timeout_s"}


def test_download_library_code_logs_and_never_prints():
    import ast
    import inspect

    from solarjax.data import aia, jsoc_export, jsoc_time, lasco_download

    for module in (download, jsoc, jsoc_export, jsoc_time, aia, lasco_download):
        tree = ast.parse(inspect.getsource(module))
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            prints = [n for n in ast.walk(function) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
            defaults = [
                d for d in function.args.defaults + function.args.kw_defaults if getattr(d, "id", "") == "print"
            ]
            command = function.name.startswith("run_") or function.name == "main"  # the CLI's error lines
            assert command or not (prints or defaults), f"{module.__name__}.{function.name} prints"
