"""`wattprint doctor`: which power source each component will use on this machine, why, and what would help.

For CPU, RAM and GPU: the reader a tracker would pick (`source`: "rapl", "rapld", "ioreport", "powermetrics",
"jetson", "jtop", "nvml", "amdsmi", "model", or None where
there is nothing to measure), `method` ("measured", "estimated" or None), the `reason` for that choice, and
`fix`: the one step that would turn an estimate into a measurement here, or None where there is none (a
counter already read, or hardware that has none). It opens the sources exactly as a tracker does
(`detect_sources`), so what it says is what a run records.
"""

from __future__ import annotations

from typing import Any

from wattprint.measure.detect import SourceChoice, detect_sources

COMPONENTS = ("cpu", "ram", "gpu")
NO_COUNTER = {
    "cpu": "none here: this machine exposes no RAPL counters (a VM, a container without /sys/class/powercap, "
    "or a CPU without RAPL); bare metal or an instance type that exposes them would be measured, and in a "
    "container the host's `wattprint rapld` socket can be mounted (WATTPRINT_RAPLD_SOCKET names it)",
    "ram": "none here: no RAPL DRAM counter is exposed (many CPUs and every VM lack one); the model is the "
    "best available",
}


def _component(name: str, choice: SourceChoice) -> dict[str, Any]:
    method = choice.methods.get(name) or {}
    missed = choice.missed.get(name)
    out: dict[str, Any] = {
        "source": method.get("source"),
        "method": method.get("method"),
        "reason": str(method.get("detail") or ""),
        "fix": None,
    }
    if out["method"] == "measured" or missed is None:
        return out
    detail = str(method.get("detail") or "").removesuffix(f"; {missed.message}")  # the model's own words
    out["reason"] = f"{missed.message}; estimated instead: {detail}" if out["method"] else missed.message
    if missed.fix:
        out["fix"] = missed.fix
    elif missed.reason == "absent":
        out["fix"] = NO_COUNTER.get(name)  # a GPU that is not there needs no fix
    else:
        out["fix"] = f"see the reason: {missed.message}"
    return out


def diagnose(choice: SourceChoice | None = None, **detect: Any) -> dict[str, Any]:
    """The doctor's document: {"components": {"cpu": {...}, "ram": {...}, "gpu": {...}}, "hardware", "notes"}.

    `detect` goes to `detect_sources` (e.g. `powercap_root`, `nvml_module`, `cpu_tdp_w`) when no `choice`
    is given; the sources it opens are closed again."""
    opened = choice is None
    choice = choice if choice is not None else detect_sources(**detect)
    try:
        components = {name: _component(name, choice) for name in COMPONENTS}
    finally:
        if opened:
            for source in choice.sources:
                close = getattr(source, "close", None)
                if callable(close):
                    close()
    notes = []
    hardware = choice.hardware
    guest = hardware.get("guest")
    if guest:
        notes.append(
            f"a virtual machine: charged {guest['vcpus']:g} of {guest['host_vcpus']:g} host vCPUs "
            f"({guest['host_rule']})"
        )
    tdp_rule = hardware.get("cpu_power_rule") == "tdp"
    if (
        tdp_rule
        and components["cpu"]["method"] == "estimated"
        and "not in table" in str(hardware.get("cpu_tdp_source"))
    ):
        notes.append(
            f"the CPU model assumes {hardware.get('cpu_tdp_w'):g} W per package ({hardware.get('cpu_tdp_source')}); "
            "set WATTPRINT_CPU_TDP_W to this CPU's TDP for a closer estimate"
        )
    return {
        "components": components,
        "hardware": {
            key: hardware.get(key)
            for key in (
                "cpu_model",
                "cpu_sockets",
                "logical_cpus",
                "cpu_tdp_w",
                "cpu_tdp_source",
                "cpu_power_rule",
                "virtualization",
                "guest",
                "gpus",
            )
            if key in hardware
        },
        "notes": notes,
    }
