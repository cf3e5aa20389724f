"""Knowledge distillation on digits: a small student with a teacher, against the same student without one."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from tests.optimize import accuracy, digits, mlp, trained  # noqa: E402
from wattprint.errors import WattprintInputError  # noqa: E402
from wattprint.optimize.distill import (  # noqa: E402
    DistillConfig,
    compare_distillation,
    distillation_loss,
    train_student,
)


def test_loss_reduces_to_cross_entropy_and_to_zero_at_the_teacher() -> None:
    logits, teacher = torch.randn(5, 10), torch.randn(5, 10)
    labels = torch.randint(0, 10, (5,))
    ce = F.cross_entropy(logits, labels)
    assert torch.allclose(distillation_loss(logits, teacher, labels, 3.0, 0.0), ce)
    assert distillation_loss(teacher, teacher, labels, 3.0, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    # the soft term is scaled by T^2 so its gradients stay comparable across temperatures
    soft_t1 = distillation_loss(logits, teacher, labels, 1.0, 1.0)
    kl = F.kl_div(F.log_softmax(logits, -1), F.softmax(teacher, -1), reduction="batchmean")
    assert torch.allclose(soft_t1, kl, atol=1e-6)


@pytest.mark.slow
def test_compare_distillation_trains_student_and_control_from_the_same_start() -> None:
    teacher = trained("cnn")
    torch.manual_seed(3)
    student = mlp(hidden=16)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    x, y, _, _ = digits()
    result = compare_distillation(
        teacher, student, x, y, accuracy, config=DistillConfig(epochs=8, temperature=2.0, alpha=0.5)
    )
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in start.items())  # caller's student untouched
    assert result.student is not result.control
    assert result.teacher_metric == pytest.approx(accuracy(teacher))
    assert result.student_metric > 0.8 and result.control_metric > 0.8
    assert result.gain == pytest.approx(result.student_metric - result.control_metric)
    assert set(result.to_dict()) == {"student_metric", "control_metric", "teacher_metric", "gain"}
    assert not torch.equal(result.student[1].weight, result.control[1].weight)  # the teacher changed training


@pytest.mark.parametrize(
    "config", [DistillConfig(temperature=0), DistillConfig(alpha=1.5), DistillConfig(epochs=0), DistillConfig(lr=0.0)]
)
def test_bad_settings_are_refused(config: DistillConfig) -> None:
    x, y, _, _ = digits()
    with pytest.raises(WattprintInputError):
        train_student(mlp(), x, y, config=config)


def test_mismatched_data_is_refused() -> None:
    x, y, _, _ = digits()
    with pytest.raises(WattprintInputError) as info:
        train_student(mlp(), x, y[:10])
    assert info.value.field == "x"
