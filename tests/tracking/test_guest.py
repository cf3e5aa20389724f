"""A virtual machine is charged its vCPUs' share of the host, for power and for embodied emissions, and the record
says by which rule. The host is faked (a Virtualization description); the job, the sampler and the store are real."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tracking.test_tracker import busy
from wattprint.accounting.embodied import SECONDS_PER_YEAR
from wattprint.measure.detect import detect_sources
from wattprint.measure.virt import Virtualization
from wattprint.record import RunRecord
from wattprint.tracking.tracker import Tracker

GUEST = Virtualization(
    True, "kvm (aws nitro)", "aws", "m5.large", ("CPU flag 'hypervisor'", "DMI sys_vendor 'Amazon EC2'")
)
PHYSICAL = Virtualization(False)


def _run(tmp_path: Path, virt: Virtualization, **detect: object) -> RunRecord:
    choice = detect_sources(powercap_root=str(tmp_path / "no-powercap"), virtualization=virt, **detect)  # type: ignore[arg-type]
    t = Tracker("vm", interval=0.05, region="FR", sources=choice).start()
    busy(0.6)  # the same CPU work in each run
    return t.stop()


def test_a_small_guest_is_charged_its_vcpus_share_not_a_server(tmp_path: Path, wattprint_env: Path) -> None:
    rec = _run(tmp_path, GUEST)
    guest = rec.hardware["guest"]
    assert guest["vcpus"] == 2 and guest["host_vcpus"] == 96 and guest["host_share"] == pytest.approx(2 / 96)
    assert guest["instance_type"] == "aws:m5.large" and guest["host_embodied_kg"] == pytest.approx(1610.79)
    assert rec.hardware["cpu_power_rule"] == "vcpu"
    # power: 2 vCPUs between CCF's Skylake idle and full-load watts, whatever the utilisation was
    detail = rec.methods["cpu"]["detail"]
    assert "2 vCPUs x 0.61-4.10 W per vCPU (Skylake" in detail and "CPU flag 'hypervisor'" in detail
    watts = rec.machine_energy_kwh.cpu * 3.6e6 / rec.duration_s
    assert 2 * 0.613 * 0.9 <= watts <= 2 * 4.1042 * 1.1
    # embodied: the host platform's figure x what the run holds of the VM x the VM's share of the host
    held = rec.attribution["host_share"] / (2 / 96)
    assert 0 < held <= 1
    assert "2 of 96 host vCPUs (host of aws m5.large" in rec.attribution["host_share_rule"]
    lifetime_s = 4 * SECONDS_PER_YEAR
    expected = 1610.79 * rec.duration_s / lifetime_s * rec.attribution["host_share"]
    assert rec.co2e_kg.embodied == pytest.approx(expected, rel=1e-9)
    assert rec.embodied_note.startswith("host of aws:m5.large x")


def test_the_same_job_on_a_physical_machine_is_charged_by_tdp_and_the_server(
    tmp_path: Path, wattprint_env: Path
) -> None:
    vm, metal = _run(tmp_path, GUEST), _run(tmp_path, PHYSICAL)
    assert "guest" not in metal.hardware and metal.hardware["cpu_power_rule"] == "tdp"
    assert "TDP" in metal.methods["cpu"]["detail"]
    assert metal.attribution["host_share_rule"] == "its share of CPU capacity of this physical machine"
    per_second = {}
    for r in (vm, metal):  # per second, per unit of this machine's CPU capacity the run held
        held = r.attribution["host_share"] / (r.hardware["guest"]["host_share"] if "guest" in r.hardware else 1.0)
        per_second[r.hardware["cpu_power_rule"]] = r.co2e_kg.embodied / r.duration_s / held
    # m5's host platform x 2/96 of it, against the whole generic 900 kg server
    assert per_second["vcpu"] / per_second["tdp"] == pytest.approx(1610.79 * 2 / 96 / 900, rel=1e-6)
    # the TDP model charges the host's socket power for the same work: far more than two vCPUs draw
    assert metal.machine_energy_kwh.cpu / metal.duration_s > 3 * vm.machine_energy_kwh.cpu / vm.duration_s


def test_an_unknown_guest_uses_the_median_host_and_the_settings_override(tmp_path: Path, wattprint_env: Path) -> None:
    unknown = Virtualization(True, evidence=("CPU flag 'hypervisor'",))
    rec = _run(tmp_path, unknown)
    guest = rec.hardware["guest"]
    assert guest["instance_type"] is None and "median host" in guest["host_rule"]
    assert "WATTPRINT_INSTANCE_TYPE" in guest["sharpen"]
    assert rec.embodied_note.startswith("server x")  # the generic server, at the VM's share of it
    sized = _run(tmp_path, unknown, host_vcpus=guest["vcpus"] * 4)
    assert (
        sized.hardware["guest"]["host_share"] == 0.25 and "WATTPRINT_HOST_VCPUS" in sized.attribution["host_share_rule"]
    )
    forced = _run(tmp_path, unknown, virtual="host")  # the user says: charge this as a whole machine
    assert "guest" not in forced.hardware and forced.hardware["cpu_power_rule"] == "tdp"
    assert forced.hardware["virtualization"]["guest"] is True  # what was detected stays on the record


def test_an_instance_type_newer_than_the_table_says_what_would_help(tmp_path: Path) -> None:
    newer = Virtualization(True, "kvm (aws nitro)", "aws", "m99.large", ("CPU flag 'hypervisor'",))
    choice = detect_sources(powercap_root=str(tmp_path / "none"), virtualization=newer)
    assert "'m99.large' (DMI product_name) not in the bundled table" in choice.hardware["virtualization"]["note"]
    guest = choice.hardware["guest"]
    assert guest["instance_type"] is None and "median host" in guest["host_rule"]
    assert "WATTPRINT_HOST_VCPUS" in guest["sharpen"] and "WATTPRINT_INSTANCE_TYPE" not in guest["sharpen"]


def test_a_named_type_of_another_cloud_and_a_bare_metal_type(tmp_path: Path) -> None:
    on_aws = Virtualization(True, "kvm (aws nitro)", "aws", None, ("CPU flag 'hypervisor'",))
    named = detect_sources(
        powercap_root=str(tmp_path / "none"), virtualization=on_aws, instance_type="gcp:n2-standard-4"
    )
    assert (
        named.hardware["guest"]["instance_type"] == "gcp:n2-standard-4" and named.hardware["guest"]["host_vcpus"] == 128
    )
    metal = Virtualization(False, None, "aws", None, ())
    hinted = detect_sources(
        powercap_root=str(tmp_path / "none"),
        virtualization=metal,
        instance_type="aws:m5.metal",
        instance_type_source="cloud metadata service",
    )
    assert "guest" not in hinted.hardware and hinted.hardware["cpu_power_rule"] == "tdp"  # a whole machine


def test_a_gpu_job_holds_at_least_its_gpus_share_of_the_server() -> None:
    from wattprint.tracking.carbon import host_share

    server = {"gpus": [{"index": i, "name": "NVIDIA H100"} for i in range(8)]}
    share, rule = host_share(server, "process", 1 / 64, gpus_used=1)  # one busy core of 64, one GPU of 8
    assert share == pytest.approx(1 / 8) and "its GPUs' share of the machine's (1 of 8)" in rule
    busy, rule = host_share(server, "process", 0.5, gpus_used=1)  # the CPU share is larger: it stands
    assert busy == 0.5 and rule == "its share of CPU capacity of this physical machine"
    assert host_share(server, "machine", 0.1, gpus_used=1)[0] == 1.0
    assert host_share({}, "process", 1 / 64)[0] == pytest.approx(1 / 64)  # no GPU: the CPU share alone
