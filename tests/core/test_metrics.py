"""``/metrics``: what each adapter, the model and the pipeline count, and the README's list."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import aiohttp

from botkit import (
    Context,
    Message,
    Plugin,
    RateLimitError,
    Sender,
    ServiceUnavailableError,
)
from botkit.messages import ConversationRef
from botkit.metrics import Metrics
from botkit.store import Claim
from botkit.store.models import utcnow
from botkit.testing import FakeModel, InMemoryChannel, run_bot

README = Path(__file__).resolve().parents[2] / "README.md"


def _families(exposition: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) \S+$", exposition, re.M))


def test_the_readme_lists_every_metric_and_only_those() -> None:
    section = README.read_text().split("## Metrics and logs", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(botkit_\w+)`", section, re.M))
    assert listed == _families(Metrics().render().decode())


def test_a_label_sets_child_is_kept_and_counts_in_one_series() -> None:
    metrics = Metrics()
    first = metrics.tokens.labels("m", "prompt")
    assert metrics.tokens.labels("m", "prompt") is first
    assert metrics.tokens.labels("m", "completion") is not first
    first.inc(2)
    metrics.tokens.labels("m", "prompt").inc(3)
    metrics.tokens.labels(model="m", kind="prompt").inc(1)  # by name: the same series
    rendered = metrics.render().decode()
    assert 'botkit_model_tokens_total{kind="prompt",model="m"} 6.0' in rendered


async def test_channel_model_and_pipeline_figures_reach_metrics(database_url: str) -> None:
    adapter = InMemoryChannel()
    model = FakeModel()
    model.reply("fine").fail(RateLimitError("llm", "slow down", retry_after=1.0))
    adapter.fail_sends(ServiceUnavailableError("test", "channel down"))
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        model=model,
        config={"web": {"enabled": True, "port": 0}},
    ).bot
    async with bot, aiohttp.ClientSession() as http:
        await adapter.exchange("hello")
        await adapter.exchange("again")
        report = bot.inbox.report("test")
        report.ignored("own_message")
        report.rate_limited(2.5, reason="server")
        await adapter.deliver(
            Message(
                conversation=ConversationRef("test", "c9"),
                sender=Sender("u9", "u9"),
                text="I am away",
                external_id="auto-1",
            ),
            skip="auto_submitted: Auto-Submitted: auto-replied",
        )
        assert bot.web is not None
        async with http.get(f"http://127.0.0.1:{bot.web.port}/metrics") as response:
            metrics = await response.text()
    for line in (
        'botkit_messages_received_total{channel="test"} 4.0',
        'botkit_messages_in_total{channel="test"} 3.0',
        'botkit_messages_ignored_total{channel="test",reason="own_message"} 1.0',
        'botkit_messages_ignored_total{channel="test",reason="auto_submitted"} 1.0',
        'botkit_send_failures_total{channel="test",kind="unavailable"} 1.0',
        'botkit_rate_limit_wait_seconds_sum{channel="test",reason="server"} 2.5',
        'botkit_rate_limit_wait_seconds_count{channel="test",reason="server"} 1.0',
        'botkit_model_errors_total{kind="rate_limit",model="fake-model"} 1.0',
        'botkit_model_latency_seconds_count{model="fake-model"} 2.0',
        "botkit_queue_depth 0.0",
    ):
        assert line in metrics, line
    assert re.search(r'botkit_messages_out_total\{channel="test"\} [12]\.0', metrics)
    assert re.search(r'botkit_model_cost_dollars_total\{model="fake-model"\} [1-9]', metrics)


async def test_a_model_without_a_price_is_counted_as_unpriced(database_url: str) -> None:
    adapter = InMemoryChannel()
    model = FakeModel("local-llama", input_price_per_1k=None, output_price_per_1k=None)
    async with run_bot(database_url=database_url, channels=[adapter], model=model).bot as bot:
        await adapter.exchange("hello")
        metrics = bot.metrics.render().decode()
    assert 'botkit_model_unpriced_calls_total{model="local-llama"} 1.0' in metrics


async def test_work_whose_process_died_is_counted_as_taken_over(database_url: str) -> None:
    adapter = InMemoryChannel()
    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        model="config",
        config={"bot": {"claim_lease": 1.0}},
    ).bot
    async with bot:
        lapsed = Claim("dead-process:1", utcnow() - timedelta(seconds=5))
        await bot.store.inbound.accept(
            Message(
                conversation=ConversationRef("test", "c1"),
                sender=Sender("u1", "u1"),
                text="left behind",
                external_id="orphan-1",
            ),
            claim=lapsed,
        )
        await bot.dispatcher.resume()
        await bot.dispatcher.idle()
        metrics = bot.metrics.render().decode()
    assert 'botkit_lease_takeovers_total{kind="message"} 1.0' in metrics
    [answer] = adapter.sent
    assert answer.text.endswith("You said: left behind")


async def test_claims_held_is_what_the_last_renewal_extended(database_url: str) -> None:
    adapter = InMemoryChannel()
    started, release = asyncio.Event(), asyncio.Event()
    plugin = Plugin("slow")

    @plugin.on_message()
    async def think(message: Message, ctx: Context) -> str:
        started.set()
        await release.wait()
        return "done"

    bot = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[plugin],
        model="config",
        config={"bot": {"claim_lease": 1.0}},
    ).bot
    async with bot:
        await adapter.receive("think hard")
        await started.wait()
        for _ in range(50):  # renewals run every third of a lease
            if "botkit_claims_held 1.0" in bot.metrics.render().decode():
                break
            await asyncio.sleep(0.1)
        assert "botkit_claims_held 1.0" in bot.metrics.render().decode()
        release.set()
        await bot.dispatcher.idle()
