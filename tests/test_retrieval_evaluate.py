"""Retrieval evaluation: statistics, baselines against direct computations, the protocol on
synthetic patches (same queries for every method, intervals), figures."""

import json

import numpy as np
import pytest
import scipy.spatial.distance

from benchmarks.reference_physics import reference_quantities_batch
from benchmarks.retrieval_bench import RandomProjectionEncoder
from solarjax.data import synthetic
from solarjax.retrieval import build_index, build_table_from_arrays, embed_images
from solarjax.retrieval.evaluate import (
    ALL_METHODS,
    EVAL_QUANTITIES,
    METHODS,
    BaselineFeatures,
    correlations,
    evaluate_retrieval,
    feature_neighbours,
    format_correlation_table,
    format_difference_table,
    format_interval_table,
    physics_neighbours,
    pixel_neighbours,
    thumbnails,
)
from solarjax.retrieval.filters import QUANTITY_NAMES
from solarjax.retrieval.ranking import Ranking

TRUTH = ("n_bipoles", "delta", "hemisphere")


def test_correlations_known_answers():
    x = np.arange(10.0)
    assert correlations(x, 3 * x + 1) == {"pearson": pytest.approx(1.0), "spearman": pytest.approx(1.0), "pairs": 10}
    cubic = correlations(x - 4.5, (x - 4.5) ** 3)
    assert cubic["spearman"] == pytest.approx(1.0) and 0.9 < cubic["pearson"] < 1.0
    assert correlations(x, -x)["pearson"] == pytest.approx(-1.0)
    with_gaps = correlations(np.array([1, 2, np.nan, 4, 5.0]), np.array([2, 4, 6, np.nan, 10.0]))
    assert with_gaps["pairs"] == 3 and with_gaps["pearson"] == pytest.approx(1.0)
    assert np.isnan(correlations(x[:2], x[:2])["pearson"])


def test_physics_baselines_equal_direct_distances():
    rng = np.random.default_rng(0)
    mixing = np.array([[1.0, 0.8, 0.0], [0.0, 0.6, 0.3], [0.0, 0.0, 2.0]])
    database = rng.normal(size=(400, 3)) @ mixing + [5.0, -1.0, 30.0]
    database[[3, 77]] = np.nan  # undefined quantities never match
    queries = rng.normal(size=(30, 3)) @ mixing + [5.0, -1.0, 30.0]
    queries[4, 1] = np.nan
    finite = np.all(np.isfinite(database), axis=1)
    valid = database[finite]

    inverse_covariance = np.linalg.inv(np.cov(valid, rowvar=False))
    mahalanobis = scipy.spatial.distance.cdist(queries, valid, "mahalanobis", VI=inverse_covariance)
    standardised = scipy.spatial.distance.cdist(queries, valid, "seuclidean", V=valid.var(axis=0))
    for distances, flag in ((mahalanobis, True), (standardised, False)):
        rows = physics_neighbours(queries, database, k=3, mahalanobis=flag)
        expected = np.flatnonzero(finite)[np.argsort(distances, axis=1)[:, :3]]
        np.testing.assert_array_equal(np.delete(rows, 4, axis=0), np.delete(expected, 4, axis=0))
        assert list(rows[4]) == [-1, -1, -1]
    own = physics_neighbours(database[:20], database, exclude_rows=np.arange(20))[:, 0]
    assert np.all(own != np.arange(20)) and np.all(own[[0, 1, 2]] >= 0)


def test_pixel_baseline_equals_numpy_and_excludes_own_row():
    rng = np.random.default_rng(1)
    database = rng.normal(size=(1500, 16, 16)).astype(np.float32)  # > one pixel block
    queries = database[[7, 1400]] + 0.01 * rng.normal(size=(2, 16, 16)).astype(np.float32)
    distances = ((queries.reshape(2, 1, -1) - database.reshape(1, 1500, -1)) ** 2).sum(-1)
    np.testing.assert_array_equal(pixel_neighbours(queries, database, k=4), np.argsort(distances, axis=1)[:, :4])
    assert list(pixel_neighbours(queries, database, exclude_rows=np.array([7, 1400]))[:, 0]) == list(
        np.argsort(distances, axis=1)[:, 1]
    )


@pytest.fixture(scope="module")
def synthetic_setup(tmp_path_factory):
    """A table of 240 synthetic patches (random-projection encoder) and 40 new synthetic queries."""
    database = synthetic.generate(240, seed=11)
    queries = synthetic.generate(40, seed=12)
    encoder = RandomProjectionEncoder(dim=128, seed=0)
    quantities = reference_quantities_batch(database.images)
    metadata = {
        **{name: quantities[name] for name in QUANTITY_NAMES},
        "lat_deg": database.truth["latitude_deg"],
        "source": ["synthetic"] * 240,
        **{name: database.truth[name] for name in TRUTH},
    }
    table = build_table_from_arrays(
        tmp_path_factory.mktemp("synthetic") / "t",
        embed_images(encoder.embed, database.images),
        metadata,
        encoder.fingerprint,
    )
    return database, queries, encoder, build_index(table)


def test_protocol_gives_perfect_scores_when_queries_are_table_patches(synthetic_setup, tmp_path):
    database, _, encoder, index = synthetic_setup
    chosen = np.arange(0, 240, 8)
    images = database.images[chosen]
    report = evaluate_retrieval(
        images,
        reference_quantities_batch(images),
        index,
        encoder,
        database_images=database.images,
        query_truth={name: database.truth[name][chosen] for name in TRUTH},
        out_dir=tmp_path,
    )
    assert report["num_queries"] == 30 and report["quantities"] == list(EVAL_QUANTITIES)
    for method in METHODS[:-1]:  # every method but random finds the query itself
        for name in EVAL_QUANTITIES:
            assert report["correlations"][method][name]["pearson"] == pytest.approx(1.0, abs=1e-9), (method, name)
        assert report["truth_agreement"][method] == {name: 1.0 for name in TRUTH}
    assert max(abs(report["correlations"]["random"][n]["pearson"]) for n in EVAL_QUANTITIES) < 0.9
    saved = json.loads((tmp_path / "retrieval_report.json").read_text())
    assert saved["correlations"]["ssl"]["tuf"]["pairs"] == report["correlations"]["ssl"]["tuf"]["pairs"]
    for name in ("query_matches", "query_vs_match"):
        png = (tmp_path / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    table_text = format_correlation_table(report)
    assert table_text.splitlines()[0].split()[:3] == ["method", "TUF", "r/rho"]
    assert len(table_text.splitlines()) == 1 + len(METHODS)


def test_protocol_on_new_synthetic_queries_orders_the_baselines(synthetic_setup):
    database, queries, encoder, index = synthetic_setup
    report = evaluate_retrieval(
        queries.images,
        reference_quantities_batch(queries.images),
        index,
        encoder,
        database_images=database.images,
        query_truth={name: queries.truth[name] for name in TRUTH},
        seed=3,
    )
    pearson = {m: report["correlations"][m]["tuf"]["pearson"] for m in METHODS}
    # Matching on the scored quantities bounds the rest; random matching carries no information.
    assert pearson["physics_euclidean"] > 0.8 and pearson["physics_mahalanobis"] > 0.6
    assert abs(pearson["random"]) < 0.4
    assert pearson["pixel_l2"] > pearson["random"] + 0.3 and pearson["ssl"] > pearson["random"] + 0.3
    for method in METHODS:
        assert all(0.0 <= v <= 1.0 for v in report["truth_agreement"][method].values())
    # Same seed, same random baseline; the SSL and pixel columns do not depend on it.
    again = evaluate_retrieval(
        queries.images,
        reference_quantities_batch(queries.images),
        index,
        encoder,
        database_images=database.images,
        seed=3,
    )
    assert again["correlations"] == report["correlations"]


def test_evaluation_refuses_misaligned_inputs(synthetic_setup):
    database, queries, encoder, index = synthetic_setup
    quantities = reference_quantities_batch(queries.images)
    with pytest.raises(ValueError, match="row-aligned"):
        evaluate_retrieval(queries.images, quantities, index, encoder, database_images=database.images[:10])
    with pytest.raises(ValueError, match="lack"):
        evaluate_retrieval(queries.images, {"tuf": quantities["tuf"]}, index, encoder, database_images=database.images)
    with pytest.raises(ValueError, match="no ground-truth columns"):
        evaluate_retrieval(
            queries.images,
            quantities,
            index,
            encoder,
            database_images=database.images,
            query_truth={"colour": np.zeros(40)},
        )


def test_thumbnails_are_block_means_and_the_thumbnail_baseline_is_exact():
    rng = np.random.default_rng(4)
    images = rng.normal(size=(1100, 32, 32, 1)).astype(np.float32)  # > one block of rows
    small = thumbnails(images)
    assert small.shape == (1100, 64)
    np.testing.assert_allclose(small[5].reshape(8, 8)[2, 3], images[5, 8:12, 12:16, 0].mean(), rtol=1e-5)
    queries = small[[3, 900]] + 1e-4
    expected = np.argsort(((queries[:, None] - small[None]) ** 2).sum(-1), axis=1)[:, :3]
    np.testing.assert_array_equal(feature_neighbours(queries, small, k=3), expected)
    with pytest.raises(ValueError, match="8x8 blocks"):
        thumbnails(images[:2, :30, :30])


def test_every_method_is_scored_on_the_same_queries_with_intervals(synthetic_setup):
    database, queries, encoder, index = synthetic_setup
    quantities = reference_quantities_batch(queries.images)
    quantities["psep"] = np.array(quantities["psep"], np.float64)
    quantities["psep"][[0, 5]] = np.nan  # undefined for every method alike
    baselines = BaselineFeatures(database.images, random_encoder=RandomProjectionEncoder(dim=64, seed=9))
    report = evaluate_retrieval(
        queries.images,
        quantities,
        index,
        encoder,
        database_images=database.images,
        methods=ALL_METHODS,
        ranking=Ranking(weight=2.0),
        baselines=baselines,
        quantity_names=("tuf", "psep", "r_value"),
        num_resamples=300,
        query_truth={"n_bipoles": queries.truth["n_bipoles"]},
    )
    assert report["methods"] == list(ALL_METHODS)
    for name in ("tuf", "psep", "r_value"):
        pairs = {report["correlations"][m][name]["pairs"] for m in ALL_METHODS}
        assert len(pairs) == 1, (name, pairs)  # one common query set per quantity
        block = report["intervals"][name]
        assert block["n"] == pairs.pop()
        for method in ALL_METHODS:
            for stat in ("pearson", "spearman"):
                entry = block["methods"][method][stat]
                assert entry["low"] <= entry["value"] <= entry["high"], (name, method, stat)
        difference = block["differences"]["ssl - random"]["pearson"]
        assert difference["value"] == pytest.approx(
            block["methods"]["ssl"]["pearson"]["value"] - block["methods"]["random"]["pearson"]["value"]
        )
    assert report["intervals"]["psep"]["n"] <= 38
    # The hybrid re-ranks SSL candidates by the scored quantities: TUF agreement rises above SSL's.
    assert report["correlations"]["hybrid"]["tuf"]["pearson"] > report["correlations"]["ssl"]["tuf"]["pearson"]
    truth = report["truth_intervals"]["n_bipoles"]
    assert truth["methods"]["ssl"]["value"] == pytest.approx(report["truth_agreement"]["ssl"]["n_bipoles"])
    # The matched rows behind every figure are returned (for paired comparisons between encoders).
    assert set(report["top1"]) == set(ALL_METHODS) and len(report["top1"]["ssl"]) == len(queries.images)
    ssl_tuf = index.table.column("tuf")[np.asarray(report["top1"]["ssl"])]
    finite = np.isfinite(np.asarray(quantities["tuf"], np.float64)) & np.isfinite(ssl_tuf)
    assert report["correlations"]["ssl"]["tuf"]["pairs"] <= finite.sum()
    text = format_interval_table(report["intervals"])
    assert len(text.splitlines()) == 1 + len(ALL_METHODS) and "[" in text
    differences = format_difference_table(report["intervals"], "hybrid")
    assert len(differences.splitlines()) == len(ALL_METHODS)
