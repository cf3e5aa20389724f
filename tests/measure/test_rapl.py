"""RaplSource against fake powercap trees laid out like the kernel's.

The "sysfs" layout copies a real machine: zones are nested directories under
devices/virtual/powercap/intel-rapl/, and class/powercap/ holds one symlink per zone (sub-zones
included) plus one for the control type. The "flat" layout has real package directories at the
top with symlinks for the sub-zones only. Both must give the same six domains.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.measure.unprivileged import as_unprivileged
from wattprint.errors import PowerSourceError
from wattprint.measure import rapl
from wattprint.measure.rapl import RaplSource

PKG_RANGE = 262_143_328_850  # max_energy_range_uj of a real Intel package zone
DRAM_RANGE = 65_712_999_613

# zone path below the control type -> (name, energy_uj, max_energy_range_uj)
TWO_SOCKETS: dict[str, tuple[str, int, int]] = {
    "{p}:0": ("package-0", 1_000_000, PKG_RANGE),
    "{p}:0/{p}:0:0": ("core", 500_000, PKG_RANGE),
    "{p}:0/{p}:0:1": ("dram", 200_000, DRAM_RANGE),
    "{p}:1": ("package-1", 2_000_000, PKG_RANGE),
    "{p}:1/{p}:1:0": ("core", 700_000, PKG_RANGE),
    "{p}:1/{p}:1:1": ("dram", 300_000, DRAM_RANGE),
}
DOMAINS = [
    ("rapl:package-0", "cpu", True),
    ("rapl:package-0/core", "cpu", False),
    ("rapl:package-0/dram", "ram", True),
    ("rapl:package-1", "cpu", True),
    ("rapl:package-1/core", "cpu", False),
    ("rapl:package-1/dram", "ram", True),
]


def write_zone(directory: Path, name: str, energy_uj: int, max_range_uj: int) -> None:
    """The files the kernel puts in a RAPL zone that the source reads (and `enabled`)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "name").write_text(f"{name}\n")
    (directory / "energy_uj").write_text(f"{energy_uj}\n")
    (directory / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    (directory / "enabled").write_text("1\n")


def build_tree(
    base: Path,
    zones: dict[str, tuple[str, int, int]] = TWO_SOCKETS,
    prefix: str = "intel-rapl",
    layout: str = "sysfs",
) -> Path:
    """A powercap tree under `base`; returns the directory that plays /sys/class/powercap."""
    if layout == "sysfs":
        control = base / "devices" / "virtual" / "powercap" / prefix
        control.mkdir(parents=True)
        (control / "enabled").write_text("1\n")
        for rel, spec in zones.items():
            write_zone(control / rel.format(p=prefix), *spec)
        klass = base / "class" / "powercap"
        klass.mkdir(parents=True)
        (klass / prefix).symlink_to(os.path.relpath(control, klass))
        for rel in zones:
            zone_dir = control / rel.format(p=prefix)
            (klass / zone_dir.name).symlink_to(os.path.relpath(zone_dir, klass))
        return klass
    root = base / "powercap"
    root.mkdir(parents=True)
    for rel, spec in zones.items():
        write_zone(root / rel.format(p=prefix), *spec)
    for rel in zones:
        rel_path = Path(rel.format(p=prefix))
        if len(rel_path.parts) > 1:
            (root / rel_path.name).symlink_to(rel_path)
    return root


def set_energy(root: Path, zone_id: str, energy_uj: int) -> None:
    """Move a zone's counter; rewrites the file in place, as the kernel's value changes."""
    (root / zone_id / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


# -- discovery -------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["sysfs", "flat"])
def test_discovers_each_zone_once_with_components(tmp_path: Path, layout: str) -> None:
    root = build_tree(tmp_path, layout=layout)
    source = RaplSource(root)
    try:
        assert source.name == "rapl"
        assert [(d.name, d.component, d.counted) for d in source.domains()] == DOMAINS
        assert {d.method for d in source.domains()} == {"measured"}
    finally:
        source.close()


def test_control_type_directory_as_root_gives_the_same_zones(tmp_path: Path) -> None:
    build_tree(tmp_path)
    source = RaplSource(tmp_path / "devices" / "virtual" / "powercap" / "intel-rapl")
    try:
        assert [d.name for d in source.domains()] == [name for name, _, _ in DOMAINS]
    finally:
        source.close()


def test_psys_uncore_are_detail_and_mmio_mirror_is_ignored(tmp_path: Path) -> None:
    zones = {
        "{p}:0": ("package-0", 10, PKG_RANGE),
        "{p}:0/{p}:0:0": ("core", 10, PKG_RANGE),
        "{p}:0/{p}:0:1": ("uncore", 10, PKG_RANGE),
        "{p}:1": ("psys", 10, PKG_RANGE),
    }
    root = build_tree(tmp_path, zones)
    write_zone(root / "intel-rapl-mmio:0", "package-0", 10, PKG_RANGE)  # MMIO copy of package-0
    with_source = RaplSource(root)
    try:
        assert [(d.name, d.component, d.counted) for d in with_source.domains()] == [
            ("rapl:package-0", "cpu", True),
            ("rapl:package-0/core", "cpu", False),
            ("rapl:package-0/uncore", "cpu", False),
            ("rapl:psys", "cpu", False),
        ]
    finally:
        with_source.close()


def test_amd_prefix(tmp_path: Path) -> None:
    # Mainline kernels register AMD's RAPL under "intel-rapl" too; "amd-rapl" names are accepted.
    root = build_tree(tmp_path, prefix="amd-rapl")
    source = RaplSource(root)
    try:
        assert [(d.name, d.component, d.counted) for d in source.domains()] == DOMAINS
        set_energy(root, "amd-rapl:0", 1_000_000 + 42_000_000)
        source.read()
        assert source.read().energy_j["rapl:package-0"] == pytest.approx(42.0)
    finally:
        source.close()


@pytest.mark.parametrize("make_root", ["empty", "missing", "control-type only"])
def test_no_zones(tmp_path: Path, make_root: str) -> None:
    root = tmp_path / "powercap"
    if make_root != "missing":
        root.mkdir()
    if make_root == "control-type only":  # what a VM without RAPL often shows
        (root / "intel-rapl").mkdir()
        (root / "intel-rapl" / "enabled").write_text("0\n")
    with pytest.raises(PowerSourceError, match="no RAPL zones under"):
        RaplSource(root)
    assert rapl.available(root) is False


def test_available(tree: Path) -> None:
    assert rapl.available(tree) is True


# -- energy ------------------------------------------------------------------------------------------
def test_energy_is_cumulative_from_open(tree: Path) -> None:
    source = RaplSource(tree)
    try:
        first = source.read()
        assert dict(first.energy_j) == {name: 0.0 for name, _, _ in DOMAINS}
        set_energy(tree, "intel-rapl:0", 1_000_000 + 3_500_000)
        set_energy(tree, "intel-rapl:0:1", 200_000 + 250_000)
        set_energy(tree, "intel-rapl:1", 2_000_000 + 12_000_001)
        second = source.read()
        assert second.energy_j["rapl:package-0"] == pytest.approx(3.5)
        assert second.energy_j["rapl:package-0/dram"] == pytest.approx(0.25)
        assert second.energy_j["rapl:package-0/core"] == 0.0
        assert second.energy_j["rapl:package-1"] == pytest.approx(12.000001)
        set_energy(tree, "intel-rapl:0", 1_000_000 + 3_500_000 + 1_500_000)
        third = source.read()
        assert third.energy_j["rapl:package-0"] == pytest.approx(5.0)  # 3.5 + 1.5
        assert third.energy_j["rapl:package-1"] == pytest.approx(12.000001)
        assert first.timestamp <= second.timestamp <= third.timestamp
    finally:
        source.close()


def test_wrap_around(tree: Path) -> None:
    set_energy(tree, "intel-rapl:0", PKG_RANGE - 1_000_000)
    set_energy(tree, "intel-rapl:0:1", DRAM_RANGE - 10)
    source = RaplSource(tree)
    try:
        assert source.read().energy_j["rapl:package-0"] == 0.0
        set_energy(tree, "intel-rapl:0", 2_000_000)  # wrapped: 1 J to the top, then 2 J
        set_energy(tree, "intel-rapl:0:1", 90)  # 10 uJ to the top, then 90 uJ
        reading = source.read()
        assert reading.energy_j["rapl:package-0"] == pytest.approx(3.0)
        assert reading.energy_j["rapl:package-0/dram"] == pytest.approx(100e-6)
        set_energy(tree, "intel-rapl:0", 2_500_000)
        assert source.read().energy_j["rapl:package-0"] == pytest.approx(3.5)
    finally:
        source.close()


def test_counter_beyond_its_range_raises_and_changes_nothing(tmp_path: Path) -> None:
    zones = {"{p}:0": ("package-0", 5_000, 0), "{p}:1": ("package-1", 5_000, PKG_RANGE)}
    root = build_tree(tmp_path, zones)
    source = RaplSource(root)
    try:
        set_energy(root, "intel-rapl:1", 6_000)
        set_energy(root, "intel-rapl:0", 4_000)  # went back, and no range to wrap in
        with pytest.raises(PowerSourceError, match="beyond its range"):
            source.read()
        set_energy(root, "intel-rapl:0", 7_000)
        reading = source.read()
        assert reading.energy_j["rapl:package-0"] == pytest.approx(0.002)
        assert reading.energy_j["rapl:package-1"] == pytest.approx(0.001)
    finally:
        source.close()


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


def test_failed_read_raises_then_recovers_with_the_whole_delta(tree: Path) -> None:
    energy = tree / "intel-rapl:0" / "energy_uj"
    source = RaplSource(tree)
    try:
        source.read()
        # The zone disappears (driver unloaded): its kept-open descriptor dies and the file goes.
        (fd,) = _open_fds_to(energy)
        os.close(fd)
        moved = energy.with_name("energy_uj.gone")
        energy.resolve().rename(moved.resolve())
        with pytest.raises(OSError):
            source.read()
        # It comes back: the source re-opens the file and counts everything since the last read.
        moved.resolve().rename(energy.resolve())
        set_energy(tree, "intel-rapl:0", 1_000_000 + 4_000_000)
        assert source.read().energy_j["rapl:package-0"] == pytest.approx(4.0)
    finally:
        source.close()


def test_close_releases_files_and_is_idempotent(tree: Path) -> None:
    source = RaplSource(tree)
    assert _open_fds_to(tree / "intel-rapl:0" / "energy_uj")
    source.close()
    source.close()
    assert _open_fds_to(tree / "intel-rapl:0" / "energy_uj") == []
    with pytest.raises(PowerSourceError, match="closed"):
        source.read()


# -- permissions -------------------------------------------------------------------------------------
@pytest.fixture
def shared_tree() -> Iterator[Path]:
    """A tree an unprivileged user can traverse (pytest's tmp_path is private to its owner)."""
    base = Path(tempfile.mkdtemp(prefix="wattprint-rapl-"))
    try:
        base.chmod(0o755)
        yield build_tree(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _open_as_unprivileged(root: Path) -> str:
    """RaplSource(root) and rapl.available(root) as this user, or as `nobody` when we are root."""
    return as_unprivileged(lambda: _attempt(root))


def _attempt(root: Path) -> str:
    outcome = f"available={rapl.available(root)}\n"
    try:
        RaplSource(root).close()
        return outcome + "opened"
    except PowerSourceError as exc:
        return outcome + f"PowerSourceError: {exc}"
    except Exception as exc:
        return outcome + f"{type(exc).__name__}: {exc}"


def test_root_only_counter_raises_a_clear_error_at_open(shared_tree: Path) -> None:
    energy = shared_tree / "intel-rapl:0:1" / "energy_uj"
    energy.resolve().chmod(0o400)  # what Linux >= 5.10 does to every RAPL energy_uj
    outcome = _open_as_unprivileged(shared_tree)
    assert "PowerSourceError: cannot read" in outcome
    assert str(energy) in outcome
    assert "permission denied" in outcome
    assert f"sudo chmod o+r {shared_tree}/intel-rapl:*/energy_uj" in outcome
    assert "run as root" in outcome
    assert len(outcome.splitlines()) == 2  # one line for the error
    assert outcome.startswith("available=True")  # the packages themselves are still readable


def test_all_counters_root_only_means_unavailable(shared_tree: Path) -> None:
    for energy in shared_tree.resolve().parent.parent.rglob("energy_uj"):
        energy.chmod(0o400)
    outcome = _open_as_unprivileged(shared_tree)
    assert outcome.startswith("available=False")
    assert "permission denied" in outcome


def test_readable_tree_opens_for_an_unprivileged_user(shared_tree: Path) -> None:
    assert _open_as_unprivileged(shared_tree) == "available=True\nopened"


def test_classify() -> None:
    assert rapl.classify("package-0") == ("cpu", True)
    assert rapl.classify("package-1-die-0\n") == ("cpu", True)
    assert rapl.classify("dram") == ("ram", True)
    for name in ("core", "uncore", "psys", "something-new"):
        assert rapl.classify(name) == ("cpu", False)
