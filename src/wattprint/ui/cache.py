"""What the dashboard keeps between requests: the runs as records, and the pages made from them.

Parsing every stored run into a record took 0.7 s per request with 10,000 runs, and rendering the runs page
tens of milliseconds more: 200 concurrent requests queued for minutes. The runs are read again only when
the store's signature changes (a run added or changing status; asked at most every `check_every_s`) or
`max_age_s` has passed (so the figures of running runs, which checkpoint without changing the signature,
are at most that old); a page is kept for as long as the runs it was made from.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from wattprint.record import RunRecord

MAX_AGE_S = 5.0
CHECK_EVERY_S = 0.5  # the store's signature is asked at most this often
MAX_PAGES = 64
MAX_PAGE_BYTES = 1 << 20  # a larger response (an API call asking for thousands of runs) is made each time

Version = tuple[Any, ...]


class RunsCache:
    """The store's runs, newest first, and pages made from them, shared by the app's request threads."""

    def __init__(
        self,
        store: Any,
        max_age_s: float = MAX_AGE_S,
        check_every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age_s = max_age_s
        self._check_every_s = check_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._records: list[RunRecord] | None = None
        self._signature: tuple[Any, ...] | None = None
        self._read_at = self._checked_at = 0.0
        self._pages: OrderedDict[tuple[str, Version], Any] = OrderedDict()
        self._making: dict[tuple[str, Version], threading.Event] = {}
        self._failed: dict[tuple[str, Version], BaseException] = {}

    def records(self) -> tuple[list[RunRecord], Version]:
        """All runs (re-read when stale) and the version they are: one reader at a time, the others wait for it."""
        with self._lock:
            now = self._clock()
            if self._records is not None and now - self._checked_at < self._check_every_s:
                return self._records, (self._signature, self._read_at)  # a burst asks the store once
            signature = self._store.signature()
            self._checked_at = now
            if self._records is None or signature != self._signature or now - self._read_at > self._max_age_s:
                self._records = self._store.list()
                self._signature, self._read_at = signature, now
                self._pages.clear()
                self._failed.clear()
            return self._records, (self._signature, self._read_at)

    def page(self, key: str, make: Callable[[list[RunRecord]], Any]) -> Any:
        """The response for `key` (a page's normalised address), made by `make(records)` once per version of
        the runs: concurrent requests for a page being made wait for it instead of making it again (a run
        page's charts take ~0.2 s), and share its failure if it fails."""
        records, version = self.records()
        slot = (key, version)
        while True:
            with self._lock:
                if slot in self._pages:
                    self._pages.move_to_end(slot)
                    return self._pages[slot]
                if slot in self._failed:
                    raise self._failed[slot]
                making = self._making.get(slot)
                if making is None:
                    making = self._making[slot] = threading.Event()
                    break
            making.wait()
        try:
            made = make(records)
        except Exception as exc:  # any failure is kept for the waiting requests, then re-raised
            with self._lock:
                self._failed[slot] = exc
            raise
        finally:
            with self._lock:
                self._making.pop(slot).set()
        with self._lock:
            current = (self._signature, self._read_at) == version
            if current and len(made) <= MAX_PAGE_BYTES:
                self._pages[slot] = made
                while len(self._pages) > MAX_PAGES:
                    self._pages.popitem(last=False)
        return made
