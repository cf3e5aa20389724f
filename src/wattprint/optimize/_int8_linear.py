"""Outlier-aware int8 Linear: the layer behind the "int8" recipe.

Why plain dynamic int8 loses quality: torch.ao's dynamic quantization gives the whole activation tensor one
scale, and a few input features of transformer layers carry values 50-200x the median (MiniLM: features
99, 63, 223 of the FFN input), so that scale leaves every other value a handful of int8 levels. Here:

- weights are int8 with one scale per output channel;
- the input columns found to carry outliers during calibration bypass int8 and are multiplied in float,
  as in LLM.int8()'s decomposition: y = int8(x_regular) @ int8(W_regular) + x_outlier @ W_outlier;
  without them, the dynamic scale fits the regular values;
- optionally (`per_token`), every token (row) also gets its own activation scale.

Kernels, CPU: oneDNN's dynamic int8 linear (`quantized::linear_dynamic` on oneDNN-packed weights: AMX or
VNNI, activation quantization, dequantization and bias fused), which has one scale per tensor; per-token
mode pre-scales each row by its max |x| and scales the output back (two more passes, about 2x slower here).
Elsewhere (CUDA, builds without oneDNN) and under torch.compile: `torch._int_mm` (int8 x int8 -> int32)
with per-token scales, or an fp32 product of the same integers where even that is missing.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import torch
from torch import nn

log = logging.getLogger("wattprint")

_QMAX = 127.0
_EPS = 1e-12


_COMPILE_STATE: dict[str, Any] = {"ok": True, "fn": None}
_INT_MM_BY_DEVICE: dict[str, bool] = {}


def _onednn_available() -> bool:
    return "onednn" in torch.backends.quantized.supported_engines


def _int_mm_works(device: torch.device) -> bool:
    """Whether torch._int_mm runs on this device (probed once per device with a small, aligned product)."""
    key = str(device)
    if key not in _INT_MM_BY_DEVICE:
        try:
            a = torch.ones(32, 32, dtype=torch.int8, device=device)
            _INT_MM_BY_DEVICE[key] = bool((torch._int_mm(a, a) == 32).all())
        except RuntimeError:
            _INT_MM_BY_DEVICE[key] = False
    return _INT_MM_BY_DEVICE[key]


def int8_linear_kernel(x2: torch.Tensor, weight_int8: torch.Tensor, weight_scale: torch.Tensor,
                       bias: torch.Tensor | None, outlier_idx: torch.Tensor, outlier_weight: torch.Tensor,
                       int_mm: bool = True) -> torch.Tensor:
    """y = dequant(int8(x_regular) @ W_int8) + x_outlier @ W_outlier + bias, for 2-D x, in x's dtype."""
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
    # without _int_mm, the int8 x int8 products are summed in fp32: exact while |sum| < 2^24
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
    """A Linear layer with int8 weights, per-token int8 activations and float outlier columns."""

    weight_int8: torch.Tensor  # (in_features, out_features), int8, outlier rows zeroed
    weight_scale: torch.Tensor  # (out_features,), float32
    bias: torch.Tensor | None
    outlier_idx: torch.Tensor  # (k,), int64: input columns kept in float
    outlier_weight: torch.Tensor  # (k, out_features), float32

    def __init__(self, in_features: int, out_features: int, weight_int8: torch.Tensor, weight_scale: torch.Tensor,
                 bias: torch.Tensor | None, outlier_idx: torch.Tensor, outlier_weight: torch.Tensor) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("weight_int8", weight_int8)
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("bias", bias)
        self.register_buffer("outlier_idx", outlier_idx)
        self.register_buffer("outlier_weight", outlier_weight)
        self._int_mm_ok = _int_mm_works(weight_int8.device)
        self.compiled = False  # set by the int8 recipe: run the _int_mm kernel through torch.compile
        self.use_onednn = weight_int8.device.type == "cpu" and _onednn_available()
        self._packed: Any = None  # oneDNN packed weight, built on first use (not part of the state_dict)
        self.per_token = False  # oneDNN path: per-tensor activation scale (outliers removed) or per-token

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__().copy()
        state["_packed"] = None  # rebuilt from the int8 buffers; packed params do not deep-copy or pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self.use_onednn:
            self._onednn_weight()  # pack now, not lazily inside a forward that another thread may share

    def _onednn_weight(self) -> Any:
        if self._packed is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecation notice of quantized tensor types
                qweight = torch._make_per_channel_quantized_tensor(
                    self.weight_int8.t().contiguous(), self.weight_scale.double(),
                    torch.zeros(self.out_features, dtype=torch.long), 0)
            previous = torch.backends.quantized.engine
            torch.backends.quantized.engine = "onednn"  # selects the packing only; the op dispatches on it
            try:
                bias = None if self.per_token or self.bias is None else self.bias  # fused by oneDNN
                self._packed = torch.ops.quantized.linear_prepack(qweight, bias)
            finally:
                torch.backends.quantized.engine = previous
        return self._packed

    def _forward_onednn(self, x2: torch.Tensor) -> torch.Tensor:
        """The int8 product on oneDNN (AMX/VNNI; activation quantization, dequantization and bias fused in the
        kernel), which takes one dynamic scale for the whole activation tensor. Per-tensor mode: the outlier
        columns that would set that scale are zeroed and computed in float (LLM.int8()'s decomposition), so
        the scale fits the regular values. Per-token mode: each row is also divided by its own max |x| and
        multiplied back after the product, so the one scale acts as every token's own (two more passes)."""
        if self.per_token:
            return self._forward_onednn_per_token(x2)
        xf = x2 if x2.dtype == torch.float32 else x2.float()
        if self.n_outliers:
            x_out = xf.index_select(1, self.outlier_idx)
            # zero the outlier columns on a copy: never write into the caller's tensor
            xf = xf.index_fill_(1, self.outlier_idx, 0.0) if xf is not x2 else xf.index_fill(1, self.outlier_idx, 0.0)
        y = torch.ops.quantized.linear_dynamic(xf, self._onednn_weight(), False)
        if self.n_outliers:
            y.addmm_(x_out, self.outlier_weight)
        return y if y.dtype == x2.dtype else y.to(x2.dtype)

    def _forward_onednn_per_token(self, x2: torch.Tensor) -> torch.Tensor:
        absx = x2.abs()
        if self.n_outliers:
            absx.index_fill_(1, self.outlier_idx, 0.0)
        row_max = absx.amax(dim=1, keepdim=True).float().clamp_min(_EPS)
        x_norm = x2 * row_max.reciprocal()  # fp32
        if self.n_outliers:
            x_out = x_norm.index_select(1, self.outlier_idx)
            x_norm.index_fill_(1, self.outlier_idx, 0.0)
        y = torch.ops.quantized.linear_dynamic(x_norm, self._onednn_weight(), False)
        if self.n_outliers:
            y.addmm_(x_out, self.outlier_weight)  # before the row scaling: x_out was divided by it too
        out = torch.empty(y.shape, dtype=x2.dtype, device=y.device)
        if self.bias is not None:
            return torch.addcmul(self.bias, y, row_max, out=out)
        return torch.mul(y, row_max, out=out)

    @classmethod
    def from_linear(cls, linear: nn.Linear, outlier_idx: torch.Tensor | None = None) -> Int8Linear:
        """Quantize `linear`'s weight per output channel; columns in `outlier_idx` stay in float."""
        weight = linear.weight.detach().float()
        device = weight.device
        idx = (outlier_idx if outlier_idx is not None else torch.empty(0, dtype=torch.long)).to(device).long()
        regular = weight.clone()
        regular[:, idx] = 0.0
        scale = regular.abs().amax(dim=1).clamp_min(_EPS) / _QMAX
        weight_int8 = torch.round(regular / scale[:, None]).clamp(-_QMAX, _QMAX).to(torch.int8)
        bias = linear.bias.detach().float().clone() if linear.bias is not None else None
        return cls(linear.in_features, linear.out_features, weight_int8.t().contiguous(), scale, bias, idx,
                   weight[:, idx].t().contiguous())

    @property
    def n_outliers(self) -> int:
        return int(self.outlier_idx.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        args = (x2, self.weight_int8, self.weight_scale, self.bias, self.outlier_idx, self.outlier_weight)
        y = None
        if self.use_onednn and not self.compiled:
            return self._forward_onednn(x2).reshape(*lead, self.out_features)
        if self.compiled and _COMPILE_STATE["ok"] and self._int_mm_ok:
            try:
                y = _compiled_kernel()(*args)
            except Exception as exc:  # noqa: BLE001 - no C++ toolchain, dynamo limits...: fall back to eager
                _COMPILE_STATE["ok"] = False
                log.warning("wattprint: int8: torch.compile of the int8 kernel failed (%s); running eager",
                            str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__)
        if y is None:
            y = int8_linear_kernel(*args, int_mm=self._int_mm_ok)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, float_columns={self.n_outliers}"


class ActivationStats:
    """Per-Linear statistics of input activations gathered by forward hooks during calibration."""

    def __init__(self) -> None:
        self.col_absmax: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {}

    def hook(self, name: str) -> Any:
        def record(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0].detach()
            col = x.reshape(-1, x.shape[-1]).abs().amax(dim=0).float().cpu()
            prev = self.col_absmax.get(name)
            self.col_absmax[name] = col if prev is None else torch.maximum(prev, col)
            self.calls[name] = self.calls.get(name, 0) + 1

        return record


def outlier_columns(col_absmax: torch.Tensor, outlier_ratio: float) -> torch.Tensor:
    """Input columns whose largest |activation| exceeds `outlier_ratio` x the median column's."""
    median = col_absmax.median().clamp_min(_EPS)
    return torch.nonzero(col_absmax > outlier_ratio * median).flatten()
