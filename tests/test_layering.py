"""Package layering: utils/ is the bottom layer, so nothing under it may import models/ (or engine/)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPPER_PACKAGES = ("models", "engine")  # utils/ is imported by both; importing them back would make cycles


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, at any depth (function-local and TYPE_CHECKING ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_utils_imports_neither_models_nor_engine() -> None:
    files = sorted((ROOT / "utils").rglob("*.py"))
    assert len(files) > 10  # the scan sees the package
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in imported_modules(path)
        if module.split(".")[0] in UPPER_PACKAGES
    ]
    assert not offending, offending


def test_the_scan_finds_a_models_import(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text("import os\n\ndef f():\n    from models.detection_model import DetectionModel\n")
    assert imported_modules(source) == [(1, "os"), (4, "models.detection_model")]
