"""A scripted stand-in for the `zeus_apple_silicon` module (PyPI: zeus-apple-silicon), for machines that are
not Apple silicon Macs.

The real module (ml-energy/zeus-apple-silicon 1.1.0: apple_energy/apple_energy.hpp, bindings/) is a nanobind
extension over IOReport's "Energy Model" channel group, and the fake behaves like it where a reader depends on it:
  - `AppleEnergyMonitor()` subscribes to the channels; it raises RuntimeError("Failed to create IOReport
    subscription.") when IOReport refuses;
  - `get_cumulative_energy()` returns an `AppleEnergyMetrics` of cumulative millijoules since a fixed, unspecified
    point; `begin_window(key, restart=False)` and `end_window(key)` measure an interval, and raise RuntimeError
    for a key already begun or never begun;
  - `AppleEnergyMetrics` has exactly the fields below: an int, a list of ints (one per core or cluster) or None
    where the chip has no such channel;
  - each channel is converted to millijoules on its own, by integer division ("GPU Energy" counts nanojoules, so
    its sub-millijoule part is dropped); an unknown unit on any channel, even an ignored one, raises ValueError
    (std::invalid_argument);
  - channels are classified by name: "CPU Energy", E- and P-cores ("ECPU0", "EACC_CPU0", "PCPU0", "PACC0_CPU0"),
    clusters ("ECPU", "PACC0_CPU"), cluster managers ("ECPM", "PACC0_CPM"), "DRAM", "GPU Energy", "GPU SRAM",
    "ANE"; a multi-die chip's "DIE_<n>_" prefix is dropped, so its dies are summed; other channels are ignored.
Tests script the channels (name -> (raw value, unit)) between reads, and can make reads fail.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

FIELDS = (
    "cpu_total_mj",
    "efficiency_cores_mj",
    "performance_cores_mj",
    "efficiency_cluster_mj",
    "performance_cluster_mj",
    "efficiency_core_manager_mj",
    "performance_core_manager_mj",
    "dram_mj",
    "gpu_mj",
    "gpu_sram_mj",
    "ane_mj",
)
LIST_FIELDS = ("efficiency_cores_mj", "performance_cores_mj", "efficiency_cluster_mj", "performance_cluster_mj")

_TO_MJ = {"nJ": (1, 1_000_000), "uJ": (1, 1_000), "µJ": (1, 1_000), "mJ": (1, 1), "cJ": (10, 1), "dJ": (100, 1)}
_TO_MJ |= {"J": (1_000, 1), "kJ": (1_000_000, 1)}


class AppleEnergyMetrics:
    """The result object: every field None until the chip reports it (the binding's default constructor)."""

    cpu_total_mj: int | None
    efficiency_cores_mj: list[int] | None
    performance_cores_mj: list[int] | None
    efficiency_cluster_mj: list[int] | None
    performance_cluster_mj: list[int] | None
    efficiency_core_manager_mj: int | None
    performance_core_manager_mj: int | None
    dram_mj: int | None
    gpu_mj: int | None
    gpu_sram_mj: int | None
    ane_mj: int | None

    def __init__(self) -> None:
        for name in FIELDS:
            setattr(self, name, None)

    def __repr__(self) -> str:
        return "AppleEnergyMetrics(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in FIELDS) + ")"


def _to_mj(value: int, unit: str) -> int:
    if unit not in _TO_MJ:
        raise ValueError(f"Unsupported or invalid energy unit provided: {unit}")
    multiply, divide = _TO_MJ[unit]
    return value * multiply // divide


def _field_of(channel: str) -> str | None:
    """Which AppleEnergyMetrics field a channel goes to (M1 to M4 names), or None for one that is ignored."""
    name = re.sub(r"^DIE_\d+_", "", channel)
    rules = (
        (lambda n: "CPU Energy" in n, "cpu_total_mj"),
        (lambda n: re.fullmatch(r"E\w*CPU\d+", n) is not None, "efficiency_cores_mj"),
        (lambda n: re.fullmatch(r"P\w*CPU\d+", n) is not None, "performance_cores_mj"),
        (lambda n: re.fullmatch(r"E\w*CPU", n) is not None, "efficiency_cluster_mj"),
        (lambda n: re.fullmatch(r"P\w*CPU", n) is not None, "performance_cluster_mj"),
        (lambda n: re.fullmatch(r"E\w*CPM", n) is not None, "efficiency_core_manager_mj"),
        (lambda n: re.fullmatch(r"P\w*CPM", n) is not None, "performance_core_manager_mj"),
        (lambda n: "DRAM" in n, "dram_mj"),
        (lambda n: "GPU Energy" in n, "gpu_mj"),
        (lambda n: "GPU SRAM" in n, "gpu_sram_mj"),
        (lambda n: "ANE" in n, "ane_mj"),
    )
    for matches, field in rules:
        if matches(name):
            return field
    return None


def metrics_of(channels: Mapping[str, tuple[int, str]]) -> AppleEnergyMetrics:
    """Classify and convert raw channel values as the real monitor does."""
    result = AppleEnergyMetrics()
    for channel, (value, unit) in channels.items():
        mj = _to_mj(value, unit)  # every channel, before it is classified: an unknown unit fails the read
        field = _field_of(channel)
        if field is None:
            continue
        current = getattr(result, field)
        if field in LIST_FIELDS:
            setattr(result, field, [*(current or []), mj])
        else:
            setattr(result, field, (current or 0) + mj)
    return result


class FakeAppleEnergyMonitor:
    """One IOReport subscription over the fake's channels."""

    def __init__(self, owner: FakeZeusAppleSilicon) -> None:
        self._owner = owner
        self._windows: dict[str, dict[str, tuple[int, str]]] = {}

    def _sample(self) -> dict[str, tuple[int, str]]:
        owner = self._owner
        owner.reads += 1
        if owner.fail_reads > 0:
            owner.fail_reads -= 1
            raise RuntimeError("Failed to convert CFString to std::string")
        return dict(owner.channels)

    def get_cumulative_energy(self) -> AppleEnergyMetrics:
        return metrics_of(self._sample())

    def begin_window(self, key: str, restart: bool = False) -> None:
        if key in self._windows and not restart:
            raise RuntimeError("Measurement with specified key already exists.")
        self._windows[key] = self._sample()

    def end_window(self, key: str) -> AppleEnergyMetrics:
        if key not in self._windows:
            raise RuntimeError("No measurement with provided key had been started.")
        start = self._windows.pop(key)
        end = self._sample()
        deltas = {name: (value - start[name][0], unit) for name, (value, unit) in end.items() if name in start}
        return metrics_of(deltas)


class FakeZeusAppleSilicon:
    """A `zeus_apple_silicon`-like module object over scripted IOReport channels."""

    AppleEnergyMetrics = AppleEnergyMetrics

    def __init__(self, channels: Mapping[str, tuple[int, str]] | None = None, *, subscribe_fails: bool = False) -> None:
        self.channels: dict[str, tuple[int, str]] = dict(channels or {})
        self.subscribe_fails = subscribe_fails
        self.fail_reads = 0  # the next this many reads raise RuntimeError, as a failed IOReport sample does
        self.monitors = 0
        self.reads = 0

    def AppleEnergyMonitor(self) -> FakeAppleEnergyMonitor:  # the module's class, called to construct
        if self.subscribe_fails:
            raise RuntimeError("Failed to create IOReport subscription.")
        self.monitors += 1
        return FakeAppleEnergyMonitor(self)

    def add(self, channel: str, amount: int) -> None:
        """Advance one channel's raw counter by `amount` in its own unit (negative: a reset)."""
        value, unit = self.channels[channel]
        self.channels[channel] = (value + amount, unit)


def m1() -> dict[str, tuple[int, str]]:
    """An M1 (MacBook Air): E and P cores named ECPU<n>/PCPU<n>, no DRAM channel (as on some M1 Macs)."""
    channels: dict[str, tuple[int, str]] = {f"ECPU{i}": (1_000 * (i + 1), "mJ") for i in range(4)}
    channels |= {f"PCPU{i}": (2_000 * (i + 1), "mJ") for i in range(4)}
    channels |= {"ECPU": (11_000, "mJ"), "PCPU": (21_000, "mJ"), "ECPM": (500, "mJ"), "PCPM": (700, "mJ")}
    channels |= {"CPU Energy": (40_000, "mJ"), "GPU Energy": (9_000_000_000, "nJ"), "ANE": (300, "mJ")}
    channels |= {"ISP": (50, "mJ"), "AVE": (40, "mJ")}  # other blocks: ignored
    return channels


def m1_max() -> dict[str, tuple[int, str]]:
    """An M1 Max: EACC_CPU<n> and PACC<k>_CPU<n> cores, DRAM0, GPU SRAM0 and ANE0 channels."""
    channels: dict[str, tuple[int, str]] = {f"EACC_CPU{i}": (1_000, "mJ") for i in range(2)}
    channels |= {f"PACC{k}_CPU{i}": (3_000, "mJ") for k in range(2) for i in range(4)}
    channels |= {"EACC_CPU": (2_500, "mJ"), "PACC0_CPU": (13_000, "mJ"), "PACC1_CPU": (13_000, "mJ")}
    channels |= {"EACC_CPM": (100, "mJ"), "PACC0_CPM": (200, "mJ"), "PACC1_CPM": (200, "mJ")}
    channels |= {"CPU Energy": (30_000, "mJ"), "GPU Energy": (12_000_000_000, "nJ"), "GPU SRAM0": (800, "mJ")}
    channels |= {"ANE0": (1_000, "mJ"), "DRAM0": (5_000, "mJ")}
    return channels


def m1_ultra() -> dict[str, tuple[int, str]]:
    """An M1 Ultra: two dies, CPU channels prefixed DIE_0_ / DIE_1_, ANE and DRAM suffixed per die."""
    channels: dict[str, tuple[int, str]] = {"DIE_0_CPU Energy": (20_000, "mJ"), "DIE_1_CPU Energy": (15_000, "mJ")}
    channels |= {"ANE0_0": (0, "mJ"), "ANE0_1": (0, "mJ"), "DRAM0_0": (4_000, "mJ"), "DRAM0_1": (3_000, "mJ")}
    channels |= {"GPU Energy": (5_000_000_000, "nJ"), "GPU0_0": (10, "mJ"), "GPU SRAM0_0": (90, "mJ")}
    return channels
