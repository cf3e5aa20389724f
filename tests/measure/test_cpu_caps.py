"""CPU capability verdicts from flags and kernel limits, for CPUs this machine is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattprint.measure.cpu_caps import capabilities_from, cpu_capabilities

BASE = {"fpu", "sse", "sse2", "ssse3", "sse4_1", "sse4_2", "avx", "f16c", "fma"}
EPYC_MILAN = BASE | {"avx2"}  # Zen 3: AVX2, no AVX-512, no VNNI
EPYC_GENOA = EPYC_MILAN | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}  # Zen 4
ICELAKE = EPYC_MILAN | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}  # VNNI, no bf16
ALDERLAKE = EPYC_MILAN | {"avx_vnni"}  # AVX-VNNI on 256-bit registers
SAPPHIRE = ICELAKE | {"avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "avx_vnni"}


@pytest.mark.parametrize(
    ("flags", "isa", "bf16", "int8_dot"),
    [
        (EPYC_MILAN, "avx2", False, None),
        (EPYC_GENOA, "avx512-vnni", True, "avx512-vnni"),
        (ICELAKE, "avx512-vnni", False, "avx512-vnni"),
        (ALDERLAKE, "avx2-vnni", False, "avx-vnni"),
        (SAPPHIRE, "amx", True, "amx"),
        (BASE, "sse4", False, None),
    ],
)
def test_x86_levels(flags: set[str], isa: str, bf16: bool, int8_dot: str | None) -> None:
    caps = capabilities_from(flags, "x86_64", {})
    assert (caps.isa, caps.isa_hardware, caps.bf16_native, caps.int8_dot) == (isa, isa, bf16, int8_dot)
    assert caps.int8_exact_u8s8 == (int8_dot is not None)
    assert caps.fp16_native == (flags is SAPPHIRE)
    assert caps.limits == {}


def test_onednn_limit_lowers_the_level_and_is_recorded() -> None:
    env = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    caps = capabilities_from(SAPPHIRE, "x86_64", env)
    assert caps.isa == "avx2" and caps.isa_hardware == "amx"
    assert not caps.bf16_native and not caps.fp16_native and caps.int8_dot is None
    assert caps.limits == env
    assert capabilities_from(SAPPHIRE, "x86_64", {"ONEDNN_MAX_CPU_ISA": "avx512_core_vnni"}).isa == "avx512-vnni"
    # a limit above what the CPU has changes nothing; an unknown one is recorded, not applied
    assert capabilities_from(EPYC_MILAN, "x86_64", {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}).isa == "avx2"
    skylake = EPYC_MILAN | {"avx512f", "avx512bw", "avx512vl"}  # AVX-512 without any VNNI
    capped = capabilities_from(skylake, "x86_64", {"ONEDNN_MAX_CPU_ISA": "AVX2_VNNI"})
    assert capped.isa == "avx2" and capped.int8_dot is None  # not a VNNI this CPU lacks
    odd = capabilities_from(SAPPHIRE, "x86_64", {"ONEDNN_MAX_CPU_ISA": "BOGUS"})
    assert odd.isa == "amx" and odd.limits == {"ONEDNN_MAX_CPU_ISA": "BOGUS"}


def test_arm_and_unknown() -> None:
    graviton3 = capabilities_from({"fp", "asimd", "asimdhp", "asimddp", "bf16", "sve"}, "aarch64", {})
    assert (graviton3.isa, graviton3.bf16_native, graviton3.fp16_native, graviton3.int8_dot) == (
        "neon-dotprod",
        True,
        True,
        "neon-dotprod",
    )
    assert capabilities_from({"fp", "asimd"}, "aarch64", {}).int8_dot is None
    unknown = capabilities_from(set(), "x86_64", {}, "no /proc/cpuinfo")
    assert unknown.isa == "unknown" and not unknown.bf16_native and unknown.source == "no /proc/cpuinfo"


def test_this_machine_is_read_once_and_recorded_on_runs(tmp_path: Path) -> None:
    import wattprint

    caps = cpu_capabilities()
    assert cpu_capabilities() is caps  # cached per process
    if Path("/proc/cpuinfo").exists():
        assert caps.source == "/proc/cpuinfo" and caps.isa != "unknown"
    with wattprint.track("caps", interval=0.05) as t:
        pass
    assert t.record.hardware["cpu_capabilities"] == caps.as_dict()
