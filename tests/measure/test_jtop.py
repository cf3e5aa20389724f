"""JtopSource against a scripted jtop module (tests/measure/fake_jtop.py) shaped like jetson-stats 4.2+."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import wattprint
from tests.measure.fake_jtop import LOST, NO_ACCESS, NOT_ACTIVE, FakeJtopModule, JtopException, Rail, agx_orin, orin_nx
from tests.measure.scripted import Clock
from wattprint.errors import PowerSourceError
from wattprint.measure import jtop as jtop_source
from wattprint.measure.base import PowerSource
from wattprint.measure.jtop import JtopSource
from wattprint.measure.monitor import EnergyMonitor

ORIN_NX_DOMAINS = [
    ("jetson:vdd_cpu_gpu_cv", "gpu", True),
    ("jetson:vdd_soc", "cpu", False),
    ("jetson:vdd_in", "cpu", False),
]
AGX_ORIN_DOMAINS = [
    ("jetson:vddq_vdd2_1v8ao", "ram", True),
    ("jetson:vdd_cpu_cv", "cpu", True),
    ("jetson:vdd_gpu_soc", "gpu", True),
    ("jetson:vin_sys_5v0", "cpu", False),
]


def _domains(source: JtopSource) -> list[tuple[str, str, bool]]:
    return [(d.name, d.component, d.counted) for d in source.domains()]


# -- the fake is shaped like the real client -------------------------------------------------------------
def test_fake_power_shape_is_jetson_stats_4_2() -> None:
    fake = FakeJtopModule(orin_nx())
    with fake.jtop() as jetson:
        assert jetson.ok(spin=True)
        power = jetson.power
    assert set(power) == {"rail", "tot"}
    assert list(power["rail"]) == ["VDD_CPU_GPU_CV", "VDD_SOC"]  # sorted; VDD_IN moved to "tot"
    assert power["rail"]["VDD_CPU_GPU_CV"] == {
        "volt": 5000,
        "curr": 1000,
        "warn": 32760,
        "crit": 32760,
        "power": 5000,
        "online": True,
        "avg": 5000,
    }
    assert power["tot"]["name"] == "VDD_IN" and power["tot"]["power"] == 10000
    assert FakeJtopModule(agx_orin()).status()["tot"] == {"power": 9500 + 4750 + 3000 + 500, "avg": 17750}
    assert FakeJtopModule({}).status() == {}
    assert str(JtopException(NOT_ACTIVE)) == NOT_ACTIVE


# -- domains -----------------------------------------------------------------------------------------------
def test_orin_nx_domains() -> None:
    source = JtopSource(FakeJtopModule(orin_nx()), clock=Clock())
    assert isinstance(source, PowerSource) and source.name == "jtop"
    assert _domains(source) == ORIN_NX_DOMAINS  # VDD_IN, the board total, is detail only
    assert all(d.method == "measured" for d in source.domains())
    assert "VDD_CPU_GPU_CV" in source.detail()
    source.close()


def test_agx_orin_domains_skip_the_summed_total_and_offline_supplies() -> None:
    source = JtopSource(FakeJtopModule(agx_orin()), clock=Clock())
    assert _domains(source) == AGX_ORIN_DOMAINS  # no "tot" (a sum of these), no offline USB-C supply
    source.close()


def test_nano_total_is_pom_5v_in() -> None:
    rails = {"POM_5V_IN": Rail(5000, 1000), "POM_5V_GPU": Rail(5000, 200), "POM_5V_CPU": Rail(5000, 300)}
    source = JtopSource(FakeJtopModule(rails), clock=Clock())
    assert _domains(source) == [
        ("jetson:pom_5v_cpu", "cpu", True),
        ("jetson:pom_5v_gpu", "gpu", True),
        ("jetson:pom_5v_in", "cpu", False),
    ]
    source.close()


def test_no_online_rail_is_absent() -> None:
    for rails in ({}, {"USBC000:001": Rail(5000, 0, online=False)}):
        fake = FakeJtopModule(rails)
        with pytest.raises(PowerSourceError, match="no online power rail") as info:
            JtopSource(fake)
        assert info.value.reason == "absent"
        assert fake.clients[0].closes == 1


def test_jetson_stats_before_4_2_is_refused() -> None:
    fake = FakeJtopModule(orin_nx(), legacy=True)
    with pytest.raises(PowerSourceError, match="4.2 or later") as info:
        JtopSource(fake)
    assert info.value.reason == "unreadable" and "jetson-stats" in (info.value.fix or "")
    assert fake.clients[0].closes == 1


# -- energy ------------------------------------------------------------------------------------------------
def test_trapezoid_integration_over_the_clock() -> None:
    fake = FakeJtopModule(orin_nx())
    clock = Clock(10.0)
    source = JtopSource(fake, clock=clock)
    clock.now = 12.0
    assert source.read() == (12.0, {"jetson:vdd_cpu_gpu_cv": 10.0, "jetson:vdd_soc": 4.0, "jetson:vdd_in": 20.0})
    fake.set_power("VDD_CPU_GPU_CV", 15000)
    fake.set_power("VDD_IN", 20000)
    clock.now = 13.0
    reading = source.read()
    assert reading.energy_j == {"jetson:vdd_cpu_gpu_cv": 20.0, "jetson:vdd_soc": 6.0, "jetson:vdd_in": 35.0}
    source.close()


def test_offline_rails_are_skipped_and_one_going_offline_draws_nothing() -> None:
    rails = agx_orin()
    fake = FakeJtopModule(rails)
    clock = Clock()
    source = JtopSource(fake, clock=clock)
    rails["USBC000:001"] = Rail(5000, 3000, online=True)  # plugged in later: not a domain of this source
    clock.now = 1.0
    assert "jetson:usbc000:001" not in source.read().energy_j
    source.close()
    rails = {"VDD_IN": Rail(5000, 2000), "USBC000:001": Rail(5000, 1000, online=True)}
    fake = FakeJtopModule(rails)
    source = JtopSource(fake, clock=(clock := Clock()))
    rails["USBC000:001"].online = False
    clock.now = 2.0
    assert source.read().energy_j["jetson:usbc000:001"] == 5.0  # (5 W + 0 W) / 2 x 2 s
    source.close()


def test_missing_rail_raises_then_the_next_read_bridges_the_gap() -> None:
    rails = orin_nx()
    fake = FakeJtopModule(rails)
    clock = Clock()
    source = JtopSource(fake, clock=clock)
    clock.now = 1.0
    assert source.read().energy_j["jetson:vdd_cpu_gpu_cv"] == 5.0
    rails["VDD_CPU_GPU_CV"].failing = True
    clock.now = 2.0
    with pytest.raises(PowerSourceError, match="no rail VDD_CPU_GPU_CV"):
        source.read()
    rails["VDD_CPU_GPU_CV"].failing = False
    rails["VDD_IN"].failing = True  # "tot" becomes the service's sum, without a name: not VDD_IN
    with pytest.raises(PowerSourceError, match="no rail tot"):
        source.read()
    rails["VDD_IN"].failing = False
    fake.set_power("VDD_CPU_GPU_CV", 15000)
    clock.now = 3.0
    reading = source.read()  # (5 W + 15 W) / 2 over the whole 2 s since the last good read
    assert reading.energy_j == {"jetson:vdd_cpu_gpu_cv": 25.0, "jetson:vdd_soc": 6.0, "jetson:vdd_in": 30.0}
    source.close()


def test_service_down_then_up_reconnects_and_resumes() -> None:
    fake = FakeJtopModule(orin_nx())
    clock = Clock()
    source = JtopSource(fake, clock=clock)
    clock.now = 1.0
    source.read()
    fake.stop_service()
    clock.now = 2.0
    with pytest.raises(PowerSourceError, match=LOST):  # the client's thread error, from ok()
        source.read()
    assert fake.clients[0].closes == 1
    clock.now = 3.0
    with pytest.raises(PowerSourceError, match="not active") as info:  # a new client, refused
        source.read()
    assert len(fake.clients) == 2 and info.value.fix == "sudo systemctl start jtop.service"
    fake.start_service()
    clock.now = 3.0 + jtop_source.RECONNECT_S / 2
    with pytest.raises(PowerSourceError, match="connection lost; next attempt in"):  # no new client yet
        source.read()
    assert len(fake.clients) == 2
    fake.set_power("VDD_CPU_GPU_CV", 15000)
    clock.now = 3.0 + jtop_source.RECONNECT_S
    reading = source.read()  # a third client; (5 W + 15 W) / 2 over the whole gap since 1 s
    assert len(fake.clients) == 3
    assert reading.energy_j["jetson:vdd_cpu_gpu_cv"] == 5.0 + 10.0 * (2.0 + jtop_source.RECONNECT_S)
    source.close()


def test_a_stopped_client_is_replaced() -> None:
    fake = FakeJtopModule(orin_nx())
    source = JtopSource(fake, clock=Clock())
    fake.clients[0].close()  # as when the real client's blocking ok() timed out
    with pytest.raises(PowerSourceError, match="client stopped"):
        source.read()
    source.read()
    assert len(fake.clients) == 2
    source.close()


def test_close_stops_the_client_and_is_idempotent() -> None:
    fake = FakeJtopModule(orin_nx())
    source = JtopSource(fake)
    source.close()
    source.close()
    assert fake.clients[0].closes == 1
    with pytest.raises(PowerSourceError, match="closed"):
        source.read()


# -- opening -----------------------------------------------------------------------------------------------
def test_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", None)  # `import jtop` raises ImportError
    with pytest.raises(PowerSourceError) as info:
        JtopSource()
    assert info.value.reason == "missing-library"
    assert info.value.fix == "pip install 'wattprint[jetson]'"


def test_imported_module_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeJtopModule(orin_nx())
    monkeypatch.setitem(sys.modules, "jtop", fake)
    source = JtopSource()
    assert len(fake.clients) == 1
    source.close()


def test_service_down_is_unreadable() -> None:
    fake = FakeJtopModule(orin_nx())
    fake.stop_service()
    with pytest.raises(PowerSourceError, match="jtop.service is not active") as info:
        JtopSource(fake)
    assert info.value.reason == "unreadable"
    assert info.value.fix == "sudo systemctl start jtop.service"
    assert fake.clients[0].closes == 1


def test_user_outside_the_jtop_group_is_permission() -> None:
    fake = FakeJtopModule(orin_nx())
    fake.member = False
    with pytest.raises(PowerSourceError, match="can't access jtop.service") as info:
        JtopSource(fake)
    assert info.value.reason == "permission" and "usermod -aG jtop" in (info.value.fix or "")
    assert NO_ACCESS.split("\n")[0] in str(info.value)


def test_other_connection_errors_are_unreadable() -> None:
    fake = FakeJtopModule(orin_nx())

    def refuse(self: object) -> None:
        raise ConnectionRefusedError(104, "Connection reset by peer")

    fake.jtop.start = refuse  # type: ignore[method-assign]
    with pytest.raises(PowerSourceError, match="ConnectionRefusedError") as info:
        JtopSource(fake)
    assert info.value.reason == "unreadable" and info.value.fix is None


def test_import_does_not_load_jtop() -> None:
    src = str(Path(wattprint.__file__).resolve().parents[1])
    code = "import sys, wattprint.measure.jtop; print('jtop' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=src)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# -- the monitor over it ---------------------------------------------------------------------------------
def test_monitor_marks_the_rails_degraded_and_never_raises() -> None:
    fake = FakeJtopModule(orin_nx())
    clock = Clock()
    source = JtopSource(fake, clock=clock)
    clock.now = 1.0
    monitor = EnergyMonitor([source], attribution="machine")  # its first reading, at 1 s, is the zero
    try:
        clock.now = 2.0
        monitor.sample()  # 5 J on VDD_CPU_GPU_CV
        fake.stop_service()
        clock.now = 3.0
        monitor.sample()  # must not raise
        assert LOST in monitor.degraded["jetson:vdd_cpu_gpu_cv"]
        assert set(monitor.degraded) == {name for name, _, _ in ORIN_NX_DOMAINS}
        fake.start_service()
        fake.set_power("VDD_CPU_GPU_CV", 15000)
        clock.now = 4.0
        monitor.sample()  # reconnected at once: 5 J + (5 + 15) / 2 x 2 s
        attributed, machine = monitor.by_component(monitor.totals())
        assert machine == {"cpu": 0.0, "gpu": 25.0, "ram": 0.0}  # VDD_IN and VDD_SOC are detail only
        assert attributed["gpu"] == 25.0
        assert monitor.totals().machine_j["jetson:vdd_in"] == 30.0  # still integrated, for detail
    finally:
        monitor.close()
    assert fake.clients[-1].closes == 1
