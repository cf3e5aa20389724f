"""What this CPU can compute fast: ISA level, native bf16/fp16, int8 dot-product instructions.

Read once per process from the CPU flags (`/proc/cpuinfo`: "flags" on x86, "Features" on ARM), and lowered
to oneDNN's `ONEDNN_MAX_CPU_ISA` (e.g. AVX2, AVX512_CORE, AVX512_CORE_AMX), the limit on the kernels that run
matmuls and int8 products: it is how a test runs a lesser CPU's kernels on a better one. PyTorch's
`ATEN_CPU_CAPABILITY`, set beside it, is recorded with it.

Flags say what the silicon has, not what a library makes of it: the optimize recipes confirm each verdict
with a small probe (a timed bf16 matmul in `optimize.precision`, an int8 exactness check in
`optimize._int8_kernels`) before relying on it. This module imports nothing heavy: the tracker records
its result on every run's `hardware`.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# ISA levels, best first, with the x86 flags each needs (all of them)
_X86_LEVELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("amx", ("amx_tile", "amx_int8", "amx_bf16", "avx512_vnni")),
    ("avx512-vnni", ("avx512f", "avx512_vnni")),
    ("avx512", ("avx512f", "avx512bw", "avx512vl")),
    ("avx2-vnni", ("avx2", "avx_vnni")),
    ("avx2", ("avx2", "fma")),
    ("sse4", ("sse4_2",)),
)
_X86_ORDER = [name for name, _ in _X86_LEVELS] + ["baseline"]

# ONEDNN_MAX_CPU_ISA values (upper-case, as oneDNN documents them) -> the best level they allow here
_ONEDNN_CAP = {
    "SSE41": "sse4",
    "AVX": "sse4",
    "AVX2": "avx2",
    "AVX2_VNNI": "avx2-vnni",
    "AVX2_VNNI_2": "avx2-vnni",
    "AVX512_CORE": "avx512",
    "AVX512_CORE_VNNI": "avx512-vnni",
    "AVX512_CORE_BF16": "avx512-vnni",
    "AVX10_1_512": "avx512-vnni",
    "AVX512_CORE_FP16": "avx512-vnni",
    "AVX512_CORE_AMX": "amx",
    "AVX512_CORE_AMX_FP16": "amx",
    "AVX10_1_512_AMX": "amx",
    "AVX10_1_512_AMX_FP16": "amx",
    "ALL": "amx",
}


@dataclass(frozen=True)
class CpuCapabilities:
    """The CPU's compute capabilities as flags state them, lowered to the process's kernel limits."""

    arch: str  # platform.machine(): "x86_64", "aarch64", ...
    isa: str  # best level usable here: "amx", "avx512-vnni", "avx512", "avx2-vnni", "avx2", "sse4", "neon", ...
    isa_hardware: str  # the same before the environment's limits
    bf16_native: bool  # bf16 dot products in hardware (AVX512_BF16, AMX_BF16, ARM BF16)
    fp16_native: bool  # fp16 arithmetic in hardware (AVX512_FP16, AMX_FP16, ARM FP16)
    int8_dot: str | None  # the int8 dot-product instructions: "amx", "avx512-vnni", "avx-vnni", "neon-dotprod"
    limits: dict[str, str]  # ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA in force, as set
    source: str  # where the flags came from

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def int8_exact_u8s8(self) -> bool:
        """Whether u8 x s8 int8 products can be summed without 16-bit saturation: x86 without VNNI (or AMX)
        adds pairs of products in a saturating 16-bit register (vpmaddubsw), so full-range activations can
        overflow; kernels then need 7-bit activations (torch.ao's `reduce_range`)."""
        return self.int8_dot is not None or not self.arch.startswith(("x86", "amd64", "i686"))


def _read_flags(cpuinfo: Path) -> tuple[set[str], str]:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set(), "no /proc/cpuinfo"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split()), str(cpuinfo)
    return set(), f"{cpuinfo} has no flags line"


def _best_level(flags: set[str], start: int = 0) -> str:
    """The best level, from `_X86_LEVELS[start]` down, whose flags the CPU all has."""
    for name, needed in _X86_LEVELS[start:]:
        if all(f in flags for f in needed):
            return name
    return "baseline"


def _lower(level: str, cap: str | None, flags: set[str]) -> str:
    """The best level at or below both `level` and `cap` whose flags the CPU has (the levels are no chain:
    AVX-512 without VNNI lacks what AVX2-VNNI has)."""
    if cap is None or cap not in _X86_ORDER:
        return level
    return _best_level(flags, max(_X86_ORDER.index(level), _X86_ORDER.index(cap)))


def capabilities_from(flags: set[str], arch: str, env: dict[str, str], source: str = "flags") -> CpuCapabilities:
    """The verdicts for a given flag set, architecture and environment (pure: tests feed other CPUs here)."""
    limits = {k: env[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if env.get(k)}
    if arch.lower() in ("aarch64", "arm64"):
        level = "neon-dotprod" if "asimddp" in flags else "neon"
        int8_dot = "neon-dotprod" if "asimddp" in flags else None
        return CpuCapabilities(
            arch, level, level, "bf16" in flags, "asimdhp" in flags or "fphp" in flags, int8_dot, limits, source
        )
    if not flags:
        return CpuCapabilities(arch, "unknown", "unknown", False, False, None, limits, source)
    hardware = _best_level(flags)
    # oneDNN runs the matmuls, convolutions and int8 products, so its limit sets the level; ATEN_CPU_CAPABILITY
    # (PyTorch's element-wise kernels) is recorded but does not change what the matmuls can do
    level = _lower(hardware, _ONEDNN_CAP.get(limits.get("ONEDNN_MAX_CPU_ISA", "").upper()), flags)
    rank = _X86_ORDER.index(level)
    bf16 = rank <= _X86_ORDER.index("avx512-vnni") and ("avx512_bf16" in flags or "amx_bf16" in flags)
    fp16 = rank <= _X86_ORDER.index("avx512-vnni") and ("avx512_fp16" in flags or "amx_fp16" in flags)
    int8_dot = {"amx": "amx", "avx512-vnni": "avx512-vnni", "avx2-vnni": "avx-vnni"}.get(level)
    return CpuCapabilities(arch, level, hardware, bf16, fp16, int8_dot, limits, source)


@functools.lru_cache(maxsize=1)
def cpu_capabilities(cpuinfo: str = "/proc/cpuinfo") -> CpuCapabilities:
    """This process's CPU capabilities (read once per process: flags and limits do not change while it runs)."""
    flags, source = _read_flags(Path(cpuinfo))
    return capabilities_from(flags, platform.machine() or "unknown", dict(os.environ), source)
