"""The package's shape: every import follows the layer order of docs/ARCHITECTURE.md (which this test reads),
and every public name that a package or module lists in `__all__` resolves."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from wattprint._extras import MissingExtraError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "wattprint"


def _layers() -> dict[str, int]:
    """Top-level module or folder name -> its row in ARCHITECTURE.md's layer table (0 = the top)."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    table = text.split("| layer | what it owns |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {
        name.removesuffix(".py").rstrip("/"): level
        for level, cell in enumerate(rows)
        for name in re.findall(r"`([^`]+)`", cell)
    }


def _imports(path: Path) -> list[tuple[str, int]]:
    """(wattprint.* module, line) for every import in the file, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("wattprint"):
            names = [f"wattprint.{a.name}" for a in node.names] if node.module == "wattprint" else [node.module]
            found += [(str(name), node.lineno) for name in names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("wattprint.")]
    return found


def test_every_module_sits_in_a_layer_and_imports_only_layers_above_it() -> None:
    layers = _layers()
    assert len(set(layers.values())) >= 10, layers  # the table was found and read
    unplaced, upward = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts == ("__init__.py",):  # the package root: lazy names only
            continue
        top = rel.parts[0].removesuffix(".py")
        if top not in layers:
            unplaced.append(str(rel))
            continue
        for module, line in _imports(path):
            target = module.split(".")[1]
            if target in ("__version__",):  # the package root's version: no layer
                continue
            if target not in layers:
                unplaced.append(f"{rel}:{line} imports {module}")
            elif layers[target] > layers[top]:
                upward.append(f"{rel}:{line} imports {module} (layer {layers[target]} > {layers[top]})")
    assert not unplaced, f"not in ARCHITECTURE.md's layer table: {unplaced}"
    assert not upward, upward


def _public_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if re.search(r"^__all__\s*=", path.read_text(encoding="utf-8"), re.MULTILINE):
            rel = path.relative_to(PACKAGE.parent).with_suffix("")
            names.append(".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts))
    return names


@pytest.mark.parametrize("module_name", _public_modules())
def test_every_public_name_resolves(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except (MissingExtraError, ImportError) as exc:  # an integration whose extra is not installed here
        pytest.skip(f"{module_name} needs an extra: {exc}")
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ lists names it does not have: {missing}"
    assert len(set(module.__all__)) == len(module.__all__)


def test_the_package_root_lists_the_contract_names() -> None:
    import wattprint

    assert {"Tracker", "track", "count_flops", "estimate", "RunRecord", "__version__"} <= set(wattprint.__all__)
