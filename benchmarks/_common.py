"""Helpers shared by the benchmark scripts: machine description, statistics, tables, result files.

Kept free of heavy imports (no torch, no codecarbon, no wattprint) so that importing it never
distorts a start-up measurement; versions are read from package metadata.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + (" (src/ modified)" if dirty.stdout.strip() else "")


def machine_info() -> dict[str, Any]:
    """Date, CPU, cores, load, OS and the versions that matter for these benchmarks."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "cpu_model": cpu_model(),
        "cpu_capabilities": _cpu_capabilities(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "load_avg_1_5_15": load,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "executable": sys.executable,
        "wattprint": _version("wattprint"),
        "wattprint_commit": _git_commit(),
        "torch": _version("torch"),
        "codecarbon": _version("codecarbon"),
        "psutil": _version("psutil"),
        "nvidia-ml-py": _version("nvidia-ml-py"),
        "rapl_readable": _rapl_readable(),
    }


def _cpu_capabilities() -> dict[str, Any] | None:
    """ISA level, native bf16/fp16, int8 dot products and the kernel limits in force (wattprint's probe),
    read in a child process so that this module stays free of wattprint imports."""
    code = "import json; from wattprint.measure.cpu_caps import cpu_capabilities as c; print(json.dumps(c().as_dict()))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _rapl_readable() -> bool:
    root = Path("/sys/class/powercap")
    try:
        for path in root.glob("intel-rapl:*/energy_uj"):
            try:
                path.read_text()
                return True
            except OSError:
                continue
    except OSError:
        pass
    return False


# -- statistics ------------------------------------------------------------------------------------
def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(values: Sequence[float]) -> dict[str, float]:
    vals = list(values)
    if not vals:
        return {"n": 0}
    return {
        "n": len(vals),
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "mean": statistics.fmean(vals),
        "stdev": statistics.stdev(vals) if len(vals) > 1 else 0.0,
    }


# -- output ----------------------------------------------------------------------------------------
def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table when rich is importable, else aligned plain text."""
    cells = [[str(c) for c in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        print(f"\n{title}")
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        print("  ".join("-" * w for w in widths))
        for r in cells:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    table = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for r in cells:
        table.add_row(*r)
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    Console(width=min(220, max(100, sum(w + 3 for w in widths) + 1))).print(table)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_markdown(info: dict[str, Any]) -> str:
    keys = (
        "date",
        "cpu_model",
        "logical_cpus",
        "load_avg_1_5_15",
        "os",
        "python",
        "torch",
        "codecarbon",
        "wattprint",
        "wattprint_commit",
        "rapl_readable",
    )
    return "\n".join(f"- {k}: {info.get(k)}" for k in keys if k in info)


def write_results(name: str, data: dict[str, Any], markdown: str, out_dir: Path | None = None) -> Path:
    """Write `<name>.json` and `<name>.md` under benchmarks/results/ (or out_dir); return the JSON path."""
    out = out_dir or RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{name}.json"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return json_path


def fmt(value: float, digits: int = 3) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:.{digits}f}"


def pct(value: float, digits: int = 3) -> str:
    return "n/a" if value != value else f"{value:.{digits}f} %"
