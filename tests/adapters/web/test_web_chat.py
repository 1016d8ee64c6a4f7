"""The web chat over its socket: a real bot, botkit's web server, an aiohttp client."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import aiohttp
import pytest

from botkit import ConversationRef
from botkit_web import WebChatSettings
from tests.adapters.web.support import (
    Frame,
    frames_until,
    next_frame,
    slow_words_plugin,
    visitor_cookie,
    wait_for_reply,
    web_chat,
)
from tests.fakes.openai_server import FakeOpenAI, completion

STAND_IN = "[stand-in model, not a real LLM] You said: "


def _accepted(message_id: str) -> Callable[[Frame], bool]:
    return lambda f: f == {"type": "accepted", "id": message_id}


def _is_final(text: str) -> Callable[[Frame], bool]:
    """A reply frame showing ``text``."""
    return lambda f: f.get("type") == "message" and f.get("role") == "bot" and text in f["html"]


async def test_a_message_is_acknowledged_once_stored_and_answered_by_the_stand_in(
    database_url: str,
) -> None:
    async with web_chat(database_url) as chat:
        await chat.page()
        visitor = visitor_cookie(chat.session).split(".")[0]
        async with await chat.connect() as ws:
            assert await next_frame(ws) == {"type": "history", "messages": []}
            await ws.send_json({"type": "message", "id": "m1", "text": "hello there"})
            await frames_until(ws, _accepted("m1"))
            # acknowledged only after the inbox stored it
            rows = await chat.bot.inbox.transcript(ConversationRef("web", visitor), limit=10)
            assert [(r.direction, r.text, r.external_id) for r in rows][:1] == [
                ("in", "hello there", f"{visitor}:m1")
            ]
            frames = await frames_until(ws, _is_final(f"{STAND_IN}hello there"))
        rows = await wait_for_reply(chat.bot, visitor)
    reply = [r for r in rows if r.direction == "out"]
    assert [r.text for r in reply] == [f"{STAND_IN}hello there"]
    assert {f["id"] for f in frames if f["type"] == "message"} == {f"b-{reply[0].external_id}"}


async def test_a_streamed_answer_is_one_message_edited_as_it_grows(tmp_path: object) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", plugins=[slow_words_plugin()]) as chat:
        await chat.page()
        async with await chat.connect() as ws:
            await next_frame(ws)
            await ws.send_json({"type": "message", "id": "m1", "text": "one two three four"})
            frames = await frames_until(ws, _is_final("you wrote one two three four"))
    shown = [f for f in frames if f["type"] == "message"]
    assert len({f["id"] for f in shown}) == 1  # one message...
    htmls = [f["html"] for f in shown]
    assert len(htmls) >= 3  # ...shown again and again as the answer grew
    assert all(len(a) < len(b) for a, b in itertools.pairwise(htmls))
    assert htmls[-1] == "<p>you wrote one two three four</p>"


async def test_a_reload_shows_the_conversation_so_far(database_url: str) -> None:
    async with web_chat(database_url) as chat:
        await chat.page()
        visitor = visitor_cookie(chat.session).split(".")[0]
        async with await chat.connect() as ws:
            await next_frame(ws)
            for n, text in enumerate(["first", "**second**"]):
                await ws.send_json({"type": "message", "id": f"m{n}", "text": text})
                await wait_for_reply(chat.bot, visitor, count=n + 1)
        await chat.page()  # the reload: same cookie, so the same conversation
        async with await chat.connect() as ws:
            history = await next_frame(ws)
    assert history["type"] == "history"
    messages = history["messages"]
    assert [(m["role"], m["id"][:2]) for m in messages] == [
        ("user", "u-"), ("bot", "b-"), ("user", "u-"), ("bot", "b-"),
    ]  # fmt: skip
    assert [m["id"] for m in messages if m["role"] == "user"] == ["u-m0", "u-m1"]
    assert messages[2]["text"] == "**second**"  # a person's text stays text
    assert messages[3]["html"] == f"<p>{STAND_IN}<strong>second</strong></p>"


async def test_a_reply_sent_while_no_page_is_open_is_delivered_and_shown_on_the_next_load(
    tmp_path: object,
) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", plugins=[slow_words_plugin()]) as chat:
        await chat.page()
        visitor = visitor_cookie(chat.session).split(".")[0]
        async with await chat.connect() as ws:
            await next_frame(ws)
            await ws.send_json({"type": "message", "id": "gone", "text": "answer me later"})
            await frames_until(ws, _accepted("gone"))
        # the page closed before the answer began: the reply is delivered all the same
        rows = await wait_for_reply(chat.bot, visitor)
        async with await chat.connect() as ws:
            history = await next_frame(ws)
    [reply] = [r for r in rows if r.direction == "out"]
    assert reply.status == "delivered"
    assert history["messages"][-1] == {
        "type": "message",
        "id": f"b-{reply.external_id}",
        "role": "bot",
        "html": "<p>you wrote answer me later</p>",
    }


async def test_a_page_opened_mid_answer_shows_it_so_far_then_growing(tmp_path: object) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", plugins=[slow_words_plugin(0.3)]) as chat:
        await chat.page()
        async with await chat.connect() as first:
            await next_frame(first)
            await first.send_json({"type": "message", "id": "m1", "text": "a b c d e f"})
            await frames_until(first, lambda f: "you wrote a b" in f.get("html", ""))
            async with await chat.connect() as second:  # a reload while the answer grows
                history = await next_frame(second)
                [user, bot] = history["messages"]
                assert user["text"] == "a b c d e f"
                assert bot["html"].startswith("<p>you wrote a b")
                assert "a b c d e f</p>" not in bot["html"]
                later = await frames_until(second, _is_final("you wrote a b c d e f"))
    assert {f["id"] for f in later if f["type"] == "message"} == {bot["id"]}


async def test_every_open_page_of_the_visitor_sees_the_message_and_the_answer(
    tmp_path: object,
) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", plugins=[slow_words_plugin(0)]) as chat:
        await chat.page()
        async with await chat.connect() as one, await chat.connect() as two:
            await next_frame(one)
            await next_frame(two)
            await one.send_json({"type": "message", "id": "m1", "text": "both see this"})
            seen = await frames_until(two, _is_final("you wrote both see this"))
            await frames_until(one, _is_final("you wrote both see this"))
    assert seen[0] == {
        "type": "message", "id": "u-m1", "role": "user", "text": "both see this",
    }  # fmt: skip


async def test_a_message_sent_again_after_a_reconnect_is_answered_once(tmp_path: object) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", plugins=[slow_words_plugin(0)]) as chat:
        await chat.page()
        visitor = visitor_cookie(chat.session).split(".")[0]
        for _ in range(2):  # the page did not see "accepted", so it sends the message again
            async with await chat.connect() as ws:
                await next_frame(ws)
                await ws.send_json({"type": "message", "id": "same", "text": "once"})
                await frames_until(ws, _accepted("same"))
        rows = await wait_for_reply(chat.bot, visitor)
        await asyncio.sleep(0.3)
        rows = await chat.bot.inbox.transcript(ConversationRef("web", visitor), limit=10)
    assert [(r.direction, r.text) for r in rows] == [("in", "once"), ("out", "you wrote once")]


@pytest.mark.parametrize(
    ("sent", "error"),
    [
        ("not json", "frames must be JSON objects"),
        ("[1, 2]", "frames must be JSON objects"),
        ('{"type": "edit", "text": "x"}', "unknown frame type 'edit'"),
        ('{"type": "message", "id": "a b", "text": "x"}', "id must be 1-64 letters"),
        ('{"type": "message", "id": "m", "text": 5}', "text must be a string"),
        ('{"type": "message", "id": "m", "text": ""}', "the message is empty"),
        ('{"type": "message", "id": "m", "text": " \\n\\t"}', "the message is empty"),
        ('{"type": "message", "id": "m", "text": "' + "x" * 41 + '"}',
         "too long: 41 characters, at most 40"),
        ('{"type": "message", "id": "m", "text": "a\\u0000b"}', "NUL character"),
        ('{"type": "message", "id": "m", "text": "\\ud800"}', "not valid Unicode"),
    ],
)  # fmt: skip
async def test_bad_frames_get_a_clear_error_and_the_page_stays_connected(
    tmp_path: object, sent: str, error: str
) -> None:
    settings = WebChatSettings(max_message_chars=40)
    async with web_chat(
        f"sqlite:///{tmp_path}/bot.db", settings=settings, plugins=[slow_words_plugin(0)]
    ) as chat:
        await chat.page()
        visitor = visitor_cookie(chat.session).split(".")[0]
        async with await chat.connect() as ws:
            await next_frame(ws)
            await ws.send_str(sent)
            refused = await next_frame(ws)
            assert refused["type"] == "error"
            assert error in refused["error"]
            if '"id": "m"' in sent:
                assert (refused["id"], refused["retry"]) == ("m", False)
            await ws.send_json({"type": "message", "id": "ok", "text": "x" * 40})
            await frames_until(ws, _accepted("ok"))
        rows = await chat.bot.inbox.transcript(ConversationRef("web", visitor), limit=10)
    assert [r.external_id for r in rows if r.direction == "in"] == [f"{visitor}:ok"]


async def test_a_binary_frame_is_refused_with_an_error(tmp_path: object) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", plugins=[slow_words_plugin(0)]) as chat:
        await chat.page()
        async with await chat.connect() as ws:
            await next_frame(ws)
            await ws.send_bytes(b'{"type": "message", "text": "hi"}')
            assert await next_frame(ws) == {
                "type": "error", "error": "frames must be JSON text, not binary",
            }  # fmt: skip


async def test_a_visitor_may_have_only_so_many_pages_open(tmp_path: object) -> None:
    settings = WebChatSettings(max_connections_per_visitor=2)
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", settings=settings) as chat:
        await chat.page()
        async with await chat.connect() as one, await chat.connect() as two:
            await next_frame(one)
            await next_frame(two)
            async with await chat.connect() as third:
                refused = await next_frame(third)
                closed = await third.receive()
            assert "too many open chat pages (2 at most)" in refused["error"]
            assert closed.type == aiohttp.WSMsgType.CLOSE
            assert third.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
            # another visitor is not refused
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as other:
                await (await other.get(chat.base + "/chat")).read()
                ws = await other.ws_connect(chat.base + "/chat/ws", headers={"Origin": chat.base})
                assert (await next_frame(ws))["type"] == "history"
                await ws.close()
        # once a page closed, another may open
        async with await chat.connect() as again:
            assert (await next_frame(again))["type"] == "history"


async def test_the_chat_as_a_whole_takes_only_so_many_pages(tmp_path: object) -> None:
    settings = WebChatSettings(max_connections=1)
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", settings=settings) as chat:
        await chat.page()
        async with await chat.connect() as one:
            await next_frame(one)
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
                await (await other.get(chat.base + "/chat")).read()
                ws = await other.ws_connect(chat.base + "/chat/ws")
                refused = await next_frame(ws)
                await ws.close()
    assert refused["error"] == "the chat is full right now; try again in a minute"


async def test_a_socket_from_another_site_is_refused(tmp_path: object) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db") as chat:
        await chat.page()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await chat.connect(Origin="https://evil.example")
        assert refused.value.status == 403
    settings = WebChatSettings(allowed_origins=("https://chat.example.com",))
    async with web_chat(f"sqlite:///{tmp_path}/bot2.db", settings=settings) as chat:
        await chat.page()
        async with await chat.connect(Origin="https://chat.example.com") as ws:
            assert (await next_frame(ws))["type"] == "history"
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await chat.connect()  # its own host is not listed


async def test_a_model_answer_with_html_reaches_the_page_escaped(
    tmp_path: object, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(completion('<script>alert(1)</script> <img src=x onerror="alert(2)">'))
    llm = {"base_url": fake_openai.url, "model": "gpt-4o-mini"}
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", llm=llm) as chat:
        await chat.page()
        async with await chat.connect() as ws:
            await next_frame(ws)
            await ws.send_json({"type": "message", "id": "m", "text": "say something nasty"})
            frames = await frames_until(ws, _is_final("onerror"))
    html = frames[-1]["html"]
    assert "<script" not in html
    assert "<img" not in html
    assert html == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt; "
        "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;</p>"
    )


async def test_while_the_bot_stops_a_message_is_refused_to_be_sent_again(
    tmp_path: object,
) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db") as chat:
        await chat.page()
        visitor = visitor_cookie(chat.session).split(".")[0]
        async with await chat.connect() as ws:
            await next_frame(ws)
            await chat.adapter.stop_intake()
            await ws.send_json({"type": "message", "id": "late", "text": "hello?"})
            refused = await next_frame(ws)
            assert (await chat.session.get(chat.base + "/chat")).status == 503
        rows = await chat.bot.inbox.transcript(ConversationRef("web", visitor), limit=10)
    assert refused == {
        "type": "error",
        "error": "the bot is restarting; sent again when back",
        "id": "late",
        "retry": True,
    }
    assert rows == []


async def test_stopping_the_bot_closes_the_open_pages(tmp_path: object) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db") as chat:
        await chat.page()
        ws = await chat.connect()
        await next_frame(ws)
        await chat.bot.stop()
        closed = await asyncio.wait_for(ws.receive(), 5)
    assert closed.type == aiohttp.WSMsgType.CLOSE
    assert (closed.data, closed.extra) == (aiohttp.WSCloseCode.GOING_AWAY, "the bot is restarting")
