"""The sampler's own CPU time per sample, and the store checkpoint cost per save.

    python benchmarks/bench_sampler.py [--samples 5000] [--saves 300] [--children 4] [--quick]

1. `EnergyMonitor.sample()` (read + integrate one sample) with the sources `detect_sources()` picks on
   this machine and the current process tree (as a Tracker builds it), called back to back from one
   thread: CPU time per call (time.process_time) and wall time. The sampler thread itself only reads
   on time (`_tick`: clock, tree counters, /proc/stat, hardware counters) and integrates queued ticks
   in batches; both parts are timed. Also the process-tree reading (known members only, and the
   descendant scan), the machine CPU counters (kept-open /proc/stat: read, parse), each source's
   read(). The same with `--children` idle child processes in the tree.
2. Checkpoint: `RunStore.save()` of a run record into SQLite (WAL, the default store): per save, for a
   running record (as checkpointed every 5 s) and for a final record with a full 1024-point timeline;
   plus the whole periodic checkpoint of a live Tracker (record update + save).
3. Projection: the tracker's own CPU per second of tracked time at 1 s and 0.1 s sampling, from (1)
   and (2) with the default checkpoint every 5 s (compare with the idle test of bench_overhead.py).
4. Python function calls per sampler tick and per checkpoint (cProfile counts, builtins excluded): a
   count that machine noise cannot move. With caches cold after each wake-up, each call costs a few
   microseconds here, so this is what the idle cost follows.

Results: benchmarks/results/bench_sampler.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402


def cost(fn: Callable[[], Any], n: int, warmup: int = 20) -> dict[str, float]:
    """CPU and wall microseconds per call of fn, over n back-to-back calls (after a warm-up)."""
    for _ in range(warmup):
        fn()
    per_call_cpu = []
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        t = time.thread_time()
        fn()
        per_call_cpu.append(time.thread_time() - t)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    per_call_cpu.sort()
    return {
        "n": n,
        "cpu_us": cpu / n * 1e6,
        "wall_us": wall / n * 1e6,
        "thread_cpu_median_us": statistics.median(per_call_cpu) * 1e6,
        "thread_cpu_p99_us": per_call_cpu[min(n - 1, int(0.99 * n))] * 1e6,
    }


def paced(fn: Callable[[], Any], interval: float, n: int) -> dict[str, float]:
    """Per-call thread CPU and wall time when fn runs once every `interval` s, as the sampler runs it.

    After a sleep, caches are cold: on this VM a call costs several times its back-to-back cost.
    The wake-up itself is not included (see the idle test of bench_overhead.py for the total).
    """
    cpus, walls = [], []
    for _ in range(n):
        time.sleep(interval)
        w, t = time.perf_counter(), time.thread_time()
        fn()
        cpus.append(time.thread_time() - t)
        walls.append(time.perf_counter() - w)
    cpus.sort()
    return {
        "n": n,
        "interval_s": interval,
        "cpu_us": statistics.fmean(cpus) * 1e6,
        "wall_us": statistics.fmean(walls) * 1e6,
        "thread_cpu_median_us": statistics.median(cpus) * 1e6,
        "thread_cpu_p99_us": cpus[min(n - 1, int(0.99 * n))] * 1e6,
    }


def python_calls(tracker: Any, cycles: int = 100) -> dict[str, float]:
    """Python-level function calls per sampler tick and per checkpoint of a live tracker (cProfile)."""
    import cProfile
    import pstats

    def count(run: Callable[[], Any]) -> float:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(cycles):
            run()
        profile.disable()
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        return sum(v[1] for k, v in stats.items() if k[0] != "~") / cycles

    monitor = tracker.monitor
    tick = getattr(monitor, "_tick", monitor.sample)

    def tick_and_callback() -> None:
        tick()
        tracker._on_sample(monitor)

    def checkpoint_cycle() -> None:  # 5 ticks and a checkpoint: the default 1 s sampling, 5 s checkpoint
        for _ in range(5):
            tick()
        tracker._checkpoint()

    per_tick = count(tick_and_callback)
    per_cycle = count(checkpoint_cycle)
    return {"per_tick": per_tick, "per_checkpoint": per_cycle - 5 * count(tick), "per_second_at_1s": per_cycle / 5}


def proc_count() -> int:
    return sum(1 for name in os.listdir("/proc") if name.isdigit())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=5000, help="monitor samples timed")
    ap.add_argument("--saves", type=int, default=300, help="store saves timed")
    ap.add_argument("--children", type=int, default=4, help="idle child processes for the tree variant")
    ap.add_argument(
        "--paced-seconds",
        type=float,
        default=15.0,
        help="seconds of paced sampling at each of 1 s and 0.1 s (0 to skip)",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 300 samples, 30 saves")
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write results")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.saves, args.paced_seconds = 300, 30, 3.0

    tmp = tempfile.mkdtemp(prefix="wattprint-bench-sampler-")
    os.environ["WATTPRINT_HOME"] = os.path.join(tmp, "home")
    os.environ.pop("WATTPRINT_DB", None)
    info = machine_info()

    import psutil

    from wattprint import Tracker
    from wattprint.measure.detect import detect_sources
    from wattprint.measure.monitor import EnergyMonitor
    from wattprint.measure.process import REFRESH_EVERY, ProcessTree
    from wattprint.measure.procfs import MachineCpu
    from wattprint.store import open_store

    n = args.samples
    rows: list[list[str]] = []
    results: dict[str, Any] = {}

    def add(key: str, label: str, res: dict[str, float], note: str = "") -> None:
        results[key] = {**res, "label": label, "note": note}
        rows.append(
            [
                label,
                fmt(res["cpu_us"], 1),
                fmt(res["wall_us"], 1),
                fmt(res["thread_cpu_median_us"], 1),
                fmt(res["thread_cpu_p99_us"], 1),
                note,
            ]
        )

    choice = detect_sources()
    source_names = [f"{s.name}:{','.join(d.name for d in s.domains())}" for s in choice.sources]
    print(f"sources on this machine: {source_names}; measurement {choice.measurement}")
    print(f"processes in /proc: {proc_count()}; timing {n} samples ...")

    monitor = EnergyMonitor(choice.sources, interval_s=1.0, tree=ProcessTree())
    add(
        "monitor_sample",
        "EnergyMonitor.sample() (default sources, this process)",
        cost(monitor.sample, n),
        f"read + integrate; tree scan every {REFRESH_EVERY} samples included",
    )
    tick = getattr(monitor, "_tick", None)  # private: what the sampler thread runs on time
    if tick is not None:
        add(
            "monitor_tick",
            "  sampler tick (on time: read and queue)",
            cost(tick, n),
            "integration runs later, in batches",
        )
    add(
        "tree_sample_known",
        "  ProcessTree.sample(), known members only",
        cost(ProcessTree(refresh_every=10**12).sample, n),
    )
    me = psutil.Process()
    scan = cost(lambda: me.children(recursive=True), max(100, n // 10))
    add(
        "tree_scan",
        "  descendant scan (psutil children(recursive=True))",
        scan,
        f"{proc_count()} processes in /proc; ProcessTree does it every {REFRESH_EVERY} samples",
    )
    stat = MachineCpu()
    add(
        "machine_cpu_read",
        "  machine CPU counters: /proc/stat read (kept open)",
        cost(stat.raw, n),
        "once per sample, for the tree share and the CPU model",
    )
    stat_bytes = stat.raw()
    add("machine_cpu_parse", "  machine CPU counters: parse", cost(lambda: stat.parse(stat_bytes), n))
    stat.close()
    for source in choice.sources:
        add(f"read_{source.name}_{source.domains()[0].name}", f"  {type(source).__name__}.read()", cost(source.read, n))
    if args.paced_seconds > 0:
        for interval in (1.0, 0.1):
            k = max(3, round(args.paced_seconds / interval))
            print(f"paced: {k} samples, one every {interval:g} s ...", flush=True)
            add(
                f"monitor_sample_paced_{interval:g}s",
                f"EnergyMonitor.sample(), paced every {interval:g} s",
                paced(monitor.sample, interval, k),
                f"{k} samples, cold caches (as in a tracker)",
            )
            if tick is not None:
                add(
                    f"monitor_tick_paced_{interval:g}s",
                    f"  sampler tick, paced every {interval:g} s",
                    paced(tick, interval, k),
                    f"{k} ticks, cold caches",
                )
    monitor.close()

    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    kids = [subprocess.Popen(sleeper) for _ in range(args.children)]
    try:
        time.sleep(0.5)
        tree = ProcessTree()
        monitor = EnergyMonitor(choice.sources, interval_s=1.0, tree=tree)
        monitor.sample()
        members = len(monitor.tree_pids)
        add(
            "monitor_sample_children",
            f"EnergyMonitor.sample(), tree of {members} processes",
            cost(monitor.sample, n),
            f"{args.children} idle children",
        )
        add(
            "tree_scan_children",
            f"  descendant scan with {args.children} children",
            cost(lambda: me.children(recursive=True), max(100, n // 10)),
        )
    finally:
        for k in kids:
            k.kill()
        for k in kids:
            k.wait()

    # -- checkpoint cost
    store = open_store(f"sqlite:///{os.path.join(tmp, 'bench.db')}")
    tracker = Tracker("bench-sampler", interval=1.0, region="FR", store=store).start()
    time.sleep(1.0)
    live_checkpoint = getattr(tracker, "_checkpoint", None)
    if live_checkpoint is not None:  # private: the periodic checkpoint exactly as the sampler thread runs it
        add(
            "tracker_checkpoint",
            "Tracker periodic checkpoint (update record + save)",
            cost(live_checkpoint, args.saves, warmup=5),
            "private Tracker._checkpoint, sampler running",
        )
    if live_checkpoint is not None and args.paced_seconds > 0:
        k = max(3, round(args.paced_seconds / 3))
        add(
            "tracker_checkpoint_paced",
            "Tracker periodic checkpoint, paced every 1 s",
            paced(live_checkpoint, 1.0, k),
            f"{k} checkpoints, cold caches",
        )
    calls = python_calls(tracker) if live_checkpoint is not None else {}
    record = tracker.stop()
    running = record.model_copy(update={"status": "running", "ended_at": None, "timeline": {}})
    add(
        "save_running",
        "RunStore.save(), running record (checkpoint)",
        cost(lambda: store.save(running, checkpoint_s=5.0), args.saves, warmup=5),
        f"{len(running.model_dump_json())} B of JSON",
    )
    points = 1023
    big_timeline = {k: [float(i) for i in range(points)] for k in ("t_s", "cpu_w", "gpu_w", "ram_w")}
    final = record.model_copy(update={"timeline": big_timeline})
    add(
        "save_final_1024",
        f"RunStore.save(), final record, {points}-point timeline",
        cost(lambda: store.save(final, checkpoint_s=5.0), args.saves, warmup=5),
        f"{len(final.model_dump_json())} B of JSON",
    )
    add(
        "serialise_running",
        "  record.to_json_dict() alone (running record)",
        cost(running.to_json_dict, args.saves * 5),
    )
    store.close()

    # -- projection: samples per second + one checkpoint per 5 s (the defaults), hot and paced
    checkpoint_s = 5.0
    projection = {}
    for interval in (1.0, 0.1):
        hot = (
            results["monitor_sample"]["cpu_us"] / interval
            + results.get("tracker_checkpoint", results["save_running"])["cpu_us"] / checkpoint_s
        )
        row: dict[str, float | None] = {"hot_cpu_us_per_s": hot, "hot_pct_core": hot / 1e4}
        sp = results.get(f"monitor_sample_paced_{interval:g}s")
        cp = results.get("tracker_checkpoint_paced")
        if sp and cp:
            cold = sp["cpu_us"] / interval + cp["cpu_us"] / checkpoint_s
            row.update(paced_cpu_us_per_s=cold, paced_pct_core=cold / 1e4)
        projection[f"{interval:g} s"] = row
    headers = ["operation", "CPU us/call", "wall us/call", "median us", "p99 us", "note"]
    title = f"Sampler and checkpoint cost ({n} samples, {args.saves} saves; this thread's CPU per call)"
    print_table(title, headers, rows)
    proj_rows = [
        [
            k,
            fmt(v["hot_cpu_us_per_s"] or 0.0, 0),
            f"{v['hot_pct_core']:.4f} %",
            fmt(v.get("paced_cpu_us_per_s") or float("nan"), 0),
            f"{v['paced_pct_core']:.4f} %" if v.get("paced_pct_core") else "n/a",
        ]
        for k, v in projection.items()
    ]
    proj_headers = ["interval", "back-to-back us/s", "% of one core", "paced us/s", "% of one core (paced)"]
    print_table(
        "Projected tracker CPU (samples + a checkpoint every 5 s), excluding thread wake-ups", proj_headers, proj_rows
    )
    call_headers = ["Python calls", "count"]
    call_labels = {
        "per_tick": "per sampler tick (with the tracker's callback; integration amortised)",
        "per_checkpoint": "per checkpoint (integration of 5 queued ticks included)",
        "per_second_at_1s": "per second at 1 s sampling, 5 s checkpoints",
    }
    call_rows = [[label, fmt(calls.get(key, float("nan")), 0)] for key, label in call_labels.items()]
    print_table("Python function calls (cProfile; builtins excluded)", call_headers, call_rows)

    data = {
        "benchmark": "bench_sampler",
        "machine": info,
        "settings": {
            "samples": n,
            "saves": args.saves,
            "children": args.children,
            "sources": source_names,
            "measurement": choice.measurement,
            "processes_in_proc": proc_count(),
            "store": "SQLite (WAL, synchronous=NORMAL) in a temporary directory",
        },
        "results": results,
        "projection": projection,
        "python_calls": calls,
    }
    md = "\n\n".join(
        [
            "# bench_sampler",
            machine_markdown(info),
            f"Sources: {', '.join(source_names)}. {proc_count()} processes in /proc. CPU per call = process CPU "
            "time over back-to-back calls / calls; median and p99 are per-call thread CPU time.",
            markdown_table(headers, rows),
            "## Projected tracker CPU (samples + one checkpoint every 5 s; thread wake-ups not included)",
            markdown_table(proj_headers, proj_rows),
            "## Python function calls (cProfile counts, builtins excluded; noise-free)",
            markdown_table(call_headers, call_rows),
        ]
    )
    path = write_results("bench_sampler", data, md, args.out_dir)
    print(f"\nresults: {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
