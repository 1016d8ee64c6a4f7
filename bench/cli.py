"""``python -m bench [--quick] [--only NAME ...]``: run the scenarios, one line each.

Every scenario's output starts with a line ``NAME  figure ... ratio ...`` (``peers``
follows it with a table); a scenario that cannot run here prints ``NAME  skipped:
why``. The exit status is 0 unless a scenario crashed: a benchmark never fails on a
timing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from bench import (
    admin,
    concurrency,
    durability,
    fitting,
    history,
    overhead,
    peers,
    scaleout,
    streaming,
    transactions,
)
from bench._peer_venv import PEERS, peer_python
from bench._peer_worker import run_loop
from bench._util import DEFAULT_POSTGRES_URL, Options, Skipped

Scenario = Callable[[Options], Coroutine[Any, Any, str]]

SCENARIOS: dict[str, Scenario] = {
    "admin": admin.run,
    "overhead/sqlite": overhead.run_sqlite,
    "overhead/postgres": overhead.run_postgres,
    "concurrency": concurrency.run_configured,
    "concurrency/pool": concurrency.run_unpooled,
    "concurrency/default": concurrency.run_default,
    "durability": durability.run,
    "history/sqlite": history.run_sqlite,
    "history/postgres": history.run_postgres,
    "history/length": history.run_length,
    "history/path": history.run_path,
    "fit": fitting.run_fit,
    "tokens": fitting.run_tokens,
    "streaming/slack": streaming.run_slack,
    "streaming/telegram": streaming.run_telegram,
    "peers": peers.run,
    "writer": peers.run_writer,
    "alone": peers.run_alone,
    "scaleout": scaleout.run,
    "transactions": transactions.run,
}


def select(names: Sequence[str]) -> list[str]:
    """The scenarios ``--only`` asks for: exact names, or a group (``overhead``)."""
    if not names:
        return list(SCENARIOS)
    wanted = [w.strip() for name in names for w in name.split(",") if w.strip()]
    chosen = [
        s for s in SCENARIOS if any(s == w or s.startswith(w.rstrip("/") + "/") for w in wanted)
    ]
    unknown = [
        w
        for w in wanted
        if not any(s == w or s.startswith(w.rstrip("/") + "/") for s in SCENARIOS)
    ]
    if unknown:
        raise SystemExit(f"bench: unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="botkit's benchmarks (see BENCHMARKS.md)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, everything in under two minutes (a smoke run: figures are rough)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this scenario or group (repeatable, or comma-separated): "
        + ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BOTKIT_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL),
        metavar="URL",
        help="admin URL to create (and drop) benchmark databases on; '' to skip PostgreSQL "
        "(default: $BOTKIT_BENCH_POSTGRES_URL or %(default)s)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        default=bool(os.environ.get("BOTKIT_BENCH_OFFLINE")),
        help="never install a peer framework from PyPI: peers not installed yet are skipped "
        "(default: $BOTKIT_BENCH_OFFLINE)",
    )
    parser.add_argument(
        "--install-peers",
        action="store_true",
        help="install the peer frameworks (errbot, opsdroid) into their cached venvs and exit",
    )
    parser.add_argument(
        "--against",
        metavar="REV",
        help="peers: also run botkit as it was at git revision REV (its botkit/, adapters/ "
        "and plugins/, under this harness), interleaved with the other targets, and print "
        "what changed since",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        metavar="N",
        help="with --against: run only botkit now and botkit at REV, N rounds of the two "
        "one right after the other, and print the median of the rounds' ratios (a change's "
        "effect on a machine whose speed drifts)",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


async def _install_peers() -> int:
    """Install every peer framework; 0 if all are installed."""
    failed = 0
    for peer in PEERS:
        try:
            python, how = await peer_python(peer)
        except Skipped as why:
            failed += 1
            print(f"{peer.label}: {why}", flush=True)
        else:
            print(f"{peer.label}: {python} ({how})", flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen scenarios; 0 unless one crashed."""
    args = _parser().parse_args(argv)
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    if args.install_peers:
        return asyncio.run(_install_peers())
    names = select(args.only)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    width = max(len(n) for n in names)
    crashed = 0
    mode = "quick (smoke run: sizes cut down, figures rough)" if args.quick else "full"
    print(f"# botkit benchmarks, {mode}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    with tempfile.TemporaryDirectory(prefix="botkit-bench-") as tmp:
        opts = Options(
            quick=args.quick,
            postgres_url=args.postgres or None,
            workdir=Path(tmp),
            offline=args.offline,
            against=args.against,
            pairs=args.pairs,
        )
        for name in names:
            started = time.monotonic()
            try:
                # on the loop botkit's commands run on: botkit's default, and the same
                # loop for the baselines a scenario runs in this process beside it
                result = run_loop(SCENARIOS[name](opts), "botkit")
            except Skipped as skipped:
                result = f"skipped: {skipped}"
            except Exception as exc:
                crashed += 1
                traceback.print_exc(file=sys.stderr)
                result = f"CRASHED: {type(exc).__name__}: {exc}"
            took = time.monotonic() - started
            print(f"{name:<{width}}  {result}  [{took:.0f} s]", flush=True)
    return 1 if crashed else 0
