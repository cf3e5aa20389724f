"""`wattprint bench`: energy per query (and per token) of a model on a fixed task, per batch size.

Thin: check the options, load the workload, call `wattprint.bench.run_bench`, rate it against a reference
table, write the label, print. `--json` prints exactly one JSON document (the contract in README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from wattprint.cli.common import check_output_path, fail, parse_batch_sizes, print_json, write_atomic


def bench(
    task: str = typer.Option(
        None,
        "--task",
        help="feature-extraction (default), text-classification, fill-mask or text-generation.",
    ),
    model: str = typer.Option(
        None,
        "--model",
        help="all-MiniLM-L6-v2, tiny-gpt, or a local model directory (default: the task's suite model).",
    ),
    batch_sizes: str = typer.Option(None, "--batch-sizes", help="Comma-separated batch sizes (default 1,8,32)."),
    queries: int = typer.Option(None, "--queries", help="Queries per batch size (default: the task's suite count)."),
    repeats: int = typer.Option(4, "--repeats", help="Groups per batch size whose spread is reported."),
    warmup_batches: int = typer.Option(2, "--warmup", help="Warm-up batches per batch size, before the run starts."),
    new_tokens: int = typer.Option(32, "--new-tokens", help="Tokens generated per prompt (text-generation)."),
    max_length: int = typer.Option(128, "--max-length", help="Longest input in tokens; longer ones are cut."),
    idle_s: float = typer.Option(2.0, "--idle-s", help="Seconds over which idle power is read first (0: skip)."),
    subtract_idle: bool = typer.Option(False, "--subtract-idle", help="Also report energy above idle power."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
    device: str = typer.Option("cpu", "--device", help="torch device: cpu, cuda, cuda:1, ..."),
    url: str = typer.Option(
        None, "--endpoint", help="Benchmark a running OpenAI-compatible server at this URL instead (with --pid)."
    ),
    pid: int = typer.Option(None, "--pid", help="The server's process id: its process tree is measured."),
    api: str = typer.Option("embeddings", "--api", help="With --endpoint: embeddings or completions."),
    concurrency: int = typer.Option(4, "--concurrency", help="With --endpoint: requests in flight at most."),
    rate_qps: float = typer.Option(None, "--rate", help="With --endpoint: requests per second (open loop)."),
    max_tokens: int = typer.Option(16, "--max-tokens", help="With --endpoint --api completions: tokens per prompt."),
    reference: str = typer.Option(
        "store",
        "--reference",
        help="Star ratings against: 'store' (past bench runs of the task), a CSV file, or 'none'.",
    ),
    label: Path = typer.Option(None, "--label", help="Write an SVG energy label to this file."),
    label_batch_size: int = typer.Option(
        None, "--label-batch-size", help="Batch size the label shows (default: largest)."
    ),
    name: str = typer.Option(None, "--name", help="Run name (default 'bench TASK')."),
    output: Path = typer.Option(None, "-o", "--output", help="Also write the JSON document to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    force: bool = typer.Option(False, "--force", help="Replace an output file that wattprint did not write."),
) -> None:
    """Measure energy per query (and per token), latency and throughput of a model on a fixed task.

    Every result is one run in the store, with one window per batch size; warm-up happens before the run.
    Energy per query says whether it was measured or estimated.
    """
    from wattprint.bench.models import BUILT_IN, check_task, load_workload
    from wattprint.bench.runner import check_batch_sizes, check_measure_args, run_bench
    from wattprint.bench.suite import inputs_id, sentences, suite_task

    if (url is None) != (pid is None):
        fail("--pid" if pid is None else "--endpoint", "--endpoint and --pid go together; accepted: both or neither")
    target = None
    if url is not None:
        from wattprint.bench.endpoint import Endpoint

        local_only = {"--task": task, "--threads": threads, "--device": device != "cpu" or None,
                      "--new-tokens": new_tokens != 32 or None, "--max-length": max_length != 128 or None}  # fmt: skip
        for flag, value in local_only.items():
            if value is not None:
                fail(flag, "applies to a local model, not to --endpoint (the server decides)")
        target = Endpoint(url, pid, api=api, model=model or "default", max_tokens=max_tokens)
        task = "text-generation" if api == "completions" else "feature-extraction"  # the suite's inputs
    task = task or "feature-extraction"
    # everything is checked before the model loads: a typo costs no time and writes nothing
    check_task(task)
    spec = suite_task(task)
    model = model or spec.model
    sizes = check_batch_sizes(parse_batch_sizes(batch_sizes) or list(spec.batch_sizes))
    check_measure_args(repeats, warmup_batches, idle_s, subtract_idle)
    count = spec.queries if queries is None else queries
    if count < 1:
        fail("--queries", f"{count}; accepted: an integer >= 1")
    if threads is not None and threads < 1:
        fail("--threads", f"{threads}; accepted: an integer >= 1")
    if target is None and model not in BUILT_IN and not (Path(model).expanduser() / "config.json").is_file():
        fail("--model", f"{model!r}; accepted: {', '.join(BUILT_IN)} or a local model directory holding a config.json")
    if label_batch_size is not None and label_batch_size not in sizes:
        fail("--label-batch-size", f"{label_batch_size}; accepted: one of the measured batch sizes {sizes}")
    references_csv: list[Any] | None = None
    if reference not in ("store", "none"):  # a CSV is read now: a bad one stops everything before the run
        references_csv = _references(reference)
    for path, flag in ((output, "-o"), (label, "--label")):
        if path is not None:
            check_output_path(path, flag, force=force, also=_bench_document)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    def refs() -> list[Any] | None:
        """The reference table; the store's is read after the run, which may be the store's first."""
        if reference in ("store", "none"):
            return _references(reference)
        return references_csv

    common: dict[str, Any] = dict(
        batch_sizes=sizes,
        queries=count,
        repeats=repeats,
        warmup_batches=warmup_batches,
        idle_s=idle_s,
        subtract_idle=subtract_idle,
        progress=None if quiet or as_json and not _stderr_tty() else _bar(),
    )
    if target is not None:
        from wattprint.bench.endpoint import run_endpoint_bench

        result = run_endpoint_bench(
            target,
            sentences(),
            concurrency=concurrency,
            rate_qps=rate_qps,
            name=name or f"bench endpoint {api}",
            inputs_id=inputs_id(task, count, max_tokens if api == "completions" else None),
            **common,
        )
    else:
        workload = load_workload(task, model, max_length=max_length, new_tokens=new_tokens, device=device)
        result = run_bench(
            workload,
            sentences(),
            name=name or f"bench {task}",
            inputs_id=inputs_id(task, count, new_tokens, max_length),
            **common,
        )
    _finish(result.document, refs(), output, label, label_batch_size, as_json)


def _finish(
    document: dict[str, Any],
    references: list[Any] | None,
    output: Path | None,
    label: Path | None,
    label_batch_size: int | None,
    as_json: bool,
) -> None:
    """Rate, write the files asked for, print."""
    _rate(document, references)
    if output is not None:
        write_atomic(output, json.dumps(document, indent=2) + "\n", "-o")
    if label is not None:
        from wattprint.bench.label import render_label

        write_atomic(label, render_label(document, batch_size=label_batch_size), "--label")
    if as_json:
        print_json(document)
        return
    from wattprint.cli.render import print_table

    print_table(_table(document))


def _bench_document(document: object) -> bool:
    """Whether parsed JSON is this command's document (JSON has no room for a generated-by mark)."""
    return isinstance(document, dict) and {"results", "energy_method", "run_id"} <= document.keys()


def _stderr_tty() -> bool:
    import sys

    return sys.stderr.isatty()


def _references(reference: str) -> list[Any] | None:
    """The reference rows for star ratings; None for 'none'. A CSV is read (and checked) before the run, the
    store after it."""
    from wattprint.bench import stars

    if reference == "none":
        return None
    if reference == "store":
        from wattprint.cli.common import open_configured_store

        try:
            with open_configured_store() as store:
                # every finished run with a benchmark, whatever its name; rate() keeps the same task and inputs
                return stars.references_from_records(r for r in store.list(status="finished") if r.bench)
        except Exception:  # the run is done and stored: a store that cannot be read now leaves it unrated
            return []
    if not Path(reference).expanduser().is_file():
        fail("--reference", f"{reference!r} is not a file; accepted: store, none, or a CSV file")
    return stars.references_from_csv(Path(reference).expanduser())


def _rate(document: dict[str, Any], references: list[Any] | None) -> None:
    """Add a "rating" to every result (None when no reference table was asked for)."""
    from wattprint.bench.stars import rate

    for result in document["results"]:
        result["rating"] = (
            None
            if references is None
            else rate(
                document["model"],
                document["task"],
                document["inputs"]["id"],
                result["batch_size"],
                result["kwh_per_1k_queries"],
                references,
            )
        )


def _bar() -> Any:
    """A rich progress bar on stderr, refreshed twice a second (it runs inside the measured process)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        refresh_per_second=2,
        transient=True,
    )
    state: dict[str, Any] = {}

    def update(what: str, done: int, total: int) -> None:
        if "task" not in state:
            bar.start()
            state["task"] = bar.add_task(what, total=total)
        bar.update(state["task"], completed=done, description=what)
        if done >= total:
            bar.stop()

    return update


def _table(doc: dict[str, Any]) -> Any:
    """One row per batch size."""
    from rich.table import Table

    from wattprint.report.values import fmt_energy, fmt_mass, sig

    gen = any("j_per_decode_token" in r for r in doc["results"])
    table = Table(title=f"wattprint bench: {doc['task']} on {doc['model']} ({doc['energy_method']})")
    columns = ["batch", "queries", "J/query", "range", "energy/1k q", "CO2e/1k q", "p50 ms", "p95 ms", "q/s", "spread"]
    if gen:
        columns += ["J/prefill tok", "J/decode tok", "TTFT ms"]
    columns.append("stars")
    for column in columns:
        table.add_column(column, justify="right")
    for r in doc["results"]:
        rating = r.get("rating") or {}
        row = [
            str(r["batch_size"]),
            f"{r['queries']:,}",
            sig(r["energy_j_per_query"]),
            f"{sig(r['energy_j_per_query_range'][0], 2)}-{sig(r['energy_j_per_query_range'][1], 2)}",
            fmt_energy(r["kwh_per_1k_queries"]),
            fmt_mass(r["co2e_g_per_1k_queries"] / 1000.0),
            f"{r['latency_ms']['p50']:.1f}",
            f"{r['latency_ms']['p95']:.1f}",
            f"{r['throughput_qps']:.1f}",
            "-" if r["spread_pct"] is None else f"{r['spread_pct']:.1f}%",
        ]
        if gen:
            row += [sig(r["j_per_prefill_token"]), sig(r["j_per_decode_token"]), f"{r['ttft_ms']:.1f}"]
        row.append("-" if rating.get("stars") is None else "*" * rating["stars"])
        table.add_row(*row)
    idle = doc.get("idle_power_w")
    table.caption = (
        f"run {doc['run_id'][:12]}; idle power {idle:.2f} W "
        f"({'subtracted' if doc['idle_subtracted'] else 'not subtracted'}); "
        f"spread = (max - min) / mean of J/query over {doc['repeats']} groups"
        if idle is not None
        else f"run {doc['run_id'][:12]}"
    )
    return table
