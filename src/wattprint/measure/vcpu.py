"""Power and host share of a virtual machine's vCPUs, where a host socket's TDP means nothing.

A guest sees its vCPUs, not the host's packages: the TDP model would bill a 2-vCPU VM for a whole server socket.
Cloud Carbon Footprint's rule is used instead. Each vCPU draws between a minimum and a maximum power measured per CPU
microarchitecture (SPECpower results),
    power_w = vcpus x (min_w + (max_w - min_w) x utilisation),
and the VM holds vcpus / host_vcpus of its host (for embodied emissions). Figures come from data/vcpu_power.csv and
data/cloud_instances.csv, both derived from Cloud Carbon Footprint's ccf-coefficients (see SOURCES.md).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from functools import lru_cache

from wattprint.data import read_table
from wattprint.data.instances import PROVIDERS, Instance, instance_table

DEFAULT_PROVIDER = "aws"  # the largest table; a guest of an unknown cloud or a private hypervisor uses it

_CODENAMES = (
    "sandy bridge",
    "ivy bridge",
    "haswell",
    "broadwell",
    "skylake",
    "cascade lake",
    "coffee lake",
    "ice lake",
    "sapphire rapids",
    "emerald rapids",
    "granite rapids",
)
# Xeon Scalable numbers: the second digit is the generation (8175M Skylake, 8259CL Cascade Lake, 8375C Ice Lake)
_SCALABLE = {"1": "Skylake", "2": "Cascade Lake", "3": "Ice Lake", "4": "Sapphire Rapids", "5": "Emerald Rapids"}
_E5_VERSION = {"2": "Ivy Bridge", "3": "Haswell", "4": "Broadwell"}
_ORDINAL = {"1": "1st", "2": "2nd", "3": "3rd", "4": "4th", "5": "5th"}


def cpu_architecture(model: str) -> str | None:
    """The microarchitecture of a CPU model name, in Cloud Carbon Footprint's names ("Cascade Lake", "EPYC 2nd Gen",
    "Graviton2"), or None where the name does not say (a guest that sees only "AMD EPYC" or "Intel Xeon Processor")."""
    name = " ".join(model.lower().replace("(r)", " ").replace("(tm)", " ").split())
    for codename in _CODENAMES:
        if codename in name:
            return codename.title()
    if found := re.search(r"graviton\s*(\d+e?)?", name):
        return "Graviton" + (found.group(1) or "").upper()
    if "epyc" in name:
        gen = re.search(r"\b([1-5])(?:st|nd|rd|th) gen\b", name) or re.search(r"epyc\s+\d\w\w([1-5])\w*\b", name)
        return f"EPYC {_ORDINAL[gen.group(1)]} Gen" if gen else None
    if "xeon" in name:
        if found := re.search(r"\be[357]-?\s?\d{4}[a-z]*\s*v([234])\b", name):
            return _E5_VERSION[found.group(1)]
        if re.search(r"\be5-?\s?\d{4}[a-z]*\b", name):
            return "Sandy Bridge"
        if found := re.search(r"\b[3-9]([1-5])\d\d[a-z]*\b", name):
            return _SCALABLE[found.group(1)]
    if re.search(r"\bi[3579]-[89]\d{3}", name):  # 8th/9th generation Core, the Mac mini hosts of AWS
        return "Coffee Lake"
    return None


@dataclass(frozen=True)
class VcpuPower:
    """Watts per vCPU at idle and at full load, and where the figures come from."""

    min_w: float
    max_w: float
    architecture: str  # what the figures are for: "Cascade Lake", or "median of aws's microarchitectures, ..."
    source: str


@lru_cache(maxsize=1)
def _power_rows() -> dict[tuple[str, str], tuple[float, float]]:
    return {
        (r["provider"], r["architecture"]): (float(r["min_w"]), float(r["max_w"])) for r in read_table("vcpu_power.csv")
    }


def vcpu_power(architectures: tuple[str, ...] = (), provider: str | None = None) -> VcpuPower:
    """Per-vCPU watts for a guest on one of `architectures` (their mean: a cloud type may run on several) at
    `provider`; where none is known, the median of the provider's microarchitectures (Cloud Carbon Footprint takes
    their average or median; the median keeps one outlier row, EPYC 5th Gen's, from moving it)."""
    cloud = provider if provider in PROVIDERS else DEFAULT_PROVIDER
    rows = _power_rows()
    known = [rows[(cloud, a)] for a in architectures if (cloud, a) in rows]
    if not known:  # the architecture is not in this provider's table: any provider's figure for it
        known = [v for (_p, a), v in rows.items() if a in architectures][:1]
    source = f"Cloud Carbon Footprint coefficients ({cloud}, SPECpower)"
    if known:
        label = " or ".join(a for a in architectures if any((p, a) in rows for p in PROVIDERS))
    else:
        provider_rows = [v for (p, _a), v in rows.items() if p == cloud]
        label = f"median of {cloud}'s microarchitectures, this CPU's being unknown"
        return VcpuPower(
            statistics.median(v[0] for v in provider_rows),
            statistics.median(v[1] for v in provider_rows),
            label,
            source,
        )
    return VcpuPower(statistics.fmean(v[0] for v in known), statistics.fmean(v[1] for v in known), label, source)


@lru_cache(maxsize=64)
def _median_host_vcpus(provider: str, architecture: str | None) -> tuple[float, str]:
    """The median host size (vCPUs) of `provider`'s instance types on `architecture` (all of its types where that is
    unknown or has none), and how it was found."""
    hosts = [
        i.host_vcpus for (p, _k), i in instance_table().items() if p == provider and architecture in i.architectures
    ]
    if hosts:
        return statistics.median(hosts), f"median host of {provider}'s {architecture} instance types"
    hosts = [i.host_vcpus for (p, _k), i in instance_table().items() if p == provider]
    return statistics.median(hosts), f"median host of {provider}'s instance types"


@dataclass(frozen=True)
class GuestFigures:
    """A guest's share of its host: the vCPUs it holds out of the host's, the vCPUs' power, the host's embodied figure
    where its instance type publishes one, and how each was found (for the record)."""

    vcpus: float
    host_vcpus: float
    host_rule: str
    power: VcpuPower
    instance: Instance | None = None
    sharpen: str | None = None  # the setting that would replace an assumption with this machine's figures

    @property
    def share(self) -> float:
        """vcpus / host_vcpus, at most 1: SCI's RR/ToR for the host's embodied emissions."""
        return min(1.0, self.vcpus / self.host_vcpus)

    @property
    def host_embodied_kg(self) -> float | None:
        return self.instance.host_embodied_kg if self.instance is not None else None

    def as_dict(self) -> dict[str, object]:
        return {
            "vcpus": self.vcpus,
            "host_vcpus": self.host_vcpus,
            "host_share": self.share,
            "host_rule": self.host_rule,
            "vcpu_min_w": self.power.min_w,
            "vcpu_max_w": self.power.max_w,
            "vcpu_power_for": self.power.architecture,
            "vcpu_power_source": self.power.source,
            "instance_type": f"{self.instance.provider}:{self.instance.instance_type}" if self.instance else None,
            "host_embodied_kg": self.host_embodied_kg,
            "sharpen": self.sharpen,
        }


def guest_figures(
    cpu_model: str,
    vcpus: float,
    cloud: str | None = None,
    instance: Instance | None = None,
    host_vcpus: float | None = None,
    unknown_type: str | None = None,
) -> GuestFigures:
    """The figures for a guest that sees `vcpus` CPUs named `cpu_model`: from its instance type's row where that is
    known (`find_instance`), else from the CPU's microarchitecture and the median host of the cloud (AWS's where the
    cloud is not known). `host_vcpus` (a setting) overrides the host size; `unknown_type` is a type named for this
    machine that the table lacks (then only the host size can sharpen the figures)."""
    provider = instance.provider if instance is not None else (cloud if cloud in PROVIDERS else DEFAULT_PROVIDER)
    architecture = cpu_architecture(cpu_model)
    architectures = instance.architectures if instance is not None and instance.architectures else ()
    if not architectures and architecture is not None:
        architectures = (architecture,)
    power = vcpu_power(architectures, provider)
    sharpen = None
    if instance is None and unknown_type is not None and host_vcpus is None:
        sharpen = f"set WATTPRINT_HOST_VCPUS to the size of {unknown_type}'s host (not in the table)"
    elif instance is None:
        sharpen = "set WATTPRINT_INSTANCE_TYPE to this VM's type for its host's published figures"
        if host_vcpus is None:
            sharpen += " (or WATTPRINT_HOST_VCPUS to its host's size)"
    if host_vcpus is not None:
        host, rule = float(host_vcpus), "WATTPRINT_HOST_VCPUS setting"
    elif instance is not None:
        host, rule = instance.host_vcpus, f"host of {instance.provider} {instance.instance_type} (ccf-coefficients)"
    else:
        host, rule = _median_host_vcpus(provider, architecture)
    vcpus_held = instance.vcpus if instance is not None else float(vcpus)
    return GuestFigures(vcpus_held, host, rule, power, instance, sharpen)
