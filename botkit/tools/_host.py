"""The tool loop's host for a handler's :class:`botkit.Context`: how ``ctx.llm.respond()``
gives the loop what it uses, without the loop knowing the context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botkit.llm import ToolCall
from botkit.plugin import HandlerResult
from botkit.tools.arguments import as_json_values
from botkit.tools.confirmation import PendingCall, pending_key, question
from botkit.tools.declaration import Tool

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["ContextHost", "drop_pending", "keep_pending"]


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
        """Keep the call for the user's "yes" (:func:`keep_pending`); the question to ask."""
        return await keep_pending(self._ctx, tool, arguments)

    async def drop_held(self, tools: Sequence[Tool]) -> None:
        """Drop a call still waiting for this sender (:func:`drop_pending`)."""
        await drop_pending(self._ctx, tools)


async def keep_pending(ctx: Context, spec: Tool, arguments: Any) -> str:
    """Keep a side-effect call in its plugin's state; the question to ask. Stored only
    while this process holds the message (a process that woke after losing it must not
    replace the question the user was really asked)."""
    pending = PendingCall(
        spec.name, as_json_values(arguments), ctx.message.sender.id, datetime.now(UTC)
    )
    await ctx.store.set_state(
        f"plugin:{spec.plugin}",
        pending_key(ctx.conversation_id),
        pending.to_json(),
        held=ctx.tool_ledger().held,
    )
    return question(spec, pending.arguments)


async def drop_pending(ctx: Context, tools: Sequence[Tool]) -> None:
    """Drop the call waiting for this sender's "yes": they moved on (others may not have)."""
    key = pending_key(ctx.conversation_id)
    for plugin in sorted({t.plugin for t in tools if t.side_effects}):
        state = ctx.for_handler(plugin, args="").state
        pending = PendingCall.from_json(await state.get(key))
        if pending is not None and pending.user == ctx.message.sender.id:
            await state.delete(key)
