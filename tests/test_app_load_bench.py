"""The load benchmark's scaled work directory (`benchmarks.app_load_bench.scaled_workdir`) and the
server's regeneration of synthetic rows' images."""

import numpy as np
import pytest

from benchmarks import app_load_bench as bench
from solarjax.app import server

ADDED = 300


@pytest.fixture(scope="module")
def scaled(demo_workdir, tmp_path_factory):
    from solarjax.retrieval import open_table

    source = open_table(demo_workdir / "index" / "table")
    cache = tmp_path_factory.mktemp("scaled")
    out = bench.scaled_workdir(demo_workdir, source.num_rows + ADDED, cache, kind="exact")
    return source, open_table(out / "index" / "table"), out, cache


def test_scaled_table_keeps_the_source_rows_and_adds_synthetic_ones(scaled, demo_workdir):
    source, table, out, cache = scaled
    assert table.num_rows == source.num_rows + ADDED and table.columns == source.columns
    np.testing.assert_array_equal(table.embeddings(np.arange(source.num_rows)), source.all_embeddings())
    for name in source.columns:
        np.testing.assert_array_equal(table.column(name)[: source.num_rows], source.column(name))
    added = table.rows(np.arange(source.num_rows, table.num_rows))
    assert [row["record"] for row in added] == [
        f"synthetic[{bench.SYNTHETIC_SEED}][{bench.SYNTHETIC_START + i}]" for i in range(ADDED)
    ]
    assert {row["dataset"] for row in added} == {""} and {row["source"] for row in added} == {"synthetic"}
    manifest = (out / bench.SCALED_MANIFEST).stat().st_mtime_ns
    assert bench.scaled_workdir(demo_workdir, table.num_rows, cache, kind="exact") == out
    assert (out / bench.SCALED_MANIFEST).stat().st_mtime_ns == manifest  # reused, not rebuilt
    for name in bench.LINKED_ARTEFACTS:
        assert (out / name).resolve() == (demo_workdir / name).resolve()


def test_synthetic_rows_are_embedded_by_the_encoder_and_served_regenerated(scaled, demo_workdir):
    from solarjax import physics, ssl
    from solarjax.data import synthetic

    source, table, out, _ = scaled
    row = source.num_rows + 7
    patch = synthetic.generate(1, bench.SYNTHETIC_SEED, start=bench.SYNTHETIC_START + 7).images
    encoder = ssl.load(demo_workdir / "simsiam")
    np.testing.assert_allclose(
        np.asarray(encoder.embed(patch[..., None]))[0], table.embeddings([row])[0], rtol=1e-4, atol=1e-4
    )
    expected = physics.quantities(patch)
    stored = table.rows([row])[0]
    for name in ("tuf", "psep", "r_value"):
        assert stored[name] == pytest.approx(float(expected[name][0]), rel=1e-5, abs=1e-7)
    images = server.RowImages(table, out / "tfds")
    np.testing.assert_array_equal(images.image(row), patch[0][..., None])
    stored_example = images.image(0)  # a source row still comes from the TFDS split
    assert stored_example.shape == (128, 128, 1)
    assert physics.quantities(stored_example[None, ..., 0])["tuf"][0] == pytest.approx(table.column("tuf")[0], rel=1e-5)


def test_copies_fill_repeats_the_source_rows_with_jittered_embeddings(demo_workdir, tmp_path):
    from solarjax.retrieval import open_table

    source = open_table(demo_workdir / "index" / "table")
    n = source.num_rows
    out = bench.scaled_workdir(demo_workdir, 2 * n + 5, tmp_path, kind="exact", fill="copies")
    table = open_table(out / "index" / "table")
    assert table.num_rows == 2 * n + 5
    for name in source.columns:
        np.testing.assert_array_equal(table.column(name)[n : 2 * n], source.column(name))
        np.testing.assert_array_equal(table.column(name)[2 * n :], source.column(name)[:5])
    original = source.all_embeddings()
    jitter = table.embeddings(np.arange(n, 2 * n)) - original
    assert np.std(jitter) == pytest.approx(bench.COPY_JITTER * np.std(original), rel=0.1)
    if (demo_workdir / "index" / "ranking.json").is_file():  # the validation-chosen ranking travels along
        assert (out / "index" / "ranking.json").read_text() == (demo_workdir / "index" / "ranking.json").read_text()
    with pytest.raises(ValueError, match="fill must be one of"):
        bench.scaled_workdir(demo_workdir, 2 * n, tmp_path, fill="zeros")
