"""JetsonSource against fake sysfs trees laid out like a Jetson's.

The hwmon trees copy the mainline `ina3221` driver on L4T 35/36: the chip is an I2C client under
devices/platform/bus@0/c240000.i2c/i2c-1/1-0040 with its hwmon directory inside, class/hwmon/hwmonN
is a symlink to that directory, hwmonN/device links back to the client, and the driver's
bus/i2c/drivers/ina3221/ directory links to the client too. Each chip has the files the driver
creates: three labelled channels (or disconnected ones: no label, in*_enable 0), the shunt-voltage
channels in4-6, the sum channel in7/curr4, limits and alarms. Rails are those of the device trees
of the AGX Orin (p3701) and Orin NX/Nano (p3767) modules in mainline Linux.

The iio trees copy NVIDIA's `ina3221x` driver on L4T 32 (Nano, Xavier) and 28 (TX2, `iio_device`):
rail_name_K, in_powerK_input (mW), in_voltageK_input, in_currentK_input, their *_trigger_input
twins, ui_input_K and the current limits, reachable both through bus/i2c/drivers/ina3221x/ and
bus/iio/devices/.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.measure.scripted import Clock
from tests.measure.unprivileged import as_unprivileged
from wattprint.errors import PowerSourceError
from wattprint.measure import jetson
from wattprint.measure.jetson import JetsonSource
from wattprint.measure.monitor import EnergyMonitor

I2C1 = "devices/platform/bus@0/c240000.i2c/i2c-1"
NANO_I2C6 = "devices/7000c400.i2c/i2c-6"

# A channel: (label or None for a disconnected input, bus mV, mA).
Channel = tuple[str | None, int, int]
ORIN_NX = [("VDD_IN", 5000, 2000), ("VDD_CPU_GPU_CV", 5000, 1000), ("VDD_SOC", 5000, 400)]
AGX_ORIN_40 = [("VDD_GPU_SOC", 19000, 500), ("VDD_CPU_CV", 19000, 250), ("VIN_SYS_5V0", 5000, 600)]
# The second chip's first and third inputs are disconnected; they would read as rails if counted.
AGX_ORIN_41: list[Channel] = [(None, 5000, 1000), ("VDDQ_VDD2_1V8AO", 5000, 100), (None, 5000, 1000)]
ORIN_NX_DOMAINS = [
    ("jetson:vdd_in", "cpu", False),
    ("jetson:vdd_cpu_gpu_cv", "gpu", True),
    ("jetson:vdd_soc", "cpu", False),
]


def _link(link: Path, target: Path) -> None:
    """A relative symlink, as sysfs makes them."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(target, link.parent))


def _write(directory: Path, files: dict[str, object]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_text(f"{value}\n")


def add_i2c_client(sys: Path, bus_dir: str, client: str, name: str, driver: str) -> Path:
    """An I2C client directory with its `name`, bound to `driver`."""
    device = sys / bus_dir / client
    _write(device, {"name": name, "uevent": f"DRIVER={driver}"})
    _link(sys / "bus" / "i2c" / "drivers" / driver / client, device)
    _link(device / "driver", sys / "bus" / "i2c" / "drivers" / driver)
    return device


def add_hwmon(sys: Path, device: Path, index: int, files: dict[str, object]) -> Path:
    """hwmon<index> inside `device`, linked from class/hwmon as the kernel does."""
    hwmon = device / "hwmon" / f"hwmon{index}"
    _write(hwmon, files)
    _link(hwmon / "device", device)
    _link(sys / "class" / "hwmon" / hwmon.name, hwmon)
    return hwmon


def add_ina3221(sys: Path, client: str, index: int, channels: Sequence[Channel], bus_dir: str = I2C1) -> Path:
    """A mainline ina3221 chip with its hwmon directory; returns that directory."""
    device = add_i2c_client(sys, bus_dir, client, "ina3221", "ina3221")
    files: dict[str, object] = {"name": "ina3221", "samples": 512, "update_interval": 1}
    for number, (label, mv, ma) in enumerate(channels, start=1):
        if label is not None:
            files[f"in{number}_label"] = label
        files |= {
            f"in{number}_enable": int(label is not None),
            f"in{number}_input": mv,
            f"curr{number}_input": ma,
            f"in{number + 3}_input": ma * 2,  # shunt voltage, uV, over 2 mOhm
            f"curr{number}_crit": 32760,
            f"curr{number}_crit_alarm": 0,
            f"curr{number}_max": 32760,
            f"curr{number}_max_alarm": 0,
            f"shunt{number}_resistor": 2000,
        }
    files |= {"in7_label": "sum of shunt voltages", "in7_input": 1234, "curr4_input": 617, "curr4_crit": 32760}
    return add_hwmon(sys, device, index, files)


def set_channel(hwmon: Path, number: int, mv: int, ma: int) -> None:
    """New readings on one channel; the files are rewritten in place, as sysfs values change."""
    (hwmon / f"in{number}_input").write_text(f"{mv}\n")
    (hwmon / f"curr{number}_input").write_text(f"{ma}\n")


def add_other_hwmon(sys: Path) -> None:
    """Sensors every Jetson also has, which must be ignored: thermal zones and the fan."""
    thermal = sys / "devices/virtual/thermal/thermal_zone0/hwmon0"
    _write(thermal, {"name": "cpu_thermal", "temp1_input": 45000})
    _link(sys / "class/hwmon/hwmon0", thermal)
    fan = sys / "devices/platform/pwm-fan/hwmon/hwmon9"
    _write(fan, {"name": "pwmfan", "pwm1": 80, "power1_input": 999})
    _link(sys / "class/hwmon/hwmon9", fan)


def build_orin_nx(sys: Path) -> Path:
    """Orin NX / Nano module: one ina3221 at 1-0040; returns its hwmon directory."""
    add_other_hwmon(sys)
    return add_ina3221(sys, "1-0040", 1, ORIN_NX)


def build_agx_orin(sys: Path, channels_41: Sequence[Channel] = AGX_ORIN_41) -> tuple[Path, Path]:
    add_other_hwmon(sys)
    return add_ina3221(sys, "1-0040", 1, AGX_ORIN_40), add_ina3221(sys, "1-0041", 2, channels_41)


def add_ina3221x(
    sys: Path, bus_dir: str, client: str, iio_index: int, rails: Sequence[tuple[str, int, int, int]], dir_name: str = ""
) -> Path:
    """NVIDIA's ina3221x iio device; rails are (name, mW, mV, mA). Returns the iio directory."""
    device = add_i2c_client(sys, bus_dir, client, "ina3221x", "ina3221x")
    iio = device / (dir_name or f"iio:device{iio_index}")
    files: dict[str, object] = {"name": "ina3221x", "running_mode": 0, "uevent": "DEVTYPE=iio_device"}
    for k, (rail, mw, mv, ma) in enumerate(rails):
        files |= {
            f"rail_name_{k}": rail,
            f"in_power{k}_input": mw,
            f"in_voltage{k}_input": mv,
            f"in_current{k}_input": ma,
            f"in_power{k}_trigger_input": 0,  # 0 while the chip idles in triggered mode
            f"in_current{k}_trigger_input": 0,
            f"ui_input_{k}": f"{mv} {ma}",
            f"crit_current_limit_{k}": "8000 ma",
            f"warn_current_limit_{k}": "6000 ma",
        }
    _write(iio, files)
    _link(sys / "bus" / "iio" / "devices" / f"iio:device{iio_index}", iio)
    return iio


def build_nano(sys: Path) -> Path:
    """Jetson Nano on L4T 32: one ina3221x at 6-0040. The powers disagree with volts x amps on
    purpose: the power file must be the one read."""
    add_other_hwmon(sys)
    rails = [("POM_5V_IN", 4000, 5000, 800), ("POM_5V_GPU", 1000, 5000, 100), ("POM_5V_CPU", 1500, 5000, 100)]
    return add_ina3221x(sys, NANO_I2C6, "6-0040", 0, rails)


def _open_fds_to(path: Path) -> list[int]:
    """This process's descriptors open on `path` (Linux /proc), to act on the source's own."""
    fds = []
    for entry in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{entry}") == str(path.resolve()):
                fds.append(int(entry))
        except OSError:
            continue
    return fds


def _triples(source: JetsonSource) -> list[tuple[str, str, bool]]:
    return [(d.name, d.component, d.counted) for d in source.domains()]


# -- discovery ---------------------------------------------------------------------------------------
def test_orin_nx_hwmon_rails(tmp_path: Path) -> None:
    build_orin_nx(tmp_path)
    source = JetsonSource(tmp_path, clock=Clock())
    try:
        assert source.name == "jetson"
        assert _triples(source) == ORIN_NX_DOMAINS
        assert {d.method for d in source.domains()} == {"measured"}
        rail = source.rails()[1]
        assert rail["device"] == "1-0040" and rail["chip"] == "ina3221" and rail["power"] == "voltage x current"
        assert rail["files"] == [
            str(tmp_path / "class/hwmon/hwmon1/in2_input"),
            str(tmp_path / "class/hwmon/hwmon1/curr2_input"),
        ]
        assert "VDD_IN, VDD_CPU_GPU_CV, VDD_SOC" in source.detail() and "trapezoid" in source.detail()
    finally:
        source.close()


def test_agx_orin_two_chips_skip_disconnected_inputs(tmp_path: Path) -> None:
    build_agx_orin(tmp_path)
    source = JetsonSource(tmp_path, clock=Clock())
    try:
        assert _triples(source) == [
            ("jetson:vdd_gpu_soc", "gpu", True),
            ("jetson:vdd_cpu_cv", "cpu", True),
            ("jetson:vin_sys_5v0", "cpu", False),
            ("jetson:vddq_vdd2_1v8ao", "ram", True),
        ]
    finally:
        source.close()


def test_nc_labels_and_unlabelled_enabled_channels(tmp_path: Path) -> None:
    # Some L4T releases name unused inputs "NC"; an enabled input without a name is still a rail.
    build_agx_orin(tmp_path, [("NC", 5000, 1000), ("VDDQ_VDD2_1V8AO", 5000, 100), (None, 5000, 1000)])
    (tmp_path / "class/hwmon/hwmon2/in3_enable").write_text("1\n")
    source = JetsonSource(tmp_path, clock=Clock())
    try:
        assert _triples(source)[3:] == [
            ("jetson:vddq_vdd2_1v8ao", "ram", True),
            ("jetson:ina3221@1-0041/3", "cpu", False),
        ]
    finally:
        source.close()


def test_legacy_iio_rails_found_once_through_both_paths(tmp_path: Path) -> None:
    build_nano(tmp_path)
    assert (tmp_path / "bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_0").exists()
    assert (tmp_path / "bus/iio/devices/iio:device0/rail_name_0").exists()
    source = JetsonSource(tmp_path, clock=Clock())
    try:
        assert _triples(source) == [
            ("jetson:pom_5v_in", "cpu", False),
            ("jetson:pom_5v_gpu", "gpu", True),
            ("jetson:pom_5v_cpu", "cpu", True),
        ]
        assert {r["device"] for r in source.rails()} == {"6-0040"}
        assert {r["power"] for r in source.rails()} == {"power file"}
    finally:
        source.close()


def test_legacy_tx2_iio_device_directories(tmp_path: Path) -> None:
    bus0 = "devices/3160000.i2c/i2c-0"
    add_ina3221x(
        tmp_path,
        bus0,
        "0-0040",
        0,
        [("VDD_SYS_GPU", 0, 0, 0), ("VDD_SYS_SOC", 0, 0, 0), ("VDD_4V0_WIFI", 0, 0, 0)],
        "iio_device",
    )
    add_ina3221x(
        tmp_path,
        bus0,
        "0-0041",
        1,
        [("VDD_IN", 0, 0, 0), ("VDD_SYS_CPU", 0, 0, 0), ("VDD_SYS_DDR", 0, 0, 0)],
        "iio_device",
    )
    source = JetsonSource(tmp_path, clock=Clock())
    try:
        assert _triples(source) == [
            ("jetson:vdd_sys_gpu", "gpu", True),
            ("jetson:vdd_sys_soc", "cpu", False),
            ("jetson:vdd_4v0_wifi", "cpu", False),
            ("jetson:vdd_in", "cpu", False),
            ("jetson:vdd_sys_cpu", "cpu", True),
            ("jetson:vdd_sys_ddr", "ram", True),
        ]
    finally:
        source.close()


def test_ina2xx_hwmon_power1_input(tmp_path: Path) -> None:
    # A carrier-board INA219 without a name, and an INA226 that the device tree labels.
    ina219 = add_i2c_client(tmp_path, "devices/platform/bus@0/c250000.i2c/i2c-2", "2-0044", "ina219", "ina2xx")
    files219 = {"name": "ina219", "in0_input": 3, "in1_input": 12000, "curr1_input": 200, "power1_input": 2_500_000}
    hwmon219 = add_hwmon(tmp_path, ina219, 3, files219 | {"shunt_resistor": 2000})
    ina226 = add_i2c_client(tmp_path, "devices/platform/bus@0/c250000.i2c/i2c-2", "2-0045", "ina226", "ina2xx")
    files226 = {"name": "ina226", "label": "VDD_GPU", "in1_input": 5000, "curr1_input": 700, "power1_input": 3_000_000}
    add_hwmon(tmp_path, ina226, 4, files226 | {"update_interval": 35})
    clock = Clock(1.0)
    source = JetsonSource(tmp_path, clock=clock)
    try:
        assert _triples(source) == [("jetson:ina219@2-0044", "cpu", False), ("jetson:vdd_gpu", "gpu", True)]
        (hwmon219 / "power1_input").write_text("3500000\n")
        clock.now = 3.0
        reading = source.read()
        # microwatts, trapezoid: (2.5 + 3.5) / 2 x 2 s; the INA226 held 3 W for 2 s
        assert reading.energy_j == {"jetson:ina219@2-0044": 6.0, "jetson:vdd_gpu": 6.0}
    finally:
        source.close()


def test_power_file_preferred_and_volts_amps_fallback(tmp_path: Path) -> None:
    hwmon = add_ina3221(tmp_path, "1-0040", 1, ORIN_NX)
    (hwmon / "power1_input").write_text("7000000\n")  # 7 W; volts x amps would say 10 W
    ina219 = add_i2c_client(tmp_path, I2C1, "1-0044", "ina219", "ina2xx")
    add_hwmon(tmp_path, ina219, 2, {"name": "ina219", "in1_input": 12000, "curr1_input": 250})  # 3 W
    clock = Clock()
    source = JetsonSource(tmp_path, clock=clock)
    try:
        clock.now = 1.0
        energy = source.read().energy_j
        assert energy["jetson:vdd_in"] == 7.0
        assert energy["jetson:vdd_cpu_gpu_cv"] == 5.0
        assert energy["jetson:ina219@1-0044"] == 3.0
    finally:
        source.close()


def test_duplicate_rail_names_are_kept_apart(tmp_path: Path) -> None:
    add_ina3221(tmp_path, "1-0040", 1, ORIN_NX)
    add_ina3221(tmp_path, "1-0042", 2, [("VDD_IN", 12000, 1000), (None, 0, 0), (None, 0, 0)])
    source = JetsonSource(tmp_path, clock=Clock())
    try:
        assert [d.name for d in source.domains()] == [
            "jetson:vdd_in",
            "jetson:vdd_cpu_gpu_cv",
            "jetson:vdd_soc",
            "jetson:vdd_in@1-0042",
        ]
    finally:
        source.close()


@pytest.mark.parametrize("layout", ["missing", "empty", "other sensors only", "ina3221 all disconnected"])
def test_no_rails_is_absent(tmp_path: Path, layout: str) -> None:
    root = tmp_path / "sys"
    if layout != "missing":
        (root / "class" / "hwmon").mkdir(parents=True)
    if layout == "other sensors only":
        add_other_hwmon(root)
    if layout == "ina3221 all disconnected":
        add_ina3221(root, "1-0041", 1, [(None, 5000, 100), (None, 5000, 100), (None, 5000, 100)])
    with pytest.raises(PowerSourceError, match="no INA3221/INA2xx power monitor rails under") as caught:
        JetsonSource(root)
    assert caught.value.reason == "absent"
    assert jetson.available(root) is False


def test_available(tmp_path: Path) -> None:
    build_nano(tmp_path / "nano")
    build_orin_nx(tmp_path / "orin")
    assert jetson.available(tmp_path / "nano") is True
    assert jetson.available(tmp_path / "orin") is True


def test_unreadable_rail_at_open_is_skipped_and_all_unreadable_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hwmon = build_orin_nx(tmp_path)
    (hwmon / "curr3_input").write_text("ENODATA?\n")
    with caplog.at_level(logging.WARNING, logger="wattprint"):
        source = JetsonSource(tmp_path, clock=Clock())
    try:
        assert [d.name for d in source.domains()] == ["jetson:vdd_in", "jetson:vdd_cpu_gpu_cv"]
        assert "curr3_input: not a number" in caplog.text and "skipping that rail" in caplog.text
    finally:
        source.close()
    for number in (1, 2):
        (hwmon / f"in{number}_input").write_text("\n")
    with pytest.raises(PowerSourceError, match="no power monitor rail readable") as caught:
        JetsonSource(tmp_path)
    assert caught.value.reason == "unreadable"
    assert jetson.available(tmp_path) is False


# -- energy --------------------------------------------------------------------------------------------
def test_trapezoid_integration_over_the_clock(tmp_path: Path) -> None:
    hwmon = build_orin_nx(tmp_path)
    clock = Clock(10.0)  # opened at t = 10 s: 10 W, 5 W, 2 W
    source = JetsonSource(tmp_path, clock=clock)
    try:
        first = source.read()
        assert first.timestamp == 10.0
        assert dict(first.energy_j) == {"jetson:vdd_in": 0.0, "jetson:vdd_cpu_gpu_cv": 0.0, "jetson:vdd_soc": 0.0}
        set_channel(hwmon, 1, 5000, 6000)  # VDD_IN 10 W -> 30 W
        clock.now = 12.0
        second = source.read()
        assert second.timestamp == 12.0
        assert dict(second.energy_j) == {"jetson:vdd_in": 40.0, "jetson:vdd_cpu_gpu_cv": 10.0, "jetson:vdd_soc": 4.0}
        set_channel(hwmon, 1, 5000, 4000)  # 30 W -> 20 W over 1 s: 25 J more
        set_channel(hwmon, 2, 4000, 2500)  # 5 W -> 10 W: 7.5 J more
        clock.now = 13.0
        third = source.read()
        assert dict(third.energy_j) == {"jetson:vdd_in": 65.0, "jetson:vdd_cpu_gpu_cv": 17.5, "jetson:vdd_soc": 6.0}
        clock.now = 12.5  # a clock that steps back adds nothing and takes nothing away
        assert source.read().energy_j["jetson:vdd_in"] == 65.0
    finally:
        source.close()


def test_legacy_milliwatts(tmp_path: Path) -> None:
    iio = build_nano(tmp_path)
    clock = Clock()
    source = JetsonSource(tmp_path, clock=clock)
    try:
        (iio / "in_power0_input").write_text("6000\n")
        clock.now = 0.5
        energy = source.read().energy_j
        assert energy == {"jetson:pom_5v_in": 2.5, "jetson:pom_5v_gpu": 0.5, "jetson:pom_5v_cpu": 0.75}
    finally:
        source.close()


def test_negative_current_counts_as_no_power(tmp_path: Path) -> None:
    hwmon = build_orin_nx(tmp_path)
    set_channel(hwmon, 3, 5000, -8)  # offset noise on an idle rail
    clock = Clock()
    source = JetsonSource(tmp_path, clock=clock)
    try:
        clock.now = 2.0
        assert source.read().energy_j["jetson:vdd_soc"] == 0.0
        set_channel(hwmon, 3, 5000, 400)
        clock.now = 3.0
        assert source.read().energy_j["jetson:vdd_soc"] == 1.0  # (0 + 2 W) / 2 x 1 s
    finally:
        source.close()


def test_malformed_value_raises_then_the_next_read_bridges_the_gap(tmp_path: Path) -> None:
    hwmon = build_orin_nx(tmp_path)
    clock = Clock()
    source = JetsonSource(tmp_path, clock=clock)
    try:
        clock.now = 1.0
        assert source.read().energy_j["jetson:vdd_in"] == 10.0
        (hwmon / "curr2_input").write_text("-\n")
        set_channel(hwmon, 1, 5000, 999_999)
        clock.now = 2.0
        with pytest.raises(PowerSourceError, match="curr2_input: not a number"):
            source.read()
        set_channel(hwmon, 1, 5000, 6000)  # 30 W
        set_channel(hwmon, 2, 5000, 1000)
        clock.now = 4.0
        energy = source.read().energy_j
        # nothing changed at the failed read: 10 J, then (10 + 30) / 2 x 3 s from the last good sample
        assert energy["jetson:vdd_in"] == 70.0
        assert energy["jetson:vdd_cpu_gpu_cv"] == 20.0
    finally:
        source.close()


def test_rail_disappearing_raises_then_resumes(tmp_path: Path) -> None:
    hwmon = build_orin_nx(tmp_path)
    current = tmp_path / "class/hwmon/hwmon1/curr1_input"
    clock = Clock()
    source = JetsonSource(tmp_path, clock=clock)
    try:
        clock.now = 1.0
        source.read()
        # The chip goes (driver unbound): its kept-open descriptor dies and the file goes.
        (fd,) = _open_fds_to(current)
        os.close(fd)
        moved = current.resolve().with_name("curr1_input.gone")
        current.resolve().rename(moved)
        clock.now = 2.0
        with pytest.raises(PowerSourceError, match="cannot read .*curr1_input"):
            source.read()
        # It comes back: the source re-opens the file and integrates from the last good sample.
        moved.rename(current.resolve())
        set_channel(hwmon, 1, 5000, 2000)
        clock.now = 5.0
        assert source.read().energy_j["jetson:vdd_in"] == 50.0  # 10 W for 1 s, then 10 W for 4 s
        assert len(_open_fds_to(current)) == 1
    finally:
        source.close()


def test_close_releases_files_and_is_idempotent(tmp_path: Path) -> None:
    build_orin_nx(tmp_path)
    voltage = tmp_path / "class/hwmon/hwmon1/in1_input"
    source = JetsonSource(tmp_path, clock=Clock())
    assert len(_open_fds_to(voltage)) == 1
    source.close()
    source.close()
    assert _open_fds_to(voltage) == []
    with pytest.raises(PowerSourceError, match="closed"):
        source.read()


def test_monitor_marks_the_rails_degraded_and_never_raises(tmp_path: Path) -> None:
    hwmon = build_orin_nx(tmp_path)
    clock = Clock()
    source = JetsonSource(tmp_path, clock=clock)
    clock.now = 1.0
    monitor = EnergyMonitor([source], attribution="machine")  # its first reading, at 1 s, is the zero
    try:
        clock.now = 2.0
        monitor.sample()  # 5 J on VDD_CPU_GPU_CV
        (hwmon / "curr2_input").write_text("garbage\n")
        clock.now = 3.0
        monitor.sample()  # must not raise
        assert "not a number" in monitor.degraded["jetson:vdd_cpu_gpu_cv"]
        assert set(monitor.degraded) == {name for name, _, _ in ORIN_NX_DOMAINS}
        set_channel(hwmon, 2, 5000, 3000)  # 15 W
        clock.now = 4.0
        monitor.sample()  # 5 J + (5 + 15) / 2 x 2 s
        attributed, machine = monitor.by_component(monitor.totals())
        assert machine == {"cpu": 0.0, "gpu": 25.0, "ram": 0.0}  # VDD_IN and VDD_SOC are detail only
        assert attributed["gpu"] == 25.0
        assert monitor.totals().machine_j["jetson:vdd_in"] == 30.0  # still integrated, for detail
    finally:
        monitor.close()


# -- permissions -----------------------------------------------------------------------------------------
@pytest.fixture
def shared_tree() -> Iterator[Path]:
    """An Orin NX tree an unprivileged user can traverse (pytest's tmp_path is private to its owner)."""
    base = Path(tempfile.mkdtemp(prefix="wattprint-jetson-"))
    try:
        base.chmod(0o755)
        build_orin_nx(base)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _attempt(root: Path) -> str:
    outcome = f"available={jetson.available(root)}\n"
    try:
        JetsonSource(root).close()
        return outcome + "opened"
    except PowerSourceError as exc:
        return outcome + f"PowerSourceError[{exc.reason}]: {exc}\nfix: {exc.fix}"
    except Exception as exc:
        return outcome + f"{type(exc).__name__}: {exc}"


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")


@needs_root
def test_root_only_rail_raises_a_clear_error_at_open(shared_tree: Path) -> None:
    current = shared_tree / "class/hwmon/hwmon1/curr2_input"
    current.resolve().chmod(0o400)
    outcome = as_unprivileged(lambda: _attempt(shared_tree))
    assert outcome.startswith("available=True")  # the other rails are still readable
    assert f"PowerSourceError[permission]: cannot read {current}: permission denied" in outcome
    assert f"fix: sudo chmod o+r {shared_tree}/class/hwmon/hwmon1/*_input" in outcome
    assert "run as root" in outcome


@needs_root
def test_all_rails_root_only_means_unavailable(shared_tree: Path) -> None:
    for path in (shared_tree / "class/hwmon/hwmon1").resolve().glob("*_input"):
        path.chmod(0o400)
    outcome = as_unprivileged(lambda: _attempt(shared_tree))
    assert outcome.startswith("available=False")
    assert "PowerSourceError[permission]" in outcome


@needs_root
def test_readable_tree_opens_for_an_unprivileged_user(shared_tree: Path) -> None:
    assert as_unprivileged(lambda: _attempt(shared_tree)) == "available=True\nopened"


# -- rail names -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("label", "component", "counted"),
    [
        ("VDD_IN", "cpu", False),  # module input: contains the rest
        ("POM_5V_IN", "cpu", False),
        ("VDD_CPU_GPU_CV", "gpu", True),  # Xavier NX, Orin NX/Nano: charged to the GPU
        ("VDD_GPU_SOC", "gpu", True),
        ("VDD_CPU_CV", "cpu", True),
        ("VDDQ_VDD2_1V8AO", "ram", True),
        ("VIN_SYS_5V0", "cpu", False),
        ("VDD_SOC", "cpu", False),
        ("POM_5V_GPU", "gpu", True),
        ("POM_5V_CPU", "cpu", True),
        ("VDD_GPU", "gpu", True),
        ("VDD_CPU", "cpu", True),
        ("VDD_SYS_GPU", "gpu", True),
        ("VDD_SYS_CPU", "cpu", True),
        ("VDD_SYS_DDR", "ram", True),
        ("VDD_DDR", "ram", True),
        ("VDD_4V0_WIFI", "cpu", False),
        ("GPU", "gpu", True),  # AGX Xavier
        ("CPU", "cpu", True),
        ("SOC", "cpu", False),
        ("CV", "gpu", True),
        ("VDDRQ", "ram", True),
        ("SYS5V", "cpu", False),
        ("CVB_ATX_12V", "cpu", False),
        ("vdd_gpu\n", "gpu", True),
        ("", "cpu", False),
    ],
)
def test_classify(label: str, component: str, counted: bool) -> None:
    assert jetson.classify(label) == (component, counted)
