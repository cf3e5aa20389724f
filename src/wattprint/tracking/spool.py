"""Records the store could not take, kept on disk until a store does.

A run whose store never answered while it ran (a server down all along, a read-only database) would lose
its record when the process exits. At stop() the tracker writes it here instead, as the record's JSON, and
the next tracker that reaches a store stores every waiting record there (as it was; flagged so), then
removes the file. The folder is WATTPRINT_HOME/unsaved: a home that cannot be written either loses the
record, said in one line (a shared temporary folder would hand one user's or one test's runs to another's
store).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattprint.files import write_atomic

if TYPE_CHECKING:
    from wattprint.record import RunRecord

log = logging.getLogger("wattprint")

SPOOL_NOTE = "stored later from the spool: the store did not answer while the run was tracked"


def spool_dir(home: Path) -> Path:
    """Where unsaved records wait."""
    return home / "unsaved"


def spool(record: RunRecord, home: Path) -> Path | None:
    """Write `record` where a later tracker will find it; the file, or None where it could not be written."""
    folder = spool_dir(home)
    path = folder / f"{record.run_id}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, record.to_json(), "spool", mode=0o600)  # may hold a command line: the owner's only
    except Exception as exc:  # a folder in the way, no permission...: said by the caller, never raised
        log.debug("cannot spool run %s to %s: %s", record.run_id, folder, exc)
        return None
    return path


def store_spooled(store: Any, home: Path) -> int:
    """Save every spooled record into `store` and remove its file; how many were stored. A record that
    cannot be read is left where it is (and logged), one that the store refuses too."""
    from wattprint.record import RunRecord

    stored = 0
    folder = spool_dir(home)
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            try:
                record = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
                why = record.degraded.get("store")
                record.degraded["store"] = f"{SPOOL_NOTE} ({why})" if why else SPOOL_NOTE
                store.save(record)
                path.unlink(missing_ok=True)  # another process may have stored it at the same time
                stored += 1
            except Exception as exc:  # one bad file must not keep the others (or the run) from the store
                log.warning("wattprint: spooled record %s not stored: %s", path, exc)
    if stored:
        log.warning("wattprint: stored %d record(s) kept while the store did not answer", stored)
    return stored
