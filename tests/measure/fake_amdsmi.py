"""A scripted stand-in for AMD's `amdsmi` Python package, for machines without ROCm or an AMD GPU.

`FakeAmdSmi` has the package's names and behaves like it where AmdSmiSource depends on it (sources:
ROCm/amdsmi py-interface/amdsmi_interface.py, amdsmi_exception.py, src/amd_smi/amd_smi.cc):
  - errors: AmdSmiException is the base; AmdSmiLibraryException(err_code) keeps abs(err_code) in
    `err_code` and a "AMDSMI_STATUS_... - text" line in `err_info`, and its str() is two lines;
    AmdSmiRetryException and AmdSmiTimeoutException derive from it; AmdSmiParameterException (a wrong
    argument type, err_code None) does not;
  - amdsmi_init(flag) wants an AmdSmiInitFlags (else AmdSmiParameterException); calls before init or
    after the shut-down raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT); amdsmi_shut_down never
    raises. Init is a flag (up to at least ROCm 6.3: a second init does nothing, one shut-down ends it
    for every user) or, with `refcounted=True`, reference counted (the ROCm 7 sources);
  - processor handles are opaque objects (ctypes handles in the real package); a GPU without an energy
    accumulator raises AMDSMI_STATUS_NOT_SUPPORTED from amdsmi_get_energy_count;
  - `version` picks a ROCm release's shapes: the energy dict's "power" (up to 6.2), "power" and
    "energy_accumulator" (6.3) or "energy_accumulator" (later); amdsmi_get_power_info's
    "current_socket_power" (from 6.1) and "socket_power" (from 6.4), with "N/A" for a missing field (from
    6.2; the raw 0xFFFF sentinel before); amdsmi_get_gpu_process_list's process handles with
    amdsmi_get_gpu_process_info (up to 6.1) or dicts (from 6.2). `hides_own_pid` leaves os.getpid() out
    of the process list, as recent releases do.
Tests script each `FakeGpu` between reads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_NOT_YET_IMPLEMENTED = 3
AMDSMI_STATUS_FAIL_LOAD_MODULE = 4
AMDSMI_STATUS_API_FAILED = 7
AMDSMI_STATUS_TIMEOUT = 8
AMDSMI_STATUS_RETRY = 9
AMDSMI_STATUS_NO_PERM = 10
AMDSMI_STATUS_IO = 12
AMDSMI_STATUS_FILE_ERROR = 14
AMDSMI_STATUS_INIT_ERROR = 18
AMDSMI_STATUS_BUSY = 30
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34
AMDSMI_STATUS_NO_DATA = 40
AMDSMI_STATUS_UNKNOWN_ERROR = 0xFFFFFFFF

ERROR_INFO: dict[int, str] = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_NOT_YET_IMPLEMENTED: "AMDSMI_STATUS_NOT_YET_IMPLEMENTED - Feature not yet implemented",
    AMDSMI_STATUS_FAIL_LOAD_MODULE: "AMDSMI_STATUS_FAIL_LOAD_MODULE - Fail to load lib",
    AMDSMI_STATUS_API_FAILED: "AMDSMI_STATUS_API_FAILED - API call failed",
    AMDSMI_STATUS_TIMEOUT: "AMDSMI_STATUS_TIMEOUT - Timeout in API call",
    AMDSMI_STATUS_RETRY: "AMDSMI_STATUS_RETRY - Retry operation",
    AMDSMI_STATUS_NO_PERM: "AMDSMI_STATUS_NO_PERM - Permission Denied",
    AMDSMI_STATUS_IO: "AMDSMI_STATUS_IO - I/O Error",
    AMDSMI_STATUS_FILE_ERROR: "AMDSMI_STATUS_FILE_ERROR - Error opening file",
    AMDSMI_STATUS_INIT_ERROR: "AMDSMI_STATUS_INIT_ERROR - Initialization error",
    AMDSMI_STATUS_BUSY: "AMDSMI_STATUS_BUSY - Device busy",
    AMDSMI_STATUS_NOT_FOUND: "AMDSMI_STATUS_NOT_FOUND - Device Not found",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
    AMDSMI_STATUS_NO_DATA: "AMDSMI_STATUS_NO_DATA - No data was found for given input",
}
UNKNOWN_INFO = "AMDSMI_STATUS_UNKNOWN_ERROR - An unknown error occurred"
NOT_AVAILABLE_RAW = 0xFFFF  # what a missing power field holds in the C struct; "N/A" from ROCm 6.2 on


class AmdSmiInitFlags(IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_AMD_APUS = 3
    INIT_NON_AMD_CPUS = 4
    INIT_NON_AMD_GPUS = 8


class AmdSmiException(Exception):
    """Base of every error amdsmi raises."""


class AmdSmiLibraryException(AmdSmiException):
    """A non-success status from libamd_smi."""

    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = ERROR_INFO.get(err_code, UNKNOWN_INFO)

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"

    def get_error_info(self) -> str:
        return self.err_info

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiRetryException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_RETRY)


class AmdSmiTimeoutException(AmdSmiLibraryException):
    def __init__(self) -> None:
        super().__init__(AMDSMI_STATUS_TIMEOUT)


class AmdSmiParameterException(AmdSmiException):
    """An argument of the wrong type; raised before the library is called, so no status code."""

    def __init__(self, receivedValue: Any, expectedType: Any, msg: str | None = None) -> None:
        super().__init__(msg)
        self.err_code = None
        self.actualType = type(receivedValue)
        self.expectedType = expectedType
        self.err_msg = msg or (
            f"Invalid parameter:\nActual type: {self.actualType}\nExpected type: {self.expectedType}"
        )

    def __str__(self) -> str:
        return self.err_msg


def _raise_status(code: int) -> None:
    """What amdsmi_interface._check_res raises for a status code."""
    if code == AMDSMI_STATUS_RETRY:
        raise AmdSmiRetryException()
    if code == AMDSMI_STATUS_TIMEOUT:
        raise AmdSmiTimeoutException()
    raise AmdSmiLibraryException(code)


class ProcessorHandle:
    """Stands in for amdsmi_wrapper.amdsmi_processor_handle (a ctypes pointer): opaque to callers."""

    def __init__(self, gpu: FakeGpu) -> None:
        self._gpu = gpu


class ProcessHandle:
    """Stands in for amdsmi_wrapper.amdsmi_process_handle_t (ROCm 6.1 and older)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid


@dataclass
class FakeGpu:
    """One scripted GPU.

    energy_count None means no accumulator (NOT_SUPPORTED); power fields are watts, or "N/A" for a field
    this GPU lacks (MI300 and later have current_socket_power, older ones average_socket_power);
    power_cap_uw None means NOT_SUPPORTED. `fail_with` set to a status code makes every energy and power
    query raise it; `gone_pids` are listed as handles (ROCm 6.1 and older) but have ended by the time
    amdsmi_get_gpu_process_info is asked.
    """

    market_name: str = "AMD Instinct MI210"
    product_name: str = "Instinct MI210"
    uuid: str = "a1ff740f-0000-1000-80a0-000000000000"
    energy_count: int | None = 0
    counter_resolution_uj: float = 15.3
    timestamp_ns: int = 0
    current_socket_power_w: int | str = "N/A"
    average_socket_power_w: int | str = 300
    socket_power_w: int | str = "N/A"
    power_cap_uw: int | None = 300_000_000
    pids: list[int] = field(default_factory=list)
    gone_pids: list[int] = field(default_factory=list)
    processes_supported: bool = True
    fail_with: int | None = None


class FakeAmdSmi:
    """An `amdsmi`-like module object over a list of FakeGpu."""

    AmdSmiInitFlags = AmdSmiInitFlags
    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiRetryException = AmdSmiRetryException
    AmdSmiTimeoutException = AmdSmiTimeoutException
    AmdSmiParameterException = AmdSmiParameterException

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        version: tuple[int, int] = (6, 3),
        init_error: int | None = None,
        handles_error: int | None = None,
        refcounted: bool = False,
        hides_own_pid: bool = False,
    ) -> None:
        self.gpus: list[FakeGpu] = list(gpus or [])
        self.version = version
        self.init_error = init_error  # e.g. AMDSMI_STATUS_DRIVER_NOT_LOADED: amdsmi_init raises it
        self.handles_error = handles_error  # amdsmi_get_processor_handles raises it
        self.refcounted = refcounted
        self.hides_own_pid = hides_own_pid
        self.init_calls = 0
        self.shutdown_calls = 0
        self.refs = 0  # inits not yet shut down (refcounted), or 1 while the flag is set
        self._handles: dict[int, ProcessorHandle] = {}
        if version < (6, 2):  # removed in ROCm 6.2, when the process list started giving dicts
            self.amdsmi_get_gpu_process_info = self._get_gpu_process_info

    @property
    def initialized(self) -> bool:
        return self.refs > 0

    # -- library -----------------------------------------------------------------------------------
    def amdsmi_init(self, flag: Any = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag, AmdSmiInitFlags)
        self.init_calls += 1
        if self.initialized:  # a no-op for a flag-style library; one more reference for a counted one
            self.refs += self.refcounted
            return
        if self.init_error is not None:
            _raise_status(self.init_error)
        self.refs = 1

    def amdsmi_shut_down(self) -> None:
        self.shutdown_calls += 1
        if not self.initialized:
            return  # AMDSMI_STATUS_SUCCESS, as the C library answers
        self.refs = self.refs - 1 if self.refcounted else 0

    def _check_init(self) -> None:
        if not self.initialized:
            _raise_status(AMDSMI_STATUS_NOT_INIT)

    def _gpu(self, handle: Any) -> FakeGpu:
        if not isinstance(handle, ProcessorHandle):
            raise AmdSmiParameterException(handle, ProcessorHandle)
        self._check_init()
        gpu = handle._gpu
        if all(gpu is not known for known in self.gpus):
            _raise_status(AMDSMI_STATUS_INVAL)
        return gpu

    # -- devices -----------------------------------------------------------------------------------
    def amdsmi_get_processor_handles(self) -> list[ProcessorHandle]:
        self._check_init()
        if self.handles_error is not None:
            _raise_status(self.handles_error)
        return [self._handles.setdefault(id(gpu), ProcessorHandle(gpu)) for gpu in self.gpus]

    def amdsmi_get_gpu_device_uuid(self, processor_handle: Any) -> str:
        return self._gpu(processor_handle).uuid

    def amdsmi_get_gpu_asic_info(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        return {
            "market_name": gpu.market_name or "N/A",
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "subvendor_id": "0x1002",
            "device_id": "0x740f",
            "rev_id": "0x02",
            "asic_serial": "0x0000000000000000",
            "oam_id": "N/A",
            "num_compute_units": 104,
            "target_graphics_version": "gfx90a",
        }

    def amdsmi_get_gpu_board_info(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        return {
            "model_number": "N/A",
            "product_serial": "N/A",
            "fru_id": "N/A",
            "product_name": gpu.product_name or "N/A",
            "manufacturer_name": "AMD",
        }

    def amdsmi_get_power_cap_info(self, processor_handle: Any, sensor_ind: int = 0) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        if gpu.power_cap_uw is None:
            _raise_status(AMDSMI_STATUS_NOT_SUPPORTED)
        return {
            "power_cap": gpu.power_cap_uw,
            "default_power_cap": gpu.power_cap_uw,
            "dpm_cap": 0,
            "min_power_cap": 0,
            "max_power_cap": gpu.power_cap_uw,
        }

    def amdsmi_get_energy_count(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        if gpu.fail_with is not None:
            _raise_status(gpu.fail_with)
        if gpu.energy_count is None:
            _raise_status(AMDSMI_STATUS_NOT_SUPPORTED)
        result: dict[str, Any] = {}
        if self.version <= (6, 3):
            result["power"] = gpu.energy_count
        if self.version >= (6, 3):
            result["energy_accumulator"] = gpu.energy_count
        result["counter_resolution"] = gpu.counter_resolution_uj
        result["timestamp"] = gpu.timestamp_ns
        return result

    def amdsmi_get_power_info(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        if gpu.fail_with is not None:
            _raise_status(gpu.fail_with)
        fields: dict[str, int | str] = {}
        if self.version >= (6, 4):
            fields["socket_power"] = gpu.socket_power_w
        if self.version >= (6, 1):
            fields["current_socket_power"] = gpu.current_socket_power_w
        fields["average_socket_power"] = gpu.average_socket_power_w
        fields |= {"gfx_voltage": 800, "soc_voltage": 900, "mem_voltage": 1200, "power_limit": 300}
        if self.version < (6, 2):  # no "N/A" conversion yet: the struct's raw sentinel comes through
            fields = {key: NOT_AVAILABLE_RAW if value == "N/A" else value for key, value in fields.items()}
        return fields

    def amdsmi_get_gpu_process_list(self, processor_handle: Any) -> list[Any]:
        gpu = self._gpu(processor_handle)
        if not gpu.processes_supported:
            _raise_status(AMDSMI_STATUS_NOT_SUPPORTED)
        pids = [pid for pid in gpu.pids if not (self.hides_own_pid and pid == os.getpid())]
        if self.version < (6, 2):
            return [ProcessHandle(pid) for pid in pids + gpu.gone_pids]
        return [
            {
                "name": "python3",
                "pid": pid,
                "mem": 0,
                "engine_usage": {"gfx": 0, "enc": 0},
                "memory_usage": {"gtt_mem": 0, "cpu_mem": 0, "vram_mem": 0},
            }
            for pid in pids
        ]

    def _get_gpu_process_info(self, processor_handle: Any, process: Any) -> dict[str, Any]:
        """amdsmi_get_gpu_process_info, present up to ROCm 6.1."""
        gpu = self._gpu(processor_handle)
        if not isinstance(process, ProcessHandle):
            raise AmdSmiParameterException(process, ProcessHandle)
        if process._pid in gpu.gone_pids:
            _raise_status(AMDSMI_STATUS_NOT_FOUND)
        return {
            "name": "python3",
            "pid": process._pid,
            "mem": 0,
            "engine_usage": {"gfx": 0, "enc": 0},
            "memory_usage": {"gtt_mem": 0, "cpu_mem": 0, "vram_mem": 0},
        }
