"""Knowledge distillation (Hinton et al., 2015) into a smaller student, always against a no-teacher control.

The distillation loss is ``alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, y)``;
the ``T^2`` keeps the soft-target gradients on the scale of the hard-label ones. `compare_distillation` trains
two copies of the *same* initial student, one with the teacher and one with labels only (same data order, same
optimizer, same epochs), so the teacher's contribution is measured, not assumed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wattprint.errors import WattprintInputError


@dataclass
class DistillConfig:
    """Training settings shared by the distilled and the control student."""

    temperature: float = 4.0
    alpha: float = 0.7
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0

    def check(self) -> None:
        if not self.temperature > 0:
            raise WattprintInputError("temperature", f"{self.temperature!r}; accepted: a number > 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise WattprintInputError("alpha", f"{self.alpha!r}; accepted: a number in [0, 1]")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise WattprintInputError("epochs", "accepted: epochs >= 1, batch_size >= 1, lr > 0")


def distillation_loss(student_logits: Any, teacher_logits: Any, labels: Any, temperature: float, alpha: float) -> Any:
    """Hinton's loss: soft targets at `temperature` (weight `alpha`) plus cross-entropy on labels."""
    import torch.nn.functional as F  # noqa: N812

    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
        log_target=True,
    )
    hard = F.cross_entropy(student_logits, labels)
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


def train_student(
    student: Any,
    x: Any,
    y: Any,
    *,
    teacher: Any = None,
    config: DistillConfig | None = None,
) -> Any:
    """Train `student` in place on tensors (x, y); with a `teacher`, by distillation, else by cross-entropy."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    config = config or DistillConfig()
    config.check()
    if len(x) != len(y) or len(x) == 0:
        raise WattprintInputError("x", f"{len(x)} inputs for {len(y)} labels; accepted: equal, nonzero lengths")
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.lr)
    teacher_logits = None
    if teacher is not None:
        teacher.eval()
        with torch.no_grad():
            teacher_logits = torch.cat([teacher(x[i : i + 512]) for i in range(0, len(x), 512)])
    student.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(order), config.batch_size):
            idx = order[i : i + config.batch_size]
            optimizer.zero_grad()
            logits = student(x[idx])
            if teacher_logits is None:
                loss = F.cross_entropy(logits, y[idx])
            else:
                loss = distillation_loss(logits, teacher_logits[idx], y[idx], config.temperature, config.alpha)
            loss.backward()
            optimizer.step()
    student.eval()
    return student


@dataclass
class DistillResult:
    """The distilled student, its no-teacher control, and their metrics next to the teacher's."""

    student: Any
    control: Any
    student_metric: float
    control_metric: float
    teacher_metric: float

    @property
    def gain(self) -> float:
        """Metric of the distilled student minus that of the same student trained without a teacher."""
        return self.student_metric - self.control_metric

    def to_dict(self) -> dict[str, float]:
        return {
            "student_metric": self.student_metric,
            "control_metric": self.control_metric,
            "teacher_metric": self.teacher_metric,
            "gain": self.gain,
        }


def compare_distillation(
    teacher: Any,
    student: Any,
    x: Any,
    y: Any,
    eval_fn: Callable[[Any], float],
    *,
    config: DistillConfig | None = None,
) -> DistillResult:
    """Distil `teacher` into a copy of `student`, train another copy without teacher, evaluate all three."""
    control = copy.deepcopy(student)  # the same initial weights for both
    distilled = copy.deepcopy(student)
    train_student(distilled, x, y, teacher=teacher, config=config)
    train_student(control, x, y, teacher=None, config=config)
    return DistillResult(
        distilled, control, float(eval_fn(distilled)), float(eval_fn(control)), float(eval_fn(teacher))
    )
