"""Choose the best power source for each component on this machine.

Counters beat models: RAPL for CPU packages and DRAM, NVML for NVIDIA GPUs; the CPU and RAM
models fill in where no counter is readable. Every choice, and why, is returned for the record.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wattprint.errors import PowerSourceError
from wattprint.measure.base import PowerSource
from wattprint.measure.cpu_caps import cpu_capabilities
from wattprint.measure.cpu_model import CpuInfo, CpuModelSource, RamModelSource, cpu_info, machine_cpu_seconds

if TYPE_CHECKING:
    from wattprint.config import Settings
    from wattprint.measure.vcpu import GuestFigures
    from wattprint.measure.virt import Virtualization

log = logging.getLogger("wattprint")

NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0")
JTOP_SOCKET = "/run/jtop.sock"  # jetson-stats' service (jtop/service.py JTOP_PIPE)
AMD_KFD_PATH = "/dev/kfd"  # the ROCm compute driver's device: where there is none, amdsmi is not even imported


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
    *,
    amdsmi_module: Any = None,
    jetson_root: str | None = None,
    apple_module: Any = None,
    jtop_module: Any = None,
    virtualization: Virtualization | None = None,
    virtual: str = "auto",
    instance_type: str | None = None,
    host_vcpus: float | None = None,
    instance_type_source: str = "given",
) -> SourceChoice:
    """Open the sources for cpu, gpu and ram. Never raises: a missing counter falls back to a model.

    Counters are tried in the order of COUNTERS, each where it is worth trying, claiming the components its counted
    domains cover that no earlier one measures. `rapld_socket` is where `wattprint rapld` serves RAPL counters to
    users who cannot read them (default WATTPRINT_RAPLD_SOCKET, else /run/wattprint/rapld.sock; asked only if it
    exists); the `*_module` arguments are stand-ins for the vendor libraries and `jetson_root` a sysfs root (tests).
    The CPU and RAM models fill in what is left; a GPU without a counter gets no figure. A virtual machine
    (`virtualization`, detected when None; `virtual` "auto", "guest" or "host" overrides) is modelled by its vCPUs'
    share of the host (see vcpu.py), from `instance_type`'s published figures where known."""
    info: CpuInfo = cpu_info(cpu_tdp_w)
    choice = SourceChoice(
        [],
        {"cpu": None, "gpu": None, "ram": None},
        {},
        {
            "cpu_model": info.model,
            "cpu_sockets": info.sockets,
            "logical_cpus": info.logical_cpus,
            "cpu_capabilities": cpu_capabilities().as_dict(),
        },
    )
    errors: dict[str, list[PowerSourceError]] = {"cpu": [], "gpu": [], "ram": []}
    probe = Probe(powercap_root, rapld_socket, nvml_module, amdsmi_module, jetson_root, apple_module, jtop_module)
    for counter in COUNTERS:
        components = counter.components
        if any(choice.measurement[c] is not None for c in components) or not counter.worth_trying(probe):
            continue  # an earlier counter of this kind is open (see COUNTERS), or this one is not here
        try:
            source = counter.open(probe)
        except PowerSourceError as exc:
            for component in components:
                errors[component].append(exc)
            continue
        except Exception as exc:  # an unexpected layout or library fault must not stop tracking
            for component in components:
                errors[component].append(PowerSourceError(f"unusable: {type(exc).__name__}: {exc}"))
            continue
        if not _claim(choice, source):
            source.close()
    for component in ("cpu", "gpu", "ram"):
        if choice.measurement[component] is None and errors[component]:
            # the error worth reading: one of a counter that is there (permission, library), else the first
            found = [e for e in errors[component] if e.reason != "absent"]
            choice.missed[component] = (found or errors[component])[0]
    if choice.measurement["cpu"] in ("rapl", "rapld") and choice.measurement["ram"] is None:
        choice.missed["ram"] = PowerSourceError("RAPL has no DRAM zone on this CPU", reason="absent")
    guest = _guest(choice, info, virtualization, virtual, (instance_type, instance_type_source), host_vcpus)
    _fill_with_models(choice, info, cpu_seconds, None if cpu_tdp_w is not None else guest)
    return choice


def sources_for(settings: Settings, instance_type_hint: str | None = None, **detect: Any) -> SourceChoice:
    """`detect_sources` with the settings that shape it (TDP, virtual machine, instance type, host size);
    `instance_type_hint` is what the cloud metadata service said (the setting wins over it)."""
    return detect_sources(
        settings.cpu_tdp_w,
        virtual=settings.virtual,
        instance_type=settings.instance_type or instance_type_hint,
        instance_type_source="WATTPRINT_INSTANCE_TYPE setting" if settings.instance_type else "cloud metadata service",
        host_vcpus=settings.host_vcpus,
        **detect,
    )


def _guest(
    choice: SourceChoice,
    info: CpuInfo,
    virtualization: Virtualization | None,
    virtual: str,
    instance: tuple[str | None, str],
    host_vcpus: float | None,
) -> GuestFigures | None:
    """This machine's share of its host when it is a guest (said on the record's hardware), else None."""
    from wattprint.measure.virt import detect_virtualization

    virt = virtualization if virtualization is not None else detect_virtualization()
    choice.hardware["virtualization"] = virt.as_dict()
    from wattprint.data.instances import find_instance
    from wattprint.measure.vcpu import guest_figures

    instance_type, source = instance
    named, source = (instance_type, source) if instance_type else (virt.instance_type, "DMI product_name")
    # a setting or the metadata service names the type with its cloud; the DMI's is of the cloud the DMI says
    found = find_instance(named, virt.cloud if source == "DMI product_name" else None) if named else None
    whole_host = found is not None and found.vcpus >= found.host_vcpus  # a bare-metal type: the whole machine
    named_guest = instance_type is not None and not whole_host
    if not (virtual == "guest" or (virtual == "auto" and (virt.guest or named_guest))):
        return None
    unknown = named if named is not None and found is None else None
    if unknown is not None:  # a type newer than the table: say so, and what would help instead
        choice.hardware["virtualization"]["note"] = f"instance type {unknown!r} ({source}) not in the bundled table"
    guest = guest_figures(info.model, info.logical_cpus, virt.cloud, found, host_vcpus, unknown)
    choice.hardware["guest"] = guest.as_dict() | {"instance_type_source": source if found else None}
    return guest


@dataclass(frozen=True)
class Probe:
    """What detect_sources was given (stand-in modules and paths for tests), and this platform."""

    powercap_root: str
    rapld_socket: str | None
    nvml_module: Any
    amdsmi_module: Any
    jetson_root: str | None
    apple_module: Any
    jtop_module: Any
    system: str = field(default_factory=platform.system)
    machine: str = field(default_factory=lambda: platform.machine().lower())

    @property
    def apple_silicon(self) -> bool:
        return self.apple_module is not None or (self.system == "Darwin" and self.machine == "arm64")

    @property
    def linux_on_arm(self) -> bool:
        return self.system == "Linux" and self.machine in ("aarch64", "arm64")


@dataclass(frozen=True)
class Counter:
    """One kind of hardware counter: the components it can measure, where it is worth trying (cheap checks, so
    that a plain x86 box imports and starts nothing it lacks), and how to open it."""

    name: str
    components: tuple[str, ...]
    worth_trying: Callable[[Probe], bool]
    open: Callable[[Probe], PowerSource]


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# The power sources, in the order they are tried; each claims the components that no earlier one measures, and
# one whose components are already (partly) measured is not opened: ioreport before powermetrics, the sysfs
# rails before jtop, NVML before amdsmi.
COUNTERS: tuple[Counter, ...] = (
    Counter("rapl", ("cpu", "ram"), lambda p: True, lambda p: _open_rapl(p.powercap_root, p.rapld_socket)),
    Counter("ioreport", ("cpu", "gpu", "ram"), lambda p: p.apple_silicon, lambda p: _open_ioreport(p.apple_module)),
    Counter("powermetrics", ("cpu", "gpu"), lambda p: p.apple_silicon and _is_root(), lambda p: _open_powermetrics()),
    Counter(
        "jetson",
        ("cpu", "gpu", "ram"),
        lambda p: p.jetson_root is not None or p.jtop_module is not None or p.linux_on_arm,
        lambda p: _open_jetson(p.jetson_root),
    ),
    Counter(
        "jtop",
        ("cpu", "gpu", "ram"),
        lambda p: p.jetson_root is not None or p.jtop_module is not None or p.linux_on_arm,
        lambda p: _open_jtop(p.jtop_module),
    ),
    Counter("nvml", ("gpu",), lambda p: True, lambda p: _open_nvml(p.nvml_module)),
    Counter(
        "amdsmi",
        ("gpu",),
        lambda p: p.amdsmi_module is not None or os.path.exists(AMD_KFD_PATH),
        lambda p: _open_amdsmi(p.amdsmi_module),
    ),
)


def _claim(choice: SourceChoice, source: PowerSource) -> bool:
    """Give `source` the components its counted domains cover that nothing measures yet; False if none."""
    covered = {d.component for d in source.domains() if d.counted}
    claimed = [c for c in ("cpu", "gpu", "ram") if c in covered and choice.measurement[c] is None]
    if not claimed:
        return False
    if covered - set(claimed):
        return False  # it would count again a component another counter already measures
    choice.sources.append(source)
    detail = _detail(source)
    for component in claimed:
        choice.measurement[component] = source.name
        choice.methods[component] = {"method": "measured", "source": source.name, "detail": detail}
    if "gpu" in claimed:
        gpus = getattr(source, "gpus", None)
        if callable(gpus):  # each with its domain's name, which the run's GPU selection is made of
            choice.hardware["gpus"] = [{**gpu, "domain": f"{source.name}:{gpu['index']}"} for gpu in gpus()]
    combined = [d.name for d in source.domains() if d.counted and d.component == "gpu" and "cpu" in d.name]
    if combined and choice.measurement["cpu"] is None:  # a Jetson's CPU+GPU rail: the CPU is inside it
        choice.measurement["cpu"] = source.name
        choice.methods["cpu"] = {
            "method": "measured",
            "source": source.name,
            "detail": f"inside the combined rail {', '.join(combined)}, counted as GPU energy",
        }
    return True


def _detail(source: PowerSource) -> str:
    """The source's own line for the record (its `detail()`), else its name."""
    detail = getattr(source, "detail", None)
    return detail() if callable(detail) else source.name


def _fill_with_models(
    choice: SourceChoice,
    info: CpuInfo,
    cpu_seconds: Callable[[], tuple[float, float]],
    guest: GuestFigures | None = None,
) -> None:
    """The CPU and RAM models where no counter measures them; a GPU without one is said to have no figure. A guest's
    CPU is modelled by its vCPUs (`guest`), a physical machine's by its sockets' TDP."""
    if choice.measurement["cpu"] is None:
        why = choice.missed["cpu"].message if "cpu" in choice.missed else "no CPU counter"
        if guest is not None:
            p = guest.power
            choice.sources.append(
                CpuModelSource(
                    info, cpu_seconds=cpu_seconds, power_range_w=(guest.vcpus * p.min_w, guest.vcpus * p.max_w)
                )
            )
            choice.hardware.update(cpu_power_rule="vcpu")
            detail = (
                f"utilisation x {guest.vcpus:g} vCPUs x {p.min_w:.2f}-{p.max_w:.2f} W per vCPU ({p.architecture}; "
                f"{p.source}): a virtual machine ({choice.hardware['virtualization']['evidence']}); {why}"
            )
        else:
            choice.sources.append(CpuModelSource(info, cpu_seconds=cpu_seconds))
            choice.hardware.update(cpu_power_rule="tdp")
            detail = f"utilisation x TDP {info.tdp_w:g} W x {info.sockets} socket(s) ({info.tdp_source}); {why}"
        choice.measurement["cpu"] = "model"
        choice.hardware.update(cpu_tdp_w=info.tdp_w, cpu_tdp_source=info.tdp_source)
        choice.methods["cpu"] = {"method": "estimated", "source": "model", "detail": detail}
    if choice.measurement["ram"] is None:
        ram = RamModelSource()
        choice.sources.append(ram)
        choice.measurement["ram"] = "model"
        choice.methods["ram"] = {
            "method": "estimated",
            "source": "model",
            "detail": f"{ram.power_w:.2f} W for {ram.total_bytes / 1024**3:.1f} GiB at 0.375 W/GiB",
        }
    if choice.measurement["gpu"] is None:
        missed = choice.missed.get("gpu")
        choice.methods["gpu"] = {"method": None, "source": None, "detail": f"no GPU energy: {missed or 'no GPU'}"}


def _open_nvml(nvml_module: Any) -> PowerSource:
    from wattprint.measure import nvml

    if nvml_module is None and not any(os.path.exists(p) for p in NVIDIA_DRIVER_PATHS):
        # importing pynvml and failing to load libnvidia-ml costs ~10 ms: skip it where no driver is
        raise PowerSourceError(f"no NVIDIA driver ({', '.join(NVIDIA_DRIVER_PATHS)} absent)", reason="absent")
    return nvml.NvmlSource(nvml_module)


def _open_amdsmi(amdsmi_module: Any) -> PowerSource:
    from wattprint.measure import amdsmi

    return amdsmi.AmdSmiSource(amdsmi_module)


def _open_ioreport(module: Any) -> PowerSource:
    from wattprint.measure import apple

    if module is None:
        return apple.AppleSiliconSource()
    return apple.AppleSiliconSource(module, system="Darwin", machine="arm64")  # a stand-in: as on a Mac


def _open_powermetrics() -> PowerSource:
    from wattprint.measure import powermetrics

    return powermetrics.PowermetricsSource()


def _open_jtop(module: Any) -> PowerSource:
    if module is None and not os.path.exists(JTOP_SOCKET):  # no service here: not a Jetson, or jtop not set up
        raise PowerSourceError(f"no jtop service ({JTOP_SOCKET} absent)", reason="absent")
    from wattprint.measure import jtop

    return jtop.JtopSource(module)


def _open_jetson(root: str | None) -> PowerSource:
    from wattprint.measure import jetson

    return jetson.JetsonSource(root or jetson.DEFAULT_ROOT)


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
