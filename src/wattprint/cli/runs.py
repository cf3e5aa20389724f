"""`wattprint runs list|show|export`: read the run store."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from wattprint.cli.common import check_output_path, fail, open_configured_store, print_json, write_atomic
from wattprint.status import STATUSES

MAX_LIMIT = 10_000_000  # larger is no limit in practice, and overflows SQL integers past 2**63
TABLE_DEFAULT_LIMIT = 50  # a terminal table of 100,000 runs helps nobody, and took 40 s

app = typer.Typer(help="List, show and export stored runs.", no_args_is_help=True, rich_markup_mode=None)


@app.command("list")
def list_runs(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array of run records."),
    status: str = typer.Option(None, "--status", help=f"Only runs with this status: {', '.join(STATUSES)}."),
    name: str = typer.Option(None, "--name", help="Only runs with this name."),
    limit: int = typer.Option(None, "--limit", help="At most this many runs, newest first (table default 50)."),
    db: str = typer.Option(None, "--db", help="Store URL (default: WATTPRINT_DB or SQLite in WATTPRINT_HOME)."),
) -> None:
    """List stored runs, newest first."""
    if status is not None and status not in STATUSES:
        fail("--status", f"got {status!r}; expected one of {', '.join(STATUSES)}")
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        fail("--limit", f"got {limit}; expected an integer from 1 to {MAX_LIMIT:,}")
    with open_configured_store(db) as store:
        if as_json:  # the stored documents as they are: no record object per run
            sys.stdout.write("[" + ",\n".join(store.list_json(status=status, name=name, limit=limit)) + "]\n")
            return
        shown = limit if limit is not None else TABLE_DEFAULT_LIMIT
        records = store.list(status=status, name=name, limit=shown)
        total = store.count(status=status, name=name) if limit is None and len(records) == shown else None
    from wattprint.cli.render import print_table, runs_table

    print_table(runs_table(records))
    if total is not None and total > shown:
        print(f"{shown} newest of {total:,} runs shown; --limit N for more, --json for all")


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="Run id or a unique prefix of it."),
    as_json: bool = typer.Option(False, "--json", help="Print the run record as JSON."),
    db: str = typer.Option(None, "--db", help="Store URL."),
) -> None:
    """Show one run."""
    with open_configured_store(db) as store:
        record = store.get(run_id)
    if as_json:
        print_json(record.to_json_dict())
        return
    from wattprint.cli.render import print_table, record_table

    print_table(record_table(record))


@app.command("export")
def export(
    fmt: str = typer.Option(
        "json", "--format", "-f", help="json, csv, or codecarbon (CodeCarbon's emissions.csv columns)."
    ),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Replace an output file that wattprint did not write."),
    status: str = typer.Option(None, "--status", help="Only runs with this status."),
    db: str = typer.Option(None, "--db", help="Store URL."),
) -> None:
    """Export all runs (JSON array of records, CSV with one row per run, or CodeCarbon's emissions.csv)."""
    if fmt not in ("json", "csv", "codecarbon"):
        fail("--format", f"got {fmt!r}; expected json, csv or codecarbon")
    if status is not None and status not in STATUSES:
        fail("--status", f"got {status!r}; expected one of {', '.join(STATUSES)}")
    if output is not None:
        from wattprint.store.export import CODECARBON_COLUMNS, CSV_COLUMNS

        headers = (",".join(CSV_COLUMNS), ",".join(CODECARBON_COLUMNS))
        output = check_output_path(output, force=force, also=lambda text: str(text).startswith(headers))
    with open_configured_store(db) as store:
        records = store.list(status=status)
        if fmt == "codecarbon":
            from wattprint.store.export import export_codecarbon

            text = export_codecarbon(records)
        else:
            text = store.export_json(records) if fmt == "json" else store.export_csv(records)
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        write_atomic(output, text)
