"""The IMAP intake loop: connect, catch up by UID, IDLE (or poll), reconnect with backoff.

Per mail: read its size and structure, then its header and text parts (``_partial``:
never its attachments; only its header when it is larger than ``max_message_bytes``),
accept it into the inbox (committed), then mark it
on the server (flag or move), then advance the stored position. A crash anywhere in
between fetches the mail again, and the inbox recognises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

from botkit import Inbox, ServiceError, StoreError
from botkit_email._errors import Redactor
from botkit_email._imap import ImapSession, MailboxStatus
from botkit_email._intake import SKIPPED, Intake
from botkit_email._ledger import Ledger, Position
from botkit_email._oauth import AccessTokens
from botkit_email._partial import read_mail
from botkit_email.settings import EmailSettings

__all__ = ["MailboxWatcher", "new_uids"]

log = logging.getLogger(__name__)


def new_uids(found: list[int], last_uid: int) -> list[int]:
    """The UIDs above ``last_uid``: ``UID SEARCH UID n:*`` also returns the highest
    existing UID when none is at least ``n`` (``n:*`` means ``*:n``), which is old."""
    return sorted(uid for uid in set(found) if uid > last_uid)


class MailboxWatcher:
    """Keeps one folder synchronised into the inbox until stopped."""

    def __init__(
        self,
        name: str,
        settings: EmailSettings,
        inbox: Inbox,
        ledger: Ledger,
        intake: Intake,
        redactor: Redactor,
        tokens: AccessTokens | None = None,
    ) -> None:
        self._name = name
        self._settings = settings
        self._inbox = inbox
        self._ledger = ledger
        self._intake = intake
        self._redactor = redactor
        self._tokens = tokens
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._synced = asyncio.Condition()
        self._started = 0
        self._completed = 0
        self._delay = settings.reconnect_min

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end (it logs out first)."""
        self._stop.set()
        self._wake.set()

    async def sync_now(self) -> None:
        """Check the folder now; return once a check that began after this call is done."""
        target = self._started + 1
        self._wake.set()
        async with self._synced:
            await self._synced.wait_for(lambda: self._completed >= target or self._stop.is_set())

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect and serve until stopped, reconnecting with jittered backoff.

        The adapter runs this under the mailbox's singleton lease: it is cancelled when
        this process loses the lease (then it hangs up at once, without the polite
        LOGOUT that could outlast the lease) and called again once it holds it again.
        """
        while not self._stop.is_set():
            session: ImapSession | None = None
            try:
                session = await ImapSession.open(self._settings, self._redactor, self._tokens)
                await self._serve(session)
            except asyncio.CancelledError:
                if session is not None:
                    session.abort()
                    session = None
                raise
            except ServiceError as exc:
                log.warning("email %s: %s; reconnecting in %.3g s", self._name, exc, self._delay)
            except StoreError as exc:
                log.warning("email %s: could not store mail (%s); retrying", self._name, exc)
            except Exception:
                log.exception("email %s: unexpected error in the IMAP loop", self._name)
            finally:
                if session is not None:
                    await session.close()
            if self._stop.is_set():
                break
            await self._pause(self._delay * (0.75 + random.random() / 2))
            self._delay = min(self._delay * 2, self._settings.reconnect_max)
        async with self._synced:
            self._synced.notify_all()

    async def _pause(self, seconds: float) -> None:
        """Wait before reconnecting; :meth:`sync_now` or :meth:`stop` cut it short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        if not self._stop.is_set():
            self._wake.clear()  # else one early wake-up would end every later pause at once

    async def _serve(self, session: ImapSession) -> None:
        settings = self._settings
        idle = settings.idle and session.has("IDLE")
        if settings.idle and not idle:
            log.info(
                "email %s: the server does not offer IDLE; checking every %g s",
                self._name,
                settings.poll_interval,
            )
        if settings.after_accept == "move":
            await session.create(settings.move_to)
        while not self._stop.is_set():
            self._wake.clear()
            await self._sync(session)
            self._delay = settings.reconnect_min  # a full pass worked: the link is good
            if self._stop.is_set() or self._wake.is_set():
                continue
            if idle:
                await session.idle(settings.idle_renew, self._wake)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), settings.poll_interval)

    async def _sync(self, session: ImapSession) -> None:
        self._started += 1
        current = self._started
        try:
            await self._catch_up(session)
        finally:
            async with self._synced:
                self._completed = max(self._completed, current)
                self._synced.notify_all()

    async def _catch_up(self, session: ImapSession) -> None:
        mailbox = self._settings.mailbox
        status = await session.select(mailbox)
        position = await self._ledger.position(mailbox)
        if position is not None and position.uidvalidity == status.uidvalidity:
            found = await session.uid_search("UID", f"{position.last_uid + 1}:*")
            for uid in new_uids(found, position.last_uid):
                await self._handle(session, status.uidvalidity, uid)
                await self._ledger.set_position(mailbox, Position(status.uidvalidity, uid))
            return
        await self._resync(session, status, first=position is None)

    async def _resync(self, session: ImapSession, status: MailboxStatus, *, first: bool) -> None:
        """First start, or the server renumbered the folder: read only unread mail not yet
        marked as handled; what was accepted before is recognised by its Message-ID."""
        settings = self._settings
        mailbox = settings.mailbox
        if not first:
            log.warning(
                "email %s: UIDVALIDITY of %s changed; resynchronising (mail already handled "
                "is recognised by its Message-ID and not answered again)",
                self._name,
                mailbox,
            )
        everything = await session.uid_search("ALL")
        top = max(everything, default=0)
        if status.uidnext is not None:
            top = max(top, status.uidnext - 1)
        if first and settings.initial_sync == "new":
            log.info("email %s: first start; only mail arriving from now on is read", self._name)
            await self._ledger.set_position(mailbox, Position(status.uidvalidity, top))
            return
        # Unread mail only, whatever marks handled mail: a first start on a mailbox full of
        # old, read mail must not answer all of it.
        criteria = ["UNSEEN"]
        if settings.after_accept == "flag":
            criteria += ["UNKEYWORD", settings.flag]
        for uid in await session.uid_search(*criteria):
            if uid <= top:
                await self._handle(session, status.uidvalidity, uid)
        await self._ledger.set_position(mailbox, Position(status.uidvalidity, top))

    async def _handle(self, session: ImapSession, uidvalidity: int, uid: int) -> None:
        mailbox = self._settings.mailbox
        limit = self._settings.max_message_bytes
        log.debug("email %s: fetching UID %d of %s", self._name, uid, mailbox)
        # Attachments are never downloaded here, and a mail over the limit only has its
        # header read (_partial): enough to store it and to recognise it when seen again.
        fetched = await read_mail(session, uid, limit)
        if fetched is None:
            log.warning("email %s: UID %d vanished before it could be read", self._name, uid)
            return
        message = await self._intake.prepare(fetched, mailbox, uidvalidity, uid)
        accepted = await self._inbox.accept(message, skip=message.metadata.get(SKIPPED))
        skipped = message.metadata.get(SKIPPED)
        log.info(
            "email %s: stored mail %s from %s (UID %d)%s%s",
            self._name,
            message.external_id,
            message.sender.id,
            uid,
            " again (duplicate)" if accepted.duplicate else "",
            f", not to be answered: {skipped}" if skipped else "",
        )
        await self._acknowledge(session, uid)

    async def _acknowledge(self, session: ImapSession, uid: int) -> None:
        settings = self._settings
        if settings.after_accept == "seen":
            await session.add_flags(uid, "\\Seen")
        elif settings.after_accept == "flag":
            await session.add_flags(uid, settings.flag)
        else:
            await session.move(uid, settings.move_to)
