"""Scenario ``admin``: the operations page with 100,000 stored messages.

A real bot (SQLite, the defaults a user gets, the operations page on) is given 1,000
conversations of 100 messages each over the last 30 days on three channels, with a model
call for every inbound message (50,000, four models, 200 users), some failed replies and
some held spam, all written straight into its database (untimed). Then a logged-in HTTP
client asks for each page in turn, over real HTTP: the conversation list (the newest
page, a page deep in the list, a text search), one conversation, the spend chart, what
needs a person, and the work per process. The figure is each page's median time from
request to the last byte, against the target of 200 ms; the ratio is the slowest page's
median over the target (below 1.00x meets it). Nothing is asserted: a benchmark never
fails on a timing.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import Connection, Integer, case, cast, false, func, insert, literal, select

from bench._util import Options, median, ms, sqlite_url
from botkit import Bot
from botkit.config import parse_config
from botkit.store.models import Base

TARGET = 0.200  # seconds: "a page renders in under 200 ms"
TOKEN = "bench-admin-token-0123456789abcdef"
CHANNELS = ("telegram", "slack", "email")
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "o1-mini")
_conversations = Base.metadata.tables["conversations"]
_messages = Base.metadata.tables["messages"]
_calls = Base.metadata.tables["model_calls"]


async def run(opts: Options) -> str:
    """Time every page of the operations page over a database of 100,000 messages."""
    conversations, per_conversation = (100, 100) if opts.quick else (1_000, 100)
    repeats = 5 if opts.quick else 30
    tables: dict[str, Any] = {
        "database": {"url": sqlite_url(opts.workdir, "admin"), "auto_migrate": True},
        "web": {"enabled": True, "port": 0},
        "adapters": {},
        "bot": {"tune_gc": False},
    }
    bot = Bot(parse_config(tables, environ={"BOTKIT_ADMIN_TOKEN": TOKEN}), adapters={}, plugins=[])
    await bot.start()
    try:
        stored = await bot.database.write(
            lambda conn: _fill(conn, conversations, per_conversation)
        )
        assert bot.web is not None
        base = f"http://127.0.0.1:{bot.web.port}"
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as http:
            async with http.post("/admin/login", data={"token": TOKEN}) as response:
                if response.status != 200:
                    raise RuntimeError(f"could not log in: {response.status}")
            middle = conversations // 2
            pages = {
                "list": "/admin/conversations",
                "list p10": f"/admin/conversations?before={middle}",
                "search": "/admin/conversations?q=needle",
                "conversation": f"/admin/conversations/{middle}",
                "spend": "/admin/spend",
                "spend by user": "/admin/spend?by=user",
                "attention": "/admin/attention",
                "work": "/admin/work",
            }
            times: dict[str, list[float]] = {name: [] for name in pages}
            for round_ in range(repeats + 2):  # two rounds of warm-up
                for name, path in pages.items():
                    started = time.perf_counter()
                    async with http.get(path) as response:
                        body = await response.text()
                    elapsed = time.perf_counter() - started
                    if response.status != 200:
                        raise RuntimeError(f"{path} answered {response.status}")
                    if round_ >= 2:
                        times[name].append(elapsed)
            _check(body, pages)
    finally:
        await bot.stop()
    medians = {name: median(values) for name, values in times.items()}
    slowest = max(medians, key=lambda name: medians[name])
    figures = ", ".join(f"{name} {ms(value)}" for name, value in medians.items())
    return (
        f"{stored:,} messages: median {figures} (of {repeats}); slowest ({slowest}) = "
        f"{medians[slowest] / TARGET:.2f}x the 200 ms target"
    )


def _fill(conn: Connection, conversations: int, per_conversation: int) -> int:
    """Write the conversations, their messages and a model call per inbound message;
    returns how many messages were written."""
    now = datetime.now(UTC)
    step = timedelta(days=30) / (conversations * per_conversation)
    conn.execute(
        insert(_conversations),
        [
            {
                "key": f"{CHANNELS[c % 3]}:chat-{c}:",
                "channel": CHANNELS[c % 3],
                "chat_id": f"chat-{c}",
                "thread_id": None,
                "history_start_id": 0,
                "created_at": now - timedelta(days=30) + step * c * per_conversation,
                "updated_at": now,
            }
            for c in range(conversations)
        ],
    )
    rows: list[dict[str, Any]] = []
    n = 0
    for c in range(conversations):
        for turn in range(per_conversation):
            inbound = turn % 2 == 0
            status = "done" if inbound else "delivered"
            meta = None
            if inbound and n % 701 == 0:
                status, meta = "skipped", {"spam": True, "spam_reason": "3 links"}
            elif not inbound and n % 499 == 1:
                status = "failed"
            at = now - timedelta(days=30) + step * n
            rows.append(
                {
                    "conversation_id": c + 1,
                    "channel": CHANNELS[c % 3],
                    "direction": "in" if inbound else "out",
                    "external_id": f"{c}-{turn}" if inbound else None,
                    "sender_id": f"user-{c % 200}" if inbound else None,
                    "sender_name": f"User {c % 200}" if inbound else None,
                    "text": ("needle " if n % 997 == 0 else "")
                    + f"Turn {turn}: a sentence or two of chat, as long as people write.",
                    "markup": "plain",
                    "status": status,
                    "error": "chat not found" if status == "failed" else None,
                    "meta": meta,
                    "attempts": 0,
                    "claim_token": 0,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            n += 1
            if len(rows) == 5_000:
                conn.execute(insert(_messages), rows)
                rows = []
    if rows:
        conn.execute(insert(_messages), rows)
    m = _messages.c
    model = case(
        *((m.id % len(MODELS) == i, literal(name)) for i, name in enumerate(MODELS)),
        else_=literal(MODELS[0]),
    )
    calls = select(
        m.id,
        m.conversation_id,
        m.channel,
        m.sender_id,
        literal("chat"),
        model,
        500 + m.id % 300,
        cast(literal(120), Integer),
        (500 + m.id % 300) * 150 + 120 * 600,
        literal(850.0),
        literal(True),
        literal(1),
        case((m.id % 10 == 0, literal(True)), else_=false()),
        m.created_at,
    ).where(m.direction == "in")
    conn.execute(
        insert(_calls).from_select(
            [
                "message_id",
                "conversation_id",
                "channel",
                "user_id",
                "purpose",
                "model",
                "prompt_tokens",
                "completion_tokens",
                "cost_nanos",
                "latency_ms",
                "ok",
                "attempt",
                "usage_estimated",
                "created_at",
            ],
            calls,
        )
    )
    return int(conn.execute(select(func.count(m.id))).scalar_one())


def _check(last_page: str, pages: dict[str, str]) -> None:
    """The pages timed are the real ones (the last, the work page, has its table)."""
    if not re.search(r"<h1>Work</h1>", last_page):
        raise RuntimeError(f"{list(pages)[-1]} did not render: {last_page[:200]}")
