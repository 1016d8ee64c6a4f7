"""``send``: the last line of loop safety, then SMTP, an IMAP draft, or a notification.

Whatever the plugins decided, nothing goes out to a mail that intake marked as not
to be answered, a mail gets at most one answer, and the answer goes to the address
intake chose (never to this mailbox or to a machine). Each outbox entry's Message-ID is
derived from its ``delivery_id`` and its progress recorded before sending, so a resend
after a crash is logged, reuses the Message-ID, and a reply known to be sent is not
sent again.
"""

from __future__ import annotations

import email.policy
import logging
from typing import Any

from botkit import ConversationRef, Reply, RequestRejectedError, SentMessage, ServiceError
from botkit_email._compose import build_notification, build_reply, derive_message_id
from botkit_email._errors import SMTP, Redactor
from botkit_email._imap import ImapSession
from botkit_email._ledger import Ledger
from botkit_email._loops import is_automated_address
from botkit_email._oauth import AccessTokens
from botkit_email._smtp import send_mail
from botkit_email.settings import EmailSettings

__all__ = ["Outgoing"]

log = logging.getLogger(__name__)


class Outgoing:
    """Sends one adapter's replies in its configured mode."""

    def __init__(
        self,
        name: str,
        settings: EmailSettings,
        ledger: Ledger,
        redactor: Redactor,
        salt: str,
        tokens: AccessTokens | None = None,
    ) -> None:
        self._name = name
        self._tokens = tokens
        self._settings = settings
        self._ledger = ledger
        self._redactor = redactor
        self._salt = salt

    async def send(
        self, conversation: ConversationRef, reply: Reply, delivery_id: str
    ) -> SentMessage:
        """Deliver ``reply`` (see the module docstring for what is refused)."""
        settings = self._settings
        message_id = derive_message_id(delivery_id, self._salt, settings.id_domain)
        previous = await self._ledger.delivery(delivery_id)
        if previous is not None and previous.get("status") == "sent":
            log.warning(
                "email %s: reply %s (%s) was already sent before a restart; not sending it again",
                self._name,
                delivery_id,
                message_id,
            )
            return SentMessage(conversation, message_id, reply.text)
        external_id, record = await self._record_for(conversation, reply)
        answered_by = record.get("answered_by")
        if reply.reply_to and answered_by and answered_by != delivery_id:
            raise RequestRejectedError(
                SMTP,
                f"not sending a second automatic reply to {external_id} (one per mail)",
                code="already_answered",
            )
        if previous is not None and previous.get("status") == "sending":
            log.warning(
                "email %s: sending reply %s again after an interrupted attempt, with the same "
                "Message-ID %s (the recipient may already have it)",
                self._name,
                delivery_id,
                message_id,
            )
        if reply.reply_to:
            record["answered_by"] = delivery_id
            await self._ledger.save_mail(external_id, record)
        await self._ledger.save_delivery(delivery_id, "sending", message_id)
        try:
            await self._deliver(record, reply, message_id, retry=previous is not None)
        except ServiceError as exc:
            # "retrying": the outbox tries again with the same id (and Message-ID); only
            # a "sending" left behind means a crash cut an attempt short.
            status = "retrying" if exc.retryable else "failed"
            await self._ledger.save_delivery(delivery_id, status, message_id)
            if not exc.retryable and reply.reply_to:
                record["answered_by"] = None
                await self._ledger.save_mail(external_id, record)
            raise
        await self._ledger.save_delivery(delivery_id, "sent", message_id)
        root = conversation.thread_id or str(record.get("thread") or "")
        if root:
            await self._ledger.remember_thread(message_id, root)
        return SentMessage(conversation, message_id, reply.text)

    async def _record_for(
        self, conversation: ConversationRef, reply: Reply
    ) -> tuple[str, dict[str, Any]]:
        """The inbound mail this reply answers (or the thread's newest), checked."""
        external_id = reply.reply_to
        if not external_id and conversation.thread_id:
            external_id = await self._ledger.thread_last(conversation.thread_id)
        record = await self._ledger.mail(external_id) if external_id else None
        if external_id is None or record is None:
            raise RequestRejectedError(
                SMTP,
                f"no mail known to answer in {conversation.key}: botkit only writes to "
                "people whose mail it read",
                code="unknown_mail",
            )
        if record.get("decision") != "answer":
            raise RequestRejectedError(
                SMTP,
                f"not answering {external_id}: {record.get('reason') or 'marked not to answer'}",
                code="autoreply_skipped",
            )
        recipient = str(record.get("recipient") or "")
        if (
            not recipient
            or recipient in self._settings.own_addresses
            or is_automated_address(recipient)
        ):
            raise RequestRejectedError(
                SMTP, f"not answering {external_id}: no address to answer", code="no_recipient"
            )
        return external_id, record

    async def _deliver(
        self, record: dict[str, Any], reply: Reply, message_id: str, *, retry: bool
    ) -> None:
        settings = self._settings
        auto = "auto-replied" if reply.reply_to else "auto-generated"
        if settings.mode == "notify":
            target = settings.notify_to or ""
            message = build_notification(settings, record, reply, message_id, to=target)
            await send_mail(settings, message, [target], self._redactor, self._tokens)
        elif settings.mode == "draft":
            recipient = str(record["recipient"])
            message = build_reply(
                settings, record, reply, message_id, to=recipient, auto_submitted=auto
            )
            # IMAP wants CRLF lines; the SMTP policy also encodes non-ASCII headers.
            data = message.as_bytes(policy=email.policy.SMTP)
            await self._save_draft(data, message_id, retry=retry)
        else:
            recipient = str(record["recipient"])
            message = build_reply(
                settings, record, reply, message_id, to=recipient, auto_submitted=auto
            )
            await send_mail(settings, message, [recipient], self._redactor, self._tokens)
        log.info(
            "email %s: %s %s for %s",
            self._name,
            {"reply": "sent", "draft": "saved draft", "notify": "sent notification"}[
                settings.mode
            ],
            message_id,
            record.get("message_id") or record.get("from"),
        )

    async def _save_draft(self, data: bytes, message_id: str, *, retry: bool) -> None:
        folder = self._settings.drafts_folder
        session = await ImapSession.open(self._settings, self._redactor, self._tokens)
        try:
            await session.create(folder)
            if retry:
                await session.select(folder)
                if await session.uid_search("HEADER", "Message-ID", f'"{message_id}"'):
                    log.info("draft %s is already in %s", message_id, folder)
                    return
            await session.append(folder, data, "(\\Draft \\Seen)")
        finally:
            await session.close()
