"""experiments.cme_search's search step on synthetic CMEs, with stand-in encoders (no training): every
image method finds a query's exact copy in the database, and the scoring sees it."""

import types

import numpy as np

from experiments import cme_search
from solarjax import cme_physics, cme_retrieval
from solarjax.data import cme_synthetic
from solarjax.retrieval.evaluate import thumbnails


def test_top1_matches_find_exact_copies_and_score_perfectly():
    batch = cme_synthetic.generate(40, seed=9)
    images = batch.images[..., None]
    measured = {k: np.asarray(v, np.float64) for k, v in cme_physics.quantities(images).items()}
    stand_in = types.SimpleNamespace(embed=lambda x: thumbnails(np.asarray(x)))  # an "encoder": 8x8 block means
    database = {"image": images, "embedding": thumbnails(images), **measured}
    picked = np.array([3, 17, 25, 31, 38])
    queries = {"image": images[picked], **{k: v[picked] for k, v in measured.items()}}
    matches = cme_search.top1_matches(queries, database, stand_in, stand_in, seed=0)
    assert list(matches) == list(cme_search.METHODS)
    for method in ("ssl", "pixel_l2", "thumbnail_8x8", "random_encoder"):
        np.testing.assert_array_equal(matches[method], picked)
    assert ((0 <= matches["random"]) & (matches["random"] < 40)).all()
    report = cme_retrieval.score_matches(
        cme_retrieval.scoring_values(queries),
        cme_retrieval.scoring_values(database),
        {m: matches[m] for m in ("ssl", "random")},
        num_resamples=50,
    )
    assert report["front_height_rsun"]["methods"]["ssl"]["pearson"]["value"] == 1.0


def test_cli_search_on_a_cme_index_ranks_filters_by_position_angle_and_refuses_bad_queries(
    demo_workdir, tmp_path, capsys
):
    import json

    from solarjax import cli, ssl
    from solarjax.retrieval import build_index, embed_images
    from solarjax.retrieval.table import build_table_from_arrays

    encoder = ssl.load(demo_workdir / "simsiam")  # any one-channel 128 x 128 encoder embeds CME images
    batch = cme_synthetic.generate(40, seed=11)
    images = batch.images[..., None]
    measured = {k: np.asarray(v, np.float64) for k, v in cme_physics.quantities(images).items()}
    rows = [{"id": f"cme[{i}]", "detector": "C2", **{k: float(v[i]) for k, v in measured.items()}} for i in range(40)]
    embeddings = np.asarray(embed_images(encoder.embed, images))
    table = build_table_from_arrays(
        tmp_path / "out" / "table", embeddings, rows, encoder.fingerprint, dataset_name="cme_patches"
    )
    build_index(table, kind="exact").save(tmp_path / "out" / "index")
    queries = tmp_path / "q.npy"
    np.save(queries, batch.images[[4, 21]])  # [2, 128, 128]: two of the table's own images
    base = ["search", str(queries), "--index", str(tmp_path / "out"), "--ssl", str(demo_workdir / "simsiam")]

    capsys.readouterr()
    for rank in ("ssl", "physics", "hybrid"):
        assert cli.main([*base, "-k", "3", "--rank", rank, "--json"]) == 0
        answers = json.loads(capsys.readouterr().out)
        assert [a["results"][0]["row"] for a in answers] == [4, 21] and answers[0]["rank"] == rank
    # a position-angle arc across north: every result's CPA lies on it, and it wraps through 0 deg
    assert cli.main([*base, "-k", "40", "--pa", "300", "100", "--json"]) == 0
    found = [r["metadata"]["cpa_deg"] for r in json.loads(capsys.readouterr().out)[0]["results"]]
    on_arc = (measured["cpa_deg"] >= 300) | (measured["cpa_deg"] <= 100)
    assert len(found) == on_arc.sum() > 0 and all(c >= 300 or c <= 100 for c in found)
    assert cli.main([*base, "-k", "2"]) == 0
    assert "cme[4]" in capsys.readouterr().out

    np.save(tmp_path / "bad.npy", np.zeros((2, 64, 64), np.float32))
    assert cli.main([*base[:1], str(tmp_path / "bad.npy"), *base[2:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.npy" in err[0] and "[N, 128, 128]" in err[0]
