"""CPU time of one search per ranking mode on a saved index (what a loaded machine can still measure).

Wall-clock latency on a machine whose load far exceeds its cores measures the queue for the CPU,
not the search. This benchmark times single-query searches (k = 10, no filters) of each ranking
mode of `solarjax.retrieval.ranking` with the process's CPU time (all its threads) next to the wall
time: on an idle machine with at least as many cores as the search uses threads, wall time is at
most the CPU time. Queries are table rows' embeddings plus Gaussian jitter (`JITTER` x the
embeddings' standard deviation) with those rows' quantities.

Run: ``python -m benchmarks.search_cpu_bench --index-dir DIR/index [--queries 200]`` where DIR/index
holds ``index/``, ``table/`` and optionally ``ranking.json`` (e.g. a scaled work directory of
`benchmarks.app_load_bench` with 10^5 rows). Prints JSON.
"""

import argparse
import json
import os
import pathlib
import time

import numpy as np

JITTER = 0.05
MODES = ("ssl", "hybrid", "physics")


def run(index_dir: str | os.PathLike, num_queries: int = 200, seed: int = 0) -> dict:
    """{'rows', 'kind', 'modes': {mode: {'cpu_ms_p50', 'cpu_ms_p99', 'wall_ms_p50', 'wall_ms_p99'}}, load}."""
    from solarjax.retrieval import load_index
    from solarjax.retrieval import ranking as ranking_lib

    index_dir = pathlib.Path(index_dir)
    index = load_index(index_dir / "index")
    ranking = ranking_lib.load_ranking(index_dir)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, index.num_rows, size=num_queries)
    embeddings = index.table.embeddings(rows).astype(np.float32)
    embeddings += JITTER * float(embeddings.std()) * rng.normal(size=embeddings.shape).astype(np.float32)
    quantities = ranking_lib.table_values(index, ranking.quantities)[rows]
    load_before = os.getloadavg()[0] / len(os.sched_getaffinity(0))
    modes = {}
    for mode in MODES:
        chosen = ranking.with_rank(mode)
        ranking_lib.search(index, embeddings[:1], quantities[:1], 10, ranking=chosen)  # compile / caches
        cpu, wall = [], []
        for q in range(num_queries):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            hits = ranking_lib.search(index, embeddings[q : q + 1], quantities[q : q + 1], 10, ranking=chosen)
            cpu.append(time.process_time() - cpu_start)
            wall.append(time.perf_counter() - wall_start)
            if not hits[0]:
                raise RuntimeError(f"rank {mode}: query {q} returned nothing")
        cpu_ms, wall_ms = np.array(cpu) * 1e3, np.array(wall) * 1e3
        modes[mode] = {
            "cpu_ms_p50": round(float(np.percentile(cpu_ms, 50)), 2),
            "cpu_ms_p99": round(float(np.percentile(cpu_ms, 99)), 2),
            "wall_ms_p50": round(float(np.percentile(wall_ms, 50)), 2),
            "wall_ms_p99": round(float(np.percentile(wall_ms, 99)), 2),
        }
    load_after = os.getloadavg()[0] / len(os.sched_getaffinity(0))
    return {
        "rows": index.num_rows,
        "kind": index.kind,
        "queries": num_queries,
        "hybrid_candidates": ranking.candidates,
        "modes": modes,
        "load_per_core_before_after": [round(load_before, 2), round(load_after, 2)],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", required=True, help="directory holding index/, table/ (and ranking.json)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(run(args.index_dir, args.queries), indent=1))
