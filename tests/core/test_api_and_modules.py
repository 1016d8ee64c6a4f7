"""The public API is explicit and sorted; every module imports on its own."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import botkit


def test_all_is_sorted_unique_and_complete() -> None:
    assert botkit.__all__ == sorted(botkit.__all__)
    assert len(set(botkit.__all__)) == len(botkit.__all__)
    public = {
        name
        for name, value in vars(botkit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(botkit.__all__)


ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[str]:
    """Every module of the core, and every adapter and plugin package with its modules."""
    roots = [("botkit", botkit.__path__)]
    for source_root in ("adapters", "plugins"):
        for package in sorted((ROOT / source_root).glob("botkit_*/__init__.py")):
            roots.append((package.parent.name, [str(package.parent)]))
    names = []
    for name, path in roots:
        names.append(name)
        for info in pkgutil.walk_packages(path, f"{name}."):
            if ".migrations" not in info.name and not info.name.endswith("__main__"):
                names.append(info.name)
    return names


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~185 modules, each imported from nothing: ~1 min on a busy 2-core box
def test_every_module_imports_alone() -> None:
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    before = set(sys.modules)\n"
        "    importlib.import_module(name)\n"
        "    for loaded in set(sys.modules) - before:\n"
        "        if loaded.startswith(('botkit', 'tests')):\n"
        "            del sys.modules[loaded]\n"
    )
    # one process; each module is imported with no botkit module loaded before it
    result = subprocess.run(
        [sys.executable, "-c", script, *_modules()], capture_output=True, text=True, timeout=280
    )
    assert result.returncode == 0, result.stderr[-1500:]


def test_import_botkit_pulls_in_no_vendor_sdk() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, botkit, botkit.bot, botkit.cli; "
            "print(sorted(m for m in ('slack_bolt', 'slack_sdk', 'telegram', 'aiosmtplib', "
            "'aioimaplib', 'asyncpg') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_module_is_importable_in_process() -> None:
    for name in _modules():
        importlib.import_module(name)
