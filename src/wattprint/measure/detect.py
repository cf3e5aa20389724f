"""Choose the best power source for each component on this machine.

Counters beat models: RAPL for CPU packages and DRAM, NVML for NVIDIA GPUs; the CPU and RAM
models fill in where no counter is readable. Every choice, and why, is returned for the record.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wattprint.errors import PowerSourceError
from wattprint.measure.base import PowerSource
from wattprint.measure.cpu_caps import cpu_capabilities
from wattprint.measure.cpu_model import CpuInfo, CpuModelSource, RamModelSource, cpu_info, machine_cpu_seconds

log = logging.getLogger("wattprint")

NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0")


@dataclass
class SourceChoice:
    sources: list[PowerSource]
    measurement: dict[str, str | None]  # component -> source name, the record's `measurement`
    methods: dict[str, dict[str, Any]]  # component -> {"method", "source", "detail"}
    hardware: dict[str, Any] = field(default_factory=dict)
    # component -> the error that kept its counter out (its `reason` and `fix`), for `wattprint doctor`
    missed: dict[str, PowerSourceError] = field(default_factory=dict)


def detect_sources(
    cpu_tdp_w: float | None = None,
    powercap_root: str = "/sys/class/powercap",
    nvml_module: Any = None,
    cpu_seconds: Callable[[], tuple[float, float]] = machine_cpu_seconds,
    rapld_socket: str | None = None,
) -> SourceChoice:
    """Open the sources for cpu, gpu and ram. Never raises: a missing counter falls back to a model.

    `rapld_socket` is where `wattprint rapld` serves RAPL counters when this user cannot read them
    (default: WATTPRINT_RAPLD_SOCKET, else /run/wattprint/rapld.sock); it is asked only if it exists."""
    from wattprint.measure import nvml

    sources: list[PowerSource] = []
    measurement: dict[str, str | None] = {"cpu": None, "gpu": None, "ram": None}
    methods: dict[str, dict[str, Any]] = {}
    info: CpuInfo = cpu_info(cpu_tdp_w)
    hardware: dict[str, Any] = {
        "cpu_model": info.model,
        "cpu_sockets": info.sockets,
        "logical_cpus": info.logical_cpus,
        "cpu_capabilities": cpu_capabilities().as_dict(),
    }
    rapl_note = "no RAPL counters"
    missed: dict[str, PowerSourceError] = {}
    try:
        source = _open_rapl(powercap_root, rapld_socket)
        sources.append(source)
        components = {d.component for d in source.domains() if d.counted}
        for component in ("cpu", "ram"):
            if component in components:
                measurement[component] = source.name
                methods[component] = {"method": "measured", "source": source.name, "detail": _rapl_detail(source)}
        if "ram" not in components:
            missed["ram"] = PowerSourceError("RAPL has no DRAM zone on this CPU", reason="absent")
    except PowerSourceError as exc:
        rapl_note = str(exc)
        missed["cpu"] = missed["ram"] = exc
    except Exception as exc:  # unexpected layouts must not stop tracking
        rapl_note = f"RAPL unusable: {exc}"
        missed["cpu"] = missed["ram"] = PowerSourceError(rapl_note)
    if measurement["cpu"] is None:
        sources.append(CpuModelSource(info, cpu_seconds=cpu_seconds))
        measurement["cpu"] = "model"
        hardware.update(cpu_tdp_w=info.tdp_w, cpu_tdp_source=info.tdp_source)
        methods["cpu"] = {
            "method": "estimated",
            "source": "model",
            "detail": f"utilisation x TDP {info.tdp_w:g} W x {info.sockets} socket(s) ({info.tdp_source}); {rapl_note}",
        }
    if measurement["ram"] is None:
        ram = RamModelSource()
        sources.append(ram)
        measurement["ram"] = "model"
        methods["ram"] = {
            "method": "estimated",
            "source": "model",
            "detail": f"{ram.power_w:.2f} W for {ram.total_bytes / 1024**3:.1f} GiB at 0.375 W/GiB",
        }
    try:
        if nvml_module is None and not any(os.path.exists(p) for p in NVIDIA_DRIVER_PATHS):
            # importing pynvml and failing to load libnvidia-ml costs ~10 ms: skip it where no driver is
            raise PowerSourceError(f"no NVIDIA driver ({', '.join(NVIDIA_DRIVER_PATHS)} absent)", reason="absent")
        gpu_source = nvml.NvmlSource(nvml_module)
        sources.append(gpu_source)
        measurement["gpu"] = "nvml"
        gpus = gpu_source.gpus()
        hardware["gpus"] = gpus
        methods["gpu"] = {"method": "measured", "source": "nvml", "detail": f"{len(gpus)} NVIDIA GPU(s)"}
    except PowerSourceError as exc:
        methods["gpu"] = {"method": None, "source": None, "detail": f"no GPU energy: {exc}"}
        missed["gpu"] = exc
    except Exception as exc:  # an unexpected NVML fault must not stop tracking: no GPU energy
        methods["gpu"] = {"method": None, "source": None, "detail": f"NVML unusable: {exc}"}
        missed["gpu"] = PowerSourceError(f"NVML unusable: {exc}")
    return SourceChoice(sources, measurement, methods, hardware, missed)


def _open_rapl(powercap_root: str, rapld_socket: str | None) -> PowerSource:
    """RAPL read directly, else through `wattprint rapld` where its socket exists. A daemon that does not
    answer leaves the direct error, with what the daemon said added to it."""
    from wattprint.measure import rapl

    try:
        return rapl.RaplSource(powercap_root)
    except PowerSourceError as direct:
        socket_path = rapld_socket or os.environ.get("WATTPRINT_RAPLD_SOCKET") or rapl.RAPLD_SOCKET
        if not os.path.exists(socket_path):
            if direct.reason == "permission":
                direct.fix = f"{direct.fix}; or have root run `wattprint rapld --group GROUP` for its members"
            raise
        from wattprint.measure import rapld  # a socket server's imports: only where a daemon is there to ask

        try:
            return rapld.RapldSource(socket_path)
        except PowerSourceError as daemon:
            message = f"{direct.message}; and {daemon.message}"
            raise PowerSourceError(message, reason=daemon.reason, fix=daemon.fix or direct.fix) from None


def _rapl_detail(source: PowerSource) -> str:
    if source.name == "rapld":
        return f"RAPL energy counters, served by wattprint rapld at {getattr(source, 'socket_path', '?')}"
    return "RAPL energy counters"
