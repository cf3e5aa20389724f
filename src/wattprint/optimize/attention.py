"""Switch attention to ``torch.nn.functional.scaled_dot_product_attention`` (SDPA), where it is not already.

Scope, honestly:
  - Hugging Face models (a ``config`` with ``_attn_implementation``): switched to ``"sdpa"`` through
    transformers' own mechanism, where the architecture supports it.
  - Plain modules that spell attention out as ``softmax(Q @ K^T [/ c | * c], dim=-1) @ V`` and can be traced by
    ``torch.fx``: the pattern is found in the traced graph and replaced by one SDPA call. Masks, dropout
    between softmax and V, or a scale computed from tensor shapes at run time are not matched, and modules
    fx cannot trace are left as they are.
  - ``torch.nn.MultiheadAttention`` already calls SDPA inside; nothing to do.
Every rewrite is checked: the outputs on `example_inputs` before and after must agree, else it is undone.
"""

from __future__ import annotations

import copy
import logging
import operator
from dataclasses import dataclass, field
from typing import Any

from wattprint.errors import WattprintInputError

log = logging.getLogger("wattprint")


@dataclass
class SdpaReport:
    """What `to_sdpa` did: modules rewritten (by path), Hugging Face switch, and modules it could not trace."""

    rewritten: dict[str, int] = field(default_factory=dict)  # module path -> attention patterns replaced
    hf_switched: bool = False
    untraceable: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.rewritten) or self.hf_switched


def _is(node: Any, targets: tuple[Any, ...], methods: tuple[str, ...] = ()) -> bool:
    if node.op == "call_function":
        return node.target in targets
    return node.op == "call_method" and node.target in methods


def _arg(node: Any, i: int, key: str, default: Any = None) -> Any:
    return node.args[i] if len(node.args) > i else node.kwargs.get(key, default)


def _is_last_two_transpose(node: Any) -> bool:
    import torch

    if node.op == "call_method" and node.target == "mT":
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1] == "mT":
        return True
    if not _is(node, (torch.transpose,), ("transpose",)):
        return False
    dims = {_arg(node, 1, "dim0"), _arg(node, 2, "dim1")}
    return dims in ({-2, -1}, {2, 3})  # (2, 3) is the last two of the usual (batch, heads, seq, dim) layout


def _match(softmax: Any) -> tuple[Any, Any, Any, float | None] | None:
    """(q, k, v, scale) if `softmax` is the middle of softmax(q @ k^T * s) @ v, else None."""
    import torch

    dim = _arg(softmax, 1, "dim")
    if dim != -1 or len(softmax.users) != 1 or softmax.kwargs.get("dtype") is not None:
        return None
    (out,) = softmax.users
    if not _is(out, (torch.matmul, operator.matmul), ("matmul",)) or out.args[0] is not softmax:
        return None
    v = out.args[1]
    scores, scale = softmax.args[0], 1.0
    if _is(scores, (operator.truediv, torch.div), ("div",)) and isinstance(scores.args[1], (int, float)):
        scores, scale = scores.args[0], 1.0 / scores.args[1]
    elif _is(scores, (operator.mul, torch.mul), ("mul",)) and isinstance(scores.args[1], (int, float)):
        scores, scale = scores.args[0], float(scores.args[1])
    if not hasattr(scores, "op") or len(scores.users) != 1:
        return None
    if not _is(scores, (torch.matmul, operator.matmul), ("matmul",)):
        return None
    q, kt = scores.args[0], scores.args[1]
    if not hasattr(kt, "op") or not _is_last_two_transpose(kt):
        return None
    k = kt.args[0]
    return q, k, v, scale


def rewrite_graph(graph_module: Any) -> int:
    """Replace every matched attention pattern of an fx GraphModule by SDPA; return how many."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    softmaxes = [
        n
        for n in graph_module.graph.nodes
        if _is(n, (torch.softmax, F.softmax, torch.nn.functional.softmax), ("softmax",))
    ]
    count = 0
    for node in softmaxes:
        found = _match(node)
        if found is None:
            continue
        q, k, v, scale = found
        (out,) = node.users
        with graph_module.graph.inserting_before(out):
            sdpa = graph_module.graph.call_function(F.scaled_dot_product_attention, (q, k, v), {"scale": scale})
        out.replace_all_uses_with(sdpa)
        count += 1
    if count:
        graph_module.graph.eliminate_dead_code()
        graph_module.graph.lint()
        graph_module.recompile()
    return count


def _outputs_close(a: Any, b: Any) -> bool:
    import torch
    from torch.utils._pytree import tree_leaves

    la, lb = tree_leaves(a), tree_leaves(b)
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb, strict=True):
        if isinstance(x, torch.Tensor):
            if not isinstance(y, torch.Tensor) or x.shape != y.shape:
                return False
            if not torch.allclose(x.float(), y.float(), rtol=1e-3, atol=1e-4):
                return False
    return True


def _switch_hf(model: Any) -> bool:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "_attn_implementation"):
        return False
    if config._attn_implementation == "sdpa":
        return False
    setter = getattr(model, "set_attn_implementation", None)
    try:
        if setter is not None:
            setter("sdpa")
        else:
            config._attn_implementation = "sdpa"
    except (ValueError, ImportError) as exc:  # architecture without an SDPA path
        raise WattprintInputError(
            "recipe",
            f"sdpa: {type(model).__name__} has no SDPA attention in transformers "
            f"({exc}); accepted: models whose architecture supports attn_implementation='sdpa'",
        ) from None
    return True


def _calls_softmax(module: Any) -> bool:
    import inspect

    try:
        src = inspect.getsource(type(module).forward)
    except (OSError, TypeError):
        return False
    return "softmax" in src


def to_sdpa(model: Any, *, example_inputs: Any = None, report: SdpaReport | None = None) -> Any:
    """Return a copy of `model` with attention switched to SDPA where possible (see module docs for the scope).

    A Hugging Face model is switched in place (a configuration change).

    Raises WattprintInputError when nothing could be switched (so a search never reports an unchanged model
    as an "sdpa" candidate) or when `example_inputs` is missing for a rewrite that must be checked.
    """
    import torch

    report = report if report is not None else SdpaReport()
    if _switch_hf(model):
        report.hf_switched = True
        return model
    if example_inputs is None:
        raise WattprintInputError(
            "example_inputs",
            "the sdpa rewrite is checked on example inputs; accepted: a tensor or a tuple of tensors the model accepts",
        )
    args = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        before = model(*args)
    rewritten = _rewrite_root_or_children(copy.deepcopy(model), report)
    with torch.no_grad():
        after = rewritten(*args)
    if not _outputs_close(before, after):
        log.warning("sdpa rewrite changed the outputs of %s; left unchanged", type(model).__name__)
        raise WattprintInputError(
            "recipe",
            "sdpa: the rewritten attention did not reproduce the model's outputs; "
            "accepted: softmax(Q @ K^T * scale, dim=-1) @ V without masks or dropout",
        )
    if not report.changed:
        found = "; could not trace: " + ", ".join(report.untraceable) if report.untraceable else ""
        raise WattprintInputError(
            "recipe",
            f"sdpa: no manual attention found in {type(model).__name__}{found}; "
            "accepted: Hugging Face models, or modules computing softmax(Q @ K^T * scale, "
            "dim=-1) @ V that torch.fx can trace",
        )
    model.train(was_training)
    rewritten.train(was_training)
    return rewritten


def _rewrite_root_or_children(model: Any, report: SdpaReport) -> Any:
    import torch.fx

    if _calls_softmax(model):
        try:
            traced = torch.fx.symbolic_trace(model)
        except Exception as exc:  # torch.fx raises many types on untraceable code: try the children
            report.untraceable.append(f"{type(model).__name__}: {type(exc).__name__}")
        else:
            n = rewrite_graph(traced)
            if n:
                report.rewritten[""] = n
                return traced
    _rewrite_children(model, report)
    return model


def _rewrite_children(model: Any, report: SdpaReport) -> None:
    import torch.fx

    for path, module in list(model.named_modules()):
        if not path or not _calls_softmax(module):
            continue
        if any(path.startswith(done + ".") for done in report.rewritten):
            continue
        try:
            traced = torch.fx.symbolic_trace(module)
        except Exception as exc:  # data-dependent control flow etc.: leave the module alone
            report.untraceable.append(f"{path}: {type(exc).__name__}")
            continue
        n = rewrite_graph(traced)
        if not n:
            continue
        parent_path, _, name = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, name, traced)
        report.rewritten[path] = n
