"""Inference energy: per query and per token, per batch size, on a fixed task suite, rated and labelled.

    from wattprint.bench import run_bench, load_workload, CallableWorkload
    result = run_bench(CallableWorkload(model_fn), inputs, batch_sizes=(1, 8, 32))
    result.document["results"][0]["energy_j_per_query"]

`wattprint bench` is the command-line face (see README). Heavy libraries load only when a model is loaded.
"""

from __future__ import annotations

from wattprint.bench.models import load_workload
from wattprint.bench.runner import BenchResult, run_bench
from wattprint.bench.workloads import CallableWorkload, Done, PhasedWorkload, Workload

__all__ = ["BenchResult", "CallableWorkload", "Done", "PhasedWorkload", "Workload", "load_workload", "run_bench"]
