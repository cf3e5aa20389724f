"""Rebuild data/vcpu_power.csv and data/cloud_instances.csv from a copy of Cloud Carbon Footprint's ccf-coefficients
(https://github.com/cloud-carbon-footprint/ccf-coefficients, its data/ and output/ folders). Run by hand.

Usage: python tools/build_cloud_data.py CCF_COEFFICIENTS_DIR
"""

from __future__ import annotations

import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from wattprint.measure.vcpu import cpu_architecture

KG_PER_TONNE = 1000.0


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


def _power(ccf: Path) -> list[list[str]]:
    out = []
    for provider in ("aws", "gcp", "azure"):
        for r in sorted(_rows(ccf / "output" / f"coefficients-{provider}-use.csv"), key=lambda r: r["Architecture"]):
            out.append([provider, r["Architecture"], f"{float(r['Min Watts']):.4f}", f"{float(r['Max Watts']):.4f}"])
    return out


def _arch(name: str) -> str:
    return "" if name in ("", "Unknown") else name


def _aws(ccf: Path) -> list[list[str]]:
    embodied = {r["type"]: r["total"] for r in _rows(ccf / "output" / "coefficients-aws-embodied.csv")}
    out, seen = [], set()
    for r in _rows(ccf / "data" / "aws-instances.csv"):
        name = r["Instance type"]
        seen.add(name)
        arch = cpu_architecture(r["Platform CPU Name"]) or ""
        out.append(["aws", name, r["Instance vCPU"], r["Platform Total Number of vCPU"], arch, embodied.get(name, "")])
    latest = _rows(ccf / "data" / "aws-instances-latest-2026.csv")
    family_vcpus: dict[str, int] = defaultdict(int)
    for r in latest:
        family = r["Instance Type"].split(".")[0]
        family_vcpus[family] = max(family_vcpus[family], int(r["vCPUs"]))
    for r in latest:
        name = r["Instance Type"]
        if name in seen or not r["vCPUs"].isdigit():
            continue
        seen.add(name)
        tonnes = r["Platform Embedded Emissions (mtCo2eq)"].strip()
        kg = f"{float(tonnes) * KG_PER_TONNE:g}" if tonnes else ""
        arch = cpu_architecture(r["Platform CPU Name"]) or ""
        out.append(["aws", name, r["vCPUs"], str(family_vcpus[name.split(".")[0]]), arch, kg])
    return out


def _grouped(provider: str, rows: list[dict[str, str]], type_field: str, embodied: dict[str, list[float]]) -> list:
    types: dict[str, dict[str, object]] = {}
    for r in rows:
        entry = types.setdefault(
            r[type_field], {"vcpus": r["Instance vCPUs"], "host": r["Platform vCPUs (highest vCPU possible)"], "a": []}
        )
        arch = _arch(r["Microarchitecture"])
        if arch and arch not in entry["a"]:  # type: ignore[operator]
            entry["a"].append(arch)  # type: ignore[union-attr]
    out = []
    for name, e in types.items():
        kgs = embodied.get(name)
        kg = f"{statistics.fmean(kgs):.2f}" if kgs else ""
        host = max(float(e["host"]), float(e["vcpus"]))  # type: ignore[arg-type]  # a few rows list a smaller host
        out.append([provider, name, e["vcpus"], f"{host:g}", "|".join(e["a"]), kg])  # type: ignore[arg-type]
    return out


def main() -> None:
    ccf = Path(sys.argv[1])
    data = Path(__file__).resolve().parents[1] / "src" / "wattprint" / "data"
    with (data / "vcpu_power.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["provider", "architecture", "min_w", "max_w"])
        w.writerows(_power(ccf))
    gcp_kg: dict[str, list[float]] = defaultdict(list)
    for r in _rows(ccf / "output" / "coefficients-gcp-embodied.csv"):
        gcp_kg[r["type"]].append(float(r["total"]))
    azure_kg: dict[str, list[float]] = defaultdict(list)
    for r in _rows(ccf / "output" / "coefficients-azure-embodied.csv"):
        azure_kg[r["type"]].append(float(r["total"]))
    rows = _aws(ccf)
    rows += _grouped("gcp", _rows(ccf / "data" / "gcp-instances.csv"), "Machine type", gcp_kg)
    rows += _grouped("azure", _rows(ccf / "data" / "azure-instances.csv"), "Virtual Machine", azure_kg)
    with (data / "cloud_instances.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["provider", "instance_type", "vcpus", "host_vcpus", "architectures", "host_embodied_kg"])
        w.writerows(rows)
    print(f"vcpu_power.csv and cloud_instances.csv ({len(rows)} instance types) written to {data}")


if __name__ == "__main__":
    main()
