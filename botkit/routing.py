"""The pipeline: middlewares first, then the first handler that answers.

Order: every plugin's middlewares (in plugin order), then a ``/command``'s handler, then
handlers with a pattern or predicate, then catch-all handlers (the default chat skill).
``SkipHandler`` passes a message on to the next candidate.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from botkit.context import Context
from botkit.exceptions import PluginError
from botkit.messages import Message
from botkit.plugin import CommandHandler, HandlerResult, MessageHandler, Plugin, SkipHandler

__all__ = ["Pipeline", "parse_command"]

_COMMAND = re.compile(r"^/([A-Za-z0-9_][A-Za-z0-9_-]*)(?:@\S+)?(?:\s+(.*))?$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A ``/name args`` message."""

    name: str
    args: str


def parse_command(text: str) -> ParsedCommand | None:
    """``/Name@bot  some args`` → ``ParsedCommand("name", "some args")``; else ``None``."""
    found = _COMMAND.match(text.strip())
    if found is None:
        return None
    return ParsedCommand(found.group(1).lower(), (found.group(2) or "").strip())


class Pipeline:
    """Routes one message through the loaded plugins.

    Raises:
        PluginError: two plugins claim the same command.
    """

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        # each middleware runs with its own plugin's context (settings, state)
        self.middlewares = [(plugin.name, mw) for plugin in plugins for mw in plugin.middlewares]
        self.commands: dict[str, CommandHandler] = {}
        for plugin in plugins:
            for command in plugin.commands:
                for name in (command.name, *command.aliases):
                    other = self.commands.get(name)
                    if other is not None:
                        raise PluginError(
                            f"command /{name} is claimed by both {other.plugin!r} "
                            f"and {plugin.name!r}"
                        )
                    self.commands[name] = command
        handlers = [h for plugin in plugins for h in plugin.message_handlers]
        self.specific: list[MessageHandler] = [h for h in handlers if not h.catch_all]
        self.catch_all: list[MessageHandler] = [h for h in handlers if h.catch_all]

    def command_list(self) -> list[CommandHandler]:
        """Each command once, in registration order."""
        seen: dict[int, CommandHandler] = {}
        for command in self.commands.values():
            seen.setdefault(id(command), command)
        return list(seen.values())

    async def handle(self, message: Message, ctx: Context) -> HandlerResult:
        """Run middlewares, then the first matching handler; its answer, or ``None``.

        Each step gets the message as rewritten so far (``ctx.rewrite``: a voice note's
        transcript is routed as if typed)."""

        async def run(index: int) -> HandlerResult:
            if index == len(self.middlewares):
                return await self._route(ctx.message, ctx)
            plugin, middleware = self.middlewares[index]
            own = ctx.for_handler(plugin, args=ctx.args, match=ctx.match)
            return await middleware(ctx.message, own, lambda: run(index + 1))

        return await run(0)

    async def _route(self, message: Message, ctx: Context) -> HandlerResult:
        command = parse_command(message.text)
        if command is not None and command.name in self.commands:
            handler = self.commands[command.name]
            try:
                return await handler.func(
                    message, ctx.for_handler(handler.plugin, args=command.args)
                )
            except SkipHandler:
                pass
        for candidate in self.specific:
            hit = candidate.match(message)
            if hit is False:
                continue
            match = hit if isinstance(hit, re.Match) else None
            try:
                return await candidate.func(
                    message, ctx.for_handler(candidate.plugin, args=message.text, match=match)
                )
            except SkipHandler:
                continue
        if command is not None and command.name not in self.commands:
            return f"Unknown command /{command.name}. Send /help to see what I can do."
        for candidate in self.catch_all:
            if candidate.match(message) is False:
                continue
            try:
                return await candidate.func(
                    message, ctx.for_handler(candidate.plugin, args=message.text)
                )
            except SkipHandler:
                continue
        return None
