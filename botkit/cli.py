"""The ``botkit`` command: run, chat, db upgrade, usage, check-config."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

from botkit.adapter import Adapter
from botkit.bot import Bot, build_components, build_model
from botkit.config import Config, read_config
from botkit.discovery import load_adapter_class
from botkit.event_loop import run as run_on_loop
from botkit.exceptions import BotkitError, ConfigError, PluginError
from botkit.llm import OpenAIChatClient
from botkit.llm.probe import probe
from botkit.logs import configured_logging
from botkit.plugin import Plugin
from botkit.preflight import DatabaseReport, check_database, check_port, safe_url
from botkit.routing import Pipeline
from botkit.store import Database, Store, one_process_per_sqlite_file
from botkit.tools import ToolCommand
from botkit.usage_report import DIMENSIONS, UsageGroup, group_usage, parse_by, parse_since

__all__ = ["main"]

log = logging.getLogger("botkit")
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``botkit`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        config, faults = read_config(args.config)
    except ConfigError as exc:
        return _config_errors(exc)
    settings = config.logging
    level = args.log_level or settings.level or ("WARNING" if args.command == "chat" else "INFO")
    with configured_logging(
        level=logging.getLevelName(level),
        log_format=args.log_format or settings.format,
        bodies=settings.bodies,
        verbose=args.verbose,
        terse=args.command == "chat",  # a person at a terminal: no timestamps
    ):
        return _command(args, config, faults)


def _command(args: argparse.Namespace, config: Config, faults: Sequence[ConfigError]) -> int:
    try:
        if faults and not args.builds:  # the others report these with their own
            raise ConfigError.together(faults)
        args.faults = faults
        return int(run_on_loop(args.handler(config, args), config.bot.event_loop))
    except ConfigError as exc:
        return _config_errors(exc)
    except PluginError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 2
    except BotkitError as exc:
        print(f"botkit: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C before the loop took over
        return 130


def _config_errors(exc: ConfigError) -> int:
    for error in exc.errors:
        print(f"botkit: config error: {error}", file=sys.stderr)
    return 2


def _version() -> str:
    try:
        return version("botkit")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree not installed
        return "unknown"


def _options(parser: argparse.ArgumentParser, *, default: object) -> None:
    """The options every command takes, before its name or after it (``botkit run -c
    bot.toml``); after it, ``default`` is ``SUPPRESS`` so that an absent one leaves
    what was given before the command."""

    def given(value: object) -> object:
        return default if default is argparse.SUPPRESS else value

    parser.add_argument(
        "-c",
        "--config",
        default=given(None),
        help="the TOML config file (default: $BOTKIT_CONFIG, "
        "else ./botkit.toml, else built-in defaults)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=given(False),
        help="log botkit's debugging detail and the database migrations' steps",
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default=given(None),
        help="JSON lines or text on stderr (default: [logging] format, else auto: "
        "JSON unless stderr is a terminal)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=given(None),
        help="the least severe log lines shown (default: [logging] level, else INFO; "
        "WARNING for chat); DEBUG is botkit's own detail, as -v",
    )


def _command_parser(
    sub: Any, name: str, summary: str, common: argparse.ArgumentParser
) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with its one-line ``summary``."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary, parents=[common]
    )
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="botkit", description="Chat bots for Slack, Telegram and email, backed by a model."
    )
    parser.add_argument("--version", action="version", version=f"botkit {_version()}")
    _options(parser, default=None)
    common = argparse.ArgumentParser(add_help=False)
    _options(common, default=argparse.SUPPRESS)
    # builds: the command builds the adapters and plugins, and reports their faults
    # together with the file's
    parser.set_defaults(builds=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = _command_parser(sub, "run", "Run the bot on every configured channel.", common)
    run.set_defaults(handler=_run, builds=True)
    chat = _command_parser(
        sub, "chat", "Talk to the bot in this terminal (or through a pipe).", common
    )
    chat.set_defaults(handler=_chat)
    db = _command_parser(sub, "db", "Database maintenance.", common)
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = _command_parser(db_sub, "upgrade", "Apply the database migrations.", common)
    upgrade.set_defaults(handler=_db_upgrade)
    usage = _command_parser(
        sub, "usage", "Model spend and tokens by day, model, channel and user.", common
    )
    usage.add_argument(
        "--by",
        type=_argument(parse_by),
        default=DIMENSIONS,
        metavar="DIMENSIONS",
        help="group by these, comma-separated: day, model, channel, user (default: all four)",
    )
    span = usage.add_mutually_exclusive_group()
    span.add_argument(
        "--since",
        type=_argument(parse_since),
        metavar="WHEN",
        help="from this long ago (7d, 12h, 2w) or this date (2025-01-31); default 30d",
    )
    span.add_argument(
        "--days", type=int, metavar="N", help="the same as --since Nd (kept for old scripts)"
    )
    usage.add_argument("--json", action="store_true", help="print JSON for machines")
    usage.add_argument(
        "--annotation",
        metavar="KEY",
        help="instead of spend: how often each value of a message annotation a plugin "
        "stores (sentiment, spam...) occurred, by day and channel",
    )
    usage.set_defaults(handler=_usage)
    check = _command_parser(
        sub,
        "check-config",
        "Check the config, the database and the web port as run would.",
        common,
    )
    check.add_argument(
        "--probe",
        action="store_true",
        help="also call the model (three small requests) and report what its server "
        "supports: usage in streams, the structured-output mode, tools",
    )
    check.set_defaults(handler=_check_config, builds=True)
    return parser


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as an argparse ``type``: its ``ValueError`` is the usage error shown."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


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
        # the stand-in notice is the bot's own warning on start: said once, on stderr
        bot = Bot(config, adapters={"console": console("console")})
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
    since = args.since or parse_since(f"{30 if args.days is None else args.days}d")
    database = Database(config.database.url, synchronous=config.database.synchronous)
    try:
        await database.upgrade() if database.sqlite else None
        if args.annotation:
            counts = await Store(database).history.annotation_counts(
                args.annotation, since=since.start
            )
            return _print_annotations(args.annotation, counts, as_json=args.json)
        rows = await Store(database).usage.report(since=since.start)
    finally:
        await database.close()
    groups = group_usage(rows, args.by)
    if args.json:
        print(json.dumps([_usage_json(args.by, g) for g in groups], indent=2))
        return 0
    if not groups:
        print(f"no model calls {since.words}")
        return 0
    widths = {"day": 10, "model": 24, "channel": 10, "user": 16}
    heads = " ".join(f"{d:{widths[d]}}" for d in args.by)
    print(f"{heads} {'calls':>5} {'prompt':>9} {'output':>9} {'cost $':>12}")
    total = Decimal(0)
    for g in groups:
        total += g.cost
        unknown = f" (+{g.unpriced_calls} unpriced)" if g.unpriced_calls else ""
        if g.estimated_calls:  # the server sent no usage for these: botkit counted
            unknown += f" ({g.estimated_calls} of {g.calls} calls estimated)"
        cells = " ".join(
            f"{v[: widths[d]]:{widths[d]}}" for d, v in zip(args.by, g.key, strict=True)
        )
        print(
            f"{cells} {g.calls:>5} {g.prompt_tokens:>9} {g.completion_tokens:>9} "
            f"{g.cost:>12.6f}{unknown}"
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


def _usage_json(by: Sequence[str], group: UsageGroup) -> dict[str, object]:
    # "" is what the store groups calls without a channel or user under
    keys = {
        d: (v or None) if d in ("channel", "user") else v
        for d, v in zip(by, group.key, strict=True)
    }
    return {
        **keys,
        "calls": group.calls,
        "prompt_tokens": group.prompt_tokens,
        "completion_tokens": group.completion_tokens,
        "cost_usd": str(group.cost),
        "unpriced_calls": group.unpriced_calls,
        "estimated_calls": group.estimated_calls,
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
    for plugin in plugins:
        print(f"  {plugin.name}: {_handled_by(plugin)}")
    for feature, finding in found.lines if found is not None else ():
        print(f"probe: {feature}: {finding}")
    if found is not None and found.failed:
        print("the model could not be used as configured")
        return 1
    print("ok")
    return 0


def _handled_by(plugin: Plugin) -> str:
    """What a plugin answers: its commands, its tools (those that ask first marked) and
    its message handlers by name, the ones declaring a side-effect tool added included
    (``confirm_tool_call``)."""
    commands, tools = [], []
    for command in plugin.commands:
        if isinstance(command.func, ToolCommand):
            asks = " (asks first)" if command.func.tool.side_effects else ""
            tools.append(f"/{command.name}{asks}")
        else:
            commands.append(f"/{command.name}")
    handlers = [
        getattr(h.func, "__name__", type(h.func).__name__) for h in plugin.message_handlers
    ]
    parts = [
        f"{label} {', '.join(names)}"
        for label, names in (
            ("commands", commands),
            ("tools", tools),
            ("message handlers", handlers),
        )
        if names
    ]
    return "; ".join(parts) or "middlewares and hooks only"


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
