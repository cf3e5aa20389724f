"""Runs storage: SQLite (WAL) by default, PostgreSQL or any SQLAlchemy URL; JSON and CSV export.

with open_store(settings.db_url) as store:
    store.save(record, checkpoint_s=5.0)
    store.get("3f2a")            # exact id or unique prefix
    store.list(status="finished", limit=20)

Importing this package is cheap: SQLAlchemy loads with the first of these names used, so that
`store.first_row` (standard library only) can write a run's first row on the tracker's start path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattprint._lazy import lazy_exports

if TYPE_CHECKING:
    from wattprint.store.export import CSV_COLUMNS, export_csv, export_json
    from wattprint.store.sql import RunStore, open_store

__all__ = ["CSV_COLUMNS", "RunStore", "export_csv", "export_json", "open_store"]


__getattr__ = lazy_exports(
    __name__,
    {
        "RunStore": "wattprint.store.sql",
        "open_store": "wattprint.store.sql",
        "CSV_COLUMNS": "wattprint.store.export",
        "export_csv": "wattprint.store.export",
        "export_json": "wattprint.store.export",
    },
)
