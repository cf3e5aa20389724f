"""Pruning: global magnitude (unstructured), structured channels, lottery tickets and RigL.

Honest about what each one buys:
  - unstructured magnitude pruning zeroes weights; dense kernels still multiply the zeros, so it gives
    fewer *nonzero* MACs (count_flops(..., nonzero=True)) and a smaller compressed file, not a dense
    speed-up;
  - structured channel pruning (Torch-Pruning) removes whole channels and neurons, so the dense model
    really has fewer MACs and parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from wattprint.errors import WattprintInputError

TrainFn = Callable[[Any], Any]


def _prunable(model: Any) -> list[tuple[Any, str]]:
    """(module, "weight") for every Linear and Conv layer, the layers magnitude pruning acts on."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    found = [(m, "weight") for m in model.modules() if isinstance(m, kinds) and isinstance(m.weight, torch.Tensor)]
    if not found:
        raise WattprintInputError(
            "model",
            f"{type(model).__name__} has no Linear or Conv layers to prune; "
            "accepted: a torch.nn.Module with at least one Linear (or Conv) layer",
        )
    if any(not m.weight.is_floating_point() for m, _ in found):
        raise WattprintInputError(
            "model",
            "weights are not floating point (already quantized?); accepted: prune "
            "before quantizing, e.g. 'prune:0.5+int8'",
        )
    return found


def _check_fraction(fraction: float) -> None:
    if not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise WattprintInputError(
            "fraction", f"{fraction!r} is outside (0, 1); accepted: a number strictly between 0 and 1"
        )


def magnitude_prune(model: Any, fraction: float, *, train_fn: TrainFn | None = None) -> Any:
    """Zero the `fraction` of Linear/Conv weights with the smallest magnitude, over all layers at once.

    While `train_fn(model)` fine-tunes, torch's pruning masks (forward pre-hooks) keep the pruned weights
    at zero; afterwards the masks are folded into plain weights. Changes `model` in place and returns it.
    """
    from torch.nn.utils import prune

    _check_fraction(fraction)
    params = _prunable(model)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(fraction))
    if train_fn is not None:
        train_fn(model)
    for module, name in params:
        prune.remove(module, name)
    return model


def sparsity(model: Any) -> float:
    """Fraction of zero weights over the Linear and Conv layers of `model`."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.modules.conv._ConvNd)
    total = zeros = 0
    for m in model.modules():
        if isinstance(m, kinds) and isinstance(m.weight, torch.Tensor) and m.weight.is_floating_point():
            total += m.weight.numel()
            zeros += int((m.weight == 0).sum())
    return zeros / total if total else 0.0


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def _output_layers(model: Any, example_inputs: Any) -> list[Any]:
    """Layers whose output width is the model's output width (the classifier head): never pruned."""
    import torch

    with torch.no_grad():
        out = model(*_as_tuple(example_inputs))
    if not isinstance(out, torch.Tensor):
        raise WattprintInputError(
            "model",
            "structured pruning needs a model returning one tensor; accepted: model(*example_inputs) -> torch.Tensor",
        )
    width = out.shape[-1] if out.dim() == 2 else out.shape[1]
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == width]
    return heads[-1:]  # the last such Linear, in definition order


def prune_channels(model: Any, fraction: float, example_inputs: Any, *, train_fn: TrainFn | None = None) -> Any:
    """Remove `fraction` of the channels/neurons of each prunable layer (L2 group magnitude, Torch-Pruning).

    Dependent layers are pruned consistently (a removed conv channel also removes the matching input of the
    next layer, BatchNorm entries, flatten slices). The output layer keeps its width. Then `train_fn(model)`
    fine-tunes, if given. Changes `model` in place and returns it.
    """
    from wattprint._extras import require

    _check_fraction(fraction)
    _prunable(model)
    if example_inputs is None:
        raise WattprintInputError(
            "example_inputs",
            "structured pruning traces the model; accepted: a tensor or a tuple of tensors the model accepts",
        )
    tp = require("torch_pruning", extra="optimize", feature="structured pruning (prune-channels)")
    was_training = model.training
    model.eval()
    pruner = tp.pruner.MagnitudePruner(
        model,
        example_inputs=_as_tuple(example_inputs) if isinstance(example_inputs, tuple) else example_inputs,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        pruning_ratio=float(fraction),
        ignored_layers=_output_layers(model, example_inputs),
    )
    pruner.step()
    model.train(was_training)
    if train_fn is not None:
        train_fn(model)
    return model


def lottery_ticket(
    model: Any,
    fraction: float,
    train_fn: TrainFn,
    *,
    rounds: int = 3,
    rewind_state: dict[str, Any] | None = None,
) -> Any:
    """Iterative magnitude pruning with rewinding (lottery ticket hypothesis).

    Each round trains (`train_fn(model)`), prunes a further share of the surviving weights (globally, by
    magnitude) so that after `rounds` rounds `fraction` of the weights are gone, and rewinds the surviving
    weights to `rewind_state` (default: the weights on entry, i.e. the initialisation). A final training
    run trains the rewound sparse network. Changes `model` in place and returns it.
    """
    import torch
    from torch.nn.utils import prune

    _check_fraction(fraction)
    if not isinstance(rounds, int) or rounds < 1:
        raise WattprintInputError("rounds", f"{rounds!r}; accepted: an integer >= 1")
    params = _prunable(model)
    start = {id(m): m.weight.detach().clone() for m, _ in params}
    if rewind_state is not None:
        named = dict(model.named_modules())
        start = {
            id(named[k.rsplit(".", 1)[0]]): v.detach().clone()
            for k, v in rewind_state.items()
            if k.endswith(".weight") and k.rsplit(".", 1)[0] in named
        }
    per_round = 1.0 - (1.0 - fraction) ** (1.0 / rounds)
    for _ in range(rounds):
        train_fn(model)
        # `amount` of global_unstructured applies to the weights still unpruned
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=per_round)
        with torch.no_grad():
            for module, _name in params:
                if id(module) in start:
                    module.weight_orig.copy_(start[id(module)])
                # the masked `weight` attribute is refreshed only by the next forward pass: refresh it now
                module.weight = module.weight_orig * module.weight_mask
    train_fn(model)
    for module, name in params:
        prune.remove(module, name)
    return model


def erk_densities(shapes: list[tuple[int, ...]], density: float) -> list[float]:
    """Erdős-Rényi-Kernel per-layer densities: proportional to sum(shape) / prod(shape), scaled so that the
    overall density is `density`; a layer that would exceed 1 is kept dense and the rest rescaled."""
    sizes = [math.prod(s) for s in shapes]
    scores = [sum(s) / n for s, n in zip(shapes, sizes, strict=True)]
    dense: set[int] = set()
    while True:
        budget = density * sum(sizes) - sum(sizes[i] for i in dense)
        weighted = sum(scores[i] * sizes[i] for i in range(len(sizes)) if i not in dense)
        scale = budget / weighted if weighted else 0.0
        over = [i for i in range(len(sizes)) if i not in dense and scale * scores[i] > 1.0]
        if not over:
            return [1.0 if i in dense else scale * scores[i] for i in range(len(sizes))]
        dense.update(over)


class RigL:
    """Sparse training with RigL (Evci et al., 2020): a fixed weight density, connections regrown by gradient.

    Usage, in the user's training loop::

        rigl = RigL(model, density=0.1, total_steps=len(loader) * epochs)
        for x, y in loader:
            loss = ...; loss.backward()
            rigl.step()          # before optimizer.step(): may regrow/drop using the dense gradient
            optimizer.step()
            rigl.apply_masks()   # pruned weights stay zero

    Every `update_every` steps (until `stop_fraction` of training) a cosine-decaying share `alpha` of the
    active weights of each layer with the smallest magnitude is dropped and the same number of inactive
    weights with the largest gradient magnitude is grown (initialised at zero). Per-layer densities follow
    Erdős-Rényi-Kernel ("erk", the default: small layers such as the first convolution stay denser, so that the
    overall density is `density`) or are the same for every layer ("uniform"); they stay fixed during training.
    """

    def __init__(
        self,
        model: Any,
        density: float,
        total_steps: int,
        *,
        update_every: int = 100,
        alpha: float = 0.3,
        stop_fraction: float = 0.75,
        distribution: str = "erk",
    ) -> None:
        import torch

        _check_fraction(density)
        if distribution not in ("erk", "uniform"):
            raise WattprintInputError("distribution", f"{distribution!r}; accepted: erk, uniform")
        if total_steps < 1 or update_every < 1:
            raise WattprintInputError("total_steps", "accepted: total_steps >= 1 and update_every >= 1")
        self.layers = [m for m, _ in _prunable(model)]
        self.density = float(density)
        self.total_steps = total_steps
        self.update_every = update_every
        self.alpha = alpha
        self.stop_step = int(stop_fraction * total_steps)
        self.steps = 0
        self.updates = 0
        self.masks: list[Any] = []
        shapes = [tuple(layer.weight.shape) for layer in self.layers]
        densities = erk_densities(shapes, self.density) if distribution == "erk" else [self.density] * len(shapes)
        with torch.no_grad():
            for layer, layer_density in zip(self.layers, densities, strict=True):
                w = layer.weight
                keep = max(1, round(layer_density * w.numel()))
                mask = torch.zeros(w.numel(), dtype=torch.bool, device=w.device)
                mask[torch.randperm(w.numel(), device=w.device)[:keep]] = True  # random sparse start (ER-like)
                self.masks.append(mask.view_as(w))
        self.apply_masks()

    def apply_masks(self) -> None:
        """Zero the inactive weights (call after each optimizer step)."""
        import torch

        with torch.no_grad():
            for layer, mask in zip(self.layers, self.masks, strict=True):
                layer.weight.mul_(mask)

    def _drop_share(self) -> float:
        return self.alpha / 2 * (1 + math.cos(math.pi * self.steps / max(1, self.stop_step)))

    def step(self) -> None:
        """Count a training step; on update steps, drop and regrow connections using the current gradients."""
        self.steps += 1
        if self.steps % self.update_every or self.steps >= self.stop_step:
            return
        import torch

        share = self._drop_share()
        with torch.no_grad():
            for layer, mask in zip(self.layers, self.masks, strict=True):
                grad = layer.weight.grad
                if grad is None:
                    continue
                active = int(mask.sum())
                n = int(share * active)
                if n == 0:
                    continue
                flat = mask.view(-1)
                # drop: the n active weights of smallest magnitude
                score = torch.where(
                    flat, layer.weight.detach().abs().view(-1), torch.full_like(flat, math.inf, dtype=torch.float)
                )
                drop = torch.topk(score, n, largest=False).indices
                # grow: the n inactive (before dropping) weights of largest gradient magnitude
                gscore = torch.where(flat, torch.full_like(flat, -1.0, dtype=torch.float), grad.abs().view(-1))
                grow = torch.topk(gscore, n, largest=True).indices
                flat[drop] = False
                flat[grow] = True
                layer.weight.view(-1)[grow] = 0.0  # grown connections start at zero
        self.updates += 1
        self.apply_masks()

    def layer_densities(self) -> Iterator[float]:
        for mask in self.masks:
            yield float(mask.float().mean())
