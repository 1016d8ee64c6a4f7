"""``EmailAdapter``: answers one mailbox, IMAP in and SMTP out, safely left running.

Intake (``_watch``) reads new mail by UID, IDLE or polling, and accepts every mail into
the inbox: answerable mail normally, mail that must not get an automatic reply (RFC
3834: auto-submitted, bulk and list mail, bounces, no-reply senders, ourselves, senders
off the allowlist, a sender or thread already answered within ``autoreply_period``),
and mail larger than ``max_message_bytes`` (of which only the headers are downloaded),
with ``metadata["autoreply_skipped"]`` saying why, through ``inbox.accept(skip=...)``:
it is stored as ``skipped`` with the reason and never reaches a handler; ``send``
refuses to answer it in any case.

Intake never downloads attachments: it reads a mail's ``BODYSTRUCTURE``, its header and
its text part only (``_partial``); ``Message.attachments`` carry each file's name, type,
size and IMAP URL, and :meth:`EmailAdapter.fetch_attachment` reads one when a plugin asks
(``ctx.fetch_attachment``).

A thread (Message-ID, In-Reply-To, References) is one conversation:
``ConversationRef(channel=name, chat_id=address, thread_id=<root Message-ID>)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import ClassVar

from botkit import (
    Adapter,
    Attachment,
    Capabilities,
    ConversationRef,
    Inbox,
    Reply,
    SentMessage,
    Singleton,
)
from botkit_email._attachments import AttachmentReader
from botkit_email._errors import Redactor
from botkit_email._intake import Intake
from botkit_email._ledger import Ledger
from botkit_email._oauth import AccessTokens
from botkit_email._outgoing import Outgoing
from botkit_email._watch import MailboxWatcher
from botkit_email.settings import EmailSettings

__all__ = ["EmailAdapter"]

log = logging.getLogger(__name__)

_LEASE_NAME_MAX = 200  # the leases table's name column


class EmailAdapter(Adapter):
    """The email channel: one instance per mailbox.

    Args:
        name: the ``[adapters.NAME]`` key; the channel of its messages.
        settings: the parsed ``EmailSettings``.

    Raises:
        ConfigError: settings that contradict each other (``check``).
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        edits=False, threads=True, max_length=200_000, markup="markdown", typing=False
    )
    settings_class: ClassVar[type[EmailSettings]] = EmailSettings

    def __init__(self, name: str, settings: EmailSettings) -> None:
        super().__init__(name)
        settings.check(f"adapters.{name}")
        self.settings = settings
        self._redactor = Redactor(
            secret.reveal()
            for secret in (settings.password, settings.smtp_secret, settings.access_token)
            if secret
        )
        self._tokens = (
            AccessTokens(settings, self._redactor) if settings.auth == "oauth2" else None
        )
        self._watcher: MailboxWatcher | None = None
        self._watching: Singleton | None = None
        self._outgoing: Outgoing | None = None
        self._attachments: AttachmentReader | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, inbox: Inbox) -> None:
        """Start watching the mailbox; returns at once (connecting happens in the background,
        with retries, so a mail server that is down does not stop the bot).

        The watcher runs in one process cluster-wide, under the lease :attr:`lease_name`
        (``inbox.singleton``): processes sharing a database take turns, and every one of
        them can send replies."""
        settings = self.settings
        for protocol, mode in (("IMAP", settings.imap_tls), ("SMTP", settings.smtp_tls)):
            if mode == "none":
                log.warning(
                    "email %s: %s without TLS: the password (or access token) and mail cross "
                    "the network in clear; for local testing only",
                    self.name,
                    protocol,
                )
        self._redactor.attach()
        ledger = Ledger(inbox.state(self.name))
        self._outgoing = Outgoing(
            self.name, settings, ledger, self._redactor, await ledger.salt(), self._tokens
        )
        intake = Intake(self.name, settings, ledger)
        self._attachments = AttachmentReader(settings, self._redactor, ledger, self._tokens)
        self._watcher = MailboxWatcher(
            self.name, settings, inbox, ledger, intake, self._redactor, self._tokens
        )
        self._watching = inbox.singleton(self.lease_name, self._watcher.run)
        self._task = asyncio.create_task(self._watching.run(), name=f"email-{self.name}")
        log.info(
            "email %s: watching %s on %s:%d as %s (mode %s)",
            self.name,
            settings.mailbox,
            settings.imap_host,
            settings.imap_port_or_default,
            settings.login,
            settings.mode,
        )

    @property
    def lease_name(self) -> str:
        """The mailbox watcher's lease: the same for every process watching this folder."""
        settings = self.settings
        name = (
            f"imap:{settings.login}@{settings.imap_host}:{settings.imap_port_or_default}"
            f"/{settings.mailbox}"
        )
        if len(name) <= _LEASE_NAME_MAX:
            return name
        return f"imap:{hashlib.sha256(name.encode()).hexdigest()}"

    @property
    def watching(self) -> Singleton | None:
        """The watcher's hold on its lease, once started: ``held`` says whether this
        process is the one reading the mailbox."""
        return self._watching

    async def stop_intake(self) -> None:
        """Stop reading mail, log out and release the watcher's lease; sending (SMTP)
        keeps working."""
        if self._watcher is not None:
            self._watcher.stop()
        task, self._task = self._task, None
        if task is not None:
            if self._watching is not None and self._watching.held:
                # the watcher logs out, then the lease is released
                await asyncio.wait([task], timeout=self.settings.timeout)
            task.cancel()  # still waiting for the lease (or too slow): nothing to wait for
            await asyncio.gather(task, return_exceptions=True)
        self._watching = None

    async def stop(self) -> None:
        """Stop reading mail and log out; accepted mail stays stored."""
        await self.stop_intake()
        self._redactor.detach()

    async def sync_now(self) -> None:
        """Check the mailbox now, and return once a check begun after this call is done
        (the next IDLE wake-up or poll would find the same mail; this is for tests,
        health checks and impatient operators). Only the process holding the watcher's
        lease checks: elsewhere this waits until this process holds it, or stops."""
        if self._watcher is None:
            raise RuntimeError(f"the {self.name} adapter is not started")
        await self._watcher.sync_now()

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Answer a mail: send it, save it as a draft, or notify, as configured.

        Raises:
            RequestRejectedError: the mail must not be answered (``code``
                ``"autoreply_skipped"``, ``"already_answered"``, ``"unknown_mail"``,
                ``"no_recipient"``), or the server refused the message for good.
            AuthenticationError: the SMTP (or IMAP, for drafts) login was refused.
            ServiceUnavailableError: the server is unreachable or refused for now.
        """
        if self._outgoing is None:
            raise RuntimeError(f"the {self.name} adapter is not started")
        return await self._outgoing.send(conversation, reply, delivery_id)

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> bytes:
        """The bytes of an attachment of a mail this adapter read: its part is fetched
        (``BODY.PEEK``, the mail stays unread) over a connection of its own, and decoded
        from base64 or quoted-printable. A mail moved by ``after_accept = "move"`` is
        found in ``move_to`` by its Message-ID.

        Args:
            attachment: one of a message's ``attachments``.
            max_bytes: refuse a part larger than this, encoded, as the server counts it
                (default ``max_message_bytes``).

        Raises:
            RequestRejectedError: not an attachment of this mailbox (``code``
                ``"unknown_attachment"``), gone (``"attachment_gone"``), or too large
                (``"too_large"``).
            AuthenticationError: the login was refused.
            ServiceUnavailableError: the server is unreachable or stopped answering.
        """
        if attachment.data is not None:
            return attachment.data
        if self._attachments is None:
            raise RuntimeError(f"the {self.name} adapter is not started")
        return await self._attachments.read(attachment, max_bytes)
