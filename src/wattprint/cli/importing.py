"""`wattprint import codecarbon FILE`: another tool's history into the store, marked as imported."""

from __future__ import annotations

from pathlib import Path

import typer

from wattprint.cli.common import fail

app = typer.Typer(
    help="Bring other tools' runs into the store, marked as imported.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.command("codecarbon")
def codecarbon(
    file: Path = typer.Argument(..., help="CodeCarbon's emissions.csv."),
    db: str = typer.Option(None, "--db", help="Store URL (default: WATTPRINT_DB or SQLite in WATTPRINT_HOME)."),
) -> None:
    """One run per row of a CodeCarbon emissions.csv; importing a file again adds nothing twice."""
    from wattprint.config import load_settings
    from wattprint.errors import WattprintInputError
    from wattprint.store import open_store
    from wattprint.store.importing import records_from_codecarbon

    try:
        text = file.expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        fail("FILE", f"cannot read {str(file)!r} ({reason})")
    records = records_from_codecarbon(text, file.name)  # every row checked before anything is stored
    settings = load_settings(db=db)
    added = 0
    with open_store(settings.db_url, host=settings.host) as store:
        for record in records:
            try:
                store.get(record.run_id)
                continue  # imported before
            except WattprintInputError:
                pass
            store.save(record)
            added += 1
    typer.echo(f"wattprint: imported {added} run(s) from {file.name} ({len(records) - added} already in the store)")
