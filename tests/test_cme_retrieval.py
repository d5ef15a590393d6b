"""solarjax.cme_retrieval: circular correlations with known answers, and top-1 scoring with paired intervals."""

import numpy as np
import pytest

from solarjax import cme_retrieval


def test_circular_correlations_of_known_relations():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 360, 500)
    for function in (cme_retrieval.circular_correlation, cme_retrieval.circular_rank_correlation):
        assert function(a, a) == pytest.approx(1.0)
        assert function(a, (a + 40.0) % 360) == pytest.approx(1.0)  # a rotation of one side
        assert function(a, (360.0 - a) % 360) == pytest.approx(-1.0)  # a mirror image
        assert abs(function(a, rng.uniform(0, 360, 500))) < 0.15
    # Angles about north: 359 deg is next to 1 deg. The linear Pearson is fooled, the circular one is not.
    north = rng.normal(0.0, 15.0, 500) % 360
    near = (north + rng.normal(0.0, 3.0, 500)) % 360
    assert cme_retrieval.circular_correlation(north, near) > 0.95
    assert np.corrcoef(north, near)[0, 1] < 0.9
    # Two clusters facing each other (CMEs of the east and west limbs): no circular mean, still defined.
    limbs = (rng.choice([90.0, 270.0], 500) + rng.normal(0.0, 20.0, 500)) % 360
    assert cme_retrieval.circular_correlation(limbs, (limbs + rng.normal(0.0, 5.0, 500)) % 360) > 0.9
    assert abs(cme_retrieval.circular_correlation(limbs, rng.permutation(limbs))) < 0.15
    rows = np.stack([a, a[::-1]])
    np.testing.assert_allclose(cme_retrieval.circular_correlation(rows, rows), [1.0, 1.0])


def test_scoring_ranks_a_perfect_search_above_a_random_one_and_drops_halos():
    rng = np.random.default_rng(1)
    n = 300
    database = {
        "cpa_deg": rng.uniform(0, 360, n),
        "width_deg": rng.uniform(20, 150, n),
        "front_height_rsun": rng.uniform(3, 6, n),
    }
    database["width_deg"][:30] = 360.0  # halos
    values = cme_retrieval.scoring_values(database)
    assert np.isnan(values[:30, 0]).all() and np.isfinite(values[30:]).all()
    queries = np.arange(0, n, 2)
    matches = {"perfect": queries, "random": rng.integers(0, n, len(queries))}
    report = cme_retrieval.score_matches(values[queries], values, matches, num_resamples=200)
    cpa = report["cpa_deg"]
    assert cpa["pairs"] < len(queries) - 10  # halo queries and matches left out
    for name in cme_retrieval.SCORED:
        perfect = report[name]["methods"]["perfect"]["spearman"]
        random = report[name]["methods"]["random"]["spearman"]
        assert perfect["value"] == pytest.approx(1.0) and abs(random["value"]) < 0.3
        assert random["low"] < random["value"] < random["high"]
        assert report[name]["differences"]["perfect - random"]["spearman"]["low"] > 0.5
    table = cme_retrieval.format_table(report, ["perfect", "random"])
    assert table.splitlines()[2].startswith("perfect") and "1.00 [1.00, 1.00]" in table
    # Stored as 'perfect - random': asked the other way round, the sign and the interval flip.
    assert cme_retrieval.format_differences(report, "random", ["perfect"]).startswith("random - perfect: cpa_deg -1.")


def test_cme_tables_carry_the_cme_data_contract(tmp_path):
    from solarjax.retrieval.table import CME_CORE_COLUMNS, build_table_from_arrays, dataset_features

    rows = [
        {
            "id": "cme_synthetic[23][0]",
            "event": "cme_synthetic[23][0]",
            "t_obs": "",
            "detector": "C2",
            "kind": "base",
            "cpa_deg": 91.0,
            "width_deg": 50.0,
            "true_rare": 1,
        },
        {"id": "lasco[C2][2009-03-01T00:00:00]", "t_obs": "2009-03-01T00:00:00", "detector": "C2"},
    ]
    table = build_table_from_arrays(
        tmp_path / "t", np.eye(2, 4, dtype=np.float32), rows, "f" * 16, dataset_name="cme_patches"
    )
    assert set(CME_CORE_COLUMNS) <= set(table.columns) and table.time_column == "t_obs"
    np.testing.assert_array_equal(table.column("true_rare"), [1, -1])  # -1: unknown
    assert np.isnat(table.column("t_obs")[0]) and not np.isnat(table.column("t_obs")[1])
    assert np.isnan(table.column("excess")).all()
    assert dataset_features("cme_patches")[0] == "image" and "true_rare" in dataset_features("cme_patches")


def _synthetic_columns(n: int, seed: int) -> dict[str, np.ndarray]:
    from solarjax import cme_physics
    from solarjax.data import cme_synthetic

    batch = cme_synthetic.generate(n, seed=seed)
    images = batch.images[..., None]
    columns = {"image": images, **{k: np.asarray(v, np.float64) for k, v in cme_physics.quantities(images).items()}}
    for name in cme_retrieval.SPLIT_QUANTITIES:
        columns[f"true_{name}"] = np.asarray(getattr(batch, name), np.float64)
    return columns


def test_cme_ranking_modes_are_chosen_on_validation_and_rank_by_measured_properties(tmp_path):
    from solarjax.retrieval import build_index
    from solarjax.retrieval import ranking as ranking_lib
    from solarjax.retrieval.evaluate import thumbnails
    from solarjax.retrieval.table import build_table_from_arrays

    database, validation = _synthetic_columns(48, seed=3), _synthetic_columns(16, seed=4)
    names = (*cme_retrieval.SPLIT_QUANTITIES, *(f"true_{n}" for n in cme_retrieval.SPLIT_QUANTITIES))
    rows = [{"id": f"cme[{i}]", **{k: float(database[k][i]) for k in names}} for i in range(48)]
    table = build_table_from_arrays(
        tmp_path / "t", thumbnails(database["image"]), rows, "f" * 16, dataset_name="cme_patches"
    )
    index = build_index(table, kind="exact")

    chosen = cme_retrieval.choose_ranking(index, thumbnails(validation["image"]), validation)
    assert chosen.quantities == cme_retrieval.RANK_QUANTITIES and chosen.rank in ranking_lib.RANKS
    trials = chosen.validation["trials"]
    assert {"ssl", "physics", "hybrid:1"} <= set(trials) and chosen.validation["queries"] == 16
    # the physics mode orders by measured width, excess and height: a database image as a query finds itself
    # first, then rows whose measured quantities are at least as far in the standardised space
    measured = {k: database[k][[5, 30]] for k in cme_retrieval.RANK_QUANTITIES}
    physics = cme_retrieval.ranked_rows(
        index, thumbnails(database["image"][[5, 30]]), measured, chosen.with_rank("physics"), 6
    )
    np.testing.assert_array_equal(physics[:, 0], [5, 30])
    scale = ranking_lib.standard_scale(np.stack([database[k] for k in cme_retrieval.RANK_QUANTITIES], 1))
    for q, row in enumerate((5, 30)):
        distance = [
            np.sqrt(
                np.mean(
                    [
                        ((database[k][r] - database[k][row]) / s) ** 2
                        for k, s in zip(cme_retrieval.RANK_QUANTITIES, scale)
                    ]
                )
            )
            for r in physics[q]
        ]
        assert (np.diff(distance) >= -1e-6).all()
    ssl = cme_retrieval.ranked_rows(index, thumbnails(database["image"][[5]]), None, ranking_lib.Ranking(), 3)
    assert ssl[0, 0] == 5


def test_every_search_method_finds_a_query_that_is_in_the_database():
    from solarjax import ssl
    from solarjax.retrieval.evaluate import thumbnails

    config = {"input_channels": 1, "width": 8, "projector_dims": (64, 64, 32), "predictor_hidden": 16}
    untrained = ssl.random_init(config, seed=3)
    rng = np.random.default_rng(5)
    images = rng.normal(size=(12, 128, 128, 1)).astype(np.float32)
    embedding = rng.normal(size=(12, 6)).astype(np.float32)  # stands in for a trained encoder's
    database = cme_retrieval.search_database(images, embedding, untrained)
    np.testing.assert_allclose(database.thumbnails, thumbnails(images))
    assert database.untrained_embedding.shape == (12, untrained.dim)
    rows = np.array([7, 2, 10])
    found = cme_retrieval.top_matches(images[rows], embedding[rows], database, untrained, seed=0, k=3)
    assert set(found) == set(cme_retrieval.SEARCH_METHODS)
    for method in ("ssl", "pixel_l2", "thumbnail_8x8", "random_encoder"):
        assert found[method].shape == (3, 3)
        np.testing.assert_array_equal(found[method][:, 0], rows, err_msg=method)
    assert ((found["random"] >= 0) & (found["random"] < 12)).all()
