"""`wattprint report RUN_ID...`: HTML, Markdown, LaTeX and model-card reports of stored runs.

With no output option the Markdown table goes to stdout. `--out-dir DIR` alone writes every format
with file names made from the run's (sanitised) name; `--html F` etc. choose the files, relative to
`--out-dir` when it is given, and can never land outside that directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from wattprint.cli.common import fail, open_configured_store
from wattprint.errors import WattprintInputError

if TYPE_CHECKING:  # the record model loads only when a report is made, not at CLI start-up
    from wattprint.record import RunRecord

KINDS = ("html", "md", "latex", "model_card")
_SUFFIX = {"html": ".html", "md": ".md", "latex": ".tex", "model_card": "-model-card.md"}
_FLAG = {"html": "--html", "md": "--md", "latex": "--latex", "model_card": "--model-card"}


def _load(run_ids: list[str], db: str | None) -> list[RunRecord]:
    """The runs in the order given (exact ids or unique prefixes), each once."""
    records: dict[str, RunRecord] = {}
    with open_configured_store(db) as store:
        for key in run_ids:
            record = store.get(key)
            records.setdefault(record.run_id, record)
    return list(records.values())


def _render(kind: str, records: list[RunRecord], metric: str, maximize: bool, existing: str | None = None) -> str:
    """The report's text; for a model card that exists already (`existing`), that card with ours merged in."""
    from wattprint.report import comparison_html, latex_table, markdown_table, merge_model_card, model_card, run_html

    if kind == "html":
        if len(records) == 1:
            return run_html(records[0])
        return comparison_html(records, metric=metric, maximize=maximize)
    if kind == "md":
        return markdown_table(records, metric=metric, maximize=maximize)
    if kind == "latex":
        return latex_table(records, metric=metric, maximize=maximize)
    return model_card(records) if existing is None else merge_model_card(existing, records)


def _existing_card(path: Path) -> str | None:
    """The text of a model card to merge into, None if there is none; one-line refusal if unreadable."""
    from wattprint.files import check_replaceable

    try:
        check_replaceable(path, "--model-card")
    except WattprintInputError as exc:
        fail("--model-card", exc.message)
    if not path.exists():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        fail("--model-card", f"cannot read the existing card {str(path)!r} to merge into ({reason})")
    return None


def report(
    run_ids: list[str] = typer.Argument(..., help="Run ids (or unique prefixes); several make a comparison."),
    html: str = typer.Option(None, "--html", help="Write the HTML report (one run: its page; several: comparison)."),
    md: str = typer.Option(None, "--md", help="Write the Markdown table."),
    latex: str = typer.Option(None, "--latex", help="Write the LaTeX table (booktabs)."),
    model_card_file: str = typer.Option(
        None,
        "--model-card",
        help="Write a Hugging Face model card with the Environmental Impact section; an existing file keeps "
        "its text and front matter: only that section and the co2_eq_emissions metadata are replaced or added.",
    ),
    out_dir: Path = typer.Option(
        None,
        "--out-dir",
        help="Directory for the reports (created if missing). Alone: write all formats, "
        "named after the run. File options are then relative to it and may not leave it.",
    ),
    metric: str = typer.Option("accuracy", "--metric", help="Metric to compare (logged with tracker.log)."),
    lower_is_better: bool = typer.Option(False, "--lower-is-better", help="The metric is a loss or error rate."),
    db: str = typer.Option(None, "--db", help="Store URL (default: WATTPRINT_DB or SQLite in WATTPRINT_HOME)."),
    force: bool = typer.Option(
        False, "--force", help="Replace a report file that wattprint did not write (a model card is always merged)."
    ),
) -> None:
    """Report stored runs: HTML page or comparison, Markdown/LaTeX tables, model-card section.

    With no output option the Markdown table is printed. File names may contain {name} and {run_id},
    replaced by sanitised values.
    """
    from wattprint.files import check_overwrite
    from wattprint.report.writer import output_path, safe_filename, write_report

    if not metric.strip():
        fail("--metric", "empty metric name; expected a metric logged with tracker.log, e.g. accuracy")
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        fail("--out-dir", f"{str(out_dir)!r} is not a directory")
    records = _load(run_ids, db)
    maximize = not lower_is_better
    asked = {"html": html, "md": md, "latex": latex, "model_card": model_card_file}
    wanted: dict[str, Any] = {k: v for k, v in asked.items() if v is not None}
    if not wanted and out_dir is None:
        typer.echo(_render("md", records, metric, maximize), nl=False)
        return
    if out_dir is not None:
        out_dir = out_dir.expanduser()
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail("--out-dir", f"cannot create {str(out_dir)!r}: {exc.strerror or exc}")
        if not wanted:
            wanted = dict.fromkeys(KINDS)
    if len(records) == 1:
        name, run_id = records[0].name, records[0].run_id
        stem = f"{safe_filename(name)}-{safe_filename(run_id[:8], 'id')}"
    else:
        name, run_id = "comparison", records[0].run_id
        stem = f"comparison-{len(records)}-runs"
    targets: dict[str, Path] = {}
    for kind, value in wanted.items():
        path = output_path(
            value, field=_FLAG[kind], out_dir=out_dir, default_name=stem + _SUFFIX[kind], name=name, run_id=run_id
        )
        for other, taken in targets.items():
            if taken.resolve() == path.resolve():
                fail(_FLAG[kind], f"{str(path)!r} is also the {_FLAG[other]} file; give different file names")
        if kind != "model_card":  # a model card is merged into, never replaced
            check_overwrite(path, _FLAG[kind], force)
        targets[kind] = path
    from wattprint._extras import MissingExtraError

    try:
        existing = {kind: _existing_card(path) if kind == "model_card" else None for kind, path in targets.items()}
        texts = {kind: _render(kind, records, metric, maximize, existing[kind]) for kind in targets}  # before any write
    except MissingExtraError as exc:
        fail(_FLAG["html"], str(exc))
    for kind, path in targets.items():
        write_report(path, texts[kind], directory=out_dir if out_dir is not None else path.parent)
        merged = " (merged into the existing card)" if existing[kind] is not None else ""
        typer.echo(f"wattprint: wrote {_FLAG[kind].lstrip('-')} report {path}{merged}")
