"""Deliveries that come more than once, and work that must happen once cluster-wide:
Slack retry storms, Telegram redelivery, two processes polling one Telegram token, and a
scheduled digest with two processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest

from tests.faults._digest_plugin import DIGEST_TO
from tests.faults.harness import (
    BotProcess,
    Cluster,
    SlackEvents,
    answered_once_problems,
    wait_until,
)

STORM_MESSAGES = 20
STORM_RETRIES = 3  # redeliveries of each message (X-Slack-Retry-Num 1..3), all at once
TELEGRAM_UPDATES = 10
TELEGRAM_DELIVERIES = 3  # times each update is posted
POLL_TIMEOUT = 2  # seconds one getUpdates waits, for the two pollers
SETTLE = 4.0


async def _workers(
    cluster: Cluster,
    database: str,
    channel: str = "slack",
    *,
    adapter: Mapping[str, Any] | None = None,
    plugins: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[BotProcess]:
    """Two bots on one database, started and ready."""
    await cluster.migrate(database)
    workers = [
        cluster.config(
            f"worker{i}", database=database, channel=channel, adapter=adapter, plugins=plugins
        ).start()
        for i in range(2)
    ]
    for worker in workers:
        await worker.wait_ready()
    return workers


async def test_a_slack_retry_storm_over_two_workers_is_answered_once(
    cluster: Cluster, postgres_url: str
) -> None:
    workers = await _workers(cluster, postgres_url)
    events = cluster.slack_events
    expected = {f"D{i}": f"echo: storm {i}" for i in range(STORM_MESSAGES)}

    async def storm(i: int) -> None:
        ts = events.next_ts()
        raw = SlackEvents.body(f"D{i}", f"storm {i}", ts)
        statuses = await asyncio.gather(
            *(
                events.post_raw(workers[(i + n) % 2], raw, SlackEvents.headers(raw, retry=n))
                for n in range(STORM_RETRIES + 1)
            )
        )
        if not any(s is not None and 200 <= s < 300 for s in statuses):
            await events.post(workers, f"D{i}", f"storm {i}", ts)  # as Slack would, again

    await asyncio.gather(*(storm(i) for i in range(STORM_MESSAGES)))
    await wait_until(
        lambda: all(cluster.slack_answered(c, t) for c, t in expected.items()),
        what="every message answered",
        watch=workers,
    )
    await asyncio.sleep(SETTLE)

    assert answered_once_problems(cluster, expected) == []


async def test_a_telegram_update_redelivered_to_two_workers_is_answered_once(
    cluster: Cluster, postgres_url: str
) -> None:
    workers = await _workers(cluster, postgres_url, channel="telegram")
    hook = cluster.telegram_webhook
    updates = [hook.update(7000 + i, f"again {i}") for i in range(TELEGRAM_UPDATES)]

    await asyncio.gather(
        *(
            hook.post(workers[(u["update_id"] + n) % 2], u)
            for u in updates
            for n in range(TELEGRAM_DELIVERIES)
        )
    )
    expected = {7000 + i: [f"echo: again {i}"] for i in range(TELEGRAM_UPDATES)}
    await wait_until(
        lambda: all(cluster.telegram_texts(c) for c in expected),
        what="every update answered",
        watch=workers,
    )
    await asyncio.sleep(SETTLE)

    assert {c: cluster.telegram_texts(c) for c in expected} == expected


async def test_two_processes_with_one_telegram_token_poll_one_at_a_time(
    cluster: Cluster, postgres_url: str
) -> None:
    cluster.telegram.exclusive_polling = True
    workers = await _workers(
        cluster, postgres_url, channel="telegram-polling", adapter={"poll_timeout": POLL_TIMEOUT}
    )
    await wait_until(
        lambda: len(cluster.telegram.calls("getUpdates")) >= 4,
        what="polling to begin",
        watch=workers,
    )

    for i in range(TELEGRAM_UPDATES):
        await cluster.telegram.push_update(cluster.telegram_webhook.update(8000 + i, f"poll {i}"))
    expected = {8000 + i: [f"echo: poll {i}"] for i in range(TELEGRAM_UPDATES)}
    await wait_until(
        lambda: all(cluster.telegram_texts(c) for c in expected),
        what="every update answered",
        watch=workers,
    )
    await asyncio.sleep(SETTLE)

    assert {c: cluster.telegram_texts(c) for c in expected} == expected
    assert cluster.telegram.conflicts == 0


@pytest.mark.timeout(120)
async def test_a_scheduled_digest_with_two_processes_is_sent_once(
    cluster: Cluster, postgres_url: str
) -> None:
    workers = await _workers(
        cluster,
        postgres_url,
        plugins={"chat": {}, "faults_digest": {"use": "tests.faults._digest_plugin:plugin"}},
    )
    # the next minute both processes are surely up for
    boundary = (int(time.time()) // 60 + 1) * 60
    if boundary - time.time() < 2:
        boundary += 60

    def digests() -> list[str]:
        return cluster.slack_texts(DIGEST_TO.chat_id)

    await wait_until(
        lambda: bool(digests()),
        within=boundary - time.time() + 20,
        what="the minute's digest",
        watch=workers,
    )
    await asyncio.sleep(SETTLE)

    assert len(digests()) == 1, digests()
