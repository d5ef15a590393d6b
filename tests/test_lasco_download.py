"""solarjax.data.lasco_download against a local Helioviewer API replaying sunpy's real LASCO C3 JPEG2000 file
(`lasco_replay.HelioviewerReplay`): listing by sampling, files that read back with their times, manifest and
resume, retried faults, dry run, and one-line CLI errors."""

import datetime
import json

import pytest
from lasco_replay import HelioviewerReplay, c3_archive

from solarjax import cli
from solarjax.data import download, lasco, lasco_download
from solarjax.data.download import RetryPolicy

START, END = "2013-05-13T16:50", "2013-05-13T17:40"  # the four images 16:54:06 ... 17:30:06


@pytest.fixture
def replay():
    server = HelioviewerReplay(c3_archive(6))  # 16:54:06 ... 17:54:06
    yield server
    server.close()


def _download(replay, out, **kwargs):
    kwargs.setdefault("policy", RetryPolicy(max_attempts=3, base_delay_s=0.0))
    return lasco_download.download_lasco(
        out, START, END, detector="C3", base_url=replay.base_url, sleep=lambda s: None, log=lambda line: None, **kwargs
    )


def test_sampling_lists_each_image_of_the_range_once(replay):
    images = lasco_download.list_images(START, END, "C3", cadence_s=300, base_url=replay.base_url, log=print)
    assert [image.id for image in images] == [1001, 1002, 1003, 1004]
    assert images[0].date == datetime.datetime(2013, 5, 13, 16, 54, 6, tzinfo=datetime.UTC)
    assert images[0].file_name == "2013_05_13__16_54_06__SOHO_LASCO_C3_white-light.jp2"
    assert replay.requests["getClosestImage"] == 10  # 16:50, 16:55, ..., 17:35
    hourly = lasco_download.list_images(START, END, "C3", cadence_s=3600, base_url=replay.base_url)
    assert [image.id for image in hourly] == [1001]  # a coarse cadence samples fewer


def test_download_writes_readable_files_with_a_manifest_and_resumes(replay, tmp_path):
    out = tmp_path / "c3"
    report = _download(replay, out)
    names = [image.file_name for image in report.images]
    assert sorted(report.result.downloaded) == sorted(names) and len(names) == 4
    manifest = json.loads((out / "manifest.json").read_text())
    for image in report.images:
        read = lasco.read_lasco(out / image.file_name)
        assert read.meta["detector"] == "C3"
        assert abs((read.meta["date_obs"] - image.date).total_seconds()) < 1.0
        entry = manifest["finished"][image.file_name]
        assert entry["sha256"] == download.sha256_of(out / image.file_name)
        assert manifest["requested"][image.file_name]["record"].startswith(f"helioviewer[{image.id}] LASCO C3")
    files_before = replay.requests["getJP2Image"]
    again = _download(replay, out)
    assert again.result.downloaded == [] and sorted(again.result.skipped) == sorted(names)
    assert replay.requests["getJP2Image"] == files_before  # nothing fetched twice


def test_transient_faults_are_retried(replay, tmp_path):
    name = c3_archive(2)[1].file_name
    replay.inject("getClosestImage", "http_500")
    replay.inject(name, "drop")
    replay.inject(name, "truncate")
    report = _download(replay, tmp_path / "c3")
    assert report.failed == {} and len(report.result.downloaded) == 4
    assert replay.requests[name] == 3  # dropped, truncated, then whole
    assert lasco.read_lasco(tmp_path / "c3" / name).data.shape == (102, 102)
    assert not list((tmp_path / "c3").glob("*.part"))


def test_a_file_that_keeps_failing_is_recorded_and_fetched_on_the_next_run(replay, tmp_path):
    name = c3_archive(3)[2].file_name
    for _ in range(2):
        replay.inject(name, "truncate")
    report = _download(replay, tmp_path / "c3", policy=RetryPolicy(max_attempts=2, base_delay_s=0.0))
    assert list(report.failed) == [name] and "CorruptFileError" in report.failed[name]
    assert not (tmp_path / "c3" / name).exists()
    manifest = json.loads((tmp_path / "c3" / "manifest.json").read_text())
    assert manifest["failed"][name]["attempts"] == 2
    resumed = _download(replay, tmp_path / "c3")
    assert resumed.result.downloaded == [name] and len(resumed.result.skipped) == 3


def test_an_image_of_the_wrong_detector_is_refused(replay, tmp_path):
    replay.images = [image.__class__(image.id, image.date, 4, image.contents) for image in replay.images]
    report = lasco_download.download_lasco(
        tmp_path / "c2",
        START,
        END,
        detector="C2",
        base_url=replay.base_url,
        policy=RetryPolicy(max_attempts=1),
        log=lambda line: None,
    )
    assert len(report.failed) == 4
    assert all("a LASCO C3 image, C2 was requested" in reason for reason in report.failed.values())


def test_cli_dry_run_and_one_line_errors(replay, tmp_path, capsys):
    out = tmp_path / "c3"
    common = ["--start", START, "--end", END, "--detector", "C3", "--base-url", replay.base_url, "--cadence", "5m"]
    assert cli.main(["data", "download-lasco", str(out), *common, "--dry-run"]) == 0
    printed = capsys.readouterr().err  # the solarjax logger, on stderr
    assert "dry run: 4 LASCO C3 images" in printed and "2013_05_13__17_30_06__SOHO_LASCO_C3_white-light.jp2" in printed
    assert not out.exists()
    assert cli.main(["data", "download-lasco", str(out), *common]) == 0
    assert len(list(out.glob("*.jp2"))) == 4
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert len(progress) == 4  # one line per downloaded file: [i/n] name: size in s (rate)
    for number, line in enumerate(progress, 1):
        name, size = line.split("] ")[1].split(": ")[0], (out / line.split("] ")[1].split(": ")[0]).stat().st_size
        assert line.startswith(f"[{number}/4] {name}: {download.size_text(size)} in ") and line.endswith("/s)")

    c2 = ["--start", START, "--end", END, "--detector", "C2", "--base-url", replay.base_url]
    assert cli.main(["data", "download-lasco", str(tmp_path / "c2"), *c2]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "Helioviewer says: No images of the requested type (LASCO C2 white-light) are currently available."
    )
    assert cli.main(["data", "download-lasco", str(out), "--start", "yesterday", "--end", END]) == 2
    assert capsys.readouterr().err.strip() == "error: expected a UTC time like 2013-05-13T12:00, got 'yesterday'"
    closed = replay.base_url
    replay.close()
    assert cli.main(["data", "download-lasco", str(tmp_path / "x"), *common, "--max-attempts", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: Helioviewer unreachable at {closed}")
    (out / "manifest.json").write_text("{broken")
    assert cli.main(["data", "download-lasco", str(out), *common]) == 2
    assert "cannot read the download manifest" in capsys.readouterr().err
