"""Embedding a dataset across the hosts of a jax.distributed job, one table per host, merged into one.

Each process embeds a contiguous share of the dataset's batches on its own local devices
(`embed_host_share`: `table.embed_dataset`, batch axis sharded over ``jax.local_devices()``) into
``<out>/hosts/host-<i>-of-<P>``, with every row's ``example_index`` its position in the whole
split, and marks it done. The merge (`merge_host_tables`, run by process 0 once every share is
done, `wait_for_hosts`) checks that all shares carry the same encoder fingerprint, dataset and
columns, and appends them part by part in host order, so the merged table's rows are in dataset
order and equal those of a single-process build. Memory of the merge: one host part at a time.

    share = embed_host_share(out, encoder.embed, encoder.fingerprint, batches, num_batches=n,
                             process_index=jax.process_index(), process_count=jax.process_count())
    if jax.process_index() == 0:
        table = merge_host_tables(wait_for_hosts(out, jax.process_count()), out / "table")
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from solarjax.retrieval.table import (
    DEFAULT_DATASET,
    EmbedFn,
    Table,
    append_rows,
    build_table_from_arrays,
    check_fingerprint,
    embed_dataset,
    open_table,
)

HOSTS_DIR = "hosts"
DONE_FILE = "done.json"
"""Written into a host's share folder after its table is complete: {"rows", "batches"}."""


def initialize_distributed() -> tuple[int, int]:
    """Joins the jax.distributed job (cluster auto-detection: SLURM, Open MPI, Kubernetes, Cloud TPU);
    returns (process_index, process_count)."""
    import jax

    jax.distributed.initialize()
    return jax.process_index(), jax.process_count()


def host_share_dir(out_dir: str | os.PathLike, process_index: int, process_count: int) -> pathlib.Path:
    """``<out_dir>/hosts/host-<i>-of-<P>`` (5 digits each)."""
    return pathlib.Path(out_dir) / HOSTS_DIR / f"host-{process_index:05d}-of-{process_count:05d}"


def share_of_batches(num_batches: int, process_index: int, process_count: int) -> range:
    """The contiguous batch numbers of one process: P near-equal ranges, in process order."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in 0..{process_count - 1}")
    return range(process_index * num_batches // process_count, (process_index + 1) * num_batches // process_count)


def _numbered(batches: Iterable[Mapping[str, Any]], share: range) -> Iterator[Mapping[str, Any]]:
    """The batches of ``share`` with an 'example_index' column: each row's position in the whole stream."""
    position = 0
    for number, batch in enumerate(batches):
        rows = len(batch["image"])
        if number >= share.stop:
            return
        if number >= share.start:
            yield {**batch, "example_index": np.arange(position, position + rows)}
        position += rows


def embed_host_share(
    out_dir: str | os.PathLike,
    embed_fn: EmbedFn,
    fingerprint: str,
    batches: Iterable[Mapping[str, Any]],
    *,
    num_batches: int,
    process_index: int,
    process_count: int,
    dataset: str = "",
    dataset_name: str = DEFAULT_DATASET,
    rows_per_part: int = 100_000,
) -> pathlib.Path:
    """Embeds this process's share of ``batches`` into its own table and marks it done.

    Args:
      out_dir: the job's output folder (shared by all hosts, e.g. a network file system).
      embed_fn, fingerprint, dataset, dataset_name, rows_per_part: as `table.embed_dataset`.
      batches: the whole split's batches, in the same order on every process (each process reads
        the stream and embeds only its share; the batches before it are counted, not embedded).
      num_batches: batches in the stream (its length; ceil(rows / batch size)).
      process_index, process_count: this process and the job's processes (``jax.process_index()``,
        ``jax.process_count()``).

    Returns:
      The share's folder; it holds ``table/`` unless the share is empty, and `DONE_FILE`.
    """
    share = share_of_batches(num_batches, process_index, process_count)
    folder = host_share_dir(out_dir, process_index, process_count)
    (folder / DONE_FILE).unlink(missing_ok=True)
    shutil.rmtree(folder / "table", ignore_errors=True)  # left by an interrupted run: never appended to
    folder.mkdir(parents=True, exist_ok=True)
    rows = 0
    if len(share):
        table = embed_dataset(
            folder / "table",
            embed_fn,
            fingerprint,
            _numbered(batches, share),
            dataset=dataset,
            dataset_name=dataset_name,
            rows_per_part=rows_per_part,
            total_batches=len(share),
        )
        rows = table.num_rows
    (folder / DONE_FILE).write_text(json.dumps({"rows": rows, "batches": len(share)}))
    return folder


def wait_for_hosts(
    out_dir: str | os.PathLike, process_count: int, timeout_s: float = 24 * 3600.0, poll_s: float = 2.0
) -> list[pathlib.Path]:
    """The share folders of all ``process_count`` processes, in process order, once each is done.

    Raises:
      TimeoutError: some share is not done after ``timeout_s`` (the message names them).
    """
    folders = [host_share_dir(out_dir, i, process_count) for i in range(process_count)]
    deadline = time.monotonic() + timeout_s
    while True:
        pending = [folder for folder in folders if not (folder / DONE_FILE).exists()]
        if not pending:
            return folders
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(pending)} of {process_count} hosts did not finish their share within "
                f"{timeout_s:.0f} s: {', '.join(f.name for f in pending[:5])}"
            )
        time.sleep(poll_s)


def merge_host_tables(share_dirs: Iterable[str | os.PathLike], out_dir: str | os.PathLike) -> Table:
    """One table of the shares' tables, in the given order (process order: dataset order).

    Args:
      share_dirs: the folders `embed_host_share` wrote, each with `DONE_FILE`.
      out_dir: the merged table's folder (must not hold a table).

    Raises:
      FileNotFoundError: a share is not done; FingerprintMismatchError: shares of different
      encoders; ValueError: shares of different datasets or columns, overlapping example indices,
      or no rows at all.
    """
    tables: list[Table] = []
    for folder in map(pathlib.Path, share_dirs):
        if not (folder / DONE_FILE).exists():
            raise FileNotFoundError(f"{folder}: this host's share is not done ({DONE_FILE} missing)")
        if json.loads((folder / DONE_FILE).read_text())["rows"]:
            tables.append(open_table(folder / "table"))
    if not tables:
        raise ValueError("no host share holds any row")
    first = tables[0]
    for table in tables[1:]:
        check_fingerprint(f"host table {table.path}", first.fingerprint, table.fingerprint)
        if (table.dataset_name, table.dim, table.columns) != (first.dataset_name, first.dim, first.columns):
            raise ValueError(
                f"host table {table.path} holds {table.dataset_name} rows of dim {table.dim} with "
                f"columns {sorted(table.columns)}; {first.path} holds {first.dataset_name}, dim "
                f"{first.dim}, columns {sorted(first.columns)}"
            )
    last_index = -1
    out_dir = pathlib.Path(out_dir)
    merged = None
    for table in tables:
        indices = table.column("example_index")
        if len(indices) and (indices[0] <= last_index or np.any(np.diff(indices) <= 0)):
            raise ValueError(
                f"host table {table.path}: example indices overlap or are out of order "
                "(shares must be contiguous and in process order)"
            )
        last_index = int(indices[-1]) if len(indices) else last_index
        for start, embeddings in table.embedding_blocks(1 << 16):
            rows = slice(start, start + len(embeddings))
            columns = {name: table.column(name)[rows] for name in table.columns}
            if merged is None:
                merged = build_table_from_arrays(
                    out_dir, embeddings, columns, first.fingerprint, dataset_name=first.dataset_name
                )
            else:
                merged = append_rows(out_dir, embeddings, columns, first.fingerprint)
    return merged
