"""wattprint: measure, account for, report and reduce the energy and carbon of ML work.

The public surface is small and cheap to import; heavy libraries load only where used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wattprint._lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["FlopReport", "RunRecord", "Tracker", "__version__", "count_flops", "estimate", "track"]

if TYPE_CHECKING:
    from wattprint.accounting.estimate import estimate
    from wattprint.flops import FlopReport, count_flops
    from wattprint.record import RunRecord
    from wattprint.tracking.tracker import Tracker, track

_LAZY = {
    "Tracker": "wattprint.tracking.tracker",
    "track": "wattprint.tracking.tracker",
    "RunRecord": "wattprint.record",
    "estimate": "wattprint.accounting.estimate",
    "count_flops": "wattprint.flops",
    "FlopReport": "wattprint.flops",
}


__getattr__ = lazy_exports(__name__, _LAZY)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext wattprint`: the `%wattprint` / `%%wattprint` magics (IPython is imported only here)."""
    from wattprint.integrations.jupyter import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext wattprint`: finish a whole-notebook run that is still open."""
    from wattprint.integrations.jupyter import unload_ipython_extension as unload

    unload(ipython)
