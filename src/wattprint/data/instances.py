"""The bundled cloud instance types (data/cloud_instances.csv, from Cloud Carbon Footprint's ccf-coefficients): vCPUs,
host size, microarchitectures and the host's embodied emissions, looked up by any usual spelling of a type's name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from wattprint.data import read_table

PROVIDERS = ("aws", "gcp", "azure")


@dataclass(frozen=True)
class Instance:
    """A cloud instance type: its vCPUs, its host's (the largest instance of its platform), the microarchitectures it
    runs on and, where published, the host's embodied emissions."""

    provider: str
    instance_type: str
    vcpus: float  # an Azure A0 has half a vCPU
    host_vcpus: float
    architectures: tuple[str, ...]
    host_embodied_kg: float | None


def _key(name: str) -> str:
    """Key of an instance type, ignoring case, spaces, underscores and "Standard_" ("D2s v3" = Standard_D2s_v3)."""
    name = name.strip().lower()
    name = re.sub(r"^standard[_ ]", "", name)
    return re.sub(r"[\s_]+", "", name)


@lru_cache(maxsize=1)
def instance_table() -> dict[tuple[str, str], Instance]:
    found = {}
    for r in read_table("cloud_instances.csv"):
        instance = Instance(
            r["provider"],
            r["instance_type"],
            float(r["vcpus"]),
            float(r["host_vcpus"]),
            tuple(a for a in r["architectures"].split("|") if a),
            float(r["host_embodied_kg"]) if r["host_embodied_kg"] else None,
        )
        found[(instance.provider, _key(instance.instance_type))] = instance
    return found


def find_instance(name: str, provider: str | None = None) -> Instance | None:
    """The instance type `name` ("m5.large", "aws:m5.large", "Standard_D2s_v3", "gcp:n2-standard-4"), or None. A
    "provider:" prefix or `provider` narrows the search; otherwise the first provider with that name wins."""
    prefix, sep, rest = name.partition(":")
    if sep and prefix.strip().lower() in PROVIDERS:
        provider, name = prefix.strip().lower(), rest
    table = instance_table()
    for cloud in (provider,) if provider in PROVIDERS else PROVIDERS:
        if (found := table.get((cloud, _key(name)))) is not None:
            return found
    return None
