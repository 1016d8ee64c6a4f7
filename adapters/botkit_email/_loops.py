"""RFC 3834 loop safety: which mail must never get an automatic reply, and to whom one goes.

Everything here looks at one mail's headers; the per-sender and per-thread periods,
which need memory, are in ``_ledger``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from botkit_email._parse import ParsedMail

__all__ = ["allowed", "is_automated_address", "reply_target", "skip_reason"]

# Local parts of addresses that are machines or lists, never a person who wants an answer.
_AUTOMATED = re.compile(
    r"""^(?:
        mailer[-_.]?daemon | postmaster | listserv | majordomo | mdaemon
      | (?:no|do[-_.]?not)[-_.]?reply(?:[-_.+].*)?
      | .+[-_.](?:no|do[-_.]?not)[-_.]?reply
      | bounces?(?:[-_.+=].*)? | .+[-_.]bounces?(?:[-_.+=].*)?
      | owner-.+ | .+-owner | .+-request
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_BULK_PRECEDENCE = frozenset({"bulk", "list", "junk"})
# Not in RFC 3834, but set by common vacation responders that predate it.
_AUTOREPLY_MARKERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Reply", "X-Autoresponse")


def skip_reason(mail: ParsedMail, own: Collection[str]) -> str | None:
    """Why this mail must not be answered automatically, or ``None`` when it may be.

    The reason starts with a stable code (``auto_submitted``, ``precedence``,
    ``list_mail``, ``bounce``, ``auto_response_suppressed``, ``automated_sender``,
    ``own_address``, ``no_sender``), then says which header decided it.
    """
    auto = mail.header("Auto-Submitted")
    if auto is not None:
        value = auto.split(";")[0].strip().lower()
        if value != "no":
            return f"auto_submitted: Auto-Submitted: {value or '(empty)'}"
    precedence = (mail.header("Precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"precedence: Precedence: {precedence}"
    for name in ("List-Id", "List-Unsubscribe", "List-Post"):
        if mail.has(name):
            return f"list_mail: {name} present"
    return_path = mail.header("Return-Path")
    if return_path is not None and not return_path.strip().strip("<>").strip():
        return "bounce: empty Return-Path"
    if mail.content_type == "multipart/report":
        return "bounce: multipart/report (a delivery or read report)"
    suppress = mail.header("X-Auto-Response-Suppress")
    if suppress is not None and suppress.strip().lower() != "none":
        return f"auto_response_suppressed: X-Auto-Response-Suppress: {suppress.strip()}"
    for name in _AUTOREPLY_MARKERS:
        if mail.has(name):
            return f"auto_submitted: {name} present"
    if not mail.from_addr:
        return "no_sender: no From address"
    own_lower = {a.lower() for a in own}
    senders = [mail.from_addr, *_addresses_in(mail.header("Sender")), *mail.reply_to]
    for addr in senders:
        if addr in own_lower:
            return f"own_address: {addr} is this mailbox"
    loop = mail.header("X-Loop") or ""
    if any(addr in loop.lower() for addr in own_lower):
        return "own_address: X-Loop names this mailbox"
    target = reply_target(mail, own_lower)
    for addr in {mail.from_addr, target}:
        if addr and is_automated_address(addr):
            return f"automated_sender: {addr}"
    return None


def reply_target(mail: ParsedMail, own: Collection[str]) -> str:
    """Where an answer goes: the Reply-To (unless it is us or a machine), else the From."""
    own_lower = {a.lower() for a in own}
    for addr in mail.reply_to:
        if addr not in own_lower and not is_automated_address(addr):
            return addr
    return mail.from_addr


def is_automated_address(addr: str) -> bool:
    """Whether an address belongs to a machine or a list (mailer-daemon, no-reply...)."""
    local = addr.rpartition("@")[0] or addr
    return bool(_AUTOMATED.match(local))


def allowed(addr: str, senders: Iterable[str], domains: Iterable[str]) -> bool:
    """Whether ``addr`` is on the allowlists; empty lists allow everyone."""
    senders = {s.strip().lower() for s in senders if s.strip()}
    domains = {d.strip().lower().lstrip("@.") for d in domains if d.strip()}
    if not senders and not domains:
        return True
    addr = addr.lower()
    domain = addr.rpartition("@")[2]
    if addr in senders or f"@{domain}" in senders:
        return True
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _addresses_in(value: str | None) -> list[str]:
    if not value:
        return []
    return [a.strip("<>").lower() for a in re.findall(r"[^\s<>,;\"']+@[^\s<>,;\"']+", value)]
