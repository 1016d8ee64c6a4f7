"""The model fails in the middle of a burst (500s, then accepted requests left hanging):
once it is back every message is answered once, and each person is told once that the
answer is delayed.

The outage lasts a minute: :data:`ERRORS_FOR` seconds of 500s, then :data:`HANGS_FOR` of
requests left hanging, with the model client's timeouts cut to :data:`LLM_TIMEOUT` so the
hanging part is felt as timeouts, as it would be with the default ones. The bot runs
its default outage settings: a waiting message is retried after 5, 10, 20, 40 s...
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from aiohttp import web

from tests.fakes.openai_server import FakeOpenAI, RecordedRequest, echo, hang, server_error
from tests.faults.harness import Cluster, wait_until

ERRORS_FOR = 30.0  # seconds of 500s
HANGS_FOR = 30.0  # then seconds of requests accepted and never answered
LLM_TIMEOUT = 3.0
CONVERSATIONS = 4
PER_CONVERSATION = 6
SPACING = 1.0  # seconds between two messages of one conversation
#: how a notice that the answer is delayed is recognised: its wording is botkit's to
#: pick, as long as it says "delay" (the apology for a failed answer does not)
DELAY_NOTICE = re.compile(r"\bdelay", re.IGNORECASE)
SETTLE = 4.0
# seconds after the outage for every message to be answered: the longest backoff a
# message reaches in a minute's outage (40 s, jittered up to 50 s), and some
RECOVERY_TIMEOUT = 70.0


class _Outage:
    """500s for ``ERRORS_FOR`` seconds from :meth:`begin`, then silence until
    ``HANGS_FOR`` more have passed, then the echo again."""

    def __init__(self) -> None:
        self.began: float | None = None
        self._echo = echo()

    def begin(self) -> None:
        self.began = time.monotonic()

    @property
    def over(self) -> bool:
        return self.began is not None and time.monotonic() > self.began + ERRORS_FOR + HANGS_FOR

    async def __call__(
        self, request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        if self.began is None:
            return await self._echo(request, recorded, fake)
        elapsed = time.monotonic() - self.began
        if elapsed < ERRORS_FOR:
            return await server_error(500)(request, recorded, fake)
        if elapsed < ERRORS_FOR + HANGS_FOR:
            return await hang(ERRORS_FOR + HANGS_FOR - elapsed)(request, recorded, fake)
        return await self._echo(request, recorded, fake)


@pytest.mark.timeout(240)
async def test_a_model_outage_mid_burst_delays_answers_and_says_so_once(
    cluster: Cluster, sqlite_url: str
) -> None:
    bot = cluster.config(
        "bot",
        database=sqlite_url,
        llm={"timeout": LLM_TIMEOUT, "stream_idle_timeout": LLM_TIMEOUT},
    ).start()
    await bot.wait_ready()
    outage = _Outage()
    cluster.openai.default = outage
    expected = {
        f"D{c}": [f"echo: c{c} m{n}" for n in range(PER_CONVERSATION)]
        for c in range(CONVERSATIONS)
    }

    async def conversation(c: int) -> None:
        for n in range(PER_CONVERSATION):
            await cluster.slack_events.post(bot, f"D{c}", f"c{c} m{n}")
            await asyncio.sleep(SPACING)

    async def outage_after_first_answers() -> None:
        await wait_until(
            lambda: len(cluster.slack_messages()) >= CONVERSATIONS, what="the first answers"
        )
        outage.begin()

    await asyncio.gather(
        outage_after_first_answers(), *(conversation(c) for c in range(CONVERSATIONS))
    )
    await wait_until(lambda: outage.over, within=ERRORS_FOR + HANGS_FOR + 5, what="the outage")

    def answers(channel: str) -> list[str]:
        return [t for t in cluster.slack_texts(channel) if not DELAY_NOTICE.search(t)]

    await wait_until(
        lambda: all(answers(c) == texts for c, texts in expected.items()),
        within=RECOVERY_TIMEOUT,
        what="every message answered after the outage",
        watch=[bot],
        explain=lambda: repr({c: cluster.slack_texts(c) for c in expected}),
    )
    await asyncio.sleep(SETTLE)

    assert {c: answers(c) for c in expected} == expected
    notices = {
        c: [
            ts
            for (channel, ts), texts in cluster.slack.shown.items()
            if channel == c and any(DELAY_NOTICE.search(t) for t in texts)
        ]
        for c in expected
    }
    assert {c: len(ts) for c, ts in notices.items()} == dict.fromkeys(expected, 1)
