"""Efficiency recipes on the scikit-learn digits CNN: accuracy, latency, energy, MACs and size vs fp32.

    python benchmarks/bench_optimize_digits.py [--epochs 15] [--energy-min-s 2] [--out DIR]

1. The CNN of examples/demo.py (two 3x3 convolutions, 16 and 32 channels, then 512 -> 64 -> 10) is trained on
   75 % of digits (seeded) and evaluated on the other 25 % (450 images).
2. `wattprint.optimize.search` tries every recipe and pruning + precision combination with the same harness
   as the fp32 baseline, in the same run: test accuracy; latency (median of 30 batches after 3 warm-up) at
   batch 64 and batch 1; energy per inference at batch 64 against the baseline in 3 rounds of baseline,
   candidate, candidate, baseline windows (--energy-min-s seconds of each model per round): the median ratio with
   its range, ≈ where it is no measurable difference (see wattprint/optimize/paired.py);
   MACs of one batch-64 forward (dense, and of nonzero weights only); parameters; serialized size. Pruned
   candidates are fine-tuned for 30 epochs (Adam, lr 2e-3) through the search's train_fn. For reference the
   summary also gives the fp32 baseline trained for the same 30 further epochs (not a candidate).
   torch runs on one thread: this 2-core machine is shared with other jobs, and OpenMP threads that wait
   for a busy core made latencies jump by up to 100x between candidates in a two-thread trial run.
3. Sparse training at 90 % sparsity: a lottery ticket (3 rounds of train, prune globally by magnitude, rewind
   the survivors to their initial weights; then train) and RigL (density 0.1 from the start, connections
   dropped by magnitude and regrown by gradient every 20 steps), each with --epochs epochs per training.
4. Knowledge distillation: a 4x narrower student (4/8 channels, 128 -> 32 -> 10), trained with the baseline as
   teacher (T = 4, alpha = 0.7) and, from the same initial weights and data order, without a teacher.

Energy on a machine without RAPL is wattprint's CPU/RAM model (utilisation x TDP, attributed to this process
by CPU time), an estimate, labelled as such. Ratios are to the fp32 baseline measured in the same run.
Results: benchmarks/results/optimize_digits.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

RECIPES = [
    "bf16",
    "fp16",
    "int8-dynamic",
    "int8",
    "int8-static",
    "prune:0.5",
    "prune:0.8",
    "prune:0.9",
    "prune-channels:0.3",
    "prune-channels:0.5",
    "prune-channels:0.6",
    "prune-channels:0.65",
    "prune-channels:0.7",
]
# pruning + precision pairs worth measuring (the full cross product would repeat what the rows above show)
COMBOS = [
    "prune-channels:0.6+int8-dynamic",
    "prune-channels:0.6+int8-static",
    "prune-channels:0.6+bf16",
    "prune-channels:0.6+fp16",
    "prune-channels:0.65+int8-static",
    "prune:0.8+int8-dynamic",
]
FINE_TUNE_EPOCHS = 30
BATCH = 64


def cnn(width: int = 16, hidden: int = 64) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 16, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )


def data() -> tuple[Any, Any, Any, Any]:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target)
    return tuple(train_test_split(x, y, test_size=0.25, random_state=0, stratify=y))  # type: ignore[return-value]


def train(model: Any, x: Any, y: Any, epochs: int, lr: float, seed: int = 0) -> Any:
    """Adam, batch BATCH, cross-entropy: wattprint's own student training without a teacher."""
    from wattprint.optimize.distill import DistillConfig, train_student

    return train_student(model, x, y, config=DistillConfig(epochs=epochs, lr=lr, seed=seed, batch_size=BATCH))


def accuracy_fn(x: Any, y: Any) -> Any:
    import torch

    def accuracy(model: Any) -> float:
        with torch.inference_mode():
            out = model(x)
        return (out.float().argmax(1) == y).float().mean().item()

    return accuracy


def _ranged(c: dict[str, Any], what: str) -> str:
    """A paired ratio with its range over the rounds, ≈ where it is no measurable difference."""
    r = ((c.get("paired") or {}).get("ratios") or {}).get(what)
    if not r or r.get("median") is None:
        return f"{c['ratios'][what]:.2f}"
    same = " ≈" if r["verdict"] == "no measurable difference" else ""
    return f"{r['median']:.2f} ({r['low']:.2f}-{r['high']:.2f}){same}"


def _row(c: dict[str, Any], base: dict[str, Any]) -> list[str]:
    r = c["ratios"]
    lat1 = c["latency_ms_by_batch"].get("1")
    lat1_base = base["latency_ms_by_batch"].get("1")
    return [
        c["recipe"],
        f"{c['metric'] * 100:.2f}",
        f"{-c['metric_drop'] * 100:+.2f}",
        f"{r['latency']:.2f}",
        f"{lat1 / lat1_base:.2f}" if lat1 and lat1_base else "-",
        _ranged(c, "energy"),
        f"{r['macs']:.3f}",
        f"{r['macs_nonzero']:.3f}",
        f"{r['size']:.3f}",
        "yes" if c["feasible"] else "no",
    ]


def sparse_training(
    x_train: Any, y_train: Any, x_test: Any, accuracy: Any, epochs: int, base: dict[str, Any]
) -> tuple[list[list[str]], dict[str, Any]]:
    """90 % sparse CNNs from a lottery ticket and from RigL, next to the one-shot prune:0.9 candidate."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from wattprint import count_flops
    from wattprint.optimize.prune import RigL, lottery_ticket

    def macs(model: Any, nonzero: bool) -> float:
        return count_flops(model, x_test[:BATCH], nonzero=nonzero).macs / base["macs"]

    torch.manual_seed(2)
    ticket = lottery_ticket(cnn(), 0.9, lambda m: train(m, x_train, y_train, epochs, 2e-3), rounds=3)
    torch.manual_seed(2)
    rigl_model = cnn()
    steps = -(-len(x_train) // BATCH) * epochs
    rigl = RigL(rigl_model, density=0.1, total_steps=steps, update_every=20)
    opt = torch.optim.Adam(rigl_model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    rigl_model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(x_train), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad()
            F.cross_entropy(rigl_model(x_train[idx]), y_train[idx]).backward()
            rigl.step()
            opt.step()
            rigl.apply_masks()
    rigl_model.eval()
    out: dict[str, Any] = {}
    rows = []
    for name, model in (("lottery ticket", ticket), ("RigL (density 0.1)", rigl_model)):
        acc = accuracy(model)
        out[name] = {"metric": acc, "macs_nonzero_ratio": macs(model, True), "macs_ratio": macs(model, False)}
        rows.append(
            [
                name,
                f"{acc * 100:.2f}",
                f"{(acc - base['metric']) * 100:+.2f}",
                f"{out[name]['macs_nonzero_ratio']:.3f}",
                f"{out[name]['macs_ratio']:.3f}",
            ]
        )
    out["rigl_updates"] = rigl.updates
    return rows, out


def fine_tune_copy(model: Any, fine_tune: Any) -> Any:
    """The fp32 model trained further in the same way as pruned candidates, for reference."""
    other = copy.deepcopy(model)
    fine_tune(other)
    return other


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--energy-min-s", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # torch.ao deprecation notices; results are unaffected

    import torch

    import wattprint.optimize as wo

    torch.set_num_threads(1)
    from wattprint.optimize.distill import DistillConfig, compare_distillation

    info = machine_info()
    torch.manual_seed(0)
    x_train, x_test, y_train, y_test = data()
    accuracy = accuracy_fn(x_test, y_test)
    t0 = time.perf_counter()
    model = train(cnn(), x_train, y_train, args.epochs, 2e-3)
    train_s = time.perf_counter() - t0

    def fine_tune(m: Any) -> None:
        train(m, x_train, y_train, FINE_TUNE_EPOCHS, 2e-3, seed=1)

    longer = accuracy(fine_tune_copy(model, fine_tune))

    t0 = time.perf_counter()
    result = wo.search(
        model,
        accuracy,
        x_test[:BATCH],
        max_metric_drop=0.01,
        recipes=RECIPES + COMBOS,
        combine=False,
        train_fn=fine_tune,
        batch_sizes=(BATCH, 1),
        repeats=30,
        energy_min_s=args.energy_min_s,
        progress=sys.stderr.isatty(),
    )
    search_s = time.perf_counter() - t0
    base = result.baseline
    headers = [
        "recipe",
        "accuracy %",
        "Δ points",
        "latency b64 x",
        "latency b1 x",
        "energy/inf x (range)",
        "MACs x",
        "nonzero MACs x",
        "size x",
        "within 1 pt",
    ]
    rows = [_row(c, base) for c in [base, *result.candidates]]
    rows += [[c["recipe"], "refused: " + c["error"][:80], *[""] * 8] for c in result.refused]
    print_table("digits CNN: ratios to the fp32 baseline measured in the same run", headers, rows)

    four_x = [
        c for c in result.candidates if c["feasible"] and (c["ratios"]["macs"] <= 0.25 or c["ratios"]["energy"] <= 0.25)
    ]
    # unstructured sparsity alone: 4x fewer nonzero MACs while the dense count stays above a quarter
    four_x_nonzero = [
        c
        for c in result.candidates
        if c["feasible"] and c["ratios"]["macs_nonzero"] <= 0.25 and c["ratios"]["macs"] > 0.25
    ]

    torch.manual_seed(1)
    student = cnn(width=4, hidden=32)
    t0 = time.perf_counter()
    distill = compare_distillation(
        model, student, x_train, y_train, accuracy, config=DistillConfig(epochs=args.epochs, temperature=4.0, alpha=0.7)
    )
    distill_s = time.perf_counter() - t0
    from wattprint import count_flops

    student_macs = count_flops(distill.student, x_test[:BATCH]).macs
    d_rows = [
        ["teacher (baseline)", f"{distill.teacher_metric * 100:.2f}", f"{base['macs']:,}", "1.000"],
        [
            "student, distilled",
            f"{distill.student_metric * 100:.2f}",
            f"{student_macs:,}",
            f"{student_macs / base['macs']:.3f}",
        ],
        [
            "student, no teacher",
            f"{distill.control_metric * 100:.2f}",
            f"{student_macs:,}",
            f"{student_macs / base['macs']:.3f}",
        ],
    ]
    d_headers = ["model", "accuracy %", "MACs (batch 64)", "MACs x"]
    print_table("Distillation: the same student with and without the teacher", d_headers, d_rows)

    t0 = time.perf_counter()
    sparse_rows, sparse = sparse_training(x_train, y_train, x_test, accuracy, args.epochs, base)
    sparse_s = time.perf_counter() - t0
    s_headers = ["model (90 % of weights zero)", "accuracy %", "Δ points", "nonzero MACs x", "dense MACs x"]
    print_table(
        "Sparse training: lottery ticket (3 rounds, rewind to init) and RigL vs one-shot pruning",
        s_headers,
        sparse_rows,
    )

    energy = result.energy
    method_line = "; ".join(f"{k}: {v['method']} ({v['source']}: {v['detail']})" for k, v in energy.items())
    verdict = (
        "Met: "
        + ", ".join(
            f"{c['recipe']} (MACs x{c['ratios']['macs']:.3f}, energy x{c['ratios']['energy']:.2f}, "
            f"{-c['metric_drop'] * 100:+.2f} points)"
            for c in four_x
        )
        if four_x
        else "NOT met by any candidate in this run (dense MACs or energy)."
    )
    summary = [
        f"Baseline: accuracy {base['metric'] * 100:.2f} %, {base['macs']:,} MACs per batch of {BATCH}, "
        f"{base['latency_ms']:.3f} ms per batch of {BATCH}, {base['energy_per_inference_j'] * 1e3:.4f} mJ per "
        f"inference ({base['energy_method']}), {base['size_bytes'] / 1024:.1f} KiB.",
        f"Target (at least 4x fewer MACs or 4x less energy per inference, at most 1 point accuracy lost): {verdict}",
        "Unstructured magnitude pruning reaching 4x fewer *nonzero* MACs within 1 point: "
        + (", ".join(c["recipe"] for c in four_x_nonzero) if four_x_nonzero else "none")
        + " (dense kernels still multiply the zeros: no dense speed-up, see the latency and energy columns).",
        f"Pareto front (accuracy, energy, latency) among candidates within 1 point: "
        f"{', '.join(c['recipe'] for c in result.pareto)}; best (measurably lowest energy per inference, ties by "
        f"nonzero MACs): {result.best['recipe'] if result.best else '-'}.",
        *(n[0].upper() + n[1:] + "." for n in result.notes if n.startswith(("A/A", "energy and latency:"))),
        f"Energy: {method_line}. With the model estimate, energy per inference follows this process's CPU time, "
        "so it tracks the batch-64 latency column; RAPL or NVML would measure it.",
        f"Distillation gain (distilled minus no-teacher student): {distill.gain * 100:+.2f} points.",
        f"Reference: the fp32 baseline trained {FINE_TUNE_EPOCHS} epochs more reaches {longer * 100:.2f} % "
        f"(baseline {base['metric'] * 100:.2f} %); the test set has {len(y_test)} images, so one point is "
        f"{len(y_test) / 100:.1f} images.",
        f"Times: training {train_s:.1f} s, search {search_s:.1f} s ({len(result.candidates)} candidates, "
        f"{len(result.refused)} refused), distillation {distill_s:.1f} s, "
        f"sparse training {sparse_s:.1f} s.",
    ]
    for line in summary:
        print(line)
    md = "\n\n".join(
        [
            "# Optimization recipes on the digits CNN",
            __doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
            "## Candidates (ratios to the fp32 baseline of the same run; x < 1 is better)\n\n"
            + markdown_table(headers, rows),
            "## Distillation\n\n" + markdown_table(d_headers, d_rows),
            "## Sparse training (90 % of Linear/Conv weights zero; one-shot prune:0.9 is in the table above)\n\n"
            + markdown_table(s_headers, sparse_rows),
            "## Summary\n\n" + "\n".join(f"- {line}" for line in summary),
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    doc = {
        "machine": info,
        "baseline": base,
        "candidates": result.candidates,
        "refused": result.refused,
        "pareto": [c["recipe"] for c in result.pareto],
        "best": result.best and result.best["recipe"],
        "energy": energy,
        "four_x_within_one_point": [c["recipe"] for c in four_x],
        "four_x_nonzero_within_one_point": [c["recipe"] for c in four_x_nonzero],
        "sparse_training": sparse,
        "distillation": {**distill.to_dict(), "student_macs": student_macs, "teacher_macs": base["macs"]},
        "baseline_trained_longer_metric": longer,
        "times_s": {"train": train_s, "search": search_s, "distill": distill_s, "sparse": sparse_s},
        "settings": vars(args)
        | {"out": str(args.out) if args.out else None, "torch_threads": 1, "fine_tune_epochs": FINE_TUNE_EPOCHS},
        "notes": result.notes,
    }
    path = write_results("optimize_digits", copy.deepcopy(doc), md, args.out)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
