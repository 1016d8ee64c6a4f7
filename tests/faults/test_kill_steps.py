"""SIGKILL at each step of a message's life, then a restart: every inbound message is
answered by exactly one channel message (edits of it allowed), none is lost.

The channel is Slack's HTTP Events API, delivered the way Slack delivers: signed, and
redelivered until a bot acknowledges it, so a message whose acknowledgement the kill
swallowed comes again to the restarted bot. Each message has a conversation (a DM
channel) of its own, so "exactly one message in the channel" is "answered once".
"""

from __future__ import annotations

import asyncio

from tests.fakes.openai_server import echo, hang
from tests.faults.harness import BotProcess, Cluster, answered_once_problems, wait_until

BURST = 24  # messages posted at once in the accept and group-commit steps
SETTLE = 4.0  # seconds a wrongly resumed answer gets to show itself (more than a lease)
ANSWER_TIMEOUT = 45.0


async def _restart_and_settle(cluster: Cluster, bot: BotProcess, expected: dict[str, str]) -> None:
    """Start the killed bot again; wait until every expected answer is shown, then a
    little longer, and check each conversation holds exactly its one answer."""
    bot.start()
    await bot.wait_ready()
    await wait_until(
        lambda: all(cluster.slack_answered(c, t) for c, t in expected.items()),
        within=ANSWER_TIMEOUT,
        what="every message to be answered after the restart",
        watch=[bot],
    )
    await asyncio.sleep(SETTLE)
    assert answered_once_problems(cluster, expected) == []


async def _burst_killed_midway(cluster: Cluster, bot: BotProcess) -> dict[str, str]:
    """Post ``BURST`` messages at once and SIGKILL the bot when about a third of them are
    acknowledged; restart it while the rest are still being redelivered.

    The model says nothing until the kill, so the kill cuts accepting (and claiming) and
    nothing else: the later steps have tests of their own.
    """
    cluster.openai.default = hang(120)
    expected = {f"D{i}": f"echo: burst {i}" for i in range(BURST)}
    posts = [
        asyncio.create_task(cluster.slack_events.post(bot, f"D{i}", f"burst {i}"))
        for i in range(BURST)
    ]
    await wait_until(
        lambda: sum(t.done() for t in posts) >= BURST // 3,
        what="a third of the burst acknowledged",
        watch=[bot],
    )
    bot.kill()
    cluster.openai.default = None
    restarted = asyncio.create_task(_restart_and_settle(cluster, bot, expected))
    await asyncio.gather(*posts)
    await restarted
    return expected


async def test_killed_during_accept_each_message_is_answered_once(
    cluster: Cluster, postgres_url: str
) -> None:
    bot = cluster.config("bot", database=postgres_url).start()
    await bot.wait_ready()

    await _burst_killed_midway(cluster, bot)


async def test_killed_during_a_group_commit_each_message_is_answered_once(
    cluster: Cluster, sqlite_url: str
) -> None:
    # SQLite commits the writes that arrive together as one transaction: a burst of
    # accepts (and the claims that follow them) is a stream of group commits, cut by the kill
    bot = cluster.config("bot", database=sqlite_url).start()
    await bot.wait_ready()

    await _burst_killed_midway(cluster, bot)


async def test_killed_during_the_model_call_the_message_is_answered_once(
    cluster: Cluster, database: str
) -> None:
    bot = cluster.config("bot", database=database).start()
    await bot.wait_ready()
    cluster.openai.default = hang(120)
    await cluster.slack_events.post(bot, "D1", "are you there?")
    await wait_until(lambda: len(cluster.openai.requests) == 1, what="the model call")

    bot.kill()
    cluster.openai.default = None

    await _restart_and_settle(cluster, bot, {"D1": "echo: are you there?"})


async def test_killed_mid_stream_the_answer_edits_the_message_already_shown(
    cluster: Cluster, postgres_url: str
) -> None:
    bot = cluster.config("bot", database=postgres_url).start()
    await bot.wait_ready()
    cluster.openai.default = echo(pad_words=20, stall_after=4, stall_for=120)
    await cluster.slack_events.post(bot, "D1", "tell me more")
    await wait_until(
        lambda: bool(cluster.slack_texts("D1")), what="the first part shown", watch=[bot]
    )

    bot.kill()
    cluster.openai.default = None

    await _restart_and_settle(cluster, bot, {"D1": "echo: tell me more"})


async def test_killed_after_slack_received_the_reply_it_is_not_posted_again(
    cluster: Cluster, postgres_url: str
) -> None:
    # not streamed: the reply is one chat.postMessage, which Slack carries out and then
    # answers only after the bot is dead
    bot = cluster.config("bot", database=postgres_url, bot={"stream": False}).start()
    await bot.wait_ready()
    cluster.slack.hold("chat.postMessage", 120)
    await cluster.slack_events.post(bot, "D1", "hello")
    await wait_until(lambda: cluster.slack.holding == 1, what="the reply posted", watch=[bot])

    bot.kill()

    await _restart_and_settle(cluster, bot, {"D1": "echo: hello"})
