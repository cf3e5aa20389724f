"""Energy per request for ASGI apps (Starlette, FastAPI; served by uvicorn or any ASGI server).

    from wattprint.integrations.asgi import EnergyMiddleware
    app = EnergyMiddleware(app, name="search-api", header=True, metrics_path="/metrics")

The middleware tracks the server process (a `Tracker`, checkpointed to the store like any run) and charges
its energy to requests with the rule of `wattprint.bench.attribution`: every slice of time (`slice_s`) is split
among the requests in flight during it, in proportion to the time each was in flight; time with no request
in flight is charged to none (`unattributed_j`). A request's figure is final at the first slice after it
ended; that is when it enters the counters and the run record.

- `header=True`: each response carries `x-wattprint-energy-j`, the request's energy up to the moment its
  response starts (the slice under way estimated at the last slice's power): an estimate, final figures are
  in the counters and the record.
- `metrics_path`: Prometheus text at that path (needs the `prometheus` extra): per route
  `wattprint_requests_total`, `wattprint_request_energy_joules_total`,
  `wattprint_request_energy_joules_per_request` (histogram) and `wattprint_request_tokens_total` (where a
  handler reports tokens by setting `request.state.wattprint_tokens`), plus
  `wattprint_unattributed_energy_joules_total`.
- The run record's `bench["serving"]` holds the same per route, saved at every checkpoint.
Routes are the matched route's path template (`/items/{id}`), else the raw path; 404s that matched no route
count as `<not found>`, and routes past the first 100 as `<other>`, so the series stay bounded. A fault in
the middleware is logged and flagged on the record; the request is served regardless, and an unreachable
store is flagged by the tracker while the server goes on serving.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from wattprint.bench.attribution import EnergySlicer, Span
from wattprint.errors import WattprintInputError

__all__ = ["EnergyMiddleware"]

log = logging.getLogger("wattprint")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
RULE = "each slice of time split among the requests in flight, by time in flight"
HEADER = b"x-wattprint-energy-j"
MAX_ROUTES = 100
_OTHER = "<other>"  # routes beyond MAX_ROUTES
_NOT_FOUND = "<not found>"  # 404s that matched no route: one label, not one per scanned path
_UNKNOWN = "<unknown>"  # route_of failed
ENERGY_BUCKETS_J = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


class _Routes:
    """Per-route totals of final figures, and the Prometheus metrics mirroring them (when asked for)."""

    def __init__(self, prometheus: bool) -> None:
        self.lock = threading.Lock()
        self.stats: dict[str, dict[str, float]] = {}
        self.registry: Any = None
        self.unattributed_counted_j = 0.0  # what the unattributed counter holds, to add only what is new
        if prometheus:
            from wattprint._extras import require

            client = require("prometheus_client", extra="prometheus", feature="metrics_path")
            self.registry = client.CollectorRegistry()
            self.requests = client.Counter(
                "wattprint_requests", "Requests with a final energy figure", ["route"], registry=self.registry
            )
            self.energy = client.Counter(
                "wattprint_request_energy_joules", "Energy charged to requests, J", ["route"], registry=self.registry
            )
            self.histogram = client.Histogram(
                "wattprint_request_energy_joules_per_request",
                "Energy per request, J",
                ["route"],
                buckets=ENERGY_BUCKETS_J,
                registry=self.registry,
            )
            self.tokens = client.Counter(
                "wattprint_request_tokens", "Tokens reported by handlers", ["route"], registry=self.registry
            )
            self.unattributed = client.Counter(
                "wattprint_unattributed_energy_joules",
                "Server energy while no request was in flight, J",
                registry=self.registry,
            )

    def add(self, span: Span, tokens: int) -> None:
        with self.lock:
            if span.tag not in self.stats and len(self.stats) >= MAX_ROUTES:
                span.tag = _OTHER  # bounded: counters and the record must not grow with every path seen
            row = self.stats.setdefault(span.tag, {"requests": 0, "energy_j": 0.0, "tokens": 0})
            row["requests"] += 1
            row["energy_j"] += span.energy_j
            row["tokens"] += tokens
        if self.registry is not None:
            self.requests.labels(span.tag).inc()
            self.energy.labels(span.tag).inc(span.energy_j)
            self.histogram.labels(span.tag).observe(span.energy_j)
            if tokens:
                self.tokens.labels(span.tag).inc(tokens)

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self.lock:
            return {route: dict(row) for route, row in self.stats.items()}


class EnergyMiddleware:
    """Wraps an ASGI app; see the module docstring for what it measures and reports."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        *,
        name: str = "serving",
        header: bool = False,
        metrics_path: str | None = None,
        slice_s: float = 0.25,
        tracker: Any = None,
        route_of: Callable[[Scope], str] | None = None,
    ) -> None:
        if not isinstance(slice_s, (int, float)) or isinstance(slice_s, bool) or not 0 < slice_s <= 60:
            raise WattprintInputError("slice_s", f"got {slice_s!r}; expected seconds in (0, 60]")
        if metrics_path is not None and not metrics_path.startswith("/"):
            raise WattprintInputError("metrics_path", f"got {metrics_path!r}; expected a path such as /metrics")
        self.app = app
        self.name = name
        self.header = header
        self.metrics_path = metrics_path
        self.slice_s = float(slice_s)
        self.route_of = route_of or _route
        self.routes = _Routes(prometheus=metrics_path is not None)
        self._tracker = tracker
        self._slicer: EnergySlicer | None = None
        self._tokens: dict[int, int] = {}  # id(span) -> tokens its handler reported, until the span is final
        self._start_lock = threading.Lock()
        self._failed = False

    # -- lifecycle -------------------------------------------------------------------------------
    def _ensure_started(self) -> EnergySlicer | None:
        """Start the tracker and the slicer at the first request (or at lifespan start-up)."""
        if self._slicer is not None or self._failed:
            return self._slicer
        with self._start_lock:
            if self._slicer is None and not self._failed:
                try:
                    if self._tracker is None:
                        from wattprint.tracking.tracker import Tracker

                        self._tracker = Tracker(self.name)
                    if self._tracker.monitor is None:
                        self._tracker.start()
                    self._slicer = EnergySlicer(
                        self._tracker.monitor.attributed_total_j,
                        slice_s=self.slice_s,
                        on_final=self._final,
                        on_tick=self._save_routes,
                    ).start()
                except Exception as exc:  # measuring failed to start: the app serves on, unmeasured
                    self._failed = True
                    log.error("wattprint: energy middleware could not start: %s", exc)
        return self._slicer

    def close(self) -> Any:
        """Split the last slice and stop the tracker (its final record); called at lifespan shutdown."""
        try:
            if self._slicer is not None:
                self._slicer.stop()  # its last tick makes every figure final and saves the routes
        except Exception as exc:  # shutdown goes on: the record is still stopped and stored
            self._flag(exc)
        self._slicer = None
        if self._tracker is not None and self._tracker.monitor is not None:
            try:
                return self._tracker.stop()
            except Exception as exc:  # never into the server's shutdown
                log.error("wattprint: could not stop the serving run: %s", exc)
        return None

    @property
    def tracker(self) -> Any:
        return self._tracker

    @property
    def unattributed_j(self) -> float:
        return self._slicer.unattributed_j if self._slicer is not None else 0.0

    def _final(self, span: Span) -> None:
        try:
            self.routes.add(span, self._tokens.pop(id(span), 0))
        except Exception as exc:  # a counter fault must not stop the slicer thread
            self._flag(exc)

    def _save_routes(self) -> None:
        """Per-route totals onto the record (a new dict each time: the store thread may be reading the old)."""
        record = self._tracker.record if self._tracker is not None else None
        slicer = self._slicer
        if record is None or slicer is None:
            return
        serving = {
            "rule": RULE,
            "slice_s": self.slice_s,
            "routes": self.routes.snapshot(),
            "unattributed_j": slicer.unattributed_j,
            "sliced_j": slicer.total_j,
        }
        record.bench = {**record.bench, "serving": serving}

    def _flag(self, exc: BaseException) -> None:
        log.error("wattprint: energy middleware fault: %s", exc)
        if self._tracker is not None:
            self._tracker.flag("asgi", f"{type(exc).__name__}: {exc}")

    # -- ASGI ------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.metrics_path is not None and scope.get("path") == self.metrics_path:
            await self._metrics(send)
            return
        slicer = self._slicer
        if slicer is None and not self._failed:  # no lifespan: start at the first request, off the event loop
            slicer = await asyncio.to_thread(self._ensure_started)
        if slicer is None:
            await self.app(scope, receive, send)
            return
        span = slicer.begin()
        status: list[int] = []

        async def send_watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message.get("status", 0)))
                if self.header:
                    try:
                        energy = slicer.estimate_j(span)
                        message["headers"] = [*message.get("headers", []), (HEADER, f"{energy:.6g}".encode())]
                    except Exception as exc:  # the response goes out without the header
                        self._flag(exc)
            await send(message)

        try:
            await self.app(scope, receive, send_watched)
        finally:
            try:
                span.tag = _NOT_FOUND if status == [404] and "route" not in scope else self.route_of(scope)
                tokens = (scope.get("state") or {}).get("wattprint_tokens")
                if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
                    self._tokens[id(span)] = tokens
            except Exception as exc:  # the request was served; only its route or tokens are lost, and flagged
                span.tag = span.tag or _UNKNOWN
                self._flag(exc)
            finally:
                slicer.end(span)  # always: a span left open would take a share of every later slice

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await asyncio.to_thread(self._ensure_started)
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.close)
            return message

        return wrapped

    async def _metrics(self, send: Send) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        slicer = self._slicer
        routes = self.routes
        if slicer is not None and routes.registry is not None:
            with routes.lock:
                new_j = slicer.unattributed_j - routes.unattributed_counted_j
                if new_j > 0:
                    routes.unattributed.inc(new_j)
                    routes.unattributed_counted_j += new_j
        body = generate_latest(routes.registry) if routes.registry is not None else b""
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _route(scope: Scope) -> str:
    """The matched route's path template where the framework set one (Starlette, FastAPI), else the path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if isinstance(path, str) and path else str(scope.get("path", ""))
