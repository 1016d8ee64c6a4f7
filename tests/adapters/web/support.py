"""A real bot with the web chat on botkit's web server, and a client that talks to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from botkit import Bot, Context, ConversationRef, Message, Plugin
from botkit.testing import run_bot
from botkit_web import WebChatAdapter, WebChatSettings

Frame = dict[str, Any]


@dataclass
class Chat:
    """The bot, its web chat adapter, and a browser-like session (it keeps cookies)."""

    bot: Bot
    adapter: WebChatAdapter
    session: aiohttp.ClientSession
    base: str

    async def page(self) -> aiohttp.ClientResponse:
        """GET the chat page (which sets the visitor cookie)."""
        response = await self.session.get(self.base + "/chat")
        await response.read()
        return response

    async def connect(self, **headers: str) -> aiohttp.ClientWebSocketResponse:
        """Open the socket as the page does (from the page's own origin)."""
        sent = {"Origin": self.base, **headers}
        return await self.session.ws_connect(self.base + "/chat/ws", headers=sent)


@asynccontextmanager
async def web_chat(
    database_url: str,
    *,
    settings: WebChatSettings | None = None,
    plugins: Sequence[Plugin] | None = None,
    llm: Mapping[str, Any] | None = None,
    bot: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[Chat]:
    """Start a bot whose only channel is the web chat (the stand-in model unless ``llm``
    says otherwise), on a free port, with a cookie-keeping client session."""
    adapter = WebChatAdapter("web", settings or WebChatSettings())
    running = run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=plugins,
        environ=environ,
        model="config",
        config={"web": {"port": 0}, "llm": llm or {}, "bot": bot or {}},
    ).bot
    async with running:
        assert running.web is not None
        base = f"http://127.0.0.1:{running.web.port}"
        if session is not None:
            yield Chat(running, adapter, session, base)
            return
        jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1, as a browser does
        async with aiohttp.ClientSession(cookie_jar=jar) as own:
            yield Chat(running, adapter, own, base)


async def next_frame(ws: aiohttp.ClientWebSocketResponse) -> Frame:
    """The next frame the server sent (within 10 s), decoded."""
    received = await asyncio.wait_for(ws.receive(), 10)
    assert received.type == aiohttp.WSMsgType.TEXT, received
    frame: Frame = json.loads(received.data)
    return frame


async def frames_until(
    ws: aiohttp.ClientWebSocketResponse, done: Callable[[Frame], bool]
) -> list[Frame]:
    """Every frame up to and including the first that ``done`` accepts (within 15 s)."""
    frames: list[Frame] = []
    async with asyncio.timeout(15):
        while True:
            frame = await next_frame(ws)
            frames.append(frame)
            if done(frame):
                return frames


def slow_words_plugin(delay: float = 0.15) -> Plugin:
    """Answers every message by streaming ``"you wrote <text>"`` a word at a time."""
    plugin = Plugin("slow_words")

    async def words(text: str) -> AsyncIterator[str]:
        for i, word in enumerate(text.split()):
            await asyncio.sleep(delay)
            yield word if i == 0 else " " + word

    @plugin.on_message()
    async def stream_back(message: Message, ctx: Context) -> None:
        await ctx.stream(words(f"you wrote {message.text}"))

    return plugin


def visitor_cookie(session: aiohttp.ClientSession) -> str:
    """The visitor cookie's value the session holds."""
    found = [c.value for c in session.cookie_jar if c.key == "botkit_web"]
    assert len(found) == 1, found
    return found[0]


async def wait_for_reply(bot: Bot, visitor: str, *, count: int = 1) -> list[Any]:
    """Wait until ``count`` replies to the visitor are delivered; the transcript then."""
    async with asyncio.timeout(15):
        while True:
            rows = await bot.inbox.transcript(ConversationRef("web", visitor), limit=50)
            if sum(r.direction == "out" and r.status == "delivered" for r in rows) >= count:
                return rows
            await asyncio.sleep(0.05)
