"""Outlier-aware int8 Linear: the layer behind the "int8" recipe.

Why plain dynamic int8 loses quality: torch.ao's dynamic quantization gives the whole activation tensor one
scale, and a few input features of transformer layers carry values 50-200x the median (MiniLM: features
99, 63, 223 of the FFN input), so that scale leaves every other value a handful of int8 levels. Here:

- weights are int8 with one scale per output channel;
- the input columns found to carry outliers during calibration bypass int8 and are multiplied in float,
  as in LLM.int8()'s decomposition: y = int8(x_regular) @ int8(W_regular) + x_outlier @ W_outlier;
  without them, the dynamic scale fits the regular values;
- optionally (`per_token`), every token (row) also gets its own activation scale;
- or (`static_range`, set from calibration) the regular columns' activation range is fixed, which spares
  the kernels that have a static form their pass over the input to find it (see `_int8_kernels`).

The int8 product itself is one of several kernels (oneDNN on AMX/VNNI, FBGEMM, torch._int_mm, an exact
fp32 product of the integers; see `_int8_kernels`), chosen per CPU by `_int8_kernels.choose_kernel`: a CPU without VNNI
saturates full-range int8 sums, and the fastest correct kernel differs from one CPU to the next. Under
torch.compile (`compiled`) the per-token `torch._int_mm` kernel runs fused by inductor.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger("wattprint")

_QMAX = 127.0
_EPS = 1e-12


_COMPILE_STATE: dict[str, Any] = {"ok": True, "fn": None}


def int8_linear_kernel(
    x2: torch.Tensor,
    weight_int8: torch.Tensor,
    weight_scale: torch.Tensor,
    bias: torch.Tensor | None,
    outlier_idx: torch.Tensor,
    outlier_weight: torch.Tensor,
    int_mm: bool = True,
) -> torch.Tensor:
    """y = dequant(int8(x_regular) @ W_int8) + x_outlier @ W_outlier + bias, for 2-D x, in x's dtype, with
    per-token activation scales; the product on `torch._int_mm`, or in fp32 (exact while |sum| < 2^24)."""
    out_dtype = x2.dtype
    x2 = x2.float()
    has_outliers = outlier_idx.numel() > 0
    if has_outliers:
        x_out = x2.index_select(1, outlier_idx)
        x2 = x2.index_fill(1, outlier_idx, 0.0)
    scale = x2.abs().amax(dim=1, keepdim=True).clamp_min(_EPS) / _QMAX
    if torch.compiler.is_compiling():
        xq = torch.round(x2 / scale).to(torch.int8)
    else:  # in place where eager allows it: every pass over the activations costs about as much as the product
        xq = (x2 / scale).round_().to(torch.int8)
    acc = torch._int_mm(xq, weight_int8) if int_mm else xq.float() @ weight_int8.float()
    if torch.compiler.is_compiling():
        y = acc * scale * weight_scale
        if has_outliers:
            y = y + torch.mm(x_out, outlier_weight)  # the addition fuses into the dequantization pass
        return (y + bias if bias is not None else y).to(out_dtype)  # the cast fuses into the same pass
    y = acc * scale
    y.mul_(weight_scale)
    if has_outliers:
        y.addmm_(x_out, outlier_weight)
    if bias is not None:
        y.add_(bias)
    return y.to(out_dtype)


def _compiled_kernel() -> Any:
    """The int8 kernel under torch.compile (compiled once per process, shapes dynamic): inductor fuses the
    per-token quantization and the dequantization into single passes, which eager runs as ~8 memory-bound
    passes that together cost more than the int8 product itself."""
    if _COMPILE_STATE["fn"] is None:
        _COMPILE_STATE["fn"] = torch.compile(int8_linear_kernel, dynamic=True)
    return _COMPILE_STATE["fn"]


class Int8Linear(nn.Module):
    """A Linear layer with int8 weights, int8 activations (per tensor or per token) and float outlier columns.

    `kernel` names the int8 product (see `_int8_kernels`); the recipe sets it from `choose_kernel`. The
    default, "fp32-exact", is correct on every device and fast on none."""

    weight_int8: torch.Tensor  # (in_features, out_features), int8, outlier rows zeroed
    weight_scale: torch.Tensor  # (out_features,), float32
    bias: torch.Tensor | None
    outlier_idx: torch.Tensor  # (k,), int64: input columns kept in float
    outlier_weight: torch.Tensor  # (k, out_features), float32

    def __init__(
        self,
        in_features: int,
        out_features: int,
        weight_int8: torch.Tensor,
        weight_scale: torch.Tensor,
        bias: torch.Tensor | None,
        outlier_idx: torch.Tensor,
        outlier_weight: torch.Tensor,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", bias)
        self.register_buffer("outlier_idx", outlier_idx)
        self.register_buffer("outlier_weight", outlier_weight)
        self.kernel = "fp32-exact"
        self._per_token = False  # per-tensor activation scale (outliers removed), or one per row as well
        # (low, high) of the regular columns' activations on the calibration inputs: fixed scale where the
        # kernel has a static form; None: found at every call
        self.static_range: tuple[float, float] | None = None
        self.compiled = False  # run the per-token _int_mm kernel through torch.compile instead
        self._packed: Any = None  # the kernel's packed weight, built on first use (not part of the state_dict)

    @property
    def per_token(self) -> bool:
        """One activation scale per row as well as the per-tensor one (the fused kernels then leave the
        bias out of their packed weight: changing this repacks)."""
        return self._per_token

    @per_token.setter
    def per_token(self, value: bool) -> None:
        if bool(value) != self._per_token:
            self._per_token = bool(value)
            self._packed = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__().copy()
        state["_packed"] = None  # rebuilt from the int8 buffers; packed weights do not deep-copy or pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "per_token" in state:  # saved before per_token became a property
            state["_per_token"] = state.pop("per_token")
        state.setdefault("_per_token", False)
        state.setdefault("static_range", None)  # saved before static activation ranges
        if "kernel" not in state:  # saved before the kernel choice: oneDNN or the generic kernel
            state["kernel"] = "onednn" if state.pop("use_onednn", False) else "fp32-exact"
        super().__setstate__(state)
        from wattprint.optimize import _int8_kernels

        if self.weight_int8.device.type == "cpu":
            # the kernel was chosen on the CPU that saved the model: one that is missing or saturates here
            # gives way to one that is exact here
            self.kernel = _int8_kernels.usable_here(self.kernel)
        self.packed_weight()  # pack now, not lazily inside a forward that another thread may share

    def packed_weight(self) -> Any:
        """The kernel's packed weight (None for kernels that use the int8 buffers as they are)."""
        from wattprint.optimize import _int8_kernels

        if self._packed is None and self.kernel in _int8_kernels.PACKED:
            self._packed = _int8_kernels.pack(self)
        return self._packed

    def set_kernel(self, kernel: str, per_token: bool | None = None) -> None:
        """Switch to another kernel (and activation-scale mode); the packed weight is rebuilt for it."""
        self.kernel = kernel
        if per_token is not None:
            self.per_token = per_token
        self._packed = None
        self.packed_weight()

    @classmethod
    def from_linear(cls, linear: nn.Linear, outlier_idx: torch.Tensor | None = None, qmax: float = _QMAX) -> Int8Linear:
        """Quantize `linear`'s weight per output channel to [-qmax, qmax] (63 for kernels that take 7-bit
        weights); columns in `outlier_idx` stay in float."""
        weight = linear.weight.detach().float()
        device = weight.device
        idx = (outlier_idx if outlier_idx is not None else torch.empty(0, dtype=torch.long)).to(device).long()
        regular = weight.clone()
        regular[:, idx] = 0.0
        scale = regular.abs().amax(dim=1).clamp_min(_EPS) / qmax
        weight_int8 = torch.round(regular / scale[:, None]).clamp(-qmax, qmax).to(torch.int8)
        bias = linear.bias.detach().float().clone() if linear.bias is not None else None
        return cls(
            linear.in_features,
            linear.out_features,
            weight_int8.t().contiguous(),
            scale,
            bias,
            idx,
            weight[:, idx].t().contiguous(),
        )

    @property
    def n_outliers(self) -> int:
        return int(self.outlier_idx.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if self.compiled and _COMPILE_STATE["ok"]:
            try:
                y = _compiled_kernel()(
                    x2, self.weight_int8, self.weight_scale, self.bias, self.outlier_idx, self.outlier_weight
                )
                return y.reshape(*lead, self.out_features)
            except Exception as exc:  # noqa: BLE001 - no C++ toolchain, dynamo limits...: fall back to eager
                _COMPILE_STATE["ok"] = False
                log.warning(
                    "wattprint: int8: torch.compile of the int8 kernel failed (%s); running eager",
                    str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__,
                )
        from wattprint.optimize import _int8_kernels

        xf = x2 if x2.dtype == torch.float32 else x2.float()
        if not self.n_outliers:
            y = _int8_kernels.run(self, xf, self.packed_weight())
        else:
            x_out = xf.index_select(1, self.outlier_idx)
            if _int8_kernels.fixed_range(self) is not None:
                # a fixed scale clips the outlier columns, and their int8 weight rows are zero: no zeroing
                y = _int8_kernels.run(self, xf, self.packed_weight())
            elif xf is not x2:  # our own fp32 copy: zero the outlier columns in place
                y = _int8_kernels.run(self, xf.index_fill_(1, self.outlier_idx, 0.0), self.packed_weight())
            elif torch.is_inference_mode_enabled() and xf.is_inference() and xf.is_contiguous():
                # the caller's tensor: zero its few outlier columns for the product and put them back, instead
                # of copying all of it (a copy of a 4096x1536 input costs a third of the int8 product). Only an
                # inference tensor: no autograd graph or version counter can see it, and contiguous, so no
                # element is shared; only a thread reading the same tensor meanwhile could
                xf.index_fill_(1, self.outlier_idx, 0.0)
                try:
                    y = _int8_kernels.run(self, xf, self.packed_weight())
                finally:
                    xf.index_copy_(1, self.outlier_idx, x_out)
            else:  # autograd may have saved the input, or it shares memory: never write into it
                y = _int8_kernels.run(self, xf.index_fill(1, self.outlier_idx, 0.0), self.packed_weight())
            y.addmm_(x_out, self.outlier_weight)
        return (y if y.dtype == x.dtype else y.to(x.dtype)).reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"float_columns={self.n_outliers}, kernel={self.kernel}"
        )


class ActivationStats:
    """Per-Linear statistics of input activations gathered by forward hooks during calibration."""

    def __init__(self) -> None:
        self.col_min: dict[str, torch.Tensor] = {}
        self.col_max: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}
        self.rows: dict[str, int] = {}  # most rows (tokens) in one call

    @property
    def col_absmax(self) -> dict[str, torch.Tensor]:
        """Largest |activation| per input column, per layer."""
        return {name: torch.maximum(self.col_min[name].abs(), self.col_max[name].abs()) for name in self.col_max}

    def hook(self, name: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            low, high = torch.aminmax(x.reshape(-1, x.shape[-1]).float(), dim=0)
            low, high = low.cpu(), high.cpu()
            if name in self.col_max:
                low, high = torch.minimum(self.col_min[name], low), torch.maximum(self.col_max[name], high)
            self.col_min[name], self.col_max[name] = low, high
            self.calls[name] = self.calls.get(name, 0) + 1
            self.rows[name] = max(self.rows.get(name, 0), x.numel() // max(x.shape[-1], 1))

        return record

    def range_without(self, name: str, columns: torch.Tensor) -> tuple[float, float]:
        """(min, max) of layer `name`'s activations over the columns not in `columns`."""
        keep = torch.ones_like(self.col_max[name], dtype=torch.bool)
        keep[columns] = False
        if not bool(keep.any()):
            return 0.0, 0.0
        return float(self.col_min[name][keep].min()), float(self.col_max[name][keep].max())


def outlier_columns(col_absmax: torch.Tensor, outlier_ratio: float) -> torch.Tensor:
    """Input columns whose largest |activation| exceeds `outlier_ratio` x the median column's."""
    median = col_absmax.median().clamp_min(_EPS)
    return torch.nonzero(col_absmax > outlier_ratio * median).flatten()
