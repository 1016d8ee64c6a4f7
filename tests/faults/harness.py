"""The fault-injection harness: real ``botkit run`` processes against the project's fakes.

The fakes (model, Slack Web API, Telegram Bot API) run in the test's own event loop on
127.0.0.1, port 0, so killing a bot never kills them; each bot is a real
``python -m botkit -c CONFIG run`` subprocess with a TOML config written into
``tmp_path``. Everything waits on a condition with a deadline (:func:`wait_until`),
never on a fixed sleep, except where a scenario must give a wrong behaviour time to show.

    bot = cluster.config("bot", database=postgres_url, bot={"stream": False}).start()
    await bot.wait_ready()                               # /healthz answers 200
    await cluster.slack_events.post(bot, "D1", "hello")  # signed, redelivered until 2xx
    await wait_until(lambda: cluster.slack_answered("D1", "echo: hello"), what="the answer",
                     watch=[bot])
    bot.kill()            # SIGKILL; also pause() (SIGSTOP), resume(), terminate() (SIGTERM)
    bot.start()           # the same config, port and log again
    assert answered_once_problems(cluster, {"D1": "echo: hello"}) == []

The pieces: :mod:`tests.faults._process` (:class:`BotProcess`, :func:`wait_until`),
:mod:`tests.faults._channels` (:class:`SlackEvents`, :class:`TelegramWebhook`),
:mod:`tests.faults._postgres` (restarting PostgreSQL); this module ties them to the fakes
(:class:`Cluster`, the ``cluster`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.faults._channels import (
    BOT_USER,
    SIGNING_SECRET,
    TELEGRAM_SECRET,
    SlackEvents,
    TelegramWebhook,
)
from tests.faults._postgres import ensure_postgres_running, restart_postgres
from tests.faults._process import BotProcess, free_port, wait_until

__all__ = [
    "BOT_USER",
    "ROOT",
    "SIGNING_SECRET",
    "TELEGRAM_SECRET",
    "TELEGRAM_TOKEN",
    "BotProcess",
    "Cluster",
    "SlackEvents",
    "TelegramWebhook",
    "answered_once_problems",
    "ensure_postgres_running",
    "free_port",
    "restart_postgres",
    "toml",
    "wait_until",
]


ROOT = Path(__file__).resolve().parents[2]
OPENAI_KEY = "sk-faults-fake-key"

# environment variables that would override a scenario's config file
_OVERRIDES = ("OPENAI_BASE_URL", "BOTKIT_MODEL", "BOTKIT_DATABASE_URL", "BOTKIT_CONFIG")


def toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document from ``{"table.name": {key: value}}`` (scalars, lists, inline tables)."""
    lines: list[str] = []
    for name, values in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, Iterable):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


class Cluster:
    """The fakes, and the bots of one scenario.

    Args:
        tmp_path: where configs and logs go.
        openai: the model fake.
        slack: the Slack Web API fake.
        telegram: the Telegram Bot API fake.
        session: an HTTP client for posting events.
    """

    def __init__(
        self,
        tmp_path: Path,
        openai: FakeOpenAI,
        slack: FakeSlack,
        telegram: FakeTelegramAPI,
        session: aiohttp.ClientSession,
    ) -> None:
        self.tmp_path = tmp_path
        self.openai = openai
        self.slack = slack
        self.telegram = telegram
        self.session = session
        self.slack_events = SlackEvents(session)
        self.telegram_webhook = TelegramWebhook(session)
        self.bots: list[BotProcess] = []
        slack.add_user(BOT_USER, "Ann Example")

    def env(self) -> dict[str, str]:
        """The environment of a bot: this one's, less overrides, plus the fakes' secrets."""
        env = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
        paths = [str(ROOT), str(ROOT / "adapters"), str(ROOT / "plugins")]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["OPENAI_API_KEY"] = OPENAI_KEY
        env["SLACK_BOT_TOKEN"] = self.slack.bot_token
        env["SLACK_SIGNING_SECRET"] = SIGNING_SECRET
        env["TELEGRAM_BOT_TOKEN"] = TELEGRAM_TOKEN
        env["TELEGRAM_WEBHOOK_SECRET"] = TELEGRAM_SECRET
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def config(
        self,
        name: str,
        *,
        database: str,
        channel: str = "slack",
        bot: Mapping[str, Any] | None = None,
        llm: Mapping[str, Any] | None = None,
        outbox: Mapping[str, Any] | None = None,
        adapter: Mapping[str, Any] | None = None,
        plugins: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> BotProcess:
        """Write ``<name>.toml`` and return the (not yet started) bot it configures.

        Args:
            name: the bot's name, its config's and log's file name.
            database: a SQLAlchemy URL.
            channel: ``"slack"`` (HTTP Events API), ``"telegram"`` (webhook) or
                ``"telegram-polling"``.
            bot: ``[bot]`` settings over the scenario defaults.
            llm: ``[llm]`` settings over the defaults (the model fake, quick retries).
            outbox: ``[outbox]`` settings over the defaults (quick retries).
            adapter: the channel's settings over the defaults.
            plugins: plugin tables; default: only the chat skill.
        """
        port = free_port()
        tables: dict[str, Mapping[str, Any]] = {
            "bot": {
                "name": name,
                "claim_lease": 3.0,
                "shutdown_grace": 3.0,
                "tune_gc": False,
                **(bot or {}),
            },
            "database": {"url": database, "auto_migrate": True},
            "llm": {
                "base_url": self.openai.url,
                "api_key_env": "OPENAI_API_KEY",
                "model": "gpt-4o-mini",
                "timeout": 20.0,
                "stream_idle_timeout": 20.0,
                "max_retries": 4,
                **(llm or {}),
            },
            "web": {"enabled": True, "host": "127.0.0.1", "port": port},
            "outbox": {"backoff_base": 0.2, "backoff_max": 2.0, **(outbox or {})},
        }
        if channel == "slack":
            tables["adapters.slack"] = {
                "transport": "http",
                "api_url": self.slack.base_url,
                "post_interval": 0.0,
                "typing_reaction": "",
                "timeout": 10.0,
                **(adapter or {}),
            }
        else:
            tables["adapters.telegram"] = {
                "api_url": self.telegram.api_url,
                "mode": "polling" if channel == "telegram-polling" else "webhook",
                "backoff_initial": 0.2,
                "backoff_max": 1.0,
                **(
                    {} if channel == "telegram-polling" else {"webhook_url": "https://bot.test/tg"}
                ),
                **(adapter or {}),
            }
        for plugin, settings in (plugins or {"chat": {}}).items():
            tables[f"plugins.{plugin}"] = settings
        path = self.tmp_path / f"{name}.toml"
        path.write_text(toml(tables))
        bot_process = BotProcess(name, path, port, self.env())
        self.bots.append(bot_process)
        return bot_process

    async def migrate(self, database: str) -> None:
        """``botkit db upgrade`` once, before several bots start on one database."""
        path = self.tmp_path / "migrate.toml"
        path.write_text(toml({"database": {"url": database}}))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "botkit",
            "-c",
            str(path),
            "db",
            "upgrade",
            env=self.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        assert process.returncode == 0, output.decode(errors="replace")

    # what Slack received

    def slack_messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        """The bot's messages in the fake workspace (one per posted message, edits applied)."""
        return self.slack.posted(channel)

    def slack_texts(self, channel: str) -> list[str]:
        """The final text of each message the bot posted in ``channel``, in posting order."""
        return [str(m["text"]) for m in self.slack.posted(channel)]

    def slack_answered(self, channel: str, expected: str) -> bool:
        """Whether a message with exactly ``expected`` is in ``channel``."""
        return expected in self.slack_texts(channel)

    def telegram_texts(self, chat_id: int) -> list[str]:
        """What each message the bot sent to a Telegram chat shows now, in sending order."""
        return [s.text for s in self.telegram.sent if s.chat_id == chat_id and not s.deleted]

    def cleanup(self) -> None:
        """Kill every bot still running."""
        for bot in self.bots:
            bot.cleanup()


def answered_once_problems(cluster: Cluster, expected: Mapping[str, str]) -> list[str]:
    """For each channel, whether the bot's messages there are exactly ``[expected]``: the
    problems found (missing, doubled, a stray partial message), empty when all is well."""
    problems = []
    for channel, text in expected.items():
        texts = cluster.slack_texts(channel)
        if texts != [text]:
            problems.append(f"{channel}: expected [{text!r}], the channel shows {texts!r}")
    return problems
