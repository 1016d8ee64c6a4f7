"""``TestBot``, ``run_bot`` and ``bot_fixture``: a real bot on in-memory channels to talk to."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from botkit._settings import parse_settings
from botkit.adapter import Adapter
from botkit.bot import Bot
from botkit.clock import Clock
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
    """A bot to talk to; made by :func:`run_bot` or :func:`bot_fixture`.

    ``async with`` runs it (:meth:`start`, then :meth:`stop`).

    Attributes:
        bot: the real ``Bot``.
        channels: the in-memory channels, by name.
        chat_model: the model the bot uses.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        bot: Bot,
        channels: Mapping[str, InMemoryChannel],
        clock: FakeClock | None = None,
        *,
        workdir: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.bot = bot
        self.clock = clock
        self.channels = dict(channels)
        self.chat_model = bot.model
        self.last_message_id = 0
        self._workdir = workdir

    async def start(self) -> None:
        """Start the bot (migrate, resume, start plugins and channels); stopped again if
        starting fails."""
        try:
            await self.bot.start()
        except BaseException:
            await self.stop(settle=0)
            raise

    async def stop(self, *, settle: float = 10.0) -> None:
        """Let what is under way finish (up to ``settle`` seconds), stop the bot and delete
        its temporary database, if it has one."""
        try:
            if settle > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.bot.dispatcher.idle(), settle)
            await self.bot.stop()
        finally:
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

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
        """The first in-memory channel."""
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


def run_bot(
    *,
    plugins: Sequence[Plugin] | None = None,
    settings: Mapping[str, Any] | None = None,
    model: ChatModel | Literal["config"] | None = None,
    channels: Sequence[str | Adapter] = ("test",),
    database_url: str | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
) -> TestBot:
    """A real bot with ``plugins`` on in-memory channels: run it with ``async with``.

    ``async with run_bot(...) as bot`` starts it and, on exit, lets what is under way
    finish (up to 10 seconds) and stops it. A test of starting and stopping itself
    calls :meth:`TestBot.start` and :meth:`TestBot.stop`, or those of ``bot.bot``.

    Args:
        plugins: the plugins, in the order the config would list them (default: those
            the config enables, as ``botkit run`` loads them; then ``settings`` must be
            empty and the ``[plugins.NAME]`` tables go in ``config``).
        settings: per plugin name, its ``[plugins.NAME]`` table as a dict (parsed and
            checked exactly as the config file would be) or a settings object.
        model: the model (default: a new :class:`FakeModel`); ``"config"``: the one the
            ``[llm]`` table of ``config`` describes, built as ``botkit run`` builds it
            (the offline stand-in when there is none).
        channels: channel names (each an :class:`InMemoryChannel`),
            :class:`InMemoryChannel` objects, or any other adapters.
        database_url: the database (SQLite or PostgreSQL, migrated on start); default:
            SQLite in a temporary directory, deleted when the bot stops.
        config: other TOML tables (``{"bot": {"stream": False}}``).
        clock: the scheduler's clock (default: a new :class:`FakeClock` showing now,
            moved with :meth:`TestBot.advance`; ``botkit.clock.SystemClock()`` for real
            time).
        environ: the environment the config reads secrets from (default: empty).

    Raises:
        ConfigError: a setting is wrong, named by its key.
        PluginError: two plugins claim one command, or a plugin is broken.
        ValueError: ``settings`` for a plugin that is not among ``plugins``.
    """
    clock = clock if clock is not None else FakeClock()
    adapters: dict[str, Adapter] = {}
    for item in channels:
        channel = InMemoryChannel(item) if isinstance(item, str) else item
        adapters[channel.name] = channel
    workdir: tempfile.TemporaryDirectory[str] | None = None
    if database_url is None:
        workdir = tempfile.TemporaryDirectory(prefix="botkit-test-")
        database_url = f"sqlite:///{Path(workdir.name) / 'bot.db'}"
    try:
        data: dict[str, Any] = {name: dict(table) for name, table in (config or {}).items()}
        data.setdefault("database", {}).setdefault("url", database_url)
        data["database"].setdefault("auto_migrate", True)
        data.setdefault("bot", {}).setdefault("shutdown_grace", 5.0)
        # the test process is not the bot's: leave its garbage collector as pytest set it
        data["bot"].setdefault("tune_gc", False)
        parsed = parse_config(data, environ=dict(environ or {}))
        if plugins is None and settings:
            raise ValueError("settings are for the plugins given; put config's in config")
        bot = Bot(
            parsed,
            adapters=adapters,
            plugins=None if plugins is None else list(plugins),
            plugin_settings=None if plugins is None else _plugin_settings(plugins, settings or {}),
            model=None if model == "config" else model if model is not None else FakeModel(),
            clock=clock,
        )
    except BaseException:
        if workdir is not None:
            workdir.cleanup()
        raise
    in_memory = {n: c for n, c in adapters.items() if isinstance(c, InMemoryChannel)}
    fake = clock if isinstance(clock, FakeClock) else None
    return TestBot(bot, in_memory, fake, workdir=workdir)


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
    name: str | None = None,
) -> Callable[..., AsyncIterator[TestBot]]:
    """A pytest fixture giving each test a fresh, running :class:`TestBot`.

    Assign it in a ``conftest.py`` or test module; like a function decorated with
    ``@pytest.fixture``, it is named by the variable that holds it, unless ``name`` says
    otherwise (as ``pytest.fixture(name=...)`` does)::

        testbot = bot_fixture(plugins=[translate.plugin])          # fixture "testbot"
        german = bot_fixture(plugins=[translate.plugin], settings=...)  # fixture "german"

    Each test gets a new model from ``model()`` and a new SQLite database in its
    ``tmp_path``. Needs pytest-asyncio.
    """
    import pytest_asyncio

    async def fixture(tmp_path: Path, request: Any) -> AsyncIterator[TestBot]:
        # one database per bot fixture: a test may use two
        database = tmp_path / (
            "bot.db" if request.fixturename == "testbot" else f"{request.fixturename}.db"
        )
        async with run_bot(
            plugins=plugins,
            settings=settings,
            model=model(),
            channels=channels,
            config=config,
            database_url=f"sqlite:///{database}",
        ) as bot:
            yield bot

    fixture.__doc__ = f"A running bot with {', '.join(p.name for p in plugins)}."
    registered: Callable[..., AsyncIterator[TestBot]] = pytest_asyncio.fixture(name=name)(fixture)
    return registered
