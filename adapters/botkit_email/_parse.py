"""Parse one raw RFC 5322 message into what the adapter needs; never raises on bad mail."""

from __future__ import annotations

import contextlib
import email
import email.policy
import email.utils
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header
from email.message import EmailMessage, Message

from botkit_email._charsets import clean, decode_bytes
from botkit_email._html import html_to_text
from botkit_email._quotes import strip_quotes

__all__ = [
    "AttachmentInfo",
    "ParsedMail",
    "body_sections",
    "decode_header_value",
    "message_ids",
    "normalise_address",
    "parse_mail",
]

_MSGID = re.compile(r"<[^<>\s]+>")
_FOLD = re.compile(r"\r?\n[ \t]+")
# Some .eml files (and mbox exports) start with an mbox "From " separator line.
_MBOX_FROM = re.compile(rb"^From [^\r\n]*\r?\n")


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """A file that came with a mail; ``section`` is its IMAP body part number."""

    name: str
    content_type: str
    size: int
    section: str


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """The parts of a mail the adapter uses; every string is clean, decoded Unicode.

    Attributes:
        headers: every header, decoded, in order (names as written).
        body: the full text (quotes and signature included), from text/plain or
            converted HTML.
        text: the new text only: quoted replies and the signature stripped.
        content_type: the top-level MIME type (``multipart/report`` for bounces).
    """

    headers: tuple[tuple[str, str], ...]
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    from_addr: str
    from_name: str | None
    reply_to: tuple[str, ...]
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    body: str
    text: str
    html: bool
    content_type: str
    attachments: tuple[AttachmentInfo, ...] = field(default=())

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (any case), decoded, or ``None``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def has(self, name: str) -> bool:
        """Whether the mail has a header called ``name``."""
        return self.header(name) is not None


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse raw bytes as delivered by IMAP (CRLF or LF, with or without an mbox line)."""
    raw = _MBOX_FROM.sub(b"", raw, count=1)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = tuple((clean(k), decode_header_value(v)) for k, v in _raw_items(msg))
    lookup = _Headers(headers)
    from_name, from_addr = _first_address(lookup.get("from"))
    body, html = _body(msg)
    return ParsedMail(
        headers=headers,
        message_id=next(iter(message_ids(lookup.raw("message-id"))), None),
        in_reply_to=next(iter(message_ids(lookup.raw("in-reply-to"))), None),
        references=tuple(message_ids(lookup.raw("references"))),
        subject=" ".join((lookup.get("subject") or "").split()),
        from_addr=from_addr,
        from_name=from_name,
        reply_to=_addresses(lookup.get("reply-to")),
        to=_addresses(lookup.get("to")),
        cc=_addresses(lookup.get("cc")),
        date=_date(lookup.raw("date")),
        body=body,
        text=strip_quotes(body),
        html=html,
        content_type=_content_type(msg),
        attachments=tuple(_attachments(msg)),
    )


class _Headers:
    def __init__(self, headers: tuple[tuple[str, str], ...]) -> None:
        self._headers = headers

    def get(self, name: str) -> str | None:
        for key, value in self._headers:
            if key.lower() == name:
                return value
        return None

    def raw(self, name: str) -> str:
        return self.get(name) or ""


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    try:
        return [(str(k), str(v)) for k, v in msg.raw_items()]
    except Exception:
        return []


def decode_header_value(value: str) -> str:
    """A header's text: raw 8-bit bytes read as UTF-8 (else Windows-1252), RFC 2047
    encoded words decoded with lenient charsets, folding undone. Never raises."""
    if any("\udc80" <= c <= "\udcff" for c in value):
        value = decode_bytes(value.encode("ascii", "surrogateescape"), None)
    value = _FOLD.sub(" ", value).strip()
    if "=?" not in value:
        return clean(value)
    try:
        parts = decode_header(value)
    except Exception:
        return clean(value)
    out = []
    for data, charset in parts:
        if isinstance(data, str):
            out.append(data)
        elif charset is None:
            out.append(data.decode("raw-unicode-escape", "replace"))
        else:
            out.append(decode_bytes(data, charset))
    return clean("".join(out))


def message_ids(value: str) -> list[str]:
    """The ``<id>`` tokens in a Message-ID, In-Reply-To or References header, in order.

    A bare id without angle brackets (seen from broken mailers) is bracketed.
    """
    found = _MSGID.findall(value)
    if not found:
        token = value.strip().split()[0] if value.strip() else ""
        if token and "@" in token and len(token) < 500:
            found = [f"<{token.strip('<>')}>"]
    return found


def normalise_address(addr: str) -> str:
    """An address compared case-insensitively, without surrounding brackets or spaces."""
    return addr.strip().strip("<>").strip().lower()


def _addresses(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:
        return ()
    return tuple(normalise_address(a) for _, a in pairs if "@" in a)


def _first_address(value: str | None) -> tuple[str | None, str]:
    if not value:
        return None, ""
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:
        pairs = []
    for name, addr in pairs:
        if "@" in addr:
            return (name.strip() or None), normalise_address(addr)
    return None, ""


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value)
    except Exception:
        return None


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "text/plain"


def _text_of(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        payload = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(payload, charset)


def body_sections(raw: bytes) -> tuple[str | None, str | None]:
    """The IMAP sections of the text/plain and the text/html part :func:`parse_mail` would
    read the body from (``None`` where there is none). The choice depends only on the
    headers, so a mail whose parts are all empty gives the same answer as the full mail."""
    msg = email.message_from_bytes(_MBOX_FROM.sub(b"", raw, count=1), policy=email.policy.default)
    sections = _sections(msg)
    plain, html = _body_candidates(msg)
    return (
        sections.get(id(plain)) if plain is not None else None,
        sections.get(id(html)) if html is not None else None,
    )


def _sections(msg: Message) -> dict[int, str]:
    """IMAP section numbers by ``id()`` of every part below multiparts (and "1" for a
    single-part mail), numbered as the server numbers them."""
    found: dict[int, str] = {}

    def walk(part: Message, section: str) -> None:
        found[id(part)] = section or "1"
        payload = part.get_payload()
        if _content_type(part).startswith("multipart/") and isinstance(payload, list):
            for i, child in enumerate(payload, 1):
                if isinstance(child, Message):
                    walk(child, f"{section}.{i}" if section else str(i))

    with contextlib.suppress(Exception):
        walk(msg, "")
    if _content_type(msg).startswith("multipart/"):
        found.pop(id(msg), None)
    return found


def _body_candidates(msg: Message) -> tuple[Message | None, Message | None]:
    """The text/plain and the text/html part a body may come from."""
    plain: Message | None = None
    html: Message | None = None
    if isinstance(msg, EmailMessage):
        try:
            plain = msg.get_body(preferencelist=("plain",))
            html = msg.get_body(preferencelist=("html",))
        except Exception:
            plain = html = None
    if plain is None and html is None:
        for part in _leaves(msg):
            kind = _content_type(part)
            if _is_attachment(part):
                continue
            if kind == "text/plain" and plain is None:
                plain = part
            elif kind == "text/html" and html is None:
                html = part
    return plain, html


def _body(msg: Message) -> tuple[str, bool]:
    """The body text (text/plain preferred, else converted HTML), and whether HTML was used."""
    plain, html = _body_candidates(msg)
    text = _text_of(plain).replace("\r\n", "\n") if plain is not None else ""
    if text.strip() or html is None:
        return text.strip("\n"), False
    return html_to_text(_text_of(html)), True


def _is_attachment(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
        filename = part.get_filename()
    except Exception:
        return True
    return disposition == "attachment" or (filename is not None and disposition != "inline")


def _leaves(msg: Message) -> list[Message]:
    out: list[Message] = []
    stack = [msg]
    while stack:
        part = stack.pop(0)
        if _content_type(part).startswith("multipart/") and isinstance(part.get_payload(), list):
            stack[:0] = [p for p in part.get_payload() if isinstance(p, Message)]
        else:
            out.append(part)
    return out


def _attachments(msg: Message) -> list[AttachmentInfo]:
    """Every part that is not a body text: files, images, forwarded mail, bounce reports."""
    found: list[AttachmentInfo] = []
    body_parts = _body_parts(msg)

    def walk(part: Message, section: str) -> None:
        kind = _content_type(part)
        payload = part.get_payload()
        if kind.startswith("multipart/") and isinstance(payload, list):
            for i, child in enumerate(payload, 1):
                if isinstance(child, Message):
                    walk(child, f"{section}.{i}" if section else str(i))
            return
        if id(part) in body_parts or kind.startswith("multipart/"):
            return
        if kind in ("text/plain", "text/html") and not _is_attachment(part):
            return
        found.append(
            AttachmentInfo(
                _filename(part, kind, len(found) + 1), kind, _size(part), section or "1"
            )
        )

    # A structure too broken to walk still yields its text, and what was found so far.
    with contextlib.suppress(Exception):
        walk(msg, "")
    return found


def _body_parts(msg: Message) -> set[int]:
    parts: set[int] = set()
    if isinstance(msg, EmailMessage):
        for kind in ("plain", "html"):
            try:
                body = msg.get_body(preferencelist=(kind,))
            except Exception:
                body = None
            if body is not None:
                parts.add(id(body))
    return parts


def _filename(part: Message, kind: str, index: int) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        return clean(decode_header_value(str(name)).replace("/", "_").replace("\\", "_"))
    if kind == "message/rfc822":
        return f"message-{index}.eml"
    if kind.startswith(("text/", "message/")):
        extension = mimetypes.guess_extension(kind) or ".txt"
    else:
        extension = mimetypes.guess_extension(kind) or ".bin"
    return f"part-{index}{extension}"


def _size(part: Message) -> int:
    """The decoded size of a part; a base64 file is measured, not decoded into a copy."""
    try:
        payload = part.get_payload()
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding == "base64" and isinstance(payload, str):
            length = len(payload) - sum(payload.count(c) for c in " \t\r\n")
            padding = payload[-8:].rstrip()[-2:].count("=")
            return max(length // 4 * 3 - padding, 0)
        decoded = part.get_payload(decode=True)
        if isinstance(decoded, bytes):
            return len(decoded)
        return len(part.as_bytes())
    except Exception:
        return 0
