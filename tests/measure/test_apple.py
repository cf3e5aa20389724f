"""Apple silicon energy on Linux: AppleSiliconSource against a scripted zeus_apple_silicon, the powermetrics
parsers on recorded output, PowermetricsSource against a real subprocess that replays that output in real time,
and the CPU and RAM models with the inputs a Mac or a Windows machine gives them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import wattprint
from tests.measure import fake_zeus_apple_silicon as fake_zeus
from tests.measure.fake_zeus_apple_silicon import FakeZeusAppleSilicon, m1, m1_max, m1_ultra
from tests.measure.scripted import Clock
from wattprint.errors import PowerSourceError
from wattprint.measure.apple import AppleSiliconSource
from wattprint.measure.base import Domain, PowerSource
from wattprint.measure.cpu_model import (
    GIB,
    CpuInfo,
    CpuModelSource,
    RamModelSource,
    lookup_tdp,
    platform_cpu_name,
    read_cpu_model,
)
from wattprint.measure.powermetrics import PowermetricsSource, Sample, parse_powermetrics, parse_powermetrics_plist

DATA = Path(__file__).parent / "data"
TEXT_RECORDING = DATA / "powermetrics_m1.txt"
PLIST_RECORDING = DATA / "powermetrics_m1.plist"
MAC = {"system": "Darwin", "machine": "arm64"}

# The recordings' samples, written out by hand: (elapsed s, CPU W, GPU W, ANE W).
TEXT_SAMPLES = [(1.00452, 1.234, 0.056, 0.0), (1.00087, 5.321, 2.210, 0.312), (1.00261, 0.987, 0.043, 0.0)]
TEXT_ENERGY_J = {
    "powermetrics:cpu": 1.234 * 1.00452 + 5.321 * 1.00087 + 0.987 * 1.00261,
    "powermetrics:gpu": 0.056 * 1.00452 + 2.210 * 1.00087 + 0.043 * 1.00261,
    "powermetrics:ane": 0.312 * 1.00087,
}
# The plist recording gives millijoules per sample: (elapsed ns, CPU mJ, GPU mJ, ANE mJ).
PLIST_SAMPLES = [(1_004_520_833, 1240, 56, 0), (1_000_870_125, 5326, 2212, 312), (1_002_614_958, 990, 43, 0)]
PLIST_ENERGY_J = {"powermetrics:cpu": 7.556, "powermetrics:gpu": 2.311, "powermetrics:ane": 0.312}


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def gone(pid: int) -> bool:
    """Whether the process has exited and been reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- the fake zeus_apple_silicon itself -------------------------------------------------------------
def test_fake_mirrors_the_real_module() -> None:
    real = pytest.importorskip("zeus_apple_silicon")  # only on a Mac with zeus-apple-silicon installed
    fake = FakeZeusAppleSilicon(m1())
    for name in ("get_cumulative_energy", "begin_window", "end_window"):
        assert callable(getattr(real.AppleEnergyMonitor, name))
        assert callable(getattr(fake.AppleEnergyMonitor(), name))
    metrics = real.AppleEnergyMonitor().get_cumulative_energy()
    for name in fake_zeus.FIELDS:
        assert hasattr(metrics, name) and hasattr(fake_zeus.AppleEnergyMetrics(), name)


def test_fake_classifies_and_converts_channels_as_documented() -> None:
    fake = FakeZeusAppleSilicon(m1_max())
    metrics = fake.AppleEnergyMonitor().get_cumulative_energy()
    assert metrics.cpu_total_mj == 30_000
    assert metrics.efficiency_cores_mj == [1_000, 1_000]
    assert metrics.performance_cores_mj == [3_000] * 8
    assert metrics.efficiency_cluster_mj == [2_500] and metrics.performance_cluster_mj == [13_000, 13_000]
    assert (metrics.efficiency_core_manager_mj, metrics.performance_core_manager_mj) == (100, 400)
    assert (metrics.gpu_mj, metrics.gpu_sram_mj, metrics.ane_mj, metrics.dram_mj) == (12_000, 800, 1_000, 5_000)
    ultra = FakeZeusAppleSilicon(m1_ultra()).AppleEnergyMonitor().get_cumulative_energy()
    assert (ultra.cpu_total_mj, ultra.dram_mj, ultra.gpu_sram_mj) == (35_000, 7_000, 90)
    assert ultra.efficiency_cores_mj is None and ultra.performance_cores_mj is None
    monitor = fake.AppleEnergyMonitor()
    monitor.begin_window("w")
    with pytest.raises(RuntimeError, match="already exists"):
        monitor.begin_window("w")
    fake.add("GPU Energy", 2_999_999)  # nanojoules: 2.999999 mJ, truncated per channel
    fake.add("CPU Energy", 40)
    window = monitor.end_window("w")
    assert (window.gpu_mj, window.cpu_total_mj, window.ane_mj) == (2, 40, 0)
    with pytest.raises(RuntimeError, match="No measurement"):
        monitor.end_window("w")
    fake.channels["ISP9"] = (1, "furlong")  # an ignored channel, in a unit the library does not know
    with pytest.raises(ValueError, match="unit"):
        monitor.get_cumulative_energy()


# -- AppleSiliconSource: opening ---------------------------------------------------------------------
def test_m1_domains_counted_and_detail() -> None:
    source = AppleSiliconSource(FakeZeusAppleSilicon(m1()), **MAC)
    try:
        assert isinstance(source, PowerSource)
        assert source.name == "ioreport"
        assert list(source.domains()) == [
            Domain("apple:cpu", "cpu", "measured"),
            Domain("apple:gpu", "gpu", "measured"),
            Domain("apple:ane", "gpu", "measured"),
            Domain("apple:cpu:e-cores", "cpu", "measured", counted=False),
            Domain("apple:cpu:p-cores", "cpu", "measured", counted=False),
        ]  # no DRAM channel on this M1: no apple:dram, and no GPU SRAM
    finally:
        source.close()


def test_m1_max_has_dram_and_gpu_sram_detail() -> None:
    source = AppleSiliconSource(FakeZeusAppleSilicon(m1_max()), **MAC)
    domains = {d.name: d for d in source.domains()}
    assert domains["apple:dram"] == Domain("apple:dram", "ram", "measured")
    assert domains["apple:gpu:sram"] == Domain("apple:gpu:sram", "gpu", "measured", counted=False)
    assert {name for name, d in domains.items() if d.counted} == {"apple:cpu", "apple:gpu", "apple:ane", "apple:dram"}
    source.close()


@pytest.mark.parametrize(
    ("system", "machine"), [("Linux", "x86_64"), ("Linux", "aarch64"), ("Darwin", "x86_64"), ("Windows", "AMD64")]
)
def test_not_apple_silicon_is_absent(system: str, machine: str) -> None:
    fake = FakeZeusAppleSilicon(m1())
    with pytest.raises(PowerSourceError) as info:
        AppleSiliconSource(fake, system=system, machine=machine)
    assert info.value.reason == "absent"
    assert system in str(info.value) and machine in str(info.value)
    assert fake.monitors == 0  # IOReport is not even tried


def test_this_linux_host_is_not_apple_silicon() -> None:
    if (platform.system(), platform.machine()) == ("Darwin", "arm64"):
        pytest.skip("this is an Apple silicon Mac")
    with pytest.raises(PowerSourceError) as info:
        AppleSiliconSource()  # the real platform, the real import path
    assert info.value.reason == "absent"


def test_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)  # `import zeus_apple_silicon` raises ImportError
    with pytest.raises(PowerSourceError) as info:
        AppleSiliconSource(**MAC)
    assert info.value.reason == "missing-library"
    assert info.value.fix == "pip install 'wattprint[apple]'"


def test_subscription_failure_is_unreadable() -> None:
    with pytest.raises(PowerSourceError, match="Failed to create IOReport subscription") as info:
        AppleSiliconSource(FakeZeusAppleSilicon(m1(), subscribe_fails=True), **MAC)
    assert info.value.reason == "unreadable"


def test_no_energy_channel_is_absent() -> None:
    with pytest.raises(PowerSourceError, match="no CPU, GPU, ANE or DRAM") as info:
        AppleSiliconSource(FakeZeusAppleSilicon({"ISP": (5, "mJ"), "ECPU0": (1, "mJ")}), **MAC)
    assert info.value.reason == "absent"


# -- AppleSiliconSource: reading ----------------------------------------------------------------------
def test_cumulative_joules_since_open_exact() -> None:
    fake = FakeZeusAppleSilicon(m1_max())
    clock = Clock(100.0)
    source = AppleSiliconSource(fake, clock=clock, **MAC)
    first = source.read()
    assert first.timestamp == 100.0
    assert set(first.energy_j.values()) == {0.0}
    fake.add("CPU Energy", 1_500)
    fake.add("GPU Energy", 1_234_567_891)  # nJ: the channel drops its sub-millijoule part
    fake.add("ANE0", 250)
    fake.add("DRAM0", 333)
    fake.add("GPU SRAM0", 12)
    fake.add("EACC_CPU0", 100)
    fake.add("PACC1_CPU3", 900)
    clock.now = 101.0
    reading = source.read()
    assert reading.timestamp == 101.0
    assert dict(reading.energy_j) == {
        "apple:cpu": 1.5,
        "apple:gpu": 1.234,
        "apple:ane": 0.25,
        "apple:dram": 0.333,
        "apple:cpu:e-cores": 0.1,
        "apple:cpu:p-cores": 0.9,
        "apple:gpu:sram": 0.012,
    }
    fake.add("CPU Energy", 500)
    fake.add("GPU Energy", 766_000_000)
    assert source.read().energy_j["apple:cpu"] == 2.0
    assert source.read().energy_j["apple:gpu"] == 2.0  # 1_234_567_891 + 766_000_000 nJ from 12e9: 2000 mJ
    source.close()


def test_multi_die_chip_sums_its_dies() -> None:
    fake = FakeZeusAppleSilicon(m1_ultra())
    source = AppleSiliconSource(fake, **MAC)
    fake.add("DIE_0_CPU Energy", 700)
    fake.add("DIE_1_CPU Energy", 300)
    fake.add("DRAM0_1", 50)
    reading = source.read()
    assert reading.energy_j["apple:cpu"] == 1.0
    assert reading.energy_j["apple:dram"] == 0.05
    source.close()


def test_counter_going_back_raises_then_resumes() -> None:
    fake = FakeZeusAppleSilicon(m1())
    source = AppleSiliconSource(fake, **MAC)
    fake.add("CPU Energy", 2_000)
    assert source.read().energy_j["apple:cpu"] == 2.0
    fake.channels["CPU Energy"] = (100, "mJ")  # the counter was reset
    fake.add("ANE", 40)
    with pytest.raises(PowerSourceError, match=r"apple:cpu: energy counter went back from 42000 to 100 mJ"):
        source.read()
    fake.add("CPU Energy", 300)
    reading = source.read()
    assert reading.energy_j["apple:cpu"] == 2.3  # re-based on 100: never decreases, goes on from there
    assert reading.energy_j["apple:ane"] == 0.04  # the other domains were updated by the failed read
    source.close()


def test_failed_read_raises_then_resumes_without_losing_energy() -> None:
    fake = FakeZeusAppleSilicon(m1())
    source = AppleSiliconSource(fake, **MAC)
    fake.add("GPU Energy", 1_000_000_000)
    assert source.read().energy_j["apple:gpu"] == 1.0
    fake.add("GPU Energy", 2_000_000_000)
    fake.fail_reads = 1
    with pytest.raises(PowerSourceError, match="IOReport read failed: RuntimeError"):
        source.read()
    fake.add("GPU Energy", 500_000_000)
    assert source.read().energy_j["apple:gpu"] == 3.5  # cumulative counters: the failed interval is not lost
    source.close()


def test_a_channel_missing_from_a_read_raises_then_resumes() -> None:
    fake = FakeZeusAppleSilicon(m1())
    source = AppleSiliconSource(fake, **MAC)
    saved = fake.channels.pop("ANE")
    fake.add("CPU Energy", 100)
    with pytest.raises(PowerSourceError, match="apple:ane: no value"):
        source.read()
    fake.channels["ANE"] = (saved[0] + 20, "mJ")
    reading = source.read()
    assert (reading.energy_j["apple:ane"], reading.energy_j["apple:cpu"]) == (0.02, 0.1)
    source.close()


def test_close_is_idempotent_and_reads_after_close_raise() -> None:
    source = AppleSiliconSource(FakeZeusAppleSilicon(m1()), **MAC)
    source.close()
    source.close()
    with pytest.raises(PowerSourceError, match="closed"):
        source.read()


# -- powermetrics parsers -----------------------------------------------------------------------------
def test_text_recording_parses_to_the_documented_samples() -> None:
    samples = parse_powermetrics(TEXT_RECORDING.read_text())
    assert [s.elapsed_s for s in samples] == pytest.approx([e for e, *_ in TEXT_SAMPLES], rel=1e-15)
    assert [dict(s.power_w) for s in samples] == [{"cpu": c, "gpu": g, "ane": a} for _, c, g, a in TEXT_SAMPLES]
    assert [s.combined_w for s in samples] == [1.29, 7.843, 1.03]
    for sample in samples:  # powermetrics' own sum agrees with the rails, to its 1 mW resolution
        assert sample.combined_w is not None
        assert abs(sum(sample.power_w.values()) - sample.combined_w) < 1.5e-3
    total = {part: sum(s.energy_j()[part] for s in samples) for part in ("cpu", "gpu", "ane")}
    assert total == pytest.approx({k.split(":")[1]: v for k, v in TEXT_ENERGY_J.items()}, rel=1e-12)


def test_text_first_value_of_a_rail_wins_and_other_lines_are_skipped() -> None:
    text = "\n".join(
        [
            "Machine model: Mac14,2",
            "CPU Power: 999999 mW",  # before any sample: not timed, skipped
            "*** Sampled system activity (Mon Oct 23 16:51:12 2023 +0200) (500.00ms elapsed) ***",
            "**** Processor usage ****",
            "CPU Power: 2000 mW",
            "GPU Power: 400 mW",
            "ANE Power: 100 mW",
            "Combined Power (CPU + GPU + ANE): 2500 mW",
            "**** GPU usage ****",
            "GPU HW active residency:  40.00% (444 MHz:  40%)",
            "GPU Power: 410 mW",  # printed again by the gpu_power sampler: the first value wins
            "*** Sampled system activity (Mon Oct 23 16:51:13 2023 +0200) (250.00ms elapsed) ***",
            "DRAM Power: 1.5 W",
        ]
    )
    assert parse_powermetrics(text) == [
        Sample(0.5, {"cpu": 2.0, "gpu": 0.4, "ane": 0.1}, 2.5),
        Sample(0.25, {"dram": 1.5}, None),
    ]
    assert parse_powermetrics("no samples here\n") == []
    with pytest.raises(ValueError, match="header"):
        parse_powermetrics("*** Sampled system activity (whenever) ***\nCPU Power: 1 mW\n")


def test_plist_recording_parses_energy_keys() -> None:
    samples = parse_powermetrics_plist(PLIST_RECORDING.read_bytes())
    assert [s.elapsed_s for s in samples] == [ns / 1e9 for ns, *_ in PLIST_SAMPLES]
    for sample, (_ns, cpu, gpu, ane) in zip(samples, PLIST_SAMPLES, strict=True):
        assert sample.energy_j() == pytest.approx({"cpu": cpu / 1e3, "gpu": gpu / 1e3, "ane": ane / 1e3}, rel=1e-12)
        assert sample.combined_w == pytest.approx(sum(sample.power_w.values()), rel=1e-5)  # the file's %g rounding


def test_plist_power_keys_energy_only_keys_and_faults() -> None:
    import plistlib

    power_only = {"elapsed_ns": 500_000_000, "processor": {"cpu_power": 1200.0, "gpu_power": 200.0, "ane_power": 0.0}}
    older = {  # macOS 12 era: energy keys only, DRAM included
        "elapsed_ns": 2_000_000_000,
        "processor": {"cpu_energy": 3000, "ane_energy": 10, "dram_energy": 900},
        "gpu": {"gpu_energy": 400},
    }
    data = plistlib.dumps(power_only) + b"\x00" + plistlib.dumps(older) + b"\x00"
    first, second = parse_powermetrics_plist(data)
    assert first == Sample(0.5, {"cpu": 1.2, "gpu": 0.2, "ane": 0.0}, None)
    assert second.energy_j() == pytest.approx({"cpu": 3.0, "gpu": 0.4, "ane": 0.01, "dram": 0.9}, rel=1e-12)
    with pytest.raises(ValueError, match="elapsed_ns"):
        parse_powermetrics_plist(plistlib.dumps({"processor": {"cpu_energy": 1}}))


# -- PowermetricsSource against a real subprocess ------------------------------------------------------
FAKE_POWERMETRICS = '''\
"""A stand-in for powermetrics: replays a recording sample by sample, in real time."""
import os
import sys
import time

recording, fmt, delay, then, pidfile = sys.argv[1:6]
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
if recording == "--not-root":
    sys.stderr.write("powermetrics must be invoked as the superuser\\n")
    sys.exit(1)
data = open(recording, "rb").read()
if fmt == "plist":  # each document ends with a NUL
    parts = data.split(b"\\0")
    chunks = [part + b"\\0" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
else:  # a sample starts at its header; the preamble goes with the first one
    chunks, current, started = [], b"", False
    for line in data.splitlines(keepends=True):
        if line.startswith(b"*** Sampled system activity"):
            if started:
                chunks.append(current)
                current = b""
            started = True
        current += line
    chunks.append(current)
for chunk in chunks:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()
    time.sleep(float(delay))
if then == "exit":
    sys.exit(0)
while True:  # powermetrics samples until it is stopped
    time.sleep(60)
'''


@pytest.fixture
def fake_powermetrics(tmp_path: Path) -> Callable[..., list[str]]:
    script = tmp_path / "fake_powermetrics.py"
    script.write_text(FAKE_POWERMETRICS)

    def command(recording: Path | str, fmt: str, *, delay: float = 0.05, then: str = "stay") -> list[str]:
        return [sys.executable, str(script), str(recording), fmt, str(delay), then, str(tmp_path / "fake.pid")]

    return command


def fake_pid(tmp_path: Path) -> int:
    return int((tmp_path / "fake.pid").read_text())


@pytest.mark.parametrize(
    ("fmt", "recording", "expected"),
    [("text", TEXT_RECORDING, TEXT_ENERGY_J), ("plist", PLIST_RECORDING, PLIST_ENERGY_J)],
)
def test_source_integrates_a_live_powermetrics(
    fake_powermetrics: Callable[..., list[str]], fmt: str, recording: Path, expected: dict[str, float]
) -> None:
    source = PowermetricsSource(fake_powermetrics(recording, fmt), fmt=fmt, **MAC)
    try:
        assert isinstance(source, PowerSource)
        assert source.name == "powermetrics"
        assert list(source.domains()) == [
            Domain("powermetrics:cpu", "cpu", "measured"),
            Domain("powermetrics:gpu", "gpu", "measured"),
            Domain("powermetrics:ane", "gpu", "measured"),
        ]
        readings = [source.read()]
        assert readings[0].energy_j["powermetrics:cpu"] > 0  # the first sample is in at open

        def complete() -> bool:
            readings.append(source.read())
            return readings[-1].energy_j["powermetrics:cpu"] == pytest.approx(expected["powermetrics:cpu"])

        assert wait_for(complete), readings[-1]
        assert dict(readings[-1].energy_j) == pytest.approx(expected, rel=1e-12)
        assert source.samples == 3
        for earlier, later in zip(readings, readings[1:], strict=False):  # cumulative: never decreases
            assert all(later.energy_j[k] >= earlier.energy_j[k] for k in expected)
        pid = source.pid
        assert not gone(pid)
    finally:
        source.close()
    assert gone(pid)  # close() stopped and reaped powermetrics
    source.close()  # idempotent
    with pytest.raises(PowerSourceError, match="closed"):
        source.read()


def test_not_root_is_a_permission_error(fake_powermetrics: Callable[..., list[str]], tmp_path: Path) -> None:
    with pytest.raises(PowerSourceError, match="must be invoked as the superuser") as info:
        PowermetricsSource(fake_powermetrics("--not-root", "plist"), **MAC)
    assert info.value.reason == "permission"
    assert info.value.fix == "run with sudo"
    assert gone(fake_pid(tmp_path))


def test_powermetrics_that_stops_makes_reads_raise(fake_powermetrics: Callable[..., list[str]]) -> None:
    source = PowermetricsSource(fake_powermetrics(TEXT_RECORDING, "text", then="exit"), fmt="text", **MAC)

    def stopped() -> bool:
        try:
            source.read()
        except PowerSourceError as exc:
            return "stopped (exit code 0)" in str(exc)
        return False

    assert wait_for(stopped)
    with pytest.raises(PowerSourceError, match="stopped"):
        source.read()  # every read, from then on
    source.close()


def test_an_unreadable_sample_raises_once_then_reads_go_on(
    fake_powermetrics: Callable[..., list[str]], tmp_path: Path
) -> None:
    docs = [doc for doc in PLIST_RECORDING.read_bytes().split(b"\x00") if doc.strip()]
    recording = tmp_path / "garbled.plist"
    cut = b"<?xml version='1.0'?><plist><dict><key>cut"  # a document that ends mid-way
    recording.write_bytes(docs[0] + b"\x00" + cut + b"\x00" + docs[1] + b"\x00")
    source = PowermetricsSource(fake_powermetrics(recording, "plist"), **MAC)
    assert wait_for(lambda: source.samples == 2)
    with pytest.raises(PowerSourceError, match="could not be parsed"):
        source.read()
    reading = source.read()
    assert reading.energy_j["powermetrics:cpu"] == pytest.approx((1240 + 5326) / 1e3, rel=1e-12)
    source.close()


def test_no_rails_is_absent(fake_powermetrics: Callable[..., list[str]], tmp_path: Path) -> None:
    header = "*** Sampled system activity (Mon Oct 23 16:51:12 2023 +0200) (1000.00ms elapsed) ***\n"
    recording = tmp_path / "tasks_only.txt"
    recording.write_text((header + "\n*** Running tasks ***\n\n") * 2)
    with pytest.raises(PowerSourceError, match="no CPU, GPU or ANE power") as info:
        PowermetricsSource(fake_powermetrics(recording, "text"), fmt="text", start_timeout_s=10.0, **MAC)
    assert info.value.reason == "absent"
    assert gone(fake_pid(tmp_path))


def test_silence_times_out_and_stops_the_tool(fake_powermetrics: Callable[..., list[str]], tmp_path: Path) -> None:
    recording = tmp_path / "silent.plist"
    recording.write_bytes(b"")
    with pytest.raises(PowerSourceError, match="no usable sample within 2 s") as info:
        PowermetricsSource(fake_powermetrics(recording, "plist"), start_timeout_s=2.0, **MAC)  # the fake starts first
    assert info.value.reason == "unreadable"
    assert gone(fake_pid(tmp_path))


def test_missing_powermetrics_is_absent(tmp_path: Path) -> None:
    with pytest.raises(PowerSourceError, match="not found") as info:
        PowermetricsSource([str(tmp_path / "powermetrics")], **MAC)
    assert info.value.reason == "absent"


def test_not_a_mac_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    with pytest.raises(PowerSourceError) as info:
        PowermetricsSource(command, system="Linux", machine="x86_64")
    assert info.value.reason == "absent"
    time.sleep(0.2)
    assert not marker.exists()
    with pytest.raises(ValueError, match="fmt"):
        PowermetricsSource(command, fmt="csv", **MAC)


# -- import cost -----------------------------------------------------------------------------------------
def test_import_loads_neither_the_vendor_library_nor_process_machinery() -> None:
    src = str(Path(wattprint.__file__).resolve().parents[1])
    heavy = ("zeus_apple_silicon", "subprocess", "plistlib", "tempfile")  # (logging already loads threading)
    modules = "wattprint.measure.apple, wattprint.measure.powermetrics"
    code = f"import sys, {modules}; print([m for m in {heavy!r} if m in sys.modules])"
    env = dict(os.environ, PYTHONPATH=src)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# -- the CPU and RAM models where there are no counters (macOS without these sources, Windows) ------------
@pytest.mark.parametrize(
    ("brand", "tdp_w", "entry"),
    [("Apple M2 Pro", 35.0, "apple m2 pro"), ("Apple M1", 10.0, "apple m1"), ("Apple M3 Max", 50.0, "apple m3 max")],
)
def test_mac_brand_strings_find_their_tdp(brand: str, tdp_w: float, entry: str) -> None:
    """`sysctl -n machdep.cpu.brand_string` on Apple silicon gives names such as these."""
    assert lookup_tdp(brand) == (tdp_w, entry)


@pytest.mark.xfail(strict=True, reason="cpu_tdp.csv has no M1 Pro or M1 Max row: both match 'apple m1' (10 W)")
@pytest.mark.parametrize("brand", ["Apple M1 Pro", "Apple M1 Max"])
def test_m1_pro_and_max_are_not_taken_for_an_m1(brand: str) -> None:
    assert lookup_tdp(brand) != (10.0, "apple m1")


@pytest.mark.parametrize(
    "processor",
    [
        "arm",  # platform.processor() on an Apple silicon Mac
        "i386",  # on an Intel Mac
        "Intel64 Family 6 Model 158 Stepping 10, GenuineIntel",  # on Windows with an Intel CPU
        "AMD64 Family 25 Model 33 Stepping 0, AuthenticAMD",  # on Windows with an AMD CPU
    ],
)
def test_platform_processor_strings_identify_no_model(processor: str) -> None:
    """platform.processor() names no model on macOS or Windows: the table would find nothing, which is why
    `platform_cpu_name` asks sysctl or the registry there."""
    assert lookup_tdp(processor) is None


def test_read_cpu_model_without_proc_asks_the_platform(tmp_path: Path) -> None:
    assert read_cpu_model(tmp_path / "no-cpuinfo", fallback=lambda: "Apple M2 Pro") == ("Apple M2 Pro", 1)
    assert read_cpu_model(tmp_path / "no-cpuinfo", fallback=lambda: "") == ("unknown CPU", 1)


def test_on_macos_the_name_comes_from_sysctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "sysctl"  # a stand-in for /usr/sbin/sysctl, answering as an M2 Pro Mac does
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "-n machdep.cpu.brand_string" ] && echo "Apple M2 Pro" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert platform_cpu_name("Darwin") == "Apple M2 Pro"
    assert lookup_tdp(platform_cpu_name("Darwin")) == (35.0, "apple m2 pro")
    fake.write_text("#!/bin/sh\nexit 1\n")  # sysctl says nothing: the generic name, never an exception
    assert platform_cpu_name("Darwin") == platform.processor()


class _Registry:
    """The calls of Python's winreg that platform_cpu_name makes, over one key, as on a Windows machine."""

    HKEY_LOCAL_MACHINE = 0x80000002

    def __init__(self, name: str | None) -> None:
        self.name, self.closed = name, 0

    def OpenKey(self, root: int, path: str) -> str:  # noqa: N802 (winreg's names)
        assert root == self.HKEY_LOCAL_MACHINE
        if self.name is None:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return path

    def QueryValueEx(self, key: str, value: str) -> tuple[str, int]:  # noqa: N802
        assert key == r"HARDWARE\DESCRIPTION\System\CentralProcessor\0" and value == "ProcessorNameString"
        return f"{self.name}   ", 1  # REG_SZ, with the trailing blanks Windows pads it with

    def CloseKey(self, key: str) -> None:  # noqa: N802
        self.closed += 1


def test_on_windows_the_name_comes_from_the_registry() -> None:
    registry = _Registry("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz")
    assert platform_cpu_name("Windows", registry) == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert registry.closed == 1
    assert lookup_tdp("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz") is not None
    assert platform_cpu_name("Windows", _Registry(None)) == platform.processor()


def test_cpu_model_on_an_apple_silicon_mac_exact() -> None:
    found = lookup_tdp("Apple M2 Pro")
    assert found is not None
    info = CpuInfo("Apple M2 Pro", 1, 12, found[0], f"bundled table entry '{found[1]}'")
    times = iter([(100.0, 1000.0), (106.0, 1012.0), (106.0, 1024.0)])  # psutil-like busy, total CPU seconds
    clock = Clock(0.0)
    source = CpuModelSource(info, cpu_seconds=lambda: next(times), clock=clock)
    assert source.domains() == (Domain("model:cpu", "cpu", "estimated"),)
    clock.now = 2.0
    assert source.read().energy_j["model:cpu"] == pytest.approx(35.0 * (0.1 + 0.9 * 0.5) * 2.0)  # 38.5 J
    clock.now = 4.0
    assert source.read().energy_j["model:cpu"] == pytest.approx(38.5 + 35.0 * 0.1 * 2.0)  # idle: 45.5 J


def test_ram_model_for_a_16_gib_mac_exact() -> None:
    clock = Clock(10.0)
    source = RamModelSource(total_bytes=16 * GIB, clock=clock)
    assert source.power_w == 6.0
    clock.now = 70.0
    assert source.read().energy_j["model:ram"] == 360.0


def test_machine_cpu_time_from_psutil_fields_of_windows_and_macos() -> None:
    from collections import namedtuple

    from wattprint.measure.cpu_model import machine_cpu_seconds

    windows = namedtuple("scputimes", "user system idle interrupt dpc")(100.0, 40.0, 800.0, 6.0, 4.0)
    assert machine_cpu_seconds(lambda: windows) == pytest.approx((150.0, 950.0))  # interrupts and DPCs are busy
    macos = namedtuple("scputimes", "user nice system idle")(100.0, 10.0, 40.0, 850.0)
    assert machine_cpu_seconds(lambda: macos) == pytest.approx((150.0, 1000.0))
    times = iter([macos, macos._replace(user=101.0, idle=851.0)])  # then 1 s busy of 2 s: 50 %
    clock = iter([0.0, 10.0])
    model = CpuModelSource(
        CpuInfo("Apple M2 Pro", 1, 12, 35.0, "bundled table entry 'apple m2 pro'"),
        cpu_seconds=lambda: machine_cpu_seconds(lambda: next(times)),
        clock=lambda: next(clock),
    )
    # 35 W x (10 % idle floor + 90 % x 50 % busy) x 10 s
    assert model.read().energy_j["model:cpu"] == pytest.approx(35.0 * (0.1 + 0.9 * 0.5) * 10.0)
    assert model.domains()[0].method == "estimated"
