"""Start-up cost: importing wattprint and starting a tracker, against CodeCarbon, in fresh processes.

    python benchmarks/bench_startup.py [--reps 7] [--body 0.5] [--no-online] [--quick]

1. Interpreter + import, each in a fresh `python -c` process, wall time seen from the parent:
   `pass`, `import wattprint`, `from wattprint import Tracker` (the lazily imported tracker module),
   `import codecarbon`. The cost of an import is its median minus the bare interpreter's median.
2. Tracker start and stop, timed inside a fresh process (one process per repetition):
   wattprint `Tracker(...).start()` (the first start of the process, with every lazy import it
   triggers, then a second start in the same process) and CodeCarbon's `OfflineEmissionsTracker(...)`
   construct + `.start()` (first and second), each followed by `time.sleep(--body)` and `.stop()`.
   The online `EmissionsTracker` is timed too unless --no-online, in a child killed after 60 s: this
   machine has no network, so its look-ups fail (fast here) and it falls back to defaults.

3. Whole processes, as a user feels them (issue 16): wall time and CPU time of the whole process, its
   threads and reaped children included (os.wait4's rusage), for `python -c pass`, `wattprint --help`,
   `wattprint run -q -- true`, and a script that imports a tracker, starts it, sleeps --whole-sleep
   seconds and stops it: wattprint's `Tracker` against CodeCarbon's `OfflineEmissionsTracker`. Two floors
   beside them: `python -c 'import typer'` and `python -c 'import typer, pydantic'`, what any command of a
   CLI built on them costs at least.

Conditions are interleaved within each repetition and their order rotates between repetitions.
Results: benchmarks/results/bench_startup.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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

IMPORTS: dict[str, str] = {
    "python -c pass": "pass",
    "import wattprint": "import wattprint",
    "from wattprint import Tracker": "from wattprint import Tracker",
    "import codecarbon": "import codecarbon",
}
CHILD_TIMEOUT_S = 60.0
PHASE_LABELS = {
    "import": "import (in process)",
    "start_1": "first start",
    "stop_1": "first stop",
    "start_2": "second start",
    "stop_2": "second stop",
    "run_1": "first run, start to stop (incl. body)",
    "start_1_import": "  first start: lazy import of the tracker",
    "start_1_construct": "  first start: constructor",
    "start_1_start_call": "  first start: .start()",
    "start_2_construct": "  second start: constructor",
    "start_2_start_call": "  second start: .start()",
}


# -- children: one fresh process per measurement ---------------------------------------------------
# Run with `python -c CHILD_CODE KIND BODY_S`, so that nothing but the code measured is imported
# before the clock starts (not even this script's own imports). Prints one JSON line.
CHILD_CODE = r"""
import sys, time
kind, body_s = sys.argv[1], float(sys.argv[2])
out = {}
def now():
    return time.perf_counter(), time.process_time()
def since(t):
    wall, cpu = now()
    return {"wall_s": wall - t[0], "cpu_s": cpu - t[1]}
if kind == "wattprint":
    t = now()
    import wattprint
    out["import"] = since(t)
    for i in (1, 2):
        t = now()
        cls = wattprint.Tracker  # the first access imports wattprint.tracking.tracker
        out[f"start_{i}_import"] = since(t)
        t2 = now()
        tracker = cls(f"bench-startup-{i}", interval=1.0, region="FR")
        out[f"start_{i}_construct"] = since(t2)
        t2 = now()
        tracker.start()
        out[f"start_{i}_start_call"] = since(t2)
        out[f"start_{i}"] = since(t)
        time.sleep(body_s)
        t2 = now()
        record = tracker.stop()
        out[f"stop_{i}"] = since(t2)
        out[f"run_{i}"] = since(t)
        if record.degraded:
            out["degraded"] = record.degraded
else:
    import logging
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    t = now()
    import codecarbon
    out["import"] = since(t)
    for i in (1, 2):
        t = now()
        if kind == "codecarbon-online":
            tracker = codecarbon.EmissionsTracker(save_to_file=False, log_level="error", measure_power_secs=1)
        else:
            tracker = codecarbon.OfflineEmissionsTracker(
                country_iso_code="FRA", save_to_file=False, log_level="error", measure_power_secs=1)
        out[f"start_{i}_construct"] = since(t)
        t2 = now()
        tracker.start()
        out[f"start_{i}_start_call"] = since(t2)
        out[f"start_{i}"] = since(t)
        time.sleep(body_s)
        t2 = now()
        tracker.stop()
        out[f"stop_{i}"] = since(t2)
        out[f"run_{i}"] = since(t)
import json
print(json.dumps(out))
"""


def run_child(kind: str, body_s: float, cwd: str, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, "-c", CHILD_CODE, kind, str(body_s)]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S:g} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"}
    return json.loads(lines[-1])


def time_import(code: str, cwd: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, timeout=CHILD_TIMEOUT_S)
    return time.perf_counter() - t0


WHOLE_SCRIPTS = {
    "wattprint": (
        "import sys, time, wattprint\n"
        "t = wattprint.Tracker('bench-whole', region='FR').start()\n"
        "time.sleep(float(sys.argv[1]))\n"
        "t.stop()\n"
    ),
    "codecarbon": (
        "import logging, sys, time\n"
        "logging.getLogger('codecarbon').setLevel(logging.ERROR)\n"
        "from codecarbon import OfflineEmissionsTracker\n"
        "t = OfflineEmissionsTracker(country_iso_code='FRA', save_to_file=False, log_level='error')\n"
        "t.start()\n"
        "time.sleep(float(sys.argv[1]))\n"
        "t.stop()\n"
    ),
}


def whole_process(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall s, CPU s) of a whole process: user + system time of all its threads and reaped children."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def whole_processes(reps: int, sleep_s: float, cwd: str, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Section 3: each command `reps` times, interleaved, order rotating."""
    cli = [sys.executable, "-m", "wattprint.cli.main"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        # floors: the CLI library alone, and with pydantic, through which typer >= 0.26 converts every
        # parameter of the command it runs (and which the run record is built with)
        "python -c 'import typer'": [sys.executable, "-c", "import typer"],
        "python -c 'import typer, pydantic'": [sys.executable, "-c", "import typer, pydantic"],
        "wattprint --help": [*cli, "--help"],
        "wattprint run -q -- true": [*cli, "run", "-q", "--", "true"],
        f"wattprint Tracker, start, sleep {sleep_s:g} s, stop": [
            sys.executable,
            "-c",
            WHOLE_SCRIPTS["wattprint"],
            str(sleep_s),
        ],
        f"CodeCarbon OfflineEmissionsTracker, start, sleep {sleep_s:g} s, stop": [
            sys.executable,
            "-c",
            WHOLE_SCRIPTS["codecarbon"],
            str(sleep_s),
        ],
    }
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in commands}
    names = list(commands)
    for rep in range(reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            samples[name].append(whole_process(commands[name], cwd, env))
        print(f"  whole processes: repetition {rep + 1}/{reps} done", flush=True)
    return {
        name: {"wall": summary([w for w, _ in vals]), "cpu": summary([c for _, c in vals]), "samples": vals}
        for name, vals in samples.items()
    }


def _describe_target(target: dict[str, Any]) -> str:
    parts = [f"{k}={fmt(v, 2) if isinstance(v, float) else v}" for k, v in target.items() if k != "met"]
    return ", ".join(parts)


# -- parent ----------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7, help="repetitions of each measurement (>= 7 advised)")
    ap.add_argument("--body", type=float, default=0.5, help="seconds each tracked block sleeps")
    ap.add_argument("--no-online", action="store_true", help="skip CodeCarbon's online EmissionsTracker")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 repetitions, no online tracker")
    ap.add_argument("--whole-reps", type=int, default=5, help="repetitions of each whole-process measurement")
    ap.add_argument(
        "--whole-sleep",
        type=float,
        default=20.0,
        help="seconds the whole-process tracker scripts sleep between start and stop",
    )
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write results")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.no_online, args.whole_reps, args.whole_sleep = 2, True, 2, 2.0
    info = machine_info()
    tmp = tempfile.mkdtemp(prefix="wattprint-bench-startup-")
    env = dict(os.environ, WATTPRINT_HOME=os.path.join(tmp, "home"))
    env.pop("WATTPRINT_DB", None)
    print(f"start-up benchmark: {args.reps} repetitions in fresh processes; WATTPRINT_HOME={env['WATTPRINT_HOME']}")
    print("no network on this machine: CodeCarbon runs as OfflineEmissionsTracker(country_iso_code='FRA')")

    # pip compiles the .pyc files of a wheel it installs (CodeCarbon's are); an editable install run with
    # PYTHONDONTWRITEBYTECODE=1 (as here) never writes them and would recompile wattprint at every import
    import compileall

    import wattprint

    compileall.compile_dir(str(Path(wattprint.__file__).parent), quiet=1)
    # warm the OS file cache once, unmeasured
    for code in IMPORTS.values():
        time_import(code, tmp, env)

    import_times: dict[str, list[float]] = {k: [] for k in IMPORTS}
    kinds = ["wattprint", "codecarbon"] + ([] if args.no_online else ["codecarbon-online"])
    children: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    errors: dict[str, list[str]] = {}
    t_begin = time.monotonic()
    for rep in range(args.reps):
        names = list(IMPORTS)
        names = names[rep % len(names) :] + names[: rep % len(names)]
        for name in names:
            import_times[name].append(time_import(IMPORTS[name], tmp, env))
        order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
        for kind in order:
            res = run_child(kind, args.body, tmp, env)
            if "error" in res:
                errors.setdefault(kind, []).append(res["error"])
                print(f"  {kind}: {res['error']}", file=sys.stderr)
            else:
                children[kind].append(res)
        print(f"  repetition {rep + 1}/{args.reps} done ({time.monotonic() - t_begin:.0f} s)", flush=True)

    # -- imports
    bare = median(import_times["python -c pass"])
    imp_rows, imp_json = [], {}
    for name, vals in import_times.items():
        s = summary(vals)
        added = s["median"] - bare
        imp_json[name] = {**s, "added_over_bare_s": added, "samples": vals}
        imp_rows.append(
            [
                name,
                fmt(s["median"] * 1e3, 1),
                fmt(s["min"] * 1e3, 1),
                "" if name == "python -c pass" else fmt(added * 1e3, 1),
            ]
        )
    wp_added = imp_json["import wattprint"]["added_over_bare_s"]
    cc_added = imp_json["import codecarbon"]["added_over_bare_s"]
    imp_headers = ["process", "median ms", "min ms", "added ms (median - bare)"]

    # -- tracker start / stop
    phases = ["import", "start_1", "stop_1", "start_2", "stop_2", "run_1"]
    parts = ["start_1_import", "start_1_construct", "start_1_start_call", "start_2_construct", "start_2_start_call"]
    tr_json: dict[str, Any] = {}
    for kind, runs in children.items():
        tr_json[kind] = {"n": len(runs), "errors": errors.get(kind, [])}
        for ph in phases + parts:
            walls = [r[ph]["wall_s"] for r in runs if ph in r]
            cpus = [r[ph]["cpu_s"] for r in runs if ph in r]
            tr_json[kind][ph] = {"wall": summary(walls), "cpu": summary(cpus), "wall_samples": walls}
        tr_json[kind]["degraded"] = [r.get("degraded") for r in runs if r.get("degraded")]

    def med(kind: str, ph: str, key: str = "wall") -> float:
        s = tr_json.get(kind, {}).get(ph, {}).get(key, {})
        return s.get("median", float("nan")) if s else float("nan")

    def mn(kind: str, ph: str) -> float:
        s = tr_json.get(kind, {}).get(ph, {}).get("wall", {})
        return s.get("min", float("nan")) if s else float("nan")

    labels = {
        "wattprint": "wattprint Tracker",
        "codecarbon": "CodeCarbon OfflineEmissionsTracker",
        "codecarbon-online": "CodeCarbon EmissionsTracker (online, no network)",
    }
    tr_headers = ["tracker", "phase", "median ms", "min ms", "median CPU ms", "CodeCarbon / wattprint"]
    tr_rows = []
    ratios: dict[str, float] = {}
    for kind in children:
        for ph in phases + [p for p in parts if tr_json[kind][p]["wall"].get("n")]:
            ratio = ""
            if kind != "wattprint" and ph in phases:
                r = med(kind, ph) / med("wattprint", ph)
                ratios[f"{kind}/{ph}"] = r
                ratio = f"{r:.1f}x" if ph in phases else ""
            tr_rows.append(
                [
                    labels[kind],
                    PHASE_LABELS.get(ph, ph),
                    fmt(med(kind, ph) * 1e3, 1),
                    fmt(mn(kind, ph) * 1e3, 1),
                    fmt(med(kind, ph, "cpu") * 1e3, 1),
                    ratio,
                ]
            )

    whole = whole_processes(args.whole_reps, args.whole_sleep, tmp, env)
    bare_whole = whole["python -c pass"]["wall"]["median"]
    wp_script, cc_script = (k for k in whole if "Tracker" in k)
    wh_headers = ["process", "median wall ms", "median CPU ms", "wall / python -c pass"]
    wh_rows = [
        [
            name,
            fmt(w["wall"]["median"] * 1e3, 1),
            fmt(w["cpu"]["median"] * 1e3, 1),
            f"{w['wall']['median'] / bare_whole:.1f}x",
        ]
        for name, w in whole.items()
    ]
    cpu_ratio = whole[wp_script]["cpu"]["median"] / whole[cc_script]["cpu"]["median"]

    start_ms = med("wattprint", "start_1") * 1e3
    targets = {
        "wattprint run -q -- true at most 10x python -c pass (whole process, wall)": {
            "ratio": whole["wattprint run -q -- true"]["wall"]["median"] / bare_whole,
            "met": whole["wattprint run -q -- true"]["wall"]["median"] <= 10 * bare_whole,
        },
        "wattprint --help at most 6x python -c pass (whole process, wall)": {
            "ratio": whole["wattprint --help"]["wall"]["median"] / bare_whole,
            "met": whole["wattprint --help"]["wall"]["median"] <= 6 * bare_whole,
        },
        "tracker script CPU at most 1/8 of CodeCarbon's (whole process)": {
            "ratio": cpu_ratio,
            "met": cpu_ratio <= 1 / 8,
        },
        "import no slower than CodeCarbon's (added ms)": {
            "wattprint": wp_added * 1e3,
            "codecarbon": cc_added * 1e3,
            "met": wp_added <= cc_added,
        },
        "first tracker start < 50 ms": {"wattprint_ms": start_ms, "met": start_ms < 50.0},
        "tracker start 20x faster than CodeCarbon": {
            "ratio": ratios.get("codecarbon/start_1"),
            "met": (ratios.get("codecarbon/start_1") or 0) >= 20,
        },
    }
    # what no CLI built on typer and pydantic can go below (wall / python -c pass)
    floors = {
        name: whole[name]["wall"]["median"] / bare_whole
        for name in ("python -c 'import typer'", "python -c 'import typer, pydantic'")
    }
    floor_lines = [f"FLOOR: {name}: {ratio:.1f}x python -c pass" for name, ratio in floors.items()]
    print_table(f"Interpreter + import, {args.reps} fresh processes each", imp_headers, imp_rows)
    print_table(
        f"Tracker start/stop inside a fresh process ({args.reps} processes each; "
        f"start_1 = first start incl. lazy imports; body {args.body:g} s)",
        tr_headers,
        tr_rows,
    )
    print_table(
        f"Whole processes ({args.whole_reps} each; CPU = user + system of all threads and children)",
        wh_headers,
        wh_rows,
    )
    print("\ntargets:")
    for k, v in targets.items():
        print(f"  {'MET   ' if v['met'] else 'MISSED'}  {k}: {_describe_target(v)}")
    print("\n".join(f"  {line}" for line in floor_lines))

    data = {
        "benchmark": "bench_startup",
        "machine": info,
        "settings": {
            "reps": args.reps,
            "body_s": args.body,
            "online": not args.no_online,
            "codecarbon": "OfflineEmissionsTracker(country_iso_code='FRA', save_to_file=False, "
            "log_level='error', measure_power_secs=1); no network on this machine",
            "wattprint": "Tracker(name, interval=1.0, region='FR'), default checkpoint 5 s, "
            "SQLite store in a temporary WATTPRINT_HOME",
        },
        "imports": imp_json,
        "whole_processes": whole,
        "trackers": tr_json,
        "ratios_codecarbon_over_wattprint": ratios,
        "targets": targets,
        "floors_over_python_pass": floors,
        "duration_s": time.monotonic() - t_begin,
    }
    md = "\n\n".join(
        [
            "# bench_startup",
            machine_markdown(info),
            f"## Interpreter + import ({args.reps} fresh processes each, wall time seen by the parent)",
            markdown_table(imp_headers, imp_rows),
            f"## Tracker start / stop inside a fresh process ({args.reps} processes each)",
            "`start_1` is the first start in the process, with the lazy imports it triggers; `start_2` a second "
            f"tracker in the same process. Each tracked block sleeps {args.body:g} s before `stop()`. "
            "No network here: CodeCarbon runs offline (country FRA).",
            markdown_table(tr_headers, tr_rows),
            f"## Whole processes ({args.whole_reps} each, as a user feels them)",
            "Wall time seen by the parent; CPU = user + system time of the whole process, background threads "
            f"and reaped children included (`os.wait4`). The tracker scripts sleep {args.whole_sleep:g} s between "
            "start and stop.",
            markdown_table(wh_headers, wh_rows),
            "## Targets",
            "\n".join(f"- {'MET' if v['met'] else 'MISSED'}: {k}: " + _describe_target(v) for k, v in targets.items()),
            "Floors: every `wattprint` command imports typer; typer >= 0.26 converts the parameters of the "
            "command it runs through pydantic, which the run record needs too.",
            "\n".join(f"- {line}" for line in floor_lines),
        ]
    )
    path = write_results("bench_startup", data, md, args.out_dir)
    print(f"\nresults: {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
