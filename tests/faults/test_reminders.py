"""Reminders with real processes: the process holding the scheduler is killed before the
reminder falls due, and the other one sends it, once."""

from __future__ import annotations

import asyncio

import pytest

from tests.faults.harness import Cluster, wait_until

SETTLE = 4.0
LEASE = 2.0


@pytest.mark.timeout(120)
async def test_a_reminder_arrives_once_when_the_process_holding_the_scheduler_is_killed(
    cluster: Cluster, postgres_url: str
) -> None:
    await cluster.migrate(postgres_url)
    workers = [
        cluster.config(
            f"worker{i}",
            database=postgres_url,
            bot={"singleton_lease": LEASE},
            # by import path: the shared venv's entry points are main's until reinstalled
            plugins={"remind": {"use": "botkit_remind:plugin"}, "chat": {}},
        ).start()
        for i in range(2)
    ]
    for worker in workers:
        await worker.wait_ready()
    await wait_until(
        lambda: any("lease scheduler: taken" in w.log_text() for w in workers),
        what="a scheduler",
        watch=workers,
    )
    [holder] = [w for w in workers if "lease scheduler: taken" in w.log_text()]
    [other] = [w for w in workers if w is not holder]

    await cluster.slack_events.post(workers, "D1", "/remind in 8 seconds stand up")
    await wait_until(
        lambda: any(t.startswith("OK, I'll remind you") for t in cluster.slack_texts("D1")),
        what="the confirmation",
        watch=workers,
    )
    holder.kill()  # before the reminder falls due: the other process must take over
    await wait_until(
        lambda: "Reminder: stand up" in cluster.slack_texts("D1"),
        within=40,
        what="the reminder",
        watch=[other],
    )
    await asyncio.sleep(SETTLE)

    texts = cluster.slack_texts("D1")
    assert texts.count("Reminder: stand up") == 1, texts
    assert "lease scheduler: taken" in other.log_text()
