"""The skills' documented tables in config.example.toml are valid and complete."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from typing import Any

import pytest

from botkit import Plugin
from botkit_autoreply import Rule
from botkit_autoreply import plugin as autoreply
from botkit_budget import Limit
from botkit_budget import plugin as budget
from botkit_documents import plugin as documents
from botkit_remind import plugin as remind
from botkit_sentiment import plugin as sentiment
from botkit_spam import plugin as spam
from botkit_summary import Digest
from botkit_summary import plugin as summary
from botkit_voice import plugin as voice
from tests.fakes.example_config import example_table
from tests.plugins.conftest import StartBot

PLUGINS = {
    p.name: p for p in (spam, sentiment, autoreply, summary, remind, documents, budget, voice)
}
NESTED = {
    ("autoreply", "rules"): Rule,
    ("summary", "digests"): Digest,
    ("budget", "limits"): Limit,
}


def _uncommented() -> dict[str, Any]:
    """The skills' commented tables in config.example.toml, uncommented and parsed."""
    return {
        name: tomllib.loads(example_table(f"[plugins.{name}]"))["plugins"][name]
        for name in PLUGINS
    }


def _keys(cls: type[Any]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_each_documented_table_names_every_setting(name: str) -> None:
    table = _uncommented()[name]
    cls = PLUGINS[name].settings_class
    assert cls is not None
    assert set(table) == _keys(cls), f"plugins.{name}"
    # a setting that excludes another is documented as an alternative: "#: usd = 1.5"
    alternatives = set(re.findall(r"^#: (\w+) = ", example_table(f"[plugins.{name}]"), re.M))
    for (plugin, key), nested in NESTED.items():
        if plugin == name:
            [entry] = table[key]
            assert set(entry) | alternatives == _keys(nested), f"plugins.{name}.{key}"
    hints = typing.get_type_hints(cls)
    assert hints  # a settings dataclass with typed fields


async def test_the_documented_tables_start_a_bot(start_bot: StartBot) -> None:
    tables = _uncommented()
    plugins: list[Plugin] = [PLUGINS[name] for name in tables]
    async with start_bot(plugins=plugins, settings=tables, channels=["slack", "email"]) as bot:
        settings = bot.bot.runtime.plugin_settings
        assert settings["autoreply"].rules[0].dates[0].start == "2024-12-23"
        assert settings["summary"].digests[0].to.chat_id == "C0LEADS"
        assert settings["spam"].notify.channel == "slack"
        assert settings["remind"].message == "Reminder: {text}"
