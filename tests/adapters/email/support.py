"""Helpers for the email tests: building mails, settling a bot, reading what it stored."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from botkit import Bot, Context, Message, Plugin, Reply
from botkit.store.models import messages
from botkit_email import EmailAdapter

DATA = Path(__file__).with_name("data")

#: A skill that answers every message at once, in Markdown: the model's place in tests
#: that are about mail, not about the model.
echo = Plugin("echo")


@echo.on_message()
async def _echo(message: Message, ctx: Context) -> Reply:
    return Reply(f"**Noted.** You wrote: {message.text}")


def make_mail(
    *,
    sender: str = "Ann Example <ann@example.org>",
    to: str = "bot@example.test",
    subject: str = "Opening hours",
    body: str = "Hello, when are you open on Saturday?",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> bytes:
    """A well-formed mail as a client would send it (CRLF line ends)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id or make_msgid(domain="example.org")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def new_id(domain: str = "example.org") -> str:
    """A fresh Message-ID."""
    return f"<{uuid.uuid4().hex}@{domain}>"


async def deliver(account: Any, data: bytes, mailbox: str = "INBOX", flags: str = "") -> None:
    """IMAP APPEND a mail into the test account (in a thread: imaplib blocks)."""
    await asyncio.to_thread(account.append, data, mailbox, flags)


async def settle(bot: Bot, adapter: EmailAdapter) -> None:
    """Let the adapter read the mailbox now and the bot finish everything it accepted."""
    await asyncio.wait_for(adapter.sync_now(), 20)
    await asyncio.wait_for(bot.dispatcher.idle(), 20)


@dataclass(frozen=True)
class Stored:
    """An inbound mail as the store has it."""

    external_id: str
    status: str
    text: str
    sender_id: str | None
    meta: dict[str, Any]
    raw: dict[str, Any] | None
    conversation_id: int


async def inbound(bot: Bot) -> list[Stored]:
    """Every inbound message in the bot's store, oldest first."""
    query = select(messages).where(messages.c.direction == "in")
    rows = await bot.database.read(lambda conn: conn.execute(query.order_by(messages.c.id)).all())
    return [
        Stored(
            r.external_id or "",
            r.status,
            r.text,
            r.sender_id,
            dict(r.meta or {}),
            dict(r.raw) if r.raw is not None else None,
            r.conversation_id,
        )
        for r in rows
    ]


async def outbound(bot: Bot) -> list[tuple[str, str, str | None]]:
    """Every outbound message: (status, external id, error)."""
    query = select(messages).where(messages.c.direction == "out")
    rows = await bot.database.read(lambda conn: conn.execute(query.order_by(messages.c.id)).all())
    return [(r.status, r.external_id or "", r.error) for r in rows]
