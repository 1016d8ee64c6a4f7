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

from botkit.messages import ConversationRef, Message, Reply, SentMessage

if TYPE_CHECKING:
    from botkit.inbox import Inbox

__all__ = ["Adapter", "Capabilities", "CommandInfo", "MarkupDialect"]

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
    """

    edits: bool = False
    threads: bool = False
    max_length: int = 4000
    markup: MarkupDialect = "plain"
    edit_interval: float = 1.0
    typing: bool = False


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """A command some plugin answers, for channels that publish a command menu."""

    name: str
    description: str


class Adapter(ABC):
    """Base class of every channel adapter.

    Subclasses set ``capabilities`` and implement :meth:`start`, :meth:`stop` and
    :meth:`send`; channels that can edit messages implement :meth:`edit` too. The
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

    async def finished(self) -> None:
        """Return when this adapter's input has ended for good (the console at end of
        input); channels that run until stopped never return, which is the default."""
        await asyncio.Event().wait()

    async def typing(self, conversation: ConversationRef) -> None:  # noqa: B027
        """Show a typing indicator, where the channel has one; a no-op by default."""

    async def publish_commands(self, commands: Sequence[CommandInfo]) -> None:  # noqa: B027
        """Publish the command menu (Telegram's ``setMyCommands``); a no-op by default."""

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
