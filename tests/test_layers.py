"""Imports run one way: bot → handlers → storage, and every layer may import core; core imports
nothing of ours. Checked on the source of every module, so a new upward import fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What each layer may import of ours.
ALLOWED = {
    "core": {"core"},
    "storage": {"core", "storage"},
    "handlers": {"core", "storage", "handlers"},
    "bot": {"core", "storage", "handlers", "bot"},
}


def imports(path: Path) -> set[str]:
    """The top-level packages of ours that a module imports (at any depth of the module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names if n.split(".")[0] in ALLOWED}
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_module_imports_upward(layer: str) -> None:
    modules = sorted((ROOT / layer).rglob("*.py"))
    assert modules
    upward = {
        str(m.relative_to(ROOT)): sorted(imports(m) - ALLOWED[layer])
        for m in modules
        if imports(m) - ALLOWED[layer]
    }
    assert upward == {}
