"""Scenario 5: from the model's first token to the first text a user sees, and edit pacing.

A real ``Bot`` with the real Slack (Socket Mode) or Telegram (long polling) adapter,
pointed at the fake channel servers in ``tests/fakes/``, streams answers from the fake
OpenAI server. The model waits a moment (so the typing indicator shows), then streams
its tokens 50 ms apart; the server notes when it wrote the first one. The fake channel
notes when each post and edit arrived. Everything runs in one process, on one clock.

- delay: first token written by the model -> first text arriving at the channel; its
  baseline is one bare HTTP post to the same fake (aiohttp, no SDK, nothing else): the
  least any bot could take to show something.
- edits: the edit rate and the shortest gap between two visible changes of one message,
  against the channel's limit (Telegram: about one message or edit per second in a chat,
  so the gap; Slack: ``chat.update`` is Tier 3, about 50 calls a minute per workspace, so
  the rate) and against the ``edit_interval`` the adapter declares.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bench._util import Options, Skipped, importable, median, ms, sqlite_url
from botkit import Bot
from botkit.config import parse_config
from tests.fakes.openai_server import FakeOpenAI, RecordedRequest, Responder

THINK = 0.3
INTERVAL = 0.05
TELEGRAM_GAP = 1.0  # about one message or edit per second in one chat
SLACK_PER_MINUTE = 50  # chat.update is Tier 3: about 50 calls a minute per workspace
SLOP = 0.03  # arrival times are taken by the fake's handler: HTTP jitter, not pacing


@dataclass(slots=True)
class Visible:
    """What a user of one chat saw: (arrival time, text) of each post and edit."""

    changes: list[tuple[float, str]] = field(default_factory=list)


@dataclass(slots=True)
class Run:
    """What one streamed answer measured."""

    delay: float
    gaps: list[float]
    edits: int
    duration: float


def timed_stream(words: list[str], first_token: list[float]) -> Responder:
    """A streamed reply: think, then one word per event ``INTERVAL`` apart."""

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return f"data: {json.dumps(chunk)}\n\n".encode()

        await response.write(event({"role": "assistant", "content": ""}))
        await asyncio.sleep(THINK)
        for index, word in enumerate(words):
            if index:
                await asyncio.sleep(INTERVAL)
            else:
                first_token.append(time.monotonic())
            await response.write(event({"content": word}))
        await response.write(event({}, "stop"))
        usage = {"prompt_tokens": 10, "completion_tokens": len(words), "total_tokens": 0}
        await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    return respond


def _words(count: int, tag: str) -> list[str]:
    return [f"{tag}word{i}" if i == 0 else f" word{i}" for i in range(count)]


def _measure(first_token: float, visible: Visible) -> Run:
    times = [t for t, _ in visible.changes]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return Run(times[0] - first_token, gaps, len(times) - 1, times[-1] - times[0])


async def _wait(condition: Callable[[], bool], within: float) -> None:
    """Poll ``condition`` (the fakes' records) every 10 ms, up to ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the fakes signal nothing to wait on
            await asyncio.sleep(0.01)


def _line(channel: str, runs: list[Run], floor: float, tokens: int, edit_interval: float) -> str:
    delays = [r.delay for r in runs]
    gaps = [g for r in runs for g in r.gaps]
    per_minute = 60 * sum(r.edits for r in runs) / (sum(r.duration for r in runs) or 1.0)
    shortest = min(gaps) if gaps else float("inf")
    if channel == "telegram":
        ok = shortest >= TELEGRAM_GAP - SLOP
        rule = f"Telegram: one change a second per chat: {'within' if ok else 'OVER'}"
    else:
        ok = per_minute <= SLACK_PER_MINUTE
        rule = f"Slack: ~{SLACK_PER_MINUTE}/min per workspace: {'within' if ok else 'OVER'}"
    paced = "kept" if shortest >= edit_interval - SLOP else "NOT kept by the last edit"
    return (
        f"first token -> first text {ms(median(delays))} median, {ms(max(delays))} worst "
        f"= {median(delays) / floor:.1f}x a bare post ({ms(floor)})  "
        f"edits {per_minute:.0f}/min ({rule})  shortest gap {shortest:.2f} s "
        f"(the adapter's edit_interval {edit_interval:g} s: {paced})  "
        f"[{len(runs)} answers of {tokens} tokens, {INTERVAL * 1000:.0f} ms apart]"
    )


async def _floor(post: Callable[[aiohttp.ClientSession], Any], arrivals: list[float]) -> float:
    """Median time from starting a bare POST to its arrival at the fake."""
    samples = []
    async with aiohttp.ClientSession() as session:
        for _ in range(7):
            before = len(arrivals)
            started = time.monotonic()
            await post(session)
            samples.append(arrivals[before] - started)
    return median(samples[2:])


def _sizes(opts: Options) -> tuple[int, int]:
    """(answers, tokens per answer)."""
    return (2, 30) if opts.quick else (5, 80)


@asynccontextmanager
async def _bot(tables: dict[str, Any], environ: dict[str, str]) -> AsyncIterator[Bot]:
    bot = Bot(parse_config(tables, environ=environ))
    async with bot:
        yield bot


def _tables(opts: Options, fake: FakeOpenAI, adapters: dict[str, Any]) -> dict[str, Any]:
    return {
        "database": {"url": sqlite_url(opts.workdir, "streaming"), "auto_migrate": True},
        "llm": {"base_url": fake.url, "model": "gpt-4o-mini", "max_retries": 0},
        "bot": {"shutdown_grace": 5.0},  # streaming is on by default
        "adapters": adapters,
        "plugins": {"chat": {}},
    }


# --- Slack ---------------------------------------------------------------------------------


async def run_slack(opts: Options) -> str:
    """``streaming/slack``: the Slack adapter in Socket Mode against the fake Slack."""
    if not importable("botkit_slack"):
        raise Skipped("the Slack adapter (botkit_slack) is not importable")
    try:
        from tests.adapters.slack.slack_helpers import event
        from tests.fakes.slack_api import FakeSlack
    except ImportError as exc:
        raise Skipped(f"the fake Slack is not importable ({exc})") from exc

    class TimedSlack(FakeSlack):
        """The fake Slack, noting when each post and edit arrived."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: dict[str, Visible] = {}
            self.arrivals: list[float] = []

        def _note(self, params: dict[str, Any]) -> None:
            now = time.monotonic()
            self.arrivals.append(now)
            visible = self.seen.setdefault(str(params.get("channel")), Visible())
            visible.changes.append((now, str(params.get("text", ""))))

        def _api_chat_postMessage(
            self, params: dict[str, Any], request: web.Request
        ) -> dict[str, Any]:
            self._note(params)
            return super()._api_chat_postMessage(params, request)

        def _api_chat_update(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
            self._note(params)
            return super()._api_chat_update(params, request)

    answers, tokens = _sizes(opts)
    first_token: list[float] = []
    runs: list[Run] = []
    async with FakeOpenAI() as fake, TimedSlack() as slack:
        slack.add_user("W222", "Ada Lovelace")
        tables = _tables(
            opts, fake, {"slack": {"use": "botkit_slack:SlackAdapter", "api_url": slack.base_url}}
        )
        environ = {"SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token}
        async with _bot(tables, environ):
            await slack.wait_connected()
            for n in range(answers):
                channel = f"D{n:08d}"
                words = _words(tokens, f"a{n}")
                fake.script(timed_stream(words, first_token))
                await slack.send_envelope(
                    event(
                        text=f"Question {n}?",
                        channel=channel,
                        ts=f"1700000{n:03d}.000100",
                        event_id=f"Ev{n}",
                    )
                )
                visible = slack.seen.setdefault(channel, Visible())
                last = words[-1].strip()

                def finished(v: Visible = visible, w: str = last) -> bool:
                    return bool(v.changes) and v.changes[-1][1].endswith(w)

                await _wait(finished, within=60)
                runs.append(_measure(first_token[-1], visible))

            async def post(session: aiohttp.ClientSession) -> None:
                async with session.post(
                    slack.base_url + "chat.postMessage",
                    json={"channel": "C0FLOOR", "text": "floor"},
                    headers={"Authorization": f"Bearer {slack.bot_token}"},
                ) as response:
                    await response.read()

            floor = await _floor(post, slack.arrivals)
    from botkit_slack import SlackAdapter

    return _line("slack", runs, floor, tokens, SlackAdapter.capabilities.edit_interval)


# --- Telegram ------------------------------------------------------------------------------


async def run_telegram(opts: Options) -> str:
    """``streaming/telegram``: the Telegram adapter, long polling, against the fake API."""
    if not importable("botkit_telegram"):
        raise Skipped("the Telegram adapter (botkit_telegram) is not importable")
    try:
        from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI
    except ImportError as exc:
        raise Skipped(f"the fake Telegram Bot API is not importable ({exc})") from exc

    answers, tokens = _sizes(opts)
    first_token: list[float] = []
    runs: list[Run] = []
    visible_methods = ("sendMessage", "editMessageText")

    def seen(api: FakeTelegramAPI, chat: int) -> Visible:
        return Visible(
            [
                (r.at, str(r.params.get("text", "")))
                for r in api.requests
                if r.method in visible_methods and str(r.params.get("chat_id")) == str(chat)
            ]
        )

    async with FakeOpenAI() as fake, FakeTelegramAPI() as api:
        adapter = {
            "use": "botkit_telegram:TelegramAdapter",
            "api_url": api.api_url,
            "poll_timeout": 1,
        }
        tables = _tables(opts, fake, {"telegram": adapter})
        # python-telegram-bot warns on every flood wait unless told to use timedeltas
        os.environ.setdefault("PTB_TIMEDELTA", "true")
        async with _bot(tables, {"TELEGRAM_BOT_TOKEN": TOKEN}):
            for n in range(answers):
                chat = 5_000_000 + n
                words = _words(tokens, f"a{n}")
                fake.script(timed_stream(words, first_token))
                person = {"id": chat, "is_bot": False, "first_name": "Ada"}
                await api.push_update(
                    {
                        "message": {
                            "message_id": 100 + n,
                            "from": person,
                            "chat": {**person, "type": "private"},
                            "date": int(time.time()),
                            "text": f"Question {n}?",
                        }
                    }
                )
                last = words[-1].strip()

                def shown(c: int = chat, w: str = last) -> bool:
                    changes = seen(api, c).changes
                    return bool(changes) and w in changes[-1][1]

                await _wait(shown, within=60)
                runs.append(_measure(first_token[-1], seen(api, chat)))

            arrivals: list[float] = []

            async def post(session: aiohttp.ClientSession) -> None:
                async with session.post(
                    f"{api.api_url}/bot{TOKEN}/sendMessage",
                    json={"chat_id": 4_999_999, "text": "floor"},
                ) as response:
                    await response.read()
                arrivals.append(api.requests[-1].at)

            floor = await _floor(post, arrivals)
    from botkit_telegram import TelegramAdapter

    return _line("telegram", runs, floor, tokens, TelegramAdapter.capabilities.edit_interval)
