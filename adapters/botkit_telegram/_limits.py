"""Telegram's flood limits, enforced before Telegram has to.

Telegram asks bots to stay under about one message a second in a chat, twenty a minute
in a group and thirty a second overall, and answers 429 with ``retry_after`` when they
do not (repeat offenders get longer bans). Sends and edits pass :meth:`FloodLimiter.wait`
first; a 429 pauses its chat with :meth:`FloodLimiter.pause`. A wait longer than
``max_wait`` is not slept on: it raises ``RateLimitError`` and the core reschedules.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from botkit import RateLimitError

__all__ = ["FloodLimiter"]


@dataclass(slots=True)
class _Chat:
    next_free: float = 0.0
    paused_until: float = 0.0
    recent: deque[float] = field(default_factory=deque)


class FloodLimiter:
    """Per-chat and global pacing of outgoing messages.

    Args:
        max_wait: the longest wait slept on; longer ones raise ``RateLimitError``.
        per_chat_interval: seconds between two messages in one chat.
        group_per_minute: messages a minute in one group or supergroup.
        global_per_second: messages a second across all chats.
        clock: a monotonic clock, replaceable in tests.
        on_wait: told of each wait slept: its seconds, and ``"server"`` when it waits out
            a 429's ``retry_after``, else ``"pacing"`` (the metrics count them).
    """

    def __init__(
        self,
        *,
        max_wait: float,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        global_per_second: int = 30,
        clock: Callable[[], float] = time.monotonic,
        on_wait: Callable[[float, str], None] | None = None,
    ) -> None:
        self.on_wait = on_wait
        self._max_wait = max_wait
        self._interval = per_chat_interval
        self._group_per_minute = group_per_minute
        self._global_spacing = 1.0 / global_per_second
        self._global_next = 0.0
        self._clock = clock
        self._chats: dict[str, _Chat] = {}

    def pause(self, chat_id: str, seconds: float) -> None:
        """Hold every message to ``chat_id`` for ``seconds`` (Telegram's ``retry_after``)."""
        chat = self._chats.setdefault(chat_id, _Chat())
        chat.paused_until = max(chat.paused_until, self._clock() + seconds)

    def paused_for(self, chat_id: str) -> float:
        """Seconds left on a pause of ``chat_id``; 0 when it is not paused."""
        chat = self._chats.get(chat_id)
        return max(0.0, chat.paused_until - self._clock()) if chat else 0.0

    async def wait(self, chat_id: str) -> None:
        """Wait for this chat's next slot and then for the global one.

        The slot is reserved before sleeping, so concurrent callers for one chat queue up
        in order instead of all waking at once.

        Raises:
            RateLimitError: the wait would exceed ``max_wait``; ``retry_after`` says how long.
        """
        now = self._clock()
        chat = self._chats.setdefault(chat_id, _Chat())
        slot = max(now, chat.paused_until, chat.next_free)
        if chat_id.startswith("-"):  # groups, supergroups and channels have negative ids
            while chat.recent and chat.recent[0] <= now - 60.0:
                chat.recent.popleft()
            if len(chat.recent) >= self._group_per_minute:
                slot = max(slot, chat.recent[-self._group_per_minute] + 60.0)
        delay = slot - now
        if delay > self._max_wait:
            raise RateLimitError(
                "telegram",
                f"flood limit for chat {chat_id}: next message in {delay:.0f} s",
                retry_after=delay,
            )
        chat.next_free = slot + self._interval
        if chat_id.startswith("-"):
            chat.recent.append(slot)
        if delay > 0:
            self._waiting(delay, "server" if chat.paused_until >= slot else "pacing")
            await asyncio.sleep(delay)
        now = self._clock()
        start = max(now, self._global_next)
        self._global_next = start + self._global_spacing
        if start > now:
            self._waiting(start - now, "pacing")
            await asyncio.sleep(start - now)

    def _waiting(self, seconds: float, reason: str) -> None:
        if self.on_wait is not None:
            self.on_wait(seconds, reason)
