"""From raw IMAP bytes to a botkit ``Message``, with the auto-reply decision recorded.

The decision (answer, or skip and why) is taken once per mail and stored in the ledger
before the mail is accepted, so a mail fetched again (a reconnect, a changed
UIDVALIDITY) gets the same decision and never a second grant.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botkit import Attachment, ConversationRef, Message, Sender
from botkit_email._ledger import Ledger
from botkit_email._loops import allowed, reply_target, skip_reason
from botkit_email._parse import ParsedMail, parse_mail
from botkit_email._partial import FetchedMail
from botkit_email._threads import resolve_thread
from botkit_email._urls import imap_url
from botkit_email.settings import EmailSettings

__all__ = ["SKIPPED", "Intake", "external_id_of"]

log = logging.getLogger(__name__)

#: The ``Message.metadata`` key that marks mail stored but not to be answered.
SKIPPED = "autoreply_skipped"
_MAX_ID = 200
_QUOTED_TEXT = 4000
# Reasons that mean a machine wrote the mail.
_MACHINE = ("auto_submitted", "bounce", "automated_sender", "list_mail", "precedence")


def external_id_of(mail: ParsedMail, fingerprint: bytes) -> str:
    """The inbox's dedup key: the Message-ID, which survives a changed UIDVALIDITY and a
    mail delivered twice; a digest of ``fingerprint`` (what was read of the mail) for
    mail without a usable one."""
    if mail.message_id and len(mail.message_id) <= _MAX_ID:
        return mail.message_id
    return "sha256:" + hashlib.sha256(fingerprint).hexdigest()


class Intake:
    """Parses, threads and classifies inbound mail for one adapter."""

    def __init__(
        self,
        channel: str,
        settings: EmailSettings,
        ledger: Ledger,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._channel = channel
        self._settings = settings
        self._ledger = ledger
        self._clock = clock

    async def prepare(
        self,
        fetched: FetchedMail | bytes,
        mailbox: str,
        uidvalidity: int,
        uid: int,
    ) -> Message:
        """The ``Message`` for one fetched mail; never raises for a malformed mail.

        ``fetched``: what was read (``read_mail``), or a whole mail's bytes. A mail over
        ``max_message_bytes`` (only its header read) is stored as skipped
        (``too_large``), never answered. Attachments keep their name, type, size and an
        IMAP URL: :meth:`EmailAdapter.fetch_attachment` reads one when a plugin asks.
        """
        if isinstance(fetched, bytes):
            fetched = FetchedMail(fetched, len(fetched), fingerprint=fetched)
        raw = fetched.raw
        oversized = fetched.size if fetched.oversized else None
        try:
            mail = parse_mail(raw)
        except Exception:  # parse_mail is defensive; this is the last line
            log.exception("mail UID %d in %s could not be parsed; stored as is", uid, mailbox)
            return self._unparsable(fetched, mailbox, uidvalidity, uid)
        external_id = external_id_of(mail, fetched.fingerprint)
        await self._ledger.locate(mailbox, uidvalidity, uid, external_id)
        record = await self._ledger.mail(external_id)
        if record is None:
            record = await self._decide(mail, external_id, oversized)
            record.update({"mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid})
            await self._ledger.save_mail(external_id, record)
        return self._message(mail, external_id, record, (mailbox, uidvalidity, uid), fetched)

    def _too_large(self, size: int) -> str:
        limit = self._settings.max_message_bytes
        return (
            f"too_large: the mail is {size:,} bytes, over max_message_bytes ({limit:,}); "
            "only its headers were read"
        )

    async def _decide(
        self, mail: ParsedMail, external_id: str, oversized: int | None
    ) -> dict[str, Any]:
        settings = self._settings
        own = settings.own_addresses
        root = await resolve_thread(mail, external_id, self._ledger, own)
        await self._ledger.set_thread_last(root, external_id)
        recipient = reply_target(mail, own)
        # Too large first: whatever else is true of it, it was not read.
        reason = self._too_large(oversized) if oversized is not None else None
        reason = reason or skip_reason(mail, own)
        if reason is None and not all(
            allowed(a, settings.allowed_senders, settings.allowed_domains)
            for a in {mail.from_addr, recipient}
        ):
            reason = f"sender_not_allowed: {mail.from_addr} is not on the allowlist"
        if reason is None and settings.mode == "reply" and settings.autoreply_period > 0:
            reason = await self._rate_limit(recipient, root, external_id)
        if reason is None and settings.mode == "reply":
            now, period = self._clock(), settings.autoreply_period
            await self._ledger.grant("sender", recipient, now, external_id, period=period)
            await self._ledger.grant("thread-reply", root, now, external_id, period=period)
        if reason is not None:
            log.info(
                "mail %s from %s will not be answered: %s", external_id, mail.from_addr, reason
            )
        return {
            "message_id": mail.message_id,
            "subject": mail.subject,
            "from": mail.from_addr,
            "from_name": mail.from_name,
            "recipient": recipient,
            "references": list(mail.references),
            "thread": root,
            "date": mail.date.isoformat() if mail.date else None,
            "text": mail.text[:_QUOTED_TEXT],
            "decision": "skip" if reason else "answer",
            "reason": reason,
            "answered_by": None,
        }

    async def _rate_limit(self, recipient: str, root: str, external_id: str) -> str | None:
        period = self._settings.autoreply_period
        now = self._clock()
        for kind, key, what in (
            ("sender", recipient, f"sender {recipient}"),
            ("thread-reply", root, f"thread {root}"),
        ):
            last = await self._ledger.granted_at(kind, key)
            if last is None or last[1] == external_id or now - last[0] >= period:
                continue
            when = datetime.fromtimestamp(last[0], UTC).isoformat(timespec="seconds")
            return (
                f"rate_limited: {what} already got an automatic reply at {when} "
                f"(at most one per {period:g} s)"
            )
        return None

    def _message(
        self,
        mail: ParsedMail,
        external_id: str,
        record: dict[str, Any],
        where: tuple[str, int, int],
        fetched: FetchedMail,
    ) -> Message:
        mailbox, uidvalidity, uid = where
        size = fetched.size
        reason = record.get("reason")
        metadata: dict[str, Any] = {
            "subject": mail.subject,
            "message_id": mail.message_id,
            "in_reply_to": mail.in_reply_to,
            "from": mail.from_addr,
            "to": list(mail.to),
            "cc": list(mail.cc),
            "reply_to": record.get("recipient"),
            "thread": record.get("thread"),
            "html_only": mail.html,
            "mode": self._settings.mode,
            "size": size,
        }
        if reason:
            metadata[SKIPPED] = reason
        base = self._imap_url(mailbox, uidvalidity, uid)
        attachments = tuple(
            Attachment(
                name=a.name,
                content_type=a.content_type,
                size=fetched.part_sizes.get(a.section, a.size),
                url=f"{base}/;SECTION={a.section}",
            )
            for a in mail.attachments
        )
        text = mail.text
        starts_thread = mail.in_reply_to is None and not mail.references
        if (
            self._settings.include_subject
            and starts_thread
            and mail.subject
            and mail.subject.lower() not in text.lower()
        ):
            text = f"{mail.subject}\n\n{text}".strip()
        elif not text and not mail.body.strip():
            text = mail.subject
        return Message(
            conversation=ConversationRef(
                self._channel, self._settings.address, str(record.get("thread") or external_id)
            ),
            sender=Sender(
                id=(mail.from_addr or "unknown")[:254],  # the longest valid address
                name=mail.from_name[:200] if mail.from_name else None,
                is_bot=bool(reason) and str(reason).startswith(_MACHINE),
            ),
            text=text,
            external_id=external_id,
            attachments=attachments,
            raw={
                "headers": [list(h) for h in mail.headers],
                "body": mail.body,
                "mailbox": mailbox,
                "uidvalidity": uidvalidity,
                "uid": uid,
                "size": size,
            },
            metadata=metadata,
        )

    def _imap_url(self, mailbox: str, uidvalidity: int, uid: int) -> str:
        """RFC 5092 IMAP URL of the mail, so a plugin can fetch an attachment's part."""
        return imap_url(self._settings, mailbox, uidvalidity, uid)

    def _unparsable(
        self, fetched: FetchedMail, mailbox: str, uidvalidity: int, uid: int
    ) -> Message:
        external_id = "sha256:" + hashlib.sha256(fetched.fingerprint).hexdigest()
        reason = (
            self._too_large(fetched.size)
            if fetched.oversized
            else "unparsable: the mail could not be parsed"
        )
        return Message(
            conversation=ConversationRef(self._channel, self._settings.address, external_id),
            sender=Sender(id="unknown"),
            text="",
            external_id=external_id,
            raw={"mailbox": mailbox, "uidvalidity": uidvalidity, "uid": uid, "size": fetched.size},
            metadata={SKIPPED: reason},
        )
