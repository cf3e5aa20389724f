"""Which counter measures each component: RAPL, a Jetson's rails, NVML, AMD's amdsmi, else the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.measure.fake_amdsmi import FakeAmdSmi
from tests.measure.fake_nvml import FakeGpu as FakeNvidiaGpu
from tests.measure.fake_nvml import FakeNvml
from tests.measure.fake_zeus_apple_silicon import FakeZeusAppleSilicon, m1, m1_max
from tests.measure.test_amdsmi import mi250
from tests.measure.test_jetson import build_agx_orin, build_orin_nx
from wattprint.measure.cpu_model import CpuModelSource, RamModelSource
from wattprint.measure.detect import detect_sources
from wattprint.measure.doctor import diagnose
from wattprint.tracking.tracker import gpu_shares


@pytest.fixture(autouse=True)
def _nothing_of_this_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the fakes each test passes: no rapld socket, AMD, NVIDIA or jtop device of the machine running it."""
    from wattprint.measure import detect, rapl

    monkeypatch.delenv("WATTPRINT_RAPLD_SOCKET", raising=False)
    monkeypatch.setattr(rapl, "RAPLD_SOCKET", str(tmp_path / "no-rapld.sock"))
    monkeypatch.setattr(detect, "AMD_KFD_PATH", str(tmp_path / "no-kfd"))
    monkeypatch.setattr(detect, "NVIDIA_DRIVER_PATHS", (str(tmp_path / "no-nvidia"),))
    monkeypatch.setattr(detect, "JTOP_SOCKET", str(tmp_path / "no-jtop.sock"))


def _close(choice: object) -> None:
    for source in choice.sources:  # type: ignore[attr-defined]
        source.close()


def test_an_amd_gpu_is_measured_by_amdsmi_with_its_domain_on_the_hardware(tmp_path: Path) -> None:
    choice = detect_sources(powercap_root=str(tmp_path), amdsmi_module=FakeAmdSmi([mi250(), mi250()]))
    try:
        assert choice.measurement == {"cpu": "model", "gpu": "amdsmi", "ram": "model"}
        assert choice.methods["gpu"] == {"method": "measured", "source": "amdsmi", "detail": "2 AMD GPU(s)"}
        assert [g["domain"] for g in choice.hardware["gpus"]] == ["amdsmi:0", "amdsmi:1"]
        assert diagnose(choice)["components"]["gpu"]["source"] == "amdsmi"
    finally:
        _close(choice)


def test_nvml_comes_before_amdsmi_and_a_missing_amd_library_is_the_gpu_reason(tmp_path: Path) -> None:
    both = detect_sources(
        powercap_root=str(tmp_path), nvml_module=FakeNvml([FakeNvidiaGpu()]), amdsmi_module=FakeAmdSmi([mi250()])
    )
    try:
        assert both.measurement["gpu"] == "nvml" and [g["domain"] for g in both.hardware["gpus"]] == ["nvml:0"]
    finally:
        _close(both)
    no_amd_gpu = detect_sources(powercap_root=str(tmp_path), amdsmi_module=FakeAmdSmi([]))
    try:
        assert no_amd_gpu.measurement["gpu"] is None
        assert no_amd_gpu.methods["gpu"]["method"] is None
        assert "no GPU energy" in no_amd_gpu.methods["gpu"]["detail"]
    finally:
        _close(no_amd_gpu)


def test_agx_orin_rails_measure_cpu_gpu_and_ram_and_no_model_is_added(tmp_path: Path) -> None:
    build_agx_orin(tmp_path / "sys")
    choice = detect_sources(powercap_root=str(tmp_path), jetson_root=str(tmp_path / "sys"))
    try:
        assert choice.measurement == {"cpu": "jetson", "gpu": "jetson", "ram": "jetson"}
        assert {c: choice.methods[c]["method"] for c in ("cpu", "gpu", "ram")} == dict.fromkeys(
            ("cpu", "gpu", "ram"), "measured"
        )
        assert not any(isinstance(s, CpuModelSource | RamModelSource) for s in choice.sources)
        assert "trapezoid" in choice.methods["cpu"]["detail"]
        doctor = diagnose(choice)["components"]
        assert doctor["cpu"]["source"] == "jetson" and doctor["cpu"]["fix"] is None
    finally:
        _close(choice)


def test_a_combined_cpu_gpu_rail_measures_the_cpu_inside_it_and_ram_falls_to_the_model(tmp_path: Path) -> None:
    build_orin_nx(tmp_path / "sys")
    choice = detect_sources(powercap_root=str(tmp_path), jetson_root=str(tmp_path / "sys"))
    try:
        assert choice.measurement == {"cpu": "jetson", "gpu": "jetson", "ram": "model"}
        assert "inside the combined rail jetson:vdd_cpu_gpu_cv" in choice.methods["cpu"]["detail"]
        assert not any(isinstance(s, CpuModelSource) for s in choice.sources)  # the CPU is not counted twice
        assert any(isinstance(s, RamModelSource) for s in choice.sources)
    finally:
        _close(choice)


def test_no_rails_on_an_arm_server_leave_the_models_with_the_rapl_reason(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    choice = detect_sources(powercap_root=str(tmp_path), jetson_root=str(tmp_path / "sys"))
    try:
        assert choice.measurement == {"cpu": "model", "gpu": None, "ram": "model"}
        assert choice.missed["cpu"].reason == "absent"
        assert "no RAPL zones" in choice.methods["cpu"]["detail"]
    finally:
        _close(choice)


def test_shares_of_an_amd_gpu_are_named_by_its_source() -> None:
    assert gpu_shares({0: {1, 2}}, {}, frozenset({1}), "amdsmi") == {"amdsmi:0": 0.5}


def test_an_m1_max_is_measured_through_ioreport_for_cpu_gpu_and_ram(tmp_path: Path) -> None:
    choice = detect_sources(powercap_root=str(tmp_path), apple_module=FakeZeusAppleSilicon(m1_max()))
    try:
        assert choice.measurement == {"cpu": "ioreport", "gpu": "ioreport", "ram": "ioreport"}
        assert "IOReport" in choice.methods["gpu"]["detail"] and "model" in choice.methods["gpu"]["detail"]
        assert not any(isinstance(s, CpuModelSource | RamModelSource) for s in choice.sources)
    finally:
        _close(choice)


def test_an_m1_without_a_dram_channel_leaves_ram_to_the_model(tmp_path: Path) -> None:
    choice = detect_sources(powercap_root=str(tmp_path), apple_module=FakeZeusAppleSilicon(m1()))
    try:
        assert choice.measurement == {"cpu": "ioreport", "gpu": "ioreport", "ram": "model"}
    finally:
        _close(choice)


def test_a_refused_ioreport_subscription_is_the_reason_the_cpu_is_estimated(tmp_path: Path) -> None:
    choice = detect_sources(powercap_root=str(tmp_path), apple_module=FakeZeusAppleSilicon(m1(), subscribe_fails=True))
    try:
        assert choice.measurement["cpu"] == "model"
        assert "IOReport" in diagnose(choice)["components"]["cpu"]["reason"]
    finally:
        _close(choice)


def test_rails_this_user_cannot_read_are_read_through_the_jtop_service(tmp_path: Path) -> None:
    from tests.measure.fake_jtop import FakeJtopModule, orin_nx

    (tmp_path / "sys").mkdir()  # no readable rails under sysfs
    choice = detect_sources(
        powercap_root=str(tmp_path), jetson_root=str(tmp_path / "sys"), jtop_module=FakeJtopModule(orin_nx())
    )
    try:
        assert choice.measurement == {"cpu": "jtop", "gpu": "jtop", "ram": "model"}
        assert "inside the combined rail" in choice.methods["cpu"]["detail"]
    finally:
        _close(choice)
