"""Streaming a reply: post once, then edit in place, throttled to the channel's limits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING

from botkit.messages import Markup, Reply, SentMessage
from botkit.outbox import delivery_id
from botkit.runtime import Runtime
from botkit.text import split_text

if TYPE_CHECKING:
    from botkit.context import Context

__all__ = ["stream_reply"]

TYPING_EVERY = 4.0  # Telegram's indicator lasts about 5 s


async def stream_reply(
    runtime: Runtime, ctx: Context, chunks: AsyncIterable[str], *, markup: Markup
) -> str:
    """Deliver ``chunks`` as one growing message (see ``Context.stream``)."""
    from botkit.context import draft_of, edit_with_retry, reply_of

    message = ctx.message
    adapter = runtime.adapters.get(message.channel)
    if adapter is None or not adapter.capabilities.edits:
        text = "".join([chunk async for chunk in chunks])
        if text.strip():
            await ctx.reply(Reply(text, markup))
        return text
    caps = adapter.capabilities
    store = runtime.store
    base = reply_of(Reply("", markup), message)
    conversation_id = ctx.conversation_id
    async with runtime.outbox.lock(conversation_id):
        if not await runtime.outbox.flush_locked(conversation_id):  # earlier replies first
            # one of them waits (a retry later): streaming now would overtake it, so the
            # answer is collected and queued behind it
            text = "".join([chunk async for chunk in chunks])
            if text.strip():
                reply = Reply(text, markup, base.reply_to, base.metadata)
                await store.add_outbound(
                    draft_of(conversation_id, message.channel, reply, message)
                )
            return text
        draft = draft_of(conversation_id, message.channel, base, message)
        out_id = await store.add_outbound(
            dataclasses.replace(draft, status="streaming"), claim=runtime.claim()
        )
        text = ""
        sent: SentMessage | None = None
        shown = ""
        last_edit = 0.0
        typing = asyncio.create_task(_keep_typing(ctx))
        try:
            async for chunk in chunks:
                text += chunk
                if not text.strip():
                    continue
                preview = _preview(text, caps.max_length)
                now = time.monotonic()
                if sent is None:
                    typing.cancel()
                    sent = await adapter.send(
                        message.conversation,
                        Reply(preview, markup, base.reply_to, base.metadata),
                        delivery_id=delivery_id(out_id),
                    )
                    shown, last_edit = preview, time.monotonic()  # after, as for edits
                elif now - last_edit >= caps.edit_interval and preview != shown:
                    sent = await edit_with_retry(runtime, sent, preview) or sent
                    shown, last_edit = preview, time.monotonic()
        except BaseException as exc:
            await store.update_outbound(
                out_id, status="failed", text=text, error=f"stream broke off: {exc}"[:2000]
            )
            raise
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing
        if sent is None:
            await store.update_outbound(out_id, status="failed", error="the reply was empty")
            return text
        delivered = False
        try:
            pieces = split_text(text, caps.max_length)
            first = pieces[0] if pieces else text
            if first != shown:
                # the last edit keeps the channel's pace too
                await asyncio.sleep(max(0.0, caps.edit_interval - (time.monotonic() - last_edit)))
                edited = await edit_with_retry(runtime, sent, first)
                if edited is None:
                    # the message shows only part of the answer: record what it shows as
                    # failed, and send the whole answer as a reply of its own
                    await store.update_outbound(
                        out_id, status="failed", text=shown, error="the last edit failed"
                    )
                    delivered = True
                    await _queue(runtime, ctx, Reply(text, markup, base.reply_to, base.metadata))
                    return text
                sent = edited
            await store.update_outbound(out_id, text=first)  # what this message shows
            await runtime.outbox.mark_delivered(out_id, sent)
            delivered = True
            rest = "\n\n".join(pieces[1:])
            if rest:  # past one message: the rest goes through the outbox, with retries
                await _queue(runtime, ctx, Reply(rest, markup, base.reply_to, base.metadata))
        except BaseException as exc:
            if not delivered:
                await store.update_outbound(
                    out_id, status="failed", text=text, error=f"stream broke off: {exc}"[:2000]
                )
            raise
        return text


async def _queue(runtime: Runtime, ctx: Context, reply: Reply) -> None:
    """Store a reply in the outbox and send what is due (the caller holds the lock)."""
    from botkit.context import draft_of

    message = ctx.message
    await runtime.store.add_outbound(
        draft_of(ctx.conversation_id, message.channel, reply, message)
    )
    await runtime.outbox.flush_locked(ctx.conversation_id)


def _preview(text: str, limit: int) -> str:
    """What to show while streaming: the text so far, cut to one message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _keep_typing(ctx: Context) -> None:
    while True:
        await ctx.typing()
        await asyncio.sleep(TYPING_EVERY)
