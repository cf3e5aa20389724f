"""Carbon-aware scheduling: savings on the DE, GB and FR 2020 traces, and planning throughput.

    python benchmarks/bench_schedule.py [--traces DIR] [--jobs-n 10000] [--repeats 3] [--loop-jobs 1000]

1. Savings (backtest, `wattprint.schedule.backtest`) over calendar year 2020 of each trace, for nightly
   jobs (2 h inside 22:00-06:00 every night), ad-hoc jobs (1 h due within 8 h; 4 h due within 24 h;
   arrivals uniformly random over the year, seeded), non-interruptible and interruptible (no minimum
   chunk), with forecast errors of 0, 5 and 10 % (Gaussian noise per step with a standard deviation of
   that share of the trace's mean, one forecast per repeat, averaged over --repeats). Savings are of
   total emissions against running every job at its arrival; "optimum" is perfect foresight (= the
   0 % column). Timestamps of the traces are naive and read as UTC, so nightly windows are in the
   traces' own clock.
2. Throughput: 10,000 ad-hoc jobs (1 h within 8 h, and 24 h within 7 days) on the DE 2020 trace
   (15-min steps, 35,136 steps), planned with `plan_many` (vectorised, exact) against a
   straightforward per-start Python loop (every step boundary in [E, D - d] plus E and D - d, each
   integrated step by step; run on --loop-jobs jobs and scaled). The loop's plans are checked to be
   never better than the vectorised optimum.

The traces (../shared/data/carbon-traces) are test and benchmark inputs only; they are not shipped.
Results: benchmarks/results/schedule.{json,md}.
"""

from __future__ import annotations

import argparse
import bisect
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

from wattprint.intensity.trace import TraceProvider  # noqa: E402
from wattprint.schedule import backtest, plan_many  # noqa: E402
from wattprint.schedule.grid import Grid  # noqa: E402

REGIONS = {"DE": "de-2020.csv", "GB": "gb-2020.csv", "FR": "fr-2020.csv"}
YEAR = (datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2021, 1, 1, tzinfo=timezone.utc))
ERRORS = (0.0, 5.0, 10.0)


def load(traces: Path, region: str) -> Any:
    provider = TraceProvider(traces / REGIONS[region], region=region)
    return provider.series(region, *YEAR)


def savings(traces: Path, jobs_n: int, repeats: int) -> list[dict[str, Any]]:
    families = ["nightly:2h@22:00-06:00", f"adhoc:1h/8h:{jobs_n}", f"adhoc:4h/24h:{jobs_n}"]
    out = []
    for region in REGIONS:
        grid = Grid.from_series(load(traces, region))
        by_error = {
            err: backtest(
                grid,
                families,
                forecast_error_pct=err,
                repeats=1 if err == 0 else repeats,
                interruptible=[False, True],
            )
            for err in ERRORS
        }
        for i, row in enumerate(by_error[0.0].rows):
            entry = {
                "region": region,
                "jobs": row.jobs,
                "interruptible": row.interruptible,
                "n": row.n,
                "at_once_g_per_kwh": row.baseline_intensity,
                "optimal_g_per_kwh": row.optimal_intensity,
                "optimal_savings_pct": row.optimal_savings_pct,
            }
            for err in ERRORS:
                r = by_error[err].rows[i]
                assert r.jobs == row.jobs and r.interruptible == row.interruptible and r.deadline_misses == 0
                entry[f"savings_pct_err{err:g}"] = r.savings_pct
                entry[f"share_of_optimum_pct_err{err:g}"] = r.share_of_optimum_pct
            out.append(entry)
    return out


# -- the straightforward reference ----------------------------------------------------------------
def loop_plan(lo: list[float], hi: list[float], val: list[float], e: float, dl: float, d: float) -> float:
    """Min emission integral over starts at E, D - d and every step start in between (no vectors)."""

    def integral(a: float, b: float) -> float | None:
        i = max(bisect.bisect_right(lo, a) - 1, 0)
        total, covered = 0.0, 0.0
        while i < len(lo) and lo[i] < b:
            x, y = max(a, lo[i]), min(b, hi[i])
            if y > x:
                total += (y - x) * val[i]
                covered += y - x
            i += 1
        return total if covered >= (b - a) - 1e-6 else None

    latest = dl - d
    candidates = [e, latest]
    i = bisect.bisect_left(lo, e)
    while i < len(lo) and lo[i] <= latest:
        candidates.append(lo[i])
        i += 1
    best = float("inf")
    for s in candidates:
        f = integral(s, s + d)
        if f is not None and f < best:
            best = f
    return best


def throughput(traces: Path, jobs_n: int, loop_jobs: int) -> list[dict[str, Any]]:
    series = load(traces, "DE")
    t0 = time.perf_counter()
    grid = Grid.from_series(series)
    grid_s = time.perf_counter() - t0
    lo, hi, val = grid.lo.tolist(), grid.hi.tolist(), grid.val.tolist()
    rng = np.random.default_rng(42)
    rows = []
    for label, d, window in (("1h within 8h", 3600.0, 8 * 3600.0), ("24h within 7d", 86400.0, 7 * 86400.0)):
        e = rng.uniform(grid.start_s, grid.end_s - window, jobs_n)
        e_ep = e + grid.origin_epoch
        for interruptible in (False, True):
            times = []
            for _ in range(3):
                t = time.perf_counter()
                bp = plan_many(grid, e_ep, e_ep + window, d, interruptible=interruptible)
                times.append(time.perf_counter() - t)
            vec_s = float(np.median(times))
            row = {
                "jobs": f"{jobs_n} x {label}",
                "interruptible": interruptible,
                "steps": int(grid.lo.size),
                "grid_build_s": grid_s,
                "vectorised_s": vec_s,
                "vectorised_jobs_per_s": jobs_n / vec_s,
            }
            if not interruptible:
                k = min(loop_jobs, jobs_n)
                t = time.perf_counter()
                ref = [loop_plan(lo, hi, val, float(e[j]), float(e[j] + window), d) for j in range(k)]
                loop_s = (time.perf_counter() - t) * jobs_n / k
                exact = bp.mean_intensity[:k] * d
                ref_arr = np.array(ref)
                assert np.all(exact <= ref_arr * (1 + 1e-9) + 1e-6), "the exact plan must never be worse"
                row.update(
                    loop_jobs_timed=k,
                    loop_s_scaled=loop_s,
                    loop_jobs_per_s=jobs_n / loop_s,
                    speedup=loop_s / vec_s,
                    loop_worse_share=float(np.mean(ref_arr > exact * (1 + 1e-9) + 1e-6)),
                )
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "carbon-traces")
    ap.add_argument("--jobs-n", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--loop-jobs", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    info = machine_info()
    t = time.perf_counter()
    sav = savings(args.traces, args.jobs_n, args.repeats)
    sav_s = time.perf_counter() - t
    thr = throughput(args.traces, args.jobs_n, args.loop_jobs)

    headers = [
        "region",
        "jobs",
        "interr.",
        "at once g/kWh",
        "optimum %",
        "err 5% %",
        "err 10% %",
        "share @5/@10 %",
    ]
    rows = [
        [
            s["region"],
            s["jobs"],
            "yes" if s["interruptible"] else "no",
            f"{s['at_once_g_per_kwh']:.1f}",
            f"{s['savings_pct_err0']:.2f}",
            f"{s['savings_pct_err5']:.2f}",
            f"{s['savings_pct_err10']:.2f}",
            f"{s['share_of_optimum_pct_err5']:.0f} / {s['share_of_optimum_pct_err10']:.0f}",
        ]
        for s in sav
    ]
    print_table("Savings against running at once, 2020 (optimum = perfect foresight = 0 % error)", headers, rows)
    th_headers = ["jobs", "interr.", "vectorised s", "jobs/s", "Python loop s (scaled)", "speed-up"]
    th_rows = [
        [
            r["jobs"],
            "yes" if r["interruptible"] else "no",
            f"{r['vectorised_s']:.3f}",
            f"{r['vectorised_jobs_per_s']:.0f}",
            f"{r['loop_s_scaled']:.1f}" if "loop_s_scaled" in r else "-",
            f"{r['speedup']:.0f}x" if "speedup" in r else "-",
        ]
        for r in thr
    ]
    print_table("Planning throughput, DE 2020 (35,136 x 15-min steps)", th_headers, th_rows)
    md = "\n\n".join(
        [
            "# Carbon-aware scheduling benchmark",
            __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
            "## Savings against running at once (% of operational CO2e), 2020\n\n" + markdown_table(headers, rows),
            "## Planning throughput\n\n" + markdown_table(th_headers, th_rows),
            f"Backtests took {sav_s:.1f} s in all. The straightforward loop only tries step boundaries, "
            "E and D - d; it misses the b - d candidates, so it is sometimes worse, too "
            "(loop_worse_share in the JSON).",
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    path = write_results(
        "schedule", {"machine": info, "savings": sav, "throughput": thr, "backtest_s": sav_s}, md, args.out
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
