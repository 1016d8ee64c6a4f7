"""One peers target in a process of its own: ``python -m bench._peer_worker TARGET ...``.

``TARGET`` is ``minimal`` or ``history`` (the hand-written baselines of
``bench/_peer_targets.py``), ``botkit`` (every default, on a channel that cannot edit)
or ``botkit-edits`` (every default, on a channel that edits: answers stream). The
process pins itself to ``$BOTKIT_BENCH_CPU`` first, runs the closed loop of
``bench/_closed_loop.py`` and prints its JSON line.

With ``--start-on-stdin`` (the scale-out scenario's workers) it prints ``ready`` once
started and warmed up, begins the measured phase when a line arrives on stdin (so that
several workers measure the same stretch of time), and after its JSON line keeps its
database connections open until another line arrives.

botkit's SQLite file is given its schema by ``botkit db upgrade`` in a process of its
own first, as a deploy does and as every start after the first finds it: the measured
process starts on a current schema and never loads Alembic (a first start that migrates
does, and peaks higher).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bench._closed_loop import Plan, pin, report, run

TARGETS = ("minimal", "history", "botkit", "botkit-edits")
LOOPS = ("asyncio", "uvloop", "botkit")
T = TypeVar("T")
HISTORY = 200  # turns the history baseline sends: botkit's default bot.history_limit


class Target(Protocol):
    """A peers target run in this process."""

    async def start(self) -> None:
        """Get ready to answer."""

    async def close(self) -> None:
        """Let go of everything."""

    async def one(self, conversation: str, text: str, external_id: str) -> float:
        """Answer one message; seconds until its reply was delivered."""
        ...


def make(target: str, model_url: str, database: str, workdir: Path) -> Target:
    """The target named ``target``; ``database``: botkit's URL ('' for a SQLite file)."""
    if target in ("minimal", "history"):
        from bench._peer_targets import HandWritten

        history = HISTORY if target == "history" else 0
        return HandWritten(workdir / f"{target}.db", model_url, history=history)
    from bench._pipelines import BotkitPipeline

    url = database or f"sqlite:///{workdir / f'{target}.db'}"
    if not database:
        upgrade = [sys.executable, "-m", "botkit", "db", "upgrade"]
        subprocess.run(
            upgrade,
            env={**os.environ, "BOTKIT_DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
    return BotkitPipeline(url, model_url, edits=target == "botkit-edits", name=target)


async def _main(args: argparse.Namespace) -> None:
    ops = None
    if args.writer_ops:  # before the database opens: its writer runs the wrapped code
        from bench._writer_ops import WriterOps

        ops = WriterOps()
        ops.install()
    clock = None
    if args.stages:  # before the bot is built: it runs the wrapped code
        from bench._stage_clock import StageClock

        clock = StageClock()
        clock.install()
    target = make(args.target, args.model, args.database, Path(args.workdir))
    plan = Plan(args.users, args.warmup, args.measured, args.latency)
    await target.start()
    try:
        gate = _stdin_gate if args.start_on_stdin else None
        probes = [probe for probe in (ops, clock) if probe is not None]

        def measuring(on: bool) -> None:
            for probe in probes:  # both, when both flags are given
                probe.on = on

        measured = await run(target.one, plan, tag=args.tag, gate=gate, measuring=measuring)
        adapter = getattr(target, "adapter", None)  # botkit's channel: did it stream?
        sent = {"sent": adapter.delivered, "edited": adapter.edited} if adapter else {}
        writer = {} if ops is None else {"writer": ops.report()}
        stages = {} if clock is None else {"stages": clock.report()}
        report(measured, target=args.target, **sent, **writer, **stages)
        if args.start_on_stdin:  # keep the connections open until told: their CPU is read
            await asyncio.to_thread(sys.stdin.readline)
    finally:
        await target.close()


async def _stdin_gate() -> None:
    """Say ``ready``, then wait for a line on stdin (read in a thread: the loop stays
    free)."""
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


def main() -> None:
    """Parse the arguments and run the target."""
    pin()  # first: every thread the target starts inherits the mask
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--model", required=True, help="the model server's base URL")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--database", default="", help="botkit's database URL")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--measured", type=int, required=True)
    parser.add_argument("--latency", type=int, required=True)
    parser.add_argument("--tag", default="peers", help="prefix of conversation names")
    parser.add_argument("--start-on-stdin", action="store_true")
    parser.add_argument(
        "--writer-ops",
        action="store_true",
        help="botkit's targets: report the SQLite writer's CPU by operation over the"
        " measured phase (bench/_writer_ops.py)",
    )
    parser.add_argument(
        "--stages",
        action="store_true",
        help="botkit's targets: report the median time of each stage of a message's way"
        " over the measured phase (bench/_stage_clock.py; run it with one user)",
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        help="the event loop: asyncio's, uvloop's, or the one the botkit commands run on"
        " (the default for botkit's targets; asyncio's for the others)",
    )
    args = parser.parse_args()
    loop = args.loop or ("botkit" if args.target.startswith("botkit") else "asyncio")
    run_loop(_main(args), loop)


def run_loop(main: Coroutine[Any, Any, T], loop: str) -> T:
    """Run ``main`` on the event loop named in ``LOOPS``: ``botkit`` is the one the
    botkit commands run on by default (``[bot] event_loop``); botkit at a revision from
    before that setting (``--against``) ran on asyncio's."""
    if loop == "asyncio":  # a hand-written baseline loads nothing of botkit's
        return asyncio.run(main)
    try:
        from botkit.config import BotSection
        from botkit.event_loop import EventLoop, run
    except ImportError:
        return asyncio.run(main)
    choice: EventLoop = BotSection().event_loop if loop == "botkit" else "uvloop"
    return run(main, choice)


if __name__ == "__main__":
    main()
