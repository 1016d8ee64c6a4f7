"""IMAP URLs (RFC 5092) naming a mail or one of its parts: how an ``Attachment`` says
where its bytes are, without holding them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from botkit_email.settings import EmailSettings

__all__ = ["PartLocation", "imap_url", "parse_part_url"]

_PART_URL = re.compile(
    r"imap://(?P<host>[^/:]+|\[[^\]]+\]):(?P<port>\d+)/(?P<mailbox>[^;]+)"
    r";UIDVALIDITY=(?P<uidvalidity>\d+)/;UID=(?P<uid>\d+)/;SECTION=(?P<section>\d+(?:\.\d+)*)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class PartLocation:
    """Where one part of a mail is: server, folder, UIDVALIDITY, UID and part number."""

    host: str
    port: int
    mailbox: str
    uidvalidity: int
    uid: int
    section: str


def imap_url(settings: EmailSettings, mailbox: str, uidvalidity: int, uid: int) -> str:
    """The URL of one mail in this mailbox's server."""
    host, port = settings.imap_host, settings.imap_port_or_default
    return f"imap://{host}:{port}/{quote(mailbox)};UIDVALIDITY={uidvalidity}/;UID={uid}"


def parse_part_url(url: str) -> PartLocation | None:
    """The part an URL made by intake names; ``None`` for any other URL."""
    found = _PART_URL.fullmatch(url)
    if found is None:
        return None
    return PartLocation(
        found["host"],
        int(found["port"]),
        unquote(found["mailbox"]),
        int(found["uidvalidity"]),
        int(found["uid"]),
        found["section"],
    )
