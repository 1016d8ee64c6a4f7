"""The plugin test kit: a fake model, an in-memory channel and a real bot to talk to.

Test a plugin the way a person would use it: send a message, read the replies. The bot
is a real :class:`~botkit.Bot` (store, dispatcher, outbox, middlewares, budgets) on a
temporary SQLite database; only the model and the channel are fakes::

    from botkit.testing import FakeModel, run_bot

    async def test_translate() -> None:
        model = FakeModel().reply("Bonjour")
        async with run_bot(plugins=[translate.plugin], model=model) as bot:
            assert await bot.ask("/translate hello") == "Bonjour"
        assert "hello" in model.requests[0].messages[-1]["content"]

With pytest, make a fixture once in ``conftest.py`` (pytest-asyncio is needed)::

    from botkit.testing import bot_fixture
    from my_package.translate import plugin

    testbot = bot_fixture(plugins=[plugin], settings={"translate": {"language": "German"}})

    async def test_translate(testbot: TestBot) -> None:
        testbot.model.reply("Hallo")
        assert await testbot.ask("/translate hello") == "Hallo"

Scheduled jobs (``ctx.schedule``, ``on_schedule``) run on a :class:`FakeClock`: time
moves for them only when the test says so, and :meth:`TestBot.advance` returns once
everything that fell due has fired and its messages were sent::

    await bot.send("/remind in 10 minutes stretch")
    await bot.advance(timedelta(minutes=10))
    assert bot.sent[-1].text == "Reminder: stretch"

This module needs no pytest unless :func:`bot_fixture` is called, and is not imported
by ``import botkit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import tempfile
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Self

from botkit._settings import parse_settings
from botkit.adapter import Adapter, Capabilities
from botkit.bot import Bot
from botkit.config import parse_config
from botkit.context import PluginRuntime
from botkit.exceptions import ServiceError
from botkit.inbox import Inbox
from botkit.llm import (
    CallRecord,
    CallRecorder,
    ChatModel,
    ChatRequest,
    Completion,
    ModelInfo,
    TextDelta,
    TokenCounter,
    ToolCall,
    Usage,
)
from botkit.llm._wire import check_request, finish
from botkit.llm.standin import _example
from botkit.messages import Attachment, ConversationRef, Message, Reply, Sender, SentMessage
from botkit.plugin import Plugin
from botkit.store import Store, StoredMessage
from botkit.text import split_text

__all__ = [
    "FakeClock",
    "FakeModel",
    "InMemoryChannel",
    "Scripted",
    "SentReply",
    "TestBot",
    "bot_fixture",
    "run_bot",
]

Responder = Callable[[ChatRequest], "str | Completion | Scripted"]
"""Answers a request: reply text, a whole ``Completion``, or a :class:`Scripted` reply."""


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted model reply.

    Attributes:
        content: the reply's text (JSON text in the JSON modes).
        tool_calls: function calls the model makes.
        error: raised instead of answering (a ``ServiceError`` such as
            ``RateLimitError("llm", "slow down")``).
        usage: ``(prompt_tokens, completion_tokens)``; counted when not given.
        finish_reason: ``"stop"``, ``"length"``...; ``"tool_calls"`` when calling tools.
    """

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    error: ServiceError | None = None
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None


class FakeModel:
    """A ``ChatModel`` that answers from a script and records every request.

    Each request takes the next scripted reply for its ``purpose`` (scripted with
    ``purpose=...``), else the next one scripted for any purpose, else the default
    answer: ``"echo: <last user text>"`` in text mode, ``{"echo": ...}`` in JSON mode
    and the simplest valid document for a JSON schema. Replies go through the same
    checks as the real client's: JSON mode needs the word "JSON" in the messages, and
    a reply that is not valid JSON (or does not match the schema) raises
    ``InvalidResponseError``. Every call is reported to the bot's cost recorder, priced
    from ``input_price_per_1k`` and ``output_price_per_1k``.

    Args:
        name: the model's name.
        context_window: its window in tokens (make it small to test long inputs).
        max_output_tokens: the most tokens a reply may have.
        input_price_per_1k: dollars per 1,000 prompt tokens (``None``: the model has no prices).
        output_price_per_1k: dollars per 1,000 completion tokens.

    Attributes:
        requests: every request that reached the model, in order (refused ones and
            those a budget stopped never do).
    """

    def __init__(
        self,
        name: str = "fake-model",
        *,
        context_window: int = 128_000,
        max_output_tokens: int = 4_096,
        input_price_per_1k: Decimal | str | None = "0.001",
        output_price_per_1k: Decimal | str | None = "0.002",
    ) -> None:
        self.name = name
        self._info = ModelInfo(
            name,
            context_window,
            max_output_tokens,
            None if input_price_per_1k is None else Decimal(input_price_per_1k),
            None if output_price_per_1k is None else Decimal(output_price_per_1k),
            encoding="cl100k_base",
        )
        self._counter = TokenCounter("cl100k_base")
        self._queues: dict[str | None, deque[Scripted | Responder]] = {}
        self._defaults: dict[str | None, Responder] = {}
        self._ids = itertools.count(1)
        self.requests: list[ChatRequest] = []

    # scripting

    def reply(
        self,
        content: str,
        *,
        purpose: str | None = None,
        usage: tuple[int, int] | None = None,
        finish_reason: str = "stop",
    ) -> Self:
        """Queue a text reply (JSON text for a JSON-mode request)."""
        return self._queue(purpose, Scripted(content, usage=usage, finish_reason=finish_reason))

    def reply_json(
        self, value: Any, *, purpose: str | None = None, usage: tuple[int, int] | None = None
    ) -> Self:
        """Queue a JSON reply (``value`` encoded)."""
        return self.reply(json.dumps(value), purpose=purpose, usage=usage)

    def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | str = "{}",
        *,
        content: str | None = None,
        purpose: str | None = None,
    ) -> Self:
        """Queue a reply that calls one function (``arguments`` as JSON text, or a mapping
        to encode); ``content`` is text said along with the call."""
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        call = ToolCall(f"call_{next(self._ids)}", name, text)
        return self._queue(purpose, Scripted(content, tool_calls=(call,)))

    def fail(self, error: ServiceError, *, purpose: str | None = None) -> Self:
        """Queue an error (after the real client's retries, this is what a handler sees)."""
        return self._queue(purpose, Scripted(error=error))

    def then(self, responder: Responder, *, purpose: str | None = None) -> Self:
        """Queue a function that builds the next reply from the request."""
        return self._queue(purpose, responder)

    def respond_with(self, responder: Responder, *, purpose: str | None = None) -> Self:
        """Answer every unscripted request (of ``purpose``, or any) with ``responder``."""
        self._defaults[purpose] = responder
        return self

    def _queue(self, purpose: str | None, item: Scripted | Responder) -> Self:
        self._queues.setdefault(purpose, deque()).append(item)
        return self

    # inspection

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return sum(len(q) for q in self._queues.values())

    def requests_for(self, purpose: str) -> list[ChatRequest]:
        """The requests made for one purpose (``"chat"``, ``"summary"``...)."""
        return [r for r in self.requests if r.purpose == purpose]

    # ChatModel

    def model_info(self, model: str | None = None) -> ModelInfo:
        """This model's window and prices, whatever name is asked for."""
        return self._info

    async def complete(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> Completion:
        """The next scripted reply, checked like the real client checks it.

        Raises:
            RequestRejectedError: JSON mode without the word "JSON" (nothing recorded).
            InvalidResponseError: the reply is not the JSON that was asked for.
            ServiceError: the one scripted with :meth:`fail`.
        """
        check_request(request)
        self.requests.append(request)
        started = time.monotonic()
        scripted = self._next(request)
        if scripted.error is not None:
            await self._record(record, request, None, started, scripted.error)
            raise scripted.error
        content = scripted.content
        if scripted.usage is not None:
            usage = Usage(*scripted.usage)
        else:
            said = (content or "") + "".join(c.name + c.arguments for c in scripted.tool_calls)
            usage = Usage(
                self._counter.count_messages(request.messages), self._counter.count(said)
            )
        reason = scripted.finish_reason or ("tool_calls" if scripted.tool_calls else "stop")
        completion = Completion(content, scripted.tool_calls, reason, usage, self.name)
        try:
            completion = finish(request, completion)
        except ServiceError as exc:
            await self._record(record, request, usage, started, exc)
            raise
        await self._record(record, request, usage, started, None)
        return completion

    async def stream(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """The same reply as :meth:`complete`, word by word, then the whole."""
        completion = await self.complete(request, record=record)
        for word in re.findall(r"\s*\S+\s*|\s+", completion.content or ""):
            yield TextDelta(word)
        yield completion

    async def close(self) -> None:
        """Nothing to release."""

    def _next(self, request: ChatRequest) -> Scripted:
        for key in (request.purpose, None):
            queue = self._queues.get(key)
            if queue:
                return _as_scripted(queue.popleft(), request)
        for key in (request.purpose, None):
            default = self._defaults.get(key)
            if default is not None:
                return _as_scripted(default, request)
        return Scripted(_echo(request))

    async def _record(
        self,
        record: CallRecorder | None,
        request: ChatRequest,
        usage: Usage | None,
        started: float,
        error: ServiceError | None,
    ) -> None:
        if record is None:
            return
        await record(
            CallRecord.of_attempt(self._info, self.name, request, usage, started, error=error)
        )

    def __repr__(self) -> str:
        return f"FakeModel(name={self.name!r}, pending={self.pending})"


def _as_scripted(item: Scripted | Responder, request: ChatRequest) -> Scripted:
    if isinstance(item, Scripted):
        return item
    answer = item(request)
    if isinstance(answer, str):
        return Scripted(answer)
    if isinstance(answer, Completion):
        usage = answer.usage
        return Scripted(
            answer.content,
            answer.tool_calls,
            usage=(usage.prompt_tokens, usage.completion_tokens) if usage else None,
            finish_reason=answer.finish_reason,
        )
    return answer


def _echo(request: ChatRequest) -> str:
    said = ""
    for message in reversed(request.messages):
        if message.get("role") == "user":
            content = message.get("content")
            said = content if isinstance(content, str) else json.dumps(content)
            break
    fmt = request.response_format
    if fmt == "text":
        return f"echo: {said}"
    if fmt == "json_object":
        return json.dumps({"echo": said})
    return json.dumps(_example(fmt.schema))


# -- the clock ---------------------------------------------------------------------------------


class FakeClock:
    """A clock that moves only when told to, for the scheduler (``botkit.clock.Clock``).

    Args:
        start: the time it shows first (aware); default: now.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.utcoffset() is None:
            raise ValueError("a FakeClock starts at an aware datetime")
        self._now = (start or datetime.now(UTC)).astimezone(UTC)
        self._sleepers: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """The time it shows (UTC)."""
        return self._now

    async def sleep_until(self, moment: datetime) -> None:
        """Return once the clock has been moved on to ``moment`` (at once if it shows
        that already)."""
        if moment <= self._now:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (moment, waiter)
        self._sleepers.append(entry)
        try:
            await waiter
        finally:
            self._sleepers.remove(entry)

    def advance(self, by: timedelta | float) -> datetime:
        """Move the clock ``by`` on (a timedelta or seconds); wake whoever slept until
        then. Returns the new time."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError("a clock does not go back")
        self._now += step
        for deadline, waiter in self._sleepers:
            if deadline <= self._now and not waiter.done():
                waiter.set_result(None)
        return self._now


# -- the channel -------------------------------------------------------------------------------


@dataclass
class SentReply:
    """One message the bot sent through an :class:`InMemoryChannel`.

    Attributes:
        conversation: where it went.
        text: what it says now (after any streaming edits).
        reply: the reply as the bot sent it (markup, quoted message, metadata).
        external_id: the id the channel gave it.
        edits: each text it was edited to, in order.
    """

    conversation: ConversationRef
    text: str
    reply: Reply
    external_id: str
    edits: list[str] = field(default_factory=list)


class InMemoryChannel(Adapter):
    """A channel that lives in the test: :meth:`receive` is a person writing, ``sent``
    is what the bot wrote.

    Args:
        name: the channel's name (the ``channel`` of its messages).
        capabilities: what it can do; by default it cannot edit (a streamed reply
            arrives as one message). Pass ``Capabilities(edits=True)`` to see edits.
        history: when given, :meth:`history` reads channel history from this list
            (messages you :meth:`post` without the bot seeing them); else the channel
            cannot read history, like most.
    """

    def __init__(
        self,
        name: str = "test",
        *,
        capabilities: Capabilities | None = None,
        history: list[Message] | None = None,
    ) -> None:
        super().__init__(name)
        if capabilities is not None:
            self.capabilities = capabilities  # type: ignore[misc]
        self.sent: list[SentReply] = []
        self.channel_log = history
        self._inbox: Inbox | None = None
        self._ids = itertools.count(1)

    async def start(self, inbox: Inbox) -> None:
        """Take messages from :meth:`receive`."""
        self._inbox = inbox

    async def stop(self) -> None:
        """Take no more messages."""
        self._inbox = None

    def message(
        self,
        text: str,
        *,
        user: str = "user",
        name: str | None = None,
        chat: str = "chat",
        thread: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        is_bot: bool = False,
        external_id: str | None = None,
        at: datetime | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> Message:
        """A message as this channel would deliver it (with files: ``attachments`` with
        their ``data``, a voice note say)."""
        return Message(
            conversation=ConversationRef(self.name, chat, thread),
            sender=Sender(user, name or user, is_bot),
            text=text,
            external_id=external_id or f"{self.name}-{next(self._ids)}",
            attachments=tuple(attachments),
            metadata=dict(metadata or {}),
            received_at=at or datetime.now(UTC),
        )

    async def receive(self, text: str, **kwargs: Any) -> int:
        """A person writes ``text`` (keywords as for :meth:`message`); its store id."""
        if self._inbox is None:
            raise RuntimeError(f"the {self.name} channel is not started")
        accepted = await self._inbox.accept(self.message(text, **kwargs))
        return accepted.message_id

    def post(self, text: str, **kwargs: Any) -> Message:
        """Put a message into the channel's history only (the bot does not see it)."""
        if self.channel_log is None:
            self.channel_log = []
        message = self.message(text, **kwargs)
        self.channel_log.append(message)
        return message

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Record the reply, split to ``max_length`` like a real channel."""
        pieces = split_text(reply.text, self.capabilities.max_length) or [reply.text]
        record: SentReply | None = None
        for piece in pieces:
            record = SentReply(conversation, piece, reply, f"{self.name}-out-{next(self._ids)}")
            self.sent.append(record)
        assert record is not None
        return SentMessage(conversation, record.external_id, pieces[-1])

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Change a sent message's text (streaming)."""
        for record in self.sent:
            if record.external_id == sent.external_id:
                record.edits.append(text)
                record.text = text
        return SentMessage(sent.conversation, sent.external_id, text)

    async def history(
        self, conversation: ConversationRef, *, since: datetime
    ) -> Sequence[Message]:
        """Messages :meth:`post`\\ ed to the conversation's chat since ``since``.

        Raises:
            NotImplementedError: the channel was made without ``history``.
        """
        if self.channel_log is None:
            raise NotImplementedError(f"the {self.name} channel keeps no history")
        return [
            m
            for m in self.channel_log
            if m.conversation.chat_id == conversation.chat_id and m.received_at >= since
        ]


# -- the bot -------------------------------------------------------------------------------------


class TestBot:
    """A running bot to talk to; made by :func:`run_bot` or :func:`bot_fixture`.

    Attributes:
        bot: the real ``Bot``.
        channels: the in-memory channels, by name.
        chat_model: the model the bot uses.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self, bot: Bot, channels: Mapping[str, InMemoryChannel], clock: FakeClock | None = None
    ) -> None:
        self.bot = bot
        self.clock = clock
        self.channels = dict(channels)
        self.chat_model = bot.model
        self.last_message_id = 0

    @property
    def model(self) -> FakeModel:
        """The fake model, to script replies and read requests.

        Raises:
            TypeError: the bot was given another model.
        """
        if not isinstance(self.chat_model, FakeModel):
            raise TypeError(f"this bot uses {self.chat_model!r}, not a FakeModel")
        return self.chat_model

    @property
    def channel(self) -> InMemoryChannel:
        """The first channel."""
        return next(iter(self.channels.values()))

    @property
    def store(self) -> Store:
        """The bot's store (messages, annotations, usage, plugin state)."""
        return self.bot.store

    @property
    def sent(self) -> list[SentReply]:
        """Everything the bot sent, on every channel, in order per channel."""
        return [s for channel in self.channels.values() for s in channel.sent]

    async def send(self, text: str, *, channel: str | None = None, **kwargs: Any) -> list[str]:
        """Write to the bot and wait until it has finished with the message.

        Args:
            text: what the person writes.
            channel: which channel (default: the first).
            kwargs: ``user``, ``name``, ``chat``, ``thread``, ``metadata``, ``is_bot``,
                ``external_id``, ``attachments`` of the message.

        Returns:
            The texts the bot sent into that conversation meanwhile (none when the
            message was held, ignored or refused silently).
        """
        target = self.channels[channel] if channel is not None else self.channel
        before = len(target.sent)
        message_id = await target.receive(text, **kwargs)
        self.last_message_id = message_id
        await self.bot.inbox.wait_done(message_id)
        ref = ConversationRef(target.name, kwargs.get("chat", "chat"), kwargs.get("thread"))
        return [s.text for s in target.sent[before:] if s.conversation == ref]

    async def ask(self, text: str, **kwargs: Any) -> str:
        """Like :meth:`send`, for exactly one reply; returns its text.

        Raises:
            AssertionError: the bot answered with no message or with several.
        """
        replies = await self.send(text, **kwargs)
        if len(replies) != 1:
            raise AssertionError(f"expected one reply to {text!r}, got {replies!r}")
        return replies[0]

    async def idle(self) -> None:
        """Wait until every queued message (a released one, say) has been handled."""
        await self.bot.dispatcher.idle()

    async def stored(self, message_id: int | None = None) -> StoredMessage:
        """A stored message (default: the last one sent), with its annotations in ``meta``."""
        wanted = self.last_message_id if message_id is None else message_id
        [row] = await self.store.history.messages([wanted])
        return row

    async def advance(self, by: timedelta | float, *, within: float = 10.0) -> list[SentReply]:
        """Move the scheduler's clock ``by`` on (a timedelta or seconds) and wait until
        every job that fell due meanwhile has fired and what it sent was delivered.

        Returns:
            What the bot sent meanwhile, on every channel.

        Raises:
            TypeError: the bot was given a clock that is not a :class:`FakeClock`.
            TimeoutError: the jobs were not done ``within`` real seconds.
        """
        if self.clock is None:
            raise TypeError("this bot runs on the system's clock, not a FakeClock")
        before = {name: len(channel.sent) for name, channel in self.channels.items()}
        moment = self.clock.advance(by)
        async with asyncio.timeout(within):
            await self.bot.scheduler.caught_up(moment)
            await self.idle()
        return [s for name, c in self.channels.items() for s in c.sent[before[name] :]]

    async def run_job(self, plugin: str, job: str | None = None) -> None:
        """Run a plugin's scheduled job now (the only one, or the one named ``job``)."""
        jobs = [
            j
            for p in self.bot.plugins
            if p.name == plugin
            for j in p.jobs
            if job is None or j.name == job
        ]
        if len(jobs) != 1:
            raise LookupError(f"{plugin!r} has {len(jobs)} jobs matching {job!r}")
        await jobs[0].func(PluginRuntime(self.bot.runtime, plugin))
        await self.idle()


@contextlib.asynccontextmanager
async def run_bot(
    *,
    plugins: Sequence[Plugin],
    settings: Mapping[str, Any] | None = None,
    model: ChatModel | None = None,
    channels: Sequence[str | InMemoryChannel] = ("test",),
    database_url: str | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    clock: FakeClock | None = None,
) -> AsyncIterator[TestBot]:
    """Run a real bot with ``plugins`` on in-memory channels; stopped on exit.

    Args:
        plugins: the plugins, in the order the config would list them.
        settings: per plugin name, its ``[plugins.NAME]`` table as a dict (parsed and
            checked exactly as the config file would be) or a settings object.
        model: the model (default: a new :class:`FakeModel`).
        channels: channel names or :class:`InMemoryChannel` objects.
        database_url: default: SQLite in a temporary directory, deleted afterwards.
        config: other TOML tables (``{"bot": {"stream": False}}``).
        clock: the scheduler's clock (default: a new :class:`FakeClock` showing now);
            move it with :meth:`TestBot.advance`.

    Raises:
        ConfigError: a setting is wrong, named by its key.
    """
    clock = clock if clock is not None else FakeClock()
    adapters = {}
    for item in channels:
        channel = InMemoryChannel(item) if isinstance(item, str) else item
        adapters[channel.name] = channel
    with contextlib.ExitStack() as stack:
        if database_url is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="botkit-test-"))
            database_url = f"sqlite:///{Path(folder) / 'bot.db'}"
        data: dict[str, Any] = {name: dict(table) for name, table in (config or {}).items()}
        data.setdefault("database", {}).setdefault("url", database_url)
        data["database"].setdefault("auto_migrate", True)
        data.setdefault("bot", {}).setdefault("shutdown_grace", 5.0)
        parsed = parse_config(data, environ={})
        bot = Bot(
            parsed,
            adapters=adapters,
            plugins=list(plugins),
            plugin_settings=_plugin_settings(plugins, settings or {}),
            model=model if model is not None else FakeModel(),
            clock=clock,
        )
        async with bot:
            test_bot = TestBot(bot, adapters, clock)
            try:
                yield test_bot
            finally:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(bot.dispatcher.idle(), 10)


def _plugin_settings(plugins: Sequence[Plugin], given: Mapping[str, Any]) -> dict[str, Any]:
    names = {p.name for p in plugins}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"settings for {unknown[0]!r}, which is not among the plugins")
    parsed: dict[str, Any] = {}
    for plugin in plugins:
        value = given.get(plugin.name, {})
        cls = plugin.settings_class
        if cls is None:
            if value:
                raise ValueError(f"plugin {plugin.name!r} takes no settings")
        elif isinstance(value, cls):
            parsed[plugin.name] = value
        else:
            parsed[plugin.name] = parse_settings(
                cls, value, prefix=f"plugins.{plugin.name}", environ={}
            )
    return parsed


def bot_fixture(
    *,
    plugins: Sequence[Plugin],
    settings: Mapping[str, Any] | None = None,
    model: Callable[[], ChatModel] = FakeModel,
    channels: Sequence[str] = ("test",),
    config: Mapping[str, Mapping[str, Any]] | None = None,
    name: str = "testbot",
) -> Callable[..., AsyncIterator[TestBot]]:
    """A pytest fixture (named ``name``) giving each test a fresh :class:`TestBot`.

    Assign it in a ``conftest.py`` or test module: ``testbot = bot_fixture(plugins=[...])``.
    Each test gets a new model from ``model()`` and a new SQLite database in its
    ``tmp_path``. Needs pytest-asyncio.
    """
    import pytest_asyncio

    async def fixture(tmp_path: Path) -> AsyncIterator[TestBot]:
        async with run_bot(
            plugins=plugins,
            settings=settings,
            model=model(),
            channels=channels,
            config=config,
            database_url=f"sqlite:///{tmp_path / 'bot.db'}",
        ) as bot:
            yield bot

    fixture.__doc__ = f"A running bot with {', '.join(p.name for p in plugins)}."
    registered: Callable[..., AsyncIterator[TestBot]] = pytest_asyncio.fixture(name=name)(fixture)
    return registered
