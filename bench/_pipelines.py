"""The two pipelines the overhead scenario compares, behind one small interface.

``BotkitPipeline`` is a real ``Bot`` (store, inbox, dispatcher, chat plugin, model client,
outbox) with an in-memory channel. ``MinimalPipeline`` is what someone would write by
hand with aiohttp and SQLAlchemy and no framework, keeping the same promises: the
message is stored before it is handled, the model call and the reply are stored before
the reply is sent, and the delivery is recorded after. Both use the same schema (botkit's
migrations), the same SQLite settings (WAL, ``synchronous=FULL`` as botkit's default,
writes that take the lock up front) and the same model server. Latency runs from the
moment the channel hands the message over until the channel is asked to deliver the
reply, which is after the reply was stored in both pipelines.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import aiohttp
from sqlalchemy import Connection, Engine, create_engine, event, insert, select, update
from sqlalchemy.engine import make_url

from botkit import (
    Adapter,
    Bot,
    Capabilities,
    ConversationRef,
    Inbox,
    Message,
    Reply,
    Sender,
    SentMessage,
)
from botkit.config import parse_config
from botkit.llm import ChatModel, ModelTable, OpenAIChatClient
from botkit.store import Database
from botkit.store.models import Base

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

SYSTEM_PROMPT = "You are a helpful assistant. Answer concisely."
HISTORY_LIMIT = 200
MODEL = "gpt-4o-mini"
_IN_HISTORY = ("done", "processing")
T = TypeVar("T")


class Pipeline(Protocol):
    """Something that answers one message and says how long it took."""

    name: str

    async def one(self, conversation: str, text: str, external_id: str) -> float:
        """Hand over one message; return seconds until its reply was delivered."""
        ...


async def migrate(url: str) -> None:
    """Create botkit's schema in a fresh database (untimed set-up)."""
    database = Database(url)
    try:
        await database.upgrade()
    finally:
        await database.close()


# --- botkit ------------------------------------------------------------------------------


class BenchAdapter(Adapter):
    """An in-memory channel: hands messages to the inbox, resolves a future per reply.

    It cannot edit a message (``Capabilities()``'s default, like email or a console), so
    botkit asks the model for whole answers: no stream. :class:`EditingBenchAdapter`
    can.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(max_length=100_000)

    def __init__(self, name: str = "bench") -> None:
        super().__init__(name)
        self.inbox: Inbox | None = None
        self.delivered = 0  # messages sent
        self.edited = 0  # edits of sent messages (a streamed answer's)
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._ids = itertools.count(1)
        # sent ids unique across processes, as a channel's are: workers share a database
        self._prefix = f"out-{uuid.uuid4().hex[:8]}"

    async def start(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def stop(self) -> None:
        self.inbox = None

    def expect(self, external_id: str) -> asyncio.Future[float]:
        """A future set to the monotonic time the reply to ``external_id`` is delivered."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[external_id] = future
        return future

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        now = time.monotonic()
        self.delivered += 1
        future = self._waiting.pop(reply.reply_to or "", None)
        if future is not None and not future.done():
            future.set_result(now)
        return SentMessage(conversation, f"{self._prefix}-{next(self._ids)}", reply.text)


class EditingBenchAdapter(BenchAdapter):
    """The in-memory channel, able to edit what it sent (with ``Capabilities``'s default
    pace, one edit a second): botkit streams answers to it. A reply counts as delivered
    when its message is finished, which is after its last edit."""

    capabilities: ClassVar[Capabilities] = Capabilities(edits=True, max_length=100_000)

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        self.delivered += 1
        return SentMessage(conversation, f"{self._prefix}-{next(self._ids)}", reply.text)

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        self.edited += 1
        return SentMessage(sent.conversation, sent.external_id, text)


def bot_config(
    database_url: str,
    model_url: str,
    *,
    bot: Mapping[str, Any] | None = None,
    synchronous: str | None = None,
) -> dict[str, Any]:
    """The TOML tables of a benchmark bot: botkit's defaults (streaming on, the chat
    plugin, history 200, 32 in flight...) with the model server, the database, and only
    the ``[bot]`` settings a scenario names. ``auto_migrate`` is on for PostgreSQL too
    (set-up, not behaviour)."""
    database: dict[str, Any] = {"url": database_url, "auto_migrate": True}
    if synchronous is not None:
        database["synchronous"] = synchronous
    tables: dict[str, Any] = {
        "database": database,
        "llm": {"base_url": model_url},
        "plugins": {"chat": {}},
    }
    if bot:
        tables["bot"] = dict(bot)
    return tables


def make_bot(tables: dict[str, Any], adapter: Adapter, **kwargs: Any) -> Bot:
    """A real ``Bot`` from TOML tables, with ``adapter`` as its only channel."""
    config = parse_config(tables, environ={})
    return Bot(config, adapters={adapter.name: adapter}, **kwargs)


class BotkitPipeline:
    """A message through a real ``Bot``: accepted by the inbox, answered by the chat skill.

    botkit's defaults unless told otherwise; ``edits``: the channel can edit (answers
    stream), and a message counts as answered when the dispatcher finished it.
    """

    name = "botkit"

    def __init__(
        self,
        database_url: str,
        model_url: str,
        *,
        bot: Mapping[str, Any] | None = None,
        connection_limit: int | None = None,
        synchronous: str | None = None,
        edits: bool = False,
        name: str = "botkit",
    ) -> None:
        """``bot``: ``[bot]`` settings that differ from the defaults; ``connection_limit``:
        give the model client a session with this pool size (0: unlimited) instead of
        the one it makes itself (``max_in_flight`` connections); ``synchronous``: the
        ``[database]`` setting (SQLite)."""
        self.name = name
        self.adapter = EditingBenchAdapter() if edits else BenchAdapter()
        self._edits = edits
        self._session: aiohttp.ClientSession | None = None
        model: ChatModel | None = None
        if connection_limit is not None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=connection_limit)
            )
            model = OpenAIChatClient(
                model_url, None, MODEL, models=ModelTable(), session=self._session
            )
        self.bot = make_bot(
            bot_config(database_url, model_url, bot=bot, synchronous=synchronous),
            self.adapter,
            model=model,
        )

    async def start(self) -> None:
        """Start the bot (migrates the database), and tune the garbage collector as
        ``botkit run`` does once started (``Bot.run_until_stopped``)."""
        await self.bot.start()
        self.bot.tune_collector()

    async def close(self) -> None:
        """Stop the bot (which puts the collector back), and close a model client passed
        in."""
        await self.bot.stop()
        if self._session is not None:
            await self._session.close()

    async def one(self, conversation: str, text: str, external_id: str) -> float:
        inbox = self.adapter.inbox
        assert inbox is not None
        done = None if self._edits else self.adapter.expect(external_id)
        started = time.monotonic()
        accepted = await inbox.accept(
            Message(
                conversation=ConversationRef("bench", conversation),
                sender=Sender(f"user-{conversation}", "Bench User"),
                text=text,
                external_id=external_id,
            )
        )
        if done is None:
            await inbox.wait_done(accepted.message_id)
            return time.monotonic() - started
        return await done - started


# --- minimal, by hand --------------------------------------------------------------------

_conversations = Base.metadata.tables["conversations"]
_messages = Base.metadata.tables["messages"]
_calls = Base.metadata.tables["model_calls"]


def _now() -> datetime:
    return datetime.now(UTC)


class MinimalPipeline:
    """The same work without a framework: three short transactions and one HTTP call.

    1. one write transaction: find or create the conversation, insert the message;
    2. read the newest ``HISTORY_LIMIT`` turns, build the prompt, POST it to the model;
    3. one write transaction: insert the model call, insert the reply, mark the
       message done; then deliver the reply and record the delivery.

    At most ``max_in_flight`` messages are handled at once, like the bot's default, and
    the HTTP pool holds ``connection_limit`` connections (32: as many as botkit's model
    client holds by default, one per message in flight).

    The transactions run on SQLAlchemy's asyncio engine (aiosqlite, asyncpg), as its
    documentation shows; with ``threaded`` (SQLite only), on its plain engine over the
    standard ``sqlite3`` driver, one thread for writes and two for reads, which is what
    botkit itself does (without its group commit).
    """

    def __init__(
        self,
        database_url: str,
        model_url: str,
        *,
        max_in_flight: int = 32,
        connection_limit: int = 32,
        threaded: bool = False,
    ) -> None:
        self.url = database_url
        self.name = "minimal/threaded" if threaded else "minimal"
        self._connection_limit = connection_limit
        self.model_url = model_url.rstrip("/") + "/chat/completions"
        self.delivered = 0
        self._sqlite = database_url.startswith("sqlite")
        kwargs: dict[str, Any] = {"connect_args": {"timeout": 30}} if self._sqlite else {}
        self.engine: AsyncEngine | None = None
        self.sync_engine: Engine | None = None
        if threaded and self._sqlite:
            path = make_url(database_url).database
            kwargs["connect_args"]["check_same_thread"] = False
            self.sync_engine = create_engine(f"sqlite:///{path}", **kwargs)
            _tune_sqlite(self.sync_engine)
            self._sync_writer = self.sync_engine.execution_options(bench_write=True)
            self._write_thread = ThreadPoolExecutor(1)
            self._read_threads = ThreadPoolExecutor(2)
        else:
            # imported here: a process that runs botkit on SQLite does not load it
            from sqlalchemy.ext.asyncio import create_async_engine

            self.engine = create_async_engine(database_url, **kwargs)
            self._writer = self.engine.execution_options(bench_write=True)
            if self._sqlite:
                _tune_sqlite(self.engine.sync_engine)
        self._http: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        """Create the schema and the HTTP session."""
        await migrate(self.url)
        connector = aiohttp.TCPConnector(limit=self._connection_limit)
        self._http = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        """Close the HTTP session and the engine."""
        if self._http is not None:
            await self._http.close()
        if self.engine is not None:
            await self.engine.dispose()
        if self.sync_engine is not None:
            self._write_thread.shutdown()
            self._read_threads.shutdown()
            self.sync_engine.dispose()

    async def _run(self, body: Callable[[Connection], T], *, write: bool) -> T:
        """``body`` in one transaction: committed if ``write``, else rolled back."""
        if self.sync_engine is not None:
            reader, writer = self.sync_engine, self._sync_writer

            def run() -> T:
                if write:
                    with writer.begin() as conn:
                        return body(conn)
                with reader.connect() as conn:
                    return body(conn)

            executor = self._write_thread if write else self._read_threads
            return await asyncio.get_running_loop().run_in_executor(executor, run)
        assert self.engine is not None
        if write:
            async with self._writer.begin() as conn:
                return await conn.run_sync(body)
        async with self.engine.connect() as conn:
            return await conn.run_sync(body)

    async def one(self, conversation: str, text: str, external_id: str) -> float:
        started = time.monotonic()

        def accept(conn: Connection) -> tuple[int, int]:
            conversation_id = _conversation_id(conn, conversation)
            message_id = conn.execute(
                insert(_messages)
                .values(
                    conversation_id=conversation_id,
                    channel="bench",
                    direction="in",
                    external_id=external_id,
                    sender_id=f"user-{conversation}",
                    sender_name="Bench User",
                    text=text,
                    markup="plain",
                    status="pending",
                    attempts=0,
                    created_at=_now(),
                    updated_at=_now(),
                )
                .returning(_messages.c.id)
            ).scalar_one()
            return conversation_id, message_id

        conversation_id, message_id = await self._run(accept, write=True)
        # one conversation's messages in order, like any bot must
        lock = self._locks.setdefault(conversation, asyncio.Lock())
        async with lock, self._slots:
            return await self._answer(conversation_id, message_id, started)

    async def _answer(self, conversation_id: int, message_id: int, started: float) -> float:
        query = (
            select(_messages.c.direction, _messages.c.text)
            .where(
                _messages.c.conversation_id == conversation_id,
                _messages.c.id <= message_id,
                (_messages.c.id == message_id)
                | (_messages.c.direction == "out")
                | _messages.c.status.in_(_IN_HISTORY),
            )
            .order_by(_messages.c.id.desc())
            .limit(HISTORY_LIMIT)
        )
        rows = await self._run(lambda conn: conn.execute(query).all(), write=False)
        history = [
            {"role": "assistant" if d == "out" else "user", "content": t} for d, t in rows[::-1]
        ]
        prompt = [{"role": "system", "content": SYSTEM_PROMPT}, *history]
        body = json.dumps({"model": MODEL, "messages": prompt, "max_tokens": 1024})
        assert self._http is not None
        sent = time.monotonic()
        async with self._http.post(
            self.model_url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            response.raise_for_status()
            reply: dict[str, Any] = await response.json()
        latency = time.monotonic() - sent
        content = reply["choices"][0]["message"]["content"] or ""
        usage = reply.get("usage") or {}

        def finish(conn: Connection) -> int:
            conn.execute(
                insert(_calls).values(
                    message_id=message_id,
                    conversation_id=conversation_id,
                    channel="bench",
                    user_id="bench",
                    purpose="chat",
                    model=MODEL,
                    prompt_tokens=usage.get("prompt_tokens"),
                    completion_tokens=usage.get("completion_tokens"),
                    cost_nanos=None,
                    latency_ms=latency * 1000,
                    ok=True,
                    attempt=1,
                    created_at=_now(),
                )
            )
            out_id = conn.execute(
                insert(_messages)
                .values(
                    conversation_id=conversation_id,
                    channel="bench",
                    direction="out",
                    text=content,
                    markup="markdown",
                    status="pending",
                    reply_to_id=message_id,
                    attempts=0,
                    created_at=_now(),
                    updated_at=_now(),
                )
                .returning(_messages.c.id)
            ).scalar_one()
            conn.execute(
                update(_messages)
                .where(_messages.c.id == message_id)
                .values(status="done", updated_at=_now())
            )
            return int(out_id)

        out_id = await self._run(finish, write=True)
        delivered = time.monotonic()  # "send": the in-memory channel takes it at once
        self.delivered += 1

        def mark(conn: Connection) -> None:
            conn.execute(
                update(_messages)
                .where(_messages.c.id == out_id)
                .values(status="delivered", external_id=f"out-{out_id}", updated_at=_now())
            )

        await self._run(mark, write=True)
        return delivered - started


class BareModelCalls:
    """No pipeline at all: one POST to the model per message, nothing stored.

    The floor for the concurrency scenario: what the HTTP client and the model server
    alone take on this machine.
    """

    name = "bare"

    def __init__(self, model_url: str, *, connection_limit: int = 100) -> None:
        self.model_url = model_url.rstrip("/") + "/chat/completions"
        self._connection_limit = connection_limit
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the HTTP session."""
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connection_limit)
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._http is not None:
            await self._http.close()

    async def one(self, conversation: str, text: str, external_id: str) -> float:
        assert self._http is not None
        started = time.monotonic()
        prompt = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]
        body = json.dumps({"model": MODEL, "messages": prompt, "max_tokens": 1024})
        async with self._http.post(
            self.model_url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            response.raise_for_status()
            await response.json()
        return time.monotonic() - started


def _conversation_id(conn: Connection, key: str) -> int:
    found = conn.execute(select(_conversations.c.id).where(_conversations.c.key == key)).scalar()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            insert(_conversations)
            .values(
                key=key,
                channel="bench",
                chat_id=key,
                thread_id=None,
                history_start_id=0,
                created_at=_now(),
                updated_at=_now(),
            )
            .returning(_conversations.c.id)
        ).scalar_one()
    )


def _tune_sqlite(engine: Engine) -> None:
    """WAL, ``synchronous=FULL``, a busy timeout, ``BEGIN IMMEDIATE`` for writes."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("bench_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
