"""The ``Adapter`` base class every channel implements.

An adapter turns its channel's events into :class:`~botkit.messages.Message` objects,
hands them to the :class:`~botkit.inbox.Inbox`, acknowledges to the channel only after
``accept`` returned, and delivers :class:`~botkit.messages.Reply` objects back.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from aiohttp import web

from botkit.messages import Attachment, ConversationRef, Message, Reply, SentMessage

if TYPE_CHECKING:
    from botkit.inbox import Inbox

__all__ = ["Adapter", "Capabilities", "CommandInfo", "MarkupDialect", "NativeStream"]

MarkupDialect = Literal[
    "plain", "markdown", "mrkdwn", "telegram-html", "telegram-entities", "html"
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can do, so the core can adapt replies to it.

    Attributes:
        edits: messages can be edited in place (streaming edits one message).
        threads: the channel has threads or topics inside a chat.
        max_length: the longest text one message may carry; longer replies are split.
        markup: the markup dialect the channel renders.
        edit_interval: the least seconds between two edits of one message while
            streaming, so edits stay within the channel's rate limits.
        typing: the channel can show a "typing..." indicator.
        native_streams: the adapter can show an answer while it is written with the
            channel's own streaming (:meth:`Adapter.start_stream` and the methods after
            it), where the conversation allows; elsewhere a live reply posts and edits.
        stream_interval: the least seconds between two steps of a native stream.
    """

    edits: bool = False
    threads: bool = False
    max_length: int = 4000
    markup: MarkupDialect = "plain"
    edit_interval: float = 1.0
    typing: bool = False
    native_streams: bool = False
    stream_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class NativeStream:
    """An answer the channel shows with its own streaming, while it is written.

    Attributes:
        conversation: where it is shown.
        stream_id: the adapter's handle for it (a Telegram draft id, a Slack message ts).
        text: the text it shows now.
        message: the channel message the stream is (Slack's stream is one from its start:
            the outbox records it at once, so that after a crash the new answer edits it);
            ``None`` for a preview that is no message (a Telegram draft): nothing is
            recorded, and the finished answer is sent as a message of its own.
    """

    conversation: ConversationRef
    stream_id: str
    text: str
    message: SentMessage | None = None


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """A command some plugin answers, for channels that publish a command menu."""

    name: str
    description: str


class Adapter(ABC):
    """Base class of every channel adapter.

    Subclasses set ``capabilities`` and implement :meth:`start`, :meth:`stop` and
    :meth:`send`; channels that can edit messages implement :meth:`edit` too, and
    channels with streaming of their own (Telegram's drafts, Slack's ``chat.startStream``)
    set ``capabilities.native_streams`` and implement :meth:`start_stream`,
    :meth:`append_stream`, :meth:`stop_stream` and :meth:`close_stream`. The
    instance's ``name`` is the config key it was enabled under (``[adapters.NAME]``)
    and is the ``channel`` of every message it produces.
    """

    capabilities: ClassVar[Capabilities] = Capabilities()
    #: The frozen dataclass its ``[adapters.NAME]`` table is parsed into (``Secret``
    #: fields come from the environment); the bot then calls ``cls(name, settings)``.
    #: ``None`` for an adapter without settings, which is built as ``cls(name)``.
    settings_class: ClassVar[type[Any] | None] = None

    def __init__(self, name: str) -> None:
        self.name = name

    def web_routes(self) -> Sequence[web.RouteDef]:
        """Routes this adapter mounts on botkit's web server (webhooks); none by default."""
        return ()

    @abstractmethod
    async def start(self, inbox: Inbox) -> None:
        """Start receiving: from now on hand every event to ``inbox.accept``.

        Returns once receiving is under way; long-running loops run as tasks the
        adapter owns and cancels in :meth:`stop`.
        """

    async def stop_intake(self) -> None:  # noqa: B027
        """Stop taking new events, but keep what sending needs: the first step of a
        shutdown, before the work in flight finishes and its replies go out.

        Pollers, mailbox watchers and sockets stop; webhooks answer 503 (see
        :class:`~botkit.webhooks.WebhookGate`). Events being accepted right now finish
        first. :meth:`stop` is called later and must work whether or not this was.
        A no-op by default: the bot refuses new messages anyway once this returned.
        """

    @abstractmethod
    async def stop(self) -> None:
        """Stop receiving and release connections; already accepted work is kept."""

    @abstractmethod
    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Deliver a reply, splitting it to the channel's limits when needed.

        Args:
            conversation: where to deliver it.
            reply: what to deliver.
            delivery_id: a stable id for this outbox entry; the same on a retry, so a
                channel with idempotency keys (an email's Message-ID) can use it.

        Raises:
            ServiceError: a subclass saying whether a retry may help.
        """

    async def find_sent(
        self, conversation: ConversationRef, delivery_id: str
    ) -> SentMessage | None:
        """The message an earlier try of ``delivery_id`` posted, if the channel shows it.

        The outbox asks before it sends again a reply whose earlier send may have reached
        the channel (its process stopped between the send and recording it), so an
        adapter that can look (Slack keeps the delivery id in the message's metadata)
        turns that resend into "already delivered". ``None``: not found, or this channel
        cannot tell (the default); the reply is then sent again with the same id.

        Raises:
            ServiceError: the channel could not be asked; the outbox tries again later.
        """
        return None

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Replace the text of a message sent earlier (streaming).

        Only called when ``capabilities.edits`` is true.
        """
        raise NotImplementedError(f"the {self.name} adapter cannot edit messages")

    # native streams: only called when ``capabilities.native_streams`` is true. The outbox
    # owns the reply throughout (``botkit.live``): start_stream, then append_stream as the
    # answer grows, then stop_stream with the whole answer when the stream is a message;
    # a stream that is no message (a draft) ends with an ordinary :meth:`send` instead.

    async def start_stream(
        self, answering: Message, reply: Reply, *, delivery_id: str
    ) -> NativeStream | None:
        """Begin showing ``reply.text`` (the answer so far) with the channel's streaming.

        Args:
            answering: the message the answer is for (its conversation, its sender).
            reply: the answer's first text, with the template's markup and reply target.
            delivery_id: the outbox entry's stable id (the same after a crash).

        Returns:
            The stream, or ``None`` where the channel will not stream here (a group chat,
            a workspace or method that refused before, which the adapter remembers): the
            live reply then posts the answer and edits it.

        Raises:
            ServiceError: starting failed; the live reply posts and edits instead.
        """
        return None

    async def append_stream(self, stream: NativeStream, text: str) -> NativeStream:
        """Show ``text``, the whole answer so far, on ``stream``; the stream now.

        Raises:
            ServiceError: this step failed; the next step shows the text again.
        """
        raise NotImplementedError(f"the {self.name} adapter has no native streams")

    async def stop_stream(self, stream: NativeStream, text: str) -> SentMessage:
        """Finish a stream that is a message (``stream.message``) showing ``text``, the
        whole answer (or its first part); the message, as :meth:`edit` returns it.

        Raises:
            ServiceError: the message could not be made to show ``text``.
        """
        raise NotImplementedError(f"the {self.name} adapter has no native streams")

    async def close_stream(self, sent: SentMessage) -> None:  # noqa: B027
        """End a native stream its writer left open (the process died, the answer broke
        off), adding nothing, so that :meth:`edit` can replace what it shows; a stream
        already ended is no error. A no-op by default.

        Raises:
            ServiceError: the channel could not be asked.
        """

    async def finished(self) -> None:
        """Return when this adapter's input has ended for good (the console at end of
        input); channels that run until stopped never return, which is the default."""
        await asyncio.Event().wait()

    async def typing(self, conversation: ConversationRef) -> None:  # noqa: B027
        """Show a typing indicator, where the channel has one; a no-op by default."""

    async def publish_commands(self, commands: Sequence[CommandInfo]) -> None:  # noqa: B027
        """Publish the command menu (Telegram's ``setMyCommands``); a no-op by default."""

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> bytes:
        """The bytes of a file that came with one of this adapter's messages, read from
        the channel now: adapters that hand over only a reference (email keeps an IMAP
        URL, not the file) implement it. The default returns ``attachment.data`` when
        the adapter filled it in, and raises otherwise.

        Args:
            attachment: one of a message's ``attachments``, as a handler got it.
            max_bytes: refuse a file larger than this; ``None``: the adapter's own limit.

        Raises:
            NotImplementedError: the channel cannot fetch files on demand.
            ServiceError: the channel refused (the file is gone, too large...).
        """
        if attachment.data is not None:
            return attachment.data
        raise NotImplementedError(f"the {self.name} adapter cannot fetch attachments")

    async def history(
        self, conversation: ConversationRef, *, since: datetime
    ) -> Sequence[Message]:
        """The messages written in a conversation since ``since``, oldest first, read
        from the channel itself (everything said there, not only what reached the bot).

        Optional: channels that can list past messages (Slack's
        ``conversations.history``) implement it; the default raises.

        Raises:
            NotImplementedError: the channel cannot list its past messages.
            ServiceError: the channel refused (missing scope, not a member...).
        """
        raise NotImplementedError(f"the {self.name} adapter cannot read channel history")
