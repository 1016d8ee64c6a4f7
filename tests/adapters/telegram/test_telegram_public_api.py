"""The adapter uses python-telegram-bot's public API only, within the bounded version."""

from __future__ import annotations

import ast
import inspect
import tomllib
from pathlib import Path

import telegram
from packaging.requirements import Requirement
from telegram.request import BaseRequest

import botkit_telegram

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = Path(botkit_telegram.__file__).parent


def ptb_private_names() -> set[str]:
    """Single-underscore attributes of the PTB classes the adapter holds or subclasses."""
    names: set[str] = set()
    for cls in (telegram.Bot, BaseRequest, telegram.Message, telegram.Update):
        names |= {n for n in dir(cls) if n.startswith("_") and not n.startswith("__")}
    return names


def attribute_uses() -> list[tuple[str, int, str]]:
    """Every ``x.name`` in the package, less the names it assigns itself (``self._bot``)."""
    found, own = [], set()
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                found.append((path.name, node.lineno, node.attr))
                if isinstance(node.ctx, ast.Store):
                    own.add(node.attr)
    return [use for use in found if use[2] not in own]


def test_no_private_python_telegram_bot_attribute_is_used() -> None:
    private = ptb_private_names()
    assert "_post" in private  # the check knows what it looks for
    used = [(f, line, name) for f, line, name in attribute_uses() if name in private]
    assert used == [], f"private python-telegram-bot API used: {used}"


def test_get_updates_rests_on_the_public_request_post_as_it_is() -> None:
    # RawBot.get_raw_updates calls BaseRequest.post(url, read_timeout=...): fail loudly
    # here, not in production, if PTB changes that method
    parameters = inspect.signature(BaseRequest.post).parameters
    assert list(parameters)[:4] == ["self", "url", "request_data", "read_timeout"]
    assert getattr(BaseRequest.post, "__final__", False)  # PTB's own methods call it


def test_vendor_majors_are_bounded() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = {
        "python-telegram-bot": 23,
        "slack-bolt": 2,
        "aioimaplib": 3,
        "telegramify-markdown": 2,
    }
    for extra in extras.values():
        for line in extra:
            requirement = Requirement(line)
            if requirement.name in wanted:
                upper = f"<{wanted.pop(requirement.name)}"
                assert upper in str(requirement.specifier), line
    assert wanted == {}
    assert Requirement(
        next(r for r in extras["telegram"] if r.startswith("python-telegram-bot"))
    ).specifier.contains(telegram.__version__)
