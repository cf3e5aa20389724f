"""Inference energy: the suite's figures on this CPU, the bench's own overhead, the ASGI middleware's overhead.

    python benchmarks/bench_inference.py [--rounds 5] [--requests 1000] [--quick]

1. Suite figures: `wattprint.bench` on all-MiniLM-L6-v2, feature-extraction, the 1,000 bundled sentences at
   batch sizes 1, 8, 32 (J per query, its range, spread of 4 groups, latency, throughput; the sum of J per
   query x queries against the run's stored energy); tiny-gpt text-generation on the first 100 sentences with
   8 and 32 new tokens (J per prefill and per decode token, decode share, time to first token).
2. The bench's own overhead: MiniLM at batch size 8 on 256 sentences, the same prepared batches run in a bare
   loop and through `run_bench` (warm-up and idle reading off), paired round by round with the order
   alternated. Whole-process wall and CPU time (all threads: the tracker's sampler and store included).
3. The middleware's overhead: one Starlette app served by uvicorn twice at once, bare and wrapped in
   `EnergyMiddleware` (header on, metrics path on, slices of 0.25 s), each in its own process. Sequential
   requests to `/hello` (a trivial JSON answer) and `/work` (three 256 x 256 matrix products), rounds
   alternating between the two servers: client-side latency per request and the server process's CPU time
   per request (psutil, all its threads; the kernel counts it in 10 ms ticks, hence 1,000 requests a round).
   Ratios wrapped / bare from the same rounds.

Energy on a machine without RAPL is the CPU-time model (an estimate; every figure says so).
Results: benchmarks/results/inference.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# -- 1. suite figures ------------------------------------------------------------------------------
def suite(quick: bool) -> dict[str, Any]:
    from wattprint.bench import load_workload, run_bench
    from wattprint.bench.suite import sentences

    texts = sentences()
    encoder = load_workload("feature-extraction", "all-MiniLM-L6-v2")
    result = run_bench(encoder, texts[: 256 if quick else 1000], batch_sizes=(1, 8, 32), idle_s=1.0)
    total_j = result.record.energy_kwh.total * 3.6e6
    windows_j = sum(r["energy_j_per_query"] * r["queries"] for r in result.results)
    generation = {}
    for new in (8, 32):
        gen = load_workload("text-generation", "tiny-gpt", new_tokens=new)
        doc = run_bench(gen, texts[: 32 if quick else 100], batch_sizes=(1, 8, 32), idle_s=0).document
        generation[new] = doc["results"]
    return {
        "encoder": result.results,
        "energy_method": result.document["energy_method"],
        "run_energy_j": total_j,
        "windows_over_run": windows_j / total_j,
        "idle_power_w": result.document["idle_power_w"],
        "generation": generation,
    }


# -- 2. the bench's own overhead -------------------------------------------------------------------
def bench_overhead(rounds: int) -> dict[str, Any]:
    from wattprint.bench import load_workload, run_bench
    from wattprint.bench.suite import sentences

    encoder = load_workload("feature-extraction", "all-MiniLM-L6-v2")
    texts = sentences()[:256]
    batches = encoder.prepare(texts, 8)
    for batch in batches[:4]:
        encoder.run(batch)

    def bare() -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        for batch in batches:
            encoder.run(batch)
        return time.perf_counter() - w, time.process_time() - c

    windows: list[float] = []

    def measured() -> tuple[float, float]:
        w, c = time.perf_counter(), time.process_time()
        doc = run_bench(encoder, texts, batch_sizes=(8,), warmup_batches=0, idle_s=0).document
        windows.append(doc["results"][0]["duration_s"])
        return time.perf_counter() - w, time.process_time() - c

    pairs = []
    for r in range(rounds):
        if r % 2 == 0:
            b, m = bare(), measured()
        else:
            m, b = measured(), bare()
        pairs.append((b, m))
    return {
        "bare_wall_s": [p[0][0] for p in pairs],
        "bare_cpu_s": [p[0][1] for p in pairs],
        "bench_wall_s": [p[1][0] for p in pairs],
        "bench_cpu_s": [p[1][1] for p in pairs],
        "window_s": windows,
        "window_ratio": statistics.median(w / p[0][0] for w, p in zip(windows, pairs, strict=True)),
        "wall_ratio": statistics.median(p[1][0] / p[0][0] for p in pairs),
        "cpu_ratio": statistics.median(p[1][1] / p[0][1] for p in pairs),
    }


# -- 3. the middleware's overhead ------------------------------------------------------------------
def serve(port: int, bare: bool) -> None:
    """The benchmark's app (run in a subprocess)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import numpy as np
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    matrix = np.random.default_rng(0).random((256, 256))

    async def hello(request: Any) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    async def work(request: Any) -> JSONResponse:
        for _ in range(3):
            matrix @ matrix
        return JSONResponse({"ok": True})

    app: Any = Starlette(routes=[Route("/hello", hello), Route("/work", work)])
    if not bare:
        from wattprint.integrations.asgi import EnergyMiddleware

        app = EnergyMiddleware(app, name="bench-middleware", header=True, metrics_path="/metrics")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def middleware_overhead(rounds: int, requests: int, home: str) -> dict[str, Any]:
    import httpx
    import psutil

    servers = {}
    env = {**os.environ, "WATTPRINT_HOME": home}
    for kind in ("bare", "wrapped"):
        port = _free_port()
        args = [sys.executable, __file__, "--serve", str(port)] + (["--bare"] if kind == "bare" else [])
        proc = subprocess.Popen(args, env=env)
        servers[kind] = (f"http://127.0.0.1:{port}", proc)
    try:
        for url, proc in servers.values():
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/hello", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("a benchmark server did not start")
        out: dict[str, Any] = {}
        with httpx.Client(timeout=30) as client:
            for path in ("/hello", "/work"):
                latency = {k: [] for k in servers}
                cpu = {k: [] for k in servers}
                for r in range(rounds + 1):  # round 0 warms both servers up and is not kept
                    order = list(servers) if r % 2 == 0 else list(reversed(servers))
                    for kind in order:
                        url, proc = servers[kind]
                        ps = psutil.Process(proc.pid)
                        before = sum(ps.cpu_times()[:2])
                        t0 = time.perf_counter()
                        for _ in range(requests):
                            client.get(f"{url}{path}").raise_for_status()
                        wall = time.perf_counter() - t0
                        used = sum(ps.cpu_times()[:2]) - before
                        if r > 0:
                            latency[kind].append(wall / requests)
                            cpu[kind].append(used / requests)
                out[path] = {
                    "latency_ms": {k: statistics.median(v) * 1000 for k, v in latency.items()},
                    "server_cpu_ms": {k: statistics.median(v) * 1000 for k, v in cpu.items()},
                    "latency_ratio": statistics.median(
                        w / b for w, b in zip(latency["wrapped"], latency["bare"], strict=True)
                    ),
                    "cpu_ratio": statistics.median(w / b for w, b in zip(cpu["wrapped"], cpu["bare"], strict=True)),
                }
        return out
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=1000, help="sequential requests per server per round")
    ap.add_argument("--quick", action="store_true", help="smoke run: fewer sentences, 2 rounds")
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve is not None:
        serve(args.serve, args.bare)
        return
    import tempfile

    home = tempfile.mkdtemp(prefix="wattprint-bench-inference-")
    os.environ["WATTPRINT_HOME"] = home  # the benchmark's runs go to a store of their own
    rounds = 2 if args.quick else args.rounds
    info = machine_info()
    figures = suite(args.quick)
    overhead = bench_overhead(rounds)
    middleware = middleware_overhead(rounds, 50 if args.quick else args.requests, home)

    enc_rows = [
        [
            r["batch_size"],
            r["queries"],
            fmt(r["energy_j_per_query"], 3),
            f"{fmt(r['energy_j_per_query_range'][0], 3)}-{fmt(r['energy_j_per_query_range'][1], 3)}",
            fmt(r["spread_pct"], 1),
            fmt(r["latency_ms"]["p50"], 1),
            fmt(r["latency_ms"]["p95"], 1),
            fmt(r["throughput_qps"], 1),
        ]
        for r in figures["encoder"]
    ]
    enc_head = ["batch", "queries", "J/query", "range", "spread %", "p50 ms", "p95 ms", "q/s"]
    gen_rows = [
        [
            new,
            r["batch_size"],
            fmt(r["j_per_prefill_token"], 4),
            fmt(r["j_per_decode_token"], 4),
            fmt(r["decode_share"], 3),
            fmt(r["ttft_ms"], 1),
            fmt(r["energy_j_per_query"], 3),
        ]
        for new, results in figures["generation"].items()
        for r in results
    ]
    gen_head = ["new tokens", "batch", "J/prefill tok", "J/decode tok", "decode share", "TTFT ms", "J/query"]
    ovh_rows = [
        ["wall s", fmt(statistics.median(overhead["bare_wall_s"])), fmt(statistics.median(overhead["bench_wall_s"])),
         fmt(overhead["wall_ratio"])],
        ["CPU s", fmt(statistics.median(overhead["bare_cpu_s"])), fmt(statistics.median(overhead["bench_cpu_s"])),
         fmt(overhead["cpu_ratio"])],
        ["measured window s (of the wall)", fmt(statistics.median(overhead["bare_wall_s"])),
         fmt(statistics.median(overhead["window_s"])), fmt(overhead["window_ratio"])],
    ]  # fmt: skip
    ovh_head = ["whole process", "bare loop", "run_bench", "ratio (paired)"]
    mid_rows = []
    for path, m in middleware.items():
        mid_rows.append(
            [
                path,
                fmt(m["latency_ms"]["bare"], 3),
                fmt(m["latency_ms"]["wrapped"], 3),
                fmt((m["latency_ms"]["wrapped"] - m["latency_ms"]["bare"]) * 1000, 0),
                fmt(m["latency_ratio"]),
                fmt(m["server_cpu_ms"]["bare"], 3),
                fmt(m["server_cpu_ms"]["wrapped"], 3),
                fmt(m["cpu_ratio"]),
            ]
        )
    mid_head = ["route", "bare ms", "wrapped ms", "added us", "ratio", "bare CPU ms", "wrapped CPU ms", "CPU ratio"]
    method = figures["energy_method"]
    print_table(f"MiniLM feature-extraction (energy {method})", enc_head, enc_rows)
    print_table("tiny-gpt text-generation", gen_head, gen_rows)
    print_table("run_bench vs a bare loop (MiniLM, batch 8, 256 sentences)", ovh_head, ovh_rows)
    print_table("EnergyMiddleware vs the bare app (uvicorn, sequential requests)", mid_head, mid_rows)
    print(f"windows / run energy: {figures['windows_over_run']:.4f}; idle power {figures['idle_power_w']:.3f} W")
    markdown = "\n\n".join(
        [
            "# Inference energy: suite figures and overheads",
            machine_markdown(info),
            f"## MiniLM feature-extraction, bundled sentences (energy {method})",
            markdown_table(enc_head, enc_rows),
            f"Sum of J/query x queries over the run's stored energy: {figures['windows_over_run']:.4f}. "
            f"Idle power of this process: {figures['idle_power_w']:.3f} W.",
            "## tiny-gpt text-generation",
            markdown_table(gen_head, gen_rows),
            "## run_bench against a bare loop (paired rounds)",
            markdown_table(ovh_head, ovh_rows),
            "## EnergyMiddleware against the bare app (same rounds)",
            markdown_table(mid_head, mid_rows),
        ]
    )
    data = {
        "machine": info,
        "suite": figures,
        "bench_overhead": overhead,
        "middleware": middleware,
        "rounds": rounds,
    }
    path = write_results("inference", data, markdown, args.out_dir)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
