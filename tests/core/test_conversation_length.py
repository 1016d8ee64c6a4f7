"""A message costs the database the same work in a conversation of thousands of turns
as in one of two: every statement of its path is a seek, none walks the conversation.

Work is counted in SQLite's own steps (its virtual machine's instructions, through the
driver's progress handler on the bot's connections), which no machine's speed changes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, insert, select, update

from botkit import Capabilities, ConversationRef
from botkit.store.models import messages
from botkit.testing import InMemoryChannel, TestBot, run_bot

LONG = 3_000  # stored turns: far past history_limit, so only the path's seeks could grow
MEASURED = 3  # exchanges counted in each conversation


class Steps:
    """SQLite steps taken on the bot's connections while ``counting`` is on."""

    def __init__(self) -> None:
        self.counting = False
        self.taken = 0

    def watch(self, dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.set_progress_handler(self._step, 1)

    def _step(self) -> int:
        if self.counting:
            self.taken += 1
        return 0  # go on


async def _fill(test: TestBot, chat: str, count: int) -> tuple[int, int]:
    """``count`` (even) answered turns of ``chat`` written straight into the database;
    the conversation's id and its newest inbound message's (its answer is the last)."""
    conversation_id = await test.bot.store.history.conversation_id(ConversationRef("test", chat))
    start = datetime.now(UTC) - timedelta(days=30)

    def fill(conn: Connection) -> int:
        conn.execute(
            insert(messages),
            [
                {
                    "conversation_id": conversation_id,
                    "channel": "test",
                    "direction": "in" if n % 2 == 0 else "out",
                    "external_id": f"{chat}-old-{n}" if n % 2 == 0 else None,
                    "sender_id": "user" if n % 2 == 0 else None,
                    "text": f"turn {n}: a sentence or two, as people write",
                    "markup": "plain",
                    "status": "done" if n % 2 == 0 else "delivered",
                    "attempts": 0,
                    "created_at": start + timedelta(seconds=n),
                    "updated_at": start + timedelta(seconds=n),
                }
                for n in range(count)
            ],
        )
        newest = select(func.max(messages.c.id)).where(
            messages.c.conversation_id == conversation_id, messages.c.direction == "in"
        )
        question = int(conn.execute(newest).scalar_one())
        answer = update(messages).where(messages.c.id == question + 1)  # stored after it
        conn.execute(answer.values(reply_to_id=question))
        return question

    return conversation_id, await test.bot.database.write(fill)


async def _steps_per_message(channel: InMemoryChannel, chat: str, steps: Steps) -> float:
    await channel.exchange("warming up", chat=chat)  # the first answer reads the history
    steps.taken, steps.counting = 0, True
    for n in range(MEASURED):
        assert await channel.exchange(f"question {n}", chat=chat)
    steps.counting = False
    return steps.taken / MEASURED


@asynccontextmanager
async def _counted_bot(
    channel: InMemoryChannel, steps: Steps, **config: Any
) -> AsyncIterator[TestBot]:
    """A bot on SQLite whose every connection counts its steps into ``steps``."""
    test = run_bot(channels=[channel], config={"bot": config})
    assert test.bot.database.sqlite
    engine = test.bot.database._sync
    assert engine is not None
    event.listen(engine, "connect", steps.watch)
    async with test:
        yield test


@pytest.mark.parametrize("edits", [False, True], ids=["plain", "streamed"])
async def test_a_message_in_a_long_conversation_costs_the_database_what_a_short_ones_does(
    edits: bool,
) -> None:
    steps = Steps()
    # streamed where the channel edits what it posted (the live reply's rows and the
    # outbox's look for replies waiting), plain where it cannot
    channel = InMemoryChannel(capabilities=Capabilities(edits=edits, edit_interval=0.0))
    async with _counted_bot(channel, steps) as test:
        await _fill(test, "long", LONG)
        await _fill(test, "short", 2)
        long = await _steps_per_message(channel, "long", steps)
        short = await _steps_per_message(channel, "short", steps)
    assert short > 0
    # the same statements, each a seek: a few steps apart (an index a level deeper),
    # where a walk through the long conversation's rows would take thousands more
    assert long < short * 1.1, (long, short)


async def test_renewing_claims_reads_the_work_under_way_not_every_message_stored() -> None:
    steps = Steps()
    channel = InMemoryChannel()
    async with _counted_bot(channel, steps) as test:
        claims = test.bot.store.claims
        steps.counting = True
        await claims.renew(test.bot.claims.renewal())
        steps.counting = False
        empty, steps.taken = steps.taken, 0
        await _fill(test, "long", LONG)
        steps.counting = True
        await claims.renew(test.bot.claims.renewal())
        steps.counting = False
    assert empty > 0
    assert steps.taken < empty * 1.5, (steps.taken, empty)


async def test_an_answer_taken_over_looks_for_its_earlier_replies_among_its_newer_messages() -> (
    None
):
    steps = Steps()
    async with _counted_bot(InMemoryChannel(), steps) as test:
        outbound = test.bot.store.outbound
        counted: dict[str, int] = {}
        for chat, count in (("short", 2), ("long", LONG)):  # the short one measured alone
            conversation_id, newest = await _fill(test, chat, count)
            steps.taken, steps.counting = 0, True
            assert await outbound.earlier_replies(conversation_id, [newest]) != []
            steps.counting = False
            counted[chat] = steps.taken
    assert counted["long"] < counted["short"] * 1.5, counted
