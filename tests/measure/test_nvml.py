"""NvmlSource against FakeNvml (scripted GPUs), and the real pynvml where it can be loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import wattprint
from tests.measure import fake_nvml
from tests.measure.fake_nvml import FakeGpu, FakeNvml
from tests.measure.scripted import Clock
from wattprint.errors import PowerSourceError
from wattprint.measure import nvml
from wattprint.measure.base import Domain, PowerSource
from wattprint.measure.nvml import NvmlSource


def volta(**kwargs: object) -> FakeGpu:
    spec: dict[str, object] = {
        "name": "Tesla V100-SXM2-16GB",
        "uuid": "GPU-11111111-2222-3333-4444-555555555555",
        "energy_mj": 1_000_000,
        "power_limit_mw": 300_000,
    }
    return FakeGpu(**(spec | kwargs))  # type: ignore[arg-type]


def pascal(**kwargs: object) -> FakeGpu:
    spec: dict[str, object] = {
        "name": b"Tesla P100-PCIE-16GB",  # old pynvml releases return bytes
        "uuid": b"GPU-66666666-7777-8888-9999-000000000000",
        "energy_mj": None,  # no energy counter before Volta
        "power_mw": 100_000,
        "power_limit_mw": None,
    }
    return FakeGpu(**(spec | kwargs))  # type: ignore[arg-type]


# -- the fake itself ---------------------------------------------------------------------------------
def test_fake_errors_mirror_pynvml() -> None:
    pynvml = pytest.importorskip("pynvml")
    for code in (1, 2, 3, 4, 9, 12, 13, 15, 999):
        real, fake = pynvml.NVMLError(code), fake_nvml.NVMLError(code)
        assert type(fake).__name__ == type(real).__name__
        assert fake.value == real.value == code
        assert getattr(fake_nvml, type(real).__name__)().value == code
    assert isinstance(fake_nvml.NVMLError(3), fake_nvml.NVMLError_NotSupported)
    assert str(fake_nvml.NVMLError_DriverNotLoaded()) == "Driver Not Loaded"
    for name in ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_DRIVER_NOT_LOADED", "NVML_ERROR_LIBRARY_NOT_FOUND"):
        assert getattr(FakeNvml(), name) == getattr(pynvml, name)
    for name in (
        "nvmlInit", "nvmlShutdown", "nvmlDeviceGetCount", "nvmlDeviceGetHandleByIndex", "nvmlDeviceGetName",
        "nvmlDeviceGetUUID", "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses",
        "nvmlDeviceGetEnforcedPowerLimit", "nvmlErrorString", "nvmlDeviceGetProcessUtilization",
    ):  # fmt: skip
        assert callable(getattr(pynvml, name)) and callable(getattr(FakeNvml(), name))


# -- opening -------------------------------------------------------------------------------------------
def test_domains_and_gpu_details_for_two_generations() -> None:
    fake = FakeNvml([volta(), pascal()])
    source = NvmlSource(fake)
    try:
        assert isinstance(source, PowerSource)
        assert source.name == "nvml"
        assert list(source.domains()) == [
            Domain("nvml:0", "gpu", "measured"),
            Domain("nvml:1", "gpu", "measured"),
        ]
        assert source.gpus() == [
            {
                "index": 0,
                "name": "Tesla V100-SXM2-16GB",
                "uuid": "GPU-11111111-2222-3333-4444-555555555555",
                "power_limit_w": 300.0,
                "energy_method": "counter",
            },
            {
                "index": 1,
                "name": "Tesla P100-PCIE-16GB",
                "uuid": "GPU-66666666-7777-8888-9999-000000000000",
                "power_limit_w": None,
                "energy_method": "power-sampling",
            },
        ]
    finally:
        source.close()


def test_gpu_indices_select_gpus() -> None:
    fake = FakeNvml([volta(), volta(), volta()])
    source = NvmlSource(fake, gpu_indices=[2, 0])
    try:
        assert [d.name for d in source.domains()] == ["nvml:2", "nvml:0"]
    finally:
        source.close()
    with pytest.raises(PowerSourceError, match="GPU index 3 not visible"):
        NvmlSource(fake, gpu_indices=[0, 3])
    assert fake.refcount == 0  # the failed open shut NVML down again


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED, "Driver Not Loaded"),
        (fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND, "NVML Shared Library Not Found"),
    ],
)
def test_no_driver(code: int, text: str) -> None:
    fake = FakeNvml([volta()], init_error=code)
    with pytest.raises(PowerSourceError, match=f"NVML could not start: {text} \\(NVML error {code}\\)"):
        NvmlSource(fake)
    assert nvml.available(fake) is False


def test_no_gpu() -> None:
    fake = FakeNvml([])
    with pytest.raises(PowerSourceError, match="NVML sees no GPU"):
        NvmlSource(fake)
    assert fake.refcount == 0
    assert nvml.available(fake) is False
    assert fake.refcount == 0


def test_available_balances_init_and_shutdown() -> None:
    fake = FakeNvml([pascal()])
    assert nvml.available(fake) is True
    assert (fake.init_calls, fake.shutdown_calls, fake.refcount) == (1, 1, 0)


def test_gpu_without_energy_or_power_is_skipped() -> None:
    fake = FakeNvml([pascal(power_mw=None), volta()])
    source = NvmlSource(fake)
    try:
        assert [d.name for d in source.domains()] == ["nvml:1"]
    finally:
        source.close()
    with pytest.raises(PowerSourceError, match="GPU 0 .* reports neither energy nor power"):
        NvmlSource(FakeNvml([pascal(power_mw=None)]))


# -- energy ---------------------------------------------------------------------------------------------
def test_counter_energy_since_open() -> None:
    gpu = volta(energy_mj=5_000_000)
    source = NvmlSource(FakeNvml([gpu]))
    try:
        assert source.read().energy_j == {"nvml:0": 0.0}
        gpu.energy_mj = 5_000_000 + 250_500
        assert source.read().energy_j["nvml:0"] == pytest.approx(250.5)
        gpu.energy_mj += 1_000
        assert source.read().energy_j["nvml:0"] == pytest.approx(251.5)
    finally:
        source.close()


def test_power_sampling_trapezoid() -> None:
    gpu = pascal(power_mw=100_000)
    clock = Clock(10.0)
    source = NvmlSource(FakeNvml([gpu]), clock=clock)
    try:
        clock.now, gpu.power_mw = 12.0, 200_000
        reading = source.read()
        assert reading.energy_j["nvml:0"] == pytest.approx(300.0)  # (100 + 200) / 2 W x 2 s
        assert reading.timestamp == 12.0
        clock.now, gpu.power_mw = 13.0, 50_000
        assert source.read().energy_j["nvml:0"] == pytest.approx(425.0)  # + (200 + 50) / 2 W x 1 s
        clock.now = 13.5
        assert source.read().energy_j["nvml:0"] == pytest.approx(450.0)  # + 50 W x 0.5 s
    finally:
        source.close()


def test_mixed_gpus_each_use_their_method() -> None:
    new, old = volta(energy_mj=0), pascal(power_mw=60_000)
    clock = Clock(0.0)
    source = NvmlSource(FakeNvml([new, old]), clock=clock)
    try:
        clock.now, new.energy_mj, old.power_mw = 4.0, 1_234_567, 80_000
        assert source.read().energy_j == pytest.approx({"nvml:0": 1234.567, "nvml:1": 280.0})
    finally:
        source.close()


def test_counter_going_backwards_raises_then_resumes() -> None:
    gpu = volta(energy_mj=5_000)
    source = NvmlSource(FakeNvml([gpu]))
    try:
        gpu.energy_mj = 9_000
        assert source.read().energy_j["nvml:0"] == pytest.approx(4.0)
        gpu.energy_mj = 1_000  # driver reloaded: the counter restarted
        with pytest.raises(PowerSourceError, match="nvml:0: energy counter went back from 9000 to 1000 mJ"):
            source.read()
        gpu.energy_mj = 3_000
        assert source.read().energy_j["nvml:0"] == pytest.approx(6.0)  # 4 J kept, + 2 J since reset
    finally:
        source.close()


def test_failed_read_raises_nvml_error() -> None:
    gpu = volta()
    fake = FakeNvml([gpu])
    source = NvmlSource(fake)
    try:
        gpu.fail_with = fake_nvml.NVML_ERROR_GPU_IS_LOST
        with pytest.raises(fake_nvml.NVMLError_GpuIsLost):
            source.read()
        gpu.fail_with = None
        gpu.energy_mj += 2_000
        assert source.read().energy_j["nvml:0"] == pytest.approx(2.0)
    finally:
        source.close()


# -- processes and close ----------------------------------------------------------------------------
def test_processes() -> None:
    gpus = [
        volta(compute_pids=[100, 200], graphics_pids=[200, 300]),
        pascal(processes_supported=False),
        volta(),
    ]
    source = NvmlSource(FakeNvml(gpus))
    try:
        assert source.processes() == {0: {100, 200, 300}, 1: set(), 2: set()}
    finally:
        source.close()


def test_close_is_idempotent() -> None:
    fake = FakeNvml([volta()])
    source = NvmlSource(fake)
    source.close()
    source.close()
    assert (fake.init_calls, fake.shutdown_calls, fake.refcount) == (1, 1, 0)
    with pytest.raises(PowerSourceError, match="closed"):
        source.read()


# -- the real library ---------------------------------------------------------------------------------
def test_modules_do_not_import_pynvml() -> None:
    src = str(Path(wattprint.__file__).resolve().parents[1])
    code = "import sys, wattprint.measure.nvml, wattprint.measure.rapl; print('pynvml' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=src)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_real_pynvml_opens_or_explains() -> None:
    """With a driver and a GPU this measures for real; without one it must say why, as PowerSourceError."""
    pytest.importorskip("pynvml")
    usable = nvml.available()
    try:
        source = NvmlSource()
    except PowerSourceError as exc:
        assert not usable
        assert str(exc)
        return
    try:
        assert usable
        first = source.read()
        second = source.read()
        for domain in source.domains():
            assert 0.0 <= first.energy_j[domain.name] <= second.energy_j[domain.name]
        assert len(source.gpus()) == len(source.domains())
        assert set(source.processes()) == {gpu["index"] for gpu in source.gpus()}
    finally:
        source.close()
        source.close()


def test_process_utilization_sums_new_samples_per_pid_and_skips_gpus_without_them() -> None:
    from tests.measure.fake_nvml import FakeGpu

    shared = FakeGpu(compute_pids=[10, 20], utilization=[(10, 1_000, 30), (20, 1_000, 60), (10, 2_000, 10)])
    silent = FakeGpu(uuid="GPU-1", utilization=None)  # keeps no samples
    source = NvmlSource(FakeNvml([shared, silent]))
    assert source.utilization() == {0: {10: 40, 20: 60}}
    assert source.utilization() == {}  # nothing newer since: NVML's NOT_FOUND is no samples, not a fault
    shared.utilization.append((20, 3_000, 5))
    assert source.utilization() == {0: {20: 5}}
    source.close()


def test_a_shared_gpu_is_charged_by_utilization_and_the_whole_card_kept() -> None:
    import os
    import threading
    import time

    from tests.measure.fake_nvml import FakeGpu
    from wattprint.measure.detect import detect_sources
    from wattprint.tracking.tracker import GPU_SHARE_RULE, Tracker, gpu_shares

    me, other = os.getpid(), 2**22 + 4242
    gpu = FakeGpu(energy_mj=0, compute_pids=[me, other], utilization=[])
    stop = threading.Event()

    def load() -> None:  # 200 W on the card; our process 25 % of its SM samples, the other 75 %
        ts = 0
        while not stop.wait(0.02):
            ts += 20_000
            gpu.energy_mj += 4_000
            gpu.utilization += [(me, ts, 20), (other, ts, 60)]

    threading.Thread(target=load, daemon=True).start()
    choice = detect_sources(powercap_root="/nonexistent", nvml_module=FakeNvml([gpu]))
    tracker = Tracker("shared", sources=choice, interval=0.05, checkpoint=0.1)
    tracker.start()
    time.sleep(1.5)
    record = tracker.stop()
    stop.set()
    assert record.attribution["gpu_share_rule"] == GPU_SHARE_RULE, record.attribution
    share = record.energy_kwh.gpu / record.machine_energy_kwh.gpu
    assert share == pytest.approx(0.25, abs=0.08)  # the first intervals, before the first look, are whole
    # the rule by itself: by utilisation; by process count on an idle card; whole when alone or not on it
    assert gpu_shares({0: {1, 2}}, {0: {1: 10, 2: 30}}, frozenset({1})) == {"nvml:0": 0.25}
    assert gpu_shares({0: {1, 2, 3}}, {}, frozenset({1})) == {"nvml:0": pytest.approx(1 / 3)}
    assert gpu_shares({0: {1}, 1: {2}}, {}, frozenset({1})) == {"nvml:0": 1.0}  # alone: whole; not on 1


# -- Multi-Instance GPU ----------------------------------------------------------------------------------------
def _a100_in_mig_mode(me: int, other: int) -> FakeGpu:
    """An A100 (7 slices) split 3g + 2g + 1g + 1g: us on the 3g instance, us and another on the 2g, nobody on
    the 1g ones."""
    from tests.measure.fake_nvml import FakeMigDevice

    devices = [
        FakeMigDevice(1, 3, [me]),
        FakeMigDevice(2, 2, [me + 1, other]),
        FakeMigDevice(3, 1, []),
        FakeMigDevice(4, 1, []),
    ]
    return FakeGpu(energy_mj=0, mig_devices=devices)


def test_mig_devices_give_their_part_of_the_card_and_their_processes() -> None:
    gpu = _a100_in_mig_mode(100, 900)
    plain = FakeGpu(uuid="GPU-1", compute_pids=[5])  # MIG off
    old = FakeGpu(uuid="GPU-2", mig_supported=False, compute_pids=[6])  # a GPU without MIG (pre-Ampere)
    source = NvmlSource(FakeNvml([gpu, plain, old]))
    try:
        assert source.mig_devices() == {0: [(3 / 7, {100}), (2 / 7, {101, 900}), (1 / 7, set()), (1 / 7, set())]}
        # the card itself lists processes to root only in MIG mode: its MIG devices are asked instead
        assert source.processes() == {0: {100, 101, 900}, 1: {5}, 2: {6}}
    finally:
        source.close()


def test_a30_has_four_slices() -> None:
    from tests.measure.fake_nvml import FakeMigDevice

    gpu = FakeGpu(name="NVIDIA A30", energy_mj=0, mig_slices=4, mig_devices=[FakeMigDevice(1, 2, [7])])
    source = NvmlSource(FakeNvml([gpu]))
    try:
        assert source.mig_devices() == {0: [(0.5, {7})]}
    finally:
        source.close()


def test_the_mig_share_rule() -> None:
    from wattprint.tracking.tracker import gpu_shares

    layout = {0: [(3 / 7, {1}), (2 / 7, {2, 3}), (1 / 7, set())]}
    listed = {0: {1, 2, 3}}
    assert gpu_shares(listed, {}, frozenset({1}), mig=layout) == {"nvml:0": pytest.approx(3 / 7)}
    assert gpu_shares(listed, {}, frozenset({2}), mig=layout) == {"nvml:0": pytest.approx(1 / 7)}  # half of 2g
    assert gpu_shares(listed, {}, frozenset({1, 2, 3}), mig=layout) == {"nvml:0": pytest.approx(5 / 7)}
    assert gpu_shares(listed, {}, frozenset({9}), mig=layout) == {}  # not on the card: nothing


def test_a_run_on_mig_instances_is_charged_their_slices_and_the_whole_card_kept() -> None:
    import threading
    import time

    from wattprint.measure.detect import detect_sources
    from wattprint.tracking.tracker import GPU_SHARE_RULE, Tracker

    gpu = _a100_in_mig_mode(os.getpid(), 2**22 + 4242)  # this process on the 3g instance
    stop = threading.Event()

    def load() -> None:  # 200 W on the card
        while not stop.wait(0.02):
            gpu.energy_mj += 4_000

    threading.Thread(target=load, daemon=True).start()
    choice = detect_sources(powercap_root="/nonexistent", nvml_module=FakeNvml([gpu]))
    tracker = Tracker("mig", sources=choice, interval=0.05, checkpoint=0.1)
    tracker.start()
    time.sleep(1.5)
    record = tracker.stop()
    stop.set()
    assert record.attribution["gpu_share_rule"] == GPU_SHARE_RULE and "MIG" in GPU_SHARE_RULE
    assert record.energy_kwh.gpu / record.machine_energy_kwh.gpu == pytest.approx(3 / 7, abs=0.08)
