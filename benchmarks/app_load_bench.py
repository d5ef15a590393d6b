"""Load benchmark of the web application: concurrent searches over loopback for a fixed time.

Starts `solarjax.app.create_app(workdir)` under uvicorn on 127.0.0.1 (a free port), then
`concurrency` client threads send POST /api/search/generated (random seed and slider values,
k = 10) back to back for `duration_s` seconds. Reports requests/s, p50/p99 latency of the
successful requests, 503s (the bounded queue shedding load) and other errors.

Run: ``python -m benchmarks.app_load_bench --workdir demo_out`` (prints JSON); the harness calls
`run`. Target: zero errors, p99 < 200 ms.
"""
import argparse
import http.client
import json
import os
import socket
import threading
import time

import numpy as np


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _client(port: int, deadline: float, seed: int, latencies: list, statuses: list) -> None:
    rng = np.random.default_rng(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while time.perf_counter() < deadline:
        body = json.dumps({"seed": int(rng.integers(0, 10_000)),
                           "sliders": {"tuf": float(rng.uniform(-2, 2)), "psep": float(rng.uniform(-2, 2))},
                           "filters": {"k": 10}})
        started = time.perf_counter()
        try:
            connection.request("POST", "/api/search/generated", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = -1
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append(time.perf_counter() - started)
        statuses.append(status)
    connection.close()


def run(workdir: str | None = None, concurrency: int = 4, duration_s: float = 20.0) -> dict:
    """Requests/s, latency percentiles (ms) and error counts of concurrent generated-query searches."""
    import uvicorn

    from solarjax.app import create_app

    workdir = workdir or os.environ.get("SOLARJAX_APP_WORKDIR", "demo_out")
    app = create_app(workdir)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    _client(port, time.perf_counter() + 2.0, 999, [], [])  # warm connection paths
    latencies: list[float] = []
    statuses: list[int] = []
    deadline = time.perf_counter() + duration_s
    clients = [threading.Thread(target=_client, args=(port, deadline, i, latencies, statuses)) for i in range(concurrency)]
    started = time.perf_counter()
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    elapsed = time.perf_counter() - started
    server.should_exit = True
    thread.join(10)
    statuses_array = np.array(statuses)
    ok = np.array(latencies)[statuses_array == 200] * 1e3
    return {
        "workdir": str(workdir),
        "index_rows": app.state.engine.index.num_rows,
        "index_kind": app.state.engine.index.kind,
        "concurrency": concurrency,
        "duration_s": round(elapsed, 2),
        "requests": len(statuses),
        "requests_per_second": round(int((statuses_array == 200).sum()) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ok, 50)), 1) if len(ok) else None,
        "p99_ms": round(float(np.percentile(ok, 99)), 1) if len(ok) else None,
        "rejected_503": int((statuses_array == 503).sum()),
        "errors": int(((statuses_array != 200) & (statuses_array != 503)).sum()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(run(args.workdir, args.concurrency, args.duration), indent=1))
