"""solarjax.data.aia against a local JSOC replay of real AIA level-1 files.

The replayed records are copies of sunpy's real level-1 test file (aia_171_level1.fits, EXPTIME
2.000191 s) carrying the keywords of this scenario, 2012-03-07 00:00-01:00 UTC at a 10-minute
cadence (slots k = 0..5 at 00:k0:00):

    EUV 171, 193, 211: T_REC = slot + 1 s, T_OBS = T_REC + 0.35 / 6.84 / 9.57 s, except
      slot 2: no 193 record;  slot 4: 211 has QUALITY 0x400;  slot 5: 171's T_OBS is 14.65 s after the slot;
      an extra 171 record at 00:05:01 (between slots: a @600s query must not return it).
    UV 1600: T_REC = slot + 6 s, T_OBS = T_REC + 0.5 s, except slot 1: T_OBS 18 s after the slot;
      slot 3: EXPTIME 0.

Fido (sunpy's VSO route) needs the internet: only its query construction is tested here.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import pathlib
import shutil

import pytest
import sunpy.data.test
from jsoc_replay import REGISTERED_EMAIL
from jsoc_replay_aia import AiaReplay, load_aia_records, write_aia_file

from solarjax import cli
from solarjax.data import aia, aia_download_cli, download, download_cli
from solarjax.data.aia import AiaRecord
from solarjax.data.download import RetryPolicy

T = datetime.datetime
START, END = T(2012, 3, 7), T(2012, 3, 7, 1)
EUV = (171, 193, 211)
T_OBS_OFFSET_S = {171: 0.35, 193: 6.84, 211: 9.57}
REAL_EXPTIME_S = 2.000191


def slot(k: int) -> T:
    return START + datetime.timedelta(minutes=10 * k)


def euv_name(k: int, w: int) -> str:
    return f"aia.lev1_euv_12s.2012-03-07T00{k}001Z.{w}.image_lev1.fits"


def scenario_records() -> list[dict]:
    """Keyword sets of the replayed records (see the module docstring)."""
    rows = []
    for k in range(6):
        for w in EUV:
            if (k, w) == (2, 193):
                continue
            t_rec = slot(k) + datetime.timedelta(seconds=1)
            offset = 13.65 if (k, w) == (5, 171) else T_OBS_OFFSET_S[w]
            rows.append(
                dict(
                    t_rec=t_rec,
                    wavelength=w,
                    t_obs=t_rec + datetime.timedelta(seconds=offset),
                    exptime=REAL_EXPTIME_S,
                    quality=0x400 if (k, w) == (4, 211) else 0,
                )
            )
        t_rec = slot(k) + datetime.timedelta(seconds=6)
        rows.append(
            dict(
                t_rec=t_rec,
                wavelength=1600,
                t_obs=slot(k) + datetime.timedelta(seconds=18.0 if k == 1 else 6.5),
                exptime=0.0 if k == 3 else 1.0,
                quality=0,
            )
        )
    between = T(2012, 3, 7, 0, 5, 1)
    rows.append(dict(t_rec=between, wavelength=171, t_obs=between, exptime=REAL_EXPTIME_S, quality=0))
    return rows


@pytest.fixture(scope="module")
def source_folder(tmp_path_factory):
    """The scenario's FITS files (copies of the real test file with the scenario's headers)."""
    folder = tmp_path_factory.mktemp("aia_source")
    real = pathlib.Path(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    for i, row in enumerate(scenario_records()):
        write_aia_file(real, folder / f"record{i:02d}.fits", **row)
    return folder


@pytest.fixture(scope="module")
def replay_records(source_folder):
    return load_aia_records(sorted(source_folder.glob("record*.fits")))


@pytest.fixture
def replay(replay_records):
    with AiaReplay(replay_records) as server:
        yield server


class Sleeps(list):
    """Records backoff waits instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


def run(server, out_dir, *, sleeps=None, lines=None, **kwargs):
    kwargs = {
        "cadence_s": 600,
        "wavelengths": EUV,
        "email": REGISTERED_EMAIL,
        "policy": RetryPolicy(max_attempts=3, base_delay_s=1.0),
        "poll_seconds": 0.001,
        **kwargs,
    }
    return aia.download_aia(
        out_dir,
        START,
        END,
        base_url=server.base_url,
        sleep=sleeps if sleeps is not None else Sleeps(),
        log=(lines if lines is not None else []).append,
        **kwargs,
    )


def sha256(path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def source_of(replay_records, name):
    """The replayed file served under an exported name."""
    (record,) = [
        r
        for r in replay_records
        if aia.aia_filename(AiaRecord(r.series, r.t_rec, r.wavelength, 0, None, 0.0, 0)) == name
    ]
    return record.files["image"]


COMPLETE_EUV = [euv_name(k, w) for k in (0, 1, 3) for w in EUV]  # the 9 files of the 3 complete slots


# ------------------------------------------------------------------------------ names and times
def test_times_names_and_record_sets():
    assert aia.parse_utc("2014-01-01T00:00:08.57Z") == T(2014, 1, 1, 0, 0, 8, 570000)  # JSOC's T_OBS form
    assert aia.parse_utc("2014-01-01T00:00:01Z") == T(2014, 1, 1, 0, 0, 1)
    assert aia.parse_utc("2012-03-07") == START and aia.parse_utc("2012-03-07T00:10") == slot(1)
    assert aia.parse_utc("2012-03-07T02:00:00+02:00") == START
    assert aia.parse_utc("2016-12-31T23:59:60.50Z") == T(2017, 1, 1, 0, 0, 0, 500000)  # leap second
    with pytest.raises(ValueError, match="cannot read UTC time '2012.03.07_00:00:00_TAI'"):
        aia.parse_utc("2012.03.07_00:00:00_TAI")
    # JSOC's name of a real export: aia.lev1_euv_12s.2014-01-01T000001Z.304.image_lev1.fits
    record = AiaRecord(aia.AIA_EUV_SERIES, T(2014, 1, 1, 0, 0, 1), 304, 7, T(2014, 1, 1, 0, 0, 8, 570000), 2.9, 0)
    assert aia.aia_filename(record) == "aia.lev1_euv_12s.2014-01-01T000001Z.304.image_lev1.fits"
    assert aia.aia_record_name(record) == "aia.lev1_euv_12s[2014-01-01T00:00:01Z][304]{image}"
    assert aia.aia_query(aia.AIA_EUV_SERIES, START, 6, 600, (171, 193)) == (
        "aia.lev1_euv_12s[2012-03-07T00:00:00Z/3600s@600s][171,193]"
    )
    uv = AiaRecord(aia.AIA_UV_SERIES, T(2014, 1, 1), 1600, 12, None, 1.0, 0)
    assert aia.export_recordset([uv, dataclasses.replace(uv, recnum=5)]) == "aia.lev1_uv_24s[:#12,#5]{image}"
    with pytest.raises(ValueError, match="one export holds one series"):
        aia.export_recordset([record, uv])
    assert aia.series_of((1700, 171, 94)) == {"aia.lev1_euv_12s": [171, 94], "aia.lev1_uv_24s": [1700]}
    assert aia.default_tolerance_s(EUV) == 12.0 and aia.default_tolerance_s((171, 1600)) == 24.0
    assert aia.check_cadence(36, EUV) == 36 and aia.check_cadence(48.0, (171, 1600)) == 48
    for cadence, waves in ((30, EUV), (36, (171, 1600)), (0, EUV), (600.5, EUV)):
        with pytest.raises(ValueError, match="cadence_s must be a positive multiple"):
            aia.check_cadence(cadence, waves)
    with pytest.raises(ValueError, match="195 is not an AIA EUV"):
        aia.check_wavelengths((171, 195))
    with pytest.raises(ValueError, match="repeat"):
        aia.check_wavelengths((171, 171))
    durations = [download_cli.duration_seconds(text) for text in ("10m", "1h", "48", "96s", "1d")]
    assert durations == [600, 3600, 48, 96, 86400]


def test_records_from_keyword_tables():
    import pandas as pd

    table = pd.DataFrame(
        {
            "*recnum*": [11, 12, 13],
            "T_REC": ["2014-01-01T00:00:01Z"] * 3,
            "T_OBS": ["2014-01-01T00:00:08.57Z", "MISSING", "2014-01-01T00:00:09.00Z"],
            "WAVELNTH": [304, 304, 304],
            "EXPTIME": [2.9, float("nan"), 2.9],
            "QUALITY": ["0", "-2147483648", "0x00000400"],  # decimal, signed decimal (bit 31) and hex text
        }
    )
    records = aia.records_from_keywords(table, aia.AIA_EUV_SERIES, "q")
    assert [r.quality for r in records] == [0, 0x80000000, 0x400]
    assert records[0].t_obs == T(2014, 1, 1, 0, 0, 8, 570000) and records[1].t_obs is None
    assert [aia.record_problem(r) for r in records] == [None, "QUALITY 0x80000000", "QUALITY 0x00000400"]
    assert aia.record_problem(records[1], allowed_quality_bits=0x80000000) == "T_OBS missing"
    with pytest.raises(aia.JsocError, match=r"q: JSOC answer lacks keywords \['EXPTIME'\]"):
        aia.records_from_keywords(table.drop(columns="EXPTIME"), aia.AIA_EUV_SERIES, "q")
    with pytest.raises(aia.JsocError, match="q: record soon/304: cannot read UTC time 'soon'"):
        aia.records_from_keywords(table.assign(T_REC="soon"), aia.AIA_EUV_SERIES, "q")


# --------------------------------------------------------------------------------- pure matching
def _record(wavelength, t_obs_s, *, recnum, quality=0, exptime=2.0, t_obs_missing=False):
    t = START + datetime.timedelta(seconds=t_obs_s)
    return AiaRecord(
        aia.aia_series(wavelength),
        t.replace(microsecond=0),
        wavelength,
        recnum,
        None if t_obs_missing else t,
        exptime,
        quality,
    )


def test_match_channels_nearest_within_tolerance_and_reasons():
    records = [
        _record(171, -5.0, recnum=1),
        _record(171, 3.0, recnum=2),  # slot 0: +3 s is nearer
        _record(193, -4.0, recnum=3),
        _record(193, 4.0, recnum=4),  # slot 0: a tie, the earlier wins
        _record(171, 60.0, recnum=5),
        _record(193, 71.0, recnum=6),  # slot 1 (60 s): 193 is 11 s off
        _record(171, 120.0, recnum=7),
        _record(193, 121.0, recnum=8, quality=0x80000000),
        _record(171, 180.0, recnum=9, t_obs_missing=True),
        _record(193, 181.0, recnum=10, exptime=0.0),
    ]
    selection = aia.match_channels(
        records, start=START, end=START + datetime.timedelta(seconds=240), cadence_s=60, wavelengths=(171, 193)
    )
    one_minute = START + datetime.timedelta(seconds=60)
    assert [(s.time, [r.recnum for r in s.records]) for s in selection.slots] == [(START, [2, 3]), (one_minute, [5, 6])]
    assert [(d.time.second + 60 * d.time.minute, d.reasons) for d in selection.dropped] == [
        (120, {193: "QUALITY 0x80000000"}),
        (180, {171: "T_OBS missing", 193: "EXPTIME 0 s"}),
    ]
    assert sorted((r.recnum, why) for r, why in selection.rejected) == [
        (8, "QUALITY 0x80000000"),
        (9, "T_OBS missing"),
        (10, "EXPTIME 0 s"),
    ]
    tight = aia.match_channels(
        records,
        start=START,
        end=START + datetime.timedelta(seconds=120),
        cadence_s=60,
        wavelengths=(171, 193),
        tolerance_s=10,
    )
    assert [d.reasons for d in tight.dropped] == [{193: "no record within 10 s"}]
    allowed = aia.match_channels(
        records,
        start=START,
        end=START + datetime.timedelta(seconds=180),
        cadence_s=60,
        wavelengths=(171, 193),
        allowed_quality_bits=0x80000000,
    )
    assert len(allowed.slots) == 3 and sorted(r.recnum for r, _ in allowed.rejected) == [9, 10]


def test_a_record_serves_one_slot_only():
    # 12 s cadence, 12 s tolerance: the record at 6 s is within reach of slots 0 and 1; slot 0 takes it.
    selection = aia.match_channels(
        [_record(171, 6.0, recnum=1)],
        start=START,
        end=START + datetime.timedelta(seconds=24),
        cadence_s=12,
        wavelengths=(171,),
    )
    assert [s.time for s in selection.slots] == [START]
    assert [d.reasons for d in selection.dropped] == [{171: "no record within 12 s"}]


# ------------------------------------------------------------------------ queries through JSOC
def test_query_reads_real_header_keywords_and_samples_slots(replay):
    client = aia.jsoc_client(replay.base_url)
    records = aia.query_aia_records(client, START, END, cadence_s=600, wavelengths=EUV)
    assert len(records) == 17  # 6 slots x 3 channels, minus slot 2's 193; the 00:05:01 record is not sampled
    assert {r.t_rec.second for r in records} == {1} and {r.t_rec.minute % 10 for r in records} == {0}
    assert {r.exptime for r in records} == {REAL_EXPTIME_S}  # the real file's EXPTIME
    assert [(r.t_rec.minute, r.wavelength, r.quality) for r in records if r.quality] == [(40, 211, 0x400)]
    first_193 = next(r for r in records if r.wavelength == 193)
    assert first_193.t_obs == T(2012, 3, 7, 0, 0, 7, 840000)
    assert replay.requests["jsoc_info:rs_list"] == 1
    # Windows of 4 slots: the same records from two queries (slots 0-3, 4-5).
    windowed = aia.query_aia_records(client, START, END, cadence_s=600, wavelengths=EUV, max_slots_per_query=4)
    assert sorted(windowed, key=lambda r: r.recnum) == sorted(records, key=lambda r: r.recnum)
    assert replay.requests["jsoc_info:rs_list"] == 3
    # EUV and UV channels: one query per series.
    mixed = aia.query_aia_records(client, START, END, cadence_s=600, wavelengths=(171, 1600))
    assert sorted({(r.series, r.wavelength) for r in mixed}) == [("aia.lev1_euv_12s", 171), ("aia.lev1_uv_24s", 1600)]
    assert len(mixed) == 12 and replay.requests["jsoc_info:rs_list"] == 5


def test_known_matching_answers(replay):
    client = aia.jsoc_client(replay.base_url)

    def complete_slots(waves, **kwargs):
        records = aia.query_aia_records(client, START, END, cadence_s=600, wavelengths=waves)
        selection = aia.match_channels(records, start=START, end=END, cadence_s=600, wavelengths=waves, **kwargs)
        return [s.time.minute // 10 for s in selection.slots], selection

    kept, selection = complete_slots(EUV)
    assert kept == [0, 1, 3]
    assert {d.time.minute // 10: d.reasons for d in selection.dropped} == {
        2: {193: "no record within 12 s"},
        4: {211: "QUALITY 0x00000400"},
        5: {171: "no record within 12 s"},
    }
    assert [r.wavelength for r in selection.slots[0].records] == list(EUV)
    assert complete_slots(EUV, tolerance_s=15)[0] == [0, 1, 3, 5]  # 171's 14.65 s now fits
    assert complete_slots(EUV, allowed_quality_bits=0x400)[0] == [0, 1, 3, 4]
    # With a UV channel the tolerance is 24 s: 1600's 18 s at slot 1 and 171's 14.65 s at slot 5 fit.
    kept, selection = complete_slots((171, 1600))
    assert kept == [0, 1, 2, 4, 5] and [d.reasons for d in selection.dropped] == [{1600: "EXPTIME 0 s"}]
    assert complete_slots((171, 1600), tolerance_s=12)[0] == [0, 2, 4]


# ------------------------------------------------------------------------------------- downloads
def test_dry_run_prints_counts_reasons_and_size_and_writes_nothing(replay, tmp_path):
    lines = []
    report = run(replay, tmp_path / "out", dry_run=True, email=None, lines=lines)
    assert report.files == COMPLETE_EUV and report.estimated_bytes == 9 * aia.TYPICAL_AIA_FILE_BYTES
    text = "\n".join(lines)
    assert "3 of 6 slots complete, 3 dropped" in text
    assert "dropped slots lacking 171 A: no record within 12 s: 1" in text
    assert "dropped slots lacking 193 A: no record within 12 s: 1" in text
    assert "dropped slots lacking 211 A: QUALITY 0x00000400: 1" in text
    assert "records rejected for QUALITY 0x00000400: 1" in text
    assert "dry run: 9 files to fetch, estimated 0.11 GB (12 MB per file)" in text
    assert not (tmp_path / "out").exists()
    assert replay.requests["jsoc_fetch:exp_request"] == 0 and replay.requests["checkAddress"] == 0


def test_full_download_with_pending_export(replay_records, tmp_path):
    with AiaReplay(replay_records, export_notfound_polls=1, export_pending_polls=2) as server:
        report = run(server, tmp_path / "out")
        assert server.requests["jsoc_fetch:exp_request"] == 1 and server.requests["jsoc_fetch:exp_status"] == 4
        (export,) = server.exports.values()
    assert sorted(report.downloaded) == sorted(COMPLETE_EUV) and not report.failed and not report.skipped
    assert [(r.t_rec.minute, r.wavelength) for r in export.records] == [(m, w) for m in (0, 10, 30) for w in EUV]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(COMPLETE_EUV + ["manifest.json"])
    sizes = 0
    for name in COMPLETE_EUV:
        source = source_of(replay_records, name)
        assert sha256(tmp_path / "out" / name) == sha256(source)
        sizes += source.stat().st_size
    assert report.bytes_downloaded == sizes == 9 * 149_760
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["failed"] == {} and sorted(manifest["finished"]) == sorted(COMPLETE_EUV)
    assert manifest["requested"][euv_name(3, 193)]["record"] == "aia.lev1_euv_12s[2012-03-07T00:30:01Z][193]{image}"
    assert manifest["finished"][euv_name(3, 193)]["url"].startswith(server.base_url + export.directory + "/")


def test_download_of_euv_and_uv_exports_each_series(replay, tmp_path):
    report = run(replay, tmp_path / "out", wavelengths=(171, 1600), records_per_export=4)
    assert len(report.downloaded) == 10 and not report.failed
    assert sum(n.startswith("aia.lev1_uv_24s.") and n.endswith(".1600.image_lev1.fits") for n in report.downloaded) == 5
    # 5 EUV records in exports of 4 + 1, then 5 UV records in 4 + 1.
    assert [len(e.records) for e in replay.exports.values()] == [4, 1, 4, 1]
    assert {r.series for e in list(replay.exports.values())[2:] for r in e.records} == {"aia.lev1_uv_24s"}


def test_interrupted_run_resumes_without_refetching(replay, tmp_path):
    out = tmp_path / "out"
    dropped, failing = euv_name(1, 193), euv_name(3, 171)  # 5th and 7th of 9 files
    replay.inject("drop", dropped)  # connection reset mid-body
    replay.inject("http_500", failing, times=3)  # server errors through all 3 attempts
    sleeps = Sleeps()
    first = run(replay, out, sleeps=sleeps, policy=RetryPolicy(max_attempts=3, base_delay_s=1.0))
    assert set(first.failed) == {failing} and dropped in first.downloaded and len(first.downloaded) == 8
    assert "HTTPError: HTTP Error 500" in first.failed[failing] and sleeps == [1.0, 1.0, 2.0]
    manifest = download.load_manifest(out)
    assert manifest.failed[failing]["attempts"] == 3 and len(manifest.finished) == 8
    assert not (out / failing).exists() and not list(out.glob("*.part"))

    lines = []
    second = run(replay, out, lines=lines)
    assert second.downloaded == [failing] and len(second.skipped) == 8 and not second.failed
    assert "8 already in" in "\n".join(lines)
    counts = {k: v for k, v in replay.requests.items() if k.endswith(".fits")}
    assert counts == {**{n: 1 for n in COMPLETE_EUV}, dropped: 2, failing: 4}
    assert [len(e.records) for e in replay.exports.values()] == [9, 1]  # the rerun exports the missing file only
    assert download.load_manifest(out).failed == {}


def test_ctrl_c_during_a_retry_then_resume(replay, tmp_path):
    out = tmp_path / "out"
    victim = euv_name(1, 171)  # 4th of 9 files
    replay.inject("drop", victim)

    def ctrl_c(seconds):  # the user interrupts during the backoff after the dropped connection
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(replay, out, sleeps=ctrl_c)
    assert len(download.load_manifest(out).finished) == 3 and not list(out.glob("*.part"))
    report = run(replay, out)
    assert len(report.skipped) == 3 and len(report.downloaded) == 6 and victim in report.downloaded
    assert run(replay, out).skipped == sorted(COMPLETE_EUV) and len(replay.exports) == 2


def test_corrupt_body_is_retried_then_reported(replay_records, replay, tmp_path):
    once, always = euv_name(0, 211), euv_name(3, 211)
    replay.inject("truncate_correct", once)  # a short but self-consistent body: only the FITS check sees it
    replay.inject("truncate_correct", always, times=3)
    sleeps, lines = Sleeps(), []
    report = run(replay, tmp_path / "out", sleeps=sleeps, lines=lines)
    assert once in report.downloaded and sha256(tmp_path / "out" / once) == sha256(source_of(replay_records, once))
    assert list(report.failed) == [always] and "CorruptFileError" in report.failed[always]
    # Half the body (26 of 52 blocks) leaves 20 data blocks: 7200 of the image's 128 x 128 float64 values.
    assert (
        "astropy cannot read it: ValueError: cannot reshape array of size 7200 into shape (128,128)"
        in (report.failed[always])
    )
    assert replay.requests[once] == 2 and replay.requests[always] == 3 and sleeps == [1.0, 1.0, 2.0]
    assert any(once in line and "CorruptFileError" in line for line in lines)
    assert not (tmp_path / "out" / always).exists()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["failed"][always]["attempts"] == 3
    assert f"failed {always}: CorruptFileError" in report.summary()


def test_bad_inputs_give_clear_errors(replay, tmp_path):
    with pytest.raises(ValueError, match="registered email"):
        run(replay, tmp_path, email=None)
    with pytest.raises(ValueError, match="cadence_s must be a positive multiple of 24 s"):
        run(replay, tmp_path, wavelengths=(171, 1600), cadence_s=36)
    with pytest.raises(ValueError, match="must be after start"):
        aia.download_aia(tmp_path, "2012-03-07T01:00", "2012-03-07", dry_run=True, base_url=replay.base_url)
    with pytest.raises(ValueError, match="start 2012-03-07T00:00:00.500000 must be a whole second"):
        aia.download_aia(tmp_path, "2012-03-07T00:00:00.5", "2012-03-08", dry_run=True, base_url=replay.base_url)
    assert replay.requests["jsoc_info:rs_list"] == 0  # argument errors are found before any request
    with pytest.raises(aia.JsocError, match="'nobody@example.org' is not registered"):
        run(replay, tmp_path, email="nobody@example.org")


# ---------------------------------------------------------------------------------- CLI and Fido
def test_cli_download_aia(replay, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    aia_download_cli.add_aia_download_arguments(parser)
    args = parser.parse_args(
        [
            str(tmp_path / "x"),
            "--start",
            "2012-03-07",
            "--end",
            "2012-03-07T01:00",
            "--cadence",
            "10m",
            "--allowed-quality-bits",
            "0x400",
        ]
    )
    assert args.cadence == 600 and args.allowed_quality_bits == 0x400
    assert args.wavelengths == list(aia.DEFAULT_WAVELENGTHS) and args.route == "jsoc"
    common = [
        "--start",
        "2012-03-07",
        "--end",
        "2012-03-07T01:00",
        "--cadence",
        "10m",
        "--base-url",
        replay.base_url,
        "--email",
        REGISTERED_EMAIL,
        "--poll-seconds",
        "0.001",
    ]
    assert cli.main(["data", "download-aia", str(tmp_path / "out"), *common, "--tolerance-s", "15"]) == 0
    assert "4 of 6 slots complete" in capsys.readouterr().err  # the solarjax logger, on stderr
    assert len(list((tmp_path / "out").glob("*.image_lev1.fits"))) == 12
    assert cli.main(["data", "download-aia", str(tmp_path / "out"), *common, "--email", "nobody@example.org"]) == 2
    assert "not registered" in capsys.readouterr().err


def test_fido_query_is_the_same_request_offline():
    from sunpy.net import Fido, attr
    from sunpy.net import attrs as a

    query = aia.fido_query("2012-03-07", "2012-03-07T01:00", cadence_s=600, wavelengths=(171, 1600))
    time_range, instrument, sample, channels = query
    assert (time_range.start.isot, time_range.end.isot) == ("2012-03-07T00:00:00.000", "2012-03-07T01:00:00.000")
    assert isinstance(instrument, a.Instrument) and instrument.value == "AIA" and sample.value == 600.0
    bands = [(w.min.to_value("Angstrom"), w.max.to_value("Angstrom")) for w in channels.attrs]
    assert bands == [(171, 171), (1600, 1600)]
    # Fido splits the OR into one search per channel, each answered by the VSO client.
    blocks = attr.and_(*query).attrs
    assert len(blocks) == 2
    for block in blocks:
        assert [c.__name__ for c in Fido._check_registered_widgets(*block.attrs)] == ["VSOClient"]
    with pytest.raises(ValueError, match="cadence_s must be a positive multiple of 24 s"):
        aia.fido_query("2012-03-07", "2012-03-08", cadence_s=12, wavelengths=(171, 1600))


def test_fido_dry_run_searches_prints_and_creates_nothing(tmp_path, monkeypatch, capsys):
    from sunpy.net import Fido

    class Found:  # what the VSO answered: only the count is used by a dry run
        file_num = 6

    def no_fetch(*args, **kwargs):
        raise AssertionError("a dry run fetched")

    monkeypatch.setattr(Fido, "search", lambda *query: Found())
    monkeypatch.setattr(Fido, "fetch", no_fetch)
    out = tmp_path / "aia"
    common = ["--start", "2012-03-07T00:00", "--end", "2012-03-07T01:00", "--route", "fido"]
    assert cli.main(["data", "download-aia", str(out), *common, "--dry-run"]) == 0
    assert "Fido found 6 files" in capsys.readouterr().err
    assert not out.exists()


def test_fido_route_offline_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from sunpy.net import Fido

    def offline(*query):  # what sunpy's VSO client raises when no mirror answers
        raise ConnectionError("No online VSO mirrors could be found.")

    monkeypatch.setattr(Fido, "search", offline)
    out = tmp_path / "aia"
    args = [
        "data",
        "download-aia",
        str(out),
        "--start",
        "2012-03-07T00:00",
        "--end",
        "2012-03-07T01:00",
        "--route",
        "fido",
        "--dry-run",
    ]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: fido route: No online VSO mirrors could be found."]
    assert not out.exists()


def test_check_fetched_files_keeps_good_and_deletes_corrupt(tmp_path):
    real = pathlib.Path(sunpy.data.test.get_test_filepath("aia_171_level1.fits"))
    good, cut = tmp_path / "good.fits", tmp_path / "cut.fits"
    shutil.copy(real, good)
    cut.write_bytes(real.read_bytes()[: 2880 * 20])
    kept, corrupt = aia.check_fetched_files([good, cut])
    assert kept == [good] and list(corrupt) == ["cut.fits"] and "CorruptFileError" in corrupt["cut.fits"]
    assert good.exists() and not cut.exists()
