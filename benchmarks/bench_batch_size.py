"""Batch-size optimizer on the digits CNN: its pick and its full price against an exhaustive run of every size.

    python benchmarks/bench_batch_size.py [--sizes 8,16,32,64,128,256,512] [--target 0.975] [--eta 0.5]
                                          [--beta 2] [--repeats 3] [--trials 3] [--recurring 6] [--out DIR]

Task: the CNN of bench_optimize_digits.py (two 3x3 convolutions, 16 and 32 channels, then 512 -> 64 -> 10),
trained from the same seeded initial weights and data order at every batch size (Adam, lr 2e-3, torch on one
thread) until its test accuracy (450 images) reaches --target, checked after every epoch, for at most
--max-epochs epochs. Energy is what wattprint's EnergyMonitor charges to this process (a hardware counter where
there is one, else the CPU/RAM model: the method is in the results); time is wall time; both from one meter
shared by every run below, so they are measured in the same run and priced with the same MAXPOWER.

1. Exhaustive: every size trained to the target with no early stop, --repeats passes (alternately in
   ascending and descending order); per size the median energy-to-target and time-to-target, and Zeus's cost
   eta x energy + (1 - eta) x MAXPOWER x time from them (for eta 0, --eta and 1).
2. Optimizer, --trials times with a fresh optimizer each: `BatchSizeOptimizer(sizes, eta, beta,
   default_batch_size=--default-batch, seed)` explores every size once with early stop (a run stops once its
   cost passes beta x the best cost to target so far): the default batch first, as Zeus does, then the others
   in the order shuffled by --seed; then --recurring further runs choose by Thompson sampling, as recurring
   jobs would. Exhaustive passes and trials alternate, so that the load of this shared machine falls on both.
   For contrast, one more optimizer explores without a default, in the seeded order alone.
Reported: each trial's pick against the exhaustive best (the exhaustive cost of the pick over the best's),
the price of exploration (every run's cost, stopped runs included) in units of the best run, and what early
stop saved: a stopped run ran e of the E epochs its size needs (the same seeds: E is the exhaustive count), so it
saved about its cost x (E - e) / e (estimated from the run itself: another run's time is another moment's load).
Results: benchmarks/results/batch_size.{json,md}.
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
from bench_optimize_digits import cnn, data  # noqa: E402

LR = 2e-3


def make_start(x_train: Any, y_train: Any, x_test: Any, y_test: Any, seed: int) -> Any:
    """start(batch_size) -> train_epoch(): fresh seeded weights and data order; returns the epoch's test accuracy."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    def start(batch_size: int) -> Any:
        torch.manual_seed(seed)
        model = cnn()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        generator = torch.Generator().manual_seed(seed)

        def train_epoch() -> float:
            model.train()
            order = torch.randperm(len(x_train), generator=generator)
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                optimizer.zero_grad()
                F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
                optimizer.step()
            model.eval()
            with torch.inference_mode():
                return (model(x_test).argmax(1) == y_test).float().mean().item()

        return train_epoch

    return start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="8,16,32,64,128,256,512", help="candidate batch sizes, comma-separated")
    ap.add_argument("--target", type=float, default=0.975, help="test accuracy to reach")
    ap.add_argument("--max-epochs", type=int, default=80)
    ap.add_argument("--eta", type=float, default=0.5)
    ap.add_argument("--beta", type=float, default=2.0)
    ap.add_argument(
        "--default-batch",
        type=int,
        default=64,
        help="the job's usual size (64: bench_optimize_digits' and DistillConfig's): explored first, compared with",
    )
    ap.add_argument("--repeats", type=int, default=3, help="exhaustive passes")
    ap.add_argument("--trials", type=int, default=3, help="optimizer trials (explore + recurring), fresh each")
    ap.add_argument("--recurring", type=int, default=6, help="runs after exploration (Thompson sampling)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="where to write results (default benchmarks/results)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    import torch

    from wattprint.optimize.batch_size import BatchSizeOptimizer, MonitorMeter, energy_time_cost, epoch_fit

    torch.set_num_threads(1)  # a shared 2-core machine: one thread keeps the timings comparable
    sizes = [int(s) for s in args.sizes.split(",")]
    etas = sorted({0.0, args.eta, 1.0})
    eta_key = str(args.eta)
    info = machine_info()
    x_train, x_test, y_train, y_test = data()
    start = make_start(x_train, y_train, x_test, y_test, args.seed)
    fit = epoch_fit(start, args.target, max_epochs=args.max_epochs)
    meter = MonitorMeter(interval_s=0.5)
    max_power_w = meter.max_power_w()
    default_batch = args.default_batch if args.default_batch in sizes else None
    t_begin = time.perf_counter()

    def exhaustive_pass(rep: int) -> None:
        for size in sizes if rep % 2 == 0 else list(reversed(sizes)):
            train_epoch = start(size)
            t0, e0 = meter.read()
            epochs, metric = 0, 0.0
            while epochs < args.max_epochs:
                metric = train_epoch()
                epochs += 1
                if metric >= args.target:
                    break
            t1, e1 = meter.read()
            reached = metric >= args.target
            passes[size].append(
                {"energy_j": e1 - e0, "time_s": t1 - t0, "epochs": epochs, "metric": metric, "reached": reached}
            )
            print(f"exhaustive {rep + 1}: batch {size}: {epochs} epochs, {e1 - e0:.1f} J, {t1 - t0:.2f} s", flush=True)

    def trial(n: int) -> dict[str, Any]:
        opt = BatchSizeOptimizer(
            sizes,
            eta=args.eta,
            beta=args.beta,
            max_power_w=max_power_w,
            default_batch_size=default_batch,
            seed=args.seed,
            meter=meter,
        )
        explored = opt.explore(fit)
        recurring = [opt.run(fit).batch_size for _ in range(args.recurring)]
        print(f"trial {n + 1}: pick {explored.best_batch_size}, then {recurring}", flush=True)
        return {"explored": explored, "recurring": recurring, "final": opt.result(), "state": opt.to_dict()}

    # 1 and 2, alternating: exhaustive pass, optimizer trial, exhaustive pass, ...
    passes: dict[int, list[dict[str, Any]]] = {b: [] for b in sizes}
    trials: list[dict[str, Any]] = []
    for rep in range(max(args.repeats, args.trials)):
        if rep < args.repeats:
            exhaustive_pass(rep)
        if rep < args.trials:
            trials.append(trial(rep))
    plain = BatchSizeOptimizer(
        sizes, eta=args.eta, beta=args.beta, max_power_w=max_power_w, seed=args.seed, meter=meter
    )
    plain_explored = plain.explore(fit)
    elapsed = time.perf_counter() - t_begin
    method, describe = meter.method, meter.describe()
    meter.close()

    exhaustive: dict[int, dict[str, Any]] = {}
    for size, runs in passes.items():
        energy = statistics.median(r["energy_j"] for r in runs)
        seconds = statistics.median(r["time_s"] for r in runs)
        exhaustive[size] = {
            "energy_j": energy,
            "time_s": seconds,
            "epochs": runs[0]["epochs"],
            "reached": all(r["reached"] for r in runs),
            "cost": {str(eta): energy_time_cost(energy, seconds, eta, max_power_w) for eta in etas},
            "passes": runs,
        }
    converged = [b for b in sizes if exhaustive[b]["reached"]]
    if not converged:
        print(f"no batch size reached {args.target}: nothing to compare", file=sys.stderr)
        return 1

    def best_for(eta: float) -> int:
        return min(converged, key=lambda b: exhaustive[b]["cost"][str(eta)])

    def ratio(size: int | None) -> float:
        return exhaustive[size]["cost"][eta_key] / best_cost if size is not None else float("nan")

    best = best_for(args.eta)
    best_cost = exhaustive[best]["cost"][eta_key]
    sweep_cost = sum(exhaustive[b]["cost"][eta_key] for b in sizes)  # one exhaustive pass, priced alike
    for t in trials:
        explored = t["explored"]
        stopped = {r.batch_size: r for r in explored.runs if r.stopped_early}
        t["pick"] = explored.best_batch_size
        t["pick_ratio"] = ratio(t["pick"])
        t["stopped"] = sorted(stopped)
        t["saved"] = sum(
            r.cost * (exhaustive[b]["epochs"] - r.info["epochs"]) / r.info["epochs"] for b, r in stopped.items()
        )
        t["skipped"] = {b: f"{r.info['epochs']}/{exhaustive[b]['epochs']} epochs" for b, r in stopped.items()}
        t["price_in_best_runs"] = explored.total_cost / best_cost
    picks = [t["pick"] for t in trials]
    finals = [t["final"].best_batch_size for t in trials]
    hits = sum(p == best for p in picks)
    all_runs = [r for t in trials for r in t["final"].runs] + plain_explored.runs
    epochs_match = all(r.info.get("epochs") == exhaustive[r.batch_size]["epochs"] for r in all_runs if r.reached)
    plain_pick = plain_explored.best_batch_size
    plain_stopped = sorted(r.batch_size for r in plain_explored.runs if r.stopped_early)

    headers = [
        "batch",
        "epochs",
        "energy-to-target J",
        "time-to-target s",
        *(f"cost eta={eta:g}" for eta in etas),
        f"x best (eta={args.eta:g})",
        "exploration, trial 1 (default first)",
    ]
    rows = []
    first = trials[0]["explored"] if trials else None
    for size in sizes:
        ex = exhaustive[size]
        state = "-"
        run = next((r for r in first.runs if r.batch_size == size), None) if first is not None else None
        if run is not None:
            state = (
                f"stopped at {run.cost:.1f} ({run.info.get('epochs')} ep)"
                if run.stopped_early
                else (f"reached, {run.cost:.1f}" if run.reached else f"failed, {run.cost:.1f}")
            )
        label = (
            f"{size}" + (" *" if size == best else "") + (" (pick)" if first and size == first.best_batch_size else "")
        )
        rows.append(
            [
                label,
                ex["epochs"] if ex["reached"] else f">{args.max_epochs}",
                f"{ex['energy_j']:.1f}",
                f"{ex['time_s']:.2f}",
                *(f"{ex['cost'][str(eta)]:.1f}" for eta in etas),
                f"{ex['cost'][eta_key] / best_cost:.2f}",
                state,
            ]
        )
    title = (
        f"Batch sizes to {args.target:.3f} test accuracy (exhaustive medians of {args.repeats}; "
        f"MAXPOWER {max_power_w:.0f} W; energy {method}); * exhaustive best at eta={args.eta:g}"
    )
    print_table(title, headers, rows)
    trial_headers = [
        "trial",
        "pick",
        "pick x best",
        "exploration cost",
        "in best runs",
        "stopped early",
        "saved (est.)",
        "then",
    ]
    trial_rows = [
        [
            i + 1,
            t["pick"],
            f"{t['pick_ratio']:.3f}",
            f"{t['explored'].total_cost:.1f}",
            f"{t['price_in_best_runs']:.2f}",
            ", ".join(f"{b} ({t['skipped'][b]})" for b in t["stopped"]) or "none",
            f"{t['saved']:.1f}",
            " ".join(map(str, t["recurring"])),
        ]
        for i, t in enumerate(trials)
    ]
    print_table(
        f"Optimizer trials (eta {args.eta:g}, beta {args.beta:g}, default {default_batch})", trial_headers, trial_rows
    )

    summary = [
        f"Exhaustive best at eta={args.eta:g}: batch {best} (cost {best_cost:.1f}); at eta=0 (time only): batch "
        f"{best_for(0.0)}; at eta=1 (energy only): batch {best_for(1.0)}.",
        f"Optimizer's pick after exploration: {picks} over {len(trials)} trial(s): the exhaustive best in {hits}; "
        "the pick's exhaustive cost is " + ", ".join(f"{t['pick_ratio']:.3f}x" for t in trials) + " the best's.",
        f"After exploration, recurring runs by Thompson sampling chose {[t['recurring'] for t in trials]}; the "
        f"best by mean cost after them: {finals} (the exhaustive best in {sum(f == best for f in finals)}).",
        "Price of exploration (every run's cost, stopped runs at the cost they ran up): "
        + ", ".join(f"{t['price_in_best_runs']:.2f}" for t in trials)
        + f" runs of the best; an exhaustive pass costs {sweep_cost / best_cost:.2f} runs of the best.",
        f"Early stop (beta {args.beta:g}) stopped {[t['stopped'] for t in trials]}, saving "
        + ", ".join(f"{t['saved']:.1f}" for t in trials)
        + " (estimated from the epochs they did not run).",
        f"Without a default (seeded order {plain.order}): pick batch {plain_pick} ({ratio(plain_pick):.3f}x the "
        f"best's exhaustive cost), exploration {plain_explored.total_cost / best_cost:.2f} runs of the best, "
        f"stopped early: {plain_stopped or 'none'}.",
    ]
    if default_batch is not None and exhaustive[default_batch]["reached"]:
        d, b = exhaustive[default_batch], exhaustive[best]
        summary.append(
            f"The exhaustive best against the default batch {default_batch}: energy "
            f"x{b['energy_j'] / d['energy_j']:.2f}, time x{b['time_s'] / d['time_s']:.2f}, "
            f"cost x{best_cost / d['cost'][eta_key]:.2f}."
        )
    summary += [
        "Epochs to target identical in every exhaustive and optimizer run (same seeds): "
        + ("yes: the sizes differ only in measured energy and time, not in the training." if epochs_match else "no."),
        "Energy: "
        + "; ".join(f"{c}: {d['method']} ({d['source']}: {d['detail']})" for c, d in describe.items())
        + ". With the CPU/RAM model, energy follows this process's CPU time, so energy and time rank the sizes "
        "alike and eta barely moves the choice; time is wall time, which other jobs on this shared 2-core machine "
        "stretch (load average at start in the machine section).",
        f"Wall time of the benchmark: {elapsed:.0f} s.",
    ]
    for line in summary:
        print(line)

    result = {
        "benchmark": "batch_size",
        "machine": info,
        "settings": {
            "sizes": sizes,
            "target": args.target,
            "max_epochs": args.max_epochs,
            "eta": args.eta,
            "beta": args.beta,
            "default_batch": default_batch,
            "repeats": args.repeats,
            "trials": args.trials,
            "recurring": args.recurring,
            "seed": args.seed,
            "lr": LR,
            "torch_threads": 1,
        },
        "energy_method": method,
        "energy": describe,
        "max_power_w": max_power_w,
        "exhaustive": {str(k): v for k, v in exhaustive.items()},
        "exhaustive_best": {
            "eta": args.eta,
            "batch_size": best,
            "cost": best_cost,
            "by_eta": {str(e): best_for(e) for e in etas},
        },
        "trials": [
            {
                "pick": t["pick"],
                "pick_is_best": t["pick"] == best,
                "pick_cost_ratio_to_best": t["pick_ratio"],
                "exploration": t["explored"].to_dict(),
                "exploration_cost_in_best_runs": t["price_in_best_runs"],
                "stopped_early": t["stopped"],
                "early_stop_saved": t["saved"],
                "recurring_picks": t["recurring"],
                "best_after_recurring": t["final"].best_batch_size,
                "final": t["final"].to_dict(),
                "state": t["state"],
            }
            for t in trials
        ],
        "picks_best": f"{hits}/{len(trials)}",
        "exhaustive_pass_cost_in_best_runs": sweep_cost / best_cost,
        "without_default": {
            "order": plain.order,
            "pick": plain_pick,
            "pick_cost_ratio_to_best": ratio(plain_pick),
            "exploration": plain_explored.to_dict(),
            "exploration_cost_in_best_runs": plain_explored.total_cost / best_cost,
        },
        "epochs_match": epochs_match,
        "summary": summary,
        "wall_s": elapsed,
    }
    md = "\n\n".join(
        [
            "# Batch-size optimizer on the digits CNN",
            "\n\n".join(__doc__.strip().split("\n\n")[1:]),  # the docstring after its title: usage and method
            f"## {title}",
            markdown_table(headers, rows),
            "## Optimizer trials",
            markdown_table(trial_headers, trial_rows),
            "## Summary",
            "\n".join(f"- {line}" for line in summary),
            "## Machine",
            machine_markdown(info),
        ]
    )
    path = write_results("batch_size", result, md, args.out)
    print(f"results: {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
