"""The ``Context`` a handler gets with each message, and the contexts of jobs and hooks.

Only the handler's façade: replies, streams and notices are the outbox's
(``botkit.outbox``), the answer in the making is a ``Turn`` (``botkit.turn``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from botkit.adapter import Capabilities
from botkit.conversation import ConversationLLM
from botkit.exceptions import ServiceError
from botkit.inbox import KeyValueState
from botkit.jobs import JobInfo, Jobs
from botkit.llm import StandInModel
from botkit.messages import Attachment, ConversationRef, Markup, Message, Reply
from botkit.outbox import draft_of, reply_of
from botkit.plugin import CommandHandler
from botkit.runtime import Runtime
from botkit.store import CallRow, StoredMessage, StoreView
from botkit.streaming import stream_reply
from botkit.tools import ToolLedger
from botkit.turn import Turn

__all__ = ["Context", "JobContext", "PluginRuntime"]

log = logging.getLogger(__name__)
S = TypeVar("S")


class PluginRuntime:
    """What a plugin's startup/shutdown hooks and scheduled jobs can use.

    Attributes:
        plugin: the plugin's name.
    """

    def __init__(self, runtime: Runtime, plugin: str) -> None:
        self._runtime = runtime
        self.plugin = plugin

    @property
    def store(self) -> StoreView:
        """What a plugin may read of the store: turns, messages, spend (not the store
        itself: claims, the inbox and the outbox are the core's)."""
        return self._runtime.store.view

    @property
    def settings(self) -> Any:
        """The plugin's parsed ``[plugins.NAME]`` settings, or ``None``."""
        return self._runtime.plugin_settings.get(self.plugin)

    def settings_as(self, cls: type[S]) -> S:
        """The plugin's settings, typed as its ``settings_class``; that class's defaults
        when the plugin was given none (a runtime built by hand, in a test)."""
        settings = self.settings
        return settings if isinstance(settings, cls) else cls()

    @property
    def state(self) -> KeyValueState:
        """The plugin's own persisted key-value state."""
        return self._runtime.store.state(self._namespace)

    async def state_keys(self, prefix: str = "") -> list[str]:
        """The keys of the plugin's own state that start with ``prefix``, sorted."""
        return await self._runtime.store.state(self._namespace).keys(prefix)

    @property
    def _namespace(self) -> str:
        return f"plugin:{self.plugin}"

    @property
    def llm(self) -> ConversationLLM:
        """The model, with calls recorded for cost but tied to no conversation."""
        return ConversationLLM(self._runtime, None, None, None)

    @property
    def uses_stand_in(self) -> bool:
        """Whether answers come from the offline stand-in (it calls no tools)."""
        return isinstance(self._runtime.model, StandInModel)

    def now(self) -> datetime:
        """The current time (aware, UTC) by the clock jobs are scheduled by; a test's
        clock (``botkit.testing.FakeClock``) moves only when advanced."""
        return self._runtime.clock.now()

    async def schedule(
        self,
        *,
        job: str,
        at: datetime | timedelta | None = None,
        data: Any = None,
        conversation: ConversationRef | None = None,
        every: float | timedelta | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        key: str | None = None,
    ) -> int:
        """Run this plugin's job ``job`` (registered with ``@plugin.job(name)``) at a
        time, once cluster-wide; stored in the database, so it fires after a restart
        too (at once, if it fell due while no process ran).

        Args:
            job: the name the plugin registered the job by.
            at: an aware datetime, or a delay from now; with ``every``/``cron`` the
                first due time (default: the recurrence's first after now).
            data: JSON-able values the run gets as ``run.data``.
            conversation: the conversation the job is about (``run.reply`` sends there).
            every: recur every so many seconds (or a ``timedelta``).
            cron: recur on a cron expression (see ``CronSchedule``), read in
                ``timezone`` (an IANA name; UTC when not given).
            key: scheduling again with the same key returns the first job's id and adds
                none (a command run again after a crash schedules nothing twice).

        Returns:
            The job's id, for :meth:`cancel_job`.

        Raises:
            ValueError: the plugin has no such job, ``at`` is a naive datetime, ``data``
                is not JSON, or the recurrence is malformed.
        """
        return await self._jobs().schedule(
            self.plugin,
            job,
            at=at,
            data=data,
            conversation=conversation,
            every=every,
            cron=cron,
            timezone=timezone,
            key=key,
        )

    async def cancel_job(self, job_id: int) -> bool:
        """Cancel one of this plugin's scheduled jobs; false when it has none by that id
        that will still fire. A job firing right now ends this run and does not recur."""
        return await self._jobs().cancel(self.plugin, job_id)

    async def pending_jobs(
        self, *, job: str | None = None, conversation: ConversationRef | None = None
    ) -> list[JobInfo]:
        """This plugin's jobs that will still fire (of one name, or about one
        conversation), soonest first."""
        return await self._jobs().pending(self.plugin, job=job, conversation=conversation)

    def _jobs(self) -> Jobs:
        jobs = self._runtime.jobs
        if jobs is None:
            raise RuntimeError("this bot schedules no jobs (its runtime was built by hand)")
        return jobs

    async def requeue(self, message_id: int, **metadata: Any) -> None:
        """Run a stored inbound message through the pipeline again (a spam false positive
        released by a person), after merging ``metadata`` into it."""
        if metadata:
            await self._runtime.store.history.annotate(message_id, metadata)
        [row] = await self._runtime.store.history.messages([message_id])
        await self._runtime.store.inbound.set_status([message_id], "pending")
        if self._runtime.submit is not None:
            self._runtime.submit(message_id, row.conversation_id)

    async def channel_history(
        self, conversation: ConversationRef, *, since: datetime
    ) -> Sequence[Message]:
        """Everything written in a conversation since ``since``, read from the channel
        itself (not only what reached the bot), oldest first: for channel summaries.

        Raises:
            NotImplementedError: the channel is not running or cannot list its history.
            ServiceError: the channel refused (a missing scope...).
        """
        adapter = self._runtime.adapters.get(conversation.channel)
        if adapter is None:
            raise NotImplementedError(f"no adapter named {conversation.channel!r} is running")
        return await adapter.history(conversation, since=since)

    async def notify(self, conversation: ConversationRef, text: str) -> None:
        """Send a plain-text notice to any conversation (a hand-off, an escalation).

        Like every reply it goes through the outbox: a channel's failure is retried and
        recorded there, never raised here.
        """
        await self.send(conversation, Reply(text, markup="plain"))

    async def send(self, conversation: ConversationRef, reply: Reply | str) -> None:
        """Send a message to any conversation (digests, notifications), through the outbox."""
        runtime = self._runtime
        conversation_id = await runtime.store.history.conversation_id(conversation)
        draft = draft_of(conversation_id, conversation.channel, reply_of(reply, None), None)
        await runtime.store.outbound.add(draft)
        await runtime.outbox.flush_through(conversation_id)


JobContext = PluginRuntime


class Context(PluginRuntime):
    """What a handler knows and can do while answering one message.

    Attributes:
        message: the message being answered (for coalesced bursts: the last one, with
            the texts of all of them joined).
        conversation_id: the store's id of its conversation.
        args: for a command, the text after ``/name``; else the whole text.
        match: the regex match, for a handler registered with a pattern.
    """

    def __init__(
        self,
        runtime: Runtime,
        message: Message,
        conversation_id: int,
        *,
        plugin: str = "",
        args: str = "",
        match: re.Match[str] | None = None,
        turn: Turn | None = None,
    ) -> None:
        super().__init__(runtime, plugin)
        self.conversation_id = conversation_id
        self.args = args
        self.match = match
        self._turn = turn or Turn(message, conversation_id, annotations=dict(message.metadata))

    @property
    def message(self) -> Message:
        """The message being answered, as rewritten so far (:meth:`rewrite`)."""
        return self._turn.message

    async def rewrite(self, text: str, **annotations: Any) -> None:
        """Replace the message's text, for every middleware and handler after this one
        and in the store, so that history shows it as if it had been typed (a voice
        note's transcript); ``annotations`` are stored with it as :meth:`annotate` does."""
        message = self.message
        if message.id is not None:
            merged = await self._runtime.store.history.rewrite_text(message.id, text, annotations)
            self.annotations.update(merged)
        self._turn.message = dataclasses.replace(message, text=text)

    def for_handler(
        self, plugin: str, *, args: str, match: re.Match[str] | None = None
    ) -> Context:
        """A copy of this context for one plugin's handler."""
        return Context(  # one message: one turn, one record of replies and facts
            self._runtime,
            self.message,
            self.conversation_id,
            plugin=plugin,
            args=args,
            match=match,
            turn=self._turn,
        )

    def tool_ledger(self) -> ToolLedger:
        """Where this answer's tool calls are stored (fenced by this process's hold on
        its messages), and found again when the answer is tried again."""
        runtime = self._runtime
        held = runtime.outbox.held(self._turn)
        return ToolLedger(runtime.store, self._turn, held, runtime.claims)

    @property
    def turn(self) -> Turn:
        """The answer in the making that this context belongs to."""
        return self._turn

    @property
    def deferred_calls(self) -> list[CallRow] | None:
        """Model calls made for this message, when the dispatcher stores them together
        with the message's outcome (one transaction fewer per message); else ``None``."""
        return self._turn.calls

    def defer_calls(self) -> None:
        """Keep this message's model calls for :attr:`deferred_calls` (the dispatcher)."""
        self._turn.calls = []

    @property
    def replied(self) -> bool:
        """Whether any handler already replied to this message through the context."""
        return self._turn.replied

    @property
    def annotations(self) -> dict[str, Any]:
        """Facts stored with this message so far (``annotate``), plus its metadata."""
        return self._turn.annotations

    @property
    def capabilities(self) -> Capabilities:
        """What the message's channel can do."""
        adapter = self._runtime.adapters.get(self.message.channel)
        return adapter.capabilities if adapter is not None else Capabilities()

    async def fetch_attachment(
        self, attachment: Attachment, *, max_bytes: int | None = None
    ) -> bytes:
        """The bytes of one of the message's attachments, read from its channel only
        now (:meth:`Adapter.fetch_attachment`): an email's files are not downloaded
        until a plugin asks.

        Raises:
            NotImplementedError: the channel cannot fetch files, or is not running.
            ServiceError: the channel refused (the file is gone, too large...).
        """
        if attachment.data is not None:
            return attachment.data
        adapter = self._runtime.adapters.get(self.message.channel)
        if adapter is None:
            raise NotImplementedError(f"no adapter named {self.message.channel!r} is running")
        return await adapter.fetch_attachment(attachment, max_bytes=max_bytes)

    @property
    def commands(self) -> list[CommandHandler]:
        """Every command the loaded plugins answer (for ``/help``)."""
        return list(self._runtime.commands)

    @property
    def llm(self) -> ConversationLLM:
        """The model, with calls recorded against this message, its conversation and user."""
        return ConversationLLM(self._runtime, self, self.message.id, self.conversation_id)

    async def history(self, limit: int = 50) -> list[StoredMessage]:
        """The newest ``limit`` turns up to this message, oldest first."""
        before = (self.message.id or 0) + 1 if self.message.id is not None else None
        return await self._runtime.store.history.turns(
            self.conversation_id, before_id=before, limit=limit
        )

    async def annotate(self, **values: Any) -> None:
        """Store facts about this message with it (a sentiment label, a spam verdict);
        later handlers see them in ``message.metadata`` only after a requeue, so read
        them with :meth:`annotations`."""
        if self.message.id is not None:
            self.annotations.update(
                await self._runtime.store.history.annotate(self.message.id, values)
            )

    async def reset(self) -> None:
        """Start the conversation afresh: later answers ignore everything before now."""
        await self._runtime.store.history.reset(
            self.conversation_id, through_id=self.message.id or 0
        )

    async def reply(self, reply: Reply | str) -> None:
        """Send a reply now (stored in the outbox first), before the handler returns."""
        self._turn.replied = True
        sent = reply_of(reply, self.message)
        await self._runtime.outbox.reply(self._turn, sent)
        self._turn.said.append(sent.text)

    async def typing(self) -> None:
        """Show the channel's typing indicator, if it has one."""
        adapter = self._runtime.adapters.get(self.message.channel)
        if adapter is not None and adapter.capabilities.typing:
            try:
                await adapter.typing(self.message.conversation)
            except ServiceError as exc:
                log.debug("typing indicator failed: %s", exc)

    async def stream(self, chunks: AsyncIterable[str], *, markup: Markup = "markdown") -> str:
        """Deliver a reply as it is produced.

        On channels that can edit, the first text is posted and then edited in place as
        more arrives, no faster than the channel's ``edit_interval``; the last edit
        carries the whole text (split into further messages if it grew past the
        channel's limit). Elsewhere the text is collected and sent once.

        Returns:
            The whole text.
        """
        self._turn.replied = True
        adapter = self._runtime.adapters.get(self.message.channel)
        if adapter is None or not adapter.capabilities.edits:
            text = "".join([chunk async for chunk in chunks])
            if text.strip():
                await self.reply(Reply(text, markup))
            return text
        template = reply_of(Reply("", markup), self.message)
        async with self._runtime.outbox.live(self._turn, template) as live:
            text = await stream_reply(live, chunks, adapter.capabilities, self.typing)
        self._turn.said.append(text)
        return text
