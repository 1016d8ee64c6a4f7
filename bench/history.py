"""Scenario 3: building the prompt for a conversation 100,000 messages long, and 100 long;
(``history/length``) for a 1,000-turn conversation and a 2-turn one, with the defaults;
and (``history/path``) a whole message in a 20,000-turn conversation and a short one.

Both conversations are written straight into a real bot's database (untimed). Then the
chat skill's own engine, ``ConversationLLM.respond``, answers the newest message of each,
alternately, with a model that answers instantly in-process: what is timed is the
summary lookup, the history query, the conversion and the fit to the window, nothing
else. ``bot.history_limit`` is set to 100, so both prompts carry the same 100 turns and
only the length of what is stored differs (with the default, 200, the long one would
send twice the turns of the short one and take longer for that reason alone). The
target is "the same within noise": botkit must read only the newest turns.

``history/length`` keeps the default ``history_limit`` (200) and answers, alternately, a
new message in a conversation 1,000 turns long (the previous answer settled, as in a
live chat: what the cache keeps) and a new message in a new conversation of one exchange
(nothing kept: a read of its two turns). The long prompt carries 200 turns, the short
one 3; what is timed is botkit's own work to build it, not the model's.

``history/path`` times whole messages instead, from the inbox to the reply's hand-over
(stored, answered by an instant in-process model, finished, sent): alternately in a
conversation of 20,000 stored turns and in one that started with 2. Every statement of
that path must seek, whatever the conversation's length.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select

from bench._pipelines import BenchAdapter, make_bot
from bench._util import (
    Options,
    Skipped,
    median,
    ms,
    percentile,
    postgres_database,
    postgres_reachable,
    sqlite_url,
)
from botkit import Context, ConversationRef, Message, Sender
from botkit.llm import (
    CallRecorder,
    ChatRequest,
    Completion,
    ModelInfo,
    ModelTable,
    TextDelta,
    Usage,
)
from botkit.store.models import Base

LONG = 100_000
SHORT = 100
PATH_LONG = 20_000
_messages = Base.metadata.tables["messages"]
_conversations = Base.metadata.tables["conversations"]


class InstantModel:
    """A ``ChatModel`` that answers at once and remembers how many messages it was sent."""

    name = "gpt-4o-mini"

    def __init__(self) -> None:
        self.sent: list[int] = []
        self._info = ModelTable().lookup(self.name)

    def model_info(self, model: str | None = None) -> ModelInfo:
        return self._info

    async def complete(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> Completion:
        self.sent.append(len(request.messages))
        return Completion("ok", (), "stop", Usage(1, 1), self.name)

    async def stream(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> AsyncIterator[TextDelta | Completion]:
        self.sent.append(len(request.messages))
        yield TextDelta("ok")
        yield Completion("ok", (), "stop", Usage(1, 1), self.name)

    async def close(self) -> None:
        return None


async def _fill(bot: Any, key: str, count: int) -> tuple[int, int]:
    """Write a conversation of ``count`` turns; return its id and its newest message's id."""
    ref = ConversationRef("bench", key)
    conversation_id = await bot.store.history.conversation_id(ref)
    start = datetime(2025, 1, 1, tzinfo=UTC)

    def fill(conn: Connection) -> int:
        rows: list[dict[str, Any]] = []
        for n in range(count):
            inbound = n % 2 == 0
            last = n == count - 1
            rows.append(
                {
                    "conversation_id": conversation_id,
                    "channel": "bench",
                    "direction": "in" if inbound else "out",
                    "external_id": f"{key}-{n}" if inbound else None,
                    "sender_id": "user-1" if inbound else None,
                    "sender_name": "Bench User" if inbound else None,
                    "text": f"Turn {n}: a sentence or two of chat, about as long as people write.",
                    "markup": "plain" if inbound else "markdown",
                    "status": ("processing" if last else "done") if inbound else "delivered",
                    "attempts": 0,
                    "created_at": start + timedelta(seconds=n),
                    "updated_at": start + timedelta(seconds=n),
                }
            )
            if len(rows) == 5000 or last:
                conn.execute(insert(_messages), rows)
                rows = []
        return int(
            conn.execute(
                select(func.max(_messages.c.id)).where(
                    _messages.c.conversation_id == conversation_id
                )
            ).scalar_one()
        )

    newest = await bot.database.write(fill)
    return conversation_id, newest


async def _next_turn(bot: Any, key: str, conversation_id: int, newest: int) -> int:
    """Settle the newest message with a delivered reply and store a new message after it
    (as a live conversation does between two answers); returns the new message's id."""
    now = datetime.now(UTC)

    def advance(conn: Connection) -> int:
        conn.execute(_messages.update().where(_messages.c.id == newest).values(status="done"))
        rows = [
            {
                "conversation_id": conversation_id,
                "channel": "bench",
                "direction": direction,
                "external_id": f"{key}-{newest}-next" if direction == "in" else None,
                "sender_id": "user-1" if direction == "in" else None,
                "sender_name": "Bench User" if direction == "in" else None,
                "text": "Another sentence or two of chat, about as long as people write.",
                "markup": "plain",
                "status": status,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            for direction, status in (("out", "delivered"), ("in", "processing"))
        ]
        conn.execute(insert(_messages), rows)
        return int(
            conn.execute(
                select(func.max(_messages.c.id)).where(
                    _messages.c.conversation_id == conversation_id
                )
            ).scalar_one()
        )

    result: int = await bot.database.write(advance)
    return result


async def measure_length(opts: Options) -> str:
    """``history/length``: a new message in a 1,000-turn conversation against one in a
    2-turn conversation, with the default history limit."""
    repeats = 20 if opts.quick else 200
    model = InstantModel()
    tables: dict[str, Any] = {
        "database": {"url": sqlite_url(opts.workdir, "length"), "auto_migrate": True},
        "plugins": {"chat": {}},
    }
    bot = make_bot(tables, BenchAdapter(), model=model)
    await bot.start()
    try:
        long_id, newest = await _fill(bot, "long", 1001)
        sent: dict[str, int] = {}

        async def timed(key: str, i: int) -> float:
            nonlocal newest
            if key == "long":
                newest = await _next_turn(bot, key, long_id, newest)
                ids = (long_id, newest)
            else:
                ids = await _fill(bot, f"short-{i}", 3)
            model.sent.clear()
            elapsed = await _respond_time(bot, key, *ids)
            sent[key] = model.sent[-1]
            return elapsed

        long_t, short_t = await _alternately(repeats, timed)
    finally:
        await bot.stop()
    return (
        f"new message in a 1,000-turn conversation {ms(long_t)} vs in a 2-turn one "
        f"{ms(short_t)} = {long_t / short_t:.2f}x (target: the same within noise; "
        f"defaults: {sent['long']} vs {sent['short']} messages sent to the model)"
    )


async def measure_path(opts: Options) -> str:
    """``history/path``: whole messages, alternately, in a conversation of ``PATH_LONG``
    stored turns and in one that started with 2, with every default."""
    repeats = 20 if opts.quick else 300
    adapter = BenchAdapter()
    tables: dict[str, Any] = {
        "database": {"url": sqlite_url(opts.workdir, "path"), "auto_migrate": True},
        "plugins": {"chat": {}},
    }
    bot = make_bot(tables, adapter, model=InstantModel())
    await bot.start()
    try:
        await _fill(bot, "path-long", PATH_LONG)  # even: every message in it answered
        await _fill(bot, "path-short", 2)

        async def timed(key: str, i: int) -> float:
            return await _message_time(adapter, f"path-{key}", f"path-{key}-new-{i}")

        long_t, short_t = await _alternately(repeats, timed)
    finally:
        await bot.stop()
    return (
        f"a whole message in a conversation of {PATH_LONG:,} stored turns {ms(long_t)} vs "
        f"in one of 2 to {2 + 2 * (repeats + 5)} turns {ms(short_t)} = "
        f"{long_t / short_t:.2f}x (target: the same within noise; accepted, answered by an "
        f"instant in-process model, its reply handed to the channel; every default)"
    )


async def _alternately(
    repeats: int, timed: Callable[[str, int], Awaitable[float]]
) -> tuple[float, float]:
    """The median seconds of ``timed(key, round)`` for ``"long"`` and ``"short"``, taken
    in turns (which goes first alternates), after 5 warm-up rounds."""
    times: dict[str, list[float]] = {"long": [], "short": []}
    for i in range(repeats + 5):
        for key in ("long", "short") if i % 2 == 0 else ("short", "long"):
            elapsed = await timed(key, i)
            if i >= 5:
                times[key].append(elapsed)
    return median(times["long"]), median(times["short"])


async def _message_time(adapter: BenchAdapter, chat: str, external_id: str) -> float:
    """Seconds from a message's arrival at the inbox to its reply's hand-over."""
    inbox = adapter.inbox
    assert inbox is not None
    done = adapter.expect(external_id)
    started = time.monotonic()
    accepted = await inbox.accept(
        Message(
            conversation=ConversationRef("bench", chat),
            sender=Sender("user-1", "Bench User"),
            text="The newest turn.",
            external_id=external_id,
        )
    )
    if accepted.duplicate:  # it would never be answered, and this would wait forever
        raise RuntimeError(f"message {external_id} was stored already")
    return await done - started


async def _respond_time(bot: Any, key: str, conversation_id: int, message_id: int) -> float:
    message = Message(
        conversation=ConversationRef("bench", key),
        sender=Sender("user-1", "Bench User"),
        text="The newest turn.",
        external_id=f"{key}-newest",
        id=message_id,
    )
    ctx = Context(bot.runtime, message, conversation_id)
    started = time.perf_counter()
    await ctx.llm.respond(stream=False)
    return time.perf_counter() - started


@asynccontextmanager
async def _database(backend: str, opts: Options) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_url(opts.workdir, "history")
        return
    why = await postgres_reachable(opts.postgres_url)
    if why is not None:
        raise Skipped(why)
    assert opts.postgres_url is not None
    async with postgres_database(opts.postgres_url, "history") as url:
        yield url


async def measure(backend: str, opts: Options) -> str:
    """Fill both conversations, then time ``respond`` on each, alternately."""
    repeats = 10 if opts.quick else 40
    model = InstantModel()
    async with _database(backend, opts) as url:
        tables: dict[str, Any] = {
            "database": {"url": url, "auto_migrate": True},
            # both prompts carry the same 100 turns, so only the stored length differs
            "bot": {"history_limit": SHORT},
            "plugins": {"chat": {}},
        }
        bot = make_bot(tables, BenchAdapter(), model=model)
        await bot.start()
        try:
            started = time.monotonic()
            long_ids = await _fill(bot, "long", LONG)
            short_ids = await _fill(bot, "short", SHORT)
            filled = time.monotonic() - started
            times: dict[str, list[float]] = {"long": [], "short": []}
            for _ in range(3):  # warm-up: compiled statements, the tokenizer
                await _respond_time(bot, "long", *long_ids)
                await _respond_time(bot, "short", *short_ids)
            model.sent.clear()
            for i in range(repeats):
                order = [("long", long_ids), ("short", short_ids)]
                for key, ids in order if i % 2 == 0 else order[::-1]:
                    times[key].append(await _respond_time(bot, key, *ids))
        finally:
            await bot.stop()
    long_t, short_t = median(times["long"]), median(times["short"])
    spread = (percentile(times["short"], 75) - percentile(times["short"], 25)) / short_t
    sent = max(model.sent)
    return (
        f"prompt for {LONG:,} stored messages {ms(long_t)} vs {SHORT} messages {ms(short_t)} "
        f"= {long_t / short_t:.2f}x (target: the same within noise; the short one's "
        f"interquartile spread is {spread:.0%})  at most {sent} messages sent to the "
        f"model  [{LONG + SHORT:,} rows written in {filled:.1f} s, untimed; "
        f"bot.history_limit = {SHORT}, the answer asked whole, otherwise every default]"
    )


async def run_sqlite(opts: Options) -> str:
    """``history/sqlite``."""
    return await measure("sqlite", opts)


async def run_length(opts: Options) -> str:
    """``history/length``."""
    return await measure_length(opts)


async def run_path(opts: Options) -> str:
    """``history/path``."""
    return await measure_path(opts)


async def run_postgres(opts: Options) -> str:
    """``history/postgres``."""
    return await measure("postgres", opts)
