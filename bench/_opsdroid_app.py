"""The overhead scenario through opsdroid; runs in the peer venv, never imported by botkit.

``python bench/_opsdroid_app.py MODEL_URL WORKDIR LATENCY USERS PER_USER WARMUP`` prints
one JSON object: the latencies of the latency phase and the messages per second of the
throughput phase (see ``bench/overhead.py``; the same message texts and phases).

This file is also the opsdroid module the run loads, as an opsdroid user would write
one: an in-memory connector, and a chat skill that keeps the conversation's history in
opsdroid's memory (its SQLite database), asks the same fake model with one aiohttp
session, and responds.
"""

from __future__ import annotations

import asyncio
import gettext
import json
import sys
import time
from pathlib import Path
from typing import Any

gettext.install("opsdroid")  # opsdroid's command line does this before loading anything

from opsdroid.connector import Connector, register_event  # type: ignore[import-not-found]  # noqa: E402
from opsdroid.events import Message  # type: ignore[import-not-found]  # noqa: E402
from opsdroid.matchers import match_regex  # type: ignore[import-not-found]  # noqa: E402

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
        _http = aiohttp.ClientSession()
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


def _text(n: int) -> str:
    return f"Message {n}: what would you pack for three days of hiking in the Alps in May?"


async def _main(args: list[str]) -> dict[str, Any]:
    model_url, workdir = args[0], Path(args[1])
    latency_n, users, per_user, warmup = (int(a) for a in args[2:6])
    from opsdroid.core import OpsDroid  # type: ignore[import-not-found]

    config = {
        "connectors": {"bench": {"module": "_opsdroid_app"}},
        "skills": {"chat": {"module": "_opsdroid_app", "model_url": model_url}},
        "databases": {"sqlite": {"path": str(workdir / "opsdroid.db")}},
        "web": {"host": "127.0.0.1", "port": 0},
    }
    counter = iter(range(1, 10**9))
    with OpsDroid(config=config, loopless=True) as opsdroid:
        opsdroid.eventloop = asyncio.get_running_loop()
        await opsdroid.load()
        await opsdroid.start_databases()
        await opsdroid.start_connectors()
        connector = opsdroid.connectors[0]

        async def one(conversation: str) -> float:
            n = next(counter)
            done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            connector.waiting[conversation] = done
            started = time.monotonic()
            await opsdroid.parse(
                Message(_text(n), user="Bench User", target=conversation, connector=connector)
            )
            return await done - started

        async def latency(tag: str, count: int) -> list[float]:
            return [await one(f"{tag}-lat-{i % 10}") for i in range(count)]

        async def user(tag: str, index: int) -> None:
            for _ in range(per_user):
                await one(f"{tag}-thr-{index}")

        await latency("warm", warmup)
        latencies = await latency("run", latency_n)
        started = time.monotonic()
        await asyncio.gather(*(user("run", i) for i in range(users)))
        rate = users * per_user / (time.monotonic() - started)
        for database in opsdroid.memory.databases:
            await database.disconnect()
        session = opsdroid.skills[0].__globals__.get("_http")  # the skill module's, as loaded
        if session is not None:
            await session.close()
    return {"latencies": latencies, "rate": rate}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(sys.argv[1:]))))
