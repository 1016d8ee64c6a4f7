"""Email threads as conversations: Message-ID / In-Reply-To / References, and the
normalised-subject fallback for mail that carries none of them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection

from botkit_email._ledger import Ledger
from botkit_email._parse import ParsedMail

__all__ = ["normalise_subject", "reply_subject", "resolve_thread", "strip_reply_prefixes"]

# Reply prefixes in the languages mail clients write them in, with counters ("Re[2]:").
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|aw|sv|vs|antw|antwort|ref|rif|res|odp|ynt|atb|vá|回复|回覆|答复|返信|Отв|Ответ)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]\s*",
    re.IGNORECASE,
)
_FORWARD_PREFIX = re.compile(
    r"^\s*(?:fwd?|wg|tr|enc|rv|fw|转发|転送)\s*(?:\[\d+\])?\s*[:\uff1a]\s*", re.IGNORECASE
)
_LIST_TAG = re.compile(r"^\s*\[[^\]]{1,40}\]\s*")
_MAX_ROOT = 200


def strip_reply_prefixes(subject: str) -> str:
    """``"Re: RE: Aw: Hello"`` → ``"Hello"``; forward prefixes are kept."""
    previous = None
    subject = " ".join(subject.split())
    while previous != subject:
        previous = subject
        subject = _REPLY_PREFIX.sub("", subject, count=1)
    return subject.strip()


def reply_subject(subject: str) -> str:
    """The subject of a reply: exactly one ``Re:`` in front of the original's."""
    base = strip_reply_prefixes(subject)
    return f"Re: {base}" if base else "Re: your message"


def normalise_subject(subject: str) -> str:
    """A subject reduced for comparison: no reply/forward prefixes or list tags, lowercase."""
    previous = None
    subject = " ".join(subject.split())
    while previous != subject:
        previous = subject
        for pattern in (_REPLY_PREFIX, _FORWARD_PREFIX, _LIST_TAG):
            subject = pattern.sub("", subject, count=1)
    return subject.strip().lower()


def _subject_digest(mail: ParsedMail, own: Collection[str]) -> str | None:
    subject = normalise_subject(mail.subject)
    if not subject:
        return None
    people = sorted({a for a in (mail.from_addr, *mail.to, *mail.cc) if a and a not in own})
    data = subject + "\n" + ",".join(people)
    return hashlib.sha256(data.encode("utf-8", "replace")).hexdigest()[:32]


async def resolve_thread(
    mail: ParsedMail, external_id: str, ledger: Ledger, own: Collection[str]
) -> str:
    """The root Message-ID of the thread ``mail`` belongs to, recorded for later mail.

    The newest known ancestor decides (In-Reply-To, then References newest first); an
    unknown thread is rooted at its first Reference. Only mail with neither header
    falls back to the normalised subject plus participants.
    """
    ancestors = [*([mail.in_reply_to] if mail.in_reply_to else []), *reversed(mail.references)]
    root: str | None = None
    for ancestor in ancestors:
        root = await ledger.thread_of(ancestor)
        if root is not None:
            break
    if root is None and ancestors:
        root = mail.references[0] if mail.references else ancestors[0]
    digest = _subject_digest(mail, own)
    if root is None and digest is not None:
        root = await ledger.subject_thread(digest)
    if root is None:
        root = mail.message_id or external_id
    if len(root) > _MAX_ROOT:  # it becomes the conversation's thread id (255 characters)
        root = "sha256:" + hashlib.sha256(root.encode("utf-8", "replace")).hexdigest()
    if mail.message_id:
        await ledger.remember_thread(mail.message_id, root)
    for ancestor in ancestors:
        if await ledger.thread_of(ancestor) is None:
            await ledger.remember_thread(ancestor, root)
    if digest is not None and await ledger.subject_thread(digest) is None:
        await ledger.remember_subject(digest, root)
    return root
