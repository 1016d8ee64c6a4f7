"""``Turn``: the message being answered, and what answering it has done so far."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any

from botkit.messages import Attachment, Message, Reply
from botkit.store import CallRow, Fence, OutboundDraft, OutboundSettle, StoredMessage

__all__ = ["Turn", "draft_of", "files_of", "reply_of", "without_file_data"]


def reply_of(value: Reply | str, message: Message | None) -> Reply:
    """A handler's answer as a ``Reply`` that quotes the message it answers."""
    reply = Reply(value) if isinstance(value, str) else value
    if reply.reply_to is None and message is not None:
        reply = replace(reply, reply_to=message.external_id)
    return reply


def draft_of(
    conversation_id: int, channel: str, reply: Reply, message: Message | None
) -> OutboundDraft:
    """The outbox entry for a reply; its files' bytes are kept with it (base64) until it
    is delivered, so a reply sent after a crash still carries them."""
    meta: dict[str, Any] = {"reply_to": reply.reply_to, "metadata": dict(reply.metadata)}
    if reply.attachments:
        meta["files"] = [_file_json(a) for a in reply.attachments]
    return OutboundDraft(
        conversation_id=conversation_id,
        channel=channel,
        text=reply.text,
        markup=reply.markup,
        reply_to_id=message.id if message is not None else None,
        meta=meta,
    )


def _file_json(attachment: Attachment) -> dict[str, Any]:
    data = attachment.data
    return {
        "name": attachment.name,
        "content_type": attachment.content_type,
        "size": attachment.size if attachment.size is not None else len(data or b""),
        "url": attachment.url,
        "data": base64.b64encode(data).decode("ascii") if data is not None else None,
    }


def files_of(meta: dict[str, Any]) -> tuple[Attachment, ...]:
    """The files an outbox entry's ``meta`` keeps (see :func:`draft_of`)."""
    files = meta.get("files") or []
    return tuple(
        Attachment(
            name=str(f.get("name") or "file"),
            content_type=str(f.get("content_type") or "application/octet-stream"),
            size=f.get("size"),
            url=f.get("url"),
            data=base64.b64decode(f["data"]) if f.get("data") else None,
        )
        for f in files
        if isinstance(f, dict)
    )


def without_file_data(meta: dict[str, Any]) -> dict[str, Any] | None:
    """``meta`` with its files' bytes dropped (the reply was delivered: history and its
    cache need not carry the audio), or ``None`` when it keeps none."""
    files = meta.get("files")
    if not files or not any(isinstance(f, dict) and f.get("data") for f in files):
        return None
    kept = [{k: v for k, v in f.items() if k != "data"} for f in files if isinstance(f, dict)]
    return {**meta, "files": kept}


@dataclass(slots=True)
class Turn:
    """One answer in the making, shared by the contexts of every middleware and handler.

    Attributes:
        message: what is answered (a coalesced burst reads as one message).
        conversation_id: the store's id of its conversation.
        ids: the stored inbound messages answered together.
        fence: their fencing tokens, while this process holds them (``None`` for a
            message answered without a claim, as in a test).
        attempts: how often answering them was tried before (outages).
        resumed: they were read back from the store (a retry after an outage, or work
            taken up after a stop or a crash), so an earlier try may have begun the
            answer: run tools, posted replies.
        annotations: facts stored with the message so far, plus its metadata.
        replied: whether a handler replied through the context already.
        calls: model calls kept until the message is finished, then stored in that
            transaction; ``None`` when each call is stored at once.
        settles: changes of its streamed replies (delivered, with their whole text) made
            with the messages' finish, in one write; ``None`` where no finish follows
            (each is then made at once).
        earlier: replies a previous try posted for these messages (the process
            stopped, or the model failed mid-answer), oldest first: this answer's
            replies take their places, editing what the channel shows, so the user sees
            one message per reply however often the answer is tried.
        tool_rounds: rounds of tool calls this answer has made so far, replayed ones
            included (the next round's number).
        done: what the answer's tool calls did, one phrase each (``"ran /book(...):
            booked"``): if the answer then fails, the user is told this rather than
            asked to try again.
        said: the text of each reply sent through the context so far (``ctx.reply``,
            streams), in order: what a middleware may do more with (speak it).
    """

    message: Message
    conversation_id: int
    ids: list[int] = field(default_factory=list)
    fence: Fence | None = None
    attempts: int = 0
    resumed: bool = False
    annotations: dict[str, Any] = field(default_factory=dict)
    replied: bool = False
    calls: list[CallRow] | None = None
    settles: list[OutboundSettle] | None = None
    earlier: list[StoredMessage] = field(default_factory=list)
    tool_rounds: int = 0
    done: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    def take_earlier(self) -> StoredMessage | None:
        """The oldest earlier reply not yet replaced, which the next reply replaces."""
        return self.earlier.pop(0) if self.earlier else None

    def draft(self, reply: Reply) -> OutboundDraft:
        """The outbox entry for a reply of this turn."""
        return draft_of(self.conversation_id, self.message.channel, reply, self.message)
