"""Runs storage: SQLite (WAL) by default, PostgreSQL or any SQLAlchemy URL; JSON and CSV export.

with open_store(settings.db_url) as store:
    store.save(record, checkpoint_s=5.0)
    store.get("3f2a")            # exact id or unique prefix
    store.list(status="finished", limit=20)
"""

from __future__ import annotations

from wattprint.store.sql import CSV_COLUMNS, RunStore, export_csv, export_json, open_store

__all__ = ["CSV_COLUMNS", "RunStore", "export_csv", "export_json", "open_store"]
