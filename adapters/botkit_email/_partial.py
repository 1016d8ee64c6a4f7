"""Reading a mail for intake without its attachments.

First ``BODYSTRUCTURE`` (with the size), then the header and every part's MIME header,
then only the text part the body is read from (text/plain, or text/html where the plain
part is missing or blank). From these, the mail is put back together in its MIME frame
with every other part left empty, and parsed by the same code as a whole mail
(``_parse``): the same body choice, names, quotes and charsets, while no attachment byte
crosses the network. Attachment sizes come from ``BODYSTRUCTURE`` (:func:`decoded_size`).

Whatever cannot be read this way (a ``BODYSTRUCTURE`` that does not parse, a tree the
mail's own headers describe differently, a server that refuses a part) is logged and the
mail is fetched whole, as before; a mail over ``max_message_bytes`` has only its header
fetched.
"""

from __future__ import annotations

import email
import email.policy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message

from botkit import RequestRejectedError
from botkit_email._imap import ImapSession
from botkit_email._imapwire import ImapSyntaxError, Value
from botkit_email._parse import body_sections, parse_mail
from botkit_email._structure import BodyPart, BodyStructureError, parse_bodystructure

__all__ = ["FetchedMail", "assemble", "decoded_size", "read_mail"]

log = logging.getLogger(__name__)

#: More parts than this and the mail is fetched whole (one FETCH names every part).
MAX_PARTS = 200
_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class FetchedMail:
    """What intake read of one mail.

    Attributes:
        raw: the whole mail; or its header and text parts in its MIME frame, other parts
            empty (``whole`` false); or only its header (``oversized``).
        size: its size on the server (``RFC822.SIZE``).
        whole: ``raw`` is the whole mail.
        oversized: it is over ``max_message_bytes``: only its header was read.
        fingerprint: what identifies it when it has no Message-ID (its bytes as read,
            with the server's description of what was not read).
        part_sizes: the decoded size of each part that was not read, by section.
    """

    raw: bytes
    size: int
    whole: bool = True
    oversized: bool = False
    fingerprint: bytes = b""
    part_sizes: Mapping[str, int] = field(default_factory=dict)


class _Unreadable(Exception):
    """The mail cannot be read in parts; why, for the log."""


async def read_mail(session: ImapSession, uid: int, limit: int) -> FetchedMail | None:
    """Read the mail with this UID for intake; ``None`` when it is gone (expunged).

    Raises:
        ServiceError: the connection failed, or the server refused a whole fetch too.
    """
    try:
        items = await session.fetch_items(uid, "UID RFC822.SIZE BODYSTRUCTURE")
    except (ImapSyntaxError, RequestRejectedError) as exc:
        log.warning("UID %d: the server's BODYSTRUCTURE could not be read (%s)", uid, exc)
        return await _read_whole(session, uid, limit)
    if items is None:
        return None
    size_item = items.get("RFC822.SIZE")
    if not isinstance(size_item, str) or not size_item.isdigit():
        log.warning("UID %d: the server sent no RFC822.SIZE; reading it whole", uid)
        return await _read_whole(session, uid, limit)
    size = int(size_item)
    if size > limit:
        header = await session.fetch(uid, header_only=True)
        return None if header is None else FetchedMail(header, size, False, True, header)
    try:
        structure = parse_bodystructure(items.get("BODYSTRUCTURE"))
        return await _read_parts(session, uid, size, structure, items.get("BODYSTRUCTURE"))
    except (BodyStructureError, ImapSyntaxError, RequestRejectedError, _Unreadable) as exc:
        log.warning("UID %d cannot be read in parts (%s); reading it whole", uid, exc)
    return await _read_whole(session, uid, limit, size)


async def _read_whole(
    session: ImapSession, uid: int, limit: int, size: int | None = None
) -> FetchedMail | None:
    if size is None:
        size = await session.size(uid)
        if size is None:
            return None
    oversized = size > limit
    raw = await session.fetch(uid, header_only=oversized)
    if raw is None:
        return None
    return FetchedMail(raw, size, not oversized, oversized, raw)


async def _read_parts(
    session: ImapSession, uid: int, size: int, structure: BodyPart, described: Value
) -> FetchedMail | None:
    parts = [part for part in structure.walk() if part is not structure]
    if len(parts) > MAX_PARTS:
        raise _Unreadable(f"{len(parts)} parts, more than {MAX_PARTS}")
    names = ["UID", "BODY.PEEK[HEADER]", *(f"BODY.PEEK[{p.section}.MIME]" for p in parts)]
    items = await session.fetch_items(uid, " ".join(names))
    if items is None:
        return None
    header = _bytes(items, "BODY[HEADER]")
    mime = {p.section: _bytes(items, f"BODY[{p.section}.MIME]") for p in parts}
    frame = assemble(structure, header, mime, {})
    _check_shape(frame, structure)
    plain, html = body_sections(frame)
    bodies: dict[str, bytes] = {}
    for wanted in (plain, html):
        if wanted is None:
            continue
        if bodies and not parse_mail(assemble(structure, header, mime, bodies)).html:
            break  # the plain text is not blank: the HTML alternative is not needed
        bodies.update(await _fetch_bodies(session, uid, [wanted]))
    raw = assemble(structure, header, mime, bodies)
    unread = [p for p in parts or [structure] if not p.is_multipart and p.section not in bodies]
    sizes = {part.section: decoded_size(part) for part in unread}
    return FetchedMail(raw, size, False, False, raw + b"\0" + repr(described).encode(), sizes)


async def _fetch_bodies(session: ImapSession, uid: int, sections: list[str]) -> dict[str, bytes]:
    names = " ".join(f"BODY.PEEK[{section}]" for section in sections)
    items = await session.fetch_items(uid, f"UID {names}")
    if items is None:
        raise _Unreadable("the mail vanished while it was read")
    return {section: _bytes(items, f"BODY[{section}]") for section in sections}


def decoded_size(part: BodyPart) -> int:
    """A part's decoded size from its encoded size alone (nothing of it is read): exact
    for 7bit, 8bit and binary; for base64 estimated for the usual 76-character lines
    (exact but for the padding when they are that long, within about 1% otherwise); for
    quoted-printable the encoded size, which the file does not exceed.

    (``BINARY.SIZE``, RFC 3516, would say it exactly, but Dovecot 2.3.19 answers wrong
    sizes for some parts of nested mail, so it is not asked.)"""
    if part.encoding == "base64":
        lines = -(-part.size // 78)
        return max((part.size - 2 * lines) * 3 // 4, 0)
    return part.size


def assemble(
    structure: BodyPart, header: bytes, mime: Mapping[str, bytes], bodies: Mapping[str, bytes]
) -> bytes:
    """The mail in its MIME frame: ``header``, each part's MIME header from ``mime``, the
    content of the parts in ``bodies`` (by section), every other part empty.

    Raises:
        _Unreadable: a multipart whose header names no boundary Python can read.
    """
    out = bytearray(_ended(header))
    _append_body(out, structure, header, mime, bodies)
    return bytes(out)


def _append_body(
    out: bytearray,
    part: BodyPart,
    header: bytes,
    mime: Mapping[str, bytes],
    bodies: Mapping[str, bytes],
) -> None:
    if not part.is_multipart:
        out += bodies.get(part.section, b"")
        return
    boundary = _boundary(header)
    if boundary is None:
        raise _Unreadable(f"multipart {part.section or 'top'} has no readable boundary")
    delimiter = _CRLF + b"--" + boundary
    for child in part.parts:
        child_header = mime[child.section]
        out += delimiter + _CRLF + _ended(child_header)
        _append_body(out, child, child_header, mime, bodies)
    out += delimiter + b"--" + _CRLF


def _boundary(header: bytes) -> bytes | None:
    parsed = email.message_from_bytes(_ended(header), policy=email.policy.default)
    try:
        boundary = parsed.get_boundary()
    except Exception:
        return None
    if not boundary:
        return None
    return boundary.encode("utf-8", "surrogateescape")


def _ended(header: bytes) -> bytes:
    """A header block that ends with the empty line."""
    if header.endswith((b"\r\n\r\n", b"\n\n")):
        return header
    return header.rstrip(b"\r\n") + b"\r\n\r\n" if header.strip() else b"\r\n"


def _bytes(items: Mapping[str, Value], name: str) -> bytes:
    value = items.get(name)
    if value is None:
        return b""  # NIL: the server has nothing there
    if isinstance(value, bytes):
        return value
    raise _Unreadable(f"{name} is not a string")


def _check_shape(frame: bytes, structure: BodyPart) -> None:
    """The frame, parsed as a whole mail is, has the server's tree; else the part
    numbers would not match and the wrong parts would be read."""
    parsed = email.message_from_bytes(frame, policy=email.policy.default)

    def same(node: Message, part: BodyPart) -> bool:
        if node.get_content_maintype() != "multipart":
            return not part.is_multipart
        payload = node.get_payload()
        return (
            part.is_multipart
            and isinstance(payload, list)
            and len(payload) == len(part.parts)
            and all(same(child, sub) for child, sub in zip(payload, part.parts, strict=True))
        )

    if not same(parsed, structure):
        raise _Unreadable("its headers describe another MIME tree than the server's")
