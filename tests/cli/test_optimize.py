"""`wattprint optimize` as a real subprocess on a small digits model script: JSON, table, resume, bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("optuna")

SCRIPT = """
import torch
from sklearn.datasets import load_digits
from torch import nn

_data = load_digits()
_x = torch.tensor(_data.images / 16.0, dtype=torch.float32).reshape(-1, 64)
_y = torch.tensor(_data.target)
TUNED = []


def model():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    train_fn(net, epochs=8)
    TUNED.clear()
    return net


def train_fn(net, epochs=2):
    TUNED.append(1)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for _ in range(epochs):
        for i in range(0, 1400, 64):
            opt.zero_grad()
            nn.functional.cross_entropy(net(_x[i:i + 64]), _y[i:i + 64]).backward()
            opt.step()


def eval_fn(net):
    with torch.no_grad():
        return (net(_x[1400:]).argmax(1) == _y[1400:]).float().mean().item()


def example_inputs():
    return _x[:8]
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "digits_model.py"
    path.write_text(SCRIPT)
    return path


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, "optimize", *args], capture_output=True, text=True, timeout=240)


FAST = ["--energy-min-s", "0.05", "--quiet"]


@pytest.mark.slow
def test_json_document_and_sqlite_resume(wattprint_cmd: list[str], script: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    common = [
        str(script),
        "--recipes",
        "prune:0.5,prune-channels:0.5,prune:0.99",
        "--no-combine",
        "--max-drop",
        "0.02",
        "--storage",
        f"sqlite:///{db}",
        "--study",
        "cli",
        "--json",
        *FAST,
    ]
    first = run(wattprint_cmd, *common, "--trials", "1")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert len(doc["candidates"]) == 1
    out = tmp_path / "result.json"
    second = run(wattprint_cmd, *common, "-o", str(out))
    assert second.returncode == 0, second.stderr
    doc = json.loads(second.stdout)
    assert json.loads(out.read_text()) == doc
    from wattprint.cli.optimize import _search_document
    from wattprint.files import written_by_wattprint

    assert written_by_wattprint(out, also=_search_document)  # a later -o may replace it without --force
    by_recipe = {c["recipe"]: c for c in doc["candidates"]}
    assert set(by_recipe) == {"prune:0.5", "prune-channels:0.5", "prune:0.99"}
    assert not by_recipe["prune:0.99"]["feasible"]
    assert doc["baseline"]["energy_method"] in ("measured", "estimated")
    assert doc["best"]["recipe"] in {"baseline", "prune:0.5", "prune-channels:0.5"}
    assert set(doc["pareto"]) <= {"baseline", "prune:0.5", "prune-channels:0.5"}
    assert by_recipe["prune-channels:0.5"]["ratios"]["macs"] < 0.6
    for c in doc["candidates"]:
        assert {
            "metric",
            "latency_ms",
            "energy_per_inference_j",
            "energy_method",
            "macs",
            "macs_nonzero",
            "params",
            "size_bytes",
            "recipe",
            "ratios",
            "feasible",
        } <= set(c)


@pytest.mark.slow
def test_table_output(wattprint_cmd: list[str], script: Path, tmp_path: Path) -> None:
    page = tmp_path / "result.html"
    proc = run(
        wattprint_cmd,
        str(script),
        "--recipes",
        "prune-channels:0.25",
        "--max-drop",
        "0.05",
        "--threads",
        "1",
        "--html",
        str(page),
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    html = page.read_text()
    assert html.count("<svg") == 1 and "prune-channels:0.25" in html and "baseline" in html
    assert "prune-channels:0.25" in proc.stdout and "baseline" in proc.stdout
    assert "best (energy):" in proc.stdout
    assert "ratios to the baseline measured in this run" in proc.stdout


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--recipes", "int4"], "recipe"),
        (["--recipes", "prune:1.5"], "recipe"),
        (["--recipes", "prune:0.5,,bf16"], "--recipes"),
        (["--max-drop", "-1"], "max_metric_drop"),
        (["--trials", "0"], "n_trials"),
        (["--batch-sizes", "1,x"], "--batch-sizes"),
        (["--batch-sizes", "0"], "--batch-sizes"),
        (["--prefer", "accuracy"], "prefer"),
        (["--study", "s"], "--study"),
        (["--storage", "nowhere"], "storage"),
        (["--threads", "0"], "--threads"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(wattprint_cmd: list[str], script: Path, args: list[str], field: str) -> None:
    proc = run(wattprint_cmd, str(script), *args, "--quiet")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0], proc.stderr
    assert proc.stdout == ""


def test_bad_scripts_are_refused(wattprint_cmd: list[str], tmp_path: Path) -> None:
    missing = run(wattprint_cmd, str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "MODEL_SCRIPT" in missing.stderr
    partial = tmp_path / "partial.py"
    partial.write_text("def model():\n    return None\n")
    proc = run(wattprint_cmd, str(partial))
    assert proc.returncode == 2
    assert "eval_fn, example_inputs" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    proc = run(wattprint_cmd, str(broken))
    assert proc.returncode == 2 and "boom" in proc.stderr
    not_module = tmp_path / "not_module.py"
    not_module.write_text("def model(): return 3\ndef eval_fn(m): return 1.0\ndef example_inputs(): return None\n")
    proc = run(wattprint_cmd, str(not_module))
    assert proc.returncode == 2 and "model" in proc.stderr
