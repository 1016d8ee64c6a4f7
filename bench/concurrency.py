"""Scenario 2: a thousand conversations at once while the model takes 2 s per answer.

Each variant runs in a fresh process (``python -m bench.concurrency --worker ...``), so
its peak resident memory is its own, and reports JSON to the parent. The model server
waits 2 s before each answer. Wall time runs from the first message handed over to the
last reply delivered; the floor is the model's 2 s.

Variants:

- ``concurrency``: ``bot.max_in_flight = 1000`` as a user would configure it, nothing
  else changed;
- ``concurrency/pool``: the same, with the model client given an aiohttp session
  whose connection pool is unlimited (aiohttp's default pool holds 100 connections);
- ``concurrency/default``: the default ``max_in_flight`` (32).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench._pipelines import BareModelCalls, BotkitPipeline, MinimalPipeline
from bench._util import (
    ROOT,
    ModelServer,
    Options,
    peak_rss_mb,
    percentile,
    rss_mb,
    sqlite_url,
)

MODEL_DELAY = 2.0
TARGET_WALL = 2.5
TARGET_RSS_MB = 300.0
DEFAULT_MAX_IN_FLIGHT = 32


def _conversations(opts: Options) -> int:
    return 50 if opts.quick else 1000


def _delay(opts: Options) -> float:
    """The model's time per answer: 2 s, or 0.5 s in a quick run."""
    return 0.5 if opts.quick else MODEL_DELAY


async def _worker(
    pipeline: str,
    database_url: str,
    model_url: str,
    conversations: int,
    max_in_flight: int,
    unpooled: bool,
) -> dict[str, Any]:
    limit = 0 if unpooled else 100  # 100 is aiohttp's default
    runner: BotkitPipeline | MinimalPipeline | BareModelCalls
    if pipeline == "bare":
        runner = BareModelCalls(model_url, connection_limit=limit)
    elif pipeline == "minimal":
        runner = MinimalPipeline(
            database_url, model_url, max_in_flight=max_in_flight, connection_limit=limit
        )
    else:
        runner = BotkitPipeline(
            database_url,
            model_url,
            max_in_flight=max_in_flight,
            connection_limit=0 if unpooled else None,
        )
    started_rss = rss_mb()
    await runner.start()
    try:
        # one message first: pools open, the tokenizer loaded, as in a bot that has run
        await runner.one("warm-up", "Hello!", "warm-up")
        before = rss_mb()
        started = time.monotonic()

        async def one(i: int) -> float:
            text = f"Message {i}: what would you pack for three days in the Alps?"
            return await runner.one(f"conversation-{i}", text, f"m{i}") + started

        answered = await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(conversations))), timeout=900
        )
        latencies = [a - started for a in answered]
        return {
            "wall": max(latencies),
            "p50": percentile(latencies, 50),
            "rss_start": started_rss,
            "rss_before": before,
            "peak_rss": peak_rss_mb(),
        }
    finally:
        await runner.close()


async def _run(
    opts: Options, pipeline: str, max_in_flight: int, *, unpooled: bool
) -> dict[str, Any]:
    conversations = _conversations(opts)
    async with ModelServer(delay=_delay(opts)) as model:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.concurrency",
            "--worker",
            pipeline,
            "--database",
            sqlite_url(opts.workdir, f"concurrency-{pipeline}"),
            "--model",
            model.url,
            "--conversations",
            str(conversations),
            "--max-in-flight",
            str(max_in_flight),
            *(["--unpooled"] if unpooled else []),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the {pipeline} worker failed with status {process.returncode}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["conversations"] = conversations
    result["delay"] = _delay(opts)
    return result


def _line(
    result: dict[str, Any],
    baseline: dict[str, Any] | None,
    bare: dict[str, Any] | None = None,
) -> str:
    wall = result["wall"]
    text = f"{result['conversations']} conversations answered in {wall:.2f} s"
    if baseline is not None:
        text += (
            f" = {wall / baseline['wall']:.2f}x minimal ({baseline['wall']:.2f} s); "
            f"target <= {TARGET_WALL} s, floor {result['delay']:g} s (the model)"
        )
    else:
        text += f", floor {result['delay']:g} s (the model)"
    if bare is not None:
        text += (
            f"; the HTTP client alone, nothing stored: {bare['wall']:.2f} s, so "
            f"{wall - bare['wall']:.2f} s is botkit's"
        )
    text += f"  peak RSS {result['peak_rss']:.0f} MB"
    if baseline is not None:
        text += f" (target <= {TARGET_RSS_MB:.0f} MB; minimal {baseline['peak_rss']:.0f} MB)"
    return (
        text + f"  median reply at {result['p50']:.2f} s"
        f"  RSS {result['rss_start']:.0f} MB at start, {result['rss_before']:.0f} MB after the "
        "first answer (tokenizer loaded)"
    )


async def run_configured(opts: Options) -> str:
    """``concurrency``: ``max_in_flight = 1000``, the client as botkit builds it."""
    bare = await _run(opts, "bare", 1000, unpooled=True)
    minimal = await _run(opts, "minimal", 1000, unpooled=False)
    result = await _run(opts, "botkit", 1000, unpooled=False)
    return _line(result, minimal, bare) + "  [max_in_flight=1000, aiohttp's 100-connection pool]"


async def run_unpooled(opts: Options) -> str:
    """``concurrency/pool``: the same with unlimited connection pools."""
    bare = await _run(opts, "bare", 1000, unpooled=True)
    minimal = await _run(opts, "minimal", 1000, unpooled=True)
    result = await _run(opts, "botkit", 1000, unpooled=True)
    return _line(result, minimal, bare) + "  [max_in_flight=1000, unlimited pools]"


async def run_default(opts: Options) -> str:
    """``concurrency/default``: the default ``max_in_flight``."""
    result = await _run(opts, "botkit", DEFAULT_MAX_IN_FLIGHT, unpooled=False)
    return _line(result, None) + f"  [default max_in_flight={DEFAULT_MAX_IN_FLIGHT}]"


def main() -> None:
    """The worker process."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", choices=["botkit", "minimal", "bare"], required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--conversations", type=int, required=True)
    parser.add_argument("--max-in-flight", type=int, required=True)
    parser.add_argument("--unpooled", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(
        _worker(
            args.worker,
            args.database,
            args.model,
            args.conversations,
            args.max_in_flight,
            args.unpooled,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
