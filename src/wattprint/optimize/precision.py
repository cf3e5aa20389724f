"""Reduced-precision recipes: cast a model to bf16 or fp16, and mixed-precision training helpers.

`to_bf16` / `to_fp16` return a copy of the model with floating-point weights in the low dtype; the input
model is left unchanged. Whether the dtype is worth using is decided by a real probe on the model's device:
a matrix product (and a convolution where the model has convolutions) is run in fp32 and in the low dtype,
and the recipe is refused when the low dtype fails or is more than `max_slowdown` times slower than fp32
(e.g. fp16 on a CPU without native half-precision arithmetic, where it is emulated). With `example_inputs`
the converted model is also run once, so an op that the device lacks in that dtype is refused up front,
not at the first batch.

The converted model casts floating-point inputs to its dtype (a forward pre-hook), so callers can keep
passing fp32 tensors; its outputs are in the low dtype.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from wattprint.errors import WattprintInputError

log = logging.getLogger("wattprint")

# a low dtype slower than this multiple of fp32 on the probe is refused: it would cost energy, not save it
DEFAULT_MAX_SLOWDOWN = 2.0

# (device, dtype, op, shape) -> (fp32 ms, low-dtype ms, error or "")
_PROBE_CACHE: dict[tuple[str, str, str, tuple[int, ...]], tuple[float, float, str]] = {}


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of running one op in a low dtype against fp32 on a device."""

    op: str
    dtype: str
    device: str
    ok: bool
    fp32_ms: float
    low_ms: float
    reason: str = ""

    @property
    def speedup(self) -> float:
        """fp32 time / low-dtype time (>1 means the low dtype is faster)."""
        return self.fp32_ms / self.low_ms if self.low_ms > 0 else float("nan")


def run_model(model: Any, example_inputs: Any) -> Any:
    """Call `model` on example inputs: a dict is passed as keyword arguments, a tuple/list as positional
    arguments, anything else (a tensor) as the single argument."""
    if isinstance(example_inputs, dict):
        return model(**example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return model(*example_inputs)
    return model(example_inputs)


def _device_of(model: Any) -> Any:
    import torch

    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def best_ms(
    fns: dict[str, Callable[[], Any]],
    sync: Callable[[], Any] = lambda: None,
    rounds: int = 5,
    give_up: tuple[str, float] | None = None,
) -> dict[str, float]:
    """Best of `rounds` calls of each function, in ms, the functions called in turn so that all see the same
    load on a shared machine, after two warm-ups each (first calls pay for kernel selection / JIT). With
    `give_up` = (name, ms), stops early once that function's best exceeds ms (an emulated dtype can be 100x
    slower than fp32)."""
    for fn in fns.values():
        fn()
        fn()
    sync()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3)
        if give_up is not None and best[give_up[0]] > give_up[1]:
            break
    return best


def probe_dtype(
    device: Any,
    dtype: Any,
    op: str = "matmul",
    shape: tuple[int, ...] = (256, 384, 384),
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
) -> ProbeResult:
    """Run `op` ("matmul": (M,K)x(K,N) with shape (M,K,N); "conv2d": shape (N,C,H,W) with a 3x3, C->C kernel)
    in fp32 and in `dtype` on `device`; ok when it runs and is at most `max_slowdown` times slower than fp32.
    Timed on one thread, fp32 and low dtype alternating, best of five each; results are cached per process
    (device, dtype, op, shape)."""
    import torch

    device = torch.device(device)
    key = (str(device), str(dtype), op, tuple(shape))
    timed = _PROBE_CACHE.get(key)
    if timed is None:
        timed = _time_op(device, dtype, op, shape, max_slowdown)
        _PROBE_CACHE[key] = timed
    fp32_ms, low_ms, error = timed
    if error:
        reason = f"{op} in {dtype} fails on {device}: {error}"
        return ProbeResult(op, str(dtype), str(device), False, fp32_ms, low_ms, reason)
    ok = low_ms <= fp32_ms * max_slowdown
    reason = (
        ""
        if ok
        else (
            f"{op} in {dtype} is {low_ms / fp32_ms:.1f}x slower than fp32 on {device} "
            f"({low_ms:.2f} ms vs {fp32_ms:.2f} ms): no native support"
        )
    )
    return ProbeResult(op, str(dtype), str(device), ok, fp32_ms, low_ms, reason)


def _time_op(device: Any, dtype: Any, op: str, shape: tuple[int, ...], max_slowdown: float) -> tuple[float, float, str]:
    """(fp32 ms, low-dtype ms, error message or "") for one probe op."""
    import torch

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    gen = torch.Generator(device="cpu").manual_seed(0)
    if op == "matmul":
        m, k, n = shape
        a32 = torch.randn(m, k, generator=gen).to(device)
        b32 = torch.randn(k, n, generator=gen).to(device)

        def make(dt: Any) -> Any:
            a, b = a32.to(dt), b32.to(dt)
            return lambda: torch.matmul(a, b)
    elif op == "conv2d":
        batch, chans, height, width = shape
        x32 = torch.randn(batch, chans, height, width, generator=gen).to(device)
        w32 = torch.randn(chans, chans, 3, 3, generator=gen).to(device)

        def make(dt: Any) -> Any:
            x, w = x32.to(dt), w32.to(dt)
            return lambda: torch.nn.functional.conv2d(x, w, padding=1)
    else:
        raise ValueError(f"unknown probe op {op!r}")
    # one thread: the probe asks whether a core computes this dtype natively; with several threads on a shared
    # machine, waiting for a descheduled thread at each op's barrier dominates the timing instead
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _time_pair(make, dtype, sync)
    finally:
        torch.set_num_threads(threads)


def _time_pair(make: Any, dtype: Any, sync: Any) -> tuple[float, float, str]:
    import torch

    with torch.no_grad():
        fp32_fn = make(torch.float32)
        try:
            low_fn = make(dtype)
            low_fn()
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            return float("nan"), float("nan"), (str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__)
        times = best_ms({"fp32": fp32_fn, "low": low_fn}, sync, give_up=("low", 250.0))
    return times["fp32"], times["low"], ""


def _clip(size: int) -> int:
    return min(max(size, 256), 2048)


def _probes_for(model: Any) -> list[tuple[str, tuple[int, ...]]]:
    """The ops worth probing for this model, sized like its largest Linear / Conv2d layers."""
    import torch.nn as nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    probes: list[tuple[str, tuple[int, ...]]] = []
    if linears:
        big = max(linears, key=lambda m: m.in_features * m.out_features)
        # at least 256 in every dimension so that timings are well above clock resolution and call overhead;
        # capped to keep the probe short
        probes.append(("matmul", (256, _clip(big.in_features), _clip(big.out_features))))
    if convs:
        chans = min(max(32, *(c.in_channels for c in convs)), 256)
        probes.append(("conv2d", (8, chans, 32, 32)))
    if not probes:
        probes.append(("matmul", (256, 384, 384)))
    return probes


class _CastInputs:
    """Forward pre-hook casting floating-point tensor inputs (also inside lists, tuples and dicts) to a dtype;
    a module-level class, not a closure, so that the converted model still pickles (torch.save)."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def cast(self, value: Any) -> Any:
        import torch

        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != self.dtype:
            return value.to(self.dtype)
        if isinstance(value, (list, tuple)):
            return type(value)(self.cast(v) for v in value)
        if isinstance(value, dict):
            return {k: self.cast(v) for k, v in value.items()}
        return value

    def __call__(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        return self.cast(args), self.cast(kwargs)


class _CastOutputs(_CastInputs):
    """Forward hook casting floating-point tensor outputs to a dtype: in place for dicts (a Hugging Face
    ModelOutput is one), rebuilt for lists, tuples and named tuples."""

    def cast(self, value: Any) -> Any:
        import torch

        if isinstance(value, torch.Tensor):
            return value.to(self.dtype) if value.is_floating_point() and value.dtype != self.dtype else value
        if isinstance(value, dict):
            for key in list(value.keys()):
                value[key] = self.cast(value[key])
            return value
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*(self.cast(v) for v in value))
        if isinstance(value, (list, tuple)):
            return type(value)(self.cast(v) for v in value)
        return value

    def __call__(self, module: Any, args: Any, output: Any) -> Any:
        return self.cast(output)


def _cast_inputs_hook(dtype: Any) -> _CastInputs:
    return _CastInputs(dtype)


def refusal(name: str, result: ProbeResult, override: str = "check_speed=False casts anyway") -> str:
    """One line for a refused low dtype: the measured slowdown (or the failure) and what to use instead."""
    if math.isnan(result.low_ms):  # the op failed in the dtype
        figure = result.reason
    else:
        ratio = result.low_ms / result.fp32_ms
        pace = (
            f"runs {ratio:.1f}x slower than fp32" if ratio >= 1 else f"takes {ratio:.2f}x fp32's time, over the limit"
        )
        figure = (
            f"{result.op} {pace} on {result.device} ({result.low_ms:.2f} ms vs {result.fp32_ms:.2f} ms; "
            f"no native {name} here)"
        )
    return f"{name} refused on this hardware: {figure}; use fp32, or int8 for inference ({override})"


def _to_dtype(model: Any, dtype: Any, name: str, example_inputs: Any, max_slowdown: float, check_speed: bool) -> Any:
    import torch
    import torch.nn as nn

    if not isinstance(model, nn.Module):
        raise WattprintInputError("model", f"expected a torch.nn.Module, got {type(model).__name__}")
    device = _device_of(model)
    for op, shape in _probes_for(model) if check_speed else []:
        result = probe_dtype(device, dtype, op, shape, max_slowdown=max_slowdown)
        if not result.ok:
            raise WattprintInputError("recipe", refusal(name, result))
        log.debug("wattprint: %s probe %s: %.2fx fp32 speed", name, op, result.speedup)
    converted = copy.deepcopy(model).to(dtype)
    converted.register_forward_pre_hook(_cast_inputs_hook(dtype), with_kwargs=True)
    if example_inputs is not None:
        try:
            with torch.no_grad():
                run_model(converted, example_inputs)
        except (RuntimeError, NotImplementedError) as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise WattprintInputError(
                "recipe", f"{name} refused: the model does not run in {dtype} on {device} ({first})"
            ) from exc
    return converted


def to_bf16(
    model: Any, *, example_inputs: Any = None, max_slowdown: float = DEFAULT_MAX_SLOWDOWN, check_speed: bool = True
) -> Any:
    """A copy of `model` with floating-point weights in bfloat16, after probing that bf16 is supported and
    not slower than `max_slowdown` x fp32 on the model's device. bf16 keeps fp32's exponent range, so it
    needs no loss scaling and rarely hurts inference quality; it is fast on CPUs with AVX512-BF16/AMX and on
    GPUs from Ampere on. Raises WattprintInputError("recipe", ...) when refused. `check_speed=False` skips
    the speed probe (the cast alone, e.g. to save a bf16 copy on a CPU that would run it slowly)."""
    import torch

    return _to_dtype(model, torch.bfloat16, "bf16", example_inputs, max_slowdown, check_speed)


def to_fp16(
    model: Any, *, example_inputs: Any = None, max_slowdown: float = DEFAULT_MAX_SLOWDOWN, check_speed: bool = True
) -> Any:
    """A copy of `model` with floating-point weights in float16, after probing that fp16 is supported and
    not slower than `max_slowdown` x fp32 on the model's device (a CPU without native half-precision
    arithmetic emulates it, and is refused when the probe finds it that slow). fp16 has a narrow range
    (max 65504): activations can overflow, so prefer bf16 where both work.
    Raises WattprintInputError("recipe", ...) when refused; `check_speed=False` skips the speed probe."""
    import torch

    return _to_dtype(model, torch.float16, "fp16", example_inputs, max_slowdown, check_speed)


# -- mixed-precision training -------------------------------------------------------------------------------
def default_amp_dtype(device: Any) -> Any:
    """bf16 where the device supports it (CPU, Ampere+ GPUs), else fp16 (older GPUs)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@contextlib.contextmanager
def autocast_context(device: Any = "cpu", dtype: Any = None, *, check: bool = True) -> Iterator[None]:
    """Mixed precision for the forward pass of training (or inference) on `device`.

    When to use: training a model whose weights must stay fp32 (optimizer state, small updates) while the
    heavy matmuls/convolutions run in bf16/fp16. Wrap the forward pass and the loss computation, not
    `backward()` or the optimizer step:

        scaler = grad_scaler("cuda", torch.float16)
        with autocast_context("cuda", torch.float16):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward(); scaler.step(optimizer); scaler.update()

    For inference only, a model cast with `to_bf16` is simpler and saves the per-op casts.
    `dtype` defaults to `default_amp_dtype(device)`. With `check`, the dtype is probed first and refused
    (WattprintInputError "dtype") where it fails or is far slower than fp32 on this device.
    """
    import torch

    device = torch.device(device)
    dtype = dtype or default_amp_dtype(device)
    if dtype not in (torch.bfloat16, torch.float16):
        raise WattprintInputError("dtype", f"{dtype} is not a mixed-precision dtype; accepted: bfloat16, float16")
    if check:
        result = probe_dtype(device, dtype)
        if not result.ok:
            name = str(dtype).replace("torch.", "")
            raise WattprintInputError("dtype", "autocast " + refusal(name, result, "check=False allows it"))
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def grad_scaler(device: Any = "cuda", dtype: Any = None) -> Any:
    """A `torch.amp.GradScaler` for mixed-precision training.

    When to use: fp16 autocast on CUDA, where small gradients underflow fp16's range; the scaler multiplies
    the loss before `backward()` and unscales before the optimizer step, skipping steps with inf/NaN.
    bf16 (and any CPU training) does not need it: the returned scaler is then disabled, and its
    scale/step/update calls pass through unchanged, so one training loop serves every case.
    """
    import torch

    device = torch.device(device)
    dtype = dtype or default_amp_dtype(device)
    enabled = device.type == "cuda" and dtype == torch.float16
    return torch.amp.GradScaler(device.type, enabled=enabled)
