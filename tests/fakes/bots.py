"""Building real bots for tests from a config dict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from botkit import Adapter, Bot, Plugin
from botkit.config import parse_config
from botkit.llm import ChatModel


def make_bot(
    database_url: str,
    adapters: Mapping[str, Adapter],
    *,
    plugins: Sequence[Plugin] | None = None,
    plugin_settings: Mapping[str, Any] | None = None,
    model: ChatModel | None = None,
    environ: Mapping[str, str] | None = None,
    **sections: Mapping[str, Any],
) -> Bot:
    """A ``Bot`` on ``database_url`` with the given channels; ``sections`` are TOML tables."""
    data: dict[str, Any] = {name: dict(table) for name, table in sections.items()}
    data.setdefault("database", {})["url"] = database_url
    data["database"].setdefault("auto_migrate", True)
    data.setdefault("bot", {}).setdefault("shutdown_grace", 5.0)
    # the test process is not the bot's: leave its garbage collector as pytest set it
    data["bot"].setdefault("tune_gc", False)
    config = parse_config(data, environ=dict(environ or {}))
    return Bot(
        config, adapters=adapters, plugins=plugins, plugin_settings=plugin_settings, model=model
    )
