"""Extra FLOP formulas for ``torch.utils.flop_counter.FlopCounterMode`` (values are FLOPs = 2 x MACs).

Adds ops torch's registry misses: the CPU / math / overrideable scaled-dot-product-attention kernels
(forward and backward), the native multi-head-attention fast path, the CPU (mkldnn) LSTM layer, dynamic
and static quantized linear (quantized or fp32 activations), static quantized convolution, int8
``_int_mm``, oneDNN's int8 linear (``onednn::qlinear_pointwise``), and optional "nonzero weights only"
variants of mm/addmm/convolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def _raw(fn: Callable[..., int]) -> Callable[..., int]:
    """Mark a formula as taking real tensors instead of shapes (FlopCounterMode's ``_get_raw``)."""
    fn._get_raw = True  # type: ignore[attr-defined]
    return fn


def _sdpa_fwd(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _sdpa_bwd(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


@_raw
def _nonzero_mm(a: Any, b: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """``mm(a, b)`` counting only nonzero entries of ``b`` (the weight for ``Linear``)."""
    return 2 * a.shape[0] * int(b.count_nonzero())


@_raw
def _nonzero_addmm(bias: Any, a: Any, b: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    return _nonzero_mm(a, b)


@_raw
def _nonzero_conv(
    x: Any,
    w: Any,
    bias: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    transposed: bool,
    *args: Any,
    out_val: Any = None,
    **kwargs: Any,
) -> int:
    """Each nonzero kernel element is used once per batch item and output (input, if transposed) position."""
    positions = x.shape[2:] if transposed else out_val.shape[2:]
    return 2 * x.shape[0] * math.prod(positions) * int(w.count_nonzero())


@_raw
def _linear_dynamic(x: Any, packed: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """``quantized::linear_dynamic(X, packed_params)``: rows(X) x out_features x in_features MACs."""
    weight = packed.unpack()[0]
    out_features, in_features = weight.shape
    return 2 * (x.numel() // in_features) * out_features * in_features


def _int_mm(a_shape: Any, b_shape: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """``aten._int_mm`` (int8 x int8 -> int32): M x K x N MACs, like mm."""
    m, k = a_shape
    return 2 * m * k * b_shape[1]


def _qlinear_pointwise(
    x: Any, x_scale: Any, x_zero: Any, packed: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    """``onednn::qlinear_pointwise`` (int8 linear on plain u8/s8 tensors; the weight packed as (in, out)):
    rows(X) x in_features x out_features MACs."""
    in_features, out_features = packed
    return 2 * (math.prod(x) // in_features) * in_features * out_features


@_raw
def _linear_static(x: Any, packed: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """``quantized::linear`` (static int8, also fused with ReLU): rows(X) x out_features x in_features MACs."""
    return _linear_dynamic(x, packed)


@_raw
def _linear_static_fp32(x: Any, scale: Any, zero_point: Any, packed: Any, *args: Any, **kwargs: Any) -> int:
    """``quantized::linear_with_input_q_dq_qweight_dq_output_fp32`` (FBGEMM's int8 linear with a fixed
    activation scale, fp32 in and out): rows(X) x out_features x in_features MACs."""
    return _linear_dynamic(x, packed)


@_raw
def _conv_static(x: Any, packed: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    """``quantized::conv2d`` and friends: each output element uses in_channels/groups x kernel weights."""
    weight = packed.unpack()[0]
    return 2 * out_val.numel() * math.prod(weight.shape[1:])


@_raw
def _native_mha(
    query: Any, key: Any, value: Any, embed_dim: int, num_heads: int, *args: Any, out_val: Any = None, **kwargs: Any
) -> int:
    """``aten._native_multi_head_attention`` (nn.MultiheadAttention fast path): projections + attention."""
    batch, l_q = (query.shape[0], query.shape[1]) if query.dim() == 3 else (1, query.shape[0])
    l_k = key.shape[-2]
    proj = batch * (l_q + 2 * l_k) * embed_dim * embed_dim + batch * l_q * embed_dim * embed_dim
    attn = 2 * batch * l_q * l_k * embed_dim
    return 2 * (proj + attn)


def _rnn_layer(input: Any, w_ih: Any, w_hh: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """``aten.mkldnn_rnn_layer`` (CPU LSTM, one layer and direction): tokens x (|W_ih| + |W_hh|) MACs."""
    return 2 * math.prod(input[:-1]) * (math.prod(w_ih) + math.prod(w_hh))


def _rnn_layer_bwd(input: Any, w_ih: Any, w_hh: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    """Backward of one LSTM layer: input gradients plus weight gradients, twice the forward MACs."""
    return 2 * _rnn_layer(input, w_ih, w_hh)


def custom_mapping(nonzero: bool = False) -> dict[Any, Callable[..., int]]:
    """Build the ``custom_mapping`` for ``FlopCounterMode`` (ops missing from a given torch are skipped)."""
    import torch

    aten = torch.ops.aten
    mapping: dict[Any, Callable[..., int]] = {}

    def add(namespace: Any, names: list[str], fn: Callable[..., int]) -> None:
        for name in names:
            if hasattr(namespace, name):
                mapping[getattr(namespace, name)] = fn

    add(
        aten,
        [
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_attention_math",
            "_scaled_dot_product_attention_math_for_mps",
            "_scaled_dot_product_fused_attention_overrideable",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_cudnn_attention",
        ],
        _sdpa_fwd,
    )
    add(
        aten,
        [
            "_scaled_dot_product_flash_attention_for_cpu_backward",
            "_scaled_dot_product_fused_attention_overrideable_backward",
            "_scaled_dot_product_efficient_attention_backward",
            "_scaled_dot_product_flash_attention_backward",
            "_scaled_dot_product_cudnn_attention_backward",
        ],
        _sdpa_bwd,
    )
    add(aten, ["_native_multi_head_attention"], _native_mha)
    add(aten, ["mkldnn_rnn_layer"], _rnn_layer)
    add(aten, ["mkldnn_rnn_layer_backward"], _rnn_layer_bwd)
    add(torch.ops.quantized, ["linear_dynamic"], _linear_dynamic)
    add(torch.ops.quantized, ["linear", "linear_relu"], _linear_static)
    add(torch.ops.quantized, ["linear_with_input_q_dq_qweight_dq_output_fp32"], _linear_static_fp32)
    add(torch.ops.quantized, ["conv1d", "conv2d", "conv3d", "conv1d_relu", "conv2d_relu", "conv3d_relu"], _conv_static)
    add(aten, ["_int_mm"], _int_mm)
    if hasattr(torch.ops, "onednn"):
        add(torch.ops.onednn, ["qlinear_pointwise"], _qlinear_pointwise)
    if nonzero:
        add(aten, ["mm"], _nonzero_mm)
        add(aten, ["addmm"], _nonzero_addmm)
        add(aten, ["convolution", "_convolution"], _nonzero_conv)
    return mapping
