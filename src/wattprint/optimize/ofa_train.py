"""Once-for-all, part 2: train an elastic supernet by progressive shrinking with in-place distillation.

Phases (see `ShrinkConfig`): the largest network alone; then kernel sizes elastic; then depth too; then width
too. In each step of the elastic phases the largest network is trained on the labels, and sampled
sub-networks (the phase's smallest, then random ones: the "sandwich" of BigNAS/slimmable networks) learn from
its logits of that same step (in-place distillation). The elastic layers, the supernet and extraction are in
`wattprint.optimize.ofa`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812

from wattprint.errors import WattprintInputError
from wattprint.optimize.ofa import (
    DIMENSIONS,
    Supernet,
    check_supernet,
    sort_channels,
)

log = logging.getLogger("wattprint")


@dataclass
class ShrinkConfig:
    """Progressive shrinking: epochs per phase (0 skips it), optimizer and in-place distillation settings.

    Phases, in order: the largest network alone (`largest_epochs`, Adam at `lr`); then kernel sizes elastic,
    then depths too, then widths too (Adam at `shrink_lr`: OFA lowers it for its long ImageNet phases; on digits,
    with a few epochs per phase, random sub-networks of a plain CNN averaged 95.8 % after 2e-3 and 94.2 % after
    1e-3, one run each, hence the default 2e-3). Each step of those phases trains the largest network on the
    labels and `subnets_per_step` sub-networks (the phase's smallest, then uniformly random ones) on
    ``alpha * T^2 * KL(largest || sub) + (1 - alpha) * CE`` with the largest network's logits of the same step
    (detached) as soft targets. With `cosine`, each phase's learning rate falls from its start to 0 along a half
    cosine (OFA also restarts the schedule per phase)."""

    largest_epochs: int = 6  # defaults: benchmarks/bench_once_for_all.py (24 epochs of the largest network in all)
    kernel_epochs: int = 2
    depth_epochs: int = 2
    width_epochs: int = 14
    batch_size: int = 64
    lr: float = 2e-3
    shrink_lr: float = 2e-3
    subnets_per_step: int = 2
    temperature: float = 1.0
    alpha: float = 0.5
    seed: int = 0
    sort_channels: bool = True
    cosine: bool = True

    def phases(self) -> list[tuple[str, int, tuple[str, ...]]]:
        """(name, epochs, elastic dimensions) of each phase, in training order."""
        return [
            ("largest", self.largest_epochs, ()),
            ("kernel", self.kernel_epochs, ("kernel",)),
            ("depth", self.depth_epochs, ("kernel", "depth")),
            ("width", self.width_epochs, DIMENSIONS),
        ]

    def check(self) -> None:
        for name in ("largest_epochs", "kernel_epochs", "depth_epochs", "width_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise WattprintInputError(name, f"{value!r}; accepted: an integer >= 0")
        for name in ("batch_size", "subnets_per_step"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise WattprintInputError(name, f"{value!r}; accepted: an integer >= 1")
        for name in ("lr", "shrink_lr", "temperature"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise WattprintInputError(name, f"{value!r}; accepted: a number > 0")
        if not isinstance(self.alpha, (int, float)) or not 0.0 <= self.alpha <= 1.0:
            raise WattprintInputError("alpha", f"{self.alpha!r}; accepted: a number in [0, 1]")
        if sum(epochs for _, epochs, _ in self.phases()) == 0:
            raise WattprintInputError("largest_epochs", "every phase has 0 epochs; accepted: at least one epoch")


@dataclass
class ShrinkReport:
    """What `train_supernet` did, per phase: epochs, optimizer steps, forward/backward passes, seconds, and the
    mean loss of the largest network over the phase's last epoch."""

    phases: list[dict[str, Any]]
    channels_sorted: int

    @property
    def passes(self) -> int:
        """Forward/backward passes of any network (the cost to compare with training from scratch)."""
        return sum(p["passes"] for p in self.phases)

    def to_dict(self) -> dict[str, Any]:
        return {"phases": self.phases, "channels_sorted": self.channels_sorted, "passes": self.passes}


def train_supernet(
    supernet: Supernet, x: torch.Tensor, y: torch.Tensor, *, config: ShrinkConfig | None = None
) -> ShrinkReport:
    """Train `supernet` in place on tensors (x, y) by progressive shrinking with in-place distillation (see
    `ShrinkConfig`); it ends with the largest network active, in eval mode. Seeded by `config.seed`."""
    from wattprint.optimize.distill import distillation_loss

    check_supernet(supernet)
    config = config or ShrinkConfig()
    config.check()
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or len(x) != len(y) or len(x) == 0:
        raise WattprintInputError("x", "accepted: tensors x and y of equal, nonzero lengths")
    generator = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    space, largest = supernet.space, supernet.space.largest()
    sorted_layers, sorted_once, report = 0, False, []
    for name, epochs, elastic in config.phases():
        if epochs == 0:
            continue
        if elastic and config.sort_channels and not sorted_once:  # once, before the first sub-network is sampled
            sorted_layers, sorted_once = sort_channels(supernet), True
        optimizer = torch.optim.Adam(supernet.parameters(), lr=config.shrink_lr if elastic else config.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _cosine(epochs * -(-len(x) // config.batch_size)) if config.cosine else _constant
        )
        supernet.train()
        steps = passes = 0
        started = time.perf_counter()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            losses = []
            for i in range(0, len(order), config.batch_size):
                idx = order[i : i + config.batch_size]
                xb, yb = x[idx], y[idx]
                optimizer.zero_grad()
                supernet.set_active(largest)
                logits = supernet(xb)
                loss = F.cross_entropy(logits, yb)
                loss.backward()
                losses.append(loss.item())
                passes += 1
                if elastic:
                    soft = logits.detach()
                    for n in range(config.subnets_per_step):
                        sub = space.smallest(elastic) if n == 0 else space.sample(rng, elastic)
                        supernet.set_active(sub)
                        distillation_loss(supernet(xb), soft, yb, config.temperature, config.alpha).backward()
                        passes += 1
                optimizer.step()
                schedule.step()
                steps += 1
        report.append(
            {
                "phase": name,
                "elastic": list(elastic),
                "epochs": epochs,
                "steps": steps,
                "passes": passes,
                "seconds": time.perf_counter() - started,
                "last_epoch_loss": sum(losses) / len(losses),
            }
        )
    supernet.set_active(largest)
    supernet.eval()
    return ShrinkReport(report, sorted_layers)


def _cosine(total_steps: int) -> Callable[[int], float]:
    """Learning-rate factor at a step: from 1 down to 0 along a half cosine over `total_steps`."""
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))


def _constant(step: int) -> float:
    return 1.0
