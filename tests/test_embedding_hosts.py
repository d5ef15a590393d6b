"""Embedding over 4 local devices, and over several hosts' shares merged, gives the one-device table."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import index_build_argv

from solarjax.retrieval import hosts
from solarjax.retrieval.table import FingerprintMismatchError, embed_dataset, open_table

REPO = pathlib.Path(__file__).resolve().parents[1]
ROWS, BATCH, SIDE, DIM = 150, 16, 16, 8  # 10 batches, the last one short


def make_batches():
    """The sharp_patches features of ROWS deterministic patches, in BATCH-row batches."""
    rng = np.random.default_rng(7)
    images = rng.uniform(-1, 1, (ROWS, SIDE, SIDE, 1)).astype(np.float32)
    harpnum = rng.integers(1, 9000, ROWS)
    t_rec = [f"2012-03-{1 + i % 28:02d}T{i % 24:02d}:00:00" for i in range(ROWS)]
    return [
        {
            "image": images[s : s + BATCH],
            "harpnum": harpnum[s : s + BATCH],
            "t_rec": np.array(t_rec[s : s + BATCH]),
            "usflux": images[s : s + BATCH].sum(axis=(1, 2, 3)).astype(np.float64),
        }
        for s in range(0, ROWS, BATCH)
    ]


def make_encoder(devices_seen: list):
    """A jitted encoder: tanh of a fixed projection of the flattened image; records each input's devices."""
    weights = jnp.asarray(np.random.default_rng(3).normal(size=(SIDE * SIDE, DIM)).astype(np.float32) / SIDE)
    project = jax.jit(lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ weights))

    def embed(images):
        devices_seen.append(len(images.sharding.device_set))
        return project(images)

    return embed


_ONE_DEVICE = """
import sys
sys.path.insert(0, {tests!r})
import jax
from test_embedding_hosts import make_batches, make_encoder
from solarjax.retrieval.table import embed_dataset
assert jax.local_device_count() == 1, jax.local_devices()
embed_dataset({out!r}, make_encoder([]), "enc-1", make_batches(), dataset="toy", rows_per_part=64)
"""


@pytest.fixture(scope="module")
def one_device_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "table"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
    subprocess.run(
        [sys.executable, "-c", _ONE_DEVICE.format(tests=str(REPO / "tests"), out=str(out))],
        check=True,
        env=env,
        cwd=REPO,
    )
    return open_table(out)


def assert_same_table(table, reference):
    assert table.num_rows == reference.num_rows == ROWS
    assert table.fingerprint == reference.fingerprint and table.columns == reference.columns
    np.testing.assert_allclose(table.all_embeddings(), reference.all_embeddings(), rtol=1e-6, atol=1e-6)
    for name in reference.columns:
        np.testing.assert_array_equal(table.column(name), reference.column(name), err_msg=name)
    np.testing.assert_array_equal(table.column("example_index"), np.arange(ROWS))


def test_four_local_devices_give_the_one_device_table(one_device_table, tmp_path):
    assert jax.local_device_count() == 4  # conftest's XLA_FLAGS
    seen = []
    table = embed_dataset(
        tmp_path / "table", make_encoder(seen), "enc-1", make_batches(), dataset="toy", rows_per_part=64
    )
    assert seen and set(seen) == {4}  # every batch was sharded over the 4 devices
    assert_same_table(table, one_device_table)


@pytest.mark.parametrize("process_count", [3, 12])  # 12 hosts for 10 batches: two empty shares
def test_host_shares_merge_into_the_one_device_table(one_device_table, tmp_path, process_count):
    encoder = make_encoder([])
    for process_index in reversed(range(process_count)):  # finishing order must not matter
        hosts.embed_host_share(
            tmp_path,
            encoder,
            "enc-1",
            make_batches(),
            num_batches=10,
            process_index=process_index,
            process_count=process_count,
            dataset="toy",
            rows_per_part=32,
        )
    shares = hosts.wait_for_hosts(tmp_path, process_count, timeout_s=1)
    rows = [json.loads((share / hosts.DONE_FILE).read_text())["rows"] for share in shares]
    assert sum(rows) == ROWS and rows.count(0) == max(0, process_count - 10)
    table = hosts.merge_host_tables(shares, tmp_path / "table")
    assert_same_table(table, one_device_table)


def test_share_of_batches_partitions_the_stream():
    for count, processes in ((10, 3), (10, 12), (1, 1), (7, 7)):
        shares = [hosts.share_of_batches(count, i, processes) for i in range(processes)]
        assert [n for share in shares for n in share] == list(range(count))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    with pytest.raises(ValueError):
        hosts.share_of_batches(10, 3, 3)


def test_merge_refuses_unfinished_and_foreign_shares(tmp_path):
    batches = make_batches()
    for index, fingerprint in ((0, "enc-1"), (1, "enc-2")):
        hosts.embed_host_share(
            tmp_path, make_encoder([]), fingerprint, batches, num_batches=10, process_index=index, process_count=2
        )
    shares = hosts.wait_for_hosts(tmp_path, 2, timeout_s=1)
    with pytest.raises(FingerprintMismatchError):
        hosts.merge_host_tables(shares, tmp_path / "merged")
    (shares[1] / hosts.DONE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="not done"):
        hosts.merge_host_tables(shares, tmp_path / "merged2")
    with pytest.raises(TimeoutError, match="1 of 2 hosts"):
        hosts.wait_for_hosts(tmp_path, 2, timeout_s=0.2, poll_s=0.05)


def test_cli_multihost_index_build_equals_the_demo_table(demo_workdir, tmp_path, monkeypatch, capsys):
    """Two hosts of `index build --multihost` (jax.distributed stood in for: each call is one process)."""
    from solarjax import cli

    out = tmp_path / "index"
    argv = index_build_argv(demo_workdir, out, "--multihost")
    monkeypatch.setattr(hosts, "initialize_distributed", lambda: (1, 2))
    assert cli.main(argv) == 0
    assert "host 1 of 2: share embedded" in capsys.readouterr().out and not out.exists()
    monkeypatch.setattr(hosts, "initialize_distributed", lambda: (0, 2))
    assert cli.main(argv) == 0
    assert "800 rows" in capsys.readouterr().out
    assert not (tmp_path / ".index.hosts").exists()
    table, reference = open_table(out / "table"), open_table(demo_workdir / "index" / "table")
    assert table.num_rows == reference.num_rows == 800 and table.fingerprint == reference.fingerprint
    assert table.columns.items() <= reference.columns.items()  # the demo's table also keeps synthetic truth
    np.testing.assert_allclose(table.all_embeddings(), reference.all_embeddings(), rtol=1e-4, atol=1e-5)
    for name in table.columns:
        np.testing.assert_array_equal(table.column(name), reference.column(name), err_msg=name)
