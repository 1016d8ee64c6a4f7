"""Streaming: when a live reply shows what, paced to the channel's edit limits.

The live reply itself (posting, editing, storing what it shows) belongs to the outbox
(``Outbox.live``); this module only throttles.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from botkit.adapter import Capabilities
from botkit.live import LiveReply

__all__ = ["stream_reply"]

TYPING_EVERY = 4.0  # Telegram's indicator lasts about 5 s
FIRST_SHOW_AFTER = 0.3  # seconds of text gathered before the first of it is shown


async def stream_reply(
    live: LiveReply,
    chunks: AsyncIterable[str],
    capabilities: Capabilities,
    typing: Callable[[], Awaitable[None]],
) -> str:
    """Show ``chunks`` on ``live`` as they arrive, at most once per ``live.interval``
    (the channel's edit pace, or its own stream's), then finish it with the whole text;
    returns the whole text. The first text is shown :data:`FIRST_SHOW_AFTER` seconds
    (or one ``live.interval``, if shorter) after it began: an answer complete by then
    is posted once, whole.

    The typing indicator runs until the first text is shown. If the chunks break off
    (the model failed, the task was cancelled), the live reply is failed and the
    exception goes on.
    """
    text = ""
    last_show = 0.0
    # the first text waits a moment: an answer done by then is posted whole, with no
    # edit to pace (the short answers of a fast model)
    first_show_at: float | None = None
    source = _Chunks(chunks)
    indicator = asyncio.create_task(_keep_typing(typing))
    try:
        while True:
            limit = None
            if live.shown is None and first_show_at is not None:
                limit = first_show_at - time.monotonic()
            try:
                chunk = await source.next(limit)
            except TimeoutError:  # the moment passed while the model paused: show it
                chunk = ""
            if chunk is None:
                break
            text += chunk
            if not text.strip():
                continue
            now = time.monotonic()
            if first_show_at is None:
                first_show_at = now + min(FIRST_SHOW_AFTER, live.interval)
            due = now >= first_show_at if live.shown is None else now - last_show >= live.interval
            if due:
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
        source.close()
        indicator.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await indicator
    return text


class _Chunks:
    """The model's chunks, read with an optional time limit that leaves the read going."""

    def __init__(self, chunks: AsyncIterable[str]) -> None:
        self._source = aiter(chunks)
        self._waiting: asyncio.Future[str | None] | None = None

    async def next(self, limit: float | None = None) -> str | None:
        """The next chunk, ``None`` at the end.

        Raises:
            TimeoutError: ``limit`` seconds passed first; the next call goes on waiting
                for the same chunk.
        """
        if self._waiting is None:
            if limit is None:  # the usual case: no task per chunk
                return await _next(self._source)
            self._waiting = asyncio.ensure_future(_next(self._source))
        if limit is not None:
            done, _ = await asyncio.wait({self._waiting}, timeout=max(limit, 0.0))
            if not done:
                raise TimeoutError
        waiting, self._waiting = self._waiting, None
        return await waiting

    def close(self) -> None:
        """Stop a read still waiting (the answer broke off)."""
        if self._waiting is not None:
            self._waiting.cancel()


async def _next(source: AsyncIterator[str]) -> str | None:
    try:
        return await anext(source)
    except StopAsyncIteration:
        return None


def _preview(text: str, limit: int) -> str:
    """What to show while streaming: the text so far, cut to one message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _keep_typing(typing: Callable[[], Awaitable[None]]) -> None:
    while True:
        await typing()
        await asyncio.sleep(TYPING_EVERY)
