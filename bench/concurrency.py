"""Scenario 2: a thousand conversations at once while the model takes 2 s per answer.

Each variant runs in a fresh process (``python -m bench.concurrency --worker ...``), so
its peak resident memory is its own, and reports JSON to the parent. The model server
waits 2 s before each answer. Wall time runs from the first message handed over to the
last reply delivered; the floor is the model's 2 s.

Variants:

- ``concurrency``: ``bot.max_in_flight = 1000`` as a user would configure it, nothing
  else changed: botkit's model client then holds 1,000 connections, and so does the
  minimal pipeline's;
- ``concurrency/pool``: the same, with every pool unlimited (botkit's model client is
  given an aiohttp session whose pool is);
- ``concurrency/default``: the default ``max_in_flight`` (32).

The bare HTTP client, the floor, always has an unlimited pool. Each worker measures its
own CPU time over the burst (``getrusage``), given per message.

In the first two, botkit and the bare HTTP client each run three times, alternating (once
in a quick run), and the line gives the median of each with the range: on a shared
machine one burst can land on a busy tenth of a second. The minimal pipeline runs once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from bench._peer_worker import run_loop
from bench._pipelines import BareModelCalls, BotkitPipeline, MinimalPipeline
from bench._util import (
    ROOT,
    ModelServer,
    Options,
    cpu_seconds,
    median,
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


def _rounds(opts: Options) -> int:
    """How many times botkit and the bare client each run the burst."""
    return 1 if opts.quick else 3


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
    # botkit sizes its model client's pool to max_in_flight: the baseline gets the same
    limit = 0 if unpooled else max_in_flight
    runner: BotkitPipeline | MinimalPipeline | BareModelCalls
    if pipeline == "bare":
        runner = BareModelCalls(model_url, connection_limit=0)
    elif pipeline == "minimal":
        runner = MinimalPipeline(
            database_url, model_url, max_in_flight=max_in_flight, connection_limit=limit
        )
    else:
        runner = BotkitPipeline(
            database_url,
            model_url,
            bot={"max_in_flight": max_in_flight},
            connection_limit=0 if unpooled else None,
        )
    started_rss = rss_mb()
    await runner.start()
    try:
        # one message first: pools open, as in a bot that has run (the tokenizer loads
        # only once a prompt must be counted: not for these short ones)
        await runner.one("warm-up", "Hello!", "warm-up")
        before = rss_mb()
        started, cpu = time.monotonic(), cpu_seconds()

        async def one(i: int) -> float:
            text = f"Message {i}: what would you pack for three days in the Alps?"
            return await runner.one(f"conversation-{i}", text, f"m{i}") + started

        answered = await asyncio.wait_for(
            asyncio.gather(*(one(i) for i in range(conversations))), timeout=900
        )
        cpu = cpu_seconds() - cpu
        latencies = [a - started for a in answered]
        return {
            "cpu_ms": 1000 * cpu / conversations,
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


async def _alternating(opts: Options, *, unpooled: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bare client and botkit, run in turn; each one's median run (by wall time),
    with the range of its walls."""
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "botkit": []}
    for _ in range(_rounds(opts)):
        for pipeline, seen in runs.items():
            # the floor: the bare client always gets an unlimited pool
            unlimited = unpooled or pipeline == "bare"
            seen.append(await _run(opts, pipeline, 1000, unpooled=unlimited))
    bare, botkit = (_median_run(seen) for seen in runs.values())
    return bare, botkit


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: float(r["wall"]))
    middle = dict(ordered[len(ordered) // 2])
    middle["walls"] = [r["wall"] for r in ordered]
    middle["peak_rss"] = max(r["peak_rss"] for r in runs)
    middle["cpu_ms"] = median([r["cpu_ms"] for r in runs])
    return middle


def _wall(result: dict[str, Any]) -> str:
    """``2.45 s``, or ``2.45 s (median of 3: 2.41-2.58 s)``."""
    walls = result.get("walls") or [result["wall"]]
    if len(walls) == 1:
        return f"{result['wall']:.2f} s"
    return f"{result['wall']:.2f} s (median of {len(walls)}: {walls[0]:.2f}-{walls[-1]:.2f} s)"


def _line(
    result: dict[str, Any],
    baseline: dict[str, Any] | None,
    bare: dict[str, Any] | None = None,
) -> str:
    wall = result["wall"]
    text = f"{result['conversations']} conversations answered in {_wall(result)}"
    if baseline is not None:
        text += (
            f" = {wall / baseline['wall']:.2f}x minimal ({baseline['wall']:.2f} s); "
            f"target <= {TARGET_WALL} s, floor {result['delay']:g} s (the model)"
        )
    else:
        text += f", floor {result['delay']:g} s (the model)"
    if bare is not None:
        text += (
            f"; the HTTP client alone, nothing stored: {_wall(bare)}, so "
            f"{wall - bare['wall']:.2f} s is botkit's"
        )
    text += f"  CPU {result['cpu_ms']:.2f} ms/msg"
    if baseline is not None:
        text += f" (minimal {baseline['cpu_ms']:.2f})"
    if bare is not None:
        text += f" (HTTP client alone {bare['cpu_ms']:.2f})"
    text += f"  peak RSS {result['peak_rss']:.0f} MB"
    if baseline is not None:
        text += f" (target <= {TARGET_RSS_MB:.0f} MB; minimal {baseline['peak_rss']:.0f} MB)"
    return (
        text + f"  median reply at {result['p50']:.2f} s"
        f"  RSS {result['rss_start']:.0f} MB at start, {result['rss_before']:.0f} MB after the "
        "first answer"
    )


async def run_configured(opts: Options) -> str:
    """``concurrency``: ``max_in_flight = 1000``, the client as botkit builds it."""
    minimal = await _run(opts, "minimal", 1000, unpooled=False)
    bare, result = await _alternating(opts, unpooled=False)
    return _line(result, minimal, bare) + "  [max_in_flight=1000, pools of 1,000 connections]"


async def run_unpooled(opts: Options) -> str:
    """``concurrency/pool``: the same with unlimited connection pools."""
    minimal = await _run(opts, "minimal", 1000, unpooled=True)
    bare, result = await _alternating(opts, unpooled=True)
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
    work = _worker(
        args.worker,
        args.database,
        args.model,
        args.conversations,
        args.max_in_flight,
        args.unpooled,
    )
    # botkit on the loop its commands run on by default; the hand-written pipelines as
    # written, on asyncio's
    result = run_loop(work, "botkit" if args.worker == "botkit" else "asyncio")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
