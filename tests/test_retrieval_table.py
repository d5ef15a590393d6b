"""Embedding tables: round trips, appends, fingerprints, corrupt files, embedding a dataset stream."""

import datetime
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks.reference_physics import reference_quantities_batch
from benchmarks.retrieval_bench import RandomProjectionEncoder
from solarjax.data import preprocess_patch, read_sharp
from solarjax.retrieval import (
    CORE_COLUMNS,
    FingerprintMismatchError,
    TableError,
    append_rows,
    build_table_from_arrays,
    embed_dataset,
    embed_images,
    open_table,
)
from solarjax.retrieval.filters import QUANTITY_NAMES, to_datetime64


def _metadata(n, offset=0):
    return {
        "harpnum": np.arange(n) % 7 + 1 + offset,
        "noaa_ar": np.full(n, 11429),
        "t_rec": [f"2012.03.{6 + i % 3:02d}_14:24:00_TAI" for i in range(n)],
        "lat_deg": np.linspace(-30, 30, n),
        "tuf": np.linspace(0.0, 1.0, n, dtype=np.float32),
        "source": ["fits"] * n,
        "record": [f"hmi.sharp_cea_720s[{1449 + i}][2012.03.06_14:24:00_TAI]" for i in range(n)],
        "n_bipoles": np.arange(n, dtype=np.int8) % 3 + 1,
        "delta": np.arange(n) % 2 == 0,
    }


def test_round_trip_of_embeddings_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(9, 6)).astype(np.float32)
    table = build_table_from_arrays(tmp_path / "t", embeddings, _metadata(9), "enc-a")
    reopened = open_table(tmp_path / "t", expected_fingerprint="enc-a")
    assert reopened.num_rows == 9 and reopened.dim == 6 and reopened.table_id == table.table_id
    np.testing.assert_array_equal(reopened.embeddings(np.arange(9)), embeddings)
    np.testing.assert_array_equal(reopened.embeddings([8, 0, 8]), embeddings[[8, 0, 8]])
    row = reopened.rows([4])[0]
    assert row["harpnum"] == 5 and row["noaa_ar"] == 11429
    assert row["t_rec"] == "2012-03-07T14:23:26"  # T_REC 14:24:00 TAI is 14:23:26 UTC (TAI - UTC = 34 s)
    assert row["record"] == "hmi.sharp_cea_720s[1453][2012.03.06_14:24:00_TAI]"
    assert row["tuf"] == pytest.approx(0.5) and row["lat_deg"] == pytest.approx(0.0)
    assert row["n_bipoles"] == 2 and row["delta"] is True
    # Core columns the input lacks hold their missing value; extra columns keep their kind.
    assert np.isnan(row["psep"]) and np.isnan(row["lon_deg"]) and row["dataset"] == "" and row["example_index"] == -1
    assert set(CORE_COLUMNS) <= set(reopened.columns)
    assert reopened.columns["n_bipoles"] == "int" and reopened.columns["delta"] == "bool"
    assert reopened.column("t_rec").dtype == np.dtype("datetime64[s]")


def test_metadata_as_rows_equals_metadata_as_columns(tmp_path):
    embeddings = np.eye(3, dtype=np.float32)
    rows = [
        {"harpnum": 377, "t_rec": datetime.datetime(2011, 2, 15, 0, 0, tzinfo=datetime.UTC), "record": "a"},
        {"harpnum": 1449, "t_rec": "2012-03-06T14:24:00Z", "record": "b"},
        {"harpnum": 7115, "t_rec": None, "record": "c"},
    ]
    by_rows = build_table_from_arrays(tmp_path / "rows", embeddings, rows, "enc")
    columns = {
        "harpnum": [377, 1449, 7115],
        "t_rec": ["2011-02-15T00:00:00", "2012-03-06T14:24:00", ""],
        "record": ["a", "b", "c"],
    }
    by_columns = build_table_from_arrays(tmp_path / "cols", embeddings, columns, "enc")
    assert json.dumps(by_rows.rows(range(3))) == json.dumps(by_columns.rows(range(3)))  # NaN-safe equality
    assert by_rows.rows([2])[0]["t_rec"] is None


def test_append_adds_a_part_and_keeps_old_rows(tmp_path):
    rng = np.random.default_rng(1)
    first = rng.normal(size=(5, 4)).astype(np.float32)
    second = rng.normal(size=(3, 4)).astype(np.float32)
    build_table_from_arrays(tmp_path / "t", first, _metadata(5), "enc")
    old_part = (tmp_path / "t" / "part-00000" / "embeddings.npy").read_bytes()
    table = append_rows(tmp_path / "t", second, _metadata(3, offset=100), "enc")
    assert table.num_rows == 8
    assert (tmp_path / "t" / "part-00000" / "embeddings.npy").read_bytes() == old_part
    np.testing.assert_array_equal(table.all_embeddings(), np.concatenate([first, second]))
    np.testing.assert_array_equal(table.embeddings([6, 1]), np.stack([second[1], first[1]]))
    assert [r["harpnum"] for r in table.rows([4, 5, 7])] == [5, 101, 103]
    np.testing.assert_array_equal(table.column("harpnum")[5:], [101, 102, 103])
    # Blocks follow row order, never span parts, and stop at num_rows.
    starts = [(start, len(block)) for start, block in table.embedding_blocks(2)]
    assert starts == [(0, 2), (2, 2), (4, 1), (5, 2), (7, 1)]
    assert [(s, len(b)) for s, b in table.embedding_blocks(4, num_rows=6)] == [(0, 4), (4, 1), (5, 1)]


def test_append_checks_fingerprint_dimension_and_columns(tmp_path):
    table_dir = tmp_path / "t"
    build_table_from_arrays(table_dir, np.ones((2, 4), np.float32), _metadata(2), "encoder-A")
    with pytest.raises(FingerprintMismatchError, match="encoder-A.*encoder-B"):
        append_rows(table_dir, np.ones((1, 4), np.float32), _metadata(1), "encoder-B")
    with pytest.raises(FingerprintMismatchError, match="encoder-A.*encoder-B"):
        open_table(table_dir, expected_fingerprint="encoder-B")
    with pytest.raises(ValueError, match="dimension 5"):
        append_rows(table_dir, np.ones((1, 5), np.float32), _metadata(1), "encoder-A")
    with pytest.raises(ValueError, match="not in the table's columns"):
        append_rows(table_dir, np.ones((1, 4), np.float32), {**_metadata(1), "colour": ["red"]}, "encoder-A")
    with pytest.raises(ValueError, match="lacks the table's columns"):
        append_rows(table_dir, np.ones((1, 4), np.float32), {"harpnum": [3]}, "encoder-A")
    with pytest.raises(FileExistsError):
        build_table_from_arrays(table_dir, np.ones((1, 4), np.float32), _metadata(1), "encoder-A")
    assert open_table(table_dir).num_rows == 2


@pytest.mark.parametrize(
    "embeddings, metadata, message",
    [
        (np.full((2, 3), np.nan), {}, "not finite"),
        (np.ones(3), {}, r"\[N, D\]"),
        (np.ones((2, 3)), {"harpnum": [1, 2, 3]}, "3 values for 2 rows"),
        (np.ones((2, 3)), {"harpnum": [1.5, 2]}, "integers"),
        (np.ones((2, 3)), {"bitmap": np.zeros((2, 4))}, "one value per row"),
        (np.ones((2, 3)), {"t_rec": ["yesterday", ""]}, "not an ISO 8601 time"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(tmp_path, embeddings, metadata, message):
    with pytest.raises(ValueError, match=message):
        build_table_from_arrays(tmp_path / "t", embeddings, metadata, "enc")


def test_corrupt_and_partial_tables_name_the_file(tmp_path):
    table_dir = tmp_path / "t"
    build_table_from_arrays(table_dir, np.ones((50, 8), np.float32), _metadata(50), "enc")
    embeddings_file = table_dir / "part-00000" / "embeddings.npy"
    embeddings_file.write_bytes(embeddings_file.read_bytes()[:-100])
    with pytest.raises(TableError, match="embeddings.npy.*truncated or corrupted"):
        open_table(table_dir)
    (table_dir / "part-00000" / "tuf.npy").unlink()
    embeddings_file.unlink()
    with pytest.raises(TableError, match="embeddings.npy: missing"):
        open_table(table_dir)
    (table_dir / "table.json").write_text('{"format": "solarjax.retrieval.tab')
    with pytest.raises(TableError, match="table.json: not valid JSON"):
        open_table(table_dir)
    with pytest.raises(TableError, match="table.json: missing"):
        open_table(tmp_path / "nowhere")


def test_a_part_left_by_a_crashed_append_is_ignored_then_replaced(tmp_path):
    table_dir = tmp_path / "t"
    build_table_from_arrays(table_dir, np.zeros((2, 3), np.float32), _metadata(2), "enc")
    (table_dir / "part-00001").mkdir()
    (table_dir / "part-00001" / "embeddings.npy").write_bytes(b"half a file")
    assert open_table(table_dir).num_rows == 2
    table = append_rows(table_dir, np.ones((1, 3), np.float32), _metadata(1), "enc")
    np.testing.assert_array_equal(table.embeddings([2]), np.ones((1, 3)))
    manifest = json.loads((table_dir / "table.json").read_text())
    assert [p["rows"] for p in manifest["parts"]] == [2, 1]


def test_time_parsing_of_every_accepted_form():
    expected = np.datetime64("2012-03-06T14:23:26", "s")
    for value in (
        "2012.03.06_14:24:00_TAI",
        "2012-03-06T14:23:26",
        "2012-03-06T14:23:26Z",
        "2012-03-06T14:23:26+00:00",
        "2012-03-06T15:23:26+01:00",
        datetime.datetime(2012, 3, 6, 14, 23, 26),
        b"2012-03-06T14:23:26",
        datetime.datetime(2012, 3, 6, 15, 23, 26, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
        np.datetime64("2012-03-06T14:23:26.000", "ms"),
    ):
        assert to_datetime64(value) == expected
    assert np.isnat(to_datetime64(None)) and np.isnat(to_datetime64(""))


class _CountingEncoder:
    """Random-projection encoder that counts how often XLA traces it (one trace = one compile)."""

    def __init__(self):
        self.inner = RandomProjectionEncoder(dim=16, seed=3)
        self.fingerprint = self.inner.fingerprint
        self.traces = 0
        self.embed = jax.jit(self._apply)

    def _apply(self, images):
        self.traces += 1
        return self.inner._apply(images)


def _real_patches(real_br_files, count):
    patches = [read_sharp(path) for path in real_br_files[:count]]
    images = np.stack([preprocess_patch(p).image for p in patches]).astype(np.float32)
    return patches, images


def test_embed_dataset_pads_batches_compiles_once_and_keeps_metadata(tmp_path, real_br_files):
    patches, images = _real_patches(real_br_files, 11)
    quantities = reference_quantities_batch(images)
    encoder = _CountingEncoder()

    def batches():
        for start in range(0, 11, 4):  # 4, 4, 3 rows: the last batch is padded to 4
            stop = min(start + 4, 11)
            yield {
                "image": images[start:stop, ..., None],
                "harpnum": np.array([p.meta["harpnum"] for p in patches[start:stop]]),
                "t_rec": np.array([p.meta["t_rec"].isoformat().encode() for p in patches[start:stop]], dtype=object),
                "source": np.array([b"fits"] * (stop - start), dtype=object),
                "bitmap": np.zeros((stop - start, 8, 8, 1)),  # not a per-row scalar: not stored
                **{name: quantities[name][start:stop] for name in QUANTITY_NAMES},
            }

    table = embed_dataset(
        tmp_path / "t", encoder.embed, encoder.fingerprint, batches(), dataset="sharp_patches/fits/train"
    )
    assert encoder.traces == 1
    direct = np.asarray(encoder.inner.embed(images[..., None]))
    np.testing.assert_allclose(table.all_embeddings(), direct, rtol=1e-5, atol=1e-6)
    rows = table.rows(range(11))
    assert [r["harpnum"] for r in rows] == [p.meta["harpnum"] for p in patches]
    assert [r["example_index"] for r in rows] == list(range(11))
    assert {r["dataset"] for r in rows} == {"sharp_patches/fits/train"} and {r["source"] for r in rows} == {"fits"}
    assert rows[0]["t_rec"] == patches[0].meta["t_rec"].replace(tzinfo=None).isoformat()
    np.testing.assert_allclose(table.column("psep"), quantities["psep"])
    assert "bitmap" not in table.columns

    # A second stream appends; a different encoder is refused before anything is written.
    table = embed_dataset(tmp_path / "t", encoder.embed, encoder.fingerprint, batches(), rows_per_part=4)
    assert table.num_rows == 22 and len(list(table.path.glob("part-*"))) == 4
    with pytest.raises(FingerprintMismatchError):
        embed_dataset(tmp_path / "t", encoder.embed, "another-encoder", batches())


def test_embed_images_matches_the_encoder_on_any_count():
    encoder = RandomProjectionEncoder(dim=8, seed=1)
    images = np.random.default_rng(2).uniform(-1, 1, size=(7, 128, 128)).astype(np.float32)
    direct = np.asarray(encoder.embed(jnp.asarray(images[..., None])))
    for batch_size in (1, 3, 8, 100):
        np.testing.assert_allclose(embed_images(encoder.embed, images, batch_size), direct, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        embed_images(encoder.embed, images[:, :, :, None, None])


def test_embed_dataset_computes_missing_physics_quantities(tmp_path, real_br_files):
    _, images = _real_patches(real_br_files, 6)
    encoder = RandomProjectionEncoder(dim=8, seed=4)
    batches = ({"image": images[start : start + 4]} for start in (0, 4))  # [4, H, W] then [2, H, W]
    table = embed_dataset(tmp_path / "t", encoder.embed, encoder.fingerprint, batches)
    expected = reference_quantities_batch(images)
    for name in QUANTITY_NAMES:
        np.testing.assert_allclose(table.column(name), expected[name], rtol=2e-4, atol=1e-5, err_msg=name)
    assert table.rows([5])[0]["harpnum"] == 0 and table.rows([5])[0]["example_index"] == 5
