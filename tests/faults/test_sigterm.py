"""SIGTERM while answers stream for longer than the grace period, then a restart: each
answer is one channel message (the one already shown, edited to the end)."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.openai_server import echo
from tests.faults.harness import Cluster, answered_once_problems, wait_until

GRACE = 2.0  # bot.shutdown_grace, seconds
PAD_WORDS = 30  # the answer's length in words beyond the echo
WORD_INTERVAL = 0.25  # seconds between streamed words: an answer takes about 8 s > GRACE
ANSWERS = 3
SETTLE = 4.0


@pytest.mark.timeout(90)
async def test_sigterm_mid_stream_then_restart_leaves_one_message_per_answer(
    cluster: Cluster, database: str
) -> None:
    bot = cluster.config("bot", database=database, bot={"shutdown_grace": GRACE}).start()
    await bot.wait_ready()
    cluster.openai.default = echo(pad_words=PAD_WORDS, interval=WORD_INTERVAL)
    padding = "".join(f" w{i}" for i in range(PAD_WORDS))
    expected = {f"D{i}": f"echo: question {i}{padding}" for i in range(ANSWERS)}
    for i in range(ANSWERS):
        await cluster.slack_events.post(bot, f"D{i}", f"question {i}")
    await wait_until(
        lambda: all(cluster.slack_texts(c) for c in expected),
        what="every answer to start showing",
        watch=[bot],
    )

    bot.terminate()
    assert await bot.wait_exit(within=GRACE + 10) == 0
    assert not any(cluster.slack_answered(c, t) for c, t in expected.items())
    cluster.openai.default = echo(pad_words=PAD_WORDS)
    bot.start()
    await bot.wait_ready()

    await wait_until(
        lambda: all(cluster.slack_answered(c, t) for c, t in expected.items()),
        within=40,
        what="every answer finished after the restart",
        watch=[bot],
        explain=lambda: repr({c: cluster.slack_texts(c) for c in expected}),
    )
    await asyncio.sleep(SETTLE)
    assert answered_once_problems(cluster, expected) == []
