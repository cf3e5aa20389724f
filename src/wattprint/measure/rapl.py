"""CPU package and DRAM energy from RAPL counters in the Linux powercap tree.

The kernel's `intel_rapl_msr` driver registers the powercap control type "intel-rapl" on Intel
and on AMD (Zen, since Linux 5.8), so AMD machines also show `intel-rapl:N` zones; the prefix
`amd-rapl` is accepted too for kernels or tools that name zones that way. `intel-rapl-mmio:N`
zones are not read: they mirror the MSR package zone and would count it twice.

Layout under /sys/class/powercap (every entry is a symlink into /sys/devices/virtual/powercap):
    intel-rapl:0/            name=package-0, energy_uj, max_energy_range_uj
    intel-rapl:0/intel-rapl:0:0/   name=core   (also linked as intel-rapl:0:0 at the top)
    intel-rapl:0/intel-rapl:0:1/   name=dram
    intel-rapl:1/            name=psys (client parts)
Zones are found both nested and at the top level and de-duplicated by zone id and resolved path.

Counters are microjoules that wrap at max_energy_range_uj (a 32-bit register: about a minute at
a few hundred watts), so each read takes the delta to the previous raw value and accumulates.
Reads must therefore come more often than one wrap period; the monitor reads every second.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wattprint.errors import PowerSourceError
from wattprint.measure.base import Component, Domain, Reading
from wattprint.units import UJ_PER_J

DEFAULT_ROOT = "/sys/class/powercap"
RAPLD_SOCKET = "/run/wattprint/rapld.sock"  # where `wattprint rapld` serves these counters to non-root users
ZONE_PREFIXES: tuple[str, ...] = ("intel-rapl", "amd-rapl")
# Zone ids are "<control type>:<id>[:<sub id>]"; the kernel formats ids with %x.
_ZONE_RE = re.compile(r"^(intel-rapl|amd-rapl):([0-9a-f]+(?::[0-9a-f]+)*)$")
_READ_SIZE = 64  # a counter is at most 20 digits and a newline


@dataclass
class _Zone:
    """One opened RAPL zone and its integration state."""

    zone_id: str  # directory name, e.g. "intel-rapl:0:1"
    path: Path
    domain: Domain
    max_range_uj: int
    fd: int
    last_raw: int
    total_uj: int = 0

    @property
    def energy_path(self) -> Path:
        return self.path / "energy_uj"


def _zone_sort_key(zone_id: str) -> tuple[str, tuple[int, ...]]:
    prefix, _, ids = zone_id.partition(":")
    return prefix, tuple(int(part, 16) for part in ids.split(":"))


def find_zones(root: str | Path = DEFAULT_ROOT) -> list[tuple[str, Path]]:
    """(zone id, directory) of every RAPL zone under `root`, each zone once, parents first.

    Looks at the top level of `root`, inside control-type directories (`root/intel-rapl/`) and
    inside every zone (sub-zones), so it works on /sys/class/powercap and on
    /sys/devices/virtual/powercap alike.
    """
    base = Path(root)
    found: dict[str, Path] = {}
    resolved_seen: set[str] = set()
    # Breadth first from the top, so a zone is known by its shortest path (the top-level link).
    pending = deque([base] + [base / prefix for prefix in ZONE_PREFIXES])
    while pending:
        directory = pending.popleft()
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if not _ZONE_RE.match(entry.name) or entry.name in found:
                continue
            try:
                if not entry.is_dir():  # follows symlinks, as /sys/class/powercap is all links
                    continue
                resolved = os.path.realpath(entry.path)
            except OSError:
                continue
            if resolved in resolved_seen:
                continue
            resolved_seen.add(resolved)
            found[entry.name] = Path(entry.path)
            pending.append(Path(entry.path))
    return [(zone_id, found[zone_id]) for zone_id in sorted(found, key=_zone_sort_key)]


def classify(zone_name: str) -> tuple[Component, bool]:
    """Component and `counted` flag of a zone from its `name` file.

    package-N counts for the CPU and dram for RAM; core and uncore (the integrated GPU) lie
    inside their package and psys is the whole platform, so they are detail only.
    """
    name = zone_name.strip().lower()
    if name.startswith("package"):
        return "cpu", True
    if name == "dram":
        return "ram", True
    return "cpu", False  # core, uncore, psys and anything unknown: reported, never summed


def _parse_counter(data: bytes, path: Path) -> int:
    try:
        return int(data)
    except ValueError:
        raise PowerSourceError(f"{path}: not a counter value: {data[:40]!r}") from None


def _close_fd(fd: int) -> None:
    """Close a descriptor that may already be gone; there is nothing left to release then."""
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read().strip()


def _permission_message(path: Path, root: Path, zone_id: str) -> str:
    prefix = zone_id.partition(":")[0]
    return (
        f"cannot read {path}: permission denied (RAPL counters are root-only since Linux 5.10); "
        f"run as root or `sudo chmod o+r {root}/{prefix}:*/energy_uj`"
    )


class RaplSource:
    """Measured energy of every RAPL zone, in joules since the source was opened."""

    name = "rapl"

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self._zones: list[_Zone] = []
        self._closed = False
        zones = find_zones(self.root)
        names: dict[str, str] = {}  # zone id -> its `name` file, for sub-zone domain names
        try:
            for zone_id, path in zones:
                zone = self._open_zone(zone_id, path, names)
                if zone is not None:
                    self._zones.append(zone)
        except BaseException:  # Ctrl-C too: close the counters opened so far; re-raised
            self.close()
            raise
        if not self._zones:
            raise PowerSourceError(f"no RAPL zones under {self.root}", reason="absent")
        self._domains = tuple(zone.domain for zone in self._zones)

    def _open_zone(self, zone_id: str, path: Path, names: dict[str, str]) -> _Zone | None:
        """Open one zone's counter and take its first raw value; None if it has no counter."""
        try:
            zone_name = _read_text(path / "name")
        except OSError:
            return None
        names[zone_id] = zone_name
        energy_path = path / "energy_uj"
        if not energy_path.exists():
            return None
        range_path = path / "max_energy_range_uj"
        try:
            max_range = int(_read_text(range_path))
        except (OSError, ValueError) as exc:
            raise PowerSourceError(f"cannot read {range_path}: {exc}") from None
        fd = -1
        try:
            fd = os.open(energy_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            raw = _parse_counter(os.pread(fd, _READ_SIZE, 0), energy_path)
        except PermissionError:
            _close_fd(fd)
            raise PowerSourceError(
                _permission_message(energy_path, self.root, zone_id),
                reason="permission",
                fix=f"sudo chmod o+r {self.root}/{zone_id.partition(':')[0]}:*/energy_uj (again after each boot, "
                "or as a udev rule), or run as root",
            ) from None
        except OSError as exc:
            _close_fd(fd)
            raise PowerSourceError(f"cannot read {energy_path}: {exc.strerror or exc}") from None
        except PowerSourceError:
            _close_fd(fd)
            raise
        return _Zone(zone_id, path, self._domain(zone_id, zone_name, names), max_range, fd, raw)

    def _domain(self, zone_id: str, zone_name: str, names: dict[str, str]) -> Domain:
        """The domain of a zone, named by its own and its parents' `name` files: "rapl:package-0/dram"."""
        component, counted = classify(zone_name)
        parent_id = zone_id.rpartition(":")[0]
        parts = [zone_name]
        while ":" in parent_id and parent_id in names:  # "intel-rapl" alone is not a zone
            parts.insert(0, names[parent_id])
            parent_id = parent_id.rpartition(":")[0]
        domain_name = "rapl:" + "/".join(parts)
        if any(zone.domain.name == domain_name for zone in self._zones):
            domain_name = f"{domain_name}@{zone_id}"  # two zones with one name: keep both apart
        return Domain(domain_name, component, "measured", counted)

    def domains(self) -> Sequence[Domain]:
        """One domain per zone: "rapl:package-0", "rapl:package-0/dram", "rapl:psys", ..."""
        return self._domains

    def detail(self) -> str:
        """One line for the record: what is measured and how."""
        return "RAPL energy counters"

    def zone_paths(self) -> dict[str, str]:
        """Domain name -> zone directory, for diagnostics."""
        return {zone.domain.name: str(zone.path) for zone in self._zones}

    def _read_raw(self, zone: _Zone) -> int:
        """Current raw counter; re-opens the file once if the kept-open descriptor fails."""
        try:
            data = os.pread(zone.fd, _READ_SIZE, 0)
        except OSError:
            _close_fd(zone.fd)
            zone.fd = -1
            zone.fd = os.open(zone.energy_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            data = os.pread(zone.fd, _READ_SIZE, 0)
        return _parse_counter(data, zone.energy_path)

    def _read_raws(self) -> list[int]:
        """Every zone's raw counter now, in zone order."""
        return [self._read_raw(zone) for zone in self._zones]

    def read(self) -> Reading:
        """Cumulative joules per zone since open. A failed counter read raises OSError.

        Nothing is updated unless every zone was read, so a failed read loses no energy: the
        next good read takes the whole delta since the last good one.
        """
        if self._closed:
            raise PowerSourceError("RAPL source is closed")
        raws = self._read_raws()
        timestamp = time.monotonic()
        deltas: list[int] = []
        for zone, raw in zip(self._zones, raws, strict=True):
            delta = raw - zone.last_raw
            if delta < 0:  # wrapped around
                delta += zone.max_range_uj
            if delta < 0:
                raise PowerSourceError(
                    f"{zone.energy_path}: counter went from {zone.last_raw} to {raw}, "
                    f"beyond its range {zone.max_range_uj}"
                )
            deltas.append(delta)
        energy: dict[str, float] = {}
        for zone, raw, delta in zip(self._zones, raws, deltas, strict=True):
            zone.last_raw = raw
            zone.total_uj += delta
            energy[zone.domain.name] = zone.total_uj / UJ_PER_J
        return Reading(timestamp, energy)

    def close(self) -> None:
        """Close the counter files. Safe to call twice."""
        self._closed = True
        for zone in self._zones:
            _close_fd(zone.fd)
            zone.fd = -1


def available(root: str | Path = DEFAULT_ROOT) -> bool:
    """Whether at least one RAPL zone under `root` has a readable counter. Never raises."""
    try:
        for _, path in find_zones(root):
            try:
                with open(path / "energy_uj", "rb") as handle:
                    int(handle.read(_READ_SIZE))
                return True
            except (OSError, ValueError):
                continue
    except Exception:  # never raises: any fault means no RAPL
        return False
    return False
