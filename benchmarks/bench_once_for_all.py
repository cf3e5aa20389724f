"""Once-for-all on scikit-learn digits: one elastic supernet against training each sub-network from scratch.

    python benchmarks/bench_once_for_all.py [--phases 6 2 2 14] [--epochs N] [--trials 30] [--out DIR]

1. Data: digits, 25 % test (450 images, stratified, seed 0, as bench_optimize_digits); of the rest, 20 % is a
   validation split (270 images) on which the search ranks sub-networks, and 80 % (1077) trains every network.
   The test split is used only for the figures reported, never to choose.
2. The family: a residual CNN on 8x8 images. A stem convolution (32 channels, 3x3 or 5x5), a stage of 1 to 3
   residual blocks at 8x8, 2x2 max pooling, a stage of 1 or 2 blocks at 4x4, Flatten, a hidden layer of 32 or 64
   units, 10 outputs. A block is relu(x + bn(conv1x1(relu(bn(conv_k(x)))))) with an inner width of 8, 16, 24 or
   32 channels and k = 3 or 5 (the 3x3 kernel is the centre crop of the 5x5): widths, kernels and depths are
   chosen per block, as OFA chooses per block inside fixed-width residual stages.
3. The supernet is trained once by progressive shrinking (wattprint.optimize.ofa_train.train_supernet), --phases
   epochs: the largest network alone; then kernel sizes elastic; then depths; then widths. Adam, lr 2e-3 with a
   cosine decay per phase, batch 64; each step of the elastic phases trains the largest network on the labels
   and 2 sub-networks (the phase's smallest and a random one) on its logits of the same step (in-place
   distillation, T = 1, alpha = 0.5). Channels are sorted by importance once, after the first phase. The
   whole training is one window of wattprint's EnergyMonitor over this process.
4. `search_subnets` (Optuna TPE; objectives validation accuracy up, energy per inference down, MACs down)
   measures --trials sub-networks, each extracted as a plain model and batch-norm recalibrated on the training
   inputs; energy per inference at batch 64 over at least --energy-min-s seconds. Picked: the largest network,
   and in each band of 2-4x, 4-8x, 8-16x and >= 16x fewer MACs than the largest the sub-network most accurate
   on validation.
5. Each picked architecture is trained from scratch, in its own energy window: fresh weights, cross-entropy,
   Adam lr 2e-3 with a cosine decay, batch 64, --epochs epochs (default: as many as the largest network gets
   inside the supernet, the sum of --phases). Their sum is the cost of training the same models one by one.
6. The budget contract: a search under an energy budget (the median energy per inference measured in step 4)
   must return a sub-network within it, measured twice; one under an impossible budget (1 nJ per inference)
   must say that none fits.

torch runs on one thread (this 2-core machine is shared; see bench_optimize_digits). Energy on a machine without
RAPL is wattprint's CPU/RAM model (utilisation x TDP, attributed to this process by CPU time): an estimate,
labelled as such. Results: benchmarks/results/once_for_all.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

BATCH = 64
CHANNELS = 32  # between blocks (fixed: the residual sums need it)
WIDTHS = (8, 16, 24, 32)  # inside a block
KERNELS = (3, 5)
HIDDEN = (32, 64)
BANDS = ((2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, float("inf")))  # MACs ratios to the largest: one pick each


def family() -> Any:
    """The elastic digits CNN (see the module docs)."""
    import torch
    from torch import nn

    from wattprint.optimize.ofa import ElasticBatchNorm, ElasticConv2d, ElasticDepth, ElasticLinear, Supernet

    class Residual(nn.Module):
        """relu(x + bn(conv1x1(relu(bn(conv_k(x)))))): inner width and kernel elastic, 32 channels in and out."""

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                ElasticConv2d(CHANNELS, WIDTHS, KERNELS, bias=False),
                ElasticBatchNorm(max(WIDTHS)),
                nn.ReLU(),
                ElasticConv2d(max(WIDTHS), CHANNELS, 1, bias=False),
                ElasticBatchNorm(CHANNELS),
            )

        def forward(self, x: Any) -> Any:
            return torch.relu(x + self.body(x))

    body = nn.Sequential(
        ElasticConv2d(1, CHANNELS, KERNELS, bias=False),
        ElasticBatchNorm(CHANNELS),
        nn.ReLU(),
        ElasticDepth([Residual() for _ in range(3)]),
        nn.MaxPool2d(2),
        ElasticDepth([Residual() for _ in range(2)]),
        nn.Flatten(),
        ElasticLinear(CHANNELS * 16, HIDDEN),
        nn.ReLU(),
        ElasticLinear(max(HIDDEN), 10),
    )
    return Supernet(body, input_shape=(1, 8, 8))


def data() -> dict[str, Any]:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.2, random_state=0, stratify=y_rest)
    return {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}


def accuracy_fn(x: Any, y: Any) -> Any:
    import torch

    def accuracy(model: Any) -> float:
        with torch.inference_mode():
            return (model(x).argmax(1) == y).float().mean().item()

    return accuracy


def pick(candidates: list[dict[str, Any]], largest: dict[str, Any]) -> list[dict[str, Any]]:
    """The largest network, then per band of MACs ratio the most accurate sub-network on validation."""
    picked = [largest]
    for low, high in BANDS:
        band = [c for c in candidates if low <= largest["macs"] / c["macs"] < high]
        if band:
            picked.append(max(band, key=lambda c: (c["metric"], -c["macs"])))
    return picked


def scratch(model: Any, x: Any, y: Any, epochs: int, seed: int) -> Any:
    """Fresh weights and batch-norm statistics, then a normal training: cross-entropy, Adam lr 2e-3, batch 64,
    cosine decay over the epochs (the supernet's first phase, on this architecture alone)."""
    import math

    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    total = epochs * -(-len(x) // BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
            schedule.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--phases", type=int, nargs=4, default=[6, 2, 2, 14], metavar=("LARGEST", "KERNEL", "DEPTH", "WIDTH")
    )
    ap.add_argument("--epochs", type=int, default=None, help="each scratch training (default: the phases' sum)")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--energy-min-s", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    import torch

    from wattprint import count_flops
    from wattprint.optimize.harness import EnergyMeter
    from wattprint.optimize.ofa import SubnetConfig, extract, recalibrate_bn
    from wattprint.optimize.ofa_search import search_subnets
    from wattprint.optimize.ofa_train import ShrinkConfig, train_supernet

    torch.set_num_threads(1)
    info = machine_info()
    started = time.perf_counter()
    splits = data()
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = splits["train"], splits["val"], splits["test"]
    val_acc, test_acc = accuracy_fn(x_val, y_val), accuracy_fn(x_test, y_test)
    one = x_test[:1]

    torch.manual_seed(args.seed)
    net = family()
    largest_epochs, kernel_epochs, depth_epochs, width_epochs = args.phases
    args.epochs = args.epochs or sum(args.phases)
    shrink = ShrinkConfig(
        largest_epochs=largest_epochs,
        kernel_epochs=kernel_epochs,
        depth_epochs=depth_epochs,
        width_epochs=width_epochs,
        batch_size=BATCH,
        lr=2e-3,
        shrink_lr=2e-3,
        seed=args.seed,
    )
    meter = EnergyMeter()
    try:
        reports: list[Any] = []
        supernet_j, supernet_s, _ = meter.window(
            lambda: reports.append(train_supernet(net, x_train, y_train, config=shrink)) or 1
        )
        energy = {"method": meter.method, "sources": meter.sources, "detail": meter.describe()}

        common = {"batch_sizes": (BATCH,), "repeats": 20, "energy_min_s": args.energy_min_s, "progress": False}
        found: list[Any] = []
        search_j, search_s, _ = meter.window(
            lambda: (
                found.append(
                    search_subnets(
                        net,
                        val_acc,
                        x_test[:BATCH],
                        calibration_data=x_train,
                        n_trials=args.trials,
                        seed=args.seed,
                        **common,
                    )
                )
                or 1
            )
        )
        result = found[0]
        largest_label = net.space.largest().label
        by_label = {c["recipe"]: c for c in result.candidates}
        picked = pick(result.candidates, by_label[largest_label])

        # the budget contract: the median energy per inference of the first search, then an impossible budget
        budget_j = statistics.median(c["energy_per_inference_j"] for c in result.candidates)
        budgeted = search_subnets(
            net, val_acc, x_test[:BATCH], calibration_data=x_train, n_trials=12, max_energy_j=budget_j, **common
        )
        impossible = search_subnets(
            net, val_acc, x_test[:BATCH], calibration_data=x_train, n_trials=2, max_energy_j=1e-9, **common
        )

        subnets = []
        for c in picked:
            config = SubnetConfig.from_dict(c["config"])
            model = recalibrate_bn(extract(net, config), x_train)
            fresh = extract(net, config)
            scratch_j, scratch_s, _ = meter.window(
                lambda m=fresh: scratch(m, x_train, y_train, args.epochs, args.seed) and 1
            )
            subnets.append(
                {
                    "arch": config.label,
                    "config": config.to_dict(),
                    "macs": count_flops(model, one).macs,
                    "params": sum(p.numel() for p in model.parameters()),
                    "accuracy_pct": 100 * test_acc(model),
                    "val_accuracy_pct": 100 * c["metric"],
                    "scratch_accuracy_pct": 100 * test_acc(fresh),
                    "scratch_train_energy_j": scratch_j,
                    "scratch_train_s": scratch_s,
                    "energy_per_inference_j": c["energy_per_inference_j"],
                    "latency_ms_batch64": c["latency_ms"],
                }
            )
    finally:
        meter.close()

    top = subnets[0]
    for s in subnets:
        s["macs_ratio"] = top["macs"] / s["macs"]
        s["accuracy_drop_pts"] = top["accuracy_pct"] - s["accuracy_pct"]
        s["scratch_gap_pts"] = s["accuracy_pct"] - s["scratch_accuracy_pct"]
    scratch_total_j = sum(s["scratch_train_energy_j"] for s in subnets)
    scratch_total_s = sum(s["scratch_train_s"] for s in subnets)
    ratio = supernet_j / scratch_total_j
    within_scratch = all(s["scratch_gap_pts"] >= -1.0 for s in subnets)
    four_x = [s["arch"] for s in subnets if s["macs_ratio"] >= 4.0 and s["accuracy_drop_pts"] <= 1.0]
    report = reports[0].to_dict()
    passes = report["passes"]

    headers = [
        "sub-network",
        "MACs / image",
        "MACs x fewer",
        "test acc % (extracted)",
        "drop vs largest (pts)",
        "test acc % (scratch)",
        "extracted - scratch (pts)",
        "scratch train J",
        "energy / inference (mJ)",
    ]
    rows = [
        [
            s["arch"],
            f"{s['macs']:,}",
            f"{s['macs_ratio']:.2f}",
            f"{s['accuracy_pct']:.2f}",
            f"{s['accuracy_drop_pts']:+.2f}",
            f"{s['scratch_accuracy_pct']:.2f}",
            f"{s['scratch_gap_pts']:+.2f}",
            f"{s['scratch_train_energy_j']:.1f}",
            f"{s['energy_per_inference_j'] * 1e3:.4f}",
        ]
        for s in subnets
    ]
    print_table("Once-for-all on digits: extracted sub-networks vs the same architectures from scratch", headers, rows)

    best = budgeted.best
    contract = {
        "budget_j": budget_j,
        "fits": budgeted.fits,
        "pick": best and best["recipe"],
        "pick_energy_j": best and best["energy_per_inference_j"],
        "pick_second_energy_j": best and best.get("second_measurement", {}).get("energy_per_inference_j"),
        "pick_test_accuracy_pct": best and 100 * test_acc(recalibrate_bn(extract(net, budgeted.best_config), x_train)),
        "candidates": len(budgeted.candidates),
        "over_budget": sum(not c["feasible"] for c in budgeted.candidates),
        "notes": budgeted.notes,
        "impossible_budget_j": 1e-9,
        "impossible_fits": impossible.fits,
        "impossible_reason": impossible.reason,
    }
    held = (
        contract["fits"]
        and contract["pick_energy_j"] <= budget_j
        and (contract["pick_second_energy_j"] or 0.0) <= budget_j
        and not impossible.fits
    )
    method = energy["method"]
    sources = ", ".join(f"{k}: {v}" for k, v in energy["sources"].items())
    summary = [
        f"Supernet: trained once in {supernet_s:.1f} s, {supernet_j:.1f} J ({method}; {sources}); {passes:,} "
        f"forward/backward passes of a batch ({' + '.join(map(str, args.phases))} epochs).",
        f"Training the {len(subnets)} extracted architectures from scratch, {args.epochs} epochs each: "
        f"{scratch_total_j:.1f} J in {scratch_total_s:.1f} s. Supernet / scratch energy: {ratio:.3f} "
        f"({'below' if ratio < 1 else 'NOT below'} the sum).",
        "Extracted within 1 point of the same architecture from scratch: "
        + (
            "yes, every one"
            if within_scratch
            else "NO: " + ", ".join(s["arch"] for s in subnets if s["scratch_gap_pts"] < -1)
        ),
        ">= 4x fewer MACs than the largest within 1 point of its accuracy: " + (", ".join(four_x) or "NONE"),
        f"Energy budget {budget_j * 1e3:.4f} mJ per inference (the median of the first search's candidates): pick "
        f"{contract['pick']} at {(contract['pick_energy_j'] or 0) * 1e3:.4f} mJ, "
        f"{(contract['pick_second_energy_j'] or 0) * 1e3:.4f} mJ measured again, test accuracy "
        f"{contract['pick_test_accuracy_pct'] or 0:.2f} %; {contract['over_budget']} of {contract['candidates']} "
        f"candidates over budget. Impossible budget (1 nJ): {impossible.reason}. Contract "
        + ("held." if held else "NOT held."),
        f"Search: {len(result.candidates)} sub-networks measured in {search_s:.1f} s, {search_j:.1f} J (not in the "
        "ratio, which compares training: from scratch, measuring a candidate would first need training it); "
        "Pareto front of "
        f"{len(result.pareto)}. Test set: {len(y_test)} images (one point = {len(y_test) / 100:.1f} images).",
        f"Whole benchmark: {time.perf_counter() - started:.0f} s.",
    ]
    for line in summary:
        print(line)

    md = "\n\n".join(
        [
            "# Once-for-all on digits",
            __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
            "## Sub-networks\n\n" + markdown_table(headers, rows),
            "## Supernet training\n\n"
            + markdown_table(
                ["phase", "elastic", "epochs", "steps", "passes", "seconds"],
                [
                    [
                        p["phase"],
                        ", ".join(p["elastic"]) or "-",
                        p["epochs"],
                        p["steps"],
                        p["passes"],
                        f"{p['seconds']:.1f}",
                    ]
                    for p in report["phases"]
                ],
            ),
            "## Summary\n\n" + "\n".join(f"- {line}" for line in summary),
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    doc = {
        "machine": info,
        "energy": energy,
        "energy_method": method,
        "subnets": subnets,
        "supernet_energy_ratio": ratio,
        "supernet_train_energy_j": supernet_j,
        "supernet_train_s": supernet_s,
        "scratch_train_energy_j": scratch_total_j,
        "scratch_train_s": scratch_total_s,
        "supernet_training": report,
        "must_hold": {
            "extracted_within_1pt_of_scratch": within_scratch,
            "four_x_fewer_macs_within_1pt": four_x,
            "supernet_energy_below_scratch_sum": ratio < 1.0,
            "budget_contract_held": held,
        },
        "budget_contract": contract,
        "search": {
            "trials": args.trials,
            "measured": len(result.candidates),
            "pareto": [c["recipe"] for c in result.pareto],
            "seconds": search_s,
            "energy_j": search_j,
            "notes": result.notes,
        },
        "settings": vars(args)
        | {
            "out": str(args.out) if args.out else None,
            "torch_threads": 1,
            "scratch_epochs": args.epochs,
            "shrink": shrink.__dict__,
            "widths": WIDTHS,
            "kernels": KERNELS,
            "hidden": HIDDEN,
            "macs_ratio_bands": [[low, high if high != float("inf") else None] for low, high in BANDS],
            "splits": {k: len(v[1]) for k, v in splits.items()},
        },
    }
    path = write_results("once_for_all", doc, md, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
