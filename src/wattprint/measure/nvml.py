"""NVIDIA GPU energy through NVML (the `pynvml` module of the nvidia-ml-py package).

Volta and later GPUs keep a total-energy counter (millijoules since the driver loaded): a GPU's
energy is the counter minus its value at open, exact whatever the sampling interval. Older GPUs
only report power (milliwatts); for them each read() samples the power and integrates it over
time with the trapezoidal rule, which is an estimate good to the sampling interval.

NVML numbers GPUs by PCI bus order and ignores CUDA_VISIBLE_DEVICES: domain "nvml:<i>" is NVML's
index i, and `gpus()` gives each GPU's UUID so it can be matched to a CUDA device.
`pynvml` is imported lazily, in the constructor and in `available()`, never at module import.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from wattprint.errors import PowerSourceError
from wattprint.measure.base import Domain, Reading
from wattprint.measure.gpu_energy import COUNTER, POWER_SAMPLING, GpuEnergy
from wattprint.units import MJ_PER_J

log = logging.getLogger("wattprint")

MW_PER_W = 1e3  # NVML reports power in milliwatts
# Error codes as pynvml defines them; read from the module when it has them.
_NOT_SUPPORTED = 3
_FUNCTION_NOT_FOUND = 13
MIG_PROFILES = 8  # GPU-instance profile ids 0-7 (NVML_GPU_INSTANCE_PROFILE_1_SLICE ... _8_SLICE and variants)


def _text(value: Any) -> str:
    """NVML strings are bytes in old pynvml releases and str in recent ones."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class NvmlSource:
    """Measured energy of every visible NVIDIA GPU, in joules since the source was opened."""

    name = "nvml"

    def __init__(
        self,
        nvml_module: Any = None,
        gpu_indices: Sequence[int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Open NVML and every GPU (or those in `gpu_indices`, NVML indices).

        Raises PowerSourceError when pynvml is missing, NVML cannot start (no driver) or no GPU
        can be measured. `clock` is the monotonic clock the power integration uses.
        """
        self._nvml = _load(nvml_module)
        self._clock = clock
        self._closed = True
        self._gpus: list[GpuEnergy] = []
        self._util_seen: dict[int, int] = {}  # per GPU: the newest utilisation sample read (NVML's timestamps)
        self._mig_slices: dict[int, int] = {}  # per GPU in MIG mode: its slices (fixed by the card)
        self._mig_seen: dict[int, list[tuple[float, set[int]]]] | None = None  # the last MIG layout read
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # any NVML or loader error: reported as PowerSourceError
            raise PowerSourceError(
                f"NVML could not start: {_describe(exc)}",
                fix="check that the NVIDIA driver is loaded (nvidia-smi answers) for this user",
            ) from None
        self._closed = False
        try:
            self._open_gpus(gpu_indices)
        except BaseException:  # Ctrl-C too: shut NVML down again; re-raised
            self.close()
            raise
        self._domains = tuple(Domain(gpu.domain_name, "gpu", "measured") for gpu in self._gpus)

    def _open_gpus(self, gpu_indices: Sequence[int] | None) -> None:
        nvml = self._nvml
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:  # any NVML error: reported as PowerSourceError
            raise PowerSourceError(f"NVML could not count GPUs: {_describe(exc)}") from None
        if count <= 0:
            raise PowerSourceError("NVML sees no GPU", reason="absent")
        indices = list(range(count)) if gpu_indices is None else list(dict.fromkeys(gpu_indices))
        if not indices:
            raise PowerSourceError("no GPU selected")
        unknown = [i for i in indices if not 0 <= i < count]
        if unknown:
            raise PowerSourceError(f"GPU index {unknown[0]} not visible: NVML sees GPUs 0-{count - 1}")
        problems: list[str] = []
        for index in indices:
            try:
                self._gpus.append(self._open_gpu(index))
            except PowerSourceError as exc:
                problems.append(str(exc))
            except nvml.NVMLError as exc:
                problems.append(f"GPU {index}: {_describe(exc)}")
        for problem in problems:
            log.warning("wattprint: %s; skipping that GPU", problem)
        if not self._gpus:
            raise PowerSourceError("no GPU energy readable: " + "; ".join(problems))

    def _open_gpu(self, index: int) -> GpuEnergy:
        """Identify one GPU and pick its energy method: the counter if it has one, else power."""
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _text(nvml.nvmlDeviceGetName(handle))
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        try:
            power_limit_w: float | None = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / MW_PER_W
        except nvml.NVMLError:
            power_limit_w = None
        try:
            counter = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except nvml.NVMLError as exc:
            if not _unsupported(nvml, exc):
                raise
        else:
            return GpuEnergy(self.name, index, handle, name, uuid, power_limit_w, COUNTER, last_count=counter)
        try:
            power_mw = float(nvml.nvmlDeviceGetPowerUsage(handle))
        except nvml.NVMLError as exc:
            if _unsupported(nvml, exc):
                raise PowerSourceError(f"GPU {index} ({name}) reports neither energy nor power") from None
            raise
        gpu = GpuEnergy(self.name, index, handle, name, uuid, power_limit_w, POWER_SAMPLING)
        gpu.last_w, gpu.last_t = power_mw / MW_PER_W, self._clock()
        return gpu

    def domains(self) -> Sequence[Domain]:
        """One "gpu" domain per GPU: "nvml:0", "nvml:1", ..."""
        return self._domains

    def detail(self) -> str:
        """One line for the record: what is measured."""
        return f"{len(self._gpus)} NVIDIA GPU(s)"

    def gpus(self) -> list[dict[str, Any]]:
        """Index, name, UUID, enforced power limit (W, or None) and energy method of each GPU."""
        return [gpu.info() for gpu in self._gpus]

    def read(self) -> Reading:
        """Cumulative joules per GPU since open.

        A failed NVML call raises. A counter that went backwards (driver reloaded) raises too,
        after re-basing on the new value, so the total never decreases and the next read goes on
        from there; the energy between the last good read and the reset is lost, and the monitor
        marks the domain degraded.
        """
        if self._closed:
            raise PowerSourceError("NVML source is closed")
        nvml = self._nvml
        backwards: list[str] = []
        for gpu in self._gpus:
            if gpu.method == COUNTER:
                counter = int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
                went_back = gpu.add_count(counter, 1 / MJ_PER_J, " mJ")
                if went_back:
                    backwards.append(went_back)
            else:
                gpu.add_power(float(nvml.nvmlDeviceGetPowerUsage(gpu.handle)) / MW_PER_W, self._clock())
        if backwards:
            raise PowerSourceError("; ".join(backwards))
        return Reading(self._clock(), {gpu.domain_name: gpu.total_j for gpu in self._gpus})

    def processes(self) -> dict[int, set[int]]:
        """PIDs with a compute or graphics context on each GPU, by NVML index.

        A GPU or driver that cannot list one kind of process gives what the other kind shows.
        """
        if self._closed:
            raise PowerSourceError("NVML source is closed")
        nvml = self._nvml
        mismatch = getattr(nvml, "NVMLLibraryMismatchError", None)
        tolerated: tuple[type[BaseException], ...] = (mismatch,) if isinstance(mismatch, type) else ()
        result: dict[int, set[int]] = {}
        mig = self.mig_devices()  # in MIG mode the parent lists processes to root only: ask each MIG device
        for gpu in self._gpus:
            if gpu.index in mig:
                result[gpu.index] = set().union(*(pids for _, pids in mig[gpu.index]))
                continue
            pids: set[int] = set()
            queries = (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses)
            for query in queries:
                try:
                    pids.update(int(proc.pid) for proc in query(gpu.handle))
                except nvml.NVMLError as exc:
                    if not _unsupported(nvml, exc):
                        raise
                except tolerated:
                    pass  # pynvml newer than the driver: the versioned call does not exist
            result[gpu.index] = pids
        return result

    def mig_devices(self, fresh: bool = True) -> dict[int, list[tuple[float, set[int]]]]:
        """For each GPU in MIG mode, by NVML index: each MIG device's (compute instance's) part of the card,
        as its compute slices over the card's slices, and the PIDs running on it.

        NVML keeps no energy counter per MIG instance and no per-process utilisation in MIG mode, so a
        MIG device's part of the card is its share of the slices; slices nobody uses stay unattributed (in
        the whole card's figure). GPUs not in MIG mode, or whose MIG layout cannot be read, are left out.
        """
        if self._closed:
            raise PowerSourceError("NVML source is closed")
        if not fresh and self._mig_seen is not None:
            return self._mig_seen  # as processes() just read it
        result: dict[int, list[tuple[float, set[int]]]] = {}
        for gpu in self._gpus:
            try:
                layout = self._mig_layout(gpu)
            except (self._nvml.NVMLError, AttributeError):  # not a MIG-capable GPU, or an old pynvml
                continue
            if layout:
                result[gpu.index] = layout
        self._mig_seen = result
        return result

    def _mig_layout(self, gpu: GpuEnergy) -> list[tuple[float, set[int]]]:
        nvml, handle = self._nvml, gpu.handle
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        if current != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
            return []
        total = self._mig_slices.get(gpu.index, 0)
        if not total:  # the card's slices: the largest GPU-instance profile it has (7 on A100/H100, 4 on A30)
            for profile in range(MIG_PROFILES):
                try:
                    total = max(total, int(nvml.nvmlDeviceGetGpuInstanceProfileInfo(handle, profile).sliceCount))
                except nvml.NVMLError:
                    continue  # a profile this card does not have
            self._mig_slices[gpu.index] = total
        if total <= 0:
            return []
        layout = []
        for i in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
            except nvml.NVMLError:
                continue  # no MIG device at this index
            slices = int(nvml.nvmlDeviceGetAttributes(mig).computeInstanceSliceCount)
            pids = {int(proc.pid) for proc in nvml.nvmlDeviceGetComputeRunningProcesses(mig)}
            layout.append((slices / total, pids))
        return layout

    def utilization(self) -> dict[int, dict[int, int]]:
        """SM utilisation per process on each GPU since the last call, summed over NVML's samples, by NVML
        index then pid (nvmlDeviceGetProcessUtilization). A GPU that keeps no such samples, or had none
        since, is left out: its energy then goes whole to the processes running on it."""
        if self._closed:
            raise PowerSourceError("NVML source is closed")
        nvml = self._nvml
        result: dict[int, dict[int, int]] = {}
        for gpu in self._gpus:
            try:
                samples = nvml.nvmlDeviceGetProcessUtilization(gpu.handle, self._util_seen.get(gpu.index, 0))
            except (nvml.NVMLError, AttributeError):  # not supported, no samples yet, or an old pynvml
                continue
            per_pid: dict[int, int] = {}
            for sample in samples:
                per_pid[int(sample.pid)] = per_pid.get(int(sample.pid), 0) + int(sample.smUtil)
                self._util_seen[gpu.index] = max(self._util_seen.get(gpu.index, 0), int(sample.timeStamp))
            if per_pid:
                result[gpu.index] = per_pid
        return result

    def close(self) -> None:
        """Shut NVML down (once). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:  # shutting down must never fail the caller
            log.debug("nvmlShutdown failed: %s", exc)


def _load(nvml_module: Any) -> Any:
    """The given NVML module, or pynvml imported now."""
    if nvml_module is not None:
        return nvml_module
    try:
        import pynvml
    except ImportError:
        raise PowerSourceError(
            "pynvml is not installed (pip install nvidia-ml-py)",
            reason="missing-library",
            fix="pip install nvidia-ml-py",
        ) from None
    return pynvml


def _unsupported(nvml: Any, exc: BaseException) -> bool:
    """Whether an NVML error means "this GPU or driver cannot do that" rather than a fault."""
    codes = {
        getattr(nvml, "NVML_ERROR_NOT_SUPPORTED", _NOT_SUPPORTED),
        getattr(nvml, "NVML_ERROR_FUNCTION_NOT_FOUND", _FUNCTION_NOT_FOUND),
    }
    return getattr(exc, "value", None) in codes


def _describe(exc: BaseException) -> str:
    """NVML error text with its code, e.g. "Driver Not Loaded (NVML error 9)"."""
    code = getattr(exc, "value", None)
    try:
        text = str(exc)
    except Exception:  # a broken __str__: the type at least
        text = type(exc).__name__
    return f"{text} (NVML error {code})" if isinstance(code, int) else text or type(exc).__name__


def available(nvml_module: Any = None) -> bool:
    """Whether NVML starts and sees at least one GPU. Never raises."""
    try:
        nvml = _load(nvml_module)
        nvml.nvmlInit()
    except Exception:  # never raises: any fault means no GPU
        return False
    try:
        return int(nvml.nvmlDeviceGetCount()) > 0
    except Exception:  # never raises: any fault means no GPU
        return False
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
