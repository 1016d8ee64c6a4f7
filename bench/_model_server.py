"""The fake OpenAI server as a process: ``python -m bench._model_server [--delay S]``.

Prints its base URL on the first line of stdout, then serves until its stdin closes.
Replies are built by ``tests/fakes/openai_server.py`` (the real wire format: plain JSON,
or server-sent events when the request streams) and echo the last user message, as
``FakeOpenAI`` does when nothing is scripted. Three differences: an optional pause before
every answer (a model that takes its time), a streamed answer written word by word
(``STREAM_INTERVAL`` apart), and a listen backlog big enough for a
thousand clients connecting at once (the test server's 128 would make some of them
retry their SYN after a second, which is the kernel's time, not the framework's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from bench._closed_loop import pin
from tests.fakes.openai_server import FakeOpenAI, RecordedRequest, completion, stream

BACKLOG = 4096
STREAM_INTERVAL = 0.1  # seconds between the words of a streamed answer


def make_app(delay: float, stream_interval: float = STREAM_INTERVAL) -> web.Application:
    """The chat-completions route: echo after ``delay`` seconds; a streamed echo comes
    word by word, ``stream_interval`` seconds apart (as a model writes: an answer that
    took no time at all would be posted whole, never streamed)."""
    names = FakeOpenAI()  # only consulted for the model name a reply carries

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        decoded: Any = json.loads(body)
        recorded = RecordedRequest(
            request.method, request.path, CIMultiDictProxy(CIMultiDict()), body, decoded
        )
        if delay:
            await asyncio.sleep(delay)
        said = next(
            (str(m.get("content")) for m in reversed(recorded.messages) if m["role"] == "user"),
            "",
        )
        content = f"echo: {said}"
        prompt = sum(3 + len(str(m.get("content") or "").split()) for m in recorded.messages)
        usage = (prompt + 3, len(content.split()))
        if decoded.get("stream") and stream_interval:
            words = [f" {w}" if i else w for i, w in enumerate(content.split(" "))]
            respond = stream(words, usage=usage, interval=stream_interval)
        else:
            respond = completion(content, usage=usage)
        return await respond(request, recorded, names)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _serve(delay: float) -> None:
    runner = web.AppRunner(make_app(delay), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=BACKLOG)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f"http://127.0.0.1:{port}/v1\n")
    sys.stdout.flush()
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await runner.cleanup()


def main() -> None:
    """Run the server until stdin closes (on ``$BOTKIT_BENCH_CPU``, if set)."""
    pin()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(_serve(args.delay))


if __name__ == "__main__":
    main()
