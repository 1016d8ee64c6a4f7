"""Reading one attachment when a plugin asks: its part, by ``BODY.PEEK[section]``, over a
connection of its own, with a size limit, decoded from its transfer encoding.

An attachment's URL names the folder, UIDVALIDITY, UID and part it was read at. Where
the mail no longer is there (moved by ``after_accept = "move"``, or the folder was
renumbered), it is looked for by its Message-ID (the ledger knows which mail was read
at that place) in that folder and in ``move_to``.
"""

from __future__ import annotations

import binascii
import logging
import quopri
import re

from botkit import Attachment, RequestRejectedError
from botkit_email._errors import IMAP, Redactor
from botkit_email._imap import ImapSession
from botkit_email._imapwire import ImapSyntaxError
from botkit_email._ledger import Ledger
from botkit_email._oauth import AccessTokens
from botkit_email._structure import BodyPart, BodyStructureError, parse_bodystructure
from botkit_email._urls import PartLocation, parse_part_url
from botkit_email.settings import EmailSettings

__all__ = ["AttachmentReader", "decode_transfer"]

log = logging.getLogger(__name__)

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_SEARCHABLE_ID = re.compile(r"<[\x21-\x7e]{1,250}>")


def decode_transfer(data: bytes, encoding: str) -> bytes:
    """A part's bytes decoded from its Content-Transfer-Encoding, as leniently as mail
    clients are: stray characters and missing padding in base64 are forgiven."""
    encoding = encoding.strip().lower()
    if encoding == "base64":
        cleaned = _NOT_BASE64.sub(b"", data)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4 if len(cleaned) % 4 == 1 else None]
        return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    return data


class AttachmentReader:
    """Fetches attachments of the mail one adapter read."""

    def __init__(
        self,
        settings: EmailSettings,
        redactor: Redactor,
        ledger: Ledger,
        tokens: AccessTokens | None = None,
    ) -> None:
        self._settings = settings
        self._redactor = redactor
        self._ledger = ledger
        self._tokens = tokens

    async def read(self, attachment: Attachment, max_bytes: int | None = None) -> bytes:
        """The attachment's bytes.

        Raises:
            RequestRejectedError: not an attachment of this mailbox (``code``
                ``"unknown_attachment"``), its mail or part is gone (``"attachment_gone"``),
                or it is larger than ``max_bytes`` (default ``max_message_bytes``) as the
                server counts it, encoded (``"too_large"``).
            AuthenticationError, ServiceUnavailableError: as logging in and reading mail.
        """
        location = self._location(attachment)
        limit = self._settings.max_message_bytes if max_bytes is None else max_bytes
        session = await ImapSession.open(self._settings, self._redactor, self._tokens)
        try:
            uid, moved = await self._find(session, location)
            part = await self._part(session, uid, location.section, attachment.name)
            if moved and part.content_type != attachment.content_type:
                raise self._gone(attachment, "the mail found by its Message-ID differs")
            if part.size > limit:
                raise RequestRejectedError(
                    IMAP,
                    f"attachment {attachment.name!r} is {part.size:,} bytes encoded, over "
                    f"the limit ({limit:,})",
                    code="too_large",
                )
            section = location.section
            items = await session.fetch_items(uid, f"UID BODY.PEEK[{section}]")
            data = (items or {}).get(f"BODY[{section}]")
            if not isinstance(data, bytes):
                raise self._gone(attachment, "the server sent no content")
            return decode_transfer(data, part.encoding)
        except ImapSyntaxError as exc:
            raise RequestRejectedError(
                IMAP, f"reading attachment {attachment.name!r}: {exc}", code="protocol"
            ) from exc
        finally:
            await session.close()

    def _location(self, attachment: Attachment) -> PartLocation:
        location = parse_part_url(attachment.url or "")
        settings = self._settings
        if location is None or (location.host, location.port) != (
            settings.imap_host,
            settings.imap_port_or_default,
        ):
            raise RequestRejectedError(
                IMAP,
                f"attachment {attachment.name!r} is not one of {settings.address}'s mail",
                code="unknown_attachment",
            )
        return location

    async def _find(self, session: ImapSession, location: PartLocation) -> tuple[int, bool]:
        """The mail's UID, with its folder selected; and whether it was looked for."""
        status = await session.select(location.mailbox)
        if status.uidvalidity == location.uidvalidity and location.uid in await session.uid_search(
            "UID", str(location.uid)
        ):
            return location.uid, False
        known = await self._ledger.located(location.mailbox, location.uidvalidity, location.uid)
        if known is None or not _SEARCHABLE_ID.fullmatch(known):
            raise self._gone_at(location)
        folders = [location.mailbox]
        if self._settings.after_accept == "move":
            folders.append(self._settings.move_to)
        quoted = '"' + known.replace("\\", "\\\\").replace('"', '\\"') + '"'
        for folder in folders:
            if folder != location.mailbox:
                try:
                    await session.select(folder)
                except RequestRejectedError:
                    continue  # not there (yet)
            found = await session.uid_search("HEADER", "Message-ID", quoted)
            if found:
                log.debug("attachment of %s found again in %s", known, folder)
                return max(found), True
        raise self._gone_at(location)

    async def _part(self, session: ImapSession, uid: int, section: str, name: str) -> BodyPart:
        items = await session.fetch_items(uid, "UID BODYSTRUCTURE")
        try:
            part = parse_bodystructure((items or {}).get("BODYSTRUCTURE")).find(section)
        except BodyStructureError as exc:
            raise RequestRejectedError(
                IMAP, f"reading attachment {name!r}: {exc}", code="protocol"
            ) from exc
        if part is None or part.is_multipart:
            raise RequestRejectedError(
                IMAP,
                f"attachment {name!r}: the mail has no part {section}",
                code="attachment_gone",
            )
        return part

    def _gone_at(self, location: PartLocation) -> RequestRejectedError:
        return RequestRejectedError(
            IMAP,
            f"the mail with UID {location.uid} is no longer in {location.mailbox} "
            f"(UIDVALIDITY {location.uidvalidity})",
            code="attachment_gone",
        )

    def _gone(self, attachment: Attachment, why: str) -> RequestRejectedError:
        return RequestRejectedError(
            IMAP, f"attachment {attachment.name!r} cannot be read: {why}", code="attachment_gone"
        )
