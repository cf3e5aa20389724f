"""`wattprint optimize MODEL_SCRIPT.py`: accuracy-aware search over efficiency recipes.

The script is a Python file that defines three functions (and optionally a fourth):

    def model() -> torch.nn.Module          # the trained fp32 model
    def eval_fn(model) -> float             # the metric to keep (higher is better unless --lower-is-better)
    def example_inputs()                    # a tensor or a tuple of tensors, batched along dimension 0
    def train_fn(model) -> None             # optional: fine-tunes pruned candidates in place

Thin: load the script, call `wattprint.optimize.search`, print a table (or one JSON document with --json).
Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import typer

from wattprint.cli.common import check_output_path, fail, parse_batch_sizes, print_json, split_list, write_atomic

REQUIRED = ("model", "eval_fn", "example_inputs")


def _search_document(document: object) -> bool:
    """Whether parsed JSON is this command's document (JSON has no room for a generated-by mark)."""
    return isinstance(document, dict) and {"baseline", "candidates", "pareto"} <= document.keys()


def load_script(path: Path) -> dict[str, Any]:
    """Run the user's script and return its model, eval_fn, example_inputs and optional train_fn."""
    if not path.is_file():
        fail("MODEL_SCRIPT", f"{str(path)!r} is not a file; accepted: a Python file defining {', '.join(REQUIRED)}")
    try:
        namespace = runpy.run_path(str(path), run_name="wattprint_optimize_script")
    except Exception as exc:  # the user's script may raise anything: one line, exit 2
        fail("MODEL_SCRIPT", f"{str(path)!r} failed to load: {type(exc).__name__}: {exc}".splitlines()[0])
    missing = [n for n in REQUIRED if not callable(namespace.get(n))]
    if missing:
        fail(
            "MODEL_SCRIPT",
            f"{str(path)!r} does not define {', '.join(missing)}(); accepted: a Python file "
            f"defining model(), eval_fn(model), example_inputs() and optionally train_fn(model)",
        )
    train_fn = namespace.get("train_fn")
    if train_fn is not None and not callable(train_fn):
        fail("MODEL_SCRIPT", "train_fn is not a function; accepted: train_fn(model) fine-tuning in place")
    try:
        model, inputs = namespace["model"](), namespace["example_inputs"]()
    except Exception as exc:  # the user's code may raise anything: one line, exit 2
        fail("MODEL_SCRIPT", f"model() or example_inputs() raised {type(exc).__name__}: {exc}".splitlines()[0])
    return {"model": model, "eval_fn": namespace["eval_fn"], "example_inputs": inputs, "train_fn": train_fn}


def optimize(
    script: Path = typer.Argument(..., help="Python file defining model(), eval_fn(model), example_inputs()."),
    recipes: str = typer.Option(
        None,
        "--recipes",
        help="Comma-separated recipes (default: bf16, fp16, int8, "
        "int8-dynamic, prune:0.5, prune:0.8, prune-channels:0.3/0.5/0.7).",
    ),
    no_combine: bool = typer.Option(False, "--no-combine", help="Do not add pruning + precision combinations."),
    max_drop: float = typer.Option(0.01, "--max-drop", help="Largest allowed metric drop, in the metric's units."),
    trials: int = typer.Option(None, "--trials", help="Trials to run now (default: every candidate not yet tried)."),
    storage: str = typer.Option(
        None,
        "--storage",
        help="Optuna storage URL shared by workers (sqlite:///f.db, postgresql+psycopg://...); default in memory.",
    ),
    study: str = typer.Option(None, "--study", help="Study name to create or continue (with --storage)."),
    batch_sizes: str = typer.Option(
        "1",
        "--batch-sizes",
        help="Comma-separated batch sizes for latency; the first is also used for energy per inference.",
    ),
    prefer: str = typer.Option(
        "energy", "--prefer", help="What the best candidate minimises: energy, latency, macs or size."
    ),
    lower_is_better: bool = typer.Option(False, "--lower-is-better", help="The metric is a loss, not a score."),
    energy_min_s: float = typer.Option(1.0, "--energy-min-s", help="Least seconds of each energy window."),
    rounds: int = typer.Option(
        3,
        "--rounds",
        help="Rounds of alternating baseline and candidate windows behind each energy and latency ratio and its "
        "range (0: one window each, no range, no verdict).",
    ),
    min_effect: float = typer.Option(
        0.15,
        "--min-effect",
        help="Least difference called a difference (0.15: 15 %), raised to the A/A control's worst round.",
    ),
    threads: int = typer.Option(
        None,
        "--threads",
        help="torch CPU threads while measuring (default: torch's; 1 gives steadier latencies on a shared machine).",
    ),
    output: Path = typer.Option(None, "-o", "--output", help="Also write the JSON document to this file."),
    html: Path = typer.Option(
        None, "--html", help="Also write a page with the metric-vs-energy Pareto front to this file."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    force: bool = typer.Option(False, "--force", help="Replace an output file that wattprint did not write."),
) -> None:
    """Try efficiency recipes on a model; keep those within --max-drop; print the Pareto front and the best.

    SCRIPT defines model(), eval_fn(model) -> float and example_inputs(), and may define train_fn(model) to
    fine-tune pruned candidates. Energy per inference says whether it was measured or estimated.
    """
    from wattprint.optimize import candidate_space, search
    from wattprint.optimize.harness import check_measure_inputs
    from wattprint.optimize.search import _check, check_storage_url

    # validate everything before loading (and training) the user's model
    recipe_list = split_list(recipes, "--recipes")
    sizes = parse_batch_sizes(batch_sizes) or []
    _check(max_drop, prefer, trials)
    check_measure_inputs(sizes, 0, 1, energy_min_s)
    candidate_space(recipe_list, combine=not no_combine)
    check_storage_url(storage)
    if study is not None and storage is None:
        fail("--study", "a study name needs --storage; accepted: --storage URL --study NAME")
    if not 0 <= rounds <= 100:
        fail("--rounds", f"{rounds}; accepted: an integer from 0 to 100")
    if not 0 <= min_effect < 1:  # NaN fails too
        fail("--min-effect", f"{min_effect}; accepted: a fraction from 0 to below 1")
    if threads is not None and threads < 1:
        fail("--threads", f"{threads}; accepted: an integer >= 1")
    if output is not None:
        output = check_output_path(output, force=force, also=_search_document)
    if html is not None:
        html = check_output_path(html, "--html", force=force)
        from wattprint._extras import require

        require("matplotlib", extra="report", feature="--html")
        require("jinja2", extra="report", feature="--html")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    loaded = load_script(script)
    result = search(
        loaded["model"],
        loaded["eval_fn"],
        loaded["example_inputs"],
        max_metric_drop=max_drop,
        recipes=recipe_list,
        combine=not no_combine,
        n_trials=trials,
        storage=storage,
        study_name=study,
        train_fn=loaded["train_fn"],
        higher_is_better=not lower_is_better,
        prefer=prefer,
        batch_sizes=sizes,
        energy_min_s=energy_min_s,
        progress=not quiet,
        paired_rounds=rounds,
        min_effect=min_effect,
    )
    document = result.to_json_dict()
    if output is not None:
        import json

        write_atomic(output, json.dumps(document, indent=2) + "\n")
    if html is not None:
        from wattprint.report.search_page import search_html

        page = search_html(document, title=f"wattprint optimize {script.name}", maximize=not lower_is_better)
        write_atomic(html, page)
    if as_json:
        print_json(document)
        return
    from wattprint.optimize import print_report

    print_report(result)
