"""PostgreSQL restarted in the middle of a burst: nothing lost or doubled, and the bot
recovers by itself (no restart of botkit).

This restarts the machine's PostgreSQL cluster (``pg_ctlcluster ... restart``), which
every database on it feels for a second or two (other test runs sharing the server
included: set ``BOTKIT_FAULTS_NO_PG_RESTART=1`` to skip this scenario there); the fixture
makes sure it runs again afterwards whatever happens. Replies are not streamed (the
streamed path's crash behaviour has scenarios of its own).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Iterator

import pytest

from tests.faults.harness import (
    Cluster,
    ensure_postgres_running,
    restart_postgres,
    wait_until,
)

CONVERSATIONS = 20
PER_CONVERSATION = 10
SETTLE = 4.0
RECOVERY_TIMEOUT = 30.0  # seconds after the burst for every message to be answered


@pytest.fixture
def postgres_restarts(postgres_url: str) -> Iterator[None]:
    """Allows the scenario to restart PostgreSQL; starts it again at teardown if needed.

    Depends on ``postgres_url`` so that it is torn down first: the scenario's database
    is dropped only once the server runs again.
    """
    if shutil.which("pg_ctlcluster") is None:
        pytest.skip("needs pg_ctlcluster to restart the local PostgreSQL")
    if os.environ.get("BOTKIT_FAULTS_NO_PG_RESTART"):
        pytest.skip("BOTKIT_FAULTS_NO_PG_RESTART is set: PostgreSQL is shared")
    try:
        yield
    finally:
        ensure_postgres_running()


DELAY_NOTICE = re.compile(r"\bdelay", re.IGNORECASE)  # botkit's notice says "delayed"


def _unanswered(cluster: Cluster, expected: dict[str, list[str]]) -> list[str]:
    return [t for c, texts in expected.items() for t in texts if t not in cluster.slack_texts(c)]


@pytest.mark.timeout(180)
async def test_a_postgres_restart_mid_burst_loses_and_doubles_nothing(
    cluster: Cluster, postgres_url: str, postgres_restarts: None
) -> None:
    bot = cluster.config("bot", database=postgres_url, bot={"stream": False}).start()
    await bot.wait_ready()
    expected = {
        f"D{c}": [f"echo: c{c} m{n}" for n in range(PER_CONVERSATION)]
        for c in range(CONVERSATIONS)
    }

    async def conversation(c: int) -> None:
        for n in range(PER_CONVERSATION):
            await cluster.slack_events.post(bot, f"D{c}", f"c{c} m{n}", deadline=120)

    delivering = asyncio.create_task(
        asyncio.wait_for(
            asyncio.gather(*(conversation(c) for c in range(CONVERSATIONS))), timeout=150
        )
    )
    total = CONVERSATIONS * PER_CONVERSATION
    await wait_until(
        lambda: len(cluster.slack_messages()) >= total // 4,
        what="a quarter of the burst answered",
        watch=[bot],
    )
    await asyncio.to_thread(restart_postgres)
    await delivering

    await wait_until(
        lambda: len(cluster.slack_messages()) >= total,
        within=RECOVERY_TIMEOUT,
        what="every message answered after the restart",
        watch=[bot],
        interval=0.2,
        explain=lambda: f"unanswered: {_unanswered(cluster, expected)}",
    )
    await asyncio.sleep(SETTLE)

    # while the database was away, a conversation may have been told once that its
    # answer is delayed; besides that, each message is answered once, in order
    shown = {channel: cluster.slack_texts(channel) for channel in expected}
    notices = {c: [t for t in texts if DELAY_NOTICE.search(t)] for c, texts in shown.items()}
    assert all(len(n) <= 1 for n in notices.values()), notices
    answers = {c: [t for t in texts if not DELAY_NOTICE.search(t)] for c, texts in shown.items()}
    assert {c: t for c, t in answers.items() if t != expected[c]} == {}
    assert bot.running
