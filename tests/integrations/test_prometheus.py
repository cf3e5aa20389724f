"""The Prometheus exporter API: real HTTP scrapes on loopback of a real tracker.

Counters this machine lacks (RAPL, NVML) are faked at their interface only: a power source that
reports cumulative joules of a constant power per domain, so the scraped power is known exactly.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest

from wattprint._extras import MissingExtraError
from wattprint.errors import WattprintInputError
from wattprint.measure.base import Domain, Reading
from wattprint.measure.detect import SourceChoice
from wattprint.tracking.tracker import Tracker

prometheus_client = pytest.importorskip("prometheus_client")
from wattprint.integrations.prometheus import METRICS, PrometheusExporter  # noqa: E402

POWER_W = {"rapl:package-0": 30.0, "nvml:0": 100.0, "nvml:1": 20.0}


class ConstantPower:
    """A counter-style source: cumulative joules of a constant power per domain."""

    name = "fake"

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def domains(self) -> Sequence[Domain]:
        return (
            Domain("rapl:package-0", "cpu", "measured"),
            Domain("rapl:core-0", "cpu", "measured", counted=False),
            Domain("nvml:0", "gpu", "measured"),
            Domain("nvml:1", "gpu", "measured"),
        )

    def read(self) -> Reading:
        now = time.monotonic()
        energy = {name: watts * (now - self._t0) for name, watts in POWER_W.items()}
        return Reading(now, energy | {"rapl:core-0": 0.5 * energy["rapl:package-0"]})

    def close(self) -> None:
        pass


def make_tracker(name: str = "prom") -> Tracker:
    choice = SourceChoice([ConstantPower()], {"cpu": "rapl", "gpu": "nvml", "ram": None}, {})
    return Tracker(name, sources=choice, interval=0.1, attribution="machine", checkpoint=0.2)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def pick(samples: dict[Any, float], name: str, **labels: str) -> list[float]:
    return [v for (n, lab), v in samples.items() if n == name and labels.items() <= dict(lab).items()]


def test_scrape_shows_power_energy_and_carbon_per_device() -> None:
    tracker = make_tracker()
    with tracker, PrometheusExporter(tracker, port=0) as exporter:
        assert exporter.port and exporter.port > 0
        time.sleep(0.8)
        first = scrape(exporter.port)
        time.sleep(0.4)
        second = scrape(exporter.port)
        run_id = tracker.record.run_id
    for device, watts in POWER_W.items():
        (power,) = pick(
            second, "wattprint_power_watts", device=device, run_id=run_id, run_name="prom", method="measured"
        )
        assert power == pytest.approx(watts, rel=0.05)
        (e1,) = pick(first, "wattprint_energy_joules_total", device=device)
        (e2,) = pick(second, "wattprint_energy_joules_total", device=device)
        assert 0 < e1 < e2
        assert e2 - e1 == pytest.approx(watts * 0.4, rel=0.5)  # about 0.4 s between the scrapes
    assert not pick(second, "wattprint_power_watts", device="rapl:core-0")  # inside the package: not added
    (gpu_kwh,) = pick(second, "wattprint_energy_kwh", component="gpu")
    gpu_j = sum(pick(second, "wattprint_energy_joules_total", component="gpu"))
    assert gpu_kwh == pytest.approx(gpu_j / 3.6e6)
    (total_kwh,) = pick(second, "wattprint_energy_kwh", component="total")
    assert total_kwh == pytest.approx(sum(pick(second, "wattprint_energy_joules_total")) / 3.6e6)
    (co2e,) = pick(second, "wattprint_co2e_kg", kind="operational")
    assert co2e > 0  # the checkpoint every 0.2 s has accounted carbon
    assert pick(second, "wattprint_run_info", status="running", run_id=run_id) == [1.0]
    final = tracker.record
    assert final.energy_kwh.total >= total_kwh


def test_own_registry_and_port_freed() -> None:
    tracker = make_tracker("own")
    with tracker:
        exporter = PrometheusExporter(tracker, port=0).start()
        port = exporter.port
        assert pick(scrape(port), "wattprint_run_info", run_name="own")
        exporter.stop()
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("wattprint") for name in names)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert set(METRICS) >= {"wattprint_power_watts", "wattprint_energy_joules_total", "wattprint_co2e_kg"}


def test_port_in_use_is_bad_input() -> None:
    tracker = make_tracker("busy")
    first = PrometheusExporter(tracker, port=0).start()
    try:
        with pytest.raises(WattprintInputError, match=rf"^port: cannot listen on 127.0.0.1:{first.port}"):
            PrometheusExporter(tracker, port=first.port).start()
    finally:
        first.stop()


def test_bad_arguments_are_input_errors() -> None:
    tracker = make_tracker("bad")
    with pytest.raises(WattprintInputError, match="^pushgateway: "):
        PrometheusExporter(tracker, pushgateway="localhost:9091")
    with pytest.raises(WattprintInputError, match="^port: "):
        PrometheusExporter(tracker, port=70000)


def test_unreachable_pushgateway_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    tracker = make_tracker("nopush")
    with tracker:
        exporter = PrometheusExporter(tracker, pushgateway=f"http://127.0.0.1:{dead}")
        assert exporter.push() is False
    assert exporter.push_errors == 1 and "push to" in caplog.text


def test_without_prometheus_client_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(MissingExtraError, match=r"wattprint\[prometheus\]"):
        PrometheusExporter(make_tracker("missing"), port=0)


def test_operational_carbon_follows_the_energy_before_any_checkpoint() -> None:
    """The record's carbon moves only at checkpoints; the gauge is the scraped energy at the run's intensity
    and PUE, so it is not 0 before the first one, and total = operational + embodied (issue 15)."""
    choice = SourceChoice([ConstantPower()], {"cpu": "rapl", "gpu": "nvml", "ram": None}, {})
    tracker = Tracker("prom-early", sources=choice, interval=0.1, attribution="machine", checkpoint=3600)
    with tracker, PrometheusExporter(tracker, port=0) as exporter:
        time.sleep(0.5)
        samples = scrape(exporter.port)
        record = tracker.record
        assert record.co2e_kg.operational == 0.0  # no checkpoint yet
    (kwh,) = pick(samples, "wattprint_energy_kwh", component="total")
    (operational,) = pick(samples, "wattprint_co2e_kg", kind="operational")
    (embodied,) = pick(samples, "wattprint_co2e_kg", kind="embodied")
    (total,) = pick(samples, "wattprint_co2e_kg", kind="total")
    assert kwh > 0 and operational == pytest.approx(kwh * record.pue * record.intensity_g_per_kwh / 1000)
    assert total == pytest.approx(operational + embodied)
