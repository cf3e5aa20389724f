"""Many processes of short tracked runs against one real PostgreSQL server: nothing lost, connections bounded.

    python benchmarks/bench_team_store_load.py [--processes 8] [--seconds 60] [--max-connections 100]

Starts a throwaway PostgreSQL server (tests/postgres_server.py: initdb into a temporary directory, loopback
only, max_connections as given), then --processes worker processes that each run short tracked runs
(`wattprint.track`, 50 ms of sleep, 0.05 s sampling, 0.2 s checkpoints) back to back for --seconds and report
how many they finished. Meanwhile this process runs `wattprint runs list --json --limit 5` every 2 s and
samples the database's connections (pg_stat_activity). At the end: runs finished by the workers against runs
stored, list calls that failed, the most connections seen. Results: benchmarks/results/team_store_load.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))
from _common import machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

WORKER = """
import sys, time, wattprint
end, done = time.monotonic() + float(sys.argv[1]), 0
while time.monotonic() < end:  # every run counts, whether or not its tracker saw a store fault
    with wattprint.track("load-" + sys.argv[2], interval=0.05, checkpoint=0.2) as t:
        time.sleep(0.05)
    done += t.record.status == "finished"
print(done)
"""


def main() -> int:
    import psycopg
    from sqlalchemy.engine import make_url
    from tests.postgres_server import pg_server

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-connections", type=int, default=100)
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args()
    info = machine_info()
    with pg_server(max_connections=args.max_connections) as url:
        base = make_url(url)
        env = dict(os.environ, WATTPRINT_DB=url, PYTHONPATH=str(BENCH_DIR.parent / "src"))
        stack = contextlib.ExitStack()  # workers log to files: a pipe nobody reads could fill up and stall them
        logs = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(args.processes)]  # noqa: SIM115
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, str(args.seconds), str(i)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=logs[i],
                text=True,
            )
            for i in range(args.processes)
        ]
        list_ok, list_failed, list_s, connections = 0, [], [], []
        with psycopg.connect(
            host=base.host, port=base.port, user=base.username, dbname="postgres", autocommit=True
        ) as admin:
            while any(w.poll() is None for w in workers):
                (count,) = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (base.database,)
                ).fetchone()
                connections.append(int(count))
                t0 = time.perf_counter()
                listed = subprocess.run(
                    [sys.executable, "-m", "wattprint.cli.main", "runs", "list", "--json", "--limit", "5"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                list_s.append(time.perf_counter() - t0)
                if listed.returncode == 0:
                    list_ok += 1
                else:
                    list_failed.append(listed.stderr.strip().splitlines()[-1:] or ["?"])
                time.sleep(2.0)
        finished = []
        for w, log_file in zip(workers, logs, strict=True):
            out, _ = w.communicate(timeout=120)
            finished.append(int(out.strip().splitlines()[-1]) if out.strip() else 0)
            log_file.seek(0)
            if w.returncode != 0:
                print(log_file.read().decode(errors="replace")[-2000:], file=sys.stderr)
        stack.close()
        with psycopg.connect(host=base.host, port=base.port, user=base.username, dbname=base.database) as conn:
            (stored,) = conn.execute("SELECT count(*) FROM runs WHERE status = 'finished'").fetchone()
    reported = sum(finished)
    rows = [
        ["runs finished (reported by the workers)", f"{reported:,}"],
        ["runs stored as finished", f"{stored:,}"],
        ["lost", f"{reported - stored:,}"],
        ["runs list calls ok / failed", f"{list_ok} / {len(list_failed)}"],
        ["runs list wall s, median (max)", f"{statistics.median(list_s):.2f} ({max(list_s):.2f})"],
        ["connections to the database, max (median)", f"{max(connections)} ({statistics.median(connections):.0f})"],
    ]
    title = (
        f"{args.processes} processes x {args.seconds:g} s of short runs on PostgreSQL "
        f"(max_connections {args.max_connections})"
    )
    print_table(title, ["", "value"], rows)
    verdict = "PASS" if reported == stored and not list_failed else "FAIL"
    print(f"{verdict}  0 runs lost and runs list answered throughout")
    md = "\n\n".join(
        [
            f"# {title}",
            "Produced by `benchmarks/bench_team_store_load.py`.",
            markdown_table(["", "value"], rows),
            f"- {verdict}: 0 runs lost and runs list answered throughout",
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    data = {
        "machine": info,
        "args": vars(args) | {"out_dir": str(args.out_dir)},
        "finished_per_process": finished,
        "stored_finished": stored,
        "list_ok": list_ok,
        "list_failed": list_failed,
        "list_s": list_s,
        "connections": connections,
    }
    path = write_results("team_store_load", data, md, args.out_dir)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
