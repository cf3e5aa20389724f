"""AmdSmiSource against FakeAmdSmi (scripted GPUs), and the real amdsmi where it can be loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wattprint
from tests.measure import fake_amdsmi
from tests.measure.fake_amdsmi import FakeAmdSmi, FakeGpu
from tests.measure.scripted import Clock
from wattprint.errors import PowerSourceError
from wattprint.measure import amdsmi
from wattprint.measure.amdsmi import AmdSmiSource
from wattprint.measure.base import Domain, PowerSource, ProcessListing
from wattprint.measure.monitor import EnergyMonitor

OLD = (5, 7)  # "power" key, no current_socket_power, process handles, raw sentinels
ROCM_62 = (6, 2)  # "power" key, "N/A" fields, process dicts
ROCM_63 = (6, 3)  # "power" and "energy_accumulator"
ROCM_7 = (7, 0)  # "energy_accumulator" only, socket_power
VERSIONS = [OLD, ROCM_62, ROCM_63, ROCM_7]


def mi250(**kwargs: Any) -> FakeGpu:
    """An Instinct with an energy accumulator (15.3 uJ per count) that reports average power."""
    spec: dict[str, Any] = {
        "market_name": "AMD Instinct MI250X",
        "uuid": "49ff740c-0000-1000-80fc-b6a3e1f0a8d2",
        "energy_count": 1_000_000,
        "counter_resolution_uj": 15.3,
        "power_cap_uw": 500_000_000,
    }
    return FakeGpu(**(spec | kwargs))


def radeon(**kwargs: Any) -> FakeGpu:
    """A GPU whose driver keeps no energy accumulator: power sampling only."""
    spec: dict[str, Any] = {
        "market_name": "",  # no market name: the board's product name is used
        "product_name": "Radeon Pro W6800",
        "uuid": "73ff73a3-0000-1000-8000-000000000000",
        "energy_count": None,
        "average_socket_power_w": 100,
        "power_cap_uw": None,
    }
    return FakeGpu(**(spec | kwargs))


@pytest.fixture(autouse=True)
def no_session_left() -> Iterator[None]:
    """Every test must leave the shared AMD SMI sessions as it found them (none)."""
    yield
    assert amdsmi._sessions == {}


# -- the fake itself --------------------------------------------------------------------------------------
def test_fake_behaves_like_amdsmi() -> None:
    fake = FakeAmdSmi([mi250()])
    with pytest.raises(fake_amdsmi.AmdSmiLibraryException) as before_init:
        fake.amdsmi_get_processor_handles()
    assert before_init.value.err_code == fake_amdsmi.AMDSMI_STATUS_NOT_INIT == 32
    assert str(before_init.value) == "Error code:\n\t32 | AMDSMI_STATUS_NOT_INIT - Device not initialized"
    with pytest.raises(fake_amdsmi.AmdSmiParameterException):
        fake.amdsmi_init(2)  # a bare int is refused: it must be an AmdSmiInitFlags
    fake.amdsmi_init(fake.AmdSmiInitFlags.INIT_AMD_GPUS)
    (handle,) = fake.amdsmi_get_processor_handles()
    with pytest.raises(fake_amdsmi.AmdSmiParameterException):
        fake.amdsmi_get_energy_count(0)  # an index is not a processor handle
    assert fake.amdsmi_get_energy_count(handle) == {
        "power": 1_000_000,
        "energy_accumulator": 1_000_000,
        "counter_resolution": 15.3,
        "timestamp": 0,
    }
    fake.amdsmi_init(fake.AmdSmiInitFlags.INIT_AMD_GPUS)  # a flag: the second init changes nothing...
    fake.amdsmi_shut_down()  # ...and one shut-down ends the session
    with pytest.raises(fake_amdsmi.AmdSmiLibraryException):
        fake.amdsmi_get_energy_count(handle)
    fake.amdsmi_shut_down()  # shutting down twice answers success
    assert issubclass(fake_amdsmi.AmdSmiRetryException, fake_amdsmi.AmdSmiLibraryException)
    assert fake_amdsmi.AmdSmiLibraryException(-34).err_code == 34  # the library keeps abs(code)
    no_counter = FakeAmdSmi([radeon()])
    no_counter.amdsmi_init()
    with pytest.raises(fake_amdsmi.AmdSmiLibraryException) as unsupported:
        no_counter.amdsmi_get_energy_count(no_counter.amdsmi_get_processor_handles()[0])
    assert unsupported.value.err_code == fake_amdsmi.AMDSMI_STATUS_NOT_SUPPORTED
    no_counter.amdsmi_shut_down()


def test_fake_refcounted_init_needs_one_shut_down_per_init() -> None:
    fake = FakeAmdSmi([mi250()], refcounted=True)
    fake.amdsmi_init()
    fake.amdsmi_init()
    fake.amdsmi_shut_down()
    assert fake.initialized
    fake.amdsmi_shut_down()
    assert not fake.initialized


def _import_real_amdsmi() -> Any:
    """The real amdsmi, or a skip: without libamd_smi.so its import fails with KeyError, not ImportError."""
    try:
        import amdsmi as real
    except Exception as exc:
        pytest.skip(f"amdsmi not importable here: {type(exc).__name__}")
    return real


def test_fake_names_match_real_amdsmi() -> None:
    real = _import_real_amdsmi()
    fake = FakeAmdSmi()
    for name in (
        "amdsmi_init", "amdsmi_shut_down", "amdsmi_get_processor_handles", "amdsmi_get_gpu_device_uuid",
        "amdsmi_get_gpu_asic_info", "amdsmi_get_gpu_board_info", "amdsmi_get_power_cap_info",
        "amdsmi_get_energy_count", "amdsmi_get_power_info", "amdsmi_get_gpu_process_list",
    ):  # fmt: skip
        assert callable(getattr(real, name)) and callable(getattr(fake, name))
    for name in ("AmdSmiException", "AmdSmiLibraryException", "AmdSmiRetryException", "AmdSmiParameterException"):
        assert issubclass(getattr(real, name), Exception) and issubclass(getattr(fake, name), Exception)
    assert int(real.AmdSmiInitFlags.INIT_AMD_GPUS) == int(fake.AmdSmiInitFlags.INIT_AMD_GPUS)
    assert real.AmdSmiLibraryException(34).err_code == fake_amdsmi.AmdSmiLibraryException(34).err_code


# -- opening -------------------------------------------------------------------------------------------
def test_domains_and_gpu_details_for_a_counter_gpu_and_a_power_gpu() -> None:
    fake = FakeAmdSmi([mi250(), radeon()])
    source = AmdSmiSource(fake)
    try:
        assert isinstance(source, PowerSource) and isinstance(source, ProcessListing)
        assert source.name == "amdsmi"
        assert list(source.domains()) == [
            Domain("amdsmi:0", "gpu", "measured"),
            Domain("amdsmi:1", "gpu", "measured"),
        ]
        assert source.gpus() == [
            {
                "index": 0,
                "name": "AMD Instinct MI250X",
                "uuid": "49ff740c-0000-1000-80fc-b6a3e1f0a8d2",
                "power_limit_w": 500.0,
                "energy_method": "counter",
            },
            {
                "index": 1,
                "name": "Radeon Pro W6800",
                "uuid": "73ff73a3-0000-1000-8000-000000000000",
                "power_limit_w": None,
                "energy_method": "power-sampling",
            },
        ]
        assert fake.init_calls == 1 and fake.initialized
    finally:
        source.close()
    assert not fake.initialized


def test_gpu_indices_select_gpus() -> None:
    fake = FakeAmdSmi([mi250(), mi250(), mi250()])
    source = AmdSmiSource(fake, gpu_indices=[2, 0])
    try:
        assert [d.name for d in source.domains()] == ["amdsmi:2", "amdsmi:0"]
    finally:
        source.close()
    with pytest.raises(PowerSourceError, match="GPU index 3 not visible: AMD SMI sees GPUs 0-2"):
        AmdSmiSource(fake, gpu_indices=[0, 3])
    assert not fake.initialized  # the failed open shut AMD SMI down again


@pytest.mark.parametrize(
    ("code", "reason", "text"),
    [
        (fake_amdsmi.AMDSMI_STATUS_DRIVER_NOT_LOADED, "absent", "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded"),
        (fake_amdsmi.AMDSMI_STATUS_NO_PERM, "permission", "AMDSMI_STATUS_NO_PERM - Permission Denied"),
        (fake_amdsmi.AMDSMI_STATUS_INIT_ERROR, "unreadable", "AMDSMI_STATUS_INIT_ERROR - Initialization error"),
    ],
)
def test_init_failure(code: int, reason: str, text: str) -> None:
    fake = FakeAmdSmi([mi250()], init_error=code)
    with pytest.raises(PowerSourceError) as caught:
        AmdSmiSource(fake)
    assert str(caught.value) == f"AMD SMI could not start: {text} (amdsmi error {code})"
    assert caught.value.reason == reason
    assert caught.value.fix
    assert amdsmi.available(fake) is False
    assert not fake.initialized and fake.shutdown_calls == 0  # nothing was started, nothing to shut down


def test_handles_failure_after_init_shuts_down_again() -> None:
    fake = FakeAmdSmi([mi250()], handles_error=fake_amdsmi.AMDSMI_STATUS_NO_PERM)
    with pytest.raises(PowerSourceError, match="AMD SMI could not list GPUs: .*Permission Denied") as caught:
        AmdSmiSource(fake)
    assert caught.value.reason == "permission"
    assert (fake.init_calls, fake.shutdown_calls, fake.initialized) == (1, 1, False)


def test_no_gpu() -> None:
    fake = FakeAmdSmi([])
    with pytest.raises(PowerSourceError, match="AMD SMI sees no AMD GPU") as caught:
        AmdSmiSource(fake)
    assert caught.value.reason == "absent"
    assert not fake.initialized
    assert amdsmi.available(fake) is False
    assert not fake.initialized


def test_available_balances_init_and_shut_down() -> None:
    fake = FakeAmdSmi([radeon()])
    assert amdsmi.available(fake) is True
    assert (fake.init_calls, fake.shutdown_calls, fake.initialized) == (1, 1, False)


@pytest.mark.parametrize("refcounted", [False, True])
def test_sources_and_available_share_one_session(refcounted: bool) -> None:
    # with a flag-style amdsmi, one shut-down by available() or by a second source would end the first's
    gpu = mi250(energy_count=0, counter_resolution_uj=1.0)
    fake = FakeAmdSmi([gpu], refcounted=refcounted)
    first = AmdSmiSource(fake)
    second = AmdSmiSource(fake)
    assert amdsmi.available(fake) is True
    second.close()
    gpu.energy_count = 2_000_000
    assert first.read().energy_j == {"amdsmi:0": pytest.approx(2.0)}
    first.close()
    assert (fake.init_calls, fake.shutdown_calls, fake.initialized) == (1, 1, False)


def test_gpu_without_energy_or_power_is_skipped() -> None:
    fake = FakeAmdSmi([radeon(average_socket_power_w="N/A"), mi250()], version=ROCM_62)
    source = AmdSmiSource(fake)
    try:
        assert [d.name for d in source.domains()] == ["amdsmi:1"]
    finally:
        source.close()
    with pytest.raises(PowerSourceError, match=r"GPU 0 \(Radeon Pro W6800\) reports neither energy nor power"):
        AmdSmiSource(FakeAmdSmi([radeon(average_socket_power_w="N/A")], version=ROCM_62))


def test_a_gpu_denied_to_this_user_says_permission() -> None:
    fake = FakeAmdSmi([mi250(fail_with=fake_amdsmi.AMDSMI_STATUS_NO_PERM)])
    with pytest.raises(PowerSourceError, match="no GPU energy readable: GPU 0: .*Permission Denied") as caught:
        AmdSmiSource(fake)
    assert caught.value.reason == "permission" and caught.value.fix
    assert not fake.initialized


# -- energy ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_counter_energy_since_open(version: tuple[int, int]) -> None:
    gpu = mi250(energy_count=5_000_000, counter_resolution_uj=15.3)
    source = AmdSmiSource(FakeAmdSmi([gpu], version=version))
    try:
        assert source.gpus()[0]["energy_method"] == "counter"
        assert source.read().energy_j == {"amdsmi:0": 0.0}
        gpu.energy_count = 6_000_000  # + 1e6 counts x 15.3 uJ = 15.3 J
        assert source.read().energy_j["amdsmi:0"] == pytest.approx(15.3)
        gpu.energy_count = 6_000_010
        assert source.read().energy_j["amdsmi:0"] == pytest.approx(15.300153)
    finally:
        source.close()


@pytest.mark.parametrize(
    ("version", "fields"),
    [
        (OLD, {}),  # average_socket_power is the only field
        ((6, 1), {"average_socket_power_w": "N/A"}),  # MI300 before "N/A": the raw 0xFFFF sentinel is skipped
        ((6, 1), {"current_socket_power_w": "N/A"}),  # MI200 before "N/A": 0xFFFF W is not a reading
        (ROCM_62, {"current_socket_power_w": "N/A"}),  # MI200 and older: average power only
        (ROCM_62, {"average_socket_power_w": "N/A"}),  # MI300: current power only
        (ROCM_62, {"current_socket_power_w": 0}),  # a 0 for a missing field: the average is used
        (ROCM_7, {"current_socket_power_w": "N/A", "average_socket_power_w": "N/A"}),  # socket_power only
    ],
)
def test_power_sampling_trapezoid(version: tuple[int, int], fields: dict[str, Any]) -> None:
    gpu = radeon()

    def set_power(watts: int) -> None:
        for key in ("current_socket_power_w", "average_socket_power_w", "socket_power_w"):
            setattr(gpu, key, fields.get(key, watts))

    set_power(100)
    clock = Clock(10.0)
    source = AmdSmiSource(FakeAmdSmi([gpu], version=version), clock=clock)
    try:
        clock.now = 12.0
        set_power(200)
        reading = source.read()
        assert reading.energy_j["amdsmi:0"] == pytest.approx(300.0)  # (100 + 200) / 2 W x 2 s
        assert reading.timestamp == 12.0
        clock.now = 13.0
        set_power(50)
        assert source.read().energy_j["amdsmi:0"] == pytest.approx(425.0)  # + (200 + 50) / 2 W x 1 s
        clock.now = 13.5
        assert source.read().energy_j["amdsmi:0"] == pytest.approx(450.0)  # + 50 W x 0.5 s
    finally:
        source.close()


def test_power_reading_lost_mid_run_raises() -> None:
    gpu = radeon()
    source = AmdSmiSource(FakeAmdSmi([gpu], version=ROCM_62), clock=Clock(100.0))
    try:
        gpu.average_socket_power_w = "N/A"
        with pytest.raises(PowerSourceError, match="amdsmi:0: AMD SMI gave no power reading"):
            source.read()
    finally:
        source.close()


def test_mixed_gpus_each_use_their_method() -> None:
    new, old = mi250(energy_count=0, counter_resolution_uj=1.0), radeon(average_socket_power_w=60)
    clock = Clock(0.0)
    source = AmdSmiSource(FakeAmdSmi([new, old]), clock=clock)
    try:
        clock.now, new.energy_count, old.average_socket_power_w = 4.0, 1_234_567_000, 80
        assert source.read().energy_j == pytest.approx({"amdsmi:0": 1234.567, "amdsmi:1": 280.0})
    finally:
        source.close()


def test_counter_going_backwards_raises_then_resumes() -> None:
    gpu = mi250(energy_count=5_000, counter_resolution_uj=1000.0)  # 1 mJ per count
    source = AmdSmiSource(FakeAmdSmi([gpu]))
    try:
        gpu.energy_count = 9_000
        assert source.read().energy_j["amdsmi:0"] == pytest.approx(4.0)
        gpu.energy_count = 1_000  # GPU reset: the accumulator restarted
        with pytest.raises(PowerSourceError, match="amdsmi:0: energy counter went back from 9000 to 1000"):
            source.read()
        gpu.energy_count = 3_000
        assert source.read().energy_j["amdsmi:0"] == pytest.approx(6.0)  # 4 J kept, + 2 J since the reset
    finally:
        source.close()


def test_failed_read_raises_the_library_error_and_the_next_read_recovers() -> None:
    gpu = mi250(energy_count=0, counter_resolution_uj=1000.0)
    source = AmdSmiSource(FakeAmdSmi([gpu]))
    try:
        gpu.fail_with = fake_amdsmi.AMDSMI_STATUS_IO
        with pytest.raises(fake_amdsmi.AmdSmiLibraryException) as caught:
            source.read()
        assert caught.value.err_code == fake_amdsmi.AMDSMI_STATUS_IO
        gpu.fail_with = None
        gpu.energy_count = 2_000
        assert source.read().energy_j["amdsmi:0"] == pytest.approx(2.0)  # nothing lost: the counter kept counting
    finally:
        source.close()


def test_a_read_after_someone_else_shut_amd_smi_down_raises() -> None:
    fake = FakeAmdSmi([mi250()])
    source = AmdSmiSource(fake)
    try:
        fake.amdsmi_shut_down()  # another library in this process ended the (flag-style) session
        with pytest.raises(fake_amdsmi.AmdSmiLibraryException, match="NOT_INIT"):
            source.read()
    finally:
        source.close()


# -- processes and close ----------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_processes(version: tuple[int, int]) -> None:
    gpus = [
        mi250(pids=[100, 200], gone_pids=[300]),  # 300 ends between the list and the look-up (handles API)
        radeon(processes_supported=False),
        mi250(),
    ]
    source = AmdSmiSource(FakeAmdSmi(gpus, version=version))
    try:
        assert source.processes() == {0: {100, 200}, 1: set(), 2: set()}
    finally:
        source.close()


def test_processes_of_a_release_that_hides_the_calling_process() -> None:
    me = os.getpid()
    source = AmdSmiSource(FakeAmdSmi([mi250(pids=[me, 4242])], version=ROCM_7, hides_own_pid=True))
    try:
        assert source.processes() == {0: {4242}}  # documented: this process is not listed by such releases
    finally:
        source.close()


def test_processes_failure_other_than_unsupported_raises() -> None:
    gpu = mi250(pids=[100])
    fake = FakeAmdSmi([gpu])
    source = AmdSmiSource(fake)
    try:
        fake.amdsmi_shut_down()
        with pytest.raises(fake_amdsmi.AmdSmiLibraryException):
            source.processes()
    finally:
        source.close()


def test_close_is_idempotent() -> None:
    fake = FakeAmdSmi([mi250()])
    source = AmdSmiSource(fake)
    source.close()
    source.close()
    assert (fake.init_calls, fake.shutdown_calls, fake.initialized) == (1, 1, False)
    with pytest.raises(PowerSourceError, match="closed"):
        source.read()
    with pytest.raises(PowerSourceError, match="closed"):
        source.processes()


# -- the monitor over this source ---------------------------------------------------------------------
def test_monitor_never_raises_on_a_failed_read_and_marks_the_domain_degraded() -> None:
    gpu = mi250(energy_count=0, counter_resolution_uj=1_000_000.0)  # 1 J per count
    fake = FakeAmdSmi([gpu])
    source = AmdSmiSource(fake)
    monitor = EnergyMonitor([source], attribution="machine")  # primes: the zero of the integrals
    try:
        gpu.energy_count = 10
        monitor.sample()
        gpu.fail_with = fake_amdsmi.AMDSMI_STATUS_IO
        gpu.energy_count = 25
        monitor.sample()  # must not raise
        assert "AmdSmiLibraryException" in monitor.degraded["amdsmi:0"]
        assert "I/O Error" in monitor.degraded["amdsmi:0"]
        gpu.fail_with = None
        gpu.energy_count = 30
        monitor.sample()
        _attributed, machine = monitor.by_component(monitor.totals())
        assert machine["gpu"] == pytest.approx(30.0)  # the accumulator recovers the failed interval
        gpu.energy_count = 5  # GPU reset
        monitor.sample()  # must not raise
        assert "energy counter went back" in monitor.degraded["amdsmi:0"]
    finally:
        monitor.close()
    assert not fake.initialized  # the monitor closed the source


# -- the library ------------------------------------------------------------------------------------------
def test_library_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # `import amdsmi` now raises ImportError
    with pytest.raises(PowerSourceError, match="amdsmi is not installed") as caught:
        AmdSmiSource()
    assert caught.value.reason == "missing-library"
    assert caught.value.fix == "pip install 'wattprint[amd]'"
    assert amdsmi.available() is False


def test_library_without_its_shared_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the package is installed but libamd_smi.so is not: it prints, then fails with KeyError
    package = tmp_path / "amdsmi"
    package.mkdir()
    (package / "__init__.py").write_text(
        "print('Unable to find amdsmi library try installing amd-smi-lib from your package manager')\n"
        "raise KeyError('libamd_smi.so')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    with pytest.raises(PowerSourceError, match="amdsmi could not load libamd_smi.so .*Unable to find") as caught:
        AmdSmiSource()
    assert caught.value.reason == "missing-library"
    assert "amd-smi-lib" in (caught.value.fix or "")
    assert capsys.readouterr().out == ""  # nothing on the job's stdout
    assert amdsmi.available() is False
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)


def test_module_does_not_import_amdsmi(tmp_path: Path) -> None:
    # an importable `amdsmi` is on the path: only an eager import would load it
    package = tmp_path / "amdsmi"
    package.mkdir()
    (package / "__init__.py").write_text("")
    src = str(Path(wattprint.__file__).resolve().parents[1])
    code = "import sys, wattprint.measure.amdsmi; print('amdsmi' in sys.modules)"
    check = "import sys, amdsmi; print('amdsmi' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, str(tmp_path)]))
    run = [
        subprocess.run([sys.executable, "-c", c], env=env, capture_output=True, text=True, check=True)
        for c in (code, check)
    ]
    assert [r.stdout.strip() for r in run] == ["False", "True"]  # the second shows the test could see an import


def test_real_amdsmi_opens_or_explains() -> None:
    """With ROCm and a GPU this measures for real; without, it must say why, as PowerSourceError."""
    _import_real_amdsmi()
    usable = amdsmi.available()
    try:
        source = AmdSmiSource()
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
