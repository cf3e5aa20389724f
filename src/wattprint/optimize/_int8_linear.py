"""Outlier-aware int8 Linear: the kernel behind the "int8" recipe.

Why not plain dynamic int8: torch.ao's dynamic quantization gives the whole activation tensor one scale,
so a handful of large activations (transformer FFN inputs carry features 50-200x the median) squash every
other value into a few int8 levels. Here:

- weights are int8 with one scale per output channel;
- activations are quantized at run time with one scale per token (row), so one loud token does not cost
  the others their resolution;
- input columns found to carry outliers during calibration bypass int8 and are multiplied in float, as in
  LLM.int8()'s decomposition: y = int8(x_regular) @ int8(W_regular) + x_outlier @ W_outlier.

The int8 product runs on `torch._int_mm` (int8 x int8 -> int32, oneDNN/AMX-VNNI on x86 CPUs, cuBLASLt on
CUDA); where a device/shape combination lacks it, the same integers are multiplied in fp32 (exact below 2^24).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger("wattprint")

_QMAX = 127.0
_EPS = 1e-12


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
        self._int_mm_ok = True

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

    def _int8_matmul(self, xq: torch.Tensor) -> torch.Tensor:
        if self._int_mm_ok:
            try:
                return torch._int_mm(xq, self.weight_int8)
            except RuntimeError as exc:  # e.g. CUDA shape constraints (rows > 16, multiples of 8)
                log.debug("wattprint: _int_mm unavailable (%s); using an fp32 product of the int8 values", exc)
                self._int_mm_ok = False
        return xq.float() @ self.weight_int8.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_dtype = x.dtype
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).float()
        if self.n_outliers:
            x_out = x2.index_select(1, self.outlier_idx)
            x2 = x2.index_fill(1, self.outlier_idx, 0.0)
        scale = x2.abs().amax(dim=1, keepdim=True).clamp_min(_EPS) / _QMAX
        xq = torch.round(x2 / scale).to(torch.int8)
        y = self._int8_matmul(xq).float()
        y.mul_(scale).mul_(self.weight_scale)
        if self.n_outliers:
            y.addmm_(x_out, self.outlier_weight)
        if self.bias is not None:
            y.add_(self.bias)
        return y.to(out_dtype).reshape(*lead, self.out_features)

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
