"""Benchmark a running inference server through its OpenAI-compatible HTTP API (vLLM, TGI, llama.cpp, ...).

The server's process tree (`pid`) is what is measured, not this client. Requests go out `concurrency` at a
time (closed loop), or at `rate_qps` per second with at most `concurrency` in flight (open loop). Each
request carries `batch_size` inputs (the APIs take a list). Tokens come from the responses' `usage`.
`energy_j_per_query` is the server's energy over the batch size's window divided by the queries answered
(idle moments between requests included, as a server draws them). Every request's own energy,
`request_energy_j`, is its share under the rule of `wattprint.bench.attribution` (each slice of time split
among the requests in flight, by time in flight): these add up to the server's energy while it was serving,
`unattributed_j` is the rest, and `spread_pct` compares groups of requests by these shares. Latency counts
from when a request was due (open loop) or sent, so time queued behind `concurrency` is in it;
`requests_per_s` is the rate achieved, which `concurrency` may hold below `rate_qps`.

Before the run: the PID is checked, one probe request must succeed (a dead server or one that answers with
errors stops here, with nothing written), the server's idle power is read and a few warm-up requests sent.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from wattprint.bench.attribution import EnergySlicer, Span
from wattprint.bench.runner import (
    BenchResult,
    Measured,
    Progress,
    _groups,
    _positive_int,
    _queries,
    _whole_batches,
    build_document,
    check_batch_sizes,
    check_measure_args,
    measure_idle_power_w,
    percentiles,
)
from wattprint.bench.workloads import Done
from wattprint.errors import WattprintInputError
from wattprint.measure.process import check_readable_pid

if TYPE_CHECKING:
    from wattprint.config import Settings
    from wattprint.record import RunRecord

KINDS = {"embeddings": "/v1/embeddings", "completions": "/v1/completions"}


@dataclass(frozen=True)
class Endpoint:
    """Where the server listens (`url`: scheme, host, port, optional path prefix), its PID, and which API
    (`api`: embeddings or completions) with which `model` name to call."""

    url: str
    pid: int
    api: str = "embeddings"
    model: str = "default"
    max_tokens: int = 16  # completions: tokens to generate per prompt
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise WattprintInputError("url", f"got {self.url!r}; expected http://HOST:PORT (or https://)")
        if self.api not in KINDS:
            raise WattprintInputError("api", f"got {self.api!r}; expected one of {', '.join(KINDS)}")
        if isinstance(self.pid, bool) or not isinstance(self.pid, int) or self.pid <= 0:
            raise WattprintInputError("pid", f"got {self.pid!r}; expected the server's process id")
        if self.max_tokens < 1:
            raise WattprintInputError("max_tokens", f"got {self.max_tokens!r}; expected an integer >= 1")

    @property
    def route(self) -> str:
        return self.url.rstrip("/") + KINDS[self.api]

    def body(self, inputs: list[Any]) -> dict[str, Any]:
        texts = [str(text) for text in inputs]
        if self.api == "embeddings":
            return {"model": self.model, "input": texts}
        return {"model": self.model, "prompt": texts, "max_tokens": self.max_tokens, "temperature": 0}


def _usage(endpoint: Endpoint, response: Any) -> tuple[int, int]:
    """(tokens in, tokens out) from a response's `usage`; a response that is not the API's is an error."""
    if response.status_code != 200:
        text = " ".join(response.text.split())[:200]
        raise WattprintInputError("url", f"{endpoint.route} answered {response.status_code}: {text}")
    try:
        usage = response.json()["usage"]
        tokens_in = int(usage.get("prompt_tokens", 0))
        tokens_out = int(usage.get("completion_tokens", 0)) if endpoint.api == "completions" else 0
    except (ValueError, KeyError, TypeError, AttributeError):
        raise WattprintInputError("url", f"{endpoint.route} answered without an OpenAI-style 'usage'") from None
    return tokens_in, tokens_out


@dataclass
class _Request:
    span: Span
    latency_s: float = 0.0
    done: Done | None = None


async def _load(
    endpoint: Endpoint,
    batches: list[list[Any]],
    slicer: EnergySlicer,
    concurrency: int,
    rate_qps: float | None,
    tick: Any,
) -> list[_Request]:
    """Send every batch as one request; closed loop at `concurrency`, or open loop at `rate_qps`."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    out: list[_Request] = []

    async def one(client: httpx.AsyncClient, batch: list[Any], scheduled: float) -> None:
        async with gate:
            request = _Request(slicer.begin())
            try:
                response = await client.post(endpoint.route, json=endpoint.body(batch))
            except httpx.HTTPError as exc:  # a server that fails under load: one line, the run marked failed
                raise WattprintInputError(
                    "url", f"{endpoint.route} failed under load: {type(exc).__name__}: {exc}"
                ) from None
            finally:
                slicer.end(request.span)
            # from when it was due (open loop) or sent: time queued behind --concurrency counts as latency
            request.latency_s = time.perf_counter() - scheduled
            tokens_in, tokens_out = _usage(endpoint, response)
            request.done = Done(len(batch), tokens_in, tokens_out)
            out.append(request)
            tick()

    async with httpx.AsyncClient(timeout=endpoint.timeout_s, limits=limits) as client:
        tasks = []
        start = time.perf_counter()
        for i, batch in enumerate(batches):
            scheduled = time.perf_counter()
            if rate_qps is not None:  # open loop: send on schedule whatever is still in flight
                scheduled = start + i / rate_qps
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(client, batch, scheduled)))
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)  # every task awaited: none left dangling
    failed = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failed is not None:
        raise failed
    return out


def _run_load(*args: Any) -> list[_Request]:
    """`_load` on an event loop of its own, in a worker thread: works where a loop already runs (Jupyter)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="wattprint-load") as pool:
        return pool.submit(asyncio.run, _load(*args)).result()


def run_endpoint_bench(
    endpoint: Endpoint,
    inputs: list[Any],
    *,
    batch_sizes: tuple[int, ...] | list[int] = (1,),
    queries: int | None = None,
    concurrency: int = 4,
    rate_qps: float | None = None,
    repeats: int = 4,
    warmup_batches: int = 4,  # warm-up requests per batch size
    idle_s: float = 2.0,
    subtract_idle: bool = False,
    slice_s: float = 0.1,
    name: str | None = None,
    inputs_id: str = "user",
    settings: Settings | None = None,
    store: Any = None,
    progress: Progress | None = None,
) -> BenchResult:
    """Measure the server at `endpoint` answering `queries` inputs at each batch size (inputs per request)."""
    import httpx

    from wattprint.config import load_settings
    from wattprint.tracking.tracker import Tracker, preload

    sizes = check_batch_sizes(batch_sizes)
    concurrency = _positive_int("concurrency", concurrency)
    check_measure_args(repeats, warmup_batches, idle_s, subtract_idle)
    if rate_qps is not None and (isinstance(rate_qps, bool) or not math.isfinite(rate_qps) or rate_qps <= 0):
        raise WattprintInputError("rate_qps", f"got {rate_qps!r}; expected requests per second > 0")
    if not math.isfinite(slice_s) or slice_s <= 0:
        raise WattprintInputError("slice_s", f"got {slice_s!r}; expected seconds > 0")
    items = _queries(inputs, queries)
    check_readable_pid(endpoint.pid)
    try:  # the probe: a dead or failing server stops everything here, before a run exists
        probe = httpx.post(endpoint.route, json=endpoint.body(items[:1]), timeout=endpoint.timeout_s)
    except httpx.HTTPError as exc:
        raise WattprintInputError("url", f"{endpoint.route} did not answer: {type(exc).__name__}: {exc}") from None
    _usage(endpoint, probe)
    settings = settings if settings is not None else load_settings()
    whole = {size: _whole_batches(items, size) for size in sizes}  # as run_bench: whole batches only
    batches = {size: [whole[size][i : i + size] for i in range(0, len(whole[size]), size)] for size in sizes}
    idle_power_w = measure_idle_power_w(settings, float(idle_s), endpoint.pid)
    for size in sizes:
        for batch in batches[size][:warmup_batches]:
            _usage(endpoint, httpx.post(endpoint.route, json=endpoint.body(batch), timeout=endpoint.timeout_s))

    tracker = Tracker(name or f"bench endpoint {endpoint.api}", pid=endpoint.pid, settings=settings, store=store)
    preload()  # the tracker's lazy imports, before the run: not in its first window
    tracker.start()
    tracker.wait_stored()
    monitor = tracker.monitor
    assert monitor is not None
    total = sum(len(b) for b in batches.values())
    finished = [0]

    def tick() -> None:
        finished[0] += 1
        if progress is not None:
            progress(f"{endpoint.api} requests", finished[0], total)

    measured: list[Measured] = []
    try:
        for size in sizes:
            window = f"batch_size={size}"
            tracker.begin_window(window)
            slicer = EnergySlicer(monitor.attributed_total_j, slice_s=slice_s).start()
            try:
                requests = _run_load(endpoint, batches[size], slicer, concurrency, rate_qps, tick)
            finally:
                slicer.stop()
            result = tracker.end_window(window)
            measured.append(_measured(size, requests, result.energy_j, result.duration_s, slicer, repeats))
    except BaseException as exc:
        from wattprint.tracking.tracker import exit_status

        tracker.stop(exit_status(type(exc), exc)[0])
        raise
    head = {
        "task": endpoint.api,
        "model": endpoint.model,
        "endpoint": {"url": endpoint.url, "pid": endpoint.pid, "concurrency": concurrency, "rate_qps": rate_qps},
        "inputs": {"id": inputs_id, "queries": len(items)},
        "repeats": repeats,
        "warmup_batches": warmup_batches,
        "warmup": "outside the run: warm-up requests were answered before the run started",
        "idle_power_w": idle_power_w,
        "idle_subtracted": subtract_idle,
        "attribution_rule": "each slice of time split among the requests in flight, by time in flight",
    }
    document: dict[str, Any] = {}

    def annotate(rec: RunRecord) -> None:
        document.update(build_document(rec, head, measured, idle_power_w, subtract_idle))
        rec.bench = {k: v for k, v in document.items() if k != "run_id"}

    record = tracker.stop(annotate=annotate)
    if not document:
        document.update(build_document(record, head, measured, idle_power_w, subtract_idle))
    return BenchResult(document, record)


def _measured(
    size: int,
    requests: list[_Request],
    energy_j: dict[str, float],
    duration_s: float,
    slicer: EnergySlicer,
    repeats: int,
) -> Measured:
    """One batch size's figures from its requests, in the order they were sent."""
    requests.sort(key=lambda r: r.span.start_s)
    out = Measured(size, energy_j=energy_j, duration_s=duration_s)
    for request in requests:
        assert request.done is not None
        out.done.append(request.done)
        out.latencies_s += [request.latency_s] * request.done.queries
    for group in _groups(requests, repeats):
        queries = sum(r.done.queries for r in group if r.done is not None)
        out.group_j_per_query.append(sum(r.span.energy_j for r in group) / max(queries, 1))
    per_request = [r.span.energy_j for r in requests]
    out.extra = {
        "requests": len(requests),
        "requests_per_s": len(requests) / duration_s if duration_s > 0 else 0.0,  # achieved, at most --rate
        "request_energy_j": {"sum": sum(per_request), **percentiles(per_request)},
        "unattributed_j": slicer.unattributed_j,
        "sliced_j": slicer.total_j,
    }
    return out
