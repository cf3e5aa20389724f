"""NVIDIA Jetson board energy from the on-board INA3221 (and INA2xx) power monitors, through sysfs.

Jetson modules carry TI INA3221 three-channel monitors on an I2C bus, one channel per supply rail,
named in the device tree. Two drivers expose them, depending on the L4T release:

hwmon, the mainline `ina3221` driver (JetPack 5 and later, L4T 34+; mainline kernels on Tegra):
    /sys/class/hwmon/hwmonN -> ../../devices/.../i2c-1/1-0040/hwmon/hwmonN
        name            "ina3221"
        inK_label       rail name of channel K (1-3), e.g. VDD_GPU_SOC; absent for a channel the
                        device tree leaves unnamed or disconnected ("NC" on some L4T releases)
        inK_input       bus voltage, mV          currK_input   current, mA
        inK_enable      1 while the channel is measured (reading a disabled one fails: ENODATA)
        in4-6_input     shunt voltages (uV), in7/curr4 the sum channel: not rails, never read
    No power file: power = voltage x current, computed here. Should a kernel add powerK_input
    (hwmon ABI: microwatts), it is read instead.
hwmon, the `ina2xx` driver (INA219/220/226/230/231, one rail per chip, e.g. carrier boards):
    name "ina219"..., power1_input (uW); in1_input (bus mV) x curr1_input (mA) where it is missing;
    the rail is named by the chip's `label` file where the hwmon core has one, else "<chip>@<i2c id>".
iio, NVIDIA's own `ina3221x` driver (JetPack 4 and older, L4T 32 and before: Nano, TX1, TX2, Xavier):
    /sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:deviceN/   (iio_device/ on some older releases)
        name "ina3221x", rail_name_K (K = 0-2), in_powerK_input (mW),
        in_voltageK_input (mV), in_currentK_input (mA); in_*K_trigger_input read 0 while the chip
        idles in triggered mode and are not read.

None of these is an energy counter. Each read() samples every rail's power and integrates it over
the source's `clock` with the trapezoidal rule, so a rail's energy is exact only to the sampling
interval (the monitor reads every second); the method is still "measured": it is the board's own
power meter. Kept-open files are re-read with os.pread, as sysfs regenerates a value at offset 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from wattprint.errors import PowerSourceError
from wattprint.measure.base import Component, Domain, Reading
from wattprint.measure.gpu_energy import POWER_SAMPLING

log = logging.getLogger("wattprint")

DEFAULT_ROOT = "/sys"
INA3221_HWMON = "ina3221"  # mainline hwmon driver's `name`
INA3221_IIO = "ina3221x"  # NVIDIA's downstream iio driver: its I2C driver and iio device name
_INA2XX_NAME = re.compile(r"^ina2\d\d$")  # ina219, ina220, ina226, ina230, ina231, ...: one rail each
_IIO_DIR = re.compile(r"^iio(:device\d+|_device)$")
_I2C_ID = re.compile(r"^\d+-[0-9a-f]{4}$")  # an I2C client: "<bus>-<address, 4 hex digits>"
UW_PER_W = 1e6  # hwmon power files; also mV x mA
MW_PER_W = 1e3  # the iio driver's in_powerK_input
NOT_CONNECTED = frozenset({"", "NC", "(NULL)"})  # channel names of unused inputs
_READ_SIZE = 32  # a value is at most 11 digits and a newline

# Rail-name tokens (split at anything but letters and digits) that say what a rail feeds.
_MEMORY_TOKENS = frozenset({"DDR", "DRAM", "EMC", "VDDQ", "VDDRQ", "VDD2"})


@dataclass(frozen=True)
class RailSpec:
    """One rail found in sysfs: what to read and how to turn it into watts."""

    label: str | None  # the rail name the board gives, None when it gives none
    chip: str  # driver name: "ina3221", "ina226", "ina3221x"
    device: str  # I2C device id ("1-0040"), else the sysfs directory's name
    channel: int | None  # channel on a multi-channel chip, None for a one-rail chip
    files: tuple[Path, ...]  # one power file, or a voltage file and a current file
    divisor: float  # the product of the files' values divided by this is watts

    @property
    def name(self) -> str:
        """The rail's name: its label, else the chip, device and channel."""
        if self.label:
            return self.label
        suffix = f"/{self.channel}" if self.channel is not None else ""
        return f"{self.chip}@{self.device}{suffix}"


def classify(label: str) -> tuple[Component, bool]:
    """Component and `counted` flag of a rail from its name.

    The whole-module input (VDD_IN, POM_5V_IN: any name ending in "_IN") contains every other rail,
    so it is detail only, like RAPL's psys. Then, by the words in the name:
      GPU   -> gpu  (VDD_GPU, POM_5V_GPU, VDD_SYS_GPU, AGX Orin's VDD_GPU_SOC, which also feeds the SoC)
      CPU   -> cpu  (VDD_CPU, POM_5V_CPU, VDD_SYS_CPU, AGX Orin's VDD_CPU_CV, which also feeds the
                     DLA/PVA vision accelerators)
      DDR, DRAM, EMC, VDDQ, VDDRQ, VDD2 -> ram  (VDD_SYS_DDR, Xavier's VDDRQ, AGX Orin's VDDQ_VDD2_1V8AO)
      CV alone -> gpu (AGX Xavier's DLA/PVA rail: the job's other ML accelerators)
    Anything else (VDD_SOC, SYS5V, VIN_SYS_5V0, carrier-board and unnamed rails) cannot be assigned
    to one component and is detail only.

    The combined rail of Xavier NX, Orin NX and Orin Nano, VDD_CPU_GPU_CV, is charged to the GPU:
    on these modules an ML job's draw on it is mostly the GPU (and the DLAs), and the monitor
    charges a GPU domain whole to a run that uses the GPU, while it would scale a CPU domain by the
    run's share of CPU time, dropping most of a GPU-bound job's energy. The price is that CPU work
    of other processes on the board is charged to the run as well.
    """
    name = label.strip().upper()
    tokens = [token for token in re.split(r"[^A-Z0-9]+", name) if token]
    if not tokens or tokens[-1] == "IN":
        return "cpu", False
    if "GPU" in tokens:
        return "gpu", True
    if "CPU" in tokens:
        return "cpu", True
    if _MEMORY_TOKENS.intersection(tokens):
        return "ram", True
    if tokens == ["CV"]:
        return "gpu", True
    return "cpu", False


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read().strip()


def _read_optional(path: Path) -> str | None:
    try:
        return _read_text(path)
    except OSError:
        return None


def _scan(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except OSError:
        return []


def _natural_key(name: str) -> tuple[str, int]:
    match = re.match(r"^(.*?)(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, -1)


def _device_id(directory: Path, fallback: str) -> str:
    """The I2C device id ("1-0040") behind a hwmon or iio directory, else `fallback`.

    A hwmon directory links to its I2C device as `device` and sits in <device>/hwmon/; an iio
    directory sits in the I2C device's directory itself."""
    try:
        resolved = Path(os.path.realpath(directory))
        candidates = [Path(os.path.realpath(directory / "device")), resolved.parent, resolved.parent.parent]
    except OSError:
        return fallback
    for candidate in candidates:
        if _I2C_ID.match(candidate.name):
            return candidate.name
    return fallback


def _hwmon_ina3221(directory: Path, device: str) -> Iterator[RailSpec]:
    for channel in (1, 2, 3):
        label = _read_optional(directory / f"in{channel}_label")
        if label is not None and label.upper() in NOT_CONNECTED:
            continue
        if label is None and _read_optional(directory / f"in{channel}_enable") == "0":
            continue  # disconnected in the device tree: disabled, and unnamed
        power = directory / f"power{channel}_input"
        voltage, current = directory / f"in{channel}_input", directory / f"curr{channel}_input"
        if power.exists():
            files: tuple[Path, ...] = (power,)
        elif voltage.exists() and current.exists():
            files = (voltage, current)
        else:
            continue
        yield RailSpec(label or None, INA3221_HWMON, device, channel, files, UW_PER_W)


def _hwmon_ina2xx(directory: Path, chip: str, device: str) -> Iterator[RailSpec]:
    power = directory / "power1_input"
    voltage, current = directory / "in1_input", directory / "curr1_input"
    if power.exists():
        files: tuple[Path, ...] = (power,)
    elif voltage.exists() and current.exists():
        files = (voltage, current)
    else:
        return
    label = _read_optional(directory / "label")
    yield RailSpec(label or None, chip, device, None, files, UW_PER_W)


def _iio_rails(directory: Path, device: str) -> Iterator[RailSpec]:
    channels = sorted(
        int(entry.name.removeprefix("rail_name_"))
        for entry in _scan(directory)
        if re.match(r"^rail_name_\d+$", entry.name)
    )
    for channel in channels:
        label = _read_optional(directory / f"rail_name_{channel}")
        if label is None or label.upper() in NOT_CONNECTED:
            continue
        power = directory / f"in_power{channel}_input"
        voltage = directory / f"in_voltage{channel}_input"
        current = directory / f"in_current{channel}_input"
        if power.exists():
            yield RailSpec(label, INA3221_IIO, device, channel, (power,), MW_PER_W)
        elif voltage.exists() and current.exists():
            yield RailSpec(label, INA3221_IIO, device, channel, (voltage, current), UW_PER_W)


def _iio_directories(root: Path) -> list[Path]:
    """The ina3221x iio device directories, each once: under the I2C driver and on the iio bus."""
    found: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        resolved = os.path.realpath(path)
        if resolved not in seen and path.is_dir():
            seen.add(resolved)
            found.append(path)

    driver = root / "bus" / "i2c" / "drivers" / INA3221_IIO
    for device in sorted(_scan(driver), key=lambda e: e.name):
        if not _I2C_ID.match(device.name):
            continue  # bind, unbind, uevent, module
        for entry in sorted(_scan(Path(device.path)), key=lambda e: _natural_key(e.name)):
            if _IIO_DIR.match(entry.name):
                add(Path(entry.path))
    for entry in sorted(_scan(root / "bus" / "iio" / "devices"), key=lambda e: _natural_key(e.name)):
        if _read_optional(Path(entry.path) / "name") == INA3221_IIO:
            add(Path(entry.path))
    return found


def find_rails(root: str | Path = DEFAULT_ROOT) -> list[RailSpec]:
    """Every power-monitor rail under `root` (a sysfs mount), hwmon devices first, each once."""
    base = Path(root)
    rails: list[RailSpec] = []
    seen: set[str] = set()
    for entry in sorted(_scan(base / "class" / "hwmon"), key=lambda e: _natural_key(e.name)):
        directory = Path(entry.path)
        resolved = os.path.realpath(directory)
        if resolved in seen:
            continue
        seen.add(resolved)
        chip = _read_optional(directory / "name")
        device = _device_id(directory, entry.name)
        if chip == INA3221_HWMON:
            rails.extend(_hwmon_ina3221(directory, device))
        elif chip is not None and _INA2XX_NAME.match(chip):
            rails.extend(_hwmon_ina2xx(directory, chip, device))
    for directory in _iio_directories(base):
        rails.extend(_iio_rails(directory, _device_id(directory, directory.name)))
    return rails


@dataclass
class _Rail:
    """One opened rail and its integration state."""

    spec: RailSpec
    domain: Domain
    fds: list[int]
    last_w: float  # power at the last good sample
    total_j: float = 0.0  # joules integrated since open


def _close_fd(fd: int) -> None:
    """Close a descriptor that may already be gone; there is nothing left to release then."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _open_fd(path: Path) -> int:
    return os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))


def _parse(data: bytes, path: Path) -> int:
    try:
        return int(data)
    except ValueError:
        raise PowerSourceError(f"{path}: not a number: {data[:40]!r}") from None


def _watts(values: Sequence[int], spec: RailSpec) -> float:
    """Power of one sample; negative readings (reverse current, offset noise at idle) count as 0."""
    product = 1
    for value in values:
        product *= value
    return max(0.0, product / spec.divisor)


def _permission_fix(path: Path) -> str:
    return f"sudo chmod o+r {path.parent}/*_input (again after each boot, or from a udev rule), or run as root"


class JetsonSource:
    """Measured energy of every Jetson power-monitor rail, in joules since the source was opened.

    Power sampling: each read() reads every rail's power (a power file, or voltage x current) and
    adds (previous + current power) / 2 x the `clock` time between them. A read that fails changes
    nothing, so the next good one integrates the whole gap from the last good sample.
    """

    name = "jetson"
    method = POWER_SAMPLING

    def __init__(self, root: str | Path = DEFAULT_ROOT, clock: Callable[[], float] = time.monotonic) -> None:
        """Find and open every rail under `root`; raises PowerSourceError when there is none ("absent"),
        when a rail is there but not readable by this user ("permission") or none can be read."""
        self.root = Path(root)
        self._clock = clock
        self._rails: list[_Rail] = []
        self._closed = False
        specs = find_rails(self.root)
        if not specs:
            raise PowerSourceError(
                f"no INA3221/INA2xx power monitor rails under {self.root} (not a Jetson?)", reason="absent"
            )
        problems: list[str] = []
        try:
            for spec in specs:
                rail = self._open_rail(spec, problems)
                if rail is not None:
                    self._rails.append(rail)
            self._last_t = self._clock()
        except BaseException:  # Ctrl-C too: close the files opened so far; re-raised
            self.close()
            raise
        for problem in problems:
            log.warning("wattprint: %s; skipping that rail", problem)
        if not self._rails:
            raise PowerSourceError("no power monitor rail readable: " + "; ".join(problems))
        self._domains = tuple(rail.domain for rail in self._rails)

    def _open_rail(self, spec: RailSpec, problems: list[str]) -> _Rail | None:
        """Open one rail's files and take its first sample; None (with the reason added to
        `problems`) if it cannot be read, PowerSourceError if this user may not read it."""
        fds: list[int] = []
        try:
            for path in spec.files:
                fds.append(_open_fd(path))
            values = [_parse(os.pread(fd, _READ_SIZE, 0), path) for fd, path in zip(fds, spec.files, strict=True)]
            watts = _watts(values, spec)
        except PermissionError as exc:
            for fd in fds:
                _close_fd(fd)
            path = Path(exc.filename) if exc.filename else spec.files[0]
            raise PowerSourceError(
                f"cannot read {path}: permission denied; run as root or `sudo chmod o+r {path.parent}/*_input`",
                reason="permission",
                fix=_permission_fix(path),
            ) from None
        except OSError as exc:
            for fd in fds:
                _close_fd(fd)
            problems.append(f"cannot read rail {spec.name} ({spec.files[0]}): {exc.strerror or exc}")
            return None
        except PowerSourceError as exc:
            for fd in fds:
                _close_fd(fd)
            problems.append(str(exc))
            return None
        component, counted = classify(spec.label or "")
        domain_name = f"jetson:{spec.name.lower()}"
        if any(rail.domain.name == domain_name for rail in self._rails):
            domain_name = f"{domain_name}@{spec.device}"  # two rails with one name: keep both apart
        return _Rail(spec, Domain(domain_name, component, "measured", counted), fds, watts)

    def domains(self) -> Sequence[Domain]:
        """One domain per rail: "jetson:vdd_in", "jetson:vdd_cpu_gpu_cv", "jetson:vdd_soc", ..."""
        return self._domains

    def rails(self) -> list[dict[str, object]]:
        """Domain, rail name, chip, I2C device, files read and how, for diagnostics."""
        return [
            {
                "domain": rail.domain.name,
                "rail": rail.spec.name,
                "chip": rail.spec.chip,
                "device": rail.spec.device,
                "files": [str(path) for path in rail.spec.files],
                "power": "power file" if len(rail.spec.files) == 1 else "voltage x current",
            }
            for rail in self._rails
        ]

    def detail(self) -> str:
        """One line for the record: what is measured and how."""
        chips = sorted({rail.spec.chip for rail in self._rails})
        names = ", ".join(rail.spec.name for rail in self._rails)
        return (
            f"Jetson on-board power monitor ({'/'.join(chips)}) rails {names}: power sampled at each read "
            "and integrated over time (trapezoid)"
        )

    def _read_value(self, rail: _Rail, index: int) -> int:
        """One file's current value; re-opens it once if the kept-open descriptor fails."""
        path = rail.spec.files[index]
        try:
            try:
                data = os.pread(rail.fds[index], _READ_SIZE, 0)
            except OSError:
                _close_fd(rail.fds[index])
                rail.fds[index] = -1
                rail.fds[index] = _open_fd(path)
                data = os.pread(rail.fds[index], _READ_SIZE, 0)
        except OSError as exc:
            raise PowerSourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        return _parse(data, path)

    def read(self) -> Reading:
        """Cumulative joules per rail since open. A rail that cannot be read, or reads no number,
        raises PowerSourceError and changes nothing: the next good read integrates the whole gap."""
        if self._closed:
            raise PowerSourceError("Jetson source is closed")
        samples = [
            _watts([self._read_value(rail, i) for i in range(len(rail.spec.files))], rail.spec) for rail in self._rails
        ]
        now = self._clock()
        dt_s = max(0.0, now - self._last_t)
        energy: dict[str, float] = {}
        for rail, watts in zip(self._rails, samples, strict=True):
            rail.total_j += (rail.last_w + watts) / 2 * dt_s
            rail.last_w = watts
            energy[rail.domain.name] = rail.total_j
        self._last_t = now
        return Reading(now, energy)

    def close(self) -> None:
        """Close the rail files. Safe to call twice."""
        self._closed = True
        for rail in self._rails:
            for index, fd in enumerate(rail.fds):
                _close_fd(fd)
                rail.fds[index] = -1


def available(root: str | Path = DEFAULT_ROOT) -> bool:
    """Whether at least one power-monitor rail under `root` is readable. Never raises."""
    try:
        for spec in find_rails(root):
            try:
                for path in spec.files:
                    with open(path, "rb") as handle:
                        int(handle.read(_READ_SIZE))
                return True
            except (OSError, ValueError):
                continue
    except Exception:  # never raises: any fault means no power monitor
        return False
    return False
