"""wattprint demo: track a small real PyTorch training run on scikit-learn's digits, print its record.

Run with `make demo`. Everything is offline: the digits data ships with scikit-learn.
"""

from __future__ import annotations

import json

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import wattprint

EPOCHS = 15
BATCH = 64


def make_model() -> nn.Module:
    """A small CNN for 8x8 digit images."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()

    from wattprint.accounting.predict import progress_line

    with wattprint.track("digits-cnn-demo") as tracker:
        tracker.set_functional_unit("sample", EPOCHS * len(x_train))
        for epoch in range(EPOCHS):
            tracker.begin_window(f"epoch-{epoch}")
            model.train()
            order = torch.randperm(len(x_train))
            for i in range(0, len(order), BATCH):
                idx = order[i : i + BATCH]
                optimizer.zero_grad()
                loss = loss_fn(model(x_train[idx]), y_train[idx])
                loss.backward()
                optimizer.step()
            window = tracker.end_window(f"epoch-{epoch}")
            print(f"epoch {epoch + 1:2d}/{EPOCHS}  loss {loss.item():.4f}  {window.total_j:7.1f} J")
            if epoch == 1:  # after two epochs, predict the whole run
                print("  " + progress_line(tracker.predict(total_epochs=EPOCHS)))
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        tracker.log(accuracy=accuracy, epochs=EPOCHS, train_samples=len(x_train))

    record = tracker.record.to_json_dict()
    record.pop("timeline")
    record.pop("windows")
    print(json.dumps(record, indent=2))
    print(f"\ntest accuracy {accuracy:.4f}; see it again with: wattprint runs show {record['run_id'][:8]}")


if __name__ == "__main__":
    main()
