"""Streaming: when a live reply shows what, paced to the channel's edit limits.

The live reply itself (posting, editing, storing what it shows) belongs to the outbox
(``Outbox.live``); this module only throttles.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable

from botkit.adapter import Capabilities
from botkit.live import LiveReply

__all__ = ["stream_reply"]

TYPING_EVERY = 4.0  # Telegram's indicator lasts about 5 s


async def stream_reply(
    live: LiveReply,
    chunks: AsyncIterable[str],
    capabilities: Capabilities,
    typing: Callable[[], Awaitable[None]],
) -> str:
    """Show ``chunks`` on ``live`` as they arrive, at most once per ``live.interval``
    (the channel's edit pace, or its own stream's), then finish it with the whole text;
    returns the whole text.

    The typing indicator runs until the first text is shown. If the chunks break off
    (the model failed, the task was cancelled), the live reply is failed and the
    exception goes on.
    """
    text = ""
    last_show = 0.0
    indicator = asyncio.create_task(_keep_typing(typing))
    try:
        async for chunk in chunks:
            text += chunk
            if not text.strip():
                continue
            now = time.monotonic()
            if live.shown is None or now - last_show >= live.interval:
                indicator.cancel()
                await live.show(_preview(text, capabilities.max_length))
                last_show = time.monotonic()
        indicator.cancel()
        if live.shown is not None and live.shown != text:  # the last edit keeps the pace too
            wait = live.interval - (time.monotonic() - last_show)
            await asyncio.sleep(max(0.0, wait))
        await live.finish(text)
    except BaseException as exc:
        await asyncio.shield(live.fail(exc))
        raise
    finally:
        indicator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await indicator
    return text


def _preview(text: str, limit: int) -> str:
    """What to show while streaming: the text so far, cut to one message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _keep_typing(typing: Callable[[], Awaitable[None]]) -> None:
    while True:
        await typing()
        await asyncio.sleep(TYPING_EVERY)
