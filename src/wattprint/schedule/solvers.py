"""Exact, vectorised planners on a `Grid` (times in seconds since the grid's origin).

Non-interruptible (`best_starts`): the emission integral of a run of length d started at s,
F(s) = C(s + d) - C(s), is piecewise linear in s with breakpoints where s or s + d crosses a knot
of the trace. Its minimum over the feasible starts in [E, L] (L = deadline - d; feasible = the run
is fully covered by data, itself a union of intervals bounded by the same breakpoints) is therefore
reached at E, at L, at a knot b in [E, L] or at b - d for a knot b in [E + d, L + d]. Every job's
candidates are evaluated at once with `np.interp`; the earliest of the minima is returned.

Interruptible without a minimum chunk (`cleanest`): the optimum is the cleanest d seconds of the
window, taken step by step in increasing order of intensity (the last step partly, from its start):
an exact fractional knapsack with unit weights, vectorised over jobs with one `np.lexsort`.

Interruptible with a minimum chunk and/or a cost per pause (`chunked`): a dynamic programme over a
time grid of resolution q. By default q is the greatest common divisor of the knot offsets from E
in the window, of D - E, of d and of the minimum chunk (to the millisecond), so every cell has one
intensity and the plan is the exact optimum over schedules whose chunk boundaries lie on the trace's
step boundaries (uneven steps are split into cells of q at their boundaries). When that grid would
be too large for the state budget, the grid is anchored at the first knot after E and coarsened to
a multiple of the steps; cells may then span two steps (their cost stays exact) and the plan is the
optimum on that grid. The caller keeps the better of this and the non-interruptible optimum, so an
interruptible plan is never worse than a non-interruptible one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wattprint.schedule.grid import TIME_TOL_S, Grid, _cov_tol

#: candidate evaluations per vectorised block (bounds memory: ~100 bytes each)
BLOCK = 2_000_000
#: bound on cells x states of the chunked dynamic programme
DP_STATE_BUDGET = 30_000_000
DP_MAX_CELLS = 200_000


def _rel_tol(value: np.ndarray) -> np.ndarray:
    return 1e-9 * np.maximum(1.0, np.abs(value))


def _blocks(counts: np.ndarray) -> list[tuple[int, int]]:
    """Split jobs into consecutive blocks of at most BLOCK candidates (at least one job each)."""
    out, start, total = [], 0, 0
    for j, n in enumerate(counts.tolist()):
        if total and total + n > BLOCK:
            out.append((start, j))
            start, total = j, 0
        total += n
    out.append((start, len(counts)))
    return out


def _ragged(lo_idx: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened (job, index) pairs for index ranges [lo_idx[j], lo_idx[j] + counts[j])."""
    job = np.repeat(np.arange(counts.size), counts)
    first = np.cumsum(counts) - counts
    idx = np.arange(int(counts.sum())) - np.repeat(first, counts) + np.repeat(lo_idx, counts)
    return job, idx


def best_starts(
    grid: Grid, earliest: np.ndarray, deadline: np.ndarray, duration: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per job, the earliest start minimising F(s) over feasible s in [E, D - d], and F there.

    Arrays of equal length (seconds). Infeasible jobs (no fully covered start) get NaN and inf.
    """
    e = np.asarray(earliest, dtype=np.float64)
    d = np.broadcast_to(np.asarray(duration, dtype=np.float64), e.shape)
    latest = np.asarray(deadline, dtype=np.float64) - d
    x = grid.x
    lo1 = np.searchsorted(x, e, "left")
    n1 = np.maximum(np.searchsorted(x, latest, "right") - lo1, 0)
    lo2 = np.searchsorted(x, e + d, "left")
    n2 = np.maximum(np.searchsorted(x, latest + d, "right") - lo2, 0)
    counts = n1 + n2 + 2
    start_out = np.full(e.shape, np.nan)
    f_out = np.full(e.shape, np.inf)
    for a, b in _blocks(counts):
        job, off = _ragged(np.zeros(b - a, dtype=np.int64), counts[a:b])
        jg = job + a
        k1 = off - 2
        in1 = (k1 >= 0) & (k1 < n1[jg])
        k2 = k1 - n1[jg]
        s = np.where(off == 0, e[jg], latest[jg])
        s = np.where(in1, x[np.clip(lo1[jg] + k1, 0, x.size - 1)], s)
        s = np.where(k2 >= 0, x[np.clip(lo2[jg] + k2, 0, x.size - 1)] - d[jg], s)
        s = np.clip(s, e[jg], np.maximum(latest[jg], e[jg]))
        ok = grid.fully_covered(s, s + d[jg]) & (latest[jg] >= e[jg] - TIME_TOL_S)
        f = np.where(ok, grid.integral(s, s + d[jg]), np.inf)
        first = np.cumsum(counts[a:b]) - counts[a:b]
        fmin = np.minimum.reduceat(f, first)
        near = f <= fmin[job] + _rel_tol(np.where(np.isfinite(fmin[job]), fmin[job], 0.0))
        smin = np.minimum.reduceat(np.where(near & np.isfinite(f), s, np.inf), first)
        feasible = np.isfinite(fmin)
        start_out[a:b] = np.where(feasible, smin, np.nan)
    feasible = np.isfinite(start_out)
    f_out[feasible] = grid.integral(start_out[feasible], start_out[feasible] + d[feasible])
    return start_out, f_out


@dataclass(frozen=True)
class Pieces:
    """Chosen pieces of steps, flattened over jobs: job j runs over [lo, lo + taken) at value val."""

    job: np.ndarray
    lo: np.ndarray
    taken: np.ndarray
    step: np.ndarray


def cleanest(
    grid: Grid,
    earliest: np.ndarray,
    deadline: np.ndarray,
    duration: np.ndarray,
    eval_val: np.ndarray | None = None,
    want_pieces: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Pieces | None]:
    """Interruptible, no minimum chunk: per job the cleanest d seconds of [E, D].

    Returns (F on the grid's values, F on `eval_val` (same steps, e.g. the actual trace when the grid
    is a forecast; else equal to the first), first start, last end, pieces or None). Infeasible jobs
    (less than d seconds of data in the window) get F = inf and NaN times.
    """
    e = np.asarray(earliest, dtype=np.float64)
    dl = np.asarray(deadline, dtype=np.float64)
    d = np.broadcast_to(np.asarray(duration, dtype=np.float64), e.shape)
    i0 = np.searchsorted(grid.hi, e, "right")
    counts = np.maximum(np.searchsorted(grid.lo, dl, "left") - i0, 0)
    f_out = np.full(e.shape, np.inf)
    f_eval = np.full(e.shape, np.inf)
    first_out = np.full(e.shape, np.nan)
    last_out = np.full(e.shape, np.nan)
    kept: list[Pieces] = []
    for a, b in _blocks(counts):
        cnt = counts[a:b]
        job, idx = _ragged(i0[a:b], cnt)
        jg = job + a
        plo = np.maximum(grid.lo[idx], e[jg])
        phi = np.minimum(grid.hi[idx], dl[jg])
        length = np.maximum(phi - plo, 0.0)
        val = grid.val[idx]
        order = np.lexsort((plo, val, job))
        job_s, len_s, val_s, plo_s, idx_s = job[order], length[order], val[order], plo[order], idx[order]
        cs = np.cumsum(len_s)
        before = cs - len_s
        first = np.cumsum(cnt) - cnt
        base = np.repeat(before[np.minimum(first, max(len(before) - 1, 0))], cnt) if len(before) else before
        need = d[job_s + a]
        taken = np.clip(need - (before - base), 0.0, len_s)
        nb = b - a
        total = np.bincount(job_s, weights=len_s, minlength=nb)
        got = np.bincount(job_s, weights=taken, minlength=nb)
        feasible = total >= d[a:b] - _cov_tol(d[a:b])
        f = np.bincount(job_s, weights=taken * val_s, minlength=nb)
        fe = f if eval_val is None else np.bincount(job_s, weights=taken * eval_val[idx_s], minlength=nb)
        use = taken > TIME_TOL_S
        f_out[a:b] = np.where(feasible, f, np.inf)
        f_eval[a:b] = np.where(feasible, fe, np.inf)
        lo_min = np.full(nb, np.inf)
        hi_max = np.full(nb, -np.inf)
        np.minimum.at(lo_min, job_s[use], plo_s[use])
        np.maximum.at(hi_max, job_s[use], plo_s[use] + taken[use])
        first_out[a:b] = np.where(feasible & (got > 0), lo_min, np.nan)
        last_out[a:b] = np.where(feasible & (got > 0), hi_max, np.nan)
        if want_pieces:
            kept.append(Pieces(job_s[use] + a, plo_s[use], taken[use], idx_s[use]))
    pieces = None
    if want_pieces:
        pieces = Pieces(*(np.concatenate([getattr(p, n) for p in kept]) for n in ("job", "lo", "taken", "step")))
    return f_out, f_eval, first_out, last_out, pieces


def merge_slots(starts: np.ndarray, ends: np.ndarray) -> list[tuple[float, float]]:
    """Sorted, merged [start, end) intervals (touching intervals are joined)."""
    order = np.argsort(starts, kind="stable")
    out: list[tuple[float, float]] = []
    for s, t in zip(starts[order].tolist(), ends[order].tolist(), strict=True):
        if out and s <= out[-1][1] + TIME_TOL_S:
            out[-1] = (out[-1][0], max(out[-1][1], t))
        else:
            out.append((s, t))
    return out


# -- chunked: minimum chunk length and cost per pause -------------------------------------------
def _to_ms(value: float) -> int:
    return int(round(value * 1000.0))


def _gcd_ms(values: list[int]) -> int:
    g = 0
    for v in values:
        g = math.gcd(g, abs(v))
    return g


@dataclass(frozen=True)
class ChunkedResult:
    slots: list[tuple[float, float]]
    f: float
    objective: float  # f + pause costs
    resolution_s: float


def _dp_size(cells: int, n: int, m_cells: int) -> int:
    return cells * (n + 1) * (min(m_cells, n) + 1)


def chunked(
    grid: Grid,
    e: float,
    dl: float,
    d: float,
    min_chunk: float,
    pause_cost_s: float,
    budget: int = DP_STATE_BUDGET,
) -> ChunkedResult | None:
    """Interruptible with chunks of at least `min_chunk` s, each pause costing `pause_cost_s` s of
    running at the intensity where the job resumes. None when no schedule fits the grid."""
    knots = grid.x[(grid.x > e + TIME_TOL_S) & (grid.x < dl - TIME_TOL_S)]
    d_ms, m_ms = _to_ms(d), _to_ms(min_chunk)
    q_ms = _gcd_ms([_to_ms(k - e) for k in knots] + [_to_ms(dl - e), d_ms, m_ms])
    anchor = e
    if q_ms <= 0 or _too_big(dl - anchor, q_ms, d_ms, m_ms, budget):
        first = knots[0] if knots.size else e
        anchor = float(first)
        q_ms = _gcd_ms([_to_ms(k - anchor) for k in knots] + [d_ms, m_ms]) or max(d_ms, 1)
        factor = 1
        while _too_big(dl - anchor, q_ms * factor, d_ms, m_ms, budget):
            factor += 1
        q_ms *= factor
    q = q_ms / 1000.0
    cells = int(math.floor((dl - anchor) / q + 1e-9))
    n = int(math.ceil(d / q - 1e-9))
    if cells <= 0 or n > cells:
        return None
    excess = n * q - d
    m_cells = min(int(math.ceil((min_chunk + excess) / q - 1e-9)), n) if min_chunk > 0 else 1
    m_cells = max(m_cells, 1)
    lo = anchor + q * np.arange(cells)
    hi = lo + q
    ok = grid.fully_covered(lo, hi)
    w = np.where(ok, grid.integral(lo, hi), np.inf)
    pause = pause_cost_s * np.where(ok, w / q, 0.0)
    running = _dp(w, pause, n, m_cells)
    if running is None:
        return None
    slots = [(float(lo[a]), float(hi[b - 1])) for a, b in _runs(running)]
    if excess > TIME_TOL_S:
        slots = _trim(grid, slots, excess)
    f = float(sum(grid.integral(a, b) for a, b in slots))
    chunk_starts = [a for a, _ in slots[1:]]
    cost = sum(pause_cost_s * grid.mean(a, a + q) for a in chunk_starts) if pause_cost_s else 0.0
    return ChunkedResult(slots, f, f + cost, q)


def _too_big(span: float, q_ms: int, d_ms: int, m_ms: int, budget: int) -> bool:
    cells = int(span * 1000 // q_ms)
    n = -(-d_ms // q_ms)
    m_cells = max(-(-m_ms // q_ms), 1)
    return cells > DP_MAX_CELLS or _dp_size(cells, n, m_cells) > budget


def _runs(running: np.ndarray) -> list[tuple[int, int]]:
    """[a, b) index ranges of consecutive True cells."""
    padded = np.concatenate([[False], running, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _trim(grid: Grid, slots: list[tuple[float, float]], excess: float) -> list[tuple[float, float]]:
    """Remove `excess` seconds from the dirtiest end of a chunk (all chunks are long enough)."""
    best: tuple[float, int, bool] | None = None
    for i, (a, b) in enumerate(slots):
        if b - a < excess + TIME_TOL_S:
            continue
        for at_start in (True, False):
            saved = float(grid.integral(a, a + excess) if at_start else grid.integral(b - excess, b))
            if best is None or saved > best[0]:
                best = (saved, i, at_start)
    if best is None:
        return slots
    _, i, at_start = best
    a, b = slots[i]
    slots = list(slots)
    slots[i] = (a + excess, b) if at_start else (a, b - excess)
    return slots


def _dp(w: np.ndarray, pause: np.ndarray, n: int, m: int) -> np.ndarray | None:
    """Choose exactly n cells of cost w (inf: unavailable), in chunks of >= m consecutive cells,
    each chunk after the first costing pause[c] at its first cell c. Returns the running mask.

    State after cell c: (k cells done, r) with r = 0 idle, 1..m-1 running in a chunk of r cells,
    m running in a chunk of >= m cells (free to stop).
    """
    cells = w.size
    inf = np.inf
    dp = np.full((n + 1, m + 1), inf)
    dp[0, 0] = 0.0
    prev = np.zeros((cells, n + 1, m + 1), dtype=np.int16 if m < 32000 else np.int32)
    later = np.ones(n, dtype=bool)  # k - 1 > 0: starting a chunk after work has been done = a pause
    later[0] = False
    for c in range(cells):
        new = np.full((n + 1, m + 1), inf)
        pr = prev[c]
        stop_m = dp[:, m] < dp[:, 0]
        new[:, 0] = np.where(stop_m, dp[:, m], dp[:, 0])
        pr[:, 0] = np.where(stop_m, m, 0)
        wc = w[c]
        if np.isfinite(wc):
            idle = new[:-1, 0]
            start = idle + wc + np.where(later, pause[c], 0.0)
            start_prev = pr[:-1, 0]
            cont = dp[:-1, 1:] + wc  # from r = 1..m
            new[1:, 1] = start
            pr[1:, 1] = start_prev
            if m >= 2:
                new[1:, 2:] = cont[:, : m - 1]
                pr[1:, 2:] = np.arange(1, m, dtype=pr.dtype)
                from_m = cont[:, m - 1] < new[1:, m]
                new[1:, m] = np.where(from_m, cont[:, m - 1], new[1:, m])
                pr[1:, m] = np.where(from_m, m, pr[1:, m])
            else:
                from_m = cont[:, 0] < new[1:, 1]
                new[1:, 1] = np.where(from_m, cont[:, 0], new[1:, 1])
                pr[1:, 1] = np.where(from_m, 1, pr[1:, 1])
        dp = new
    end_r = 0 if dp[n, 0] <= dp[n, m] else m
    if not np.isfinite(dp[n, end_r]):
        return None
    running = np.zeros(cells, dtype=bool)
    k, r = n, end_r
    for c in range(cells - 1, -1, -1):
        p = int(prev[c, k, r])
        if r >= 1:
            running[c] = True
            k -= 1
        r = p
    return running if k == 0 else None
