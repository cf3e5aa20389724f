"""A scripted stand-in for the `pynvml` module, for machines without an NVIDIA driver.

`FakeNvml` has pynvml's function names, error constants and error classes, and behaves like the
real module where the source depends on it:
  - `NVMLError(code)` returns the subclass for that code (NVMLError(3) is an
    NVMLError_NotSupported), and `NVMLError_NotSupported()` has `.value == 3`, as pynvml builds
    them in `_extractNVMLErrorsAsClasses`;
  - device calls before nvmlInit or after the last nvmlShutdown raise NVMLError_Uninitialized;
    init and shutdown are reference counted, like NVML's;
  - a GPU without an energy counter (pre-Volta) raises NVMLError_NotSupported from
    nvmlDeviceGetTotalEnergyConsumption.
Tests script each `FakeGpu`'s counter, power and processes between reads.

Power management (for the power-limit optimizer): nvmlDeviceGetPowerManagementLimit,
...LimitConstraints, ...DefaultLimit and nvmlDeviceSetPowerManagementLimit, in milliwatts as in pynvml.
Every set call is recorded in `FakeNvml.set_calls` as (GPU index, milliwatts), refused ones too, and,
when `FakeNvml.set_calls_file` names a file, appended to it at once as "index milliwatts" lines (a
subprocess killed by a signal leaves its calls there). `FakeGpu.set_limit_error` scripts a refusal
(NVML_ERROR_NO_PERMISSION for a user who is not root). `FakeNvml.run_step` is a fake-only workload
whose time and energy follow the power limit (see its docstring), on the fake clock `FakeNvml.clock`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_UNKNOWN = 999

ERROR_STRINGS: dict[int, str] = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
    NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
    NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
    NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
    NVML_ERROR_IN_USE: "In Use",
    NVML_ERROR_MEMORY: "Insufficient Memory",
    NVML_ERROR_NO_DATA: "No Data",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """pynvml's base error: `NVMLError(code)` is an instance of that code's subclass."""

    _value_class: dict[int, type[NVMLError]] = {}
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._value_class.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return ERROR_STRINGS.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


class NVMLLibraryMismatchError(Exception):
    """Raised by pynvml's unversioned calls when the driver lacks the versioned function."""


def _error_class(code: int) -> type[NVMLError]:
    """pynvml's per-code subclass, named like NVML_ERROR_NOT_SUPPORTED -> NVMLError_NotSupported."""

    def new(cls: type[NVMLError], *args: Any) -> NVMLError:
        return NVMLError.__new__(cls, code)

    return type("NVMLError", (NVMLError,), {"__new__": new})


ERROR_CLASSES: dict[str, type[NVMLError]] = {}
for _name, _code in list(globals().items()):
    if _name.startswith("NVML_ERROR_"):
        _class_name = "NVMLError_" + string.capwords(_name[len("NVML_ERROR_") :], "_").replace("_", "")
        _cls = _error_class(_code)
        _cls.__name__ = _cls.__qualname__ = _class_name
        globals()[_class_name] = _cls
        ERROR_CLASSES[_class_name] = _cls
        NVMLError._value_class[_code] = _cls

NVMLError_NotSupported = ERROR_CLASSES["NVMLError_NotSupported"]
NVMLError_Uninitialized = ERROR_CLASSES["NVMLError_Uninitialized"]
NVMLError_InvalidArgument = ERROR_CLASSES["NVMLError_InvalidArgument"]
NVMLError_DriverNotLoaded = ERROR_CLASSES["NVMLError_DriverNotLoaded"]
NVMLError_LibraryNotFound = ERROR_CLASSES["NVMLError_LibraryNotFound"]
NVMLError_GpuIsLost = ERROR_CLASSES["NVMLError_GpuIsLost"]
NVMLError_FunctionNotFound = ERROR_CLASSES["NVMLError_FunctionNotFound"]


@dataclass
class ProcessInfo:
    """What nvmlDevice*RunningProcesses return per process (pynvml's c_nvmlProcessInfo_t fields)."""

    pid: int
    usedGpuMemory: int | None = None
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass
class ProcessUtilizationSample:
    """What nvmlDeviceGetProcessUtilization returns per sample (pynvml's c_nvmlProcessUtilizationSample_t)."""

    pid: int
    timeStamp: int
    smUtil: int
    memUtil: int = 0
    encUtil: int = 0
    decUtil: int = 0


@dataclass
class FakeMigDevice:
    """One MIG device (a compute instance) of a GPU in MIG mode: its GPU instance, its compute slices, and the
    processes running on it. A handle of its own, as NVML's MIG device handles are."""

    gpu_instance_id: int
    compute_slices: int
    pids: list[int] = field(default_factory=list)
    multiprocessor_count: int = 14  # an A100 1g.5gb instance's SMs


@dataclass
class DeviceAttributes:
    """What nvmlDeviceGetAttributes returns (pynvml's c_nvmlDeviceAttributes fields)."""

    multiprocessorCount: int
    sharedCopyEngineCount: int
    sharedDecoderCount: int
    sharedEncoderCount: int
    sharedJpegCount: int
    sharedOfaCount: int
    gpuInstanceSliceCount: int
    computeInstanceSliceCount: int
    memorySizeMB: int


@dataclass
class GpuInstanceProfileInfo:
    """The fields of pynvml's c_nvmlGpuInstanceProfileInfo_v2_t that a reader uses."""

    id: int
    sliceCount: int
    instanceCount: int
    multiprocessorCount: int


# GPU-instance profile id -> its slices (NVML_GPU_INSTANCE_PROFILE_1_SLICE = 0, ..., _7_SLICE = 4, _8_SLICE = 5,
# _6_SLICE = 6); a card supports the profiles up to its own slice count (7 on A100/H100, 4 on A30)
PROFILE_SLICES = {0: 1, 1: 2, 2: 3, 3: 4, 4: 7, 5: 8, 6: 6}


@dataclass
class FakeGpu:
    """One scripted GPU. None for energy_mj means no counter (pre-Volta); for power, no sensor.

    `processes_supported` False makes the process queries raise NotSupported; `fail_with` set to
    an NVML error code makes every energy and power query raise it (a lost GPU).
    """

    name: str | bytes = "NVIDIA A100-SXM4-40GB"
    uuid: str | bytes = "GPU-00000000-0000-0000-0000-000000000000"
    energy_mj: int | None = 0
    power_mw: int | None = 100_000
    power_limit_mw: int | None = 400_000
    compute_pids: list[int] = field(default_factory=list)
    graphics_pids: list[int] = field(default_factory=list)
    processes_supported: bool = True
    fail_with: int | None = None
    # nvmlDeviceGetProcessUtilization's samples: (pid, timeStamp in us, smUtil %); None: not supported
    utilization: list[tuple[int, int, int]] | None = field(default_factory=list)
    # power management, milliwatts: (min, max) settable limits (None: the GPU cannot set limits), the
    # driver's default limit (None: the power_limit_mw it was made with), and an NVML error code that
    # nvmlDeviceSetPowerManagementLimit raises (NVML_ERROR_NO_PERMISSION: the caller is not root)
    limit_constraints_mw: tuple[int, int] | None = (100_000, 400_000)
    default_limit_mw: int | None = None
    set_limit_error: int | None = None
    # MIG: None is MIG mode off (or, with mig_supported False, a GPU without MIG: the MIG calls raise
    # NOT_SUPPORTED); a list puts the card in MIG mode with these MIG devices, out of mig_slices slices. In MIG
    # mode the card itself lists processes to root only: here it raises NO_PERMISSION, as for a user.
    mig_devices: list[FakeMigDevice] | None = None
    mig_slices: int = 7
    mig_supported: bool = True

    def __post_init__(self) -> None:
        if self.default_limit_mw is None:
            self.default_limit_mw = self.power_limit_mw


class FakeNvml:
    """A `pynvml`-like module object over a list of FakeGpu; handles are the FakeGpu objects."""

    NVMLError = NVMLError
    NVMLLibraryMismatchError = NVMLLibraryMismatchError

    def __init__(self, gpus: list[FakeGpu] | None = None, init_error: int | None = None) -> None:
        self.gpus: list[FakeGpu] = list(gpus or [])
        self.init_error = init_error  # e.g. NVML_ERROR_DRIVER_NOT_LOADED: nvmlInit raises it
        self.refcount = 0
        self.init_calls = 0
        self.shutdown_calls = 0
        for const_name, value in globals().items():
            if const_name.startswith("NVML_"):
                setattr(self, const_name, value)
        for class_name, cls in ERROR_CLASSES.items():
            setattr(self, class_name, cls)
        self.set_calls: list[tuple[int, int]] = []  # every nvmlDeviceSetPowerManagementLimit: (index, mW)
        self.set_calls_file: str | None = None  # where set calls are also appended, one "index mW" line each
        self.now = 0.0  # the fake clock that run_step moves on, in seconds

    # -- library -----------------------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.refcount += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self.shutdown_calls += 1
        self.refcount -= 1

    def nvmlErrorString(self, result: int) -> str:
        return ERROR_STRINGS.get(result, "Unknown Error")

    def _check_init(self) -> None:
        if self.refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: FakeGpu) -> FakeGpu:
        self._check_init()
        if handle not in self.gpus:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return handle

    # -- devices -----------------------------------------------------------------------------
    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str | bytes:
        return self._gpu(handle).name

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str | bytes:
        return self._gpu(handle).uuid

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeGpu) -> int:
        gpu = self._gpu(handle)
        if gpu.power_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        gpu = self._gpu(handle)
        if gpu.fail_with is not None:
            raise NVMLError(gpu.fail_with)
        if gpu.energy_mj is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.energy_mj

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        gpu = self._gpu(handle)
        if gpu.fail_with is not None:
            raise NVMLError(gpu.fail_with)
        if gpu.power_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_mw

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu | FakeMigDevice) -> list[ProcessInfo]:
        if isinstance(handle, FakeMigDevice):
            self._mig_device(handle)
            return [ProcessInfo(pid, None, handle.gpu_instance_id, 0) for pid in handle.pids]
        gpu = self._gpu(handle)
        if not gpu.processes_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        if gpu.mig_devices is not None:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return [ProcessInfo(pid) for pid in gpu.compute_pids]

    def nvmlDeviceGetProcessUtilization(self, handle: FakeGpu, timeStamp: int) -> list[ProcessUtilizationSample]:
        """Samples newer than `timeStamp`; NVML answers NOT_FOUND when there are none."""
        gpu = self._gpu(handle)
        if gpu.utilization is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        newer = [ProcessUtilizationSample(pid, ts, sm) for pid, ts, sm in gpu.utilization if ts > timeStamp]
        if not newer:
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return newer

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: FakeGpu) -> list[ProcessInfo]:
        gpu = self._gpu(handle)
        if not gpu.processes_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [ProcessInfo(pid) for pid in gpu.graphics_pids]

    # -- Multi-Instance GPU ---------------------------------------------------------------------
    def _mig_device(self, handle: FakeMigDevice) -> FakeMigDevice:
        self._check_init()
        if not any(gpu.mig_devices and handle in gpu.mig_devices for gpu in self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return handle

    def _mig_capable(self, handle: FakeGpu) -> FakeGpu:
        gpu = self._gpu(handle)
        if not gpu.mig_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        """[current, pending] mode: NVML_DEVICE_MIG_ENABLE (1) or _DISABLE (0)."""
        on = int(self._mig_capable(handle).mig_devices is not None)
        return [on, on]

    def nvmlDeviceGetGpuInstanceProfileInfo(self, handle: FakeGpu, profile: int, version: int = 2) -> Any:
        gpu = self._mig_capable(handle)
        slices = PROFILE_SLICES.get(profile)
        if slices is None or slices > gpu.mig_slices:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED if slices is not None else NVML_ERROR_INVALID_ARGUMENT)
        return GpuInstanceProfileInfo(profile, slices, gpu.mig_slices // slices, 14 * slices)

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        gpu = self._mig_capable(handle)
        return gpu.mig_slices if gpu.mig_devices is not None else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeMigDevice:
        gpu = self._mig_capable(handle)
        if gpu.mig_devices is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if not 0 <= index < len(gpu.mig_devices):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return gpu.mig_devices[index]

    def nvmlDeviceGetGpuInstanceId(self, handle: FakeMigDevice) -> int:
        return self._mig_device(handle).gpu_instance_id

    def nvmlDeviceGetAttributes(self, handle: FakeGpu | FakeMigDevice) -> DeviceAttributes:
        """Engine counts and slices; NVML answers for MIG device handles only."""
        if not isinstance(handle, FakeMigDevice):
            self._gpu(handle)
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        mig = self._mig_device(handle)
        slices = mig.compute_slices
        return DeviceAttributes(mig.multiprocessor_count, 1, 0, 0, 0, 0, slices, slices, 5_000 * slices)

    # -- power management (milliwatts) --------------------------------------------------------
    def nvmlDeviceGetPowerManagementLimit(self, handle: FakeGpu) -> int:
        gpu = self._gpu(handle)
        if gpu.power_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.power_limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: FakeGpu) -> list[int]:
        """[min, max] as pynvml returns them: a list."""
        gpu = self._gpu(handle)
        if gpu.limit_constraints_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return list(gpu.limit_constraints_mw)

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: FakeGpu) -> int:
        gpu = self._gpu(handle)
        if gpu.default_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return gpu.default_limit_mw

    def nvmlDeviceSetPowerManagementLimit(self, handle: FakeGpu, limit: int) -> None:
        """Recorded first, then refused like NVML: the scripted error, NOT_SUPPORTED without limits,
        INVALID_ARGUMENT outside the constraints; otherwise the enforced limit becomes `limit`."""
        gpu = self._gpu(handle)
        index = self.gpus.index(gpu)
        self.set_calls.append((index, int(limit)))
        if self.set_calls_file is not None:
            with open(self.set_calls_file, "a", encoding="utf-8") as f:
                f.write(f"{index} {int(limit)}\n")
        if gpu.set_limit_error is not None:
            raise NVMLError(gpu.set_limit_error)
        if gpu.limit_constraints_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        low, high = gpu.limit_constraints_mw
        if not low <= limit <= high:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        gpu.power_limit_mw = int(limit)

    # -- a workload whose time and energy follow the power limit (fake-only, not in pynvml) -----------
    STEP_TIME_EXPONENT = 1.0 / 3.0

    def run_step(self, full_power_s: float = 0.1) -> float:
        """One training step on every GPU. A GPU whose largest settable limit is Pmax, held at limit P, takes
        full_power_s x (Pmax / P) ** (1/3) seconds and draws P watts throughout: speed falls as the cube
        root of power (clock and voltage fall together), so energy per step falls with the limit while
        time per step grows. Its counter (energy_mj) gains P x time and its power reading becomes P. The
        fake clock `now` moves on by the slowest GPU's time, which is returned. With Zeus's cost
        eta x energy + (1 - eta) x Pmax x time per step, the cost is lowest at Pmax x (1 - eta) / (2 eta) (taken
        into [min, max]): the lowest limit for eta = 1, the highest for eta = 0, Pmax / 2 for eta = 0.5."""
        slowest = 0.0
        for gpu in self.gpus:
            limit_mw = gpu.power_limit_mw
            if limit_mw is None or gpu.limit_constraints_mw is None:
                continue
            top_mw = gpu.limit_constraints_mw[1]
            seconds = full_power_s * (top_mw / limit_mw) ** self.STEP_TIME_EXPONENT
            if gpu.energy_mj is not None:
                gpu.energy_mj += round(limit_mw * seconds)  # mW x s = mJ
            if gpu.power_mw is not None:
                gpu.power_mw = limit_mw
            slowest = max(slowest, seconds)
        self.now += slowest
        return slowest

    def clock(self) -> float:
        """The fake monotonic clock, in seconds (pass it where a `clock` is taken)."""
        return self.now
