"""Virtual machine detection against faked machines: a cpuinfo file and a DMI tree in a temp dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wattprint.measure.virt import AZURE_ASSET_TAG, Virtualization, detect_virtualization

FLAGS = "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep"


def _machine(root: Path, flags: str | None, **dmi: str) -> tuple[Path, Path]:
    cpuinfo = root / "cpuinfo"
    lines = ["processor\t: 0", "model name\t: Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz"]
    cpuinfo.write_text("\n".join(lines + ([flags] if flags is not None else [])) + "\n")
    dmi_root = root / "dmi"
    dmi_root.mkdir()
    for name, value in dmi.items():
        (dmi_root / name).write_text(value + "\n")
    return cpuinfo, dmi_root


def _detect(
    cpuinfo: Path, dmi: Path, tool: Callable[[], str | None] | None = None, kernel: str = "6.8.0-1019-aws"
) -> Virtualization:
    """Detection on the faked machine, with a kernel release of its own (a WSL one, or not)."""
    osrelease = dmi.parent / "osrelease"
    osrelease.write_text(kernel + "\n")
    return detect_virtualization(cpuinfo, dmi, tool or _no_tool, osrelease)


def _no_tool() -> str | None:
    raise AssertionError("systemd-detect-virt must not run where cpuinfo or DMI answers")


def test_an_aws_nitro_guest_names_its_instance_type(tmp_path: Path) -> None:
    cpuinfo, dmi = _machine(tmp_path, FLAGS + " hypervisor", sys_vendor="Amazon EC2", product_name="m5.large")
    virt = _detect(cpuinfo, dmi)
    assert (virt.guest, virt.cloud, virt.instance_type) == (True, "aws", "m5.large")
    assert virt.evidence == ("CPU flag 'hypervisor'", "DMI sys_vendor 'Amazon EC2'")


def test_an_aws_metal_instance_is_a_whole_machine(tmp_path: Path) -> None:
    cpuinfo, dmi = _machine(tmp_path, FLAGS, sys_vendor="Amazon EC2", product_name="m5.metal")
    virt = _detect(cpuinfo, dmi)
    assert (virt.guest, virt.hypervisor, virt.cloud, virt.instance_type) == (False, None, "aws", "m5.metal")
    assert "m5.metal is a bare-metal instance" in virt.evidence


def test_a_physical_server_is_not_a_guest(tmp_path: Path) -> None:
    cpuinfo, dmi = _machine(tmp_path, FLAGS, sys_vendor="Dell Inc.", product_name="PowerEdge R750")
    virt = _detect(cpuinfo, dmi)
    assert not virt.guest and virt.evidence == () and virt.as_dict()["evidence"] == "no sign of a hypervisor"


@pytest.mark.parametrize(
    ("dmi", "hypervisor", "cloud"),
    [
        ({"sys_vendor": "Google", "product_name": "Google Compute Engine"}, "kvm (google)", "gcp"),
        (
            {
                "sys_vendor": "Microsoft Corporation",
                "product_name": "Virtual Machine",
                "chassis_asset_tag": AZURE_ASSET_TAG,
            },
            "hyper-v",
            "azure",
        ),
        ({"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"}, "kvm", None),
        ({"sys_vendor": "VMware, Inc.", "product_name": "VMware Virtual Platform"}, "vmware", None),
    ],
)
def test_the_dmi_vendor_names_hypervisor_and_cloud(
    tmp_path: Path, dmi: dict[str, str], hypervisor: str, cloud: str | None
) -> None:
    cpuinfo, root = _machine(tmp_path, FLAGS + " hypervisor", **dmi)
    virt = _detect(cpuinfo, root)
    assert (virt.guest, virt.hypervisor, virt.cloud, virt.instance_type) == (True, hypervisor, cloud, None)


def test_the_flag_alone_is_enough(tmp_path: Path) -> None:
    # a container in a VM, as on this project's machines: no DMI readable, the flag says guest
    cpuinfo, dmi = _machine(tmp_path, FLAGS + " hypervisor")
    virt = _detect(cpuinfo, dmi)
    assert virt.guest and virt.hypervisor is None and virt.evidence == ("CPU flag 'hypervisor'",)


def test_systemd_detect_virt_answers_only_where_nothing_else_can(tmp_path: Path) -> None:
    cpuinfo, dmi = _machine(tmp_path, None)  # an ARM guest without DMI: no flags line
    asked: list[bool] = []

    def tool() -> str | None:
        asked.append(True)
        return "kvm"

    virt = _detect(cpuinfo, dmi, tool)
    assert asked == [True] and virt.guest and virt.hypervisor == "kvm"
    assert virt.evidence == ("systemd-detect-virt --vm: kvm",)
    assert not _detect(cpuinfo, dmi, lambda: None).guest


def test_an_unreadable_machine_is_not_a_guest(tmp_path: Path) -> None:
    virt = _detect(tmp_path / "absent", tmp_path / "absent-dmi", lambda: None)
    assert not virt.guest and virt.cloud is None


@pytest.mark.parametrize(
    ("flags", "dmi"),
    [
        (FLAGS, {"sys_vendor": "Microsoft Corporation", "product_name": "Surface Laptop 5"}),  # x86: no flag, physical
        (FLAGS, {"sys_vendor": "Hetzner", "product_name": "AX41"}),  # a dedicated server of a cloud vendor
        (None, {"sys_vendor": "Google", "product_name": "Lazor"}),  # an ARM Chromebook: no flags, not a VM product
    ],
)
def test_a_vendor_that_also_sells_hardware_is_not_taken_for_a_vm(
    tmp_path: Path, flags: str | None, dmi: dict[str, str]
) -> None:
    cpuinfo, root = _machine(tmp_path, flags, **dmi)
    assert not _detect(cpuinfo, root).guest


def test_an_arm_guest_is_known_by_its_vm_only_vendor(tmp_path: Path) -> None:
    cpuinfo, dmi = _machine(tmp_path, None, sys_vendor="Amazon EC2", product_name="m6g.large")
    virt = _detect(cpuinfo, dmi)
    assert (virt.guest, virt.cloud, virt.instance_type) == (True, "aws", "m6g.large")
    (tmp_path / "metal").mkdir()
    cpuinfo, dmi = _machine(tmp_path / "metal", None, sys_vendor="Amazon EC2", product_name="m6g.metal")
    assert not _detect(cpuinfo, dmi).guest


def test_wsl_is_charged_as_the_computer_it_runs_on(tmp_path: Path) -> None:
    cpuinfo, dmi = _machine(tmp_path, FLAGS + " hypervisor")
    virt = _detect(cpuinfo, dmi, kernel="5.15.153.1-microsoft-standard-WSL2")
    assert not virt.guest and "WSL 2" in virt.evidence[0]
