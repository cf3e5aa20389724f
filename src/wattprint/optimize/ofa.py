"""Once-for-all (Cai et al., ICLR 2020): train one elastic supernet, then extract sub-networks from it.

A model family is written as a torch model whose layers are elastic: a convolution's output channels and kernel
size, a linear layer's output units and a stage's number of blocks are chosen per sub-network. A digits CNN
family (8x8 images) of residual blocks, each with an inner width of 8 to 32 channels and a 3x3 or 5x5 kernel,
1 to 3 blocks in a stage::

    import torch
    from torch import nn
    from wattprint.optimize.ofa import (
        ElasticBatchNorm, ElasticConv2d, ElasticDepth, ElasticLinear, Supernet, extract, recalibrate_bn)
    from wattprint.optimize.ofa_train import train_supernet

    class Block(nn.Module):  # relu(x + bn(conv1x1(relu(bn(conv_k(x)))))), 32 channels in and out
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                ElasticConv2d(32, out_channels=(8, 16, 24, 32), kernel_sizes=(3, 5), bias=False),
                ElasticBatchNorm(32), nn.ReLU(),
                ElasticConv2d(32, 32, 1, bias=False), ElasticBatchNorm(32))   # one choice: fixed

        def forward(self, x):
            return torch.relu(x + self.body(x))

    body = nn.Sequential(
        ElasticConv2d(1, 32, (3, 5), bias=False), ElasticBatchNorm(32), nn.ReLU(),
        ElasticDepth([Block() for _ in range(3)]),          # runs its first 1, 2 or 3 blocks
        nn.MaxPool2d(2), nn.Flatten(),
        ElasticLinear(32 * 4 * 4, (32, 64)), nn.ReLU(), ElasticLinear(64, 10))
    net = Supernet(body, input_shape=(1, 8, 8))
    train_supernet(net, x_train, y_train)                   # progressive shrinking, in-place distillation
    small = extract(net, net.space.smallest())              # plain torch layers with their own weights
    recalibrate_bn(small, x_train)                          # batch-norm statistics of this sub-network

A plain chain of elastic convolutions works as well, but there every width changes the next layer's input;
on digits, after the same short training, such sub-networks trailed the largest by several points where the
residual family above (widths inside fixed-width blocks, as in OFA) stayed within about one.
`wattprint.optimize.ofa_search.search_subnets` picks sub-networks under a measured energy or latency budget.

How the weights are shared (what a reader needs to redo a sub-network by hand):

- width: a layer uses its first ``w`` output channels (rows) and as many input channels as it receives;
  a linear layer after ``Flatten`` receives ``channels x positions`` features, channel-major, so the first
  channels' features come first. Once, after the largest network is trained and before any sub-network is
  sampled, `sort_channels` orders each layer's channels by importance (L1 norm of the filters), so that
  slicing keeps the most important ones (OFA sorts again at each width stage; once is enough here).
- kernel size: a ``k x k`` kernel is the centre crop of the largest kernel. OFA passes the crop through a
  small learned transform per kernel size; this module uses the plain centre crop (no transform).
- depth: a stage runs its first ``d`` blocks.
- batch norm: the first channels' scale, shift and statistics. Statistics gathered while training mixed
  sub-networks fit none of them: `recalibrate_bn` recomputes them for one extracted sub-network.
- a layer with a single choice (the 1x1 convolution above, the 10 outputs) has no position in a config.

`wattprint.optimize.ofa_train.train_supernet` trains the supernet (progressive shrinking, in-place
distillation).
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from wattprint.errors import WattprintInputError

log = logging.getLogger("wattprint")

DIMENSIONS = ("kernel", "depth", "width")  # what a progressive-shrinking phase can make elastic


def _choices(field: str, value: int | Sequence[int], *, low: int = 1, odd: bool = False) -> tuple[int, ...]:
    values = (value,) if isinstance(value, int) else tuple(value)
    ok = values and all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values)
    if not ok or (odd and any(v % 2 == 0 for v in values)):
        kind = "odd integers" if odd else "integers"
        raise WattprintInputError(field, f"{value!r}; accepted: an integer or a list of {kind} >= {low}")
    return tuple(sorted(set(values)))


class ElasticConv2d(nn.Module):
    """A 2-D convolution whose output channels and (odd) kernel size are set per sub-network, padded to keep the
    spatial size. Input channels follow the input: the first ones of the weight are used."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int | Sequence[int],
        kernel_sizes: int | Sequence[int] = 3,
        *,
        stride: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.width_choices = _choices("out_channels", out_channels)
        self.kernel_choices = _choices("kernel_sizes", kernel_sizes, odd=True)
        self.stride = stride
        full = nn.Conv2d(in_channels, self.width_choices[-1], self.kernel_choices[-1], bias=bias)  # its init
        self.weight = full.weight
        self.bias = full.bias
        self.active_width = self.width_choices[-1]
        self.active_kernel = self.kernel_choices[-1]
        self.seen_in = in_channels  # input channels of the last forward (what extract() gives the plain layer)

    def kernel_weight(self, k: int) -> torch.Tensor:
        """The weight of kernel size `k`: the centre crop of the largest kernel."""
        start = (self.kernel_choices[-1] - k) // 2
        return self.weight[:, :, start : start + k, start : start + k]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_in = x.shape[1]
        weight = self.kernel_weight(self.active_kernel)[: self.active_width, : self.seen_in]
        bias = self.bias[: self.active_width] if self.bias is not None else None
        return F.conv2d(x, weight, bias, self.stride, self.active_kernel // 2)

    def export(self) -> nn.Conv2d:
        k, w = self.active_kernel, self.active_width
        conv = nn.Conv2d(self.seen_in, w, k, stride=self.stride, padding=k // 2, bias=self.bias is not None)
        with torch.no_grad():
            conv.weight.copy_(self.kernel_weight(k)[:w, : self.seen_in])
            if self.bias is not None and conv.bias is not None:
                conv.bias.copy_(self.bias[:w])
        return conv.to(self.weight.device)


class ElasticLinear(nn.Module):
    """A linear layer whose output units are set per sub-network; input features follow the input."""

    def __init__(self, in_features: int, out_features: int | Sequence[int], *, bias: bool = True) -> None:
        super().__init__()
        self.width_choices = _choices("out_features", out_features)
        full = nn.Linear(in_features, self.width_choices[-1], bias=bias)
        self.weight = full.weight
        self.bias = full.bias
        self.active_width = self.width_choices[-1]
        self.seen_in = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_in = x.shape[-1]
        bias = self.bias[: self.active_width] if self.bias is not None else None
        return F.linear(x, self.weight[: self.active_width, : self.seen_in], bias)

    def export(self) -> nn.Linear:
        linear = nn.Linear(self.seen_in, self.active_width, bias=self.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(self.weight[: self.active_width, : self.seen_in])
            if self.bias is not None and linear.bias is not None:
                linear.bias.copy_(self.bias[: self.active_width])
        return linear.to(self.weight.device)


class ElasticBatchNorm(_BatchNorm):
    """Batch norm over the first channels of its input (any of BatchNorm1d/2d/3d's shapes)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1) -> None:
        super().__init__(num_features, eps, momentum)
        self.seen_channels, self.seen_dim = num_features, 4

    def stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(running mean, running variance, batches counted): always tracked here."""
        mean, var, count = self.running_mean, self.running_var, self.num_batches_tracked
        assert mean is not None and var is not None and count is not None
        return mean, var, count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.seen_channels = x.shape[1]
        self.seen_dim = x.dim()
        mean, var, count = self.stats()
        factor = 0.0
        if self.training:
            count.add_(1)
            factor = 1.0 / float(count) if self.momentum is None else self.momentum
        # slices of the running statistics are views: batch_norm updates the first channels in place
        return F.batch_norm(x, mean[:c], var[:c], self.weight[:c], self.bias[:c], self.training, factor, self.eps)

    def export(self) -> _BatchNorm:
        channels = self.seen_channels
        kind = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[self.seen_dim]
        bn = kind(channels, eps=self.eps, momentum=self.momentum)
        mean, var, count = self.stats()
        with torch.no_grad():
            for target, source in zip(bn.parameters(), (self.weight, self.bias), strict=True):
                target.copy_(source[:channels])
            for buffer, value in zip(bn.buffers(), (mean[:channels], var[:channels], count), strict=True):
                buffer.copy_(value)
        return bn.to(self.weight.device)


class ElasticDepth(nn.Module):
    """A stage of blocks of which a sub-network runs the first `depth` (choices: 1..len(blocks) by default)."""

    def __init__(self, blocks: Sequence[nn.Module], depths: Sequence[int] | None = None) -> None:
        super().__init__()
        if not blocks or not all(isinstance(b, nn.Module) for b in blocks):
            raise WattprintInputError("blocks", f"{blocks!r}; accepted: a non-empty list of torch modules")
        self.blocks = nn.ModuleList(blocks)
        self.depth_choices = _choices("depths", depths if depths is not None else range(1, len(blocks) + 1), low=0)
        if self.depth_choices[-1] > len(blocks):
            raise WattprintInputError("depths", f"{depths!r}; accepted: depths from 0 to {len(blocks)} (the blocks)")
        self.active_depth = self.depth_choices[-1]

    def forward(self, x: Any) -> Any:
        for block in self.blocks[: self.active_depth]:
            x = block(x)
        return x


@dataclass(frozen=True)
class SubnetConfig:
    """One sub-network: a depth per stage, a kernel size per convolution with several, and a width per layer
    with several, each in the order of `Supernet.body.modules()` (the order `Supernet.space` lists choices in)."""

    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    widths: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"depths": list(self.depths), "kernels": list(self.kernels), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, data: dict[str, Sequence[int]]) -> SubnetConfig:
        try:
            return cls(tuple(data["depths"]), tuple(data["kernels"]), tuple(data["widths"]))
        except (KeyError, TypeError):
            raise WattprintInputError(
                "config", f"{data!r}; accepted: a dict with lists 'depths', 'kernels' and 'widths'"
            ) from None

    @property
    def label(self) -> str:
        """Short and unique, e.g. ``d2 k3,5,3 w16,24,8,64,10``."""
        return " ".join(
            f"{tag}{','.join(map(str, values))}"
            for tag, values in (("d", self.depths), ("k", self.kernels), ("w", self.widths))
            if values
        )


@dataclass(frozen=True)
class ElasticSpace:
    """The choices of a supernet, position by position as in `SubnetConfig`; `*_blocks` say in which
    (stage, block) each elastic layer sits (None: outside every stage, always run)."""

    depths: tuple[tuple[int, ...], ...]
    kernels: tuple[tuple[int, ...], ...]
    widths: tuple[tuple[int, ...], ...]
    kernel_blocks: tuple[tuple[int, int] | None, ...] = field(repr=False)
    width_blocks: tuple[tuple[int, int] | None, ...] = field(repr=False)

    def largest(self) -> SubnetConfig:
        return self.smallest(elastic=())

    def smallest(self, elastic: Iterable[str] = DIMENSIONS) -> SubnetConfig:
        """The smallest choice in the `elastic` dimensions, the largest in the others."""
        dims = set(elastic)
        return SubnetConfig(
            tuple(c[0] if "depth" in dims else c[-1] for c in self.depths),
            tuple(c[0] if "kernel" in dims else c[-1] for c in self.kernels),
            tuple(c[0] if "width" in dims else c[-1] for c in self.widths),
        )

    def sample(self, rng: random.Random, elastic: Iterable[str] = DIMENSIONS) -> SubnetConfig:
        """A uniformly random choice in the `elastic` dimensions, the largest in the others."""
        dims = set(elastic)
        return SubnetConfig(
            tuple(rng.choice(c) if "depth" in dims else c[-1] for c in self.depths),
            tuple(rng.choice(c) if "kernel" in dims else c[-1] for c in self.kernels),
            tuple(rng.choice(c) if "width" in dims else c[-1] for c in self.widths),
        )

    def check(self, config: SubnetConfig) -> None:
        if not isinstance(config, SubnetConfig):
            raise WattprintInputError("config", f"{config!r}; accepted: a SubnetConfig (see Supernet.space)")
        for name in ("depths", "kernels", "widths"):
            values, choices = getattr(config, name), getattr(self, name)
            if len(values) != len(choices) or any(v not in c for v, c in zip(values, choices, strict=False)):
                raise WattprintInputError(
                    "config", f"{name}={list(values)}; accepted: one of {[list(c) for c in choices]} per position"
                )

    def canonical(self, config: SubnetConfig) -> SubnetConfig:
        """The same architecture with the layers of blocks it skips set to their largest choice, so that one
        architecture has one config (equal configs, equal models)."""
        self.check(config)

        def keep(values: tuple[int, ...], choices: Any, blocks: Any) -> tuple[int, ...]:
            return tuple(
                v if b is None or b[1] < config.depths[b[0]] else c[-1]
                for v, c, b in zip(values, choices, blocks, strict=True)
            )

        return SubnetConfig(
            config.depths,
            keep(config.kernels, self.kernels, self.kernel_blocks),
            keep(config.widths, self.widths, self.width_blocks),
        )

    def to_dict(self) -> dict[str, list[list[int]]]:
        return {name: [list(c) for c in getattr(self, name)] for name in ("depths", "kernels", "widths")}


class Supernet(nn.Module):
    """An elastic model family: `body` built with elastic layers (see the module docs), and the shape of one
    input without the batch dimension (extraction runs one zero input through the body to see the widths)."""

    def __init__(self, body: nn.Module, input_shape: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(body, nn.Module):
            raise WattprintInputError("body", f"{type(body).__name__}; accepted: a torch module of elastic layers")
        if not input_shape or not all(isinstance(s, int) and s > 0 for s in input_shape):
            raise WattprintInputError("input_shape", f"{input_shape!r}; accepted: positive sizes, without the batch")
        self.body = body
        self.input_shape = tuple(input_shape)
        self.stages = [m for m in body.modules() if isinstance(m, ElasticDepth)]
        # layers with one choice (a fixed width or kernel size) always run as built: no position in a config
        self.kernel_layers = [m for m in body.modules() if isinstance(m, ElasticConv2d) and len(m.kernel_choices) > 1]
        self.width_layers = [
            m for m in body.modules() if isinstance(m, (ElasticConv2d, ElasticLinear)) and len(m.width_choices) > 1
        ]
        where: dict[int, tuple[int, int]] = {}
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage.blocks):
                for m in block.modules():
                    if isinstance(m, ElasticDepth):
                        raise WattprintInputError("body", "an ElasticDepth inside a block; accepted: stages not nested")
                    where[id(m)] = (s, b)
        if not (self.stages or self.width_layers):
            raise WattprintInputError("body", "no elastic layer; accepted: a module built with ElasticConv2d etc.")
        self.space = ElasticSpace(
            tuple(m.depth_choices for m in self.stages),
            tuple(m.kernel_choices for m in self.kernel_layers),
            tuple(m.width_choices for m in self.width_layers),
            tuple(where.get(id(m)) for m in self.kernel_layers),
            tuple(where.get(id(m)) for m in self.width_layers),
        )
        self.active = self.space.largest()

    def set_active(self, config: SubnetConfig) -> None:
        """Make `config` the sub-network that forward() runs."""
        self.space.check(config)
        for stage, d in zip(self.stages, config.depths, strict=True):
            stage.active_depth = d
        for conv, k in zip(self.kernel_layers, config.kernels, strict=True):
            conv.active_kernel = k
        for layer, w in zip(self.width_layers, config.widths, strict=True):
            layer.active_width = w
        self.active = config

    def forward(self, x: Any) -> Any:
        return self.body(x)

    def _trace(self, x: torch.Tensor | None = None) -> Any:
        """One forward (eval mode, no grad) of `x`, zeros by default: every layer that runs records its input."""
        was_training = self.training
        param = next(self.parameters())
        if x is None:
            x = torch.zeros(1, *self.input_shape)
        self.eval()
        with torch.no_grad():
            out = self(x.to(device=param.device, dtype=param.dtype))
        self.train(was_training)
        return out


def check_supernet(supernet: Any) -> Supernet:
    if not isinstance(supernet, Supernet):
        raise WattprintInputError("supernet", f"{type(supernet).__name__}; accepted: a wattprint Supernet")
    return supernet


def extract(supernet: Supernet, config: SubnetConfig) -> nn.Module:
    """A standalone copy of the sub-network `config`: the body with every elastic layer replaced by the plain
    torch layer it runs as (its weights copied), and every stage by an ``nn.Sequential`` of the blocks it runs.
    Returned in eval mode; the supernet is left as it was."""
    check_supernet(supernet).space.check(config)
    before = supernet.active
    supernet.set_active(config)
    try:
        supernet._trace()
        model = _plain(copy.deepcopy(supernet.body))
    finally:
        supernet.set_active(before)
    return model.eval()


def _plain(module: nn.Module) -> nn.Module:
    if isinstance(module, (ElasticConv2d, ElasticLinear, ElasticBatchNorm)):
        return module.export()
    if isinstance(module, ElasticDepth):
        return nn.Sequential(*(_plain(b) for b in module.blocks[: module.active_depth]))
    for name, child in module.named_children():
        setattr(module, name, _plain(child))
    return module


def _batches(data: Any, batch_size: int) -> Iterable[Any]:
    if isinstance(data, torch.Tensor):
        return (data[i : i + batch_size] for i in range(0, len(data), batch_size))
    return (b[0] if isinstance(b, (tuple, list)) else b for b in data)


def recalibrate_bn(model: nn.Module, data: Any, *, batch_size: int = 256) -> nn.Module:
    """Recompute every batch norm's statistics over `data` (a tensor of inputs, or an iterable of batches or of
    (inputs, ...) tuples such as a DataLoader), as an equal-weight average over batches; the weights are not
    touched. Returns `model` in the mode it was in."""
    if not isinstance(data, torch.Tensor) and not isinstance(data, Iterable):
        raise WattprintInputError(
            "data", f"{type(data).__name__}; accepted: a tensor of inputs or an iterable of batches"
        )
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms:
        return model
    was_training, momenta = model.training, [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: each batch counts the same
    model.eval()
    for m in norms:
        m.train()
    seen = 0
    with torch.no_grad():
        for batch in _batches(data, batch_size):
            model(batch)
            seen += 1
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    if not seen:
        raise WattprintInputError("data", "no batch; accepted: at least one batch of inputs")
    return model


def sort_channels(supernet: Supernet) -> int:
    """Reorder every elastic-width layer's output channels by importance (L1 norm of their filters, largest
    first), with the batch norms after it and the input columns of the next elastic layer, so that the largest
    network computes what it did and width slicing keeps the most important channels. Returns how many layers
    were reordered.

    Assumes that each elastic layer's output reaches the next elastic layer of the forward pass (ReLU, pooling,
    Flatten between are fine). Where a reordered output also goes elsewhere (a residual sum, a branch), the
    largest network's outputs change: they are compared on a random batch before and after, and then the
    weights are restored, a warning logged, and 0 returned."""
    check_supernet(supernet)
    calls: list[Any] = []
    watched = (ElasticConv2d, ElasticLinear, ElasticBatchNorm)
    hooks = [
        m.register_forward_pre_hook(lambda module, _args: calls.append(module))
        for m in supernet.body.modules()
        if isinstance(m, watched)
    ]
    before, saved = supernet.active, copy.deepcopy(supernet.state_dict())
    probe = torch.randn((8, *supernet.input_shape), generator=torch.Generator().manual_seed(0))
    supernet.set_active(supernet.space.largest())
    try:
        try:
            expected = supernet._trace(probe)
        finally:
            for hook in hooks:
                hook.remove()
        reordered = _reorder(calls)
        got = supernet._trace(probe)
        if reordered and not torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max())):
            supernet.load_state_dict(saved)
            log.warning("sort_channels: the layers do not form a chain (outputs changed); the order is kept")
            reordered = 0
    finally:
        supernet.set_active(before)
    return reordered


def _reorder(calls: list[Any]) -> int:
    layers = [i for i, m in enumerate(calls) if isinstance(m, (ElasticConv2d, ElasticLinear))]
    reordered = 0
    with torch.no_grad():
        for i, j in zip(layers, layers[1:], strict=False):
            producer, consumer = calls[i], calls[j]
            channels = producer.weight.shape[0]
            full_in = consumer.weight.shape[1]
            if len(producer.width_choices) == 1 or consumer.seen_in != full_in or full_in % channels:
                continue  # a fixed width needs no order; a mismatch means no plain chain here
            order = producer.weight.abs().flatten(1).sum(1).argsort(descending=True)
            producer.weight.copy_(producer.weight[order])
            if producer.bias is not None:
                producer.bias.copy_(producer.bias[order])
            for norm in calls[i + 1 : j]:
                if isinstance(norm, ElasticBatchNorm) and norm.num_features == channels:
                    for t in (norm.weight, norm.bias, *norm.stats()[:2]):
                        t.copy_(t[order])
            w = consumer.weight
            grouped = w.reshape(w.shape[0], channels, full_in // channels, *w.shape[2:])
            w.copy_(grouped[:, order].reshape(w.shape))
            reordered += 1
    return reordered
