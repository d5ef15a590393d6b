"""`solarjax index build` and `solarjax search` on the quick demo's encoder and dataset."""
import json

from solarjax import cli


def test_index_build_then_search_a_real_fits_file(demo_workdir, real_br_files, tmp_path, capsys):
    out = tmp_path / "index"
    assert cli.main(["index", "build", "--ssl", str(demo_workdir / "simsiam"), "--data-dir",
                     str(demo_workdir / "tfds"), "--out", str(out)]) == 0
    assert "800 rows, exact index" in capsys.readouterr().out

    sheet = tmp_path / "sheet.png"
    assert cli.main(["search", str(real_br_files[0]), "--index", str(out), "--ssl", str(demo_workdir / "simsiam"),
                     "-k", "3", "--json", "--png", str(sheet), "--data-dir", str(demo_workdir / "tfds")]) == 0
    text = capsys.readouterr().out
    [query] = json.loads(text[: text.rindex("contact sheet:")])
    assert query["query"] == str(real_br_files[0])
    results = query["results"]
    assert len(results) == 3
    assert [r["distance"] for r in results] == sorted(r["distance"] for r in results)
    assert all(r["metadata"]["source"] == "synthetic" for r in results)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
