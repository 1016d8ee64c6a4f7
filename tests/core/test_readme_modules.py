"""The README's module table names every module of the core, so that a new maintainer
finds each one there: every module of botkit/, and every module of each package in the
row that names the package."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "botkit"


def _table() -> dict[str, str]:
    """The table's rows: each name in the first column -> that row's whole text."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("| module | holds |")
    rows: dict[str, str] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        first = line.split("|")[1]
        for name in re.findall(r"`([^`]+)`", first):
            rows[name] = line
    return rows


def test_every_core_module_has_a_row() -> None:
    rows = _table()
    modules = sorted(p.name for p in CORE.glob("*.py") if p.stem not in ("__init__", "__main__"))
    assert [m for m in modules if m not in rows] == []


def test_every_package_row_names_each_of_its_modules() -> None:
    rows = _table()
    for package in sorted(p for p in CORE.iterdir() if (p / "__init__.py").exists()):
        row = rows.get(f"{package.name}/")
        assert row is not None, f"no row for {package.name}/"
        stems = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
        assert [s for s in stems if not re.search(rf"\b{re.escape(s)}\b", row)] == [], package.name


def test_no_row_names_a_module_that_is_gone() -> None:
    for name in _table():
        assert (CORE / name.rstrip("/")).exists(), name


def _layout() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Layout")
    return text[start : text.index("| module | holds |", start)]


def test_the_layout_names_every_adapter_plugin_and_test_folder() -> None:
    layout = _layout()
    packages = [p.name for root in ("adapters", "plugins") for p in (ROOT / root).iterdir()]
    folders = [f"{p.name}/" for p in (ROOT / "tests").iterdir() if p.is_dir()]
    named = [*packages, *folders]
    missing = [n for n in named if not n.startswith("__") and n not in layout]
    assert missing == []
