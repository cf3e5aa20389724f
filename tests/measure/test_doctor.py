"""`wattprint doctor`: the source each component will use, why, and the fix: on this machine, on fake
powercap trees (readable, and root-only as seen by `nobody`) and on a fake NVML."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.measure.fake_nvml import NVML_ERROR_DRIVER_NOT_LOADED, FakeGpu, FakeNvml
from tests.measure.test_rapl import build_tree
from tests.measure.unprivileged import as_unprivileged
from wattprint.measure.doctor import diagnose

KEYS = {"source", "method", "reason", "fix"}


def test_cli_json_on_this_machine_names_each_source_with_its_reason(wattprint_cmd: list[str]) -> None:
    proc = subprocess.run([*wattprint_cmd, "doctor", "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    components = doc["components"]
    assert set(components) == {"cpu", "ram", "gpu"} and all(set(c) == KEYS for c in components.values())
    rapl = Path("/sys/class/powercap")
    readable = any(os.access(p, os.R_OK) for p in rapl.glob("intel-rapl:*/energy_uj"))
    if readable:  # a machine with readable RAPL: measured, nothing to fix
        assert components["cpu"] == {**components["cpu"], "source": "rapl", "method": "measured", "fix": None}
    else:  # this project's VMs: no powercap tree, so the model, saying so
        cpu = components["cpu"]
        assert (cpu["source"], cpu["method"]) == ("model", "estimated")
        rule = doc["hardware"]["cpu_power_rule"]  # a VM's vCPUs, or a physical machine's TDP
        assert rule == ("vcpu" if doc["hardware"]["virtualization"]["guest"] else "tdp")
        assert "RAPL" in cpu["reason"] and ("vCPU" if rule == "vcpu" else "TDP") in cpu["reason"] and cpu["fix"]
        assert (components["ram"]["source"], components["ram"]["method"]) == ("model", "estimated")
    if not any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0")):
        gpu = components["gpu"]
        assert gpu["source"] is None and gpu["method"] is None and "no NVIDIA driver" in gpu["reason"]
        assert gpu["fix"] is None  # no GPU: nothing to turn into a measurement
    table = subprocess.run([*wattprint_cmd, "doctor"], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "wattprint doctor" in table.stdout


def test_a_readable_powercap_tree_is_measured(tmp_path: Path) -> None:
    doc = diagnose(powercap_root=str(build_tree(tmp_path)), nvml_module=FakeNvml([FakeGpu()]))
    cpu, ram, gpu = (doc["components"][c] for c in ("cpu", "ram", "gpu"))
    assert (cpu["source"], cpu["method"], cpu["fix"]) == ("rapl", "measured", None)
    assert (ram["source"], ram["method"], ram["fix"]) == ("rapl", "measured", None)
    assert (gpu["source"], gpu["method"], gpu["fix"]) == ("nvml", "measured", None)
    assert doc["hardware"]["gpus"]


def test_a_package_zone_without_dram_leaves_ram_to_the_model(tmp_path: Path) -> None:
    zones = {"{p}:0": ("package-0", 1_000, 262_143_328_850)}
    doc = diagnose(powercap_root=str(build_tree(tmp_path, zones)), nvml_module=FakeNvml([]))
    ram = doc["components"]["ram"]
    assert (ram["source"], ram["method"]) == ("model", "estimated") and "no DRAM zone" in ram["reason"]
    assert doc["components"]["cpu"]["method"] == "measured"
    assert "NVML sees no GPU" in doc["components"]["gpu"]["reason"]


def test_a_driver_that_does_not_load_gets_a_fix() -> None:
    doc = diagnose(powercap_root="/nonexistent", nvml_module=FakeNvml(init_error=NVML_ERROR_DRIVER_NOT_LOADED))
    gpu = doc["components"]["gpu"]
    assert gpu["method"] is None and "NVML could not start" in gpu["reason"] and "nvidia-smi" in gpu["fix"]


@pytest.fixture
def shared_tree() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="wattprint-doctor-"))  # traversable by nobody, unlike tmp_path
    try:
        base.chmod(0o755)
        yield build_tree(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_root_only_counters_get_the_chmod_fix(shared_tree: Path) -> None:
    for energy in shared_tree.resolve().parent.parent.rglob("energy_uj"):
        # what Linux >= 5.10 does (0400, root's); a non-root owner would still read that, so none at all
        energy.chmod(0o400 if os.geteuid() == 0 else 0o000)
    doc = json.loads(as_unprivileged(lambda: json.dumps(diagnose(powercap_root=str(shared_tree)))))
    cpu = doc["components"]["cpu"]
    assert (cpu["source"], cpu["method"]) == ("model", "estimated")
    assert "permission denied" in cpu["reason"]
    assert cpu["fix"].startswith(f"sudo chmod o+r {shared_tree}/intel-rapl:*/energy_uj")
