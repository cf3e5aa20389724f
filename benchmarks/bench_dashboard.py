"""The dashboard under load: `wattprint ui` over a store of many runs, hit by many concurrent requests.

    python benchmarks/bench_dashboard.py [--runs 10000] [--requests 200] [--concurrency 200]

Builds a temporary SQLite store (as bench_store_list.py does), starts `wattprint ui --no-browser` on a free
loopback port in its own process, waits until it answers, then sends --requests GETs from --concurrency
threads at once (httpx), spread over the runs page, a filtered runs page, the JSON API and run pages. Reports
latency p50/p95/max per kind and overall, and the server's start time. Loopback only.
Results: benchmarks/results/dashboard.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

PATHS = ("/", "/?status=finished&limit=50", "/api/runs?limit=20", "/runs/{run_id}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()
    info = machine_info()
    bench_dir = Path(__file__).resolve().parent
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        home = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                str(bench_dir / "bench_store_list.py"),
                "--runs",
                str(args.runs),
                "--build-only",
                str(home),
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        import sqlite3

        with sqlite3.connect(home / "wattprint.db") as con:
            run_id = con.execute("SELECT run_id FROM runs LIMIT 1").fetchone()[0]
        port = _free_port()
        env = dict(os.environ, WATTPRINT_HOME=str(home))
        started = time.perf_counter()
        server_log = stack.enter_context(tempfile.TemporaryFile())  # a pipe nobody reads could stall it
        server = subprocess.Popen(
            [sys.executable, "-m", "wattprint.cli.main", "ui", "--no-browser", "--port", str(port)],
            env=env,
            stdout=server_log,
            stderr=server_log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
            with httpx.Client(base_url=base, timeout=120, limits=limits) as client:
                while True:
                    try:
                        client.get("/api/runs?limit=1").raise_for_status()
                        break
                    except httpx.TransportError:
                        if server.poll() is not None or time.perf_counter() - started > 120:
                            server_log.seek(0)
                            reason = server_log.read().decode(errors="replace")[-2000:]
                            raise SystemExit(f"server did not start: {reason}") from None
                        time.sleep(0.1)
                ready_s = time.perf_counter() - started
                paths = [PATHS[i % len(PATHS)].format(run_id=run_id) for i in range(args.requests)]

                def get(path: str) -> tuple[str, float, int]:
                    t0 = time.perf_counter()
                    status = client.get(path).status_code
                    return path, time.perf_counter() - t0, status

                t0 = time.perf_counter()
                with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                    results = list(pool.map(get, paths))
                total_s = time.perf_counter() - t0
        finally:
            server.terminate()
            server.wait(timeout=30)
    bad = [r for r in results if r[2] != 200]
    rows, by_kind = [], {}
    for kind in PATHS:
        lat = [r[1] for r in results if r[0] == kind.format(run_id=run_id)]
        by_kind[kind] = {
            "n": len(lat),
            "p50_s": statistics.median(lat),
            "p95_s": _percentile(lat, 0.95),
            "max_s": max(lat),
        }
        rows.append(
            [kind, len(lat), f"{statistics.median(lat):.3f}", f"{_percentile(lat, 0.95):.3f}", f"{max(lat):.3f}"]
        )
    everything = [r[1] for r in results]
    overall = {
        "p50_s": statistics.median(everything),
        "p95_s": _percentile(everything, 0.95),
        "max_s": max(everything),
        "total_s": total_s,
        "non_200": len(bad),
        "server_ready_s": ready_s,
    }
    rows.append(
        ["all", len(everything), f"{overall['p50_s']:.3f}", f"{overall['p95_s']:.3f}", f"{overall['max_s']:.3f}"]
    )
    title = (
        f"wattprint ui over {args.runs:,} runs: {args.requests} GETs, {args.concurrency} at once "
        f"(server ready in {ready_s:.1f} s; {len(bad)} not 200; all done in {total_s:.2f} s)"
    )
    headers = ["path", "n", "p50 s", "p95 s", "max s"]
    print_table(title, headers, rows)
    verdict = "PASS" if overall["p95_s"] < 1.0 and not bad else "FAIL"
    print(f"{verdict}  p95 under 1 s with every response 200")
    md = "\n\n".join(
        [
            f"# {title}",
            "Produced by `benchmarks/bench_dashboard.py` (uvicorn on loopback, httpx).",
            markdown_table(headers, rows),
            f"- {verdict}: p95 under 1 s with every response 200",
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    path = write_results(
        "dashboard",
        {"machine": info, "args": vars(args) | {"out_dir": str(args.out_dir)}, "by_path": by_kind, "overall": overall},
        md,
        args.out_dir,
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
