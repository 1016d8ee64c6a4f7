"""``Turn``: the message being answered, and what answering it has done so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botkit.messages import Message, Reply
from botkit.store import CallRow, Fence, OutboundDraft, OutboundSettle, StoredMessage

__all__ = ["Turn", "draft_of", "reply_of"]


def reply_of(value: Reply | str, message: Message | None) -> Reply:
    """A handler's answer as a ``Reply`` that quotes the message it answers."""
    reply = Reply(value) if isinstance(value, str) else value
    if reply.reply_to is None and message is not None:
        reply = Reply(reply.text, reply.markup, message.external_id, reply.metadata)
    return reply


def draft_of(
    conversation_id: int, channel: str, reply: Reply, message: Message | None
) -> OutboundDraft:
    """The outbox entry for a reply."""
    return OutboundDraft(
        conversation_id=conversation_id,
        channel=channel,
        text=reply.text,
        markup=reply.markup,
        reply_to_id=message.id if message is not None else None,
        meta={"reply_to": reply.reply_to, "metadata": dict(reply.metadata)},
    )


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

    def take_earlier(self) -> StoredMessage | None:
        """The oldest earlier reply not yet replaced, which the next reply replaces."""
        return self.earlier.pop(0) if self.earlier else None

    def draft(self, reply: Reply) -> OutboundDraft:
        """The outbox entry for a reply of this turn."""
        return draft_of(self.conversation_id, self.message.channel, reply, self.message)
