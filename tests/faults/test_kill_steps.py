"""SIGKILL at each step of a message's life, then a restart: every inbound message is
answered by exactly one channel message (edits of it allowed), none is lost.

The channel is Slack's HTTP Events API, delivered the way Slack delivers: signed, and
redelivered until a bot acknowledges it, so a message whose acknowledgement the kill
swallowed comes again to the restarted bot. Each message has a conversation (a DM
channel) of its own, so "exactly one message in the channel" is "answered once".
"""

from __future__ import annotations

import asyncio
import signal

from botkit._faults import ENV
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


async def _burst_killed_at(cluster: Cluster, bot: BotProcess, point: str) -> dict[str, str]:
    """Post ``BURST`` messages at once to a bot started with ``BOTKIT_FAULT_AT=point``,
    which SIGKILLs itself there (``botkit._faults``); restart it (without the fault) while
    the messages it did not acknowledge are still being redelivered."""
    bot.env[ENV] = point
    bot.start()
    await bot.wait_ready()
    expected = {f"D{i}": f"echo: burst {i}" for i in range(BURST)}
    posts = [
        asyncio.create_task(cluster.slack_events.post(bot, f"D{i}", f"burst {i}"))
        for i in range(BURST)
    ]
    # it stops itself at the point: a run that never reaches it fails here
    assert await bot.wait_exit(within=ANSWER_TIMEOUT) == -signal.SIGKILL
    del bot.env[ENV]
    restarted = asyncio.create_task(_restart_and_settle(cluster, bot, expected))
    await asyncio.gather(*posts)
    await restarted
    return expected


async def test_killed_during_accept_each_message_is_answered_once(
    cluster: Cluster, postgres_url: str
) -> None:
    # the fifth message is stored, and the process dies before Slack hears it was taken
    bot = cluster.config("bot", database=postgres_url)

    await _burst_killed_at(cluster, bot, "accept:5")


async def test_killed_during_a_group_commit_each_message_is_answered_once(
    cluster: Cluster, sqlite_url: str
) -> None:
    # SQLite commits the writes that arrive together as one transaction: the process dies
    # with the second such batch written and not committed (accepts, claims, answers)
    bot = cluster.config("bot", database=sqlite_url)

    await _burst_killed_at(cluster, bot, "group-commit:2")


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
