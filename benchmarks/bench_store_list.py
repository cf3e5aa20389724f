"""`wattprint runs list` over a large store: the table (newest 50), --json --limit 20 and --json of every run.

    python benchmarks/bench_store_list.py [--runs 100000] [--repeats 3]

Builds a temporary SQLite store of --runs copies of one real tracked run's record (about 2.6 KB of JSON each,
50 distinct names, start times spread over a year, 1 % interrupted), then times each command in fresh
processes, as a user runs them: wall time and peak memory (ru_maxrss of the child).
Results: benchmarks/results/store_list.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

COMMANDS = {
    "runs list (table, newest 50)": ["runs", "list"],
    "runs list --json --limit 20": ["runs", "list", "--json", "--limit", "20"],
    "runs list --status interrupted --limit 5": ["runs", "list", "--status", "interrupted", "--limit", "5"],
    "runs list --json (every run)": ["runs", "list", "--json"],
}


def build(home: Path, count: int) -> int:
    """A store of `count` runs cloned from one real run; returns the size of one record's JSON."""
    env = dict(os.environ, WATTPRINT_HOME=str(home))
    seed = "import wattprint\nwith wattprint.track('seed', interval=0.05) as t:\n    t.log(accuracy=0.9)\n"
    subprocess.run([sys.executable, "-c", seed], env=env, check=True, timeout=120)
    con = sqlite3.connect(home / "wattprint.db")
    cursor = con.execute("SELECT * FROM runs")
    columns = [d[0] for d in cursor.description]
    row = cursor.fetchone()
    record = json.loads(row[columns.index("record")])
    rows = []
    for i in range(count - 1):
        run_id = uuid.uuid4().hex
        status = "interrupted" if i % 100 == 0 else "finished"  # 1 % interrupted, for the status filter
        record.update(run_id=run_id, name=f"job-{i % 50}", status=status)
        values = list(row)
        values[columns.index("run_id")], values[columns.index("name")] = run_id, record["name"]
        values[columns.index("status")] = status
        values[columns.index("record")] = json.dumps(record)
        day = f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}"
        values[columns.index("started_at")] = f"{day} {i % 24:02d}:00:00.{i % 10**6:06d}"
        rows.append(values)
    con.executemany(f"INSERT INTO runs VALUES ({','.join('?' * len(columns))})", rows)
    con.commit()
    con.close()
    return len(json.dumps(record))


def time_command(args: list[str], home: Path) -> tuple[float, float]:
    """(wall s, peak RSS MiB) of one fresh `wattprint ARGS` process (its own rusage, through wait4)."""
    env = dict(os.environ, WATTPRINT_HOME=str(home))
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "wattprint.cli.main", *args], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{args} exited with {child.returncode}")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--build-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_only is not None:  # in a child: the rows built here must not count in the timed processes' RSS
        print(build(args.build_only, args.runs))
        return 0
    info = machine_info()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        built = subprocess.run(
            [sys.executable, __file__, "--runs", str(args.runs), "--build-only", str(home)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        record_bytes = int(built.stdout.split()[-1])
        results, rows = {}, []
        for label, argv in COMMANDS.items():
            walls, peaks = zip(*(time_command(argv, home) for _ in range(args.repeats)), strict=True)
            results[label] = {
                "wall_s": list(walls),
                "median_wall_s": statistics.median(walls),
                "peak_rss_mib": max(peaks),
            }
            rows.append(
                [label, f"{statistics.median(walls):.2f}", f"{min(walls):.2f}-{max(walls):.2f}", f"{max(peaks):.0f}"]
            )
    title = f"wattprint runs list over {args.runs:,} stored runs ({record_bytes} B of JSON each), fresh processes"
    headers = ["command", "median wall s", "range s", "peak RSS MiB"]
    print_table(title, headers, rows)
    md = "\n\n".join(
        [
            f"# {title}",
            f"Produced by `benchmarks/bench_store_list.py`; SQLite store, {args.repeats} runs of each command.",
            markdown_table(headers, rows),
            "Peak RSS: the command's own ru_maxrss (wait4), the largest of its runs.",
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    path = write_results(
        "store_list",
        {"machine": info, "args": vars(args) | {"out_dir": str(args.out_dir)}, "results": results},
        md,
        args.out_dir,
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
