"""Prometheus: a running tracker's power, energy and carbon as metrics, scraped and/or pushed.

    from wattprint.integrations.prometheus import PrometheusExporter
    with wattprint.track("train") as t, PrometheusExporter(t, port=9464):
        train()                                   # curl http://127.0.0.1:9464/metrics

or `wattprint run --prometheus-port 9464 [--pushgateway http://host:9091] -- CMD`. After the job, `stop(linger_s)`
serves the final values a while longer (`wattprint run`: 15 s, --prometheus-linger), so that a scraper polling every
15 s still reads a short job's last figures; the push gateway keeps them until they are deleted there.

Metrics (every one labelled run_name and run_id; per device also component, device and method,
where method is "measured" or "estimated" and device the power-source domain: rapl:package-0,
model:cpu, nvml:0, ...):
    wattprint_power_watts{component,device,method}          power charged to the run, last sampling interval
    wattprint_energy_joules_total{component,device,method}  energy charged to the run since it started (counter)
    wattprint_energy_kwh{component}                         the same per component, and component="total"
    wattprint_co2e_kg{kind}                                 operational (from the energy scraped), embodied (as of
                                                            the last checkpoint), total
    wattprint_run_info{status,region}                       1
The exporter has its own CollectorRegistry (never the global one), serves on loopback unless told
otherwise, and reads the tracker's monitor only when scraped or pushed; a poller samples the
monitor's totals once per interval to derive power. A failed push is logged, never raised.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from wattprint._extras import require
from wattprint.errors import WattprintInputError
from wattprint.measure.base import COMPONENTS
from wattprint.tracking.base import TrackerLike
from wattprint.units import joules_to_kwh

__all__ = ["METRICS", "PrometheusExporter"]

log = logging.getLogger("wattprint")

METRICS = {
    "wattprint_power_watts": "Power charged to the run over the last sampling interval, W",
    "wattprint_energy_joules_total": "Energy charged to the run since it started, J (at the hardware, before PUE)",
    "wattprint_energy_kwh": "Energy charged to the run since it started, kWh, per component and total",
    "wattprint_co2e_kg": "CO2-equivalent of the run, kg (operational from the energy so far; embodied, total)",
    "wattprint_run_info": "The tracked run: 1, with its status and grid region as labels",
}
DEVICE_LABELS = ["run_name", "run_id", "component", "device", "method"]


class _Collector:
    """Builds the metric families from the tracker's state at each scrape or push."""

    def __init__(self, exporter: PrometheusExporter) -> None:
        self._exporter = exporter

    def describe(self) -> list[Any]:
        return []  # families are built per scrape; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        core = self._exporter._core
        tracker = self._exporter.tracker
        record = tracker.record
        run_id = record.run_id if record is not None else ""
        run = [tracker.name, run_id]
        info = core.GaugeMetricFamily(
            "wattprint_run_info", METRICS["wattprint_run_info"], labels=["run_name", "run_id", "status", "region"]
        )
        info.add_metric([*run, record.status if record else "starting", record.region if record else ""], 1.0)
        yield info
        monitor = tracker.monitor
        if monitor is None or record is None:
            return
        power = core.GaugeMetricFamily("wattprint_power_watts", METRICS["wattprint_power_watts"], labels=DEVICE_LABELS)
        energy = core.CounterMetricFamily(
            "wattprint_energy_joules", METRICS["wattprint_energy_joules_total"], labels=DEVICE_LABELS
        )
        # per device needs the monitor's domains (Tracker.energy_so_far_kwh has components only); the
        # per-component kWh is summed from this one snapshot, so both families agree within a scrape
        totals = monitor.totals()
        charged, _why = monitor.gpu_selection()
        watts = self._exporter.power_w()
        by_component_j = dict.fromkeys(COMPONENTS, 0.0)
        for name, domain in monitor.domains.items():
            if not domain.counted or (domain.component == "gpu" and name not in charged):
                continue  # contained in another domain, or a GPU the run does not use
            labels = [*run, domain.component, name, domain.method]
            joules = totals.attributed_j.get(name, 0.0)
            energy.add_metric(labels, joules)
            power.add_metric(labels, watts.get(name, 0.0))
            by_component_j[domain.component] += joules
        yield power
        yield energy
        kwh = core.GaugeMetricFamily(
            "wattprint_energy_kwh", METRICS["wattprint_energy_kwh"], labels=["run_name", "run_id", "component"]
        )
        for component in COMPONENTS:
            kwh.add_metric([*run, component], joules_to_kwh(by_component_j[component]))
        kwh.add_metric([*run, "total"], joules_to_kwh(sum(by_component_j.values())))
        yield kwh
        co2e = core.GaugeMetricFamily(
            "wattprint_co2e_kg", METRICS["wattprint_co2e_kg"], labels=["run_name", "run_id", "kind"]
        )
        # operational from the energy this scrape reports, at the run's intensity and PUE so far: the record's
        # own figure moves only at checkpoints (0 until the first), and the two gauges must agree
        total_kwh = joules_to_kwh(sum(by_component_j.values()))
        operational = max(record.co2e_kg.operational, total_kwh * record.pue * record.intensity_g_per_kwh / 1000.0)
        if record.status != "running":  # the final record's figures (time-resolved ones included), as on every surface
            operational = record.co2e_kg.operational
        values = {"operational": operational, "embodied": record.co2e_kg.embodied}
        values["total"] = operational + record.co2e_kg.embodied
        for kind, kg in values.items():
            co2e.add_metric([*run, kind], kg)
        yield co2e


class PrometheusExporter:
    """Serves (port) and/or pushes (pushgateway) a tracker's metrics; a context manager."""

    def __init__(
        self,
        tracker: TrackerLike,
        *,
        port: int | None = None,
        addr: str = "127.0.0.1",
        pushgateway: str | None = None,
        job: str = "wattprint",
        push_interval_s: float | None = None,
    ) -> None:
        self._prom = require("prometheus_client", extra="prometheus", feature="the Prometheus exporter")
        self._core = require("prometheus_client.core", extra="prometheus", feature="the Prometheus exporter")
        if port is not None and not 0 <= port <= 65535:
            raise WattprintInputError("port", f"got {port}; expected a TCP port 0-65535")
        if pushgateway is not None and not pushgateway.startswith(("http://", "https://")):
            raise WattprintInputError("pushgateway", f"got {pushgateway!r}; expected an http:// or https:// URL")
        self.tracker = tracker
        self.port = port
        self.addr = addr
        self.pushgateway = pushgateway.rstrip("/") if pushgateway else None
        self.job = job
        self.push_interval_s = push_interval_s
        self.pushes = 0
        self.push_errors = 0
        self.registry = self._prom.CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        self._server: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._last: Any = None
        self._power_w: dict[str, float] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> PrometheusExporter:
        """Bind the port now (a port in use is bad input, raised before anything runs), then serve."""
        if self.port is not None and self._server is None:
            try:
                self._server, _thread = self._prom.start_http_server(self.port, addr=self.addr, registry=self.registry)
            except OSError as exc:
                raise WattprintInputError(
                    "port",
                    f"cannot listen on {self.addr}:{self.port} ({exc.strerror or exc}); choose a free port",
                ) from None
            self.port = int(self._server.server_port)
        self._spawn(self._poll_loop, "wattprint-prometheus")
        if self.pushgateway is not None:
            self._spawn(self._push_loop, "wattprint-pushgateway")
        return self

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, linger_s: float = 0.0) -> None:
        """Stop polling, push the final values once more, serve them `linger_s` seconds more (Ctrl-C ends the wait),
        stop serving."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5.0)
        self._threads.clear()
        self.poll()
        if self.pushgateway is not None:
            self.push()
        if self._server is not None and linger_s > 0:
            with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the user does not want to wait
                threading.Event().wait(linger_s)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> PrometheusExporter:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- power from successive totals ------------------------------------------------------------
    def _interval_s(self) -> float:
        monitor = self.tracker.monitor
        return float(monitor.interval_s) if monitor is not None else 1.0

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._interval_s()):
            self.poll()

    def poll(self) -> None:
        """Derive per-device power from the monitor's totals since the previous distinct sample."""
        monitor = self.tracker.monitor
        if monitor is None:
            return
        try:
            totals = monitor.totals()
            with self._lock:
                last = self._last
                if last is not None and totals.timestamp > last.timestamp:
                    dt = totals.timestamp - last.timestamp
                    self._power_w = {
                        name: max(0.0, (value - last.attributed_j.get(name, 0.0)) / dt)
                        for name, value in totals.attributed_j.items()
                    }
                if last is None or totals.timestamp > last.timestamp:
                    self._last = totals
        except Exception as exc:  # the host job comes first
            log.debug("wattprint: prometheus poll failed: %s", exc)

    def power_w(self) -> dict[str, float]:
        with self._lock:
            return dict(self._power_w)

    # -- Pushgateway -----------------------------------------------------------------------------
    def _push_loop(self) -> None:
        interval = self.push_interval_s or getattr(getattr(self.tracker, "settings", None), "checkpoint", 5.0)
        while not self._stop.wait(interval):
            self.push()

    def push(self) -> bool:
        """PUT the metrics to the Pushgateway, grouped by run id. Logged on failure, never raised."""
        if self.pushgateway is None:
            return False
        record = self.tracker.record
        grouping = {"run_id": record.run_id} if record is not None else {}
        try:
            self._prom.push_to_gateway(
                self.pushgateway, job=self.job, registry=self.registry, grouping_key=grouping, timeout=5.0
            )
        except Exception as exc:  # the host job comes first: counted, logged once
            self.push_errors += 1
            if self.push_errors == 1:
                log.warning("wattprint: push to %s failed: %s", self.pushgateway, exc)
            return False
        self.pushes += 1
        return True


class _NodeCollector:
    """Per-cgroup energy of a NodeMonitor at each scrape: live runs, and the final figure of stopped ones."""

    def __init__(self, node: Any, prom: Any) -> None:
        self.node = node
        self._prom = prom

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        energy = CounterMetricFamily(
            "wattprint_cgroup_energy_joules", "Energy charged to each cgroup's run, J", labels=["cgroup", "run_id"]
        )
        live = GaugeMetricFamily("wattprint_cgroup_live", "1 while the cgroup's run is tracked", labels=["cgroup"])
        finished, trackers = self.node.snapshot()
        for record in finished:
            energy.add_metric([record.name, record.run_id], record.energy_kwh.total * 3.6e6)
        for path, tracker in trackers.items():
            try:
                joules = tracker.energy_so_far_kwh()["total"] * 3.6e6
            except Exception:  # stopped between the copy and the read: its final figure is in `finished`
                continue
            energy.add_metric([path.name, tracker.record.run_id], joules)
            live.add_metric([path.name], 1.0)
        yield energy
        yield live


def serve_node(node: Any, port: int, addr: str = "127.0.0.1") -> Any:
    """Serve a NodeMonitor's per-cgroup energy on `addr:port` (0: any free port); returns the server
    (`.server_port`, `.shutdown()`). A port in use is bad input."""
    prom = require("prometheus_client", extra="prometheus", feature="wattprint node --prometheus-port")
    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(_NodeCollector(node, prom))
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise WattprintInputError("prometheus_port", f"got {port!r}; expected a port 0-65535 (0: any free port)")
    try:
        server, _thread = prom.start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise WattprintInputError(
            "prometheus_port", f"cannot listen on {addr}:{port} ({exc.strerror or exc}); choose a free port"
        ) from None
    return server
