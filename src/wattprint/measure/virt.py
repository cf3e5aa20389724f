"""Is this machine a virtual machine, and on which cloud and instance type: read, never asked over the network.

Evidence, cheapest first: the x86 CPU flag `hypervisor` (set by every hypervisor for its guests, so an x86 machine
whose flags lack it is physical whatever its vendor), the DMI strings the firmware exposes in /sys/class/dmi/id
(vendor, product: AWS puts the instance type there; on ARM, where there are no flags, a VM-only vendor or a virtual
product name), and, only where neither exists, `systemd-detect-virt --vm`. WSL 2 runs in a VM on the very computer
it reports, so it is taken as that computer. Each piece found is listed in `evidence`, for the record.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
DMI_ROOT = Path("/sys/class/dmi/id")
OSRELEASE = Path("/proc/sys/kernel/osrelease")
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"  # the chassis asset tag of every Azure VM

# DMI sys_vendor (a prefix, lower case) -> (hypervisor, cloud, whether the vendor sells virtual machines only)
_VENDORS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("amazon ec2", "kvm (aws nitro)", "aws", True),  # but for *.metal instances
    ("google", "kvm (google)", "gcp", False),  # Chromebooks and Pixel laptops say Google too
    ("microsoft corporation", "hyper-v", None, False),  # Surface laptops too; Azure when the asset tag says so
    ("qemu", "kvm", None, True),
    ("vmware", "vmware", None, True),
    ("xen", "xen", None, True),
    ("innotek", "virtualbox", None, True),
    ("openstack", "kvm (openstack)", None, True),
    ("digitalocean", "kvm", None, True),
    ("hetzner", "kvm", None, False),  # dedicated servers too
    ("alibaba cloud", "kvm", None, False),
    ("scaleway", "kvm", None, False),
    ("ovh", "kvm", None, False),
)
_VM_PRODUCTS = (
    "kvm",
    "virtual machine",
    "vmware",
    "hvm domu",
    "virtualbox",
    "bochs",
    "standard pc",
    "google compute",
    "vserver",
)


@dataclass(frozen=True)
class Virtualization:
    """What this machine says about itself: a guest or not, under which hypervisor, at which cloud, which instance."""

    guest: bool
    hypervisor: str | None = None
    cloud: str | None = None
    instance_type: str | None = None
    evidence: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "guest": self.guest,
            "hypervisor": self.hypervisor,
            "cloud": self.cloud,
            "instance_type": self.instance_type,
            "evidence": "; ".join(self.evidence) or "no sign of a hypervisor",
        }


def _has_hypervisor_flag(cpuinfo: Path) -> bool | None:
    """Whether the first `flags` line lists `hypervisor`; None where cpuinfo has no flags (ARM, macOS, Windows)."""
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return "hypervisor" in line.partition(":")[2].split()
    except OSError:
        pass
    return None


def _dmi(root: Path, name: str) -> str:
    try:
        return (root / name).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def systemd_detect_virt() -> str | None:
    """`systemd-detect-virt --vm`'s answer ("kvm", "microsoft", ...), None for "none" or where it cannot answer."""
    tool = shutil.which("systemd-detect-virt")
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, "--vm"], capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    answer = done.stdout.strip()
    return answer if done.returncode == 0 and answer and answer != "none" else None


def _is_wsl(osrelease: Path) -> bool:
    try:
        return "microsoft" in osrelease.read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return False


def detect_virtualization(
    cpuinfo: Path = CPUINFO,
    dmi_root: Path = DMI_ROOT,
    detect_virt: Callable[[], str | None] = systemd_detect_virt,
    osrelease: Path = OSRELEASE,
) -> Virtualization:
    """This machine's `Virtualization`. Never raises; reads a few small files (and runs systemd-detect-virt only
    where there is neither a flags line nor DMI)."""
    if _is_wsl(osrelease):  # WSL 2's VM holds the computer it runs on: charged as that computer
        return Virtualization(False, None, None, None, ("WSL 2 (kernel release): the host is this computer",))
    evidence: list[str] = []
    flag = _has_hypervisor_flag(cpuinfo)
    if flag:
        evidence.append("CPU flag 'hypervisor'")
    vendor, product = _dmi(dmi_root, "sys_vendor"), _dmi(dmi_root, "product_name")
    hypervisor = cloud = instance_type = None
    vm_vendor = False
    for prefix, name, where, vm_only in _VENDORS:
        if vendor.lower().startswith(prefix):
            hypervisor, cloud, vm_vendor = name, where, vm_only
            evidence.append(f"DMI sys_vendor {vendor!r}")
            break
    if cloud is None and _dmi(dmi_root, "chassis_asset_tag") == AZURE_ASSET_TAG:
        cloud = "azure"
        evidence.append("DMI chassis asset tag of Azure")
    vm_product = bool(product) and any(p in product.lower() for p in _VM_PRODUCTS)
    if vm_product:
        evidence.append(f"DMI product_name {product!r}")
        hypervisor = hypervisor or product.lower()
    if cloud == "aws" and product and "." in product:  # Nitro: product_name is the instance type, "m5.large"
        instance_type = product
    on_metal = instance_type is not None and (instance_type.endswith(".metal") or ".metal-" in instance_type)
    # x86: the flag decides (a vendor that also sells laptops or dedicated servers does not); without a flags line
    # (ARM): a VM-only vendor or a virtual product name
    guest = flag if flag is not None else (vm_vendor or vm_product) and not on_metal
    if flag is None and not vendor and not product:
        found = detect_virt()
        if found:
            evidence.append(f"systemd-detect-virt --vm: {found}")
            hypervisor, guest = found, True
    if on_metal:
        evidence.append(f"{instance_type} is a bare-metal instance")
    return Virtualization(guest, hypervisor if guest else None, cloud, instance_type, tuple(evidence))
