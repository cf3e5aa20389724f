"""What memory costs to a thread that wakes from sleep: the machine property behind the idle figures.

    python benchmarks/bench_cold_pages.py [--pages 1000] [--reps 5]

A tracker's sampler sleeps about a second between ticks. On a shared VM the first touch of a page
after such a sleep can cost far more than a cache miss (the vCPU idles, the host runs others, TLB and
caches come back cold), so an idle tracker's CPU follows the number of distinct pages (code and data)
it touches per wake-up more than its instruction count. This touches `--pages` distinct 4 KiB pages
of a buffer (one byte each) and, for contrast, the same number of bytes in one page, right after
sleeping 0, 0.1, 1 and 3 s; wall time per touch, medians of `--reps`.

Results: benchmarks/results/bench_cold_pages.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, markdown_table, median, print_table, write_results  # noqa: E402

PAGE = 4096
SLEEPS_S = (0.0, 0.1, 1.0, 3.0)


def touch(buf: bytearray, count: int, stride: int) -> int:
    total = 0
    for i in range(0, count * stride, stride):
        total += buf[i]
    return total


def timed(buf: bytearray, count: int, stride: int, sleep_s: float) -> float:
    """Seconds to touch `count` bytes `stride` apart, right after sleeping `sleep_s`."""
    time.sleep(sleep_s)
    start = time.perf_counter()
    touch(buf, count, stride)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=1000, help="distinct pages touched per measurement")
    ap.add_argument("--reps", type=int, default=5, help="measurements per sleep length")
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write results")
    args = ap.parse_args()
    if args.pages < 1 or args.reps < 1:
        ap.error("--pages and --reps must be >= 1")

    buf = bytearray(args.pages * PAGE)
    touch(buf, args.pages, PAGE)  # every page mapped before measuring
    rows, results = [], []
    for sleep_s in SLEEPS_S:
        spread = median([timed(buf, args.pages, PAGE, sleep_s) for _ in range(args.reps)])
        packed = median([timed(buf, args.pages, 1, sleep_s) for _ in range(args.reps)])
        per_page_us = spread / args.pages * 1e6
        results.append(
            {"sleep_s": sleep_s, "distinct_pages_s": spread, "one_page_s": packed, "us_per_page": per_page_us}
        )
        rows.append([f"{sleep_s:g}", f"{spread * 1e3:.2f}", f"{per_page_us:.2f}", f"{packed * 1e3:.2f}"])
    headers = [
        "sleep before, s",
        f"{args.pages} distinct pages, ms",
        "us per page",
        f"{args.pages} bytes in one page, ms",
    ]
    title = f"Touching memory right after a sleep (medians of {args.reps})"
    print_table(title, headers, rows)
    info = machine_info()
    md = "\n\n".join(["# bench_cold_pages", machine_markdown(info), f"## {title}", markdown_table(headers, rows)])
    path = write_results(
        "bench_cold_pages",
        {
            "benchmark": "bench_cold_pages",
            "machine": info,
            "settings": vars(args) | {"out_dir": None},
            "results": results,
        },
        md,
        args.out_dir,
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
