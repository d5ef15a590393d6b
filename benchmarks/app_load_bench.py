"""Load benchmark of the web application: concurrent searches over loopback for a fixed time.

Starts `solarjax.app.create_app(workdir)` under uvicorn on 127.0.0.1 (a free port), then
`concurrency` client threads send POST /api/search/generated (random seed and slider values,
k = 10) back to back for `duration_s` seconds. Reports requests/s, p50/p99 latency of the
successful requests, 503s (the bounded queue shedding load) and other errors.

Index size. ``--rows N`` serves a table of N rows made by `scaled_workdir` (once; cached under
``--cache``): the work directory's own table, then further synthetic active regions
(`solarjax.data.synthetic`, set `SYNTHETIC_SEED`, indices from `SYNTHETIC_START` on, beyond any
`sharp_patches` build) embedded with the work directory's own encoder, with their physics
quantities and ground truth as the `sharp_patches` builder records them. Their images are not in
the TFDS data; the server regenerates a synthetic record's patch from its seed and index. The
index over the table is ScaNN (`INDEX_KIND`). ``--fill copies`` grows the table instead with copies
of its own rows (embedding plus Gaussian jitter of `COPY_JITTER` x the embeddings' standard
deviation, metadata and quantities copied, images served from the copied row's TFDS example): no
encoder work, for timing the app's search path at 10^5 rows on a machine that cannot embed 10^5
new patches in reasonable time; the results' content then repeats the source table.

Flow. ``--flow cold`` (default): every search is of a new slider state. ``--flow after-generate``: each
search follows the POST /api/generate of its state, as on the page (sliders moved, patch shown, then
search), and reuses the generated query; the generate's own latency is reported apart. Each stage's
time comes from the responses' Server-Timing header (steer, embed, quantities, search, payload).

Ranking. ``--rank ssl|hybrid|physics`` sends that mode with every request (default: the mode the
work directory's ``index/ranking.json`` chose on validation, carried into the scaled directory).

Load. The 1-minute load average per core is recorded before and after; a run is flagged ``loaded``
when either exceeds `LOADED_PER_CORE` (its latencies then include waiting for other processes'
CPU and are not idle figures).

Run: ``python -m benchmarks.app_load_bench --workdir demo_out [--rows 100000] [--rank hybrid]``
(prints JSON); the harness calls `run`. Target: zero errors, p99 < 200 ms for a 10^5-row index.
"""

import argparse
import http.client
import itertools
import json
import os
import pathlib
import socket
import threading
import time
from collections.abc import Sequence

import numpy as np

LINKED_ARTEFACTS = ("gan", "directions", "simsiam", "tfds")
"""Work directory entries a scaled work directory shares with its source (symlinked)."""

SYNTHETIC_SEED = 23
SYNTHETIC_START = 1_000_000
"""The synthetic set (the `sharp_patches` default) and the first index of the added patches."""

INDEX_KIND = "scann"
BATCH = 256
SCALED_MANIFEST = "scaled.json"
DEFAULT_CACHE = pathlib.Path("/tmp/solarjax-app-bench")
FILLS = ("synthetic", "copies")
COPY_JITTER = 0.05
LOADED_PER_CORE = 0.5
"""1-minute load average per core above which a run is flagged ``loaded``."""


def _synthetic_rows(count: int, extra_columns: list[str], embed) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Embeddings [count, D] and table columns of synthetic patches SYNTHETIC_START, ...

    Args:
      count: patches to add.
      extra_columns: the table's non-core columns; each must be a `truth_<name>` scalar.
      embed: the encoder's ``embed``.
    """
    from solarjax import physics
    from solarjax.data import synthetic
    from solarjax.retrieval import embed_images

    embeddings, columns = [], {}
    for start in range(SYNTHETIC_START, SYNTHETIC_START + count, BATCH):
        batch = synthetic.generate(min(BATCH, SYNTHETIC_START + count - start), SYNTHETIC_SEED, start=start)
        size = len(batch)
        padded = np.zeros((BATCH,) + batch.images.shape[1:], np.float32)
        padded[:size] = batch.images
        values = {name: np.asarray(value)[:size] for name, value in physics.quantities(padded).items()}
        values.update(
            {
                "dataset": np.full(size, b""),
                "example_index": np.full(size, -1),
                "harpnum": np.full(size, -1),
                "noaa_ar": np.zeros(size, np.int64),
                "t_rec": np.full(size, np.datetime64("NaT", "s")),
                "lat_deg": batch.truth["latitude_deg"].astype(np.float64),
                "lon_deg": np.full(size, np.nan),
                "source": np.full(size, b"synthetic"),
                "record": np.array([f"synthetic[{SYNTHETIC_SEED}][{i}]".encode() for i in range(start, start + size)]),
            }
        )
        for name in extra_columns:
            if not name.startswith("truth_") or name[6:] not in batch.truth:
                raise ValueError(f"table column {name!r} is not a synthetic ground-truth scalar")
            values[name] = np.asarray(batch.truth[name[6:]])
        embeddings.append(embed_images(embed, batch.images, BATCH))
        for name, value in values.items():
            columns.setdefault(name, []).append(value)
    return np.concatenate(embeddings), {name: np.concatenate(parts) for name, parts in columns.items()}


def _copied_rows(source, count: int, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Embeddings [count, D] and columns of `count` copies of `source`'s rows (row i copies row
    i mod N), embeddings jittered by `COPY_JITTER` x their standard deviation."""
    embeddings = source.all_embeddings()
    picks = np.arange(count) % source.num_rows
    jitter = np.random.default_rng(seed).normal(size=(count, embeddings.shape[1])).astype(np.float32)
    copied = embeddings[picks] + COPY_JITTER * float(embeddings.std()) * jitter
    return copied, {name: source.column(name)[picks] for name in source.columns}


def scaled_workdir(
    workdir: str | os.PathLike,
    rows: int,
    cache_dir: str | os.PathLike | None = None,
    kind: str = INDEX_KIND,
    fill: str = "synthetic",
) -> pathlib.Path:
    """A work directory whose index holds `rows` rows: `workdir`'s table and synthetic patches (or
    copies of its rows, ``fill='copies'``; see the module docstring), indexed by an index of
    ``kind``; built once and reused while its manifest matches (source table, encoder, rows, kind, fill).

    Returns:
      DIR with DIR/{gan,directions,simsiam,tfds} linked to `workdir`'s and DIR/index/{table,index}.
    """
    import shutil

    from solarjax import ssl
    from solarjax.retrieval import CORE_COLUMNS, append_rows, build_index, build_table_from_arrays, open_table

    workdir = pathlib.Path(workdir).resolve()
    source = open_table(workdir / "index" / "table")
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    key = {
        "source": str(workdir),
        "table_id": source.table_id,
        "fingerprint": source.fingerprint,
        "rows": rows,
        "synthetic": [SYNTHETIC_SEED, SYNTHETIC_START],
        "kind": kind,
    }
    if fill != "synthetic":
        key["fill"] = fill
    suffix = "" if fill == "synthetic" else f"-{fill}"
    out = pathlib.Path(cache_dir or DEFAULT_CACHE) / f"rows-{rows}-{source.fingerprint}-{kind}{suffix}"
    manifest = out / SCALED_MANIFEST
    if manifest.is_file() and json.loads(manifest.read_text()) == key:
        return out
    if rows <= source.num_rows:
        raise ValueError(f"--rows {rows}: the table {source.path} already has {source.num_rows} rows")
    encoder = ssl.load(workdir / "simsiam")
    if encoder.fingerprint != source.fingerprint:
        raise ValueError(
            f"{workdir}: its table was embedded by encoder {source.fingerprint}, "
            f"its SimSiam run is {encoder.fingerprint}"
        )
    if out.exists():
        shutil.rmtree(out)
    (out / "index").mkdir(parents=True)
    for name in LINKED_ARTEFACTS:
        (out / name).symlink_to(workdir / name)
    table_dir = out / "index" / "table"
    build_table_from_arrays(
        table_dir, source.all_embeddings(), {name: source.column(name) for name in source.columns}, encoder.fingerprint
    )
    extra = [name for name in source.columns if name not in CORE_COLUMNS]
    if fill == "copies":
        embeddings, columns = _copied_rows(source, rows - source.num_rows)
    else:
        embeddings, columns = _synthetic_rows(rows - source.num_rows, extra, encoder.embed)
    table = append_rows(table_dir, embeddings, columns, encoder.fingerprint)
    build_index(table, kind=kind).save(out / "index" / "index")
    ranking_file = workdir / "index" / "ranking.json"  # the validation-chosen ranking, same table quantities
    if ranking_file.is_file():
        shutil.copyfile(ranking_file, out / "index" / "ranking.json")
    manifest.write_text(json.dumps(key, indent=1))
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


FLOWS = ("cold", "after-generate")
"""'cold': every search is of a slider state never generated before (the server steers, embeds and
searches). 'after-generate': as the page does, the client first generates the slider state's patch
(POST /api/generate, timed apart) and then searches it (the server reuses the generated query)."""


def server_timing(header: str | None) -> dict[str, float]:
    """Stage -> ms of a Server-Timing header (``steer;dur=250.1, search;dur=4.2``)."""
    stages = {}
    for part in (header or "").split(","):
        name, _, parameters = part.strip().partition(";")
        for parameter in parameters.split(";"):
            key, _, value = parameter.strip().partition("=")
            if name and key == "dur":
                stages[name] = float(value)
    return stages


def _post(connection, port: int, path: str, body: str):
    """(status, seconds, Server-Timing stages, connection): -1 on a connection failure (reconnected)."""
    started = time.perf_counter()
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        status, stages = response.status, server_timing(response.getheader("Server-Timing"))
    except (OSError, http.client.HTTPException):
        status, stages = -1, {}
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return status, time.perf_counter() - started, stages, connection


def _client(
    port: int,
    deadline: float,
    seed: int,
    latencies: list,
    statuses: list,
    rank: str | None = None,
    flow: str = "cold",
    stages: list | None = None,
    generate_latencies: list | None = None,
) -> None:
    rng = np.random.default_rng(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    filters = {"k": 10} if rank is None else {"k": 10, "rank": rank}
    while time.perf_counter() < deadline:
        state = {
            "seed": int(rng.integers(0, 2**31 - 1)),
            "sliders": {"tuf": float(rng.uniform(-2, 2)), "psep": float(rng.uniform(-2, 2))},
        }
        if flow == "after-generate":
            status, seconds, _, connection = _post(connection, port, "/api/generate", json.dumps(state))
            if generate_latencies is not None and status == 200:
                generate_latencies.append(seconds)
        status, seconds, timing, connection = _post(
            connection, port, "/api/search/generated", json.dumps({**state, "filters": filters})
        )
        latencies.append(seconds)
        statuses.append(status)
        if stages is not None and status == 200:
            stages.append(timing)
    connection.close()


def _stage_figures(stages: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per stage: share of requests that ran it and p50 / p99 ms over those."""
    names = list(dict.fromkeys(name for timing in stages for name in timing))
    figures = {}
    for name in names:
        values = np.array([timing[name] for timing in stages if name in timing])
        figures[name] = {
            "fraction": round(len(values) / len(stages), 3),
            "p50_ms": round(float(np.percentile(values, 50)), 2),
            "p99_ms": round(float(np.percentile(values, 99)), 2),
        }
    return figures


def load_per_core() -> float:
    """1-minute load average divided by the CPUs this process may use."""
    return os.getloadavg()[0] / len(os.sched_getaffinity(0))


def _measure(
    port: int, concurrency: int, duration_s: float, rank: str | None, flow: str = "cold", seed: int = 1000
) -> dict:
    """Latency and status figures of `concurrency` clients for `duration_s` against a running server
    (client i draws its slider states from seed + i; give each measurement its own seeds, so that a
    cold search never meets a state an earlier measurement generated)."""
    _client(port, time.perf_counter() + 2.0, seed - 1, [], [], rank, flow)  # warm connection paths (and this mode)
    latencies: list[float] = []
    statuses: list[int] = []
    stages: list[dict[str, float]] = []
    generate_latencies: list[float] = []
    deadline = time.perf_counter() + duration_s
    clients = [
        threading.Thread(
            target=_client,
            args=(port, deadline, seed + i, latencies, statuses, rank, flow, stages, generate_latencies),
        )
        for i in range(concurrency)
    ]
    load_before = load_per_core()
    started = time.perf_counter()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    elapsed = time.perf_counter() - started
    load_after = load_per_core()
    statuses_array = np.array(statuses)
    ok = np.array(latencies)[statuses_array == 200] * 1e3
    generated = np.array(generate_latencies) * 1e3
    return {
        "flow": flow,
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "requests": len(statuses),
        "requests_per_second": round(int((statuses_array == 200).sum()) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ok, 50)), 1) if len(ok) else None,
        "p99_ms": round(float(np.percentile(ok, 99)), 1) if len(ok) else None,
        "rejected_503": int((statuses_array == 503).sum()),
        "errors": int(((statuses_array != 200) & (statuses_array != 503)).sum()),
        "stages": _stage_figures(stages),
        "generate_p50_p99_ms": (
            [round(float(np.percentile(generated, q)), 1) for q in (50, 99)] if len(generated) else None
        ),
        "load_per_core_before_after": [round(load_before, 2), round(load_after, 2)],
        "loaded": bool(max(load_before, load_after) > LOADED_PER_CORE),
    }


def run_modes(
    workdir: str | None = None,
    ranks: tuple[str | None, ...] = (None,),
    concurrency: int = 4,
    duration_s: float = 20.0,
    rows: int | None = None,
    cache_dir: str | None = None,
    fill: str = "synthetic",
    flow: str | Sequence[str] = "cold",
) -> list[dict]:
    """`run`'s figures for each ranking mode in `ranks` (None: the work directory's default) and each
    flow (`FLOWS`), one server for all of them, measured one after the other."""
    import uvicorn

    from solarjax.app import create_app

    workdir = workdir or os.environ.get("SOLARJAX_APP_WORKDIR", "demo_out")
    if rows is not None:
        workdir = scaled_workdir(workdir, rows, cache_dir, fill=fill)
    app = create_app(workdir)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    results = []
    flows = (flow,) if isinstance(flow, str) else tuple(flow)
    try:
        for number, (flow, rank) in enumerate(itertools.product(flows, ranks)):
            results.append(
                {
                    "workdir": str(workdir),
                    "index_rows": app.state.engine.index.num_rows,
                    "index_kind": app.state.engine.index.kind,
                    "fill": fill if rows is not None else None,
                    "rank": rank or app.state.engine.ranking.rank,
                    **_measure(port, concurrency, duration_s, rank, flow, seed=1000 * (number + 1)),
                }
            )
    finally:
        server.should_exit = True
        thread.join(10)
    return results


def run(
    workdir: str | None = None,
    concurrency: int = 4,
    duration_s: float = 20.0,
    rows: int | None = None,
    cache_dir: str | None = None,
    rank: str | None = None,
    fill: str = "synthetic",
    flow: str = "cold",
) -> dict:
    """Requests/s, latency percentiles (ms) and error counts of concurrent generated-query searches
    (`rows`: serve a table of that many rows made by `scaled_workdir`; `rank`: the ranking mode of
    every request, None for the work directory's default)."""
    return run_modes(workdir, (rank,), concurrency, duration_s, rows, cache_dir, fill, flow)[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rows", type=int, help="serve a table of this many rows (built once by scaled_workdir)")
    parser.add_argument("--cache", help=f"where scaled work directories are kept (default {DEFAULT_CACHE})")
    parser.add_argument(
        "--rank",
        choices=("ssl", "hybrid", "physics"),
        nargs="+",
        help="ranking modes, measured one after the other on one server (default: the work directory's ranking.json)",
    )
    parser.add_argument(
        "--fill",
        choices=FILLS,
        default="synthetic",
        help="how --rows grows the table: new synthetic regions embedded, or copies of its rows",
    )
    parser.add_argument(
        "--flow", choices=FLOWS, nargs="+", default=["cold"], help="cold searches, and/or each after its generate"
    )
    args = parser.parse_args()
    results = run_modes(
        args.workdir,
        tuple(args.rank or [None]),
        args.concurrency,
        args.duration,
        args.rows,
        args.cache,
        args.fill,
        args.flow,
    )
    print(json.dumps(results[0] if len(results) == 1 else results, indent=1))
