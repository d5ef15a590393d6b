"""`solarjax index build` and `solarjax search` on the quick demo's encoder and dataset."""

import json

from helpers import index_build_argv, search_argv

from solarjax import cli


def test_index_build_then_search_a_real_fits_file(demo_workdir, real_br_files, tmp_path, capsys):
    out, ssl = tmp_path / "index", demo_workdir / "simsiam"
    assert cli.main(index_build_argv(demo_workdir, out)) == 0
    assert "800 rows, exact index" in capsys.readouterr().out

    sheet = tmp_path / "sheet.png"
    png = ["--png", str(sheet), "--data-dir", str(demo_workdir / "tfds")]
    assert cli.main(search_argv(real_br_files[0], out, ssl, "-k", "3", "--json", *png)) == 0
    text = capsys.readouterr().out
    [query] = json.loads(text[: text.rindex("contact sheet:")])
    assert query["query"] == str(real_br_files[0])
    results = query["results"]
    assert len(results) == 3
    assert [r["distance"] for r in results] == sorted(r["distance"] for r in results)
    assert all(r["metadata"]["source"] == "synthetic" for r in results)
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Ranking modes: hybrid and physics bring matches closer in the query's own quantities; a saved
    # ranking.json (chosen on validation) is the default and is named in the output.
    from solarjax import physics
    from solarjax.data import preprocess_patch, read_sharp
    from solarjax.retrieval import ranking

    query = {
        k: float(v[0])
        for k, v in physics.quantities(preprocess_patch(read_sharp(real_br_files[0])).image[None]).items()
    }

    def search(*extra):
        assert cli.main(search_argv(real_br_files[0], out, ssl, "-k", "5", "--json", *extra)) == 0
        [found] = json.loads(capsys.readouterr().out)
        return found

    def gap(found):  # standardised TUF/PSEP distance of the top match to the query
        m = found["results"][0]["metadata"]
        return abs(m["tuf"] - query["tuf"]) / 0.05 + abs(m["psep"] - query["psep"]) / 0.1

    ssl_found = search()
    assert ssl_found["rank"] == "ssl" and ssl_found["results"][0]["score"] is None
    physics_found = search("--rank", "physics")
    assert physics_found["rank"] == "physics"
    assert [r["score"] for r in physics_found["results"]] == sorted(r["score"] for r in physics_found["results"])
    assert gap(physics_found) <= gap(ssl_found)
    ranking.save_ranking(out, ranking.Ranking("hybrid", weight=0.0, validation={"best": "hybrid:0"}))
    assert [r["row"] for r in search()["results"]] == [r["row"] for r in ssl_found["results"]]  # weight 0 = ssl
    assert cli.main(search_argv(real_br_files[0], out, ssl, "-k", "2")) == 0
    assert capsys.readouterr().out.splitlines()[0] == "ranking: hybrid (weight 0); chosen on validation: hybrid"
    (out / "ranking.json").write_text("{")
    assert cli.main(search_argv(real_br_files[0], out, ssl)) == 2
    assert "ranking.json" in capsys.readouterr().err


def test_index_build_refuses_an_existing_output_and_replaces_it_with_overwrite(demo_workdir, tmp_path, capsys):
    out = tmp_path / "index"
    args = index_build_argv(demo_workdir, out, "--split", "validation")
    assert cli.main(args) == 0
    assert "100 rows" in capsys.readouterr().out
    assert cli.main(args) == 2  # a second build never appends to the first
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists: pass --overwrite" in err[0]
    assert cli.main([*args, "--overwrite"]) == 0
    assert "100 rows" in capsys.readouterr().out  # replaced, not doubled
    from solarjax.retrieval import load_index

    assert load_index(out / "index").num_rows == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"]  # nothing left beside it
