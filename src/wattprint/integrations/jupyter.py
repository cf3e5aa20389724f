"""Jupyter / IPython: `%load_ext wattprint`, then

    %%wattprint [NAME] [--region R] [--interval S] [--pue P]     track one cell, print a summary
    %wattprint start [NAME] [options]                              track the whole notebook from here,
    %wattprint status                                              with a window per cell;
    %wattprint stop                                                stop, print a summary and the costliest cells

Every run is stored like any other (`wattprint runs list`). The summary says how the energy was
obtained. A cell that fails still gets its run (status "failed"), and the cell still fails. A
wattprint fault in a cell window is logged and flagged on the record (`degraded["jupyter"]`).
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
from typing import Any

from wattprint._extras import require
from wattprint.errors import WattprintInputError
from wattprint.integrations._training import flag_fault, summary
from wattprint.report.values import fmt_energy

IPython = require("IPython", extra="jupyter", feature="the Jupyter magics")
from IPython.core.error import UsageError  # noqa: E402
from IPython.core.magic import Magics, line_cell_magic, magics_class  # noqa: E402

CELL_PREFIX = "cell "


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad magic arguments as IPython usage errors instead of exiting."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


def _parser(prog: str, with_action: bool) -> _Parser:
    parser = _Parser(prog=prog, add_help=False)
    if with_action:
        parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("name", nargs="?")
    parser.add_argument("--region")
    parser.add_argument("--interval", type=float)
    parser.add_argument("--pue", type=float)
    return parser


def _tracker(name: str, opts: argparse.Namespace) -> Any:
    """A Tracker with the magic's settings; bad settings become one-line usage errors."""
    from wattprint.tracking.tracker import Tracker

    given = {"region": opts.region, "interval": opts.interval, "pue": opts.pue}
    settings = {k: v for k, v in given.items() if v is not None}
    try:
        return Tracker(name, **settings)
    except WattprintInputError as exc:
        raise UsageError(f"wattprint: {exc}") from None


class CellFailed(Exception):
    """Re-raised after a tracked cell fails, so that the cell (and "Run All") still fails; shown as one line."""

    def _render_traceback_(self) -> list[str]:  # IPython shows this instead of a second traceback
        return [str(self)]


@magics_class
class WattprintMagics(Magics):
    """The `%wattprint` line magic and `%%wattprint` cell magic."""

    shell: Any  # IPython's Magics types it Optional; a registered magic always has its shell

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.notebook: Any = None  # the whole-notebook tracker, between start and stop
        self._window: str | None = None  # the open cell window, and the ExecutionInfo of its cell
        self._info: Any = None

    @line_cell_magic
    def wattprint(self, line: str, cell: str | None = None) -> None:
        try:
            tokens = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"wattprint: {exc}") from None
        if cell is None:
            self._line(_parser("%wattprint", with_action=True).parse_args(tokens))
        else:
            self._cell(_parser("%%wattprint", with_action=False).parse_args(tokens), cell)

    # -- one cell --------------------------------------------------------------------------------
    def _cell(self, opts: argparse.Namespace, cell: str) -> None:
        # IPython counts a notebook cell before running it: the cell's own number is one less
        tracker = _tracker(opts.name or f"{CELL_PREFIX}[{max(1, self.shell.execution_count - 1)}]", opts)
        tracker.start()
        try:
            result = self.shell.run_cell(cell, store_history=False)
        except KeyboardInterrupt:  # as the cell's own Ctrl-C below: the run is closed, then the error goes on
            tracker.stop("interrupted")
            raise
        except BaseException:  # anything else IPython lets through: the run is closed, then the error goes on
            tracker.stop("failed")
            raise
        error = result.error_before_exec or result.error_in_exec
        status = "finished" if error is None else ("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")
        record = tracker.stop(status)
        print(summary(record))
        if error is not None:
            raise CellFailed(
                f"wattprint: the cell failed ({type(error).__name__}); run {record.run_id[:8]} recorded as {status}"
            )

    # -- the whole notebook ----------------------------------------------------------------------
    def _line(self, opts: argparse.Namespace) -> None:
        if opts.action == "start":
            self._start(opts)
        elif opts.action == "stop":
            self._stop()
        else:
            self._status()

    def _start(self, opts: argparse.Namespace) -> None:
        if self.notebook is not None:
            raise UsageError("wattprint: already tracking this notebook; run `%wattprint stop` first")
        tracker = _tracker(opts.name or "notebook", opts)
        tracker.start()
        self.notebook = tracker
        self._window, self._info = None, None  # the `start` cell itself gets no window
        self.shell.events.register("pre_run_cell", self._pre_run_cell)
        self.shell.events.register("post_run_cell", self._post_run_cell)
        rec = tracker.record
        print(f"wattprint: tracking this notebook as {rec.name} [{rec.run_id[:8]}]; `%wattprint stop` to finish")

    def _stop(self) -> None:
        if self.notebook is None:
            raise UsageError("wattprint: not tracking this notebook; `%wattprint start` first")
        tracker, self.notebook = self.notebook, None
        self._unregister()
        record = tracker.stop("finished")
        print(summary(record))
        cells = sorted(
            (w for w in record.windows if str(w["name"]).startswith(CELL_PREFIX)),
            key=lambda w: w["energy_kwh"]["total"],
            reverse=True,
        )[:3]
        if cells:
            print(
                "wattprint: most energy: "
                + ", ".join(f"{w['name']} {fmt_energy(w['energy_kwh']['total'])}" for w in cells)
            )

    def _status(self) -> None:
        tracker = self.notebook
        if tracker is None:
            print("wattprint: not tracking this notebook (`%wattprint start [NAME]`)")
            return
        tracker.monitor.sample()  # a person asked now: a fresh sample rather than one up to an interval old
        rec = tracker.record
        cells = sum(1 for w in rec.windows if str(w["name"]).startswith(CELL_PREFIX))
        so_far = fmt_energy(tracker.energy_so_far_kwh()["total"])
        print(f"wattprint: {rec.name} [{rec.run_id[:8]}] running, {so_far} so far over {cells} cell(s)")

    def _unregister(self) -> None:
        for event, callback in (("pre_run_cell", self._pre_run_cell), ("post_run_cell", self._post_run_cell)):
            with contextlib.suppress(ValueError):  # already gone
                self.shell.events.unregister(event, callback)

    def _pre_run_cell(self, info: Any = None) -> None:
        if self._window is not None or self.notebook is None:
            return  # a cell run inside a cell (a %%wattprint body): the outer cell's window covers it
        # IPython has already counted a cell that goes into history
        number = self.shell.execution_count - (1 if getattr(info, "store_history", False) else 0)
        self._window, self._info = f"{CELL_PREFIX}[{number}]", info
        try:
            self.notebook.begin_window(self._window)
        except Exception as exc:  # the notebook comes first
            self._window = None
            flag_fault(self.notebook, "jupyter", "opening a cell window", exc)

    def _post_run_cell(self, result: Any = None) -> None:
        # pair with the pre_run_cell of the same cell (IPython skips pre_run_cell when a cell fails to transform)
        if self._window is None or self.notebook is None or getattr(result, "info", None) is not self._info:
            return
        window, self._window, self._info = self._window, None, None
        try:
            self.notebook.end_window(window)
        except Exception as exc:  # the notebook comes first
            flag_fault(self.notebook, "jupyter", "closing a cell window", exc)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext wattprint`: register the magics (once per shell)."""
    if not any(isinstance(m, WattprintMagics) for m in ipython.magics_manager.registry.values()):
        ipython.register_magics(WattprintMagics)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext wattprint`: finish a whole-notebook run that is still open."""
    magics = ipython.magics_manager.registry.get("WattprintMagics")
    if magics is not None and magics.notebook is not None:
        magics._stop()
