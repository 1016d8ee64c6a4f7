"""SIGKILL while an answer streams with the platform's own streaming, then a restart: the
user is left with one message holding the whole answer.

Slack: the stream (``chat.startStream``) is a message from its start and its ``ts`` is
recorded at once, so the restarted bot ends that stream and edits it. Telegram: a private
chat's drafts are no message, so there is nothing to edit; the restarted bot answers
again and sends the answer once.
"""

from __future__ import annotations

import asyncio

from tests.fakes.openai_server import echo
from tests.faults.harness import Cluster, wait_until

SETTLE = 4.0  # seconds a wrongly resumed answer gets to show itself (more than a lease)
ANSWER = "echo: tell me more"
SLOW = echo(pad_words=20, interval=0.3, stall_after=8, stall_for=120)


async def test_killed_mid_slack_stream_the_answer_finishes_in_the_same_message(
    cluster: Cluster, postgres_url: str
) -> None:
    bot = cluster.config("bot", database=postgres_url).start()
    await bot.wait_ready()
    cluster.openai.default = SLOW
    thread = cluster.slack_events.next_ts()
    await cluster.slack_events.post(bot, "D1", "tell me more", thread_ts=thread)
    # an append follows the start only once its ts is recorded
    await wait_until(
        lambda: bool(cluster.slack.calls_to("chat.appendStream")),
        what="the answer streaming",
        watch=[bot],
    )
    [cut] = cluster.slack_messages("D1")
    assert cut["streaming"]

    bot.kill()
    cluster.openai.default = None
    bot.start()
    await bot.wait_ready()
    await wait_until(
        lambda: (
            cluster.slack_texts("D1") == [ANSWER]
            and not cluster.slack_messages("D1")[0]["streaming"]
        ),
        within=45,
        what="the answer finished after the restart",
        watch=[bot],
    )
    await asyncio.sleep(SETTLE)

    [message] = cluster.slack_messages("D1")
    assert (message["ts"], message["text"], message["streaming"]) == (cut["ts"], ANSWER, False)
    assert message["thread_ts"] == thread
    assert len(cluster.slack.calls_to("chat.startStream")) == 1


async def test_killed_mid_telegram_draft_the_answer_is_sent_once(
    cluster: Cluster, postgres_url: str
) -> None:
    bot = cluster.config("bot", database=postgres_url, channel="telegram").start()
    await bot.wait_ready()
    cluster.openai.default = SLOW
    await cluster.telegram_webhook.post(bot, cluster.telegram_webhook.update(4242, "tell me more"))
    await wait_until(
        lambda: len(cluster.telegram.drafts) >= 2, what="the answer as a draft", watch=[bot]
    )

    bot.kill()
    assert cluster.telegram_texts(4242) == []  # a draft is no message
    cluster.openai.default = None
    bot.start()
    await bot.wait_ready()
    await wait_until(
        lambda: bool(cluster.telegram_texts(4242)),
        within=45,
        what="the answer sent after the restart",
        watch=[bot],
    )
    await asyncio.sleep(SETTLE)

    assert cluster.telegram_texts(4242) == [ANSWER]
    assert cluster.telegram.draft_shown(4242) is None
    assert {d.draft_id for d in cluster.telegram.drafts} == {cluster.telegram.drafts[0].draft_id}
