"""GPU check: NVML's energy counter against integrated power samples over a real bf16 matmul load.

    python benchmarks/gpu_nvml_check.py --seconds 40 [--gpu 0] [--interval-ms 25] [--size 8192]

For NVML GPU --gpu (default 0), on an NVIDIA machine with `pip install -e .` and a CUDA build of
torch: over one window [idle --idle s][bf16 matmul load --seconds s][idle --idle s],
  - counter:    nvmlDeviceGetTotalEnergyConsumption after minus before (mJ, Volta and later);
  - integrated: nvmlDeviceGetPowerUsage sampled every --interval-ms by a thread, trapezoid rule;
                also the instantaneous power field (NVML_FI_DEV_POWER_INSTANT) where the driver has it;
  - wattprint:  wattprint's NvmlSource read by an EnergyMonitor (1 s interval) over the same window.
The integrated power and wattprint must agree with the counter within --tolerance % (default 2).

On recent drivers (Ampere, Hopper) nvmlDeviceGetPowerUsage returns a power averaged over the last
second rather than an instantaneous value: samples then lag the load by about half a second. The
window starts and ends idle, so that lag moves energy within the window instead of out of it.

Read-only: the script reads the GPU and never changes its settings (no nvmlDeviceSet* call, no
clock, power-limit or persistence-mode change). Exit codes: 0 agreement, 1 disagreement beyond the
tolerance, 3 no NVIDIA GPU (pynvml missing, NVML unavailable, no GPU, no energy counter), 4 no
CUDA-capable torch. Results: benchmarks/results/gpu_nvml_check.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

NO_GPU, NO_CUDA = 3, 4
POWER_INSTANT_FIELD = 186  # NVML_FI_DEV_POWER_INSTANT, mW, where pynvml lacks the constant


class Unavailable(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- NVML (read-only) ----------------------------------------------------------------------------------
def open_nvml(index: int) -> tuple[Any, Any, dict[str, Any]]:
    """pynvml, the handle of GPU `index` and what the record says about it. Raises Unavailable."""
    try:
        import pynvml
    except ImportError:
        raise Unavailable(NO_GPU, "no NVIDIA GPU: pynvml is not installed (nvidia-ml-py)") from None
    try:
        pynvml.nvmlInit()
    except Exception as exc:
        raise Unavailable(NO_GPU, f"no NVIDIA GPU: NVML could not start ({exc})") from None
    try:
        count = int(pynvml.nvmlDeviceGetCount())
    except Exception as exc:
        raise Unavailable(NO_GPU, f"no NVIDIA GPU: NVML could not count GPUs ({exc})") from None
    if count == 0:
        raise Unavailable(NO_GPU, "no NVIDIA GPU: NVML sees no GPU")
    if not 0 <= index < count:
        raise Unavailable(NO_GPU, f"no NVIDIA GPU {index}: NVML sees GPUs 0-{count - 1}")
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    info: dict[str, Any] = {
        "nvml_index": index,
        "gpu_count": count,
        "name": _text(pynvml.nvmlDeviceGetName(handle)),
        "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
    }
    for key, call in (("driver", "nvmlSystemGetDriverVersion"), ("nvml_version", "nvmlSystemGetNVMLVersion")):
        try:
            info[key] = _text(getattr(pynvml, call)())
        except Exception:
            info[key] = None
    try:
        info["enforced_power_limit_w"] = pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
    except Exception:
        info["enforced_power_limit_w"] = None
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as exc:
        raise Unavailable(
            NO_GPU,
            f"GPU {index} ({info['name']}) has no NVML energy counter ({exc}); the counter exists on Volta and later",
        ) from None
    info["instant_power_field"] = read_instant_mw(pynvml, handle) is not None
    return pynvml, handle, info


def read_instant_mw(nvml: Any, handle: Any) -> float | None:
    """Instantaneous power (mW) from the field API, or None where the driver does not offer it."""
    field_id = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", POWER_INSTANT_FIELD)
    try:
        value = nvml.nvmlDeviceGetFieldValues(handle, [field_id])[0]
    except Exception:
        return None
    if int(getattr(value, "nvmlReturn", 1)) != 0:
        return None
    kinds = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
    return float(getattr(value.value, kinds.get(int(value.valueType), "uiVal")))


class PowerSampler(threading.Thread):
    """Samples nvmlDeviceGetPowerUsage (and the instant field, if any) every interval_s."""

    def __init__(self, nvml: Any, handle: Any, interval_s: float, instant: bool) -> None:
        super().__init__(name="power-sampler", daemon=True)
        self.nvml, self.handle, self.interval_s, self.instant = nvml, handle, interval_s, instant
        self.samples: list[tuple[float, float, float | None]] = []  # (t, power mW, instant mW)
        self.errors = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        next_t = time.monotonic()
        while not self._stop_event.is_set():
            try:
                t_a = time.monotonic()
                power = float(self.nvml.nvmlDeviceGetPowerUsage(self.handle))
                inst = read_instant_mw(self.nvml, self.handle) if self.instant else None
                t_b = time.monotonic()
                self.samples.append(((t_a + t_b) / 2, power, inst))
            except Exception:
                self.errors += 1
            next_t += self.interval_s
            self._stop_event.wait(max(0.0, next_t - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def integrate(points: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Trapezoid integral over [t0, t1] of a sampled signal (t, value), interpolated at both ends."""
    pts = sorted(points)
    if len(pts) < 2 or pts[0][0] > t0 or pts[-1][0] < t1:
        raise ValueError("samples do not cover the window")

    def at(t: float) -> float:
        for (ta, va), (tb, vb) in zip(pts, pts[1:], strict=False):
            if ta <= t <= tb:
                return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)
        raise ValueError("outside samples")

    inner = [(t, v) for t, v in pts if t0 < t < t1]
    curve = [(t0, at(t0)), *inner, (t1, at(t1))]
    return sum((tb - ta) * (va + vb) / 2 for (ta, va), (tb, vb) in zip(curve, curve[1:], strict=False))


# -- the load --------------------------------------------------------------------------------------------
def cuda_device(torch: Any, uuid: str, index: int) -> tuple[Any, str]:
    """The torch device of the NVML GPU with this UUID (CUDA and NVML orders may differ)."""
    if not torch.cuda.is_available():
        raise Unavailable(NO_CUDA, "torch has no CUDA device (a CUDA build of torch is needed)")
    want = uuid.lower().removeprefix("gpu-")
    for i in range(torch.cuda.device_count()):
        got = str(getattr(torch.cuda.get_device_properties(i), "uuid", "")).lower().removeprefix("gpu-")
        if got and got == want:
            return torch.device("cuda", i), f"cuda:{i} matched by UUID"
    if index < torch.cuda.device_count():
        return torch.device("cuda", index), f"cuda:{index} by index (UUID not matched; CUDA_VISIBLE_DEVICES?)"
    raise Unavailable(NO_CUDA, f"no CUDA device matches NVML GPU {index} ({uuid})")


def make_load(torch: Any, device: Any, size: int) -> tuple[Callable[[], int], dict[str, Any]]:
    """A step function that runs a batch of bf16 matmuls and waits for them; and its measured speed."""
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    c = torch.empty(size, size, device=device, dtype=torch.bfloat16)
    batch = 16

    def step() -> int:
        for _ in range(batch):
            torch.matmul(a, b, out=c)
        torch.cuda.synchronize(device)
        return batch

    step()  # cuBLAS initialisation
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < 2.0:  # warm-up, also raises the clocks
        n += step()
    dt = time.perf_counter() - t0
    return step, {
        "matrix": size,
        "dtype": "bfloat16",
        "matmuls_per_step": batch,
        "warmup_tflops": 2 * size**3 * n / dt / 1e12,
    }


# -- main -------------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40.0, help="seconds of matmul load (30-60 advised)")
    ap.add_argument("--gpu", type=int, default=0, help="NVML index of the GPU")
    ap.add_argument("--interval-ms", type=float, default=25.0, help="power sampling interval, ms (20-50)")
    ap.add_argument("--size", type=int, default=8192, help="matrix size of the bf16 matmuls")
    ap.add_argument("--idle", type=float, default=5.0, help="idle seconds at each end of the window")
    ap.add_argument("--tolerance", type=float, default=2.0, help="agreement required, %%")
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write results")
    args = ap.parse_args()

    try:
        nvml, handle, gpu = open_nvml(args.gpu)
    except Unavailable as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    try:
        return check(args, nvml, handle, gpu)
    except Unavailable as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def check(args: argparse.Namespace, nvml: Any, handle: Any, gpu: dict[str, Any]) -> int:
    try:
        import torch
    except ImportError:
        raise Unavailable(NO_CUDA, "torch is not installed") from None
    from wattprint.measure.monitor import EnergyMonitor
    from wattprint.measure.nvml import NvmlSource

    info = machine_info()
    device, device_note = cuda_device(torch, gpu["uuid"], args.gpu)
    print(f"GPU {args.gpu}: {gpu['name']} ({gpu['uuid']}), driver {gpu['driver']}, {device_note}")
    step, load = make_load(torch, device, args.size)
    print(f"load: {args.size}x{args.size} bf16 matmuls, {load['warmup_tflops']:.0f} TFLOPS in warm-up")
    time.sleep(args.idle)  # back to idle before the window opens

    sampler = PowerSampler(nvml, handle, args.interval_ms / 1000.0, gpu["instant_power_field"])
    sampler.start()
    time.sleep(max(0.5, 3 * args.interval_ms / 1000.0))
    source = NvmlSource(gpu_indices=[args.gpu])
    monitor = EnergyMonitor([source], interval_s=1.0, tree=None, attribution="machine")
    t0 = time.monotonic()
    e0 = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    monitor.start()
    time.sleep(args.idle)
    load_t0 = time.monotonic()
    matmuls = 0
    while time.monotonic() - load_t0 < args.seconds:
        matmuls += step()
    load_t1 = time.monotonic()
    time.sleep(args.idle)
    e1 = int(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    t1 = time.monotonic()
    totals = monitor.stop()
    monitor.close()
    time.sleep(max(0.5, 3 * args.interval_ms / 1000.0))
    sampler.stop()

    samples = sampler.samples
    counter_j = (e1 - e0) / 1000.0
    power_j = integrate([(t, p / 1000.0) for t, p, _ in samples], t0, t1)
    instant_pts = [(t, i / 1000.0) for t, _, i in samples if i is not None]
    instant_j = integrate(instant_pts, t0, t1) if len(instant_pts) == len(samples) and instant_pts else None
    wattprint_j = totals.machine_j.get(f"nvml:{args.gpu}", float("nan"))

    in_window = [s for s in samples if t0 <= s[0] <= t1]
    gaps = [b[0] - a[0] for a, b in zip(in_window, in_window[1:], strict=False)]
    changes = sum(1 for a, b in zip(in_window, in_window[1:], strict=False) if a[1] != b[1])
    load_power = [p / 1000.0 for t, p, _ in samples if load_t0 + 2 <= t <= load_t1]
    tol = args.tolerance / 100.0

    def rel(x: float | None) -> float | None:
        return None if x is None else (x - counter_j) / counter_j

    checks = {
        "integrated power vs counter": rel(power_j),
        "wattprint NvmlSource vs counter": rel(wattprint_j),
    }
    if instant_j is not None:
        checks["integrated instant power vs counter"] = rel(instant_j)
    required = ("integrated power vs counter", "wattprint NvmlSource vs counter")
    passed = all(checks[k] is not None and abs(checks[k]) <= tol for k in required)

    def row(label: str, joules: float) -> list[str]:
        r = rel(joules)
        ok = r is not None and abs(r) <= tol
        return [label, fmt(joules, 1), "n/a" if r is None else f"{r * 100:+.3f} %", "yes" if ok else "NO"]

    headers = ["quantity", "energy J", "vs counter", f"within {args.tolerance:g} %"]
    rows = [
        ["NVML energy counter (after - before)", fmt(counter_j, 1), "", ""],
        row("integrated nvmlDeviceGetPowerUsage", power_j),
    ]
    if instant_j is not None:
        rows.append(row("integrated NVML_FI_DEV_POWER_INSTANT", instant_j))
    rows.append(row("wattprint NvmlSource (EnergyMonitor, 1 s)", wattprint_j))
    window = {
        "window_s": t1 - t0,
        "load_s": load_t1 - load_t0,
        "idle_each_end_s": args.idle,
        "samples_in_window": len(in_window),
        "sampler_errors": sampler.errors,
        "sample_interval_ms_mean": statistics.fmean(gaps) * 1e3 if gaps else None,
        "sample_interval_ms_max": max(gaps) * 1e3 if gaps else None,
        "power_reading_changes_every_ms": (t1 - t0) / changes * 1e3 if changes else None,
        "mean_power_under_load_w": statistics.fmean(load_power) if load_power else None,
        "mean_power_window_w": counter_j / (t1 - t0),
        "matmuls": matmuls,
        "load_tflops": 2 * args.size**3 * matmuls / (load_t1 - load_t0) / 1e12,
    }
    nan = float("nan")
    print_table(
        f"NVML energy over {t1 - t0:.1f} s ({args.idle:g} s idle, {load_t1 - load_t0:.1f} s bf16 "
        f"load, {args.idle:g} s idle), power sampled every {args.interval_ms:g} ms",
        headers,
        rows,
    )
    print(
        f"mean power under load {fmt(window['mean_power_under_load_w'] or nan, 1)} W; "
        f"{len(in_window)} power samples, mean gap {fmt(window['sample_interval_ms_mean'] or nan, 1)} ms; "
        f"the power reading changed every {fmt(window['power_reading_changes_every_ms'] or nan, 0)} ms"
    )
    note = (
        "nvmlDeviceGetPowerUsage may report a 1 s trailing average on recent drivers (Ampere, Hopper); "
        "the window starts and ends idle, so that lag does not move energy out of it."
    )
    print(note)
    print(f"result: {'PASS' if passed else 'FAIL'} (tolerance {args.tolerance:g} %)")

    data = {
        "benchmark": "gpu_nvml_check",
        "machine": info,
        "gpu": gpu,
        "device": device_note,
        "torch_cuda": getattr(torch.version, "cuda", None),
        "load": load,
        "settings": {
            "seconds": args.seconds,
            "interval_ms": args.interval_ms,
            "size": args.size,
            "idle_s": args.idle,
            "tolerance_pct": args.tolerance,
        },
        "energy_j": {
            "counter": counter_j,
            "integrated_power": power_j,
            "integrated_instant_power": instant_j,
            "wattprint": wattprint_j,
        },
        "relative_difference": checks,
        "window": window,
        "passed": passed,
        "note": note,
        "read_only": "no nvmlDeviceSet* call; clocks, power limits and modes untouched",
    }
    md = "\n\n".join(
        [
            "# gpu_nvml_check",
            machine_markdown(info),
            f"GPU {args.gpu}: {gpu['name']}, driver {gpu['driver']}, enforced power limit "
            f"{gpu['enforced_power_limit_w']} W; {device_note}; torch CUDA {data['torch_cuda']}.",
            f"Window {t1 - t0:.1f} s: {args.idle:g} s idle, {load_t1 - load_t0:.1f} s of {args.size}x{args.size} "
            f"bf16 matmuls ({window['load_tflops']:.0f} TFLOPS, "
            f"{fmt(window['mean_power_under_load_w'] or nan, 0)} W under load), {args.idle:g} s idle; power "
            f"sampled every {args.interval_ms:g} ms ({len(in_window)} samples, reading changed every "
            f"{fmt(window['power_reading_changes_every_ms'] or nan, 0)} ms).",
            markdown_table(headers, rows),
            f"Result: **{'PASS' if passed else 'FAIL'}** (tolerance {args.tolerance:g} %). {note}",
        ]
    )
    path = write_results("gpu_nvml_check", data, md, args.out_dir)
    print(f"results: {path} and {path.with_suffix('.md')}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
