"""Hardware table and loose name matching."""

from __future__ import annotations

import pytest

from wattprint.accounting.hardware import (
    KINDS,
    find_hardware,
    hardware_table,
    lookup_hardware,
    normalize_hardware_name,
    suggest_hardware,
)
from wattprint.errors import WattprintInputError


@pytest.mark.parametrize(
    ("query", "name", "tdp_w"),
    [
        ("V100", "V100 SXM2", 300),  # bare family -> documented default variant
        ("v100 pcie", "V100 PCIe", 250),
        ("A100-SXM4", "A100 SXM4", 400),
        ("A100", "A100 SXM4", 400),
        ("A100 PCIe", "A100 PCIe 40GB", 250),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB", 300),
        ("h100 sxm", "H100 SXM", 700),
        ("H100_SXM5", "H100 SXM", 700),
        ("H100 PCIe", "H100 PCIe", 350),
        ("TPUv3", "TPU v3", 450),
        ("tpu-v2", "TPU v2", 280),
        ("NVIDIA H100 80GB HBM3", "H100 SXM", 700),  # NVML names
        ("NVIDIA A100-SXM4-40GB", "A100 SXM4", 400),
        ("Tesla V100-SXM2-16GB", "V100 SXM2", 300),
        ("Tesla T4", "T4", 70),
        ("l40s", "L40S", 350),
        ("AMD EPYC 7763", "EPYC 7763", 280),
        ("intel xeon platinum 8380", "Xeon Platinum 8380", 270),
    ],
)
def test_loose_matching(query: str, name: str, tdp_w: float) -> None:
    found = lookup_hardware(query)
    assert (found.name, found.tdp_w) == (name, tdp_w)


def test_reference_accelerator_tdps() -> None:
    # the figures of /work/shared/reference/README.md
    expected = {
        "H100 SXM": 700,
        "H100 PCIe": 350,
        "H200 SXM": 700,
        "A100 SXM4": 400,
        "A100 PCIe 40GB": 250,
        "A100 PCIe 80GB": 300,
        "V100 SXM2": 300,
        "V100 PCIe": 250,
        "L4": 72,
        "L40S": 350,
        "T4": 70,
        "A10": 150,
        "P100 SXM2": 300,
        "P100 PCIe": 250,
        "TPU v2": 280,
        "TPU v3": 450,
    }
    table = {h.name: h.tdp_w for h in hardware_table()}
    assert {k: table[k] for k in expected} == expected


def test_table_rows_are_well_formed() -> None:
    for row in hardware_table():
        assert row.kind in KINDS and row.tdp_w > 0 and row.source


def test_cpu_fallback_to_cpu_tdp_table() -> None:
    found = find_hardware("Xeon Gold 6132")
    assert found is not None and found.kind == "cpu" and found.tdp_w == 140
    assert "cpu_tdp" in found.source or "CPU TDP" in found.source


def test_normalize() -> None:
    assert normalize_hardware_name("NVIDIA A100-SXM4-40GB") == "a100sxm40gb"
    assert normalize_hardware_name("NVIDIA A100-SXM4-40GB", drop_memory=True) == "a100sxm"
    assert normalize_hardware_name(" TPU v3 ") == normalize_hardware_name("tpu-v3") == "tpuv3"


def test_unknown_name_suggests() -> None:
    assert suggest_hardware("V1000")[0] == "V100 SXM2"
    with pytest.raises(WattprintInputError) as err:
        lookup_hardware("V1000")
    message = str(err.value)
    assert message.startswith("--hardware: unknown hardware 'V1000'")
    assert "did you mean V100 SXM2" in message and "\n" not in message


@pytest.mark.parametrize("query", ["", "   ", "quantum abacus"])
def test_nothing_matches(query: str) -> None:
    with pytest.raises(WattprintInputError, match="--hardware"):
        lookup_hardware(query)
