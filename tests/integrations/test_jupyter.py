"""The IPython magics in a real InteractiveShell: one cell, a whole notebook, failures, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("IPython")
from IPython.core.error import UsageError  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from traitlets.config import Config  # noqa: E402

from wattprint.integrations.jupyter import CellFailed, WattprintMagics  # noqa: E402
from wattprint.store import open_store  # noqa: E402

BUSY = "total = 0\nfor i in range(400_000):\n    total += i * i\n"


@pytest.fixture
def shell() -> Iterator[Any]:
    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "wattprint")
    yield ip
    magics = ip.magics_manager.registry["WattprintMagics"]
    if magics.notebook is not None:  # never leave a notebook run open for the next test
        magics._stop()


def runs(home: Path) -> list[Any]:
    with open_store(f"sqlite:///{home / 'wattprint.db'}") as store:
        return store.list()


def test_cell_magic_tracks_one_cell(shell: Any, wattprint_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = shell.run_cell(f"%%wattprint train-cell --region FR --interval 0.05\n{BUSY}total\n")
    assert result.success, result.error_in_exec
    assert shell.user_ns["total"] == sum(i * i for i in range(400_000))  # the cell ran in the user's namespace
    out = capsys.readouterr().out
    [rec] = runs(wattprint_env)
    assert rec.name == "train-cell" and rec.status == "finished" and rec.region == "FR"
    assert rec.energy_kwh.total > 0
    # the summary: energy with its method, CO2e, duration, and the stored run's id
    line = next(x for x in out.splitlines() if x.startswith("wattprint: train-cell"))
    assert rec.run_id[:8] in line and "Wh" in line and "CO2e" in line and " s," in line
    assert f"cpu: {rec.measurement.cpu} ({rec.methods['cpu']['method']})" in line
    assert str(shell.user_ns["total"]) in out  # the cell's last value is still displayed


def test_failing_cell_is_recorded_failed_and_still_fails(
    shell: Any, wattprint_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run_cell("%%wattprint\n1 / 0\n")
    assert isinstance(result.error_in_exec, CellFailed)
    out = capsys.readouterr().out
    assert out.count("ZeroDivisionError") >= 1 and "recorded as failed" in out
    [rec] = runs(wattprint_env)
    assert rec.status == "failed" and rec.name.startswith("cell ")


def test_whole_notebook_with_a_window_per_cell(
    shell: Any, wattprint_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run_cell("%wattprint start nb --interval 0.05").success
    first = shell.execution_count
    shell.run_cell(BUSY, store_history=True)
    shell.run_cell("%%wattprint inner\nsum(range(1000))\n", store_history=True)  # nested: one window, own run
    shell.run_cell("x = 1\n", store_history=True)
    shell.run_cell("%wattprint status")
    assert "running" in capsys.readouterr().out
    assert shell.run_cell("%wattprint stop").success
    out = capsys.readouterr().out
    stored = {r.name: r for r in runs(wattprint_env)}
    rec = stored["nb"]
    assert rec.status == "finished" and stored["inner"].status == "finished"
    names = [w["name"] for w in rec.windows]
    assert names[:3] == [f"cell [{first}]", f"cell [{first + 1}]", f"cell [{first + 2}]"]
    busy_cell = rec.windows[0]["energy_kwh"]["total"]
    assert busy_cell > 0 and busy_cell <= rec.energy_kwh.total
    assert f"wattprint: nb [{rec.run_id[:8]}] finished" in out and "most energy: cell [" in out


def test_a_cell_window_fault_is_flagged_and_the_cell_still_runs(
    shell: Any, wattprint_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run_cell("%wattprint start nb --interval 0.05").success
    magics = shell.magics_manager.registry["WattprintMagics"]
    magics.notebook.begin_window(f"cell [{shell.execution_count}]")  # the next cell's window name is taken
    assert shell.run_cell(BUSY, store_history=True).success
    assert shell.user_ns["total"] == sum(i * i for i in range(400_000))
    shell.run_cell("%wattprint status")
    # the energy so far is the run's attributed energy, printed with its unit
    match = re.search(r"running, ([0-9.e+-]+) (m?Wh|kWh) so far", capsys.readouterr().out)
    assert match and float(match.group(1)) > 0
    assert shell.run_cell("%wattprint stop").success
    (rec,) = runs(wattprint_env)
    assert "opening a cell window" in rec.degraded["jupyter"] and rec.status == "finished"


def test_bad_input_is_a_usage_error(shell: Any) -> None:
    with pytest.raises(UsageError, match="region"):
        shell.run_line_magic("wattprint", "start --region Atlantis")
    with pytest.raises(UsageError, match="not tracking"):
        shell.run_line_magic("wattprint", "stop")
    with pytest.raises(UsageError, match="invalid choice"):
        shell.run_line_magic("wattprint", "begin")
    with pytest.raises(UsageError, match="--interval"):
        shell.run_cell_magic("wattprint", "--interval fast", "1")
    shell.run_line_magic("wattprint", "start")
    with pytest.raises(UsageError, match="already tracking"):
        shell.run_line_magic("wattprint", "start")


def test_loading_twice_registers_once(shell: Any) -> None:
    shell.run_line_magic("reload_ext", "wattprint")
    assert sum(isinstance(m, WattprintMagics) for m in shell.magics_manager.registry.values()) == 1


def test_import_wattprint_does_not_import_ipython() -> None:
    code = "import sys, json, wattprint; print(json.dumps([m for m in ('IPython', 'traitlets') if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['IPython'] = None\n"
        "import wattprint\n"
        "try:\n    wattprint.load_ipython_extension(None)\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingExtraError") and "pip install 'wattprint[jupyter]'" in out
