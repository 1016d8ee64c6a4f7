"""Building the mail botkit sends: replies, drafts and notifications.

Every one carries a Message-ID derived from the outbox's ``delivery_id`` (so a resend
after a crash is recognisably the same message) and an ``Auto-Submitted`` header
(RFC 3834), and asks Exchange not to auto-answer it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any

from botkit import Reply
from botkit_email._markdown import looks_like_markdown, markdown_to_html
from botkit_email._threads import reply_subject
from botkit_email.settings import EmailSettings

__all__ = ["build_notification", "build_reply", "derive_message_id", "trim_references"]

_MAX_REFERENCES = 20
_QUOTE_LINES = 60


def derive_message_id(delivery_id: str, salt: str, domain: str) -> str:
    """The fixed Message-ID of one outbox entry: the same on every resend of it."""
    safe = re.sub(r"[^A-Za-z0-9.-]", "-", delivery_id)[:64]
    digest = hmac.new(salt.encode(), delivery_id.encode(), hashlib.sha256).hexdigest()[:16]
    return f"<botkit.{safe}.{digest}@{domain}>"


def trim_references(references: Sequence[str]) -> list[str]:
    """At most 20 references: the root and the newest (RFC 5322 3.6.4 allows trimming)."""
    refs = list(dict.fromkeys(references))
    if len(refs) <= _MAX_REFERENCES:
        return refs
    return [refs[0], *refs[-(_MAX_REFERENCES - 1) :]]


def build_reply(
    settings: EmailSettings,
    record: Mapping[str, Any],
    reply: Reply,
    message_id: str,
    *,
    to: str,
    auto_submitted: str = "auto-replied",
) -> EmailMessage:
    """The answer to the inbound mail described by ``record`` (a ``mail:`` ledger entry)."""
    message = _base(settings, message_id, auto_submitted)
    message["To"] = to
    subject = reply.metadata.get("subject")
    message["Subject"] = reply_subject(str(subject) if subject else str(record.get("subject", "")))
    original = record.get("message_id")
    references = [str(r) for r in record.get("references") or []]
    if original:
        message["In-Reply-To"] = str(original)
        references.append(str(original))
    if references:
        message["References"] = " ".join(trim_references(references))
    quote = _quote(record) if settings.quote_original else ""
    _set_body(message, reply, quote)
    return message


def build_notification(
    settings: EmailSettings,
    record: Mapping[str, Any],
    reply: Reply,
    message_id: str,
    *,
    to: str,
) -> EmailMessage:
    """``notify`` mode: the bot's answer and the mail it answers, sent to ``to``."""
    message = _base(settings, message_id, "auto-generated")
    message["To"] = to
    sender = record.get("from_name") or record.get("from") or "unknown sender"
    subject = str(record.get("subject") or "(no subject)")
    message["Subject"] = f"[{settings.address}] {subject} (from {sender})"
    if record.get("message_id"):
        message["References"] = str(record["message_id"])
    intro = (
        f"New mail to {settings.address} from {sender} <{record.get('from', '')}>\n"
        f"Subject: {subject}\n"
        f"Reply to: {record.get('recipient', '')}\n\n"
        "The bot's answer (not sent to the sender):\n\n"
    )
    body = Reply(intro + reply.text, reply.markup, reply.reply_to, reply.metadata)
    _set_body(message, body, _quote(record))
    return message


def _base(settings: EmailSettings, message_id: str, auto_submitted: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((settings.display_name or "", settings.address))
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = auto_submitted
    # Exchange and Outlook: do not send out-of-office or other automatic answers to this.
    message["X-Auto-Response-Suppress"] = "All"
    return message


def _quote(record: Mapping[str, Any]) -> str:
    text = str(record.get("text") or "").strip()
    if not text:
        return ""
    lines = text.split("\n")
    if len(lines) > _QUOTE_LINES:
        lines = [*lines[:_QUOTE_LINES], "[...]"]
    who = record.get("from_name") or record.get("from") or "you"
    when = record.get("date")
    attribution = f"On {_when(when)}, {who} wrote:" if when else f"{who} wrote:"
    return attribution + "\n" + "\n".join(f"> {line}" if line else ">" for line in lines)


def _when(value: Any) -> str:
    try:
        return format_datetime(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)


def _set_body(message: EmailMessage, reply: Reply, quote: str) -> None:
    text = reply.text.rstrip()
    if not text and reply.attachments:
        text = "(attached)"
    plain = f"{text}\n\n{quote}\n" if quote else f"{text}\n"
    message.set_content(plain, subtype="plain", charset="utf-8", cte=_cte(plain))
    if reply.markup == "markdown" and looks_like_markdown(text):
        html = markdown_to_html(f"{text}\n\n{quote}" if quote else text)
        message.add_alternative(html, subtype="html", charset="utf-8", cte=_cte(html))
    # a reply's files (a spoken reply's audio) go with it, in the same mail
    for attachment in reply.attachments:
        if attachment.data is None:
            continue
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.name,
        )


def _cte(text: str) -> str:
    """Quoted-printable for mostly-ASCII text, base64 otherwise (both survive any relay)."""
    non_ascii = sum(1 for c in text if ord(c) > 127)
    return "quoted-printable" if non_ascii * 4 < len(text) + 1 else "base64"
