"""The ``botkit`` command: run, chat, db upgrade, usage, check-config."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botkit.adapter import Adapter
from botkit.bot import STAND_IN_NOTICE, Bot, build_components, build_model
from botkit.config import Config, read_config
from botkit.discovery import load_adapter_class
from botkit.exceptions import BotkitError, ConfigError, PluginError
from botkit.llm import OpenAIChatClient
from botkit.llm.probe import probe
from botkit.plugin import Plugin
from botkit.preflight import DatabaseReport, check_database, check_port, safe_url
from botkit.routing import Pipeline
from botkit.store import Database, Store, UsageRow, dollars, one_process_per_sqlite_file

__all__ = ["main"]

log = logging.getLogger("botkit")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``botkit`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.command == "chat" else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.verbose:  # botkit's own detail; third-party DEBUG logs are a flood
        logging.getLogger("botkit").setLevel(logging.DEBUG)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config, faults = read_config(args.config)
        if faults and not args.builds:  # the others report these with their own
            raise ConfigError.together(faults)
        args.faults = faults
        return int(asyncio.run(args.handler(config, args)))
    except ConfigError as exc:
        for error in exc.errors:
            print(f"botkit: config error: {error}", file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 2
    except BotkitError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C before the loop took over
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="botkit", description="Chat bots for Slack, Telegram and email, backed by a model."
    )
    parser.add_argument(
        "-c",
        "--config",
        help="the TOML config file (default: $BOTKIT_CONFIG, "
        "else ./botkit.toml, else built-in defaults)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    # builds: the command builds the adapters and plugins, and reports their faults
    # together with the file's
    parser.set_defaults(builds=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the bot on every configured channel")
    run.set_defaults(handler=_run, builds=True)
    chat = sub.add_parser("chat", help="talk to the bot in this terminal (or through a pipe)")
    chat.set_defaults(handler=_chat)
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply the database migrations")
    upgrade.set_defaults(handler=_db_upgrade)
    usage = sub.add_parser("usage", help="model spend and tokens by day, model, channel, user")
    usage.add_argument("--days", type=int, default=30, help="how many days back (default 30)")
    usage.add_argument("--json", action="store_true", help="print JSON for machines")
    usage.add_argument(
        "--annotation",
        metavar="KEY",
        help="instead of spend: how often each value of a message annotation a plugin "
        "stores (sentiment, spam...) occurred, by day and channel",
    )
    usage.set_defaults(handler=_usage)
    check = sub.add_parser(
        "check-config",
        help="check the configuration, the database and the web port as run would, then exit",
    )
    check.add_argument(
        "--probe",
        action="store_true",
        help="also call the model (three small requests) and report what its server "
        "supports: usage in streams, the structured-output mode, tools",
    )
    check.set_defaults(handler=_check_config, builds=True)
    return parser


# `run` and `chat` run a bot for their whole life, so they hold its SQLite file for it (a
# second bot would answer the first one's messages too); `db upgrade` and `usage` do not:
# they do not dispatch, and SQLite's own locking orders them with a running bot.


async def _run(config: Config, args: argparse.Namespace) -> int:
    # everything that would stop the bot is found before anything is created or migrated
    adapters, plugins, settings = _components(config, args.faults)
    await _surroundings(config, adapters)
    with one_process_per_sqlite_file(config.database.url):
        bot = Bot(config, adapters=adapters, plugins=plugins, plugin_settings=settings)
        bot.handle_signals()
        async with bot:
            await bot.run_until_stopped()
    return 0


async def _chat(config: Config, args: argparse.Namespace) -> int:
    with one_process_per_sqlite_file(config.database.url):
        console = load_adapter_class("console")
        bot = Bot(config, adapters={"console": console("console")})
        if bot.uses_stand_in:
            print(f"botkit: {STAND_IN_NOTICE}", file=sys.stderr)
        bot.handle_signals()
        async with bot:
            await bot.run_until_stopped()
    return 0


async def _db_upgrade(config: Config, args: argparse.Namespace) -> int:
    db = config.database
    database = Database(db.url, busy_timeout=db.busy_timeout, synchronous=db.synchronous)
    try:
        migrated = await database.upgrade()
    finally:
        await database.close()
    url = safe_url(db.url)
    if not migrated.applied:
        print(f"database {url}: already at {migrated.now}, nothing to apply")
        return 0
    first, last = migrated.applied[0], migrated.applied[-1]
    span = first if first == last else f"{first} → {last}"
    was = f"it was at {migrated.before}" if migrated.before else "it had no schema"
    print(f"database {url}: applied {span} ({was})")
    return 0


async def _usage(config: Config, args: argparse.Namespace) -> int:
    database = Database(config.database.url, synchronous=config.database.synchronous)
    try:
        await database.upgrade() if database.sqlite else None
        since = datetime.now(UTC) - timedelta(days=args.days)
        if args.annotation:
            counts = await Store(database).annotation_counts(args.annotation, since=since)
            return _print_annotations(args.annotation, counts, as_json=args.json)
        rows = await Store(database).usage(since=since)
    finally:
        await database.close()
    if args.json:
        print(json.dumps([_usage_json(r) for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no model calls in the last {args.days} days")
        return 0
    print(
        f"{'day':10}  {'model':24} {'channel':10} {'user':16} {'calls':>5} "
        f"{'prompt':>9} {'output':>9} {'cost $':>12}"
    )
    total = Decimal(0)
    for r in rows:
        cost = dollars(r.cost_nanos) or Decimal(0)
        total += cost
        unknown = f" (+{r.unpriced_calls} unpriced)" if r.unpriced_calls else ""
        if r.estimated_calls:  # the server sent no usage for these: botkit counted
            unknown += f" ({r.estimated_calls} of {r.calls} calls estimated)"
        print(
            f"{r.day:10}  {r.model[:24]:24} {r.channel[:10]:10} {r.user[:16]:16} {r.calls:>5} "
            f"{r.prompt_tokens:>9} {r.completion_tokens:>9} {cost:>12.6f}{unknown}"
        )
    print(f"total: ${total:.6f}")
    return 0


def _print_annotations(key: str, counts: list[tuple[str, str, str, int]], *, as_json: bool) -> int:
    if as_json:
        print(
            json.dumps([{"day": d, "channel": c, key: v, "messages": n} for d, c, v, n in counts])
        )
        return 0
    if not counts:
        print(f"no messages annotated with {key!r}")
        return 0
    print(f"{'day':10}  {'channel':12} {key[:16]:16} {'messages':>8}")
    for day, channel, value, count in counts:
        print(f"{day:10}  {channel[:12]:12} {value[:16]:16} {count:>8}")
    return 0


def _usage_json(row: UsageRow) -> dict[str, object]:
    return {
        "day": row.day,
        "model": row.model,
        "channel": row.channel or None,
        "user": row.user or None,
        "calls": row.calls,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "cost_usd": str(dollars(row.cost_nanos)),
        "unpriced_calls": row.unpriced_calls,
        "estimated_calls": row.estimated_calls,
    }


async def _check_config(config: Config, args: argparse.Namespace) -> int:
    adapters, plugins, _ = _components(config, args.faults)
    Pipeline(plugins)  # duplicate commands fail here
    model = build_model(config)
    try:
        found = await probe(model) if args.probe and isinstance(model, OpenAIChatClient) else None
    finally:
        await model.close()
    database = await _surroundings(config, adapters)
    print(f"config: {config.path or '(built-in defaults)'}")
    print(f"database: {database.url} ({database.state})")
    model_name = (
        "stand-in (offline, not a real model)" if config.llm.stand_in else config.llm.model
    )
    print(f"model: {model_name}")
    print(f"adapters: {', '.join(adapters) or 'none'}")
    print(f"plugins: {', '.join(p.name for p in plugins) or 'none'}")
    for feature, finding in found.lines if found is not None else ():
        print(f"probe: {feature}: {finding}")
    if found is not None and found.failed:
        print("the model could not be used as configured")
        return 1
    print("ok")
    return 0


def _components(
    config: Config, faults: Sequence[ConfigError]
) -> tuple[dict[str, Adapter], list[Plugin], dict[str, Any]]:
    """The adapters, plugins and settings; the file's ``faults`` and the components'
    own raised together."""
    try:
        built = build_components(config)
    except ConfigError as exc:
        raise ConfigError.together([*faults, exc]) from None
    if faults:
        raise ConfigError.together(faults)
    return built


async def _surroundings(config: Config, adapters: Mapping[str, Adapter]) -> DatabaseReport:
    """The database and, when ``run`` would start the web server, its port: what the
    database holds, or every fault at once."""
    errors = []
    try:
        database = await check_database(config.database)
    except ConfigError as exc:
        errors.append(exc)
    if config.web.enabled or any(a.web_routes() for a in adapters.values()):
        port = check_port(config.web.host, config.web.port)
        errors += [port] if port is not None else []
    if errors:
        raise ConfigError.together(errors)
    return database
