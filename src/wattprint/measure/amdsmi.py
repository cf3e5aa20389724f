"""AMD GPU energy through AMD SMI (the `amdsmi` Python package that comes with ROCm).

Instinct (MI200 and later) and recent Radeon GPUs keep an energy accumulator: a 64-bit count, each
count worth `counter_resolution` microjoules. A GPU's energy is (count - count at open) x resolution,
exact whatever the sampling interval. A GPU whose driver keeps no accumulator (amdsmi answers
NOT_SUPPORTED) has each read() sample its socket power (watts), integrated over time with the
trapezoidal rule: an estimate good to the sampling interval.

Domain "amdsmi:<i>" is the i-th handle of amdsmi_get_processor_handles() (PCI order; HIP_VISIBLE_DEVICES
is ignored), and `gpus()` gives each GPU's UUID so it can be matched to a HIP device. `amdsmi` is imported
lazily, in the constructor and in `available()`, never at module import: importing it loads libamd_smi.so.

The Python API changed across ROCm releases (amdsmi from ROCm 5.7 on is supported); this module reads
each shape:
  - amdsmi_get_energy_count: the count is under "power" up to ROCm 6.2, under both "power" and
    "energy_accumulator" in 6.3, and under "energy_accumulator" alone in the ROCm 7 sources;
  - amdsmi_get_power_info: "average_socket_power" (W; Navi, MI200 and older) in every release,
    "current_socket_power" (W; MI300 and later) from 6.1, "socket_power" from 6.4; a field the GPU lacks
    reads "N/A" from 6.2 and a 0xFFFF-or-above sentinel (or 0) before;
  - amdsmi_get_gpu_process_list: process handles to pass to amdsmi_get_gpu_process_info up to 6.1, dicts
    with a "pid" from 6.2; recent releases leave the calling process itself out of the list;
  - amdsmi_init / amdsmi_shut_down: a plain flag up to at least ROCm 6.3 (a second init does nothing and
    one shut-down ends the session for every user in the process), reference counted in the ROCm 7 sources. Every
    AmdSmiSource and `available()` share one session per module, opened once and shut down when the last
    of them is done, which is right under both.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wattprint.errors import PowerSourceError
from wattprint.measure.base import Domain, Reading
from wattprint.measure.gpu_energy import COUNTER, POWER_SAMPLING, GpuEnergy
from wattprint.units import UJ_PER_J

log = logging.getLogger("wattprint")

UW_PER_W = 1e6  # amdsmi_get_power_cap_info reports microwatts
INSTALL_FIX = "pip install 'wattprint[amd]'"
# amdsmi status codes (amdsmi_wrapper.AMDSMI_STATUS_*), unchanged since ROCm 5.7
_NOT_SUPPORTED = 2
_NOT_YET_IMPLEMENTED = 3
_NO_PERM = 10
_NOT_FOUND = 31
_DRIVER_NOT_LOADED = 34
_UNSUPPORTED = frozenset({_NOT_SUPPORTED, _NOT_YET_IMPLEMENTED})
# amdsmi marks an unavailable power field with the largest uint16/32/64 (or "N/A" where it converts them)
_NOT_AVAILABLE_W = 0xFFFF
# the power fields in order of preference (see the module docstring)
_POWER_KEYS = ("current_socket_power", "average_socket_power", "socket_power")
_PERMISSION_FIX = "add this user to the 'render' and 'video' groups, then log in again"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip()
    return str(value).strip()


def _code(exc: BaseException) -> int | None:
    """amdsmi's status code of a library error (AmdSmiLibraryException.err_code), else None."""
    code = getattr(exc, "err_code", None)
    return code if isinstance(code, int) else None


def _describe(exc: BaseException) -> str:
    """One line for an amdsmi error, e.g. "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded (amdsmi error
    34)". AmdSmiLibraryException's own text spans two lines, so its `err_info` is used where it has one."""
    code = _code(exc)
    info = getattr(exc, "err_info", None)
    if isinstance(info, str) and info:
        text = info
    else:
        try:
            text = " ".join(str(exc).split())
        except Exception:  # a broken __str__: the type at least
            text = ""
    text = text or type(exc).__name__
    return f"{text} (amdsmi error {code})" if code is not None else text


def _reason(exc: BaseException) -> str:
    """PowerSourceError's reason for an amdsmi error met while opening."""
    code = _code(exc)
    if code == _NO_PERM:
        return "permission"
    if code == _DRIVER_NOT_LOADED:
        return "absent"
    return "unreadable"


def _number(value: Any) -> float | None:
    """A reading amdsmi really gave: a finite number below its "not available" sentinels, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value < 0 or value >= _NOT_AVAILABLE_W:
        return None
    return float(value)


def _power_w(info: Mapping[str, Any]) -> float | None:
    """The GPU's power in watts from amdsmi_get_power_info: the first field in `_POWER_KEYS` that gives a
    positive reading (releases before 6.2 may show 0 for a field the GPU lacks), else a 0 W reading, else
    None when no field gives one."""
    readings = [w for w in (_number(info.get(key)) for key in _POWER_KEYS) if w is not None]
    positive = [w for w in readings if w > 0]
    if positive:
        return positive[0]
    return readings[0] if readings else None


def _energy_count(count: Mapping[str, Any]) -> tuple[int, float] | None:
    """(accumulator, microjoules per count) from amdsmi_get_energy_count's dict, or None when it holds no
    usable counter. The accumulator is "energy_accumulator" in ROCm 6.3 and later, "power" before."""
    raw = count.get("energy_accumulator", count.get("power"))
    resolution_uj = count.get("counter_resolution")
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        return None
    if isinstance(resolution_uj, bool) or not isinstance(resolution_uj, int | float):
        return None
    if not math.isfinite(resolution_uj) or resolution_uj <= 0:
        return None
    return raw, float(resolution_uj)


# -- one AMD SMI session per module, shared by every source and by available() -------------------------
_sessions_lock = threading.Lock()
_sessions: dict[int, tuple[Any, int]] = {}  # id(module) -> (module, users)


def _acquire(smi: Any) -> None:
    """Start AMD SMI for one more user: amdsmi_init for the first only. Raises what amdsmi_init raises."""
    with _sessions_lock:
        module, users = _sessions.get(id(smi), (smi, 0))
        if users == 0:
            flags = getattr(smi, "AmdSmiInitFlags", None)
            gpus_only = getattr(flags, "INIT_AMD_GPUS", None)
            if gpus_only is None:
                smi.amdsmi_init()  # its default is GPUs only
            else:
                smi.amdsmi_init(gpus_only)
        _sessions[id(smi)] = (module, users + 1)


def _release(smi: Any) -> None:
    """One user fewer: amdsmi_shut_down when it was the last. Never raises."""
    with _sessions_lock:
        module, users = _sessions.get(id(smi), (smi, 0))
        if users > 1:
            _sessions[id(smi)] = (module, users - 1)
            return
        _sessions.pop(id(smi), None)
        if users == 1:
            try:
                smi.amdsmi_shut_down()
            except Exception as exc:  # shutting down must never fail the caller
                log.debug("amdsmi_shut_down failed: %s", exc)


class AmdSmiSource:
    """Measured energy of every visible AMD GPU, in joules since the source was opened."""

    name = "amdsmi"

    def __init__(
        self,
        amdsmi_module: Any = None,
        gpu_indices: Sequence[int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open AMD SMI and every GPU (or those in `gpu_indices`, amdsmi handle indices).

        Raises PowerSourceError when amdsmi is missing, AMD SMI cannot start (no amdgpu driver) or no GPU
        can be measured. `clock` is the monotonic clock the power integration uses.
        """
        self._smi = _load(amdsmi_module)
        self._error: type[BaseException] = _error_class(self._smi)
        self._clock = clock
        self._closed = True
        self._gpus: list[GpuEnergy] = []
        try:
            _acquire(self._smi)
        except Exception as exc:  # any amdsmi or loader error: reported as PowerSourceError
            raise PowerSourceError(
                f"AMD SMI could not start: {_describe(exc)}",
                reason=_reason(exc),
                fix=_PERMISSION_FIX
                if _code(exc) == _NO_PERM
                else "check that the amdgpu driver is loaded (amd-smi answers) for this user",
            ) from None
        self._closed = False
        try:
            self._open_gpus(gpu_indices)
        except BaseException:  # Ctrl-C too: release AMD SMI again; re-raised
            self.close()
            raise
        self._domains = tuple(Domain(gpu.domain_name, "gpu", "measured") for gpu in self._gpus)

    def _open_gpus(self, gpu_indices: Sequence[int] | None) -> None:
        try:
            handles = list(self._smi.amdsmi_get_processor_handles())
        except Exception as exc:  # any amdsmi error: reported as PowerSourceError
            raise PowerSourceError(f"AMD SMI could not list GPUs: {_describe(exc)}", reason=_reason(exc)) from None
        count = len(handles)
        if count == 0:
            raise PowerSourceError("AMD SMI sees no AMD GPU", reason="absent")
        indices = list(range(count)) if gpu_indices is None else list(dict.fromkeys(gpu_indices))
        if not indices:
            raise PowerSourceError("no GPU selected")
        unknown = [i for i in indices if not 0 <= i < count]
        if unknown:
            raise PowerSourceError(f"GPU index {unknown[0]} not visible: AMD SMI sees GPUs 0-{count - 1}")
        problems: list[str] = []
        denied = 0
        for index in indices:
            try:
                self._gpus.append(self._open_gpu(index, handles[index]))
            except PowerSourceError as exc:
                problems.append(str(exc))
            except self._error as exc:
                problems.append(f"GPU {index}: {_describe(exc)}")
                denied += _code(exc) == _NO_PERM
        for problem in problems:
            log.warning("wattprint: %s; skipping that GPU", problem)
        if not self._gpus:
            every_denied = denied == len(problems)
            raise PowerSourceError(
                "no GPU energy readable: " + "; ".join(problems),
                reason="permission" if every_denied else "unreadable",
                fix=_PERMISSION_FIX if every_denied else None,
            )

    def _open_gpu(self, index: int, handle: Any) -> GpuEnergy:
        """Identify one GPU and pick its energy method: the accumulator if it has one, else power."""
        smi = self._smi
        name = self._name(index, handle)
        uuid: str | None = None
        power_limit_w: float | None = None
        with contextlib.suppress(self._error):
            uuid = _text(smi.amdsmi_get_gpu_device_uuid(handle)) or None
        with contextlib.suppress(self._error, KeyError, TypeError):
            cap_uw = _number_uw(smi.amdsmi_get_power_cap_info(handle)["power_cap"])
            power_limit_w = cap_uw / UW_PER_W if cap_uw else None
        try:
            counter = _energy_count(smi.amdsmi_get_energy_count(handle))
        except self._error as exc:
            if _code(exc) not in _UNSUPPORTED:
                raise
            counter = None
        if counter is not None:
            return GpuEnergy(self.name, index, handle, name, uuid, power_limit_w, COUNTER, last_count=counter[0])
        try:
            power_w = _power_w(smi.amdsmi_get_power_info(handle))
        except self._error as exc:
            if _code(exc) not in _UNSUPPORTED:
                raise
            power_w = None
        if power_w is None:
            raise PowerSourceError(f"GPU {index} ({name}) reports neither energy nor power")
        gpu = GpuEnergy(self.name, index, handle, name, uuid, power_limit_w, POWER_SAMPLING)
        gpu.last_w, gpu.last_t = power_w, self._clock()
        return gpu

    def _name(self, index: int, handle: Any) -> str:
        """The market name (amdsmi_get_gpu_asic_info), else the board's product name, else "AMD GPU <i>"."""
        queries = (
            (self._smi.amdsmi_get_gpu_asic_info, "market_name"),
            (self._smi.amdsmi_get_gpu_board_info, "product_name"),
        )
        for query, key in queries:
            with contextlib.suppress(self._error, KeyError, TypeError):
                name = _text(query(handle)[key])
                if name and name != "N/A":
                    return name
        return f"AMD GPU {index}"

    def domains(self) -> Sequence[Domain]:
        """One "gpu" domain per GPU: "amdsmi:0", "amdsmi:1", ..."""
        return self._domains

    def detail(self) -> str:
        """One line for the record: what is measured."""
        return f"{len(self._gpus)} AMD GPU(s)"

    def gpus(self) -> list[dict[str, Any]]:
        """Index, name, UUID (None where amdsmi cannot tell), power cap (W, or None) and energy method of
        each GPU: the keys NvmlSource.gpus() gives."""
        return [gpu.info() for gpu in self._gpus]

    def read(self) -> Reading:
        """Cumulative joules per GPU since open.

        A failed amdsmi call raises its AmdSmiLibraryException. An accumulator that went backwards (GPU
        reset, driver reloaded) raises PowerSourceError, after re-basing on the new value, so the total never
        decreases and the next read goes on from there; the energy between the last good read and the reset
        is lost, and the monitor marks the domain degraded.
        """
        if self._closed:
            raise PowerSourceError("AMD SMI source is closed")
        smi = self._smi
        backwards: list[str] = []
        for gpu in self._gpus:
            if gpu.method == COUNTER:
                counter = _energy_count(smi.amdsmi_get_energy_count(gpu.handle))
                if counter is None:
                    raise PowerSourceError(f"{gpu.domain_name}: AMD SMI gave no energy count")
                count, resolution_uj = counter
                went_back = gpu.add_count(count, resolution_uj / UJ_PER_J)
                if went_back:
                    backwards.append(went_back)
            else:
                power_w = _power_w(smi.amdsmi_get_power_info(gpu.handle))
                if power_w is None:
                    raise PowerSourceError(f"{gpu.domain_name}: AMD SMI gave no power reading")
                gpu.add_power(power_w, self._clock())
        if backwards:
            raise PowerSourceError("; ".join(backwards))
        return Reading(self._clock(), {gpu.domain_name: gpu.total_j for gpu in self._gpus})

    def processes(self) -> dict[int, set[int]]:
        """PIDs with a context on each GPU, by amdsmi index; a GPU that cannot list them gives none.

        Recent amdsmi releases leave the calling process out of the list: a job running inside this very
        process is not seen here (the monitor then charges every GPU, as for a job never seen on one).
        """
        if self._closed:
            raise PowerSourceError("AMD SMI source is closed")
        result: dict[int, set[int]] = {}
        for gpu in self._gpus:
            try:
                entries = list(self._smi.amdsmi_get_gpu_process_list(gpu.handle))
            except self._error as exc:
                if _code(exc) not in _UNSUPPORTED:
                    raise
                entries = []
            pids: set[int] = set()
            for entry in entries:
                pid = self._pid(gpu.handle, entry)
                if pid is not None:
                    pids.add(pid)
            result[gpu.index] = pids
        return result

    def _pid(self, handle: Any, entry: Any) -> int | None:
        """The PID of one process-list entry: a dict (ROCm 6.2 and later) or a process handle to look up."""
        if isinstance(entry, Mapping):
            return int(entry["pid"])
        try:
            return int(self._smi.amdsmi_get_gpu_process_info(handle, entry)["pid"])
        except self._error as exc:
            if _code(exc) == _NOT_FOUND:  # the process ended between the list and the look-up
                return None
            raise

    def close(self) -> None:
        """Release AMD SMI (once; it is shut down when no other source uses it). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _release(self._smi)


def _number_uw(value: Any) -> float | None:
    """A power cap in microwatts, or None where amdsmi gives none."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _error_class(smi: Any) -> type[BaseException]:
    """amdsmi's base exception, AmdSmiException (every error it raises derives from it)."""
    error = getattr(smi, "AmdSmiException", None)
    return error if isinstance(error, type) and issubclass(error, BaseException) else Exception


def _load(amdsmi_module: Any) -> Any:
    """The given amdsmi module, or `amdsmi` imported now.

    amdsmi prints to stdout and then fails with KeyError rather than ImportError when the package is
    there but libamd_smi.so is not: its output is kept out of the job's stdout and put in the error.
    """
    if amdsmi_module is not None:
        return amdsmi_module
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            import amdsmi
    except ImportError:
        raise PowerSourceError(
            f"amdsmi is not installed ({INSTALL_FIX})", reason="missing-library", fix=INSTALL_FIX
        ) from None
    except Exception as exc:  # the package is there, its shared library is not
        said = " ".join(printed.getvalue().split())
        raise PowerSourceError(
            f"amdsmi could not load libamd_smi.so ({type(exc).__name__}: {exc}){': ' + said if said else ''}",
            reason="missing-library",
            fix="install ROCm's amd-smi-lib package, which provides libamd_smi.so",
        ) from None
    if printed.getvalue().strip():
        log.debug("amdsmi said on import: %s", printed.getvalue().strip())
    return amdsmi


def available(module: Any = None) -> bool:
    """Whether AMD SMI starts and sees at least one AMD GPU. Never raises."""
    try:
        smi = _load(module)
        _acquire(smi)
    except Exception:  # never raises: any fault means no GPU
        return False
    try:
        return len(list(smi.amdsmi_get_processor_handles())) > 0
    except Exception:  # never raises: any fault means no GPU
        return False
    finally:
        _release(smi)
