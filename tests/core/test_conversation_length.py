"""A message costs the database the same work in a conversation of thousands of turns
as in one of two: every statement of its path is a seek, none walks the conversation.

Work is counted in SQLite's own steps (its virtual machine's instructions, through the
driver's progress handler on the bot's connections), which no machine's speed changes.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, event, insert

from botkit import ConversationRef
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


async def _fill(test: TestBot, chat: str, count: int) -> None:
    """``count`` answered turns of ``chat`` written straight into the database."""
    conversation_id = await test.bot.store.history.conversation_id(ConversationRef("test", chat))
    start = datetime.now(UTC) - timedelta(days=30)

    def fill(conn: Connection) -> None:
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

    await test.bot.database.write(fill)


async def _steps_per_message(
    test: TestBot, channel: InMemoryChannel, chat: str, steps: Steps
) -> float:
    await channel.exchange("warming up", chat=chat)  # the first answer reads the history
    steps.taken, steps.counting = 0, True
    for n in range(MEASURED):
        assert await channel.exchange(f"question {n}", chat=chat) == [f"echo: question {n}"]
    steps.counting = False
    return steps.taken / MEASURED


async def test_a_message_in_a_long_conversation_costs_the_database_what_a_short_ones_does() -> (
    None
):
    steps = Steps()
    channel = InMemoryChannel()
    test = run_bot(channels=[channel], config={"bot": {"stream": False}})
    assert test.bot.database.sqlite
    engine = test.bot.database._sync
    assert engine is not None
    event.listen(engine, "connect", steps.watch)
    async with test:
        await _fill(test, "long", LONG)
        await _fill(test, "short", 2)
        long = await _steps_per_message(test, channel, "long", steps)
        short = await _steps_per_message(test, channel, "short", steps)
    assert short > 0
    # the same statements, each a seek: a few steps apart (an index a level deeper),
    # where a walk through the long conversation's rows would take thousands more
    assert long < short * 1.1, (long, short)
