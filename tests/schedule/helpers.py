"""Small series builders and brute-force checkers for the scheduling tests."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from wattprint.intensity.base import IntensitySeries

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
UNIT = timedelta(minutes=1)


def at(units: float) -> datetime:
    return T0 + units * UNIT


def series_from_steps(steps: list[tuple[int, int, float]], region: str = "XX") -> IntensitySeries:
    """Steps (start_unit, end_unit, value) in minutes from T0."""
    return IntensitySeries(
        region,
        tuple(at(a) for a, _, _ in steps),
        tuple(at(b) for _, b, _ in steps),
        tuple(float(v) for _, _, v in steps),
        "test",
    )


def unit_cells(steps: list[tuple[int, int, float]]) -> dict[int, float]:
    """Value of every covered one-unit cell [t, t+1)."""
    return {t: v for a, b, v in steps for t in range(a, b)}


def brute_start(cells: dict[int, float], e: int, dl: int, d: int) -> float | None:
    """Minimum emission integral (value x units) over integer starts; None if no covered start."""
    best = None
    for s in range(e, dl - d + 1):
        if all(t in cells for t in range(s, s + d)):
            f = sum(cells[t] for t in range(s, s + d))
            best = f if best is None else min(best, f)
    return best


def brute_cleanest(cells: dict[int, float], e: int, dl: int, d: int) -> float | None:
    vals = sorted(v for t, v in cells.items() if e <= t < dl)
    return sum(vals[:d]) if len(vals) >= d else None


def brute_chunked(cells: dict[int, float], e: int, dl: int, d: int, m: int, pause_units: float) -> float | None:
    """Min over sets of d covered unit cells in [e, dl) whose runs are each >= min(m, d) cells long;
    each run after the first costs pause_units x the value of its first cell."""
    avail = [t for t in range(e, dl) if t in cells]
    best = None
    for chosen in itertools.combinations(avail, d):
        runs: list[list[int]] = []
        for t in chosen:
            if runs and runs[-1][-1] == t - 1:
                runs[-1].append(t)
            else:
                runs.append([t])
        if any(len(r) < min(m, d) for r in runs):
            continue
        f = sum(cells[t] for t in chosen) + sum(pause_units * cells[r[0]] for r in runs[1:])
        best = f if best is None else min(best, f)
    return best


def write_live_trace(path, values: list[float], step_s: int = 1, lead_s: int = 1) -> float:
    """A trace from `lead_s` whole seconds before now, one value per `step_s`; returns its start (epoch)."""
    import time as _time

    base = int(_time.time()) - lead_s
    lines = ["Time,Carbon Intensity"]
    for i, v in enumerate(values):
        t = datetime.fromtimestamp(base + i * step_s, timezone.utc)
        lines.append(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{v}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)  # atomic: a watcher never reads half a file
    return float(base)
