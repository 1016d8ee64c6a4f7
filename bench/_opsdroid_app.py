"""The peers scenario through opsdroid; runs in opsdroid's venv, never imported by botkit.

``python bench/_opsdroid_app.py MODEL_URL WORKDIR USERS WARMUP MEASURED LATENCY`` pins
itself to ``$BOTKIT_BENCH_CPU``, runs the closed loop of ``bench/_closed_loop.py`` and
prints its JSON line.

This file is also the opsdroid module the run loads, as an opsdroid user would write
one: an in-memory connector, and a chat skill that keeps the conversation's history in
opsdroid's memory (its SQLite database), asks the same fake model with one aiohttp
session, and responds.
"""

from __future__ import annotations

import asyncio
import gettext
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench._closed_loop
gettext.install("opsdroid")  # opsdroid's command line does this before loading anything

from opsdroid.connector import Connector, register_event  # type: ignore[import-not-found]  # noqa: E402
from opsdroid.events import Message  # type: ignore[import-not-found]  # noqa: E402
from opsdroid.matchers import match_regex  # type: ignore[import-not-found]  # noqa: E402

from bench._closed_loop import Measured, Plan, pin, report, run  # noqa: E402

SYSTEM_PROMPT = "You are a helpful assistant. Answer concisely."
HISTORY_LIMIT = 200
MODEL = "gpt-4o-mini"


class BenchConnector(Connector):  # type: ignore[misc]
    """An in-memory channel: resolves a future when a reply for a target is sent."""

    def __init__(self, config: dict[str, Any], opsdroid: Any = None) -> None:
        super().__init__(config, opsdroid=opsdroid)
        self.name = "bench"
        self.waiting: dict[str, asyncio.Future[float]] = {}

    async def connect(self) -> None:
        """Nothing to connect to."""

    async def listen(self) -> None:
        """Messages are handed to ``opsdroid.parse`` directly."""

    async def disconnect(self) -> None:
        """Nothing to disconnect."""

    @register_event(Message)  # type: ignore[untyped-decorator]
    async def send_message(self, message: Any) -> None:
        """Deliver a reply: note the time."""
        now = time.monotonic()
        future = self.waiting.pop(message.target, None)
        if future is not None and not future.done():
            future.set_result(now)


_http: Any = None


@match_regex(r".*")  # type: ignore[untyped-decorator]
async def chat(opsdroid: Any, config: dict[str, Any], message: Any) -> None:
    """Answer from the model with the conversation's history, kept in opsdroid's memory."""
    import aiohttp

    global _http  # one session for the skill, as a careful skill author would keep
    if _http is None:
        # as many connections as botkit's model client has (bot.max_in_flight, 32)
        _http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32))
    key = f"history:{message.target}"
    history: list[dict[str, str]] = await opsdroid.memory.get(key) or []
    history.append({"role": "user", "content": message.text})
    history = history[-HISTORY_LIMIT:]
    body = {
        "model": MODEL,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *history],
        "max_tokens": 1024,
    }
    async with _http.post(config["model_url"] + "/chat/completions", json=body) as response:
        response.raise_for_status()
        reply = await response.json()
    content = reply["choices"][0]["message"]["content"] or ""
    history.append({"role": "assistant", "content": content})
    await opsdroid.memory.put(key, history)
    await message.respond(content)


async def _main(args: list[str]) -> Measured:
    model_url, workdir = args[0], Path(args[1])
    plan = Plan.parse(args[2:6])
    from opsdroid.core import OpsDroid  # type: ignore[import-not-found]

    config = {
        "connectors": {"bench": {"module": "_opsdroid_app"}},
        "skills": {"chat": {"module": "_opsdroid_app", "model_url": model_url}},
        "databases": {"sqlite": {"path": str(workdir / "opsdroid.db")}},
        "web": {"host": "127.0.0.1", "port": 0},
    }
    with OpsDroid(config=config, loopless=True) as opsdroid:
        opsdroid.eventloop = asyncio.get_running_loop()
        await opsdroid.load()
        await opsdroid.start_databases()
        await opsdroid.start_connectors()
        connector = opsdroid.connectors[0]

        async def one(conversation: str, text: str, external_id: str) -> float:
            done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            connector.waiting[conversation] = done
            started = time.monotonic()
            await opsdroid.parse(
                Message(text, user="Bench User", target=conversation, connector=connector)
            )
            return await done - started

        measured = await run(one, plan)
        for database in opsdroid.memory.databases:
            await database.disconnect()
        session = opsdroid.skills[0].__globals__.get("_http")  # the skill module's, as loaded
        if session is not None:
            await session.close()
    return measured


if __name__ == "__main__":
    pin()  # first: every thread inherits the mask
    report(asyncio.run(_main(sys.argv[1:])), target="opsdroid")
