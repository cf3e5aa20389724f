"""wattprint demo, the whole loop on scikit-learn's digits: measure, account, reduce, report.

1. Train a small CNN under tracking: energy per epoch, a whole-run prediction after two epochs,
   accuracy and MACs logged on the run.
2. Search efficiency recipes (pruning, quantization, precision) with an accuracy budget of one point:
   every candidate is measured the same way, as ratios to the fp32 baseline of the same run.
3. Run the baseline and the candidates on the accuracy/energy Pareto front through the same tracked
   inference workload, store those runs, and write the comparison report (HTML with the Pareto chart,
   Markdown table) to ./demo-out/.
4. Once-for-all: train one elastic supernet of the CNN's family (tracked), then search sub-networks of it
   for accuracy against energy per inference (measured or estimated, as the machine allows), training none;
   their page with the Pareto front goes to ./demo-out/once_for_all.html.

Run with `make demo`. Everything is offline: the digits data ships with scikit-learn.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import wattprint
import wattprint.optimize as wo

EPOCHS = 15
BATCH = 64
FINE_TUNE_EPOCHS = 10  # after pruning
EXAMPLE_BATCH = 64  # test images per batch for latency, energy and MACs in the search
INFERENCE_PASSES = 300  # passes over the test set per tracked inference run: the same work for every candidate
RECIPES = ("int8-dynamic", "int8-static", "bf16", "prune:0.8", "prune-channels:0.5", "prune-channels:0.6")
OUT = Path("demo-out")


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


def load() -> tuple[torch.Tensor, ...]:
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    return tuple(train_test_split(x, y, test_size=0.25, random_state=0, stratify=y))  # type: ignore[arg-type]


def train(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> nn.Module:
    """Step 1: a tracked training run."""
    from wattprint.accounting.predict import progress_line

    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    with wattprint.track("digits-cnn train") as tracker:
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
        accuracy = wo.accuracy_eval(x_test, y_test)(model)
        cost = wattprint.count_flops(model, x_test[:1]).as_metrics()  # per sample
        tracker.log(accuracy=accuracy, model="DigitsCNN fp32", epochs=EPOCHS, train_samples=len(x_train), **cost)
    record = tracker.record.to_json_dict()
    for bulky in ("timeline", "windows", "hardware", "methods"):
        record.pop(bulky, None)
    print(json.dumps(record, indent=2))
    print(f"test accuracy {accuracy:.4f}; see it again with: wattprint runs show {record['run_id'][:8]}\n")
    return model


def supernet() -> Any:
    """Step 4's family: a stem, then 1 to 3 residual blocks whose inner width (8-32) and kernel (3 or 5) are
    elastic, then an elastic hidden layer."""
    from wattprint.optimize.ofa import ElasticBatchNorm, ElasticConv2d, ElasticDepth, ElasticLinear

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                ElasticConv2d(32, (8, 16, 24, 32), (3, 5), bias=False),
                ElasticBatchNorm(32),
                nn.ReLU(),
                ElasticConv2d(32, 32, 1, bias=False),
                ElasticBatchNorm(32),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x + self.body(x))

    body = nn.Sequential(
        ElasticConv2d(1, 32, 3, bias=False),
        ElasticBatchNorm(32),
        nn.ReLU(),
        ElasticDepth([Block() for _ in range(3)]),
        nn.MaxPool2d(2),
        nn.Flatten(),
        ElasticLinear(32 * 16, (32, 64)),
        nn.ReLU(),
        ElasticLinear(64, 10),
    )
    return wo.Supernet(body, input_shape=(1, 8, 8))


def once_for_all(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> None:
    """Step 4: one supernet trained, sub-networks found under no budget, each measured here."""
    torch.manual_seed(0)
    net = supernet()
    print("\ntraining one once-for-all supernet (progressive shrinking, in-place distillation) ...")
    with wattprint.track("digits-cnn supernet train") as tracker:
        report = wo.train_supernet(net, x_train, y_train)
    from wattprint.cli.render import summary_line

    print(f"  {summary_line(tracker.record)}; {len(report.phases)} phases")
    found = wo.search_subnets(
        net, wo.accuracy_eval(x_test, y_test), x_test[:EXAMPLE_BATCH], calibration_data=x_train, n_trials=8
    )
    largest = max(c["macs"] for c in found.candidates)
    for c in sorted(found.candidates, key=lambda c: -c["macs"]):
        print(
            f"  {c['recipe']:<32} accuracy {c['metric']:.4f}  {largest / c['macs']:5.1f}x fewer MACs  "
            f"{c['energy_per_inference_j'] * 1e3:.3f} mJ/inference at batch 1 ({c['energy_method']})"
        )
    from wattprint.report.search_page import search_html
    from wattprint.report.writer import write_report

    html = search_html(found.to_dict(), title="Once-for-all sub-networks")
    page = write_report(OUT / "once_for_all.html", html, directory=OUT)
    print(f"  sub-networks page: {page.resolve()}")


def tracked_inference(model: nn.Module, label: str, x_test: torch.Tensor, metrics: dict[str, Any]) -> Any:
    """Step 3: the same inference workload, tracked, for one candidate; returns its run record."""
    model.eval()
    with torch.inference_mode():
        for _ in range(10):  # warm-up (kernel selection, caches) stays out of the measured run
            model(x_test)
    with torch.inference_mode(), wattprint.track(f"digits-cnn {label} inference") as tracker:
        tracker.set_functional_unit("inference", INFERENCE_PASSES * len(x_test))
        started = time.perf_counter()
        for _ in range(INFERENCE_PASSES):
            model(x_test)
        tracker.log(
            latency_ms_per_pass=1e3 * (time.perf_counter() - started) / INFERENCE_PASSES,
            inferences=INFERENCE_PASSES * len(x_test),
            **metrics,
        )
    return tracker.record


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # one core: steadier timings on a shared machine, and the same for every candidate
    x_train, x_test, y_train, y_test = load()
    model = train(x_train, y_train, x_test, y_test)

    print(f"searching {len(RECIPES)} recipes and their combinations (accuracy budget: 1 point) ...")
    result = wo.classifier_search(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        max_metric_drop=0.01,
        recipes=RECIPES,
        fine_tune_epochs=FINE_TUNE_EPOCHS,
        example_batch=EXAMPLE_BATCH,
    )
    wo.print_report(result)

    # the baseline can sit on the front itself (the fastest, say): it is tracked below as "fp32" already
    chosen = [c for c in result.pareto if c["feasible"] and c["recipe"] != "baseline"]
    if result.best is not None and result.best["recipe"] not in {c["recipe"] for c in chosen}:
        chosen.append(result.best)
    print(
        f"\ntracking the same inference work ({INFERENCE_PASSES} passes over {len(x_test)} test images) for "
        f"the baseline and {len(chosen)} candidate(s) on the Pareto front ..."
    )
    base = result.baseline
    records = [
        tracked_inference(
            model,
            "fp32",
            x_test,
            {
                "model": "DigitsCNN fp32",
                "recipe": "baseline",
                "accuracy": base["metric"],
                "macs": base["macs"] // EXAMPLE_BATCH,
                "params": base["params"],
            },
        )
    ]

    def fine_tune(candidate: nn.Module) -> None:
        from wattprint.optimize.distill import DistillConfig, train_student

        train_student(candidate, x_train, y_train, config=DistillConfig(epochs=FINE_TUNE_EPOCHS, lr=2e-3))

    for cand in chosen:
        torch.manual_seed(0)
        optimized = wo.apply(model, cand["recipe"], example_inputs=x_test[:EXAMPLE_BATCH], train_fn=fine_tune)
        accuracy = wo.accuracy_eval(x_test, y_test)(optimized)  # of this very model, not the search's copy
        records.append(
            tracked_inference(
                optimized,
                cand["recipe"],
                x_test,
                {
                    "model": f"DigitsCNN {cand['recipe']}",
                    "recipe": cand["recipe"],
                    "accuracy": accuracy,
                    "macs": cand["macs"] // EXAMPLE_BATCH,
                    "params": cand["params"],
                },
            )
        )

    from wattprint.report.html import comparison_html
    from wattprint.report.tables import runs_table, to_markdown
    from wattprint.report.writer import write_report

    OUT.mkdir(exist_ok=True)
    html = write_report(OUT / "comparison.html", comparison_html(records), directory=OUT)
    table = to_markdown(runs_table(records))
    write_report(OUT / "comparison.md", table, directory=OUT)
    (OUT / "search.json").write_text(json.dumps(result.to_json_dict(), indent=2, default=str))
    print("\n" + table)
    print(f"\nreport: {html.resolve()}  (also {OUT / 'comparison.md'}, {OUT / 'search.json'})")
    ids = " ".join(r.run_id[:8] for r in records)
    print(f"again, or in other formats: wattprint report {ids} --html cmp.html --latex cmp.tex")
    once_for_all(x_train, y_train, x_test, y_test)


if __name__ == "__main__":
    main()
