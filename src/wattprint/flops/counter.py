"""Count multiply-accumulates (MACs) of a PyTorch model run.

Units: one MAC is one multiply plus one add; ``flops == 2 * macs``. Only matrix-multiply-like ops are
counted (mm/addmm/bmm/baddbmm/matmul, convolutions, attention kernels, LSTM/GRU, dynamic quantized linear);
element-wise ops, normalisation (BatchNorm/LayerNorm), activations, softmax and bias adds are *not*
counted. Attention is counted dense: causal or boolean masks do not reduce the count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FlopReport:
    """Result of :func:`count_flops`.

    Attributes:
        macs: total multiply-accumulates.
        flops: floating-point operations, ``2 * macs``.
        by_module: module path (as in ``model.named_modules()``, ``""`` = the model itself) -> MACs,
            inclusive of sub-modules. Only modules with nonzero MACs are listed.
        by_op: aten op name -> MACs.
        params: number of parameters (shared parameters counted once).
        param_bytes: parameter bytes per dtype name, e.g. ``{"float32": 90_000_000}``.
        backward: whether the backward pass is included.
    """

    macs: int
    by_module: dict[str, int] = field(default_factory=dict)
    by_op: dict[str, int] = field(default_factory=dict)
    params: int = 0
    param_bytes: dict[str, int] = field(default_factory=dict)
    backward: bool = False

    @property
    def flops(self) -> int:
        """FLOPs, counting each MAC as two operations."""
        return 2 * self.macs

    def as_metrics(self) -> dict[str, int]:
        """``{"macs", "flops", "params"}`` for ``tracker.log(**report.as_metrics())``, as reports expect."""
        return {"macs": self.macs, "flops": self.flops, "params": self.params}


def _param_stats(model: Any) -> tuple[int, dict[str, int]]:
    count = 0
    nbytes: dict[str, int] = defaultdict(int)
    for p in model.parameters():  # parameters() already deduplicates shared tensors
        count += p.numel()
        nbytes[str(p.dtype).removeprefix("torch.")] += p.numel() * p.element_size()
    return count, dict(nbytes)


def _sum_outputs(out: Any) -> Any:
    import torch
    from torch.utils._pytree import tree_leaves

    leaves = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.requires_grad]
    if not leaves:
        raise ValueError("backward=True needs a model output that requires grad")
    return sum(t.float().sum() for t in leaves)


def _has_tensor(value: Any) -> bool:
    import torch

    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    return False


def count_flops(model: Any, *args: Any, backward: bool = False, nonzero: bool = False, **kwargs: Any) -> FlopReport:
    """Run ``model(*args, **kwargs)`` once and count its MACs.

    Args:
        model: a ``torch.nn.Module`` (or any callable; then ``by_module`` and parameter stats are empty).
        *args, **kwargs: inputs passed to the model.
        backward: also run ``sum(outputs).backward()`` and include the backward pass.
        nonzero: for ``mm``/``addmm`` (Linear) and convolutions, count only MACs of nonzero weights
            (the second matmul operand / the conv kernel), e.g. for pruned models.

    Returns:
        A :class:`FlopReport`. ``torch.no_grad`` is used unless ``backward`` is set.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from wattprint.errors import WattprintInputError
    from wattprint.flops.formulas import custom_mapping

    if not callable(model):
        raise WattprintInputError("model", f"got {type(model).__name__}; expected a torch.nn.Module or a callable")
    if not isinstance(model, torch.nn.Module) and not _has_tensor((args, kwargs)):
        # nothing for the counter to see: a plain function of plain values would report 0 MACs, silently
        raise WattprintInputError("args", "no tensor among the inputs; expected the tensors the model runs on")
    counter = FlopCounterMode(display=False, custom_mapping=custom_mapping(nonzero=nonzero))
    grad_ctx = torch.enable_grad() if backward else torch.no_grad()
    with grad_ctx, counter:
        out = model(*args, **kwargs)
        if backward:
            _sum_outputs(out).backward()

    counts = counter.get_flop_counts()
    total = counts.get("Global", {})
    by_op = {str(op): flops // 2 for op, flops in total.items() if flops}
    is_module = isinstance(model, torch.nn.Module)
    by_module: dict[str, int] = {}
    if is_module:
        root = type(model).__name__
        for name, ops in counts.items():
            macs = sum(ops.values()) // 2
            if name == "Global" or not macs:
                continue
            path = name.removeprefix(root).removeprefix(".")
            by_module[path] = by_module.get(path, 0) + macs
    params, param_bytes = _param_stats(model) if is_module else (0, {})
    return FlopReport(
        macs=sum(total.values()) // 2,
        by_module=dict(sorted(by_module.items())),
        by_op=by_op,
        params=params,
        param_bytes=param_bytes,
        backward=backward,
    )
