"""Measure an inference workload per batch size: energy per query (and per token), latency, throughput.

How a benchmark runs, in order:
  1. inputs are cycled to `queries`, rounded up to whole batches at each batch size (a last, smaller batch
     would weigh its fixed cost on few queries), and cut into batches (tokenised) by the workload;
  2. the machine's idle power is read over `idle_s` seconds with nothing running (a monitor of its own);
  3. every batch size runs `warmup_batches` batches (allocators, kernel choice, caches);
  4. the run starts (a Tracker: the record is in the store from here on) and each batch size is measured in
     one window, named `batch_size=N`, that holds its batches and nothing else. The batches are split into
     `repeats` consecutive groups, each measured between two samples shared with its neighbours (so groups
     add up exactly to the window): the relative spread of their joules per query says how stable the
     figure is. Generation runs every prefill of a group, then every decode, so that each phase's energy
     comes from a span long enough to read, not from slices of one request shorter than the power source
     resolves;
  5. the run stops; the per-query figures go on its record (`bench`).
Steps 1-3 happen before the run starts, so the run's total energy is the sum of the measured windows plus
the tracker's own start-up (its first store write, waited for before measuring) and the gaps between
windows, reported as `outside_windows_j`.

Energy is what the tracker attributes to this process (the default) or the whole machine
(`attribution="machine"`), measured or estimated as the record states per component. Idle power is
reported always and subtracted only when asked (`subtract_idle=True`): then `net_energy_j_per_query`
= energy per query - idle power x the window's duration / queries, beside the gross figure.
Latency is per query: every query of a batch waits for the whole batch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wattprint.bench.workloads import Done, PhasedWorkload, Workload
from wattprint.errors import WattprintInputError
from wattprint.units import joules_to_kwh

if TYPE_CHECKING:
    from wattprint.config import Settings
    from wattprint.record import RunRecord
    from wattprint.tracking.tracker import Tracker

Progress = Callable[[str, int, int], None]  # (what, done, total): called after every batch


@dataclass
class Measured:
    """One batch size's raw measurement."""

    batch_size: int
    energy_j: dict[str, float] = field(default_factory=dict)  # per component, the whole window
    duration_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)  # per query
    ttft_s: list[float] = field(default_factory=list)  # per query, generation only
    group_j_per_query: list[float] = field(default_factory=list)
    done: list[Done] = field(default_factory=list)
    prefill_j: float = 0.0
    decode_j: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # figures of one kind of workload (an endpoint's)


@dataclass
class BenchResult:
    """A finished benchmark: its JSON document (the `wattprint bench --json` contract) and its run record."""

    document: dict[str, Any]
    record: RunRecord

    @property
    def run_id(self) -> str:
        return str(self.document["run_id"])

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.document["results"])


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WattprintInputError(name, f"got {value!r}; expected an integer >= {minimum}")
    return value


def check_batch_sizes(batch_sizes: Sequence[Any]) -> list[int]:
    sizes = [_positive_int("batch_sizes", size) for size in batch_sizes]
    if not sizes or len(set(sizes)) != len(sizes):
        raise WattprintInputError("batch_sizes", f"got {list(batch_sizes)!r}; expected distinct integers >= 1")
    return sizes


def check_measure_args(repeats: Any, warmup_batches: Any, idle_s: Any, subtract_idle: bool = False) -> None:
    """The measuring arguments every benchmark takes; checked before anything loads or runs."""
    _positive_int("repeats", repeats)
    _positive_int("warmup_batches", warmup_batches, minimum=0)
    if isinstance(idle_s, bool) or not isinstance(idle_s, (int, float)) or not math.isfinite(idle_s) or idle_s < 0:
        raise WattprintInputError("idle_s", f"got {idle_s!r}; expected a number of seconds >= 0")
    if subtract_idle and idle_s <= 0:
        raise WattprintInputError("subtract_idle", "needs `idle_s` > 0: the idle power is measured over it")


def _cycled(items: list[Any], count: int) -> list[Any]:
    """`count` items: `items` repeated as often as needed."""
    return [items[i % len(items)] for i in range(count)]


def _queries(inputs: Sequence[Any], queries: int | None) -> list[Any]:
    items = list(inputs)
    if not items:
        raise WattprintInputError("inputs", "got no inputs; expected at least one")
    count = len(items) if queries is None else _positive_int("queries", queries)
    return _cycled(items, count)  # more queries than inputs: the inputs again


def _whole_batches(items: list[Any], batch_size: int) -> list[Any]:
    """`items` cycled up to a whole number of batches of `batch_size`."""
    return _cycled(items, -(-len(items) // batch_size) * batch_size)


def _groups(batches: list[Any], repeats: int) -> list[list[Any]]:
    """`batches` in `repeats` consecutive groups of near-equal size (fewer when there are fewer batches)."""
    count = min(repeats, len(batches))
    size, extra = divmod(len(batches), count)
    out, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        out.append(batches[start:end])
        start = end
    return out


def percentiles(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """{"p50", "p95", "p99"} of `values` x `scale` (zeros when there are none)."""
    import numpy as np

    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(np.asarray(values) * scale, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def measure_idle_power_w(settings: Settings, seconds: float, pid: int | None = None) -> float | None:
    """Power attributed (as the run will attribute it) to the process tree of `pid` (default: this process)
    while it is given nothing to do, over `seconds`."""
    if seconds <= 0:
        return None
    from wattprint.measure.detect import sources_for
    from wattprint.measure.monitor import EnergyMonitor
    from wattprint.measure.process import ProcessTree

    monitor = EnergyMonitor(
        sources_for(settings).sources,
        interval_s=min(settings.interval, seconds),
        tree=ProcessTree(os.getpid() if pid is None else pid),
        attribution=settings.attribution,
    )
    try:
        monitor.begin_window("idle")
        time.sleep(seconds)
        window = monitor.end_window("idle")
    finally:
        monitor.close()
    return window.total_j / window.duration_s if window.duration_s > 0 else None


def _checked(done: Any) -> Done:
    """A batch's outcome as the runner needs it: at least one query answered."""
    if not isinstance(done, Done) or done.queries < 1:
        raise WattprintInputError("workload", f"a batch returned {done!r}; expected Done(queries >= 1, ...)")
    return done


class _Runner:
    """Runs the measured part of one benchmark inside a started tracker."""

    def __init__(self, workload: Workload, tracker: Tracker, progress: Progress | None, total_batches: int) -> None:
        self.workload = workload
        self.tracker = tracker
        self.progress = progress
        self.total = total_batches
        self.finished = 0
        self.phased = isinstance(workload, PhasedWorkload)

    def _tick(self, batch_size: int) -> None:
        self.finished += 1
        if self.progress is not None:
            self.progress(f"batch size {batch_size}", self.finished, self.total)

    def _mark(self) -> float:
        """The run's attributed joules now, after a fresh sample. Groups and phases are differences of
        consecutive marks, so they add up exactly to the span they cover: separate windows, each sampled at
        both ends, would each round the CPU counters' 10 ms ticks on their own."""
        assert self.tracker.monitor is not None
        return self.tracker.monitor.attributed_total_j()

    def measure(self, batch_size: int, batches: list[Any], repeats: int) -> Measured:
        out = Measured(batch_size)
        window = f"batch_size={batch_size}"  # the recorded window: on the run record, per component
        mark = self._mark()
        self.tracker.begin_window(window, fresh=False)  # from the very sample of the first mark
        for group in _groups(batches, repeats):
            before = len(out.done)
            if self.phased:
                end = self._phased_group(group, batch_size, out, mark)
            else:
                for batch in group:
                    t0 = time.perf_counter()
                    done = _checked(self.workload.run(batch))
                    out.latencies_s += [time.perf_counter() - t0] * done.queries
                    out.done.append(done)
                    self._tick(batch_size)
                end = self._mark()
            queries = sum(d.queries for d in out.done[before:])
            out.group_j_per_query.append((end - mark) / max(queries, 1))
            mark = end
        result = self.tracker.end_window(window, fresh=False)  # at the last mark's sample: groups add up to it
        out.energy_j, out.duration_s = dict(result.energy_j), result.duration_s
        return out

    def _phased_group(self, group: list[Any], batch_size: int, out: Measured, start_j: float) -> float:
        """Every prefill of the group, then every decode; returns the mark at the end."""
        workload = self.workload
        assert isinstance(workload, PhasedWorkload)
        states: list[Any] = []
        prefill_s: list[float] = []
        for batch in group:
            t0 = time.perf_counter()
            states.append(workload.prefill(batch))
            prefill_s.append(time.perf_counter() - t0)
        prefilled_j = self._mark()
        for i, first_s in enumerate(prefill_s):
            state, states[i] = states[i], None  # its KV cache is freed once decoded, not at the group's end
            t0 = time.perf_counter()
            done = _checked(workload.decode(state))
            total_s = first_s + time.perf_counter() - t0
            out.latencies_s += [total_s] * done.queries
            out.ttft_s += [first_s] * done.queries
            out.done.append(done)
            self._tick(batch_size)
        decoded_j = self._mark()
        out.prefill_j += prefilled_j - start_j
        out.decode_j += decoded_j - prefilled_j
        return decoded_j


def run_bench(
    workload: Workload,
    inputs: Sequence[Any],
    *,
    batch_sizes: Sequence[int] = (1, 8, 32),
    queries: int | None = None,
    repeats: int = 4,
    warmup_batches: int = 2,
    idle_s: float = 2.0,
    subtract_idle: bool = False,
    name: str | None = None,
    inputs_id: str = "user",
    settings: Settings | None = None,
    store: Any = None,
    progress: Progress | None = None,
) -> BenchResult:
    """Measure `workload` on `inputs` at each batch size; one run in the store, one window per batch size.

    `queries` (default: every input once) inputs are answered at each batch size, cycling through `inputs`
    when it asks for more. `inputs_id` names the input set, so that star ratings compare only runs on the same
    inputs. Bad arguments raise WattprintInputError before anything runs.
    """
    from wattprint.config import load_settings
    from wattprint.tracking.tracker import Tracker, exit_status, preload

    if not isinstance(workload, Workload):
        raise WattprintInputError("workload", f"got {type(workload).__name__}; expected prepare() and run()")
    sizes = check_batch_sizes(batch_sizes)
    check_measure_args(repeats, warmup_batches, idle_s, subtract_idle)
    items = _queries(inputs, queries)
    settings = settings if settings is not None else load_settings()

    # whole batches only: a smaller last batch would weigh its fixed cost on few queries and sit alone in
    # the last group (at 100 queries and batch 32: +56 % on J/query); queries are rounded up, cycling inputs
    prepared = {size: workload.prepare(_whole_batches(items, size), size) for size in sizes}
    if not all(prepared.values()):
        raise WattprintInputError("workload", "prepare() returned no batches; expected one or more")
    idle_power_w = measure_idle_power_w(settings, float(idle_s))
    for size in sizes:
        for batch in prepared[size][:warmup_batches]:
            workload.run(batch)

    tracker = Tracker(name or f"bench {workload.task} {workload.model}", settings=settings, store=store)
    preload()  # the tracker's lazy imports, before the run: not in its first window
    tracker.start()
    tracker.wait_stored()  # the store's first write runs on a thread of this process: not in a window
    runner = _Runner(workload, tracker, progress, sum(len(b) for b in prepared.values()))
    measured: list[Measured] = []
    try:
        for size in sizes:
            measured.append(runner.measure(size, prepared[size], repeats))
    except BaseException as exc:  # the user's model failed or Ctrl-C: the run is kept, marked as such
        status, _code = exit_status(type(exc), exc)
        tracker.stop(status)
        raise
    head = {
        "task": workload.task,
        "model": workload.model,
        "inputs": {"id": inputs_id, "queries": len(items), "rounding": "up to whole batches per batch size"},
        "repeats": repeats,
        "warmup_batches": warmup_batches,
        "warmup": "outside the run: every batch size ran its warm-up batches before the run started",
        "idle_power_w": idle_power_w,
        "idle_subtracted": subtract_idle,
    }
    document: dict[str, Any] = {}

    def annotate(rec: RunRecord) -> None:
        document.update(build_document(rec, head, measured, idle_power_w, subtract_idle))
        rec.bench = {k: v for k, v in document.items() if k != "run_id"}

    record = tracker.stop(annotate=annotate)
    if not document:  # annotate failed and was flagged on the record: build the figures again to return them
        document.update(build_document(record, head, measured, idle_power_w, subtract_idle))
    return BenchResult(document, record)


def build_document(
    rec: RunRecord,
    head: dict[str, Any],
    measured: list[Measured],
    idle_power_w: float | None,
    subtract_idle: bool,
) -> dict[str, Any]:
    """The benchmark's JSON document from the finished record (its carbon factors) and the measurements."""
    from wattprint.accounting.uncertainty import energy_range_kwh, power_band

    methods = {c: (rec.methods.get(c) or {}).get("method") for c in ("cpu", "gpu", "ram")}
    sources = {c: (rec.methods.get(c) or {}).get("source") for c in ("cpu", "gpu", "ram")}
    # the run's own gCO2e per kWh at the hardware: PUE and a time-resolved intensity included
    total_kwh = rec.energy_kwh.total
    g_per_kwh = rec.co2e_kg.operational * 1000.0 / total_kwh if total_kwh > 0 else rec.pue * rec.intensity_g_per_kwh
    results = []
    for m in measured:
        queries = sum(d.queries for d in m.done)
        total_j = sum(m.energy_j.values())
        used = [c for c, j in m.energy_j.items() if j > 0]
        estimated = any(methods.get(c) != "measured" for c in used)
        low_kwh, high_kwh = energy_range_kwh(
            (joules_to_kwh(j), power_band(methods.get(c))) for c, j in m.energy_j.items() if j > 0
        )
        j_per_query = total_j / queries
        kwh_per_1k = joules_to_kwh(total_j) * 1000.0 / queries
        groups = m.group_j_per_query
        mean_group = sum(groups) / len(groups)
        # None with one group: nothing to compare, which is not the same as no spread
        spread = (max(groups) - min(groups)) / mean_group * 100 if len(groups) > 1 and mean_group > 0 else None
        result: dict[str, Any] = {
            "batch_size": m.batch_size,
            "queries": queries,
            "energy_j_per_query": j_per_query,
            "energy_j_per_query_range": [low_kwh * 3.6e6 / queries, high_kwh * 3.6e6 / queries],
            "facility_energy_j_per_query": j_per_query * rec.pue,
            "kwh_per_1k_queries": kwh_per_1k,
            "facility_kwh_per_1k_queries": kwh_per_1k * rec.pue,
            "co2e_g_per_1k_queries": kwh_per_1k * g_per_kwh,
            "latency_ms": percentiles(m.latencies_s, 1000.0),
            "throughput_qps": queries / m.duration_s if m.duration_s > 0 else 0.0,
            "energy_method": "estimated" if estimated else "measured",
            "energy_sources": {c: sources[c] for c in used},
            "spread_pct": spread,
            "repeats": len(m.group_j_per_query),
            "duration_s": m.duration_s,
            "energy_j": total_j,
            "energy_j_by_component": m.energy_j,
        }
        if subtract_idle and idle_power_w is not None:
            result["net_energy_j_per_query"] = (total_j - idle_power_w * m.duration_s) / queries
        tokens_in, tokens_out = sum(d.tokens_in for d in m.done), sum(d.tokens_out for d in m.done)
        if m.ttft_s:
            decode_tokens = tokens_out - queries  # prefill makes each query's first new token
            ttft = percentiles(m.ttft_s, 1000.0)
            result.update(
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                j_per_prefill_token=m.prefill_j / tokens_in if tokens_in else 0.0,
                j_per_decode_token=m.decode_j / decode_tokens if decode_tokens else 0.0,
                prefill_energy_j=m.prefill_j,
                decode_energy_j=m.decode_j,
                decode_share=m.decode_j / (m.prefill_j + m.decode_j) if m.prefill_j + m.decode_j > 0 else 0.0,
                ttft_ms=ttft["p50"],
                ttft_percentiles_ms=ttft,
            )
        else:
            if tokens_in:
                result["tokens_in"] = tokens_in
            if tokens_out:  # generation seen from outside (an endpoint): no phases, J per token written
                result.update(tokens_out=tokens_out, j_per_output_token=total_j / tokens_out)
        result.update(m.extra)
        results.append(result)
    return {
        "run_id": rec.run_id,
        **head,
        "energy_method": "estimated" if any(r["energy_method"] == "estimated" for r in results) else "measured",
        "run_energy_kwh": rec.energy_kwh.total,
        # the tracker's own start and stop and the gaps between windows: in the run, in no result
        "outside_windows_j": rec.energy_kwh.total * 3.6e6 - sum(r["energy_j"] for r in results),
        "g_co2e_per_kwh": g_per_kwh,
        "pue": rec.pue,
        "region": rec.region,
        "hardware": rec.hardware,
        "results": results,
    }
