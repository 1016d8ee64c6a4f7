"""Work that runs in one process cluster-wide, held by an expiring lease row.

Several ``botkit run`` processes may share one PostgreSQL database, but some work must
run in only one of them at a time: Telegram's getUpdates (a second poller gets 409
Conflict), each IMAP mailbox watcher, the scheduler. A :class:`Singleton` runs such work
only while its process holds the lease named after it:

- it *takes* the lease when it is free (released, lapsed, or never taken); each take
  starts a tenure whose fencing token is one higher than the last;
- while the work runs it *renews* every lease/3, and judges for itself when its lease
  could end: with the local monotonic clock, from the moment the last successful renewal
  (or the take) was *sent*, since the database set the new expiry no earlier than that.
  If it cannot renew by ``STOP_AT`` of a lease after that moment, it cancels the work
  and waits for it to end, before the lease lapses and another process may take it;
- a process that does not hold the lease tries again once the holder's lease would lapse
  (as the database says), and at least every lease/3;
- a clean stop (cancelling :meth:`Singleton.run`) cancels the work and releases the
  lease at once, so another process takes over within lease/3.

No session advisory locks: they belong to one database connection, which a connection
pooler (PgBouncer in transaction mode) hands to other clients between transactions.
The queries live in ``botkit.store.leases``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botkit.store.leases import LeaseStore

__all__ = ["NAME_MAX", "RENEW_EVERY", "STOP_AT", "Singleton", "Singletons"]

log = logging.getLogger(__name__)

#: Renew after this fraction of a lease.
RENEW_EVERY = 1 / 3
#: A holder that could not renew stops its work this far into a lease after its last
#: successful renewal was sent: the rest is time for the work to end, and slack for
#: clocks that run at slightly different rates.
STOP_AT = 3 / 4
#: After a failed renewal, try again this fraction of a lease later.
RETRY_EVERY = 1 / 12
#: The longest lease name (the ``leases.name`` column).
NAME_MAX = 200

Work = Callable[[], Coroutine[Any, Any, object]]


class Singleton:
    """Named work that runs in one process cluster-wide (see the module docstring).

    Adapters get one from :meth:`botkit.Inbox.singleton`; run it as a task they own:
    ``asyncio.create_task(singleton.run())``, and cancel that task to stop.

    Attributes:
        name: the lease's name, the same in every process that runs this work.
        held: whether this process holds the lease and the work is running.
        token: the fencing token of this process's current (or last) tenure.
    """

    def __init__(
        self,
        name: str,
        work: Work,
        *,
        leases: LeaseStore | None,
        holder: str,
        lease: float,
        owner: Singletons | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if lease <= 0:
            raise ValueError("a lease must last a positive number of seconds")
        if not 1 <= len(name) <= NAME_MAX:
            raise ValueError(f"a lease's name must be 1-{NAME_MAX} characters: {name!r}")
        self.name = name
        self.held = False
        self.token: int | None = None
        self._work = work
        self._leases = leases
        self._holder = holder
        self._lease = lease
        self._owner = owner
        self._clock = clock
        self._task: asyncio.Task[object] | None = None
        self._sent = 0.0  # local time the last successful take or renewal was sent

    @property
    def lease(self) -> float:
        """How long one take or renewal lasts, in seconds."""
        return self._lease

    async def run(self) -> None:
        """Hold the lease and run the work until cancelled, or until the work returns.

        Waits while another process holds the lease; runs the work once this one holds
        it; stops the work when the lease cannot be renewed and waits to take it again.
        Without a store (an inbox built by hand, in a test) the work just runs.

        Raises:
            Exception: whatever the work raised; the lease is released first.
        """
        if self._leases is None:
            self.held = True
            try:
                await self._work()
            finally:
                self.held = False
            return
        if self._owner is not None:
            self._owner.enter(self.name)
        try:
            while True:
                await self._take(self._leases)
                if await self._hold(self._leases):
                    return
        finally:
            await self._let_go(self._leases)
            if self._owner is not None:
                self._owner.leave(self.name)

    async def _take(self, leases: LeaseStore) -> None:
        """Wait until this process holds the lease."""
        failing = False
        held_by_another = False  # taking it then is a take-over
        while True:
            sent = self._clock()
            try:
                taken = await leases.take(self.name, self._holder, self._lease)
            except Exception as exc:  # StoreError, or the driver's own (connection refused)
                if not failing:
                    log.warning("lease %s: could not take it (%s); retrying", self.name, exc)
                failing = True
                await asyncio.sleep(self._lease * RENEW_EVERY * random.uniform(0.8, 1.2))
                continue
            if taken.token is not None:
                self.token, self._sent, self.held = taken.token, sent, True
                log.info("lease %s: taken (token %d)", self.name, taken.token)
                if held_by_another and self._owner is not None:
                    self._owner.taken_over(self.name)
                return
            held_by_another = held_by_another or taken.holder not in (None, self._holder)
            if failing:
                log.info("lease %s: the database answers again", self.name)
            failing = False
            log.debug("lease %s: held by %s for %.3g s", self.name, taken.holder, taken.remaining)
            # just after the holder's lease would lapse, and at least every lease/3
            wait = min(self._lease * RENEW_EVERY, taken.remaining + self._lease / 50)
            await asyncio.sleep(wait)

    async def _hold(self, leases: LeaseStore) -> bool:
        """Run the work while renewing; true when the work ended by itself, false when
        the lease was lost (the work has been stopped)."""
        assert self.token is not None
        task = asyncio.create_task(self._work(), name=f"lease-{self.name}")
        self._task = task
        renew_at = self._sent + self._lease * RENEW_EVERY
        while True:
            stop_at = self._sent + self._lease * STOP_AT
            wait = max(min(renew_at, stop_at) - self._clock(), 0.0)
            await asyncio.wait([task], timeout=wait)
            if task.done():
                self._task, self.held = None, False
                task.result()  # the work's exception, if it raised
                return True
            sent = self._clock()
            if sent >= stop_at:
                log.error(
                    "lease %s: not renewed in time; stopping its work before the lease ends",
                    self.name,
                )
                await self._stop_work()
                return False
            try:
                async with asyncio.timeout(stop_at - sent):
                    renewed = await leases.renew(self.name, self._holder, self.token, self._lease)
            except Exception as exc:  # StoreError, a timeout, the driver's own
                log.warning(
                    "lease %s: renewal failed (%s); retrying", self.name, str(exc) or "timed out"
                )
                renew_at = min(self._clock() + self._lease * RETRY_EVERY, stop_at)
                continue
            if not renewed:
                log.error("lease %s: lost to another process; stopping its work", self.name)
                await self._stop_work()
                return False
            self._sent = sent
            renew_at = sent + self._lease * RENEW_EVERY

    async def _stop_work(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.held = False

    async def _let_go(self, leases: LeaseStore) -> None:
        """Stop the work and release the lease (a cancelled take may have committed)."""
        await self._stop_work()
        release = asyncio.ensure_future(leases.release(self.name, self._holder))
        try:
            await asyncio.shield(release)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "lease %s: could not release it (%s); it lapses within %.3g s",
                self.name,
                exc,
                self._lease,
            )


class Singletons:
    """One bot's singleton leases: every one held under the bot's holder id.

    Args:
        leases: the store's lease queries (``Store.leases``).
        holder: this process's name on what it holds (``Runtime.owner``).
        lease: how long a take or renewal lasts, in seconds (``bot.singleton_lease``).
        on_takeover: told the lease's name when this process takes a lease that another
            held (the metrics count it).
    """

    def __init__(
        self,
        leases: LeaseStore,
        *,
        holder: str,
        lease: float,
        on_takeover: Callable[[str], None] | None = None,
    ) -> None:
        self.leases = leases
        self.holder = holder
        self.lease = lease
        self._on_takeover = on_takeover
        self._running: set[str] = set()

    def taken_over(self, name: str) -> None:
        """This process took lease ``name`` after another process held it."""
        if self._on_takeover is not None:
            self._on_takeover(name)

    def singleton(self, name: str, work: Work) -> Singleton:
        """Work to run in one process cluster-wide under lease ``name``."""
        return Singleton(
            name, work, leases=self.leases, holder=self.holder, lease=self.lease, owner=self
        )

    def enter(self, name: str) -> None:
        """Note that a singleton of this bot runs under ``name``.

        Raises:
            ValueError: one already does: both would think they hold the lease.
        """
        if name in self._running:
            raise ValueError(f"lease {name!r} is already used by this bot")
        self._running.add(name)

    def leave(self, name: str) -> None:
        """Note that the singleton under ``name`` ended."""
        self._running.discard(name)
