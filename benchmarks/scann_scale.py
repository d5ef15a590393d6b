"""Search at scale: ScaNN with 4-bit asymmetric hashing + exact re-ranking against NumPy brute force.

One run at N stored 512-d float32 vectors measures, on the same vectors and queries:

  * exact NumPy brute force (float32 BLAS ``|x|^2 - 2 q.x`` in query batches, argpartition): the
    reference, and the ground truth of recall;
  * ScaNN: a k-means tree (``num_leaves`` = 2 sqrt(N)) whose leaves are scored by 4-bit asymmetric
    hashing (AH, one 16-centre codebook per 2 dimensions: 256 4-bit codes per 512-d vector),
    returning ``rerank`` candidates; their exact distances are then computed from the float32
    vectors in a memory-mapped file (on disk; only the candidates' rows are read). ScaNN keeps no
    float or int8 copy of the vectors in memory (no ``reorder``).

Metric: 'cosine' by default (`solarjax index build --metric cosine`): rows scaled to unit length,
ScaNN on dot products, so AH codes the residual of each vector from its leaf's centre with
ScaNN's anisotropic loss. ScaNN quantises residuals for dot products only; with 'l2' AH codes the
vectors themselves and, on these vectors (95% of the variance on one axis), 4-bit codes lose the
neighbours (recall@10 <= 0.85 at 2 x 10^4 rows even with 400 re-ranked candidates).

Hyper-parameters (``leaves_to_search``, ``rerank``) are chosen on 1,000 validation queries as the
fastest setting whose recall@10 reaches the target; recall@10 is then reported on 1,000 separate
test queries with a bootstrap 95% interval over queries. Reported: queries/s of both (end to end:
ScaNN + exact re-ranking), the speed-up, bytes per vector (the serialised ScaNN index, i.e. what a
search holds in RAM, and the float32 file on disk), build time and the peak resident memory of the
build above what the process held before it (sampled every 50 ms).

Vectors (`spectrum_mixture`): not iid Gaussian. A Gaussian mixture of 2,000 clusters with
heavy-tailed (Pareto) sizes, whose covariance has the eigenvalue spectrum of the demo encoder's
embeddings: the eigenvalues of the 128-d SimSiam embeddings of the demo's 4,800 synthetic patches
(`DEMO_SPECTRUM`, measured once from the demo table and stored here) extended to 512 dimensions by
their power-law tail, 70% of the variance between clusters and 30% within; rotated by a fixed random
orthogonal matrix and shifted by a positive mean. Queries are fresh draws from the same mixture.

Run: ``python -m benchmarks.scann_scale --rows 1000000 --out scann_1e6.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import tempfile
import threading
import time

import numpy as np

DIM = 512
K = 10
QUERY_BATCH = 256
TARGET_RECALL = 0.95
# `demo_spectrum` of a demo run's index table: the 128-d SimSiam embeddings (width-16 encoder) of
# its 4,800 synthetic patches: leading eigenvalues as fractions of the total variance, then the
# power-law exponent of components 9-128. The first component (95%) is the overall feature scale.
DEMO_SPECTRUM_HEAD = (0.9545, 0.01659, 0.004292, 0.002954, 0.001621, 0.001282, 0.001134, 0.001019)
DEMO_SPECTRUM_TAIL_EXPONENT = -1.36


def spectrum(
    dim: int = DIM, head: tuple[float, ...] = DEMO_SPECTRUM_HEAD, tail_exponent: float = DEMO_SPECTRUM_TAIL_EXPONENT
) -> np.ndarray:
    """Eigenvalues [dim] summing to 1: `head`, then ``head[-1] * (i / len(head)) ** tail_exponent``."""
    values = np.empty(dim)
    values[: len(head)] = head
    index = np.arange(len(head), dim) + 1.0
    values[len(head) :] = head[-1] * (index / len(head)) ** tail_exponent
    return values / values.sum()


def demo_spectrum(embeddings: np.ndarray, head: int = 8) -> tuple[tuple[float, ...], float]:
    """(leading eigenvalue fractions, power-law exponent of the rest) of embeddings [N, D]."""
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(np.asarray(embeddings, np.float64).T)))[::-1]
    fractions = eigenvalues / eigenvalues.sum()
    tail = np.arange(head, len(fractions))
    positive = fractions[tail] > 0
    slope = np.polyfit(np.log(tail[positive] + 1.0), np.log(fractions[tail][positive]), 1)[0]
    return tuple(float(f) for f in fractions[:head]), float(slope)


class SpectrumMixture:
    """Draws rows of the benchmark's vector distribution (see the module docstring).

    Row i of `rows(start, count)` depends only on (seed, i // chunk_rows), so a table can be drawn
    in chunks and its held-out queries from another seed.
    """

    def __init__(
        self, dim: int = DIM, num_clusters: int = 2_000, between: float = 0.7, seed: int = 0, scale: float = 10.0
    ):
        structure = np.random.default_rng([seed, 0])
        self.dim = dim
        std = np.sqrt(spectrum(dim)) * scale
        self.between = std * np.sqrt(between)
        self.within = std * np.sqrt(1.0 - between)
        self.centres = structure.normal(size=(num_clusters, dim)) * self.between
        weights = structure.pareto(1.5, num_clusters) + 1.0
        self.weights = weights / weights.sum()
        self.rotation = np.linalg.qr(structure.normal(size=(dim, dim)))[0]
        self.mean = np.abs(structure.normal(size=dim)) * scale / np.sqrt(dim)

    def draw(self, count: int, seed) -> np.ndarray:
        """float32 [count, dim] rows drawn with `seed`."""
        rng = np.random.default_rng(seed)
        cluster = rng.choice(len(self.centres), size=count, p=self.weights)
        latent = self.centres[cluster] + rng.normal(size=(count, self.dim)) * self.within
        return (latent @ self.rotation + self.mean).astype(np.float32)


def spectrum_mixture(
    num_rows: int,
    *,
    seed: int = 0,
    chunk_rows: int = 65_536,
    out: np.ndarray | None = None,
    mixture: SpectrumMixture | None = None,
) -> np.ndarray:
    """float32 [num_rows, 512] table rows (chunk c drawn with seed [seed, 1, c]); into `out` if given."""
    mixture = mixture or SpectrumMixture(seed=seed)
    out = np.empty((num_rows, mixture.dim), np.float32) if out is None else out
    for chunk, start in enumerate(range(0, num_rows, chunk_rows)):
        count = min(chunk_rows, num_rows - start)
        out[start : start + count] = mixture.draw(count, seed=[seed, 1, chunk])
    return out


def exact_numpy_top_k(
    database: np.ndarray, queries: np.ndarray, k: int = K, squared_norms: np.ndarray | None = None
) -> np.ndarray:
    """Brute-force exact L2 top-k in NumPy: int64 [Q, k], nearest first."""
    if squared_norms is None:
        squared_norms = np.einsum("ij,ij->i", database, database)
    out = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), QUERY_BATCH):
        batch = queries[start : start + QUERY_BATCH]
        scores = squared_norms[None, :] - 2.0 * (batch @ database.T)
        part = np.argpartition(scores, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(scores, part, axis=1), axis=1)
        out[start : start + QUERY_BATCH] = np.take_along_axis(part, order, axis=1)
    return out


def recall_per_query(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Share of each query's true k neighbours found: float [Q]."""
    return np.array([len(set(a.tolist()) & set(b.tolist())) / len(b) for a, b in zip(found, truth)])


def bootstrap_interval(values: np.ndarray, resamples: int = 2_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of `values`."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


METRICS = ("cosine", "l2")


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32); on unit rows the L2 ranking is the cosine ranking."""
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def build_ah_searcher(
    database: np.ndarray, num_leaves: int, training_sample_size: int, metric: str = "cosine", dims_per_block: int = 2
):
    """ScaNN tree + 4-bit AH scoring, no in-memory re-ordering copy.

    'cosine' (database rows of unit length): dot product, AH of the residuals from each leaf's
    centre with anisotropic loss (threshold 0.2); 'l2': squared L2, AH of the vectors themselves
    (ScaNN quantises residuals for dot products only).
    """
    import scann

    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    measure, threshold = ("dot_product", 0.2) if metric == "cosine" else ("squared_l2", float("nan"))
    builder = scann.scann_ops_pybind.builder(database, K, measure)
    return (
        builder.tree(
            num_leaves=num_leaves,
            num_leaves_to_search=max(1, num_leaves // 100),
            training_sample_size=training_sample_size,
        )
        .score_ah(dims_per_block, anisotropic_quantization_threshold=threshold)
        .build()
    )


def ah_search(searcher, vectors: np.ndarray, queries: np.ndarray, leaves: int, rerank: int) -> np.ndarray:
    """ScaNN's `rerank` AH candidates per query, re-ranked by exact L2 on `vectors` (e.g. a memmap):
    int64 [Q, K]."""
    rows, _ = searcher.search_batched_parallel(queries, final_num_neighbors=rerank, leaves_to_search=leaves)
    rows = rows.astype(np.int64)
    flat = np.unique(rows)
    block = np.asarray(vectors[flat])  # one sorted read of the candidates' rows
    position = np.searchsorted(flat, rows)
    candidates = block[position]  # [Q, R, D]
    distances = np.einsum("qrd,qrd->qr", candidates, candidates) - 2.0 * np.einsum("qrd,qd->qr", candidates, queries)
    order = np.argsort(distances, axis=1)[:, :K]
    return np.take_along_axis(rows, order, axis=1)


class PeakMemory:
    """Peak resident set size (bytes) of this process while the context is open, sampled every 50 ms."""

    def __enter__(self):
        self.before = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _timed(function, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def run(
    num_rows: int = 1_000_000,
    num_queries: int = 1_000,
    seed: int = 0,
    workdir: str | None = None,
    leaves_grid: tuple[int, ...] | None = None,
    rerank_grid: tuple[int, ...] = (25, 50, 100, 200),
    target_recall: float = TARGET_RECALL,
    metric: str = "cosine",
) -> dict:
    """The benchmark at `num_rows` stored vectors (see the module docstring)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    prepare = unit_rows if metric == "cosine" else (lambda rows: rows)
    report: dict = {
        "rows": num_rows,
        "dim": DIM,
        "k": K,
        "seed": seed,
        "metric": metric,
        "target_recall_at_10": target_recall,
        "queries_validation": num_queries,
        "queries_test": num_queries,
        "cpu_threads": len(os.sched_getaffinity(0)),
        "data": "SpectrumMixture: 2,000-cluster Gaussian mixture (Pareto sizes) with the demo "
        "encoder embeddings' eigenvalue spectrum extended to 512-d, 70% of variance between "
        "clusters, rotated; queries drawn fresh from the same mixture",
    }
    with tempfile.TemporaryDirectory(prefix="scann_scale_", dir=workdir) as tmp:
        mixture = SpectrumMixture(seed=seed)
        started = time.perf_counter()
        path = pathlib.Path(tmp) / "vectors.f32"
        database = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(num_rows, DIM))
        spectrum_mixture(num_rows, seed=seed, out=database, mixture=mixture)
        for start in range(0, num_rows, 65_536):
            database[start : start + 65_536] = prepare(database[start : start + 65_536])
        database.flush()
        validation = prepare(mixture.draw(num_queries, seed=[seed, 2]))
        test = prepare(mixture.draw(num_queries, seed=[seed, 3]))
        report["generate_seconds"] = time.perf_counter() - started

        squared_norms = np.einsum("ij,ij->i", database, database)
        exact_numpy_top_k(database, test[:QUERY_BATCH], squared_norms=squared_norms)  # warm-up
        truth_test, exact_seconds = _timed(lambda: exact_numpy_top_k(database, test, squared_norms=squared_norms))
        truth_validation = exact_numpy_top_k(database, validation, squared_norms=squared_norms)
        report["exact_numpy_queries_per_s"] = num_queries / exact_seconds

        num_leaves = int(np.clip(round(2 * np.sqrt(num_rows)), 16, 100_000))
        training = min(num_rows, max(100_000, 50 * num_leaves))
        with PeakMemory() as memory:
            searcher, build_seconds = _timed(
                lambda: build_ah_searcher(np.asarray(database), num_leaves, training, metric)
            )
        report.update(
            num_leaves=num_leaves,
            training_sample_size=training,
            dims_per_block=2,
            bits_per_code=4,
            build_seconds=build_seconds,
            build_peak_rss_bytes_above_start=memory.peak - memory.before,
            rss_bytes_before_build=memory.before,
        )
        index_dir = pathlib.Path(tmp) / "scann"
        index_dir.mkdir()
        searcher.serialize(os.fspath(index_dir))
        index_bytes = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())
        report["index_bytes_per_vector"] = index_bytes / num_rows
        report["float32_file_bytes_per_vector"] = path.stat().st_size / num_rows
        report["index_bytes_per_vector_by_file"] = {
            p.name: p.stat().st_size / num_rows for p in sorted(index_dir.iterdir()) if p.is_file()
        }

        # hyper-parameters on validation queries: the fastest (leaves, rerank) reaching the target
        leaves_grid = leaves_grid or tuple(
            sorted({max(1, round(num_leaves * f)) for f in (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08)})
        )
        grid = []
        for leaves in leaves_grid:
            for rerank in rerank_grid:
                search = lambda: ah_search(searcher, database, validation, leaves, rerank)
                search()
                found, seconds = _timed(search, repeats=2)
                recall = float(recall_per_query(found, truth_validation).mean())
                grid.append(
                    {
                        "leaves_to_search": leaves,
                        "rerank": rerank,
                        "validation_recall_at_10": recall,
                        "validation_queries_per_s": num_queries / seconds,
                    }
                )
        report["validation_grid"] = grid
        reaching = [g for g in grid if g["validation_recall_at_10"] >= target_recall]
        chosen = (
            max(reaching, key=lambda g: g["validation_queries_per_s"])
            if reaching
            else max(grid, key=lambda g: g["validation_recall_at_10"])
        )
        report["chosen"] = {
            "leaves_to_search": chosen["leaves_to_search"],
            "rerank": chosen["rerank"],
            "reached_target_on_validation": bool(reaching),
        }

        search = lambda: ah_search(searcher, database, test, chosen["leaves_to_search"], chosen["rerank"])
        search()
        found, scann_seconds = _timed(search, repeats=3)
        per_query = recall_per_query(found, truth_test)
        report["test_recall_at_10"] = float(per_query.mean())
        report["test_recall_at_10_ci95"] = bootstrap_interval(per_query)
        report["scann_queries_per_s"] = num_queries / scann_seconds
        report["speedup_vs_exact_numpy"] = exact_seconds / scann_seconds
        report["process_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        report["total_seconds"] = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--metric", choices=METRICS, default="cosine")
    parser.add_argument("--workdir", default=None, help="where the temporary float32 file goes (default: $TMPDIR)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    report = run(args.rows, args.queries, args.seed, args.workdir, metric=args.metric)
    text = json.dumps(report, indent=1)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
