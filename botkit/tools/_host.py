"""The tool loop's host for a handler's :class:`botkit.Context`: how ``ctx.llm.respond()``
gives the loop what it uses, without the loop knowing the context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from botkit.llm import ToolCall
from botkit.plugin import HandlerResult
from botkit.tools.confirmation import drop_held, hold
from botkit.tools.declaration import Tool

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["ContextHost"]


class ContextHost:
    """A :class:`botkit.tools.loop.ToolHost` that acts through a handler's context."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def show(self, texts: AsyncIterator[str]) -> None:
        """Stream the text to the message's conversation (``ctx.stream``)."""
        await self._ctx.stream(texts)

    async def run(self, tool: Tool, arguments: Any, call: ToolCall) -> HandlerResult:
        """Run the tool with its own plugin's context (settings, state)."""
        return await tool.func(arguments, self._ctx.for_handler(tool.plugin, args=call.arguments))

    async def hold(self, tool: Tool, arguments: Any) -> str:
        """Keep the call for the user's "yes" (``confirmation.hold``)."""
        return await hold(self._ctx, tool, arguments)

    async def drop_held(self, tools: Sequence[Tool]) -> None:
        """Drop a call still waiting for this sender (``confirmation.drop_held``)."""
        await drop_held(self._ctx, tools)
