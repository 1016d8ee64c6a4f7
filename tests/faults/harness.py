"""The fault-injection harness: real ``botkit run`` processes against the project's fakes.

The fakes (model, Slack Web API, Telegram Bot API) run in the test's own event loop on
127.0.0.1, port 0, so killing a bot never kills them; each bot is a real
``python -m botkit -c CONFIG run`` subprocess with a TOML config written into
``tmp_path``. Everything waits on a condition with a deadline (:func:`wait_until`),
never on a fixed sleep, except where a scenario must give a wrong behaviour time to show.

    bot = cluster.start(cluster.config("a", database=url))
    await bot.wait_ready()
    await cluster.slack_events.post(bot, "D1", "hello")
    await wait_until(lambda: cluster.slack_answers("D1"), what="the answer")
    bot.kill()
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import TOKEN as TELEGRAM_TOKEN
from tests.fakes.telegram_api import FakeTelegramAPI

__all__ = [
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
SIGNING_SECRET = "faults-signing-secret-0123456789"
TELEGRAM_SECRET = "faults-webhook-secret"
OPENAI_KEY = "sk-faults-fake-key"
BOT_USER = "W222"  # the person talking to the bot in every Slack scenario

# environment variables that would override a scenario's config file
_OVERRIDES = ("OPENAI_BASE_URL", "BOTKIT_MODEL", "BOTKIT_DATABASE_URL", "BOTKIT_CONFIG")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    within: float = 30.0,
    what: str = "the condition",
    watch: Sequence[BotProcess] = (),
    interval: float = 0.05,
    explain: Callable[[], str] | None = None,
) -> None:
    """Wait until ``condition()`` holds; fail after ``within`` seconds.

    Args:
        condition: checked every ``interval`` seconds; may be a coroutine function.
        within: the deadline, in seconds.
        what: named in the failure.
        watch: bots that must stay alive meanwhile (one that exits fails at once, with its
            log); a bot stopped on purpose should not be watched.
        interval: seconds between checks.
        explain: what the failure should say about the state reached (what is missing).
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        for bot in watch:
            if bot.exited:
                raise AssertionError(
                    f"{bot.name} exited ({bot.returncode}) while waiting for {what}:\n"
                    f"{bot.log_tail()}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {b.name}\n{b.log_tail(2000)}" for b in watch)
            state = f"\n{explain()}" if explain is not None else ""
            raise AssertionError(f"timed out after {within:g} s waiting for {what}{state}\n{logs}")
        await asyncio.sleep(interval)


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


@dataclass
class BotProcess:
    """One ``botkit run`` subprocess; its output goes to ``<name>.log`` beside its config."""

    name: str
    config: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    signals: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The bot's web server: ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where its stdout and stderr go (appended across restarts)."""
        return self.config.with_suffix(".log")

    def start(self) -> BotProcess:
        """Start (or restart) the process."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"===== start {self.starts} =====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "botkit", "-c", str(self.config), "run"],
                cwd=self.config.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the test run does not reach it
            )
        return self

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.process is not None
        return self.process.pid

    @property
    def exited(self) -> bool:
        """Whether it was started and has ended."""
        return self.process is not None and self.process.poll() is not None

    @property
    def running(self) -> bool:
        """Whether it is running (stopped with SIGSTOP counts as running)."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Its exit status, once ended (negative: killed by that signal)."""
        return None if self.process is None else self.process.poll()

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.signals.append(sig.name)
        if self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        self._signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process freezes, its sockets stay open."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT."""
        self._signal(signal.SIGCONT)

    def terminate(self) -> None:
        """SIGTERM: botkit's graceful stop."""
        self._signal(signal.SIGTERM)

    async def wait_exit(self, within: float = 30.0) -> int:
        """Wait for the process to end; its exit status."""
        await wait_until(lambda: self.exited, within=within, what=f"{self.name} to exit")
        code = self.returncode
        assert code is not None
        return code

    async def wait_ready(self, path: str = "/healthz", within: float = 30.0) -> None:
        """Wait until its web server answers ``path`` with 200."""

        async def answers() -> bool:
            try:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(self.url + path, timeout=aiohttp.ClientTimeout(total=2)) as r,
                ):
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await wait_until(answers, within=within, what=f"{self.name} to be ready", watch=[self])

    def log_text(self) -> str:
        """Everything it logged, across restarts."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        """The end of its log."""
        return self.log_text()[-chars:]

    def cleanup(self) -> None:
        """Make sure it is not left running (nor stopped)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.kill()
            self.process.wait(timeout=10)


class SlackEvents:
    """Delivers Events API messages to bots the way Slack does: signed, and redelivered
    (``X-Slack-Retry-Num``) when a bot does not answer 2xx in time."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float = 3.0) -> None:
        self._session = session
        self._timeout = timeout
        self._ts = 0
        self._turn = 0
        #: every delivery attempt made: (bot name, ts, status or None for no answer)
        self.deliveries: list[tuple[str, str, int | None]] = []

    def next_ts(self) -> str:
        """A fresh Slack message timestamp."""
        self._ts += 1
        return f"1700001000.{self._ts:06d}"

    @staticmethod
    def body(channel: str, text: str, ts: str, *, event_id: str | None = None) -> bytes:
        """An ``event_callback`` body for a direct message from :data:`BOT_USER`."""
        event = {
            "type": "message",
            "channel": channel,
            "channel_type": "im",
            "user": BOT_USER,
            "text": text,
            "ts": ts,
            "event_ts": ts,
        }
        return json.dumps(
            {
                "token": "verification-token",
                "team_id": "T111",
                "api_app_id": "A111",
                "event": event,
                "type": "event_callback",
                "event_id": event_id or f"Ev{ts.replace('.', '')}",
                "event_time": int(float(ts)),
                "authorizations": [{"team_id": "T111", "user_id": "W111", "is_bot": True}],
            }
        ).encode()

    @staticmethod
    def headers(raw: bytes, *, secret: str = SIGNING_SECRET, retry: int = 0) -> dict[str, str]:
        """Slack's headers for ``raw``: content type, timestamp, signature, retry number."""
        stamp = str(int(time.time()))
        base = b"v0:" + stamp.encode() + b":" + raw
        signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }
        if retry:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return headers

    async def post_raw(
        self, bot: BotProcess, raw: bytes, headers: Mapping[str, str], path: str = "/slack/events"
    ) -> int | None:
        """POST bytes as they are; the status, or ``None`` if the bot did not answer."""
        try:
            async with self._session.post(
                bot.url + path,
                data=io.BytesIO(raw),
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def post(
        self,
        bots: BotProcess | Sequence[BotProcess],
        channel: str,
        text: str,
        ts: str | None = None,
        *,
        first: int | None = None,
        deadline: float = 60.0,
    ) -> str:
        """Deliver one message until a bot acknowledges it with 2xx; its ``ts``.

        Like Slack, a delivery that fails (no answer in time, a 5xx, a refused connection)
        is retried with ``X-Slack-Retry-Num``. With several bots the deliveries go round
        robin, as behind a load balancer (``first`` picks the bot of the first try), and
        each retry goes to the next bot.
        """
        pool = [bots] if isinstance(bots, BotProcess) else list(bots)
        ts = ts or self.next_ts()
        raw = self.body(channel, text, ts)
        give_up = time.monotonic() + deadline
        if first is None:
            first, self._turn = self._turn, self._turn + 1
        attempt = 0
        while True:
            bot = pool[(first + attempt) % len(pool)]
            status = await self.post_raw(bot, raw, self.headers(raw, retry=attempt))
            self.deliveries.append((bot.name, ts, status))
            if status is not None and 200 <= status < 300:
                return ts
            if status is not None and 400 <= status < 500:
                raise AssertionError(f"{bot.name} refused {text!r} with {status}")
            attempt += 1
            if time.monotonic() > give_up:
                raise AssertionError(f"no bot acknowledged {text!r} within {deadline:g} s")
            await asyncio.sleep(0.2)


class TelegramWebhook:
    """Delivers updates to bots' Telegram webhooks the way Telegram does, resending an
    update until a bot answers 2xx."""

    def __init__(self, session: aiohttp.ClientSession, *, path: str = "/telegram/webhook") -> None:
        self._session = session
        self._path = path
        self._update_id = 0

    def update(self, chat_id: int, text: str, *, update_id: int | None = None) -> dict[str, Any]:
        """A private-chat text message update."""
        if update_id is None:
            self._update_id += 1
            update_id = self._update_id
        return {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
                "chat": {"id": chat_id, "type": "private", "first_name": "Ann"},
                "date": int(time.time()),
                "text": text,
            },
        }

    async def post_raw(
        self, bot: BotProcess, raw: bytes, *, secret: str | None = TELEGRAM_SECRET
    ) -> int | None:
        """POST bytes to the webhook; the status, or ``None`` without an answer."""
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        try:
            async with self._session.post(
                bot.url + self._path,
                data=io.BytesIO(raw),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def post(self, bot: BotProcess, update: Mapping[str, Any], *, times: int = 1) -> None:
        """Deliver ``update`` until acknowledged, then ``times - 1`` more times (redelivery)."""
        raw = json.dumps(update).encode()
        delivered = 0
        give_up = time.monotonic() + 60
        while delivered < times:
            status = await self.post_raw(bot, raw)
            if status == 200:
                delivered += 1
                continue
            if status is not None and 400 <= status < 500:
                raise AssertionError(f"{bot.name} refused update {update['update_id']}: {status}")
            if time.monotonic() > give_up:
                raise AssertionError(f"update {update['update_id']} never acknowledged")
            await asyncio.sleep(0.2)


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


def restart_postgres() -> None:
    """Restart the local PostgreSQL cluster (``pg_ctlcluster ... restart``)."""
    _pg_ctl("restart")


def ensure_postgres_running() -> None:
    """Start the local PostgreSQL cluster if it is not running (teardown safety net)."""
    status = _pg_ctl("status", check=False)
    if status != 0:
        _pg_ctl("start")


def _pg_ctl(action: str, *, check: bool = True) -> int:
    versions = sorted(os.listdir("/etc/postgresql"))
    result = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"pg_ctlcluster {action} failed: {result.stderr.decode()}")
    return result.returncode


def answered_once_problems(cluster: Cluster, expected: Mapping[str, str]) -> list[str]:
    """For each channel, whether the bot's messages there are exactly ``[expected]``: the
    problems found (missing, doubled, a stray partial message), empty when all is well."""
    problems = []
    for channel, text in expected.items():
        texts = cluster.slack_texts(channel)
        if texts != [text]:
            problems.append(f"{channel}: expected [{text!r}], the channel shows {texts!r}")
    return problems
