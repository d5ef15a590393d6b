"""Indexes: exact search against brute force, filters, ScaNN recall, save/load, refusals, appends."""

import numpy as np
import pytest

from benchmarks.retrieval_bench import RandomProjectionEncoder, clustered_embeddings
from solarjax.retrieval import (
    ExactIndex,
    Filters,
    FingerprintMismatchError,
    IndexFileError,
    QueryContext,
    ScannIndex,
    append_rows,
    build_index,
    build_table_from_arrays,
    exact_top_k,
    load_index,
    measure_recall,
    open_table,
)
from solarjax.retrieval import index as index_module

NUM_ROWS = 12_000
DIM = 512


def _brute_force(queries, vectors, metric, allowed=None):
    """[Q, N] distances by the definition (float64); inf where not allowed."""
    queries, vectors = queries.astype(np.float64), vectors.astype(np.float64)
    if metric == "cosine":
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        distances = 1.0 - q @ v.T
    else:
        distances = np.sqrt(((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1))
    return distances if allowed is None else np.where(allowed, distances, np.inf)


def _metadata(num_rows, seed=0):
    """Realistic row metadata: 300 HARPs with many frames each, times over 2 years, latitudes +-40."""
    rng = np.random.default_rng(seed)
    harp = rng.integers(1, 301, num_rows)
    return {
        "harpnum": harp,
        "t_rec": np.datetime64("2012-01-01T00:00:00", "s")
        + (harp * 3 * 86400 + rng.integers(0, 10 * 86400, num_rows)).astype("timedelta64[s]"),
        "lat_deg": np.where(harp % 2 == 0, 1, -1) * rng.uniform(5, 40, num_rows),
        "tuf": rng.lognormal(-3, 1, num_rows),
        "r_value": np.where(rng.uniform(size=num_rows) < 0.1, np.nan, rng.exponential(50, num_rows)),
    }


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    embeddings = clustered_embeddings(NUM_ROWS, DIM, seed=1)
    return build_table_from_arrays(tmp_path_factory.mktemp("table") / "t", embeddings, _metadata(NUM_ROWS), "encoder-1")


@pytest.fixture(scope="module")
def scann_index(table):
    return ScannIndex.build(table, "l2", target_recall=0.95, seed=0)


@pytest.fixture(scope="module")
def queries():
    return clustered_embeddings(NUM_ROWS + 64, DIM, seed=1)[NUM_ROWS:]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_exact_top_k_equals_brute_force_across_blocks(metric):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(1000, 24)).astype(np.float32)
    queries = rng.normal(size=(1100, 24)).astype(np.float32)  # > one query block
    blocks = [(np.arange(s, min(s + 300, 1000)), vectors[s : s + 300]) for s in range(0, 1000, 300)]
    rows, distances = exact_top_k(queries, blocks, 7, metric)
    reference = _brute_force(queries, vectors, metric)
    expected_rows = np.argsort(reference, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(distances, np.take_along_axis(reference, expected_rows, axis=1), rtol=1e-4, atol=1e-4)


def test_exact_top_k_with_masks_and_groups_equals_brute_force():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(700, 8)).astype(np.float32)
    queries = rng.normal(size=(40, 8)).astype(np.float32)
    group_of_row = rng.integers(0, 25, 700)
    forbidden = rng.uniform(size=(40, 700)) < 0.3
    blocks = [(np.arange(s, min(s + 256, 700)), vectors[s : s + 256]) for s in range(0, 700, 256)]
    rows, _ = exact_top_k(
        queries,
        blocks,
        10,
        "l2",
        allowed=lambda qs, r: ~forbidden[qs][:, r],
        groups=lambda r: group_of_row[r],
    )
    reference = _brute_force(queries, vectors, "l2", ~forbidden)
    for q in range(40):
        best_per_group = {}
        for row in np.argsort(reference[q], kind="stable"):
            if np.isfinite(reference[q, row]):
                best_per_group.setdefault(group_of_row[row], row)
        expected = sorted(best_per_group.values(), key=lambda r: (reference[q, r], r))[:10]
        assert list(rows[q]) == expected
        assert len(set(group_of_row[rows[q]])) == 10


def test_exact_index_results_carry_metadata_and_exact_distances(table, queries):
    index = build_index(table, kind="auto")
    assert isinstance(index, ExactIndex) and index.num_rows == NUM_ROWS
    results = index.search(queries[:5], k=4)
    reference = _brute_force(queries[:5], table.all_embeddings(), "l2")
    for q, hits in enumerate(results):
        assert [hit.row for hit in hits] == list(np.argsort(reference[q])[:4])
        for hit in hits:
            assert hit.distance == pytest.approx(reference[q, hit.row], rel=1e-9)
            assert hit.similarity == pytest.approx(1.0 / (1.0 + hit.distance))
            assert hit.metadata["harpnum"] == table.column("harpnum")[hit.row]
    cosine = build_index(table, kind="exact", metric="cosine").search(queries[:2], k=3)
    reference = _brute_force(queries[:2], table.all_embeddings(), "cosine")
    for q, hits in enumerate(cosine):
        assert [hit.row for hit in hits] == list(np.argsort(reference[q])[:3])
        assert all(hit.similarity == pytest.approx(1.0 - reference[q, hit.row], abs=1e-9) for hit in hits)


def _passes(filters, table, row, context_harp=0, context_time=None):
    """Whether one row passes the filters, written out from their definitions."""
    harp = table.column("harpnum")[row]
    time = table.column("t_rec")[row]
    lat = table.column("lat_deg")[row]
    if filters.t_rec_range is not None and not (filters.t_rec_range[0] <= time <= filters.t_rec_range[1]):
        return False
    if filters.harp_include is not None and harp not in filters.harp_include:
        return False
    if harp in filters.harp_exclude:
        return False
    if filters.hemisphere == "north" and not lat > 0:
        return False
    if filters.lat_range is not None and not filters.lat_range[0] <= lat <= filters.lat_range[1]:
        return False
    for name, (low, high) in filters.quantity_ranges.items():
        if not low <= table.column(name)[row] <= high:
            return False
    if filters.exclude_own_harp_days is not None and harp == context_harp:
        if abs(time - context_time) <= np.timedelta64(int(filters.exclude_own_harp_days * 86400), "s"):
            return False
    return True


FILTER_CASES = {
    "time": Filters(t_rec_range=("2012-06-01T00:00:00", "2013-01-31T00:00:00")),
    "harp_include": Filters(harp_include=[5, 17, 200, 201]),
    "harp_exclude": Filters(harp_exclude=list(range(1, 200))),
    "north_and_quantities": Filters(hemisphere="north", quantity_ranges={"tuf": (0.05, None), "r_value": (None, 80.0)}),
    "latitude": Filters(lat_range=(-20, -10)),
    "one_per_harp": Filters(one_per_harp=True, lat_range=(0, 30)),
}


@pytest.mark.parametrize("case", sorted(FILTER_CASES))
@pytest.mark.parametrize("kind", ["exact", "scann"])
def test_filters_apply_before_top_k(case, kind, table, scann_index, queries):
    filters = FILTER_CASES[case]
    index = scann_index if kind == "scann" else ExactIndex(table, "l2", NUM_ROWS)
    k = 10
    results = index.search(queries[:8], k=k, filters=filters)
    allowed = np.array([_passes(filters, table, r) for r in range(NUM_ROWS)])
    reference = _brute_force(queries[:8], table.all_embeddings(), "l2", np.broadcast_to(allowed, (8, NUM_ROWS)))
    assert allowed.sum() >= k
    overlaps = []
    for q, hits in enumerate(results):
        rows = [hit.row for hit in hits]
        assert len(rows) == k
        assert all(allowed[rows])
        if filters.one_per_harp:
            assert len({hit.metadata["harpnum"] for hit in hits}) == k
        expected = list(np.argsort(reference[q], kind="stable")[:k])
        if kind == "exact" and not filters.one_per_harp:
            assert rows == expected
        if kind == "scann" and not filters.one_per_harp:
            overlaps.append(len(set(rows) & set(expected)) / k)
    assert not overlaps or np.mean(overlaps) >= 0.9
    assert [h.distance for h in results[0]] == sorted(h.distance for h in results[0])


def test_only_what_passes_comes_back_when_fewer_than_k_pass(table, scann_index, queries):
    filters = Filters(harp_include=[42])
    expected = int((table.column("harpnum") == 42).sum())
    for index in (scann_index, ExactIndex(table, "l2", NUM_ROWS)):
        hits = index.search(queries[:2], k=expected + 20, filters=filters)
        assert [len(h) for h in hits] == [expected, expected]
    one_per_harp = scann_index.search(queries[:1], k=20, filters=Filters(one_per_harp=True, harp_include=[3, 4, 5]))
    assert sorted(h.metadata["harpnum"] for h in one_per_harp[0]) == [3, 4, 5]


def test_scann_falls_back_to_exact_when_candidates_run_out(table, scann_index, queries, monkeypatch):
    # At most 400 candidates per query: about 15% of them (~60) pass the latitude filter, which is
    # drawn independently of the embeddings, so k = 200 cannot be met from ScaNN's candidates and
    # every query falls back to exact search. (With the default 4,096 the premise would depend on how
    # many rows the clustered table's nearest leaves hold, which varies with ScaNN's tree training.)
    monkeypatch.setattr(index_module, "MAX_FETCH", 400)
    filters = Filters(lat_range=(-20, -10))  # about 15% of the rows: searched with ScaNN, not exactly
    assert 0.1 * NUM_ROWS < _pass_count(filters, table) < 0.3 * NUM_ROWS
    candidates = scann_index.candidates(queries[:2], 400, scann_index.params.num_leaves)
    allowed = [sum(_passes(filters, table, int(r)) for r in row if r >= 0) for row in candidates]
    assert max(allowed) < 200
    got = [[h.row for h in hits] for hits in scann_index.search(queries[:2], k=200, filters=filters)]
    exact = [
        [h.row for h in hits] for hits in ExactIndex(table, "l2", NUM_ROWS).search(queries[:2], k=200, filters=filters)
    ]
    assert got == exact and len(got[0]) == 200


def _pass_count(filters, table):
    return sum(_passes(filters, table, r) for r in range(NUM_ROWS))


def test_own_harp_exclusion_and_self_exclusion_for_table_rows(table, scann_index):
    rows = np.array([10, 500, 9000])
    for index in (scann_index, ExactIndex(table, "l2", NUM_ROWS)):
        plain = index.search_rows(rows, k=5)
        assert all(r not in [h.row for h in hits] for r, hits in zip(rows, plain))
        near_duplicates_removed = index.search_rows(rows, k=5, filters=Filters(exclude_own_harp_days=30))
        for row, hits in zip(rows, near_duplicates_removed):
            assert len(hits) == 5
            harp, time = table.column("harpnum")[row], table.column("t_rec")[row]
            assert all(_passes(Filters(exclude_own_harp_days=30), table, h.row, harp, time) for h in hits)
    # An outside query with a known HARP and time: its HARP's frames within 30 days are dropped.
    context = QueryContext(harpnum=[table.column("harpnum")[10]], t_rec=[table.column("t_rec")[10]], row=[-1])
    hits = ExactIndex(table, "l2", NUM_ROWS).search(
        table.embeddings([10]), 5, Filters(exclude_own_harp_days=30), context
    )
    assert all(h.metadata["harpnum"] != table.column("harpnum")[10] for h in hits[0])


def test_scann_recall_at_10_against_exact(table, scann_index, queries):
    assert scann_index.params.num_leaves == round(np.sqrt(NUM_ROWS))
    assert scann_index.params.scoring == "ah"
    assert scann_index.params.calibrated_recall >= 0.95
    assert measure_recall(scann_index, queries, k=10) >= 0.95
    assert measure_recall(ExactIndex(table, "l2", NUM_ROWS), queries, k=10) == 1.0


def test_scann_switches_to_brute_force_scoring_on_crowded_tables(tmp_path):
    # Rows along one ray with log-normal norms: the 10 nearest rows of a row differ in distance by
    # less than asymmetric hashing's error, which then cannot reach the target at any leaf count.
    rng = np.random.default_rng(0)
    rows, dim = 4_000, 64
    vectors = np.exp(rng.normal(0.0, 1.0, (rows, 1))) * (1.0 + 0.02 * rng.normal(size=(rows, dim)))
    table = build_table_from_arrays(tmp_path / "t", vectors.astype(np.float32), {"harpnum": np.arange(rows)}, "enc")
    index = ScannIndex.build(table, "l2", target_recall=0.95, seed=0)
    assert index.params.scoring == "brute_force"
    assert index.params.calibrated_recall >= 0.95
    assert index.params.leaves_to_search < index.params.num_leaves
    queries = vectors[rng.choice(rows, 64, replace=False)] * (1.0 + 1e-3 * rng.normal(size=(64, dim)))
    assert measure_recall(index, queries.astype(np.float32), k=10) >= 0.95
    index.save(tmp_path / "index")
    assert load_index(tmp_path / "index").params == index.params


def test_save_load_round_trip_and_fingerprint_refusal(tmp_path, table, scann_index, queries):
    expected = [[h.row for h in hits] for hits in scann_index.search(queries[:6], 10)]
    scann_index.save(tmp_path / "scann")
    loaded = load_index(tmp_path / "scann", expected_fingerprint="encoder-1")
    assert isinstance(loaded, ScannIndex) and loaded.params == scann_index.params
    assert [[h.row for h in hits] for hits in loaded.search(queries[:6], 10)] == expected
    ExactIndex(table, "cosine", NUM_ROWS).save(tmp_path / "exact")
    exact = load_index(tmp_path / "exact", table)
    assert (exact.kind, exact.metric, exact.num_rows) == ("exact", "cosine", NUM_ROWS)
    with pytest.raises(FingerprintMismatchError, match="'encoder-1'.*'encoder-2'"):
        load_index(tmp_path / "scann", expected_fingerprint="encoder-2")
    encoder = RandomProjectionEncoder(dim=DIM)
    with pytest.raises(FingerprintMismatchError, match=f"'encoder-1'.*'{encoder.fingerprint}'"):
        exact.search_images(np.zeros((1, 128, 128)), encoder, k=1)


def test_corrupt_or_partial_index_files_are_named(tmp_path, table, scann_index):
    directory = scann_index.save(tmp_path / "index")
    hashed = directory / "scann" / "hashed_dataset.npy"
    original = hashed.read_bytes()
    hashed.write_bytes(original[: len(original) // 2])
    with pytest.raises(IndexFileError, match="hashed_dataset.npy: partial"):
        load_index(directory)
    flipped = bytearray(original)
    flipped[-1] ^= 0xFF
    hashed.write_bytes(bytes(flipped))
    with pytest.raises(IndexFileError, match="hashed_dataset.npy: corrupted"):
        load_index(directory)
    hashed.unlink()
    with pytest.raises(IndexFileError, match="hashed_dataset.npy: missing"):
        load_index(directory)
    manifest = directory / "index.json"
    manifest.write_text(manifest.read_text()[:40])
    with pytest.raises(IndexFileError, match="index.json: not valid JSON"):
        load_index(directory)
    manifest.unlink()
    with pytest.raises(IndexFileError, match="index.json: missing"):
        load_index(directory)


def test_append_then_search_finds_the_new_rows(tmp_path):
    rng = np.random.default_rng(5)
    old = rng.normal(size=(300, 16)).astype(np.float32)
    new = rng.normal(size=(20, 16)).astype(np.float32) + 3.0
    table = build_table_from_arrays(tmp_path / "t", old, {"harpnum": np.full(300, 1)}, "enc")
    build_index(table).save(tmp_path / "index")
    table = append_rows(tmp_path / "t", new, {"harpnum": np.full(20, 2)}, "enc")
    stale = load_index(tmp_path / "index")  # still covers the 300 rows it was built on
    assert stale.num_rows == 300 and max(h.row for h in stale.search(new, 1)[0]) < 300
    fresh = build_index(open_table(tmp_path / "t"))
    hits = fresh.search(new, k=1)
    assert [h[0].row for h in hits] == list(range(300, 320))
    assert all(h[0].distance == pytest.approx(0.0, abs=1e-6) and h[0].metadata["harpnum"] == 2 for h in hits)


def test_scann_refuses_tables_too_small_to_train(tmp_path):
    table = build_table_from_arrays(tmp_path / "t", np.ones((50, 4), np.float32), {}, "enc")
    with pytest.raises(ValueError, match="at least 1000 rows.*kind='exact'"):
        build_index(table, kind="scann")
