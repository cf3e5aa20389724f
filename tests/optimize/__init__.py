"""Shared helpers for the optimize tests: scikit-learn digits (offline) and tiny real models trained on it."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def digits() -> tuple[Any, Any, Any, Any]:
    """(x_train, y_train, x_test, y_test): 8x8 images as (N, 1, 8, 8) float tensors in [0, 1]."""
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return x_train, y_train, x_test, y_test


def mlp(hidden: int = 64) -> Any:
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


def cnn(width: int = 8) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 16, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def train(model: Any, epochs: int = 5, lr: float = 3e-3, seed: int = 0) -> Any:
    """Train in place on the digits training split (Adam, batch 64, cross-entropy); returns the model."""
    from wattprint.optimize.distill import DistillConfig, train_student

    x, y, _, _ = digits()
    train_student(model, x, y, config=DistillConfig(epochs=epochs, lr=lr, seed=seed))
    model.eval()
    return model


def accuracy(model: Any) -> float:
    """Test accuracy; inputs follow the dtype of the model's first floating parameter."""
    import torch

    _, _, x, y = digits()
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    with torch.no_grad():
        return (model(x.to(dtype)).argmax(1) == y).float().mean().item()


@functools.lru_cache(maxsize=4)
def _trained(kind: str) -> Any:
    import torch

    torch.manual_seed(0)
    return train(mlp() if kind == "mlp" else cnn())


def trained(kind: str = "mlp") -> Any:
    """A trained model (cached across tests; a deep copy each call, so tests cannot affect each other)."""
    import copy

    return copy.deepcopy(_trained(kind))
