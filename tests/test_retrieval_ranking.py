"""Ranking modes: hybrid with weight 0 is the SSL order, physics equals a direct computation, filters
apply to every mode, the ranking file round-trips."""

import numpy as np
import pytest

from solarjax.retrieval import Filters, build_index, build_table_from_arrays, ranking

NUM_ROWS = 600
QUANTITIES = ranking.RANK_QUANTITIES


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(NUM_ROWS, 16)).astype(np.float32)
    values = np.abs(rng.normal(size=(NUM_ROWS, len(QUANTITIES)))) * [0.05, 0.2, 10.0, 0.1]
    values[[4, 9], 1] = np.nan  # an undefined PSEP
    metadata = {name: values[:, j] for j, name in enumerate(QUANTITIES)}
    metadata["harpnum"] = np.arange(NUM_ROWS) % 50 + 1
    table = build_table_from_arrays(tmp_path_factory.mktemp("ranking") / "t", embeddings, metadata, "enc")
    queries = embeddings[:20] + 0.3 * rng.normal(size=(20, 16)).astype(np.float32)
    query_values = values[20:40] * 1.01
    query_values[3] = np.nan  # a query with no polarity: hybrid keeps the SSL order
    return build_index(table, kind="exact"), embeddings, values, queries, query_values


def _rows(results):
    return [[h.row for h in hits] for hits in results]


def test_hybrid_with_weight_zero_is_the_ssl_order(setup):
    index, _, _, queries, query_values = setup
    ssl = index.search(queries, k=10)
    hybrid = ranking.search(index, queries, query_values, k=10, ranking=ranking.Ranking("hybrid", weight=0.0))
    assert _rows(hybrid) == _rows(ssl)
    assert [h.distance for h in hybrid[0]] == [h.distance for h in ssl[0]]


def test_hybrid_score_and_order_match_a_direct_computation(setup):
    index, embeddings, values, queries, query_values = setup
    weight, candidates = 3.0, 40
    hybrid = ranking.search(
        index, queries, query_values, k=5, ranking=ranking.Ranking("hybrid", weight=weight, candidates=candidates)
    )
    scale = np.nanstd(values, axis=0)
    for q in (0, 7):
        distances = np.linalg.norm(embeddings - queries[q], axis=1)
        pool = np.argsort(distances)[:candidates]
        difference = (values[pool] - query_values[q]) / scale
        defined = np.isfinite(difference)
        physics = np.sqrt((np.where(defined, difference, 0) ** 2).sum(1) / defined.sum(1))
        score = distances[pool] / np.median(distances[pool]) + weight * physics
        expected = pool[np.argsort(score, kind="stable")[:5]]
        assert [h.row for h in hybrid[q]] == list(expected)
        assert hybrid[q][0].score == pytest.approx(score.min(), rel=1e-5)
    # Matches of the hybrid are closer in physics than the SSL ones.
    ssl = index.search(queries, k=1)
    gap = lambda hits: np.nanmean(
        [
            np.nanmean(np.abs(values[h[0].row] - v) / scale)  # noqa: E731
            for h, v in zip(hits, query_values)
            if np.isfinite(v).all()
        ]
    )
    assert gap(hybrid) < gap(ssl)
    # A query without defined quantities keeps the SSL order.
    assert _rows(hybrid)[3] == _rows(index.search(queries[3:4], k=5))[0]


def test_physics_mode_is_the_standardised_nearest_row_and_obeys_filters(setup):
    index, _, values, queries, query_values = setup
    found = ranking.search(index, queries, query_values, k=3, ranking=ranking.Ranking("physics"))
    scale = np.nanstd(values, axis=0)
    defined = np.all(np.isfinite(values), axis=1)
    for q in (0, 5):
        distances = np.where(defined, np.sqrt(np.nansum(((values - query_values[q]) / scale) ** 2, axis=1)), np.inf)
        assert [h.row for h in found[q]] == list(np.argsort(distances)[:3])
        assert found[q][0].score == pytest.approx(distances.min() / 2, rel=2e-3)  # RMS over 4 quantities
    assert found[3] == []  # undefined query: no physics match
    harps = index.table.column("harpnum")
    for rank in ranking.RANKS:
        hits = ranking.search(
            index,
            queries,
            query_values,
            k=5,
            filters=Filters(harp_include=[7, 8]),
            ranking=ranking.Ranking(rank, weight=1.0),
        )
        assert all(harps[h.row] in (7, 8) for result in hits for h in result), rank
        one = ranking.search(
            index,
            queries,
            query_values,
            k=5,
            filters=Filters(one_per_harp=True),
            ranking=ranking.Ranking(rank, weight=1.0),
        )
        assert all(len({harps[h.row] for h in r}) == len(r) for r in one), rank


def test_ranking_file_round_trip_and_errors(tmp_path):
    assert ranking.load_ranking(tmp_path) == ranking.Ranking()  # no file: SSL defaults
    chosen = ranking.Ranking("hybrid", weight=2.5, scale=(1.0, 2.0, 3.0, 4.0), validation={"grid": [0, 1]})
    ranking.save_ranking(tmp_path, chosen)
    assert ranking.load_ranking(tmp_path) == chosen
    (tmp_path / "ranking.json").write_text("{not json")
    with pytest.raises(ValueError, match="ranking.json"):
        ranking.load_ranking(tmp_path)
    with pytest.raises(ValueError, match="rank must be one of"):
        ranking.Ranking("pixels")
    with pytest.raises(ValueError, match=">= 0"):
        ranking.Ranking("hybrid", weight=-1.0)


def test_app_search_ranks_like_the_library_and_reads_the_saved_ranking(tmp_path):
    from benchmarks.retrieval_bench import RandomProjectionEncoder
    from solarjax.app.server import ArtefactError, IndexSearch, load_search_ranking
    from solarjax.data import synthetic
    from solarjax.physics import quantities
    from solarjax.retrieval import embed_images

    patches = synthetic.generate(300, seed=5)
    images = np.asarray(patches.images, np.float32).reshape(300, 128, 128, 1)
    encoder = RandomProjectionEncoder(dim=32, seed=0)
    values = {k: np.asarray(v) for k, v in quantities(images).items()}
    table = build_table_from_arrays(tmp_path / "t", embed_images(encoder.embed, images), values, encoder.fingerprint)
    search = IndexSearch(encoder, build_index(table, kind="exact"), tmp_path / "no-tfds")
    search.ranking = ranking.Ranking("hybrid", weight=4.0)
    search.warm_ranked(search.embed(images[:1]), images[:1], grouped=True)
    query = np.asarray(synthetic.generate(1, seed=6).images, np.float32).reshape(1, 128, 128, 1)
    embedding = search.embed(query)
    expected_values = {k: np.asarray(v) for k, v in quantities(query).items()}
    for rank in ranking.RANKS:
        found = search.search_ranked(embedding, query, 5, Filters(), rank=rank)
        direct = ranking.search(
            search.index, embedding, expected_values, 5, Filters(), ranking=search.ranking.with_rank(rank)
        )[0]
        assert [h.row for h in found] == [h.row for h in direct] and len(found) == 5, rank
    assert load_search_ranking(tmp_path) == ranking.Ranking()  # no index/ranking.json: SSL
    ranking.save_ranking(tmp_path / "index", ranking.Ranking("physics"))
    assert load_search_ranking(tmp_path).rank == "physics"
    (tmp_path / "index" / "ranking.json").write_text("[]")
    with pytest.raises(ArtefactError, match="ranking.json"):
        load_search_ranking(tmp_path)


def test_choose_ranking_scores_every_candidate_and_breaks_ties_towards_the_image(setup):
    index, _, _, queries, query_values = setup
    quantities = {name: query_values[:, j] for j, name in enumerate(QUANTITIES)}
    chosen = ranking.choose_ranking(index, queries, quantities, weights=(0.5, 2.0, 8.0))
    trials = chosen.validation["trials"]
    assert list(trials) == ["ssl", "hybrid:0.5", "hybrid:2", "hybrid:8", "physics"]
    # Queries are noisy embeddings of other rows: only the quantities carry the answer.
    assert trials["physics"]["score"] > trials["ssl"]["score"] + 0.3 and chosen.rank != "ssl"
    assert trials[chosen.validation["chosen"]]["score"] >= max(t["score"] for t in trials.values()) - 0.01
    assert chosen.scale is not None and len(chosen.scale) == len(QUANTITIES)
    tied = ranking.choose_ranking(index, queries, quantities, weights=(0.5, 2.0, 8.0), tolerance=10.0)
    assert tied.rank == "ssl" and tied.weight == 0.5  # everything ties: the image-most choices


@pytest.mark.parametrize("tolerance", [0.0, 0.01, 0.05, 0.1, 0.3])
def test_a_chosen_hybrid_ranks_with_the_weight_it_was_chosen_at(setup, tolerance):
    index, _, _, queries, query_values = setup
    quantities = {name: query_values[:, j] for j, name in enumerate(QUANTITIES)}
    chosen = ranking.choose_ranking(index, queries, quantities, weights=(0.5, 1.0, 2.0, 4.0, 8.0), tolerance=tolerance)
    label = chosen.validation["chosen"]
    assert label.split(":")[0] == chosen.rank
    if chosen.rank == "hybrid":
        assert label == f"hybrid:{chosen.weight:g}"
