"""Several workers on one PostgreSQL: each message answered once, in order within its
conversation, even when one worker freezes (SIGSTOP) past its claims' lease and wakes.

Deliveries go to the workers in turn (or by conversation), as behind a load balancer;
one conversation's messages are delivered one after another (the next once the previous
was acknowledged), as a person types them. Replies are not streamed here (``stream = false``)
so that 1,000 answers fit the suite's time on two cores: a streamed answer is a post and
its edits, and the streamed path has scenarios of its own.

Sizes: the full load (1,000 messages over 100 conversations) for the plain runs and the
frozen worker; the order scenario with deliveries spread over every worker runs a smaller
load (:data:`SMALL`) to keep the suite within its time.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from aiohttp import web

from botkit._faults import ENV
from tests.fakes.openai_server import FakeOpenAI, RecordedRequest, echo
from tests.faults.harness import BotProcess, Cluster, wait_until


@dataclass(frozen=True)
class Load:
    """How many messages, spread evenly over how many conversations."""

    messages: int
    conversations: int


FULL = Load(messages=1000, conversations=100)
SMALL = Load(messages=300, conversations=30)
LEASE = 2.0  # bot.claim_lease of a worker that is frozen past it, seconds
# bot.claim_lease where no worker freezes: long enough that two cores shared by four
# workers never starve a renewal past it (at 2 s they do, and a lapsed claim is taken
# over while its holder still sends: the frozen-worker scenario's failure)
CALM_LEASE = 15.0
ANSWER_TIMEOUT = 240.0
SETTLE = 2 * LEASE  # how long a late (doubled) answer gets to show itself


def _text(conversation: int, n: int) -> str:
    return f"c{conversation} m{n}"


def _expected(load: Load) -> dict[str, list[str]]:
    per = load.messages // load.conversations
    return {
        f"D{c}": [f"echo: {_text(c, n)}" for n in range(per)] for c in range(load.conversations)
    }


async def _deliver_all(
    cluster: Cluster, workers: list[BotProcess], load: Load, *, sticky: bool
) -> None:
    """Every conversation's messages in order, the conversations at once.

    Args:
        sticky: each conversation's messages go to one worker (``c % len(workers)``, the
            next one on a failed try), as with a load balancer routing by conversation;
            else every delivery goes to the next worker in turn.
    """

    async def conversation(c: int) -> None:
        for n in range(load.messages // load.conversations):
            first = c % len(workers) if sticky else None
            await cluster.slack_events.post(
                workers, f"D{c}", _text(c, n), first=first, deadline=120
            )

    await asyncio.gather(*(conversation(c) for c in range(load.conversations)))


def _lost_or_doubled(cluster: Cluster, load: Load) -> list[str]:
    problems = []
    for channel, texts in _expected(load).items():
        shown = cluster.slack_texts(channel)
        missing = [t for t in texts if t not in shown]
        doubled = sorted({t for t in shown if shown.count(t) > 1})
        if missing or doubled:
            problems.append(f"{channel}: missing {missing}, doubled {doubled}")
    return problems


def _out_of_order(cluster: Cluster, load: Load) -> list[str]:
    return [
        f"{channel}: {shown}"
        for channel, texts in _expected(load).items()
        if (shown := cluster.slack_texts(channel)) != texts
    ]


async def _all_answered(cluster: Cluster, workers: list[BotProcess], load: Load) -> None:
    channels = list(_expected(load))
    await wait_until(
        lambda: sum(len(cluster.slack_texts(c)) for c in channels) >= load.messages,
        within=ANSWER_TIMEOUT,
        what=f"{load.messages} answers",
        watch=workers,
        interval=0.5,
    )
    await asyncio.sleep(SETTLE)


async def _start_workers(
    cluster: Cluster, database: str, count: int, *, lease: float = CALM_LEASE
) -> list[BotProcess]:
    await cluster.migrate(database)
    workers = [
        cluster.config(
            f"worker{i}",
            database=database,
            bot={"stream": False, "claim_lease": lease},
            plugins={"chat": {}},
        ).start()
        for i in range(count)
    ]
    for worker in workers:
        await worker.wait_ready()
    return workers


@pytest.mark.timeout(360)
@pytest.mark.parametrize("count", [2, 4])
async def test_workers_answer_every_message_once(
    cluster: Cluster, postgres_url: str, count: int
) -> None:
    workers = await _start_workers(cluster, postgres_url, count)
    started = time.monotonic()

    await _deliver_all(cluster, workers, FULL, sticky=False)
    await _all_answered(cluster, workers, FULL)

    assert _lost_or_doubled(cluster, FULL) == []
    print(f"{count} workers: {FULL.messages} messages in {time.monotonic() - started:.1f} s")


@pytest.mark.timeout(360)
async def test_workers_keep_the_order_of_a_conversation_delivered_to_each_in_turn(
    cluster: Cluster, postgres_url: str
) -> None:
    workers = await _start_workers(cluster, postgres_url, 2)

    await _deliver_all(cluster, workers, SMALL, sticky=False)
    await _all_answered(cluster, workers, SMALL)

    assert _lost_or_doubled(cluster, SMALL) == []
    assert _out_of_order(cluster, SMALL) == []


class _Trap:
    """The model's answer to one message is held until released; the rest are echoed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.caught = asyncio.Event()
        self.released = asyncio.Event()
        self._echo = echo()

    async def __call__(
        self, request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        said = [m.get("content") for m in recorded.messages if m.get("role") == "user"]
        if said and said[-1] == self.text and not self.caught.is_set():
            self.caught.set()
            await self.released.wait()
        return await self._echo(request, recorded, fake)


@pytest.mark.timeout(360)
@pytest.mark.parametrize("count", [2, 4])
async def test_a_worker_frozen_past_its_lease_sends_nothing_twice(
    cluster: Cluster, postgres_url: str, count: int
) -> None:
    workers = await _start_workers(cluster, postgres_url, count, lease=LEASE)
    frozen = workers[0]
    # one message of the burst is in frozen's model call when it freezes; the model's
    # answer to it reaches frozen only once it wakes, long after its claim lapsed
    trap = _Trap(_text(0, 3))
    cluster.openai.default = trap
    delivering = asyncio.create_task(_deliver_all(cluster, workers, FULL, sticky=True))

    # each conversation is delivered to one worker (conversation 0 to the frozen one),
    # so order within a conversation is one process's business until the freeze; the
    # frozen worker alone asks the model for the trapped message until its claim lapses
    await wait_until(trap.caught.is_set, within=60, what="the trapped model call")
    frozen.pause()
    trap.released.set()
    others = workers[1:]
    await wait_until(
        lambda: cluster.slack_answered("D0", f"echo: {_text(0, 3)}"),
        within=60,
        what="another worker to answer the frozen worker's message",
        watch=others,
    )
    frozen.resume()

    await delivering
    await _all_answered(cluster, workers, FULL)

    assert _lost_or_doubled(cluster, FULL) == []
    assert _out_of_order(cluster, FULL) == []


@pytest.mark.timeout(120)
async def test_a_worker_frozen_mid_stream_leaves_one_message_with_the_whole_answer(
    cluster: Cluster, postgres_url: str
) -> None:
    """Streaming (the default): a worker shows the start of an answer and freezes right
    there (``live-shown``, before its next renewal: its reply's claim is younger than
    its message's); the other takes the message over once the frozen worker's claims
    lapse, all of them at once, and edits the shown message into its own whole answer.
    The frozen worker wakes and adds nothing."""
    await cluster.migrate(postgres_url)
    frozen, other = [
        cluster.config(f"worker{i}", database=postgres_url, bot={"claim_lease": LEASE})
        for i in range(2)
    ]
    frozen.env[ENV] = "live-shown:1:stop"
    for worker in (frozen, other):
        await worker.start().wait_ready()
    whole = "echo: tell me more" + "".join(f" w{i}" for i in range(20))
    cluster.openai.default = echo(pad_words=20, interval=0.05)
    await cluster.slack_events.post([frozen, other], "D1", "tell me more", first=0)
    await wait_until(lambda: frozen.stopped, what="the worker to freeze at its first post")
    assert len(cluster.slack_texts("D1")) == 1

    await wait_until(
        lambda: cluster.slack_texts("D1") == [whole],
        within=60,
        what="the other worker's whole answer, in the message already shown",
        watch=[other],
        explain=lambda: f"the channel shows {cluster.slack_texts('D1')!r}",
    )
    frozen.resume()
    await asyncio.sleep(SETTLE)

    assert cluster.slack_texts("D1") == [whole]
    assert not frozen.exited
