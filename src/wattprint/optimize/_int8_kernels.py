"""The int8 products behind `Int8Linear`, and the per-CPU choice among them.

Every kernel computes y = dequant(int8(x) @ W_int8) for the regular (non-outlier) columns of a layer; they
differ in who quantizes the activations, how wide those are, and which library runs the product:

| kernel                | product                                              | activations    | weight packing |
|-----------------------|------------------------------------------------------|----------------|----------------|
| `onednn`              | oneDNN `quantized::linear_dynamic` (AMX, VNNI), fused| u8, full range | qint8 tensor   |
| `onednn-qlinear`      | oneDNN `onednn::qlinear_pointwise`, quantized by us  | u8, full range | plain int8     |
| `fbgemm`              | FBGEMM `quantized::linear_dynamic`, fused            | u8, full range | qint8 tensor   |
| `fbgemm-reduce-range` | the same, as torch.ao runs it on every x86 CPU       | u8, 7 bits     | qint8 tensor   |
| `fbgemm-w7`           | the same with 7-bit weights (|w| <= 63)              | u8, full range | qint8 tensor   |
| `int_mm`              | `torch._int_mm` (s8 x s8 -> s32), per-token scales   | s8, full range | plain int8     |
| `fp32-exact`          | the same integers multiplied in fp32                 | s8, full range | plain int8     |

Why a choice at all: without VNNI (or AMX), x86 sums pairs of u8 x s8 products in a 16-bit register that
saturates (vpmaddubsw), so full-range activations give wrong sums: on an AVX2-only CPU, oneDNN's int8
output is off by up to half, and `torch._int_mm` too (it runs on oneDNN). Seven-bit activations cannot
overflow (2 x 127 x 128 < 32767): that is why torch.ao passes `reduce_range=True` on x86. Seven-bit
weights cannot either (2 x 255 x 63 < 32767), and cost less: the weights have one scale per output channel,
the activations one per tensor, whose resolution the outliers already strain (`fbgemm-w7`).

`choose_kernel` checks each available kernel for exactness on an input built to overflow 16 bits (all u8
activations 255, all weights 127), times the exact ones against fp32 on layers of the model's shapes, and
picks the fastest full-range kernel unless a 7-bit one is more than `REDUCE_RANGE_MARGIN` faster (`fbgemm-w7`
counts as full-range: its activations are). A 7-bit kernel whose 8-bit twin is exact here is not timed at
all: it runs the same instructions at a lower resolution.

Static activation scales: with calibration, the recipe fixes each layer's activation range (the min and max
of its regular columns on the calibration inputs) instead of finding it at every call. FBGEMM then runs
`quantized::linear_with_input_q_dq_qweight_dq_output_fp32` (the same product, quantization fused, minus the
single-threaded min/max pass over the input: 5-9% of a MiniLM layer here), and `onednn-qlinear` skips its
`aminmax`; values outside the range clip, and the outlier columns need no zeroing (their int8 weight rows
are zero, so whatever they quantize to adds nothing). oneDNN's fused dynamic kernel has no static form, nor
has `fbgemm-reduce-range`: FBGEMM clips a fixed range to 0..255, so values beyond it would leave 7 bits.
As in any static int8 model, a NaN or inf in the input quantizes to an arbitrary level instead of failing.

Deprecated API: the pinned torch deprecates its quantized tensor types (`torch.qint8`), through which the
`quantized::linear_dynamic` kernels take their weights. They stay candidates, and usually win, because
they quantize the activations inside the product: on all-MiniLM-L6-v2's 1536-wide FFN input (4096 rows,
one thread, Xeon with AMX) `onednn` took 6.6 ms, while `onednn-qlinear` spent 10.7 ms on the separate
quantization passes alone (22.7 ms in all; fp32 29 ms), and torchao's int8 (on `torch._int_mm`) is slower
than fp32 in eager. A maintained kernel is picked wherever it is fastest.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from wattprint.optimize.precision import best_ms

if TYPE_CHECKING:
    from wattprint.optimize._int8_linear import Int8Linear

log = logging.getLogger("wattprint")

_EPS = 1e-12
# a 7-bit kernel is chosen over the fastest full-range one only when it is this much faster: it halves the
# activations' resolution
REDUCE_RANGE_MARGIN = 1.25
KERNEL_NAMES = ("onednn", "onednn-qlinear", "fbgemm", "fbgemm-reduce-range", "fbgemm-w7", "int_mm", "fp32-exact")
FULL_RANGE = dict.fromkeys(KERNEL_NAMES, True) | {"fbgemm-reduce-range": False}  # 8-bit activations
WEIGHT_QMAX = dict.fromkeys(KERNEL_NAMES, 127.0) | {"fbgemm-w7": 63.0}  # largest |int8 weight| it takes
# False: the weights go through torch's deprecated quantized tensor types
MAINTAINED = dict.fromkeys(KERNEL_NAMES, True) | dict.fromkeys(
    ("onednn", "fbgemm", "fbgemm-reduce-range", "fbgemm-w7"), False
)
# kernel -> (quantized engine that packs its weight, reduce_range) for the quantized::linear_dynamic kernels
_DYNAMIC = {
    "onednn": ("onednn", False),
    "fbgemm": ("fbgemm", False),
    "fbgemm-reduce-range": ("fbgemm", True),
    "fbgemm-w7": ("fbgemm", False),
}
PACKED = ("onednn-qlinear", *_DYNAMIC)
# 7-bit kernel (activations or weights) -> the 8-bit kernel it is a mode of
SEVEN_BIT_TWIN = {"fbgemm-reduce-range": "fbgemm", "fbgemm-w7": "fbgemm"}
_STATIC_OP = "linear_with_input_q_dq_qweight_dq_output_fp32"  # FBGEMM's static-scale linear, fp32 in and out


def available_kernels() -> list[str]:
    """The kernels this torch build has on CPU (exact or not)."""
    engines = torch.backends.quantized.supported_engines
    names = []
    if "onednn" in engines:
        names.append("onednn")
        if hasattr(torch.ops, "onednn") and hasattr(torch.ops.onednn, "qlinear_pointwise"):
            names.append("onednn-qlinear")
    if "fbgemm" in engines:
        names += ["fbgemm", "fbgemm-reduce-range", "fbgemm-w7"]
    names += ["int_mm", "fp32-exact"]
    return names


def usable_here(kernel: str) -> str:
    """`kernel` if this CPU has it and it is exact here, else an exact one: FBGEMM with 8-bit weights and
    activations, or 7-bit weights, or 7-bit activations, the first exact here, the fp32 product of the
    integers where FBGEMM is missing (a model saved on a CPU with VNNI and loaded on one without must not
    saturate)."""
    if kernel in available_kernels() and is_exact(kernel):
        return kernel
    exact_fbgemm = [
        k for k in ("fbgemm", "fbgemm-w7", "fbgemm-reduce-range") if k in available_kernels() and is_exact(k)
    ]
    fallback = exact_fbgemm[0] if exact_fbgemm else "fp32-exact"
    log.warning("wattprint: int8 kernel %s is not exact on this CPU; using %s", kernel, fallback)
    return fallback


@functools.cache
def has_static_form(kernel: str) -> bool:
    """Whether `kernel` can run with a fixed (calibrated) activation range in this torch build."""
    if kernel == "onednn-qlinear":
        return True
    if kernel in ("fbgemm", "fbgemm-w7"):  # not reduce-range: FBGEMM clips a fixed range to 8 bits
        return hasattr(torch.ops.quantized, _STATIC_OP)
    return False


def fixed_range(layer: Int8Linear) -> tuple[float, float] | None:
    """The activation range `layer` runs with (calibrated, per-tensor, a kernel with a static form), else None."""
    if layer.static_range is None or layer.per_token or not has_static_form(layer.kernel):
        return None
    return layer.static_range


def activation_scales_of(layer: Int8Linear) -> str:
    """How `layer` really scales its activations: "static" (a fixed, calibrated range), "per-token" (one scale
    per row: the per-token mode, and the generic kernels, which always run that way) or "per-tensor"."""
    if fixed_range(layer) is not None:
        return "static"
    if layer.per_token or layer.compiled or layer.kernel in ("int_mm", "fp32-exact"):
        return "per-token"
    return "per-tensor"


def static_qparams(low: float, high: float, levels: int) -> tuple[float, int]:
    """(scale, zero point) that map [low, high] (widened to hold 0) onto 0..`levels` of an unsigned int."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / levels, _EPS)
    return scale, int(min(max(round(-low / scale), 0), levels))


def int_mm_runs(device: torch.device) -> bool:
    """Whether torch._int_mm runs on `device` (a small, aligned product; exactness on CPU: `is_exact`)."""
    try:
        a = torch.ones(32, 32, dtype=torch.int8, device=device)
        return bool((torch._int_mm(a, a) == 32).all())
    except RuntimeError:
        return False


# -- the kernels -------------------------------------------------------------------------------------------
def pack(layer: Int8Linear) -> Any:
    """The kernel's packed weight for `layer` (built once; opaque, so never part of the state_dict)."""
    kernel = layer.kernel
    if kernel == "onednn-qlinear":
        zero_points = torch.zeros(layer.out_features, dtype=torch.long)  # symmetric weights
        return torch.ops.onednn.qlinear_prepack(layer.weight_int8.t().contiguous(), None), zero_points
    if kernel in _DYNAMIC:
        weight_int8, weight_scale = layer.weight_int8.t(), layer.weight_scale
        qmax = WEIGHT_QMAX[kernel]
        if weight_int8.numel() and int(weight_int8.abs().max()) > qmax:  # wider weights: requantize this copy
            weight_int8 = torch.round(weight_int8.float() * (qmax / 127.0)).to(torch.int8)
            weight_scale = weight_scale * (127.0 / qmax)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notice of quantized tensor types
            qweight = torch._make_per_channel_quantized_tensor(
                weight_int8.contiguous(),
                weight_scale.double(),
                torch.zeros(layer.out_features, dtype=torch.long),
                0,
            )
        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = _DYNAMIC[kernel][0]  # selects the packing only; the op dispatches on it
        try:
            bias = None if layer.per_token or layer.bias is None else layer.bias  # fused by the kernel
            return torch.ops.quantized.linear_prepack(qweight, bias)
        finally:
            torch.backends.quantized.engine = previous
    return None


def run(layer: Int8Linear, x2: torch.Tensor, packed: Any) -> torch.Tensor:
    """y for the regular columns of 2-D `x2` (outlier columns already zeroed) plus bias, in fp32 or x's dtype."""
    kernel = layer.kernel
    if kernel == "onednn-qlinear":
        return _onednn_qlinear(layer, x2, packed)
    static = fixed_range(layer)
    if kernel in _DYNAMIC and static is not None:
        scale, zero_point = static_qparams(static[0], static[1], levels=255)
        xf = x2 if x2.dtype == torch.float32 else x2.float()
        return getattr(torch.ops.quantized, _STATIC_OP)(xf.contiguous(), scale, zero_point, packed)
    if kernel in _DYNAMIC:
        return _dynamic(layer, x2, packed, reduce_range=_DYNAMIC[kernel][1])
    return _exact(layer, x2, int_mm=kernel == "int_mm")


def _onednn_qlinear(layer: Int8Linear, x2: torch.Tensor, packed: Any) -> torch.Tensor:
    """oneDNN's int8 linear on plain u8/s8 tensors: per-tensor mode quantizes x asymmetrically over
    [min(x, 0), max(x, 0)] (zero point fused in the kernel); per-token mode gives each row its own symmetric
    scale (zero point 128) and scales the rows back after the product."""
    xf = x2.float()
    packed, zero_w = packed
    if layer.per_token:
        row_scale = xf.abs().amax(dim=1, keepdim=True).clamp_min(_EPS) / 127.0
        # |x / scale| <= 127 up to rounding: adding 128.5 and truncating rounds into 1..255
        qx = (xf / row_scale).add_(128.5).clamp_max_(255.0).to(torch.uint8)
        y = torch.ops.onednn.qlinear_pointwise(
            qx, 1.0, 128, packed, layer.weight_scale, zero_w, None, 1.0, 0, torch.float32, "none", [], ""
        )
        y.mul_(row_scale)
        return y.add_(layer.bias) if layer.bias is not None else y
    if xf.numel() == 0:
        return xf.new_zeros(xf.shape[0], layer.out_features) + (layer.bias if layer.bias is not None else 0.0)
    static = fixed_range(layer)
    if static is not None:  # calibrated: values outside the range clip to it
        scale, zero_point = static_qparams(static[0], static[1], levels=255)
        qx = (xf * (1.0 / scale)).add_(zero_point + 0.5).clamp_(0.0, 255.0).to(torch.uint8)
    else:
        lo, hi = torch.aminmax(xf)
        lo_f, hi_f = float(lo), float(hi)
        if not (math.isfinite(lo_f) and math.isfinite(hi_f)):  # NaN or inf in: the exact path gives NaN/inf out
            return _exact(layer, xf)
        scale, zero_point = static_qparams(lo_f, hi_f, levels=255)
        # x / scale + zero_point lies in [0, 255] up to rounding: + 0.5 and truncation round it; the clamp
        # keeps a value that rounds to 256 (x = max with a rounded-up zero point) from wrapping to 0
        qx = (xf * (1.0 / scale)).add_(zero_point + 0.5).clamp_max_(255.0).to(torch.uint8)
    return torch.ops.onednn.qlinear_pointwise(
        qx, scale, zero_point, packed, layer.weight_scale, zero_w, layer.bias, 1.0, 0, torch.float32, "none", [], ""
    )


def _dynamic(layer: Int8Linear, x2: torch.Tensor, packed: Any, reduce_range: bool) -> torch.Tensor:
    """`quantized::linear_dynamic` (activation quantization, dequantization and bias fused in the kernel);
    per-token mode pre-scales each row by its max |x| and scales the output back (two more passes). An input
    the kernel refuses (NaN or inf: "min should be less than or equal to max") gets the fp32 product, which
    carries the NaN or inf through as an fp32 Linear would."""
    try:
        return _dynamic_product(layer, x2, packed, reduce_range)
    except RuntimeError:
        if bool(torch.isfinite(x2).all()):
            raise
        return _exact(layer, x2)


def _exact(layer: Int8Linear, x2: torch.Tensor, int_mm: bool = False) -> torch.Tensor:
    """The generic kernel with per-token scales, in fp32: the integers multiplied in fp32 (exact anywhere, and
    the fallback for inputs the fused kernels refuse) or on `torch._int_mm`."""
    from wattprint.optimize._int8_linear import int8_linear_kernel

    return int8_linear_kernel(
        x2.float(),
        layer.weight_int8,
        layer.weight_scale,
        layer.bias,
        torch.empty(0, dtype=torch.long),
        layer.outlier_weight[:0],
        int_mm=int_mm,
    )


def _dynamic_product(layer: Int8Linear, x2: torch.Tensor, packed: Any, reduce_range: bool) -> torch.Tensor:
    xf = x2 if x2.dtype == torch.float32 else x2.float()
    if not layer.per_token:
        return torch.ops.quantized.linear_dynamic(xf, packed, reduce_range)
    row_max = xf.abs().amax(dim=1, keepdim=True).clamp_min(_EPS)
    y = torch.ops.quantized.linear_dynamic(xf * row_max.reciprocal(), packed, reduce_range)
    if layer.bias is not None:
        return torch.addcmul(layer.bias, y, row_max)
    return y.mul_(row_max)


# -- the choice ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelChoice:
    """The int8 kernel picked for this CPU and layer shape, and the figures it was picked on."""

    kernel: str
    reason: str
    exact: dict[str, bool]  # kernel -> no 16-bit saturation on the overflow probe
    time_ms: dict[str, float]  # exact kernel -> best time of one layer call (one thread)
    fp32_ms: float
    shapes: tuple[tuple[int, int, int], ...]  # (rows, in_features, out_features) of the layers timed
    faster_than_fp32: bool
    notes: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.fp32_ms / self.time_ms[self.kernel] if self.time_ms.get(self.kernel) else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "reason": self.reason,
            "full_range": FULL_RANGE[self.kernel],
            "weight_bits": 7 if WEIGHT_QMAX[self.kernel] < 127 else 8,
            "maintained_api": MAINTAINED[self.kernel],
            "exact": dict(self.exact),
            "time_ms": {k: round(v, 4) for k, v in self.time_ms.items()},
            "fp32_ms": round(self.fp32_ms, 4),
            "speedup_vs_fp32": round(self.speedup, 3),
            "shapes": [list(x) for x in self.shapes],
            "faster_than_fp32": self.faster_than_fp32,
            "notes": list(self.notes),
        }


_EXACT_CACHE: dict[tuple[str, str], bool] = {}
_CHOICE_CACHE: dict[tuple[Any, ...], KernelChoice] = {}


def _env_key() -> str:
    return f"{os.environ.get('ONEDNN_MAX_CPU_ISA', '')}|{os.environ.get('ATEN_CPU_CAPABILITY', '')}"


def _probe_layer(
    in_features: int, out_features: int, kernel: str, weight: torch.Tensor | None = None, per_token: bool = False
) -> Int8Linear:
    from wattprint.optimize._int8_linear import Int8Linear

    lin = torch.nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        if weight is None:
            lin.weight.fill_(0.5)  # int8 weights all 127 (7-bit-weight kernels requantize them to 63 in pack())
        else:
            lin.weight.copy_(weight)
    layer = Int8Linear.from_linear(lin)
    layer.kernel, layer.per_token = kernel, per_token
    return layer


def is_exact(kernel: str) -> bool:
    """Whether `kernel` sums full-range products without saturating (cached per process and kernel limits):
    activations all at the top of their range times weights all 127, where 16-bit pair sums overflow."""
    key = (kernel, _env_key())
    if key not in _EXACT_CACHE:
        _EXACT_CACHE[key] = _check_exact(kernel)
    return _EXACT_CACHE[key]


def _check_exact(kernel: str) -> bool:
    k, n = 64, 32
    try:
        layer = _probe_layer(k, n, kernel)
        with torch.no_grad():
            y = layer(torch.ones(32, k))
    except (RuntimeError, NotImplementedError, TypeError) as exc:
        log.debug("wattprint: int8 kernel %s does not run here: %s", kernel, exc)
        return False
    expected = 0.5 * k  # every output is the sum of k products 1 x 0.5
    return bool(torch.allclose(y, torch.full_like(y, expected), rtol=1e-3, atol=0.0))


def _call_each(calls: list[Callable[[], Any]]) -> None:
    for call in calls:
        call()


def choose_kernel(
    shapes: list[tuple[int, int]], rows: int = 1024, candidates: tuple[str, ...] | None = None
) -> KernelChoice:
    """The fastest exact int8 kernel for layers of these (in_features, out_features) shapes on this CPU (see
    module docs); cached per process, shapes and kernel limits. Timed on one thread, `rows` rows per call (as
    many as the model's calls have, so that memory-bound passes weigh what they will): the question is what
    a core does fastest, and a shared machine's descheduled threads would swamp multi-threaded timings."""
    names = tuple(n for n in (candidates or available_kernels()) if n in available_kernels())
    shapes = sorted(set(shapes))
    key = (tuple(shapes), rows, names, _env_key())
    if key in _CHOICE_CACHE:
        return _CHOICE_CACHE[key]
    exact = {name: is_exact(name) for name in names}
    # a 7-bit twin of an exact full-range kernel runs the same instructions at half the resolution: never
    # faster, so not timed (a noisy timing must not pick it)
    twins = [n for n, full in SEVEN_BIT_TWIN.items() if n in names and exact.get(full)]
    usable = [n for n in names if exact[n] and n not in twins] or ["fp32-exact"]  # fp32-exact always is exact
    gen = torch.Generator().manual_seed(0)
    fns: dict[str, list[Callable[[], Any]]] = {"fp32": [], **{n: [] for n in usable}}
    for in_features, out_features in shapes:
        weight = torch.randn(out_features, in_features, generator=gen) * 0.05
        x = torch.randn(rows, in_features, generator=gen)
        lin = torch.nn.Linear(in_features, out_features, bias=False)
        with torch.no_grad():
            lin.weight.copy_(weight)
        fns["fp32"].append(functools.partial(lin, x))
        for name in usable:
            fns[name].append(functools.partial(_probe_layer(in_features, out_features, name, weight), x))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            times = best_ms({name: functools.partial(_call_each, calls) for name, calls in fns.items()})
    finally:
        torch.set_num_threads(threads)
    fp32_ms = times.pop("fp32")
    full = [n for n in usable if FULL_RANGE[n]]
    fastest = min(usable, key=lambda n: times[n])
    best_full = min(full, key=lambda n: times[n]) if full else fastest
    if times[best_full] <= times[fastest] * REDUCE_RANGE_MARGIN:
        chosen = best_full
        reason = f"fastest exact full-range int8 kernel here ({times[chosen]:.3f} ms vs fp32 {fp32_ms:.3f} ms)"
    else:
        chosen = fastest
        reason = (
            f"7-bit activations: {times[best_full] / times[fastest]:.2f}x faster than the best full-range "
            f"kernel ({best_full}) on this CPU"
        )
    notes = [f"{n}: not timed, {SEVEN_BIT_TWIN[n]} is exact here (the same kernel at 8 bits)" for n in twins]
    inexact = [n for n in names if not exact[n]]
    if inexact:
        notes.append(
            f"{', '.join(inexact)} saturate 16-bit sums on this CPU (no VNNI/AMX int8 instructions in use): excluded"
        )
    if not MAINTAINED[chosen]:
        notes.append(f"{chosen} takes its weights as torch's deprecated quantized tensors: the fastest here")
    choice = KernelChoice(
        chosen, reason, exact, times, fp32_ms, tuple((rows, i, o) for i, o in shapes), times[chosen] < fp32_ms, notes
    )
    _CHOICE_CACHE[key] = choice
    return choice
