"""Overhead of tracking: one CPU-bound PyTorch training loop, bare vs wattprint vs CodeCarbon.

    python benchmarks/bench_overhead.py [--rounds 5] [--steps 1400] [--idle-seconds 15]
                                        [--idle-reps 2] [--quick]

Part 1, loop. A fixed training loop (an MLP on random data, SGD, torch.set_num_threads(1), the
same seed and the same work every run; about 4 s here) runs under four conditions in this process:
bare, wattprint Tracker at 1 s and at 0.1 s sampling (default checkpoint to SQLite every 5 s, in a
temporary WATTPRINT_HOME), and CodeCarbon's OfflineEmissionsTracker(country_iso_code="FRA",
measure_power_secs=1) (this machine has no network, hence the offline tracker). One round runs
each condition once; the order rotates every round (ABCD, BCDA, ...), after one unrecorded
warm-up round that pays every first-start import. Per condition: the loop's wall time and the
process CPU time (getrusage user + sys, this process and reaped children), each against bare in
the same round, and the cost of start() + stop() (warm: first starts are in bench_startup.py).

Part 2, idle. Wall time on a shared machine varies by ~10%, far more than a tracker costs, so
the tracker's own CPU is measured where nothing else runs: a fresh process per condition starts
the tracker, sleeps --settle s, then sleeps --idle-seconds s in 5 s chunks while its CPU time is
read (--idle-reps windows per condition, interleaved); the main thread sleeps, so that CPU is
the tracker's threads (sampling and checkpoints), reported as % of one core. Conditions: bare
(nothing), an empty Python thread waking every 1 s (the floor for any in-process sampler on
this machine), wattprint 1 s, wattprint 0.1 s, CodeCarbon 1 s, one after the other so trackers
never overlap; with --checkpoint-periods P ..., also wattprint 1 s checkpointing every P s instead of
the default 5 s (what the checkpoint's share of the idle cost is).

Results: benchmarks/results/bench_overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    fmt,
    machine_info,
    machine_markdown,
    markdown_table,
    median,
    print_table,
    summary,
    write_results,
)

BARE, WP1, WP01, CC = "bare", "wattprint 1 s", "wattprint 0.1 s", "CodeCarbon 1 s (offline)"
WAKE = "empty thread waking every 1 s"
CONDITIONS = [BARE, WP1, WP01, CC]
IDLE_KEYS = {"bare": BARE, "wake": WAKE, "wp1": WP1, "wp01": WP01, "cc": CC}
CHECKPOINT_KEY = "wp1ck"  # + the period: wattprint at 1 s with another checkpoint period (--checkpoint-periods)


def idle_condition(key: str) -> str:
    """The condition an idle key names (the fixed ones, or wattprint 1 s with a checkpoint period)."""
    if key.startswith(CHECKPOINT_KEY):
        return f"{WP1}, checkpoint {float(key[len(CHECKPOINT_KEY) :]):g} s"
    return IDLE_KEYS[key]


CHUNK_S = 5.0
TARGET_IDLE_PCT = 0.05


def cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its reaped children, user + sys."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# -- trackers ----------------------------------------------------------------------------------------
class _Bare:
    def start(self) -> _Bare:
        return self

    def stop(self) -> None:
        return None


class _Wake(_Bare):
    """A thread that wakes every second and does nothing: the floor of any sampling thread."""

    def start(self) -> _Wake:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def make_tracker(condition: str) -> Any:
    if condition == BARE:
        return _Bare()
    if condition == WAKE:
        return _Wake()
    if condition in (WP1, WP01):
        import wattprint

        return wattprint.Tracker("bench-overhead", interval=1.0 if condition == WP1 else 0.1, region="FR")
    if condition.startswith(f"{WP1}, checkpoint "):
        import wattprint

        period = float(condition.removeprefix(f"{WP1}, checkpoint ").removesuffix(" s"))
        return wattprint.Tracker("bench-overhead", interval=1.0, region="FR", checkpoint=period)
    if condition == CC:
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        import codecarbon

        return codecarbon.OfflineEmissionsTracker(
            country_iso_code="FRA", save_to_file=False, log_level="error", measure_power_secs=1
        )
    raise ValueError(condition)


def energy_of(condition: str, tracker: Any, result: Any) -> dict[str, Any]:
    """Energy the tracker reported (kWh) and, for wattprint, samples taken and degraded flags."""
    if condition.startswith("wattprint") and result is not None:
        return {"energy_kwh": result.energy_kwh.total, "samples": result.samples, "degraded": result.degraded}
    if condition == CC:
        data = getattr(tracker, "final_emissions_data", None)
        return {"energy_kwh": getattr(data, "energy_consumed", None)}
    return {}


# -- part 1: the training loop -------------------------------------------------------------------------
def build_loop(steps: int, width: int, batch: int, features: int = 256, n_data: int = 4096) -> Callable[[], float]:
    import torch
    from torch import nn

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_data, features, generator=gen)
    y = torch.randint(0, 10, (n_data,), generator=gen)

    def train() -> float:
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Linear(features, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10)
        )
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        loss_fn = nn.CrossEntropyLoss()
        loss = torch.zeros(())
        for step in range(steps):
            i = (step * batch) % (n_data - batch)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[i : i + batch]), y[i : i + batch])
            loss.backward()
            opt.step()
        return float(loss.detach())

    return train


def run_once(condition: str, train: Callable[[], float]) -> dict[str, Any]:
    gc.collect()
    threads_before = threading.active_count()
    w0, c0 = time.perf_counter(), cpu_s()
    tracker = make_tracker(condition)
    tracker.start()  # CodeCarbon's start() returns None
    w1, c1 = time.perf_counter(), cpu_s()
    loss = train()
    w2, c2 = time.perf_counter(), cpu_s()
    result = tracker.stop()
    w3, c3 = time.perf_counter(), cpu_s()
    return {
        "condition": condition,
        "loop_wall_s": w2 - w1,
        "loop_cpu_s": c2 - c1,
        "start_wall_s": w1 - w0,
        "stop_wall_s": w3 - w2,
        "total_wall_s": w3 - w0,
        "total_cpu_s": c3 - c0,
        "loss": loss,
        "threads_before": threads_before,
        **energy_of(condition, tracker, result),
    }


# -- part 2: idle tracker CPU, one fresh process per condition -----------------------------------------
def idle_child(key: str, seconds: float, settle: float) -> dict[str, Any]:
    condition = idle_condition(key)
    w0, c0 = time.perf_counter(), cpu_s()
    tracker = make_tracker(condition)
    tracker.start()
    start = {"wall_s": time.perf_counter() - w0, "cpu_s": cpu_s() - c0}
    time.sleep(settle)  # the store opens in the background; CodeCarbon finishes its set-up
    threads = threading.active_count()
    chunks = []
    left = seconds
    while left > 1e-9:
        span = min(CHUNK_S, left)
        w, c = time.perf_counter(), cpu_s()
        time.sleep(span)
        chunks.append({"wall_s": time.perf_counter() - w, "cpu_s": cpu_s() - c})
        left -= span
    w, c = time.perf_counter(), cpu_s()
    result = tracker.stop()
    stop = {"wall_s": time.perf_counter() - w, "cpu_s": cpu_s() - c}
    wall = sum(ch["wall_s"] for ch in chunks)
    cpu = sum(ch["cpu_s"] for ch in chunks)
    return {
        "condition": condition,
        "threads_during_idle": threads,
        "window_wall_s": wall,
        "window_cpu_s": cpu,
        "pct_core": cpu / wall * 100,
        "chunk_pct_core": [ch["cpu_s"] / ch["wall_s"] * 100 for ch in chunks],
        "start": start,
        "stop": stop,
        **energy_of(condition, tracker, result),
    }


def run_idle(key: str, seconds: float, settle: float, env: dict[str, str], cwd: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--idle-child", key, "--idle-seconds", str(seconds), "--settle", str(settle)]
    limit = seconds + settle + 90
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"condition": idle_condition(key), "error": "timed out"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"condition": idle_condition(key), "error": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    return json.loads(lines[-1])


# -- report ----------------------------------------------------------------------------------------------
def ratio_stats(runs: list[dict[str, Any]], condition: str, key: str) -> dict[str, Any]:
    """Per-round ratio of condition to bare for one metric: median, min, max, rounds above 1."""
    by_round: dict[int, dict[str, float]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["condition"]] = r[key]
    ratios = [v[condition] / v[BARE] for v in by_round.values() if condition in v and v.get(BARE)]
    if not ratios:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "above_1": 0, "n": 0}
    return {
        "median": median(ratios),
        "min": min(ratios),
        "max": max(ratios),
        "above_1": sum(r > 1 for r in ratios),
        "n": len(ratios),
        "ratios": ratios,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the four conditions (>= 5)")
    ap.add_argument("--steps", type=int, default=1400, help="training steps per run (about 4 s here)")
    ap.add_argument("--width", type=int, default=512, help="hidden width of the MLP")
    ap.add_argument("--batch", type=int, default=128, help="batch size")
    ap.add_argument("--idle-seconds", type=float, default=15.0, help="idle window per tracker, s")
    ap.add_argument("--idle-reps", type=int, default=2, help="idle windows per condition (interleaved)")
    ap.add_argument("--settle", type=float, default=2.0, help="s between tracker start and the idle window")
    ap.add_argument("--skip-loop", action="store_true", help="run only the idle test")
    ap.add_argument("--skip-idle", action="store_true", help="run only the loop test")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 150 steps, 5 s idle windows")
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write results")
    ap.add_argument(
        "--checkpoint-periods",
        type=float,
        nargs="*",
        default=[],
        metavar="S",
        help="also run wattprint 1 s idle with these checkpoint periods (s; default 5 s only)",
    )
    ap.add_argument("--idle-child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.idle_child:
        print(json.dumps(idle_child(args.idle_child, args.idle_seconds, args.settle)))
        return 0
    if args.quick:
        args.rounds, args.steps, args.idle_seconds, args.settle, args.idle_reps = 2, 150, 5.0, 2.0, 1

    tmp = tempfile.mkdtemp(prefix="wattprint-bench-overhead-")
    os.environ["WATTPRINT_HOME"] = os.path.join(tmp, "home")
    os.environ.pop("WATTPRINT_DB", None)
    info = machine_info()
    t_begin = time.monotonic()
    print(f"overhead benchmark: WATTPRINT_HOME={os.environ['WATTPRINT_HOME']}")
    print(
        "no network on this machine: CodeCarbon runs as OfflineEmissionsTracker(country_iso_code='FRA', "
        "measure_power_secs=1)"
    )
    data: dict[str, Any] = {
        "benchmark": "bench_overhead",
        "machine": info,
        "settings": {
            "rounds": args.rounds,
            "steps": args.steps,
            "width": args.width,
            "batch": args.batch,
            "torch_threads": 1,
            "idle_seconds": args.idle_seconds,
            "settle_s": args.settle,
            "wattprint": "Tracker('bench-overhead', interval=1.0|0.1, region='FR'); checkpoint every 5 s "
            "(default) to SQLite in a temporary WATTPRINT_HOME",
            "codecarbon": "OfflineEmissionsTracker(country_iso_code='FRA', save_to_file=False, "
            "log_level='error', measure_power_secs=1); no network on this machine",
            "cpu_time": "getrusage user + sys, RUSAGE_SELF + RUSAGE_CHILDREN",
        },
    }
    md_parts = ["# bench_overhead", machine_markdown(info)]

    if not args.skip_loop:
        train = build_loop(args.steps, args.width, args.batch)
        print(f"warm-up round (unrecorded, {max(50, args.steps // 4)} steps each) ...", flush=True)
        warm = build_loop(max(50, args.steps // 4), args.width, args.batch)
        for cond in CONDITIONS:
            run_once(cond, warm)
        runs: list[dict[str, Any]] = []
        for rnd in range(args.rounds):
            order = CONDITIONS[rnd % 4 :] + CONDITIONS[: rnd % 4]
            for cond in order:
                res = run_once(cond, train)
                res["round"] = rnd
                runs.append(res)
            line = ", ".join(f"{r['condition']} {r['loop_wall_s']:.2f} s" for r in runs[-4:])
            print(f"  round {rnd + 1}/{args.rounds}: {line}", flush=True)

        headers = [
            "condition",
            "loop wall s",
            "x bare (min-max)",
            "loop CPU s",
            "x bare (min-max)",
            "start+stop ms",
            "total wall x bare",
            "total CPU x bare",
            "energy kWh",
        ]
        rows, per_cond = [], {}
        for cond in CONDITIONS:
            mine = [r for r in runs if r["condition"] == cond]
            keys = ("loop_wall_s", "loop_cpu_s", "start_wall_s", "stop_wall_s", "total_wall_s", "total_cpu_s")
            stats = {k: summary([r[k] for r in mine]) for k in keys}
            ratios = {
                k: ratio_stats(runs, cond, k) for k in ("loop_wall_s", "loop_cpu_s", "total_wall_s", "total_cpu_s")
            }
            energies = [r["energy_kwh"] for r in mine if r.get("energy_kwh") is not None]
            per_cond[cond] = {
                "stats": stats,
                "ratios_to_bare": ratios,
                "energy_kwh_median": median(energies) if energies else None,
                "samples": [r.get("samples") for r in mine if "samples" in r],
                "degraded": [r["degraded"] for r in mine if r.get("degraded")],
            }

            def rr(k: str, ratios: dict[str, Any] = ratios) -> str:
                s = ratios[k]
                return f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"

            start_stop = (stats["start_wall_s"]["median"] + stats["stop_wall_s"]["median"]) * 1e3
            rows.append(
                [
                    cond,
                    fmt(stats["loop_wall_s"]["median"]),
                    rr("loop_wall_s"),
                    fmt(stats["loop_cpu_s"]["median"]),
                    rr("loop_cpu_s"),
                    fmt(start_stop, 1),
                    f"{ratios['total_wall_s']['median']:.3f}",
                    f"{ratios['total_cpu_s']['median']:.3f}",
                    f"{median(energies):.3g}" if energies else "",
                ]
            )
        # wattprint against CodeCarbon, same rounds
        vs_cc = {}
        for cond in (WP1, WP01):
            mine_r, cc_r = per_cond[cond]["ratios_to_bare"], per_cond[CC]["ratios_to_bare"]
            vs_cc[cond] = {
                k: mine_r[k]["median"] / cc_r[k]["median"] for k in ("loop_wall_s", "loop_cpu_s", "total_wall_s")
            }
        verdicts = {}
        for cond in (WP1, WP01, CC):
            r = per_cond[cond]["ratios_to_bare"]
            measurable = {k: r[k]["n"] > 0 and r[k]["above_1"] == r[k]["n"] for k in ("loop_wall_s", "loop_cpu_s")}
            verdicts[cond] = {
                "slower_in_every_round": measurable,
                "extra_loop_cpu_ms_median": (
                    per_cond[cond]["stats"]["loop_cpu_s"]["median"] - per_cond[BARE]["stats"]["loop_cpu_s"]["median"]
                )
                * 1e3,
            }
        bare_cv = per_cond[BARE]["stats"]["loop_wall_s"]
        noise = bare_cv["stdev"] / bare_cv["mean"] * 100 if bare_cv.get("mean") else float("nan")
        title = (
            f"Training loop, {args.rounds} rounds x 4 conditions, {args.steps} steps "
            "(medians; ratios are per-round, vs bare in the same round)"
        )
        print_table(title, headers, rows)
        print(f"bare loop wall time varies by {noise:.1f}% (stdev/mean) between rounds")
        for cond, v in verdicts.items():
            print(
                f"  {cond}: slower than bare in every round? {v['slower_in_every_round']}; "
                f"extra loop CPU (median difference) {v['extra_loop_cpu_ms_median']:.1f} ms"
            )
        data["loop"] = {
            "runs": runs,
            "per_condition": per_cond,
            "verdicts": verdicts,
            "bare_wall_cv_pct": noise,
            "wattprint_over_codecarbon_ratio_of_ratios": vs_cc,
        }
        md_parts += [
            f"## Training loop ({args.rounds} rounds x 4 conditions, {args.steps} steps, torch 1 thread)",
            "Medians over rounds; `x bare` is the median (min-max) over rounds of the ratio to the bare run "
            "of the same round. Loop = between start() and stop(); total = from before start() to after "
            "stop(). start+stop are warm here (the warm-up round paid the first-start imports; see "
            "bench_startup).",
            markdown_table(headers, rows),
            f"Bare loop wall time varies by {noise:.1f}% (stdev/mean) between rounds.",
            "\n".join(
                f"- {c}: slower than bare in every round (wall, CPU): "
                f"{v['slower_in_every_round']['loop_wall_s']}, "
                f"{v['slower_in_every_round']['loop_cpu_s']}; "
                f"median extra loop CPU {v['extra_loop_cpu_ms_median']:.1f} ms"
                for c, v in verdicts.items()
            ),
        ]

    if not args.skip_idle:
        env = dict(os.environ)
        if any(not p > 0 for p in args.checkpoint_periods):
            ap.error("--checkpoint-periods: each period must be a number of seconds > 0")
        keys = list(IDLE_KEYS) + [f"{CHECKPOINT_KEY}{p:g}" for p in args.checkpoint_periods]
        idle: list[dict[str, Any]] = []
        for rep in range(args.idle_reps):
            order = keys[rep % len(keys) :] + keys[: rep % len(keys)]
            for key in order:
                print(
                    f"idle window {rep + 1}/{args.idle_reps}: {idle_condition(key)}, {args.idle_seconds:g} s ...",
                    flush=True,
                )
                res = run_idle(key, args.idle_seconds, args.settle, env, tmp)
                res["rep"] = rep
                idle.append(res)
        per_idle: dict[str, dict[str, Any]] = {}
        for key in keys:
            mine = [r for r in idle if r["condition"] == idle_condition(key) and "pct_core" in r]
            per_idle[idle_condition(key)] = {
                "pct_core": summary([r["pct_core"] for r in mine]),
                "chunk_pct_core": summary([c for r in mine for c in r["chunk_pct_core"]]),
                "window_cpu_ms_per_s": summary([r["window_cpu_s"] / r["window_wall_s"] * 1e3 for r in mine]),
                "start_ms": summary([r["start"]["wall_s"] * 1e3 for r in mine]),
                "threads": max((r["threads_during_idle"] for r in mine), default=None),
                "errors": [r["error"] for r in idle if r["condition"] == idle_condition(key) and "error" in r],
            }
        bare_pct = per_idle[BARE]["pct_core"].get("median", 0.0)
        headers = [
            "condition",
            "% of one core",
            "net of bare",
            "windows min-max %",
            "5 s chunks min-max %",
            "threads",
            "start ms",
        ]
        rows = []
        for cond, v in per_idle.items():
            p, ch = v["pct_core"], v["chunk_pct_core"]
            if not p.get("n"):
                rows.append([cond, "error: " + "; ".join(v["errors"])[:80], "", "", "", "", ""])
                continue
            v["net_of_bare_pct_core"] = p["median"] - bare_pct
            rows.append(
                [
                    cond,
                    f"{p['median']:.4f}",
                    f"{p['median'] - bare_pct:.4f}",
                    f"{p['min']:.4f}-{p['max']:.4f}",
                    f"{ch['min']:.4f}-{ch['max']:.4f}",
                    v["threads"],
                    fmt(v["start_ms"]["median"], 1),
                ]
            )
        wp1 = per_idle[WP1].get("net_of_bare_pct_core")
        wp01 = per_idle[WP01].get("net_of_bare_pct_core")
        cc = per_idle[CC].get("net_of_bare_pct_core")
        wake = per_idle[WAKE].get("net_of_bare_pct_core")
        target = {
            "wattprint_1s_pct_core": wp1,
            "target_pct_core": TARGET_IDLE_PCT,
            "met": wp1 is not None and wp1 < TARGET_IDLE_PCT,
            "codecarbon_1s_over_wattprint_1s": cc / wp1 if cc and wp1 else None,
            "codecarbon_1s_over_wattprint_0.1s": cc / wp01 if cc and wp01 else None,
            # against the floor of the same run: it moves less than the absolute figure, though it moves
            # too (a noisier VM charges more for each page touched, and a tick touches more than a wake-up)
            "wattprint_1s_over_empty_thread": wp1 / wake if wp1 and wake and wake > 0 else None,
        }
        title = (
            f"Idle: tracker CPU while the tracked code sleeps ({args.idle_reps} x "
            f"{args.idle_seconds:g} s windows after {args.settle:g} s settle; fresh process each; "
            "medians)"
        )
        print_table(title, headers, rows)
        cc_ratio = target["codecarbon_1s_over_wattprint_1s"] or float("nan")
        floor_ratio = target["wattprint_1s_over_empty_thread"] or float("nan")
        print(
            f"target: wattprint at 1 s under {TARGET_IDLE_PCT} % of a core: "
            f"{'MET' if target['met'] else 'MISSED'} ({fmt(wp1 or float('nan'), 4)} %); "
            f"CodeCarbon 1 s / wattprint 1 s = {fmt(cc_ratio, 2)}; "
            f"wattprint 1 s / empty thread = {fmt(floor_ratio, 2)}"
        )
        data["idle"] = {"results": idle, "per_condition": per_idle, "target": target}
        md_parts += [
            f"## Idle tracker CPU ({args.idle_reps} x {args.idle_seconds:g} s windows per condition, "
            "interleaved; fresh process each)",
            "The main thread sleeps, so the process CPU time in the window is the tracker's threads "
            "(wattprint: sampling and a checkpoint to SQLite every 5 s). `net of bare` subtracts a sleeping "
            "process with no tracker; the empty thread is the floor of any in-process sampler here.",
            markdown_table(headers, rows),
            f"Target: wattprint at 1 s under {TARGET_IDLE_PCT} % of one core: "
            f"{'MET' if target['met'] else 'MISSED'} ({fmt(wp1 or float('nan'), 4)} %). "
            f"CodeCarbon at 1 s uses {fmt(cc_ratio, 2)}x "
            "wattprint's CPU at 1 s; wattprint at 1 s costs "
            f"{fmt(floor_ratio, 2)}x the empty thread waking every second (net of bare, same run).",
        ]

    data["duration_s"] = time.monotonic() - t_begin
    path = write_results("bench_overhead", data, "\n\n".join(md_parts), args.out_dir)
    print(f"\nresults: {path} and {path.with_suffix('.md')} ({data['duration_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
