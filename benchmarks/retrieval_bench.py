"""Benchmark `retrieval.scann`: ScaNN search at recall@10 >= 0.95 against exact NumPy brute force.

For each table size (10^5 and 10^6 stored 512-d float32 embeddings) the run

  1. generates synthetic clustered embeddings (`clustered_embeddings`: a Gaussian mixture with
     heavy-tailed cluster sizes in a 32-d latent space, mapped to 512-d by a fixed random linear
     map and a ReLU, like the pooled features of a ResNet) and 1,000 held-out queries from the
     same distribution; they stand in for SimSiam embeddings of real patches;
  2. times exact brute force in NumPy (float32 BLAS matmul ``|x|^2 - 2 q.x`` in query batches of
     256, ``argpartition`` + sort of the top 10): the reference;
  3. writes the embeddings as a `solarjax.retrieval` table and times `ScannIndex.build` (tree +
     asymmetric hashing + int8 re-ordering, ``leaves_to_search`` calibrated to recall 0.95 on
     table rows); if the held-out queries' recall@10 is below 0.95, ``leaves_to_search`` grows
     by 1.5x until it is not;
  4. times ScaNN alone (``ScannIndex.candidates``: 2k candidates per query, batched over threads)
     and the whole `Index.search` (exact float re-ranking from the memory-mapped table, results
     with metadata), both warmed up on the same query batch first;
  5. reports queries/s, the speed-ups over brute force, recall@10 of `Index.search`, build time,
     and bytes per stored vector of the saved index (ScaNN files) and of the table.

Run: ``python -m benchmarks.retrieval_bench [--sizes 100000 1000000]`` (prints JSON); the
harness ``python -m benchmarks.run retrieval.scann`` calls `run`. 10^6 needs about 6 GB of RAM
and a few minutes of build on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.scann_scale import exact_numpy_top_k
from solarjax.retrieval import ScannIndex, build_table_from_arrays

DIM = 512
NUM_QUERIES = 1_000
K = 10
TARGET_RECALL = 0.95


def clustered_embeddings(
    num_rows: int,
    dim: int = DIM,
    *,
    seed: int = 0,
    latent_dim: int = 32,
    num_clusters: int = 256,
    chunk_rows: int = 65_536,
) -> np.ndarray:
    """Synthetic embeddings with the structure of real encoder features.

    Clusters of very different sizes (Pareto weights) in a ``latent_dim`` space, mapped to
    ``dim`` by a fixed random linear map with bias and a ReLU (non-negative, partly sparse, like
    pooled ResNet features). Row i depends only on (seed, i // chunk_rows), so the rows of a large
    table can be generated in chunks.

    Returns:
      float32 [num_rows, dim].
    """
    structure = np.random.default_rng([seed, 0])
    centres = structure.normal(scale=2.0, size=(num_clusters, latent_dim))
    weights = structure.pareto(1.5, num_clusters) + 1.0
    weights /= weights.sum()
    projection = structure.normal(size=(latent_dim, dim)) / np.sqrt(latent_dim)
    bias = structure.normal(scale=0.5, size=dim)
    out = np.empty((num_rows, dim), np.float32)
    for chunk, start in enumerate(range(0, num_rows, chunk_rows)):
        rows = min(chunk_rows, num_rows - start)
        draw = np.random.default_rng([seed, 1, chunk])
        latent = centres[draw.choice(num_clusters, size=rows, p=weights)] + draw.normal(size=(rows, latent_dim))
        out[start : start + rows] = np.maximum(latent @ projection + bias, 0.0)
    return out


class RandomProjectionEncoder:
    """A fixed random-feature encoder: 4x4 average pooling, then a Gaussian random projection.

    embed(images [N, 128, 128, 1]) -> [N, dim] = pooled pixels [N, 1024] @ W / sqrt(1024), with W
    ~ N(0, 1) drawn from ``seed``: Euclidean distances between embeddings approximate those
    between pooled images (Johnson-Lindenstrauss). It stands in for a trained encoder in tests
    and benchmarks; ``fingerprint`` names its parameters.
    """

    def __init__(self, dim: int = DIM, seed: int = 0, pool: int = 4, size: int = 128):
        self.pool = pool
        pooled_pixels = (size // pool) ** 2
        self.weights = jax.random.normal(jax.random.key(seed), (pooled_pixels, dim)) / np.sqrt(pooled_pixels)
        self.fingerprint = f"random-projection-d{dim}-s{seed}-p{pool}-n{size}"
        self._embed = jax.jit(self._apply)

    def _apply(self, images):
        n, height, width, _ = images.shape
        pooled = images.reshape(n, height // self.pool, self.pool, width // self.pool, self.pool).mean(axis=(2, 4))
        return pooled.reshape(n, -1) @ self.weights

    def embed(self, images):
        return self._embed(jnp.asarray(images, jnp.float32))


def _timed(function, *args, repeats: int = 1):
    """(result of the last call, best wall time in s over ``repeats`` calls)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return result, best


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def bench_size(num_rows: int, workdir: pathlib.Path, seed: int = 0) -> dict:
    """Figures for one table size (see the module docstring)."""
    data = clustered_embeddings(num_rows + NUM_QUERIES, seed=seed)
    database, queries = data[:num_rows], data[num_rows:]
    del data
    truth, exact_seconds = _timed(exact_numpy_top_k, database, queries)

    table = build_table_from_arrays(
        workdir / f"table_{num_rows}", database, {"example_index": np.arange(num_rows)}, "clustered-synthetic"
    )
    del database
    index, build_seconds = _timed(lambda: ScannIndex.build(table, "l2", target_recall=TARGET_RECALL, seed=seed))
    calibrated = index.params
    while True:
        search = lambda: [[hit.row for hit in hits] for hits in index.search(queries, K)]
        search()  # warm-up on the timed shape
        found, search_seconds = _timed(search, repeats=2)
        recall = _recall(np.array(found), truth)
        if recall >= TARGET_RECALL or index.params.leaves_to_search >= index.params.num_leaves:
            break
        leaves = min(index.params.num_leaves, math.ceil(index.params.leaves_to_search * 1.5))
        index.params = dataclasses.replace(index.params, leaves_to_search=leaves)
    index.candidates(queries, 2 * K)
    _, scann_seconds = _timed(index.candidates, queries, 2 * K, repeats=3)

    index_dir = index.save(workdir / f"index_{num_rows}")
    index_bytes = sum(path.stat().st_size for path in index_dir.rglob("*") if path.is_file())
    table_bytes = sum(path.stat().st_size for path in table.path.rglob("*") if path.is_file())
    return {
        "rows": num_rows,
        "dim": DIM,
        "queries": NUM_QUERIES,
        "k": K,
        "exact_numpy_queries_per_s": NUM_QUERIES / exact_seconds,
        "scann_candidates_queries_per_s": NUM_QUERIES / scann_seconds,
        "index_search_queries_per_s": NUM_QUERIES / search_seconds,
        "speedup_scann_vs_exact": exact_seconds / scann_seconds,
        "speedup_search_vs_exact": exact_seconds / search_seconds,
        "recall_at_10_heldout": recall,
        "recall_at_10_calibration": calibrated.calibrated_recall,
        "scann_params": dataclasses.asdict(index.params),
        "build_seconds": build_seconds,
        "index_bytes_per_vector": index_bytes / num_rows,
        "table_bytes_per_vector": table_bytes / num_rows,
    }


def run(sizes: tuple[int, ...] = (100_000, 1_000_000), seed: int = 0) -> dict:
    """The benchmark: {'data': description, 'sizes': [figures per size]} (see module docstring)."""
    with tempfile.TemporaryDirectory(prefix="retrieval_bench_") as workdir:
        results = [bench_size(n, pathlib.Path(workdir), seed) for n in sizes]
    return {
        "data": "synthetic clustered 512-d embeddings (ReLU of a random map of a 32-d Gaussian mixture), "
        "1,000 held-out queries; not SimSiam embeddings",
        "target_recall_at_10": TARGET_RECALL,
        "sizes": results,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    print(json.dumps(run(tuple(parser.parse_args().sizes)), indent=1))
