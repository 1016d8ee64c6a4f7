"""Scenario 1: what botkit adds per message, against a hand-written pipeline.

Messages go through the in-memory channel to a model that answers at once (the fake
OpenAI server, echo, in its own process). Two phases, each run on botkit and on the
minimal pipeline, alternating, in the same run:

- latency: one user, messages one after another over ten conversations; p50 and p99
  from hand-over to delivery of the reply (which is after the reply was stored);
- throughput: 32 users at once (the bot's default ``max_in_flight``), each sending its
  next message as soon as the last one was answered; messages per second, and the
  process's CPU time over the phase per message (both pipelines share the process, and
  only one runs at a time).

botkit runs with every default (streaming on; the in-memory channel cannot edit, so
its answers are asked whole). Both model clients hold 32 connections.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bench._pipelines import BotkitPipeline, MinimalPipeline, Pipeline
from bench._util import (
    ModelServer,
    Options,
    Skipped,
    cpu_seconds,
    median,
    ms,
    percentile,
    postgres_database,
    postgres_reachable,
    sqlite_url,
)

TARGET_P50 = {"sqlite": 0.002, "postgres": 0.005}
TARGET_THROUGHPUT = 0.7
CONVERSATIONS = 10
USERS = 32


@dataclass(slots=True)
class Sizes:
    """How much to send."""

    warmup: int
    latency: int
    per_user: int
    rounds: int


@dataclass(slots=True)
class Figures:
    """What one pipeline measured over all rounds."""

    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


def sizes(quick: bool) -> Sizes:
    """Full runs send a few thousand messages; quick ones a few hundred."""
    if quick:
        return Sizes(warmup=10, latency=30, per_user=2, rounds=1)
    return Sizes(warmup=40, latency=300, per_user=12, rounds=3)


_ids = itertools.count(1)


def _text(n: int) -> str:
    return f"Message {n}: what would you pack for three days of hiking in the Alps in May?"


async def latency_phase(pipeline: Pipeline, tag: str, count: int) -> list[float]:
    """``count`` messages one after another over ten conversations; their latencies."""
    latencies = []
    for i in range(count):
        n = next(_ids)
        conversation = f"{tag}-lat-{i % CONVERSATIONS}"
        latencies.append(await pipeline.one(conversation, _text(n), f"m{n}"))
    return latencies


async def throughput_phase(
    pipeline: Pipeline, tag: str, users: int, per_user: int
) -> tuple[float, float]:
    """``users`` conversations sending at once, closed loop; messages per second, and
    this process's CPU milliseconds per message over the phase."""

    async def user(index: int) -> None:
        conversation = f"{tag}-thr-{index}"
        for _ in range(per_user):
            n = next(_ids)
            await pipeline.one(conversation, _text(n), f"m{n}")

    started, cpu = time.monotonic(), cpu_seconds()
    await asyncio.gather(*(user(i) for i in range(users)))
    elapsed, cpu = time.monotonic() - started, cpu_seconds() - cpu
    return users * per_user / elapsed, 1000 * cpu / (users * per_user)


@asynccontextmanager
async def _databases(backend: str, opts: Options) -> AsyncIterator[tuple[str, str]]:
    if backend == "sqlite":
        yield sqlite_url(opts.workdir, "botkit"), sqlite_url(opts.workdir, "minimal")
        return
    why = await postgres_reachable(opts.postgres_url)
    if why is not None:
        raise Skipped(why)
    assert opts.postgres_url is not None
    async with (
        postgres_database(opts.postgres_url, "botkit") as botkit_url,
        postgres_database(opts.postgres_url, "minimal") as minimal_url,
    ):
        yield botkit_url, minimal_url


async def measure(backend: str, opts: Options) -> dict[str, Figures]:
    """Run the pipelines, alternating, and return their figures by name."""
    size = sizes(opts.quick)
    async with ModelServer() as model, _databases(backend, opts) as (botkit_url, minimal_url):
        botkit = BotkitPipeline(botkit_url, model.url)
        minimal = MinimalPipeline(minimal_url, model.url)
        baselines = [minimal]
        if backend == "sqlite":  # the same hand-written work on sqlite3 in threads, as botkit
            threaded_url = sqlite_url(opts.workdir, "threaded")
            baselines.append(MinimalPipeline(threaded_url, model.url, threaded=True))
        pipelines: list[Pipeline] = [botkit, *baselines]
        figures = {p.name: Figures() for p in pipelines}
        await botkit.start()
        for baseline in baselines:
            await baseline.start()
        try:
            for pipeline in pipelines:  # caches, pools, the tokenizer: loaded before timing
                await latency_phase(pipeline, f"warm-{pipeline.name}", size.warmup)
            for round_ in range(size.rounds):
                order = pipelines[round_ % len(pipelines) :] + pipelines[: round_ % len(pipelines)]
                for pipeline in order:
                    tag = f"r{round_}-{pipeline.name}"
                    figures[pipeline.name].latencies += await latency_phase(
                        pipeline, tag, size.latency
                    )
                for pipeline in order:
                    tag = f"r{round_}-{pipeline.name}"
                    rate, cpu = await throughput_phase(pipeline, tag, USERS, size.per_user)
                    figures[pipeline.name].rates.append(rate)
                    figures[pipeline.name].cpu_ms.append(cpu)
        finally:
            await botkit.close()
            for baseline in baselines:
                await baseline.close()
    return figures


def line(backend: str, figures: dict[str, Figures]) -> str:
    """The result line: botkit against each baseline."""
    b = figures["botkit"]
    b50, b99, b_rate = (
        percentile(b.latencies, 50),
        percentile(b.latencies, 99),
        max(b.rates),
    )
    b_cpu = median(b.cpu_ms)
    target = TARGET_P50[backend]
    parts = []
    for name, m in figures.items():
        if name == "botkit":
            continue
        m50, m99, m_rate = percentile(m.latencies, 50), percentile(m.latencies, 99), max(m.rates)
        parts.append(
            f"p50 {ms(b50 - m50)} over {name} ({ms(b50)} vs {ms(m50)}; target <= {ms(target)})  "
            f"p99 {ms(b99)} vs {ms(m99)}  "
            f"throughput {b_rate / m_rate:.2f}x {name} ({b_rate:.0f} vs {m_rate:.0f} msg/s; "
            f"target >= {TARGET_THROUGHPUT}x)  CPU {b_cpu:.2f} vs {median(m.cpu_ms):.2f} ms/msg "
            f"= {b_cpu / median(m.cpu_ms):.2f}x"
        )
    return "  |  ".join(parts) + "  [botkit: every default; HTTP pools of 32 for both]"


async def run_sqlite(opts: Options) -> str:
    """``overhead/sqlite``."""
    return line("sqlite", await measure("sqlite", opts))


async def run_postgres(opts: Options) -> str:
    """``overhead/postgres``."""
    return line("postgres", await measure("postgres", opts))
