"""``TestBot``, ``run_bot`` and ``bot_fixture``: a real bot on in-memory channels to talk to."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from botkit._settings import parse_settings
from botkit.bot import Bot
from botkit.config import parse_config
from botkit.context import PluginRuntime
from botkit.llm import ChatModel
from botkit.messages import ConversationRef
from botkit.plugin import Plugin
from botkit.store import Store, StoredMessage
from botkit.testing.channel import InMemoryChannel, SentReply
from botkit.testing.clock import FakeClock
from botkit.testing.model import FakeModel

__all__ = ["TestBot", "bot_fixture", "run_bot"]


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
        [row] = await self.store.messages([wanted])
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
