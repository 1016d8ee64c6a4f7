"""Routes in plugin settings (a hand-off, an escalation, a digest's recipient) that name
a channel the bot does not have: found before anything starts, not when a message is
first routed there."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from botkit.exceptions import ConfigError
from botkit.messages import ConversationRef

__all__ = ["route_problems"]


def route_problems(
    settings: Mapping[str, Any], channels: Collection[str]
) -> Iterator[ConfigError]:
    """A ``ConfigError`` for every ``ConversationRef`` in the plugins' settings (by
    plugin name) whose channel is not among ``channels``."""
    for plugin, value in settings.items():
        for key, ref in _refs(value, f"plugins.{plugin}"):
            if ref.channel not in channels:
                known = ", ".join(sorted(channels)) or "none"
                yield ConfigError(
                    f"{key}.channel",
                    f"{ref.channel!r} is not a configured channel (configured: {known})",
                )


def _refs(value: Any, key: str) -> Iterator[tuple[str, ConversationRef]]:
    """Every conversation named in ``value``, with its dotted key."""
    if isinstance(value, ConversationRef):
        yield key, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _refs(getattr(value, f.name), f"{key}.{f.name}")
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _refs(item, f"{key}[{index}]")
    elif isinstance(value, Mapping):
        for name, item in value.items():
            yield from _refs(item, f"{key}.{name}")
