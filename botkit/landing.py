"""State changes that must land: tried again while the database is away, never dropped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from botkit.exceptions import StoreUnavailableError

__all__ = ["until_landed"]

log = logging.getLogger(__name__)

T = TypeVar("T")
FIRST_WAIT = 0.5  # seconds before the second try; doubled each time
LONGEST_WAIT = 10.0


async def until_landed(change: Callable[[], Awaitable[T]], what: str) -> T:
    """Make a state change, trying again for as long as the database is away.

    A change that is lost (a message answered but not marked, a reply sent but not
    marked delivered) would be done twice after a restart, so it is never given up on
    and never suppressed; the claims behind it lapse meanwhile, and fencing decides
    whether it still applies once the database is back.

    Raises:
        StoreError: any other failure of the store (``ClaimLostError``: another process
            holds the work now), which trying again would not mend.
    """
    wait = FIRST_WAIT
    while True:
        try:
            return await change()
        except StoreUnavailableError as exc:
            log.warning("could not %s (%s); trying again in %.1f s", what, exc, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)
