from __future__ import annotations

from pathlib import Path

import pytest

from wattprint.measure.cpu_model import (
    DEFAULT_TDP_W,
    GIB,
    CpuInfo,
    CpuModelSource,
    RamModelSource,
    cpu_info,
    lookup_tdp,
    read_cpu_model,
)


@pytest.mark.parametrize(
    ("model", "tdp_w"),
    [
        ("Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz", 150.0),
        ("AMD EPYC 7763 64-Core Processor", 280.0),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", 65.0),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", 95.0),
        ("AMD Ryzen 9 5950X 16-Core Processor", 105.0),
    ],
)
def test_tdp_lookup_real_model_strings(model: str, tdp_w: float) -> None:
    found = lookup_tdp(model)
    assert found is not None and found[0] == tdp_w


@pytest.mark.parametrize("model", ["Intel(R) Xeon(R) Processor", "QEMU Virtual CPU version 2.5+", ""])
def test_unknown_or_generic_model_uses_documented_default(model: str) -> None:
    assert lookup_tdp(model) is None


def test_cpu_info_default_and_override() -> None:
    info = cpu_info(tdp_override_w=42.0)
    assert info.tdp_w == 42.0 and "WATTPRINT_CPU_TDP_W" in info.tdp_source
    info = cpu_info()
    assert info.tdp_w > 0 and info.tdp_source
    if lookup_tdp(info.model) is None:
        assert info.tdp_w == DEFAULT_TDP_W and "not in table" in info.tdp_source


def test_read_cpu_model_counts_sockets(tmp_path: Path) -> None:
    text = ""
    for cpu in range(4):
        text += f"processor\t: {cpu}\nmodel name\t: AMD EPYC 7763 64-Core Processor\nphysical id\t: {cpu // 2}\n\n"
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert read_cpu_model(path) == ("AMD EPYC 7763 64-Core Processor", 2)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_cpu_model_energy_hand_computed() -> None:
    clock = Clock()
    cpu = iter([(0.0, 0.0), (5.0, 10.0), (5.0, 20.0)])  # (busy, total): 50% then idle
    info = CpuInfo("test", sockets=2, logical_cpus=8, tdp_w=100.0, tdp_source="test")
    src = CpuModelSource(info, idle_fraction=0.1, cpu_seconds=lambda: next(cpu), clock=clock)
    clock.t = 10.0
    first = src.read().energy_j["model:cpu"]
    # 2 x 100 W x (0.1 + 0.9 x 0.5) = 110 W for 10 s
    assert first == pytest.approx(1100.0)
    clock.t = 20.0
    # idle: 2 x 100 x 0.1 = 20 W for 10 s
    assert src.read().energy_j["model:cpu"] == pytest.approx(1100.0 + 200.0)
    assert [d.method for d in src.domains()] == ["estimated"]


def test_ram_model_energy_hand_computed() -> None:
    clock = Clock()
    src = RamModelSource(total_bytes=16 * GIB, w_per_gib=0.375, clock=clock)
    clock.t = 100.0
    assert src.power_w == 6.0
    assert src.read().energy_j["model:ram"] == pytest.approx(600.0)
