"""The getUpdates loop: long polling whose offset moves only past accepted updates."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import error as tg

from botkit_telegram._errors import retry_after_seconds
from botkit_telegram._request import RawBot

__all__ = ["ALLOWED_UPDATES", "Poller"]

log = logging.getLogger(__name__)

#: The update kinds the adapter asks for; everything else is never delivered.
ALLOWED_UPDATES = ["message"]


class Poller:
    """Fetches updates and hands each to ``handle``; acknowledges only what it returned from.

    Telegram considers an update confirmed once getUpdates is called with an offset above
    its id. The offset here moves past an update only after ``handle`` returned, so an
    update whose ``inbox.accept`` failed is fetched again after a backoff; nothing is
    acknowledged that was not committed.

    The adapter runs :meth:`run` under a singleton lease (``Inbox.singleton``): it is
    cancelled when this process loses the lease and called again when it holds it once
    more. Cancelling it mid-request closes that request's connection, so the next
    holder's getUpdates is the only one Telegram sees. An update handed over but not yet
    confirmed to Telegram is fetched again by the next holder, and the inbox recognises
    it.

    Args:
        bot: the Bot API client.
        handle: called with each update (plain JSON); raising means "not accepted".
        poll_timeout: seconds a long poll waits on the server.
        backoff_initial: the first wait after a failure, doubled on each further one.
        backoff_max: the cap on that wait.
    """

    def __init__(
        self,
        bot: RawBot,
        handle: Callable[[dict[str, Any]], Awaitable[None]],
        *,
        poll_timeout: int,
        backoff_initial: float,
        backoff_max: float,
    ) -> None:
        self._bot = bot
        self._handle = handle
        self._poll_timeout = poll_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._failures = 0  # consecutive failed getUpdates calls
        self._refusals = 0  # consecutive failed accepts of the same update
        self._episode: str | None = None  # the kind of failure being backed off from
        #: The next offset to ask for: one above the last acknowledged update.
        self.offset: int | None = None

    async def run(self) -> None:
        """Poll until cancelled (the lease lost, or the adapter stopping)."""
        while True:
            try:
                updates = await self._bot.get_raw_updates(
                    offset=self.offset,
                    poll_timeout=self._poll_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                )
            except tg.RetryAfter as exc:
                await asyncio.sleep(retry_after_seconds(exc))
                continue
            except tg.TelegramError as exc:
                self._report(exc)
                self._failures += 1
                await self._back_off(self._failures)
                continue
            except Exception:  # a bug or a warning turned error must not end polling
                log.exception("getUpdates failed unexpectedly; retrying with backoff")
                self._failures += 1
                await self._back_off(self._failures)
                continue
            if self._episode is not None:
                log.info("getUpdates works again after %d failed attempts", self._failures)
            self._episode = None
            self._failures = 0
            for update in updates:
                if not await self._process(update):
                    self._refusals += 1
                    await self._back_off(self._refusals)
                    break

    async def _process(self, update: dict[str, Any]) -> bool:
        """Hand one update over; True when the offset may move past it."""
        update_id = update.get("update_id")
        if not isinstance(update_id, int):
            log.warning("an update without update_id was skipped")
            return True
        if self.offset is not None and update_id < self.offset:
            return True  # already acknowledged; the server resent it
        try:
            await self._handle(update)
        except Exception as exc:
            log.warning(
                "update %d was not accepted (%s: %s); it will be fetched again",
                update_id,
                type(exc).__name__,
                exc,
            )
            return False
        self.offset = update_id + 1
        self._refusals = 0
        return True

    def _report(self, exc: tg.TelegramError) -> None:
        """Log a failure once per episode, not on every retry."""
        kind = type(exc).__name__
        if self._episode == kind:
            log.debug("getUpdates failed again: %s", exc.message)
            return
        self._episode = kind
        if isinstance(exc, tg.Conflict):
            log.error(
                "Telegram refused getUpdates with 409 Conflict (%s): a process outside this "
                "bot's database polls with this bot token (processes sharing the database "
                "take turns by lease), or a webhook is set. Backing off (up to %g s) until "
                "it stops.",
                exc.message,
                self._backoff_max,
            )
        elif isinstance(exc, tg.InvalidToken):
            log.error("Telegram refused the bot token on getUpdates; retrying with backoff")
        else:
            log.warning("getUpdates failed (%s: %s); retrying with backoff", kind, exc.message)

    async def _back_off(self, attempt: int) -> None:
        delay = min(self._backoff_max, self._backoff_initial * 2 ** (attempt - 1))
        await asyncio.sleep(delay * random.uniform(0.8, 1.2))
