"""The chat page, its visitor cookie, and the cookie's secret."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from botkit import ConfigError
from botkit.bot import build_adapters
from botkit.config import parse_config
from botkit_web import WebChatSettings
from tests.adapters.web.support import next_frame, visitor_cookie, wait_for_reply, web_chat

SECRET = "s" * 40


async def test_the_page_is_self_contained_and_runs_only_its_own_script(tmp_path: Path) -> None:
    settings = WebChatSettings(title="Ask <Bob>")
    async with web_chat(f"sqlite:///{tmp_path}/bot.db", settings=settings) as chat:
        response = await chat.page()
        page = await response.text()
    assert response.status == 200
    assert response.content_type == "text/html"
    policy = response.headers["Content-Security-Policy"]
    [nonce] = re.findall(r"script-src 'nonce-([^']+)'", policy)
    assert f'<script nonce="{nonce}">' in page
    assert page.count("<script") == 1
    assert "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "<title>Ask &lt;Bob&gt;</title>" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from elsewhere
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_visitor_cookie_is_signed_http_only_and_same_site_lax(tmp_path: Path) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db") as chat:
        first = await chat.page()
        again = await chat.page()
    header = first.headers["Set-Cookie"]
    assert re.match(r"botkit_web=[A-Za-z0-9_-]{24}\.[A-Za-z0-9_-]{43};", header)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "SameSite=Lax" in header
    assert "Path=/chat" in header
    assert "Secure" not in header  # plain http here; set when the request came over https
    assert "Set-Cookie" not in again.headers  # a visitor keeps the id they have


async def test_root_redirects_to_the_page_unless_told_not_to(tmp_path: Path) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db") as chat:
        root = await chat.session.get(chat.base + "/", allow_redirects=False)
        slash = await chat.session.get(chat.base + "/chat/", allow_redirects=False)
        other = await chat.session.get(chat.base + "/nothing-here")
    assert (root.status, root.headers["Location"]) == (302, "/chat")
    assert (slash.status, slash.headers["Location"]) == (302, "/chat")
    assert other.status == 404
    settings = WebChatSettings(path="/talk", redirect_root=False)
    async with web_chat(f"sqlite:///{tmp_path}/bot2.db", settings=settings) as chat:
        assert (await chat.session.get(chat.base + "/")).status == 404
        assert (await chat.session.get(chat.base + "/talk")).status == 200


async def test_a_forged_cookie_makes_a_new_visitor_who_sees_nothing_of_anyone_else(
    tmp_path: Path,
) -> None:
    async with web_chat(f"sqlite:///{tmp_path}/bot.db") as chat:
        await chat.page()
        real = visitor_cookie(chat.session)
        visitor, _, signature = real.partition(".")
        async with await chat.connect() as ws:
            await next_frame(ws)
            await ws.send_json({"type": "message", "id": "secret", "text": "my secret"})
        await wait_for_reply(chat.bot, visitor)
        # one character of the signature changed (to another one: not "A" when it is)
        changed = f"{visitor}.{signature[:-1]}{'B' if signature.endswith('A') else 'A'}"
        for forged in (changed, visitor, f"{visitor}.", "junk", ""):
            sent = {"Cookie": f"botkit_web={forged}"}
            async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as mallory:
                page = await mallory.get(chat.base + "/chat", headers=sent)
                assert page.status == 200  # never an error page
                issued = page.cookies["botkit_web"].value  # a new visitor's cookie
                assert issued.split(".")[0] != visitor
                # a socket opened with the forged cookie is a new visitor's too
                ws = await mallory.ws_connect(
                    chat.base + "/chat/ws", headers={**sent, "Origin": chat.base}
                )
                assert await next_frame(ws) == {"type": "history", "messages": []}
                await ws.close()


async def test_the_conversation_survives_a_restart_with_the_secret_kept_in_the_database(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        async with web_chat(url, session=browser) as chat:
            await chat.page()
            visitor = visitor_cookie(browser).split(".")[0]
            async with await chat.connect() as ws:
                await next_frame(ws)
                await ws.send_json({"type": "message", "id": "m1", "text": "remember me"})
            await wait_for_reply(chat.bot, visitor)
        async with web_chat(url, session=browser) as chat:  # a new process, the same database
            again = await chat.page()
            async with await chat.connect() as ws:
                history = await next_frame(ws)
        assert "Set-Cookie" not in again.headers
        assert [m["id"] for m in history["messages"]][:1] == ["u-m1"]
        # another database has another secret: the cookie is not its visitor's
        async with web_chat(f"sqlite:///{tmp_path}/other.db", session=browser) as chat:
            assert "Set-Cookie" in (await chat.page()).headers


async def test_a_secret_from_the_environment_signs_cookies_whatever_the_database(
    tmp_path: Path,
) -> None:
    environ = {"BOTKIT_WEB_SECRET": SECRET}
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as browser:
        settings = _parsed({}, environ)
        async with web_chat(
            f"sqlite:///{tmp_path}/a.db", settings=settings, session=browser
        ) as chat:
            await chat.page()
            assert await chat.bot.store.state("adapter:web").get("cookie_secret") is None
        async with web_chat(
            f"sqlite:///{tmp_path}/b.db", settings=settings, session=browser
        ) as chat:
            assert "Set-Cookie" not in (await chat.page()).headers


def _parsed(table: dict[str, object], environ: dict[str, str]) -> WebChatSettings:
    config = parse_config(
        {"adapters": {"web": {"use": "botkit_web:WebChatAdapter", **table}}}, environ=environ
    )
    [adapter] = build_adapters(config).values()
    settings = adapter.settings  # type: ignore[attr-defined]
    assert isinstance(settings, WebChatSettings)
    return settings


@pytest.mark.parametrize(
    ("table", "environ", "key", "problem"),
    [
        ({"path": "chat"}, {}, "adapters.web.path", "must be a path like '/chat'"),
        ({"path": "/chat/"}, {}, "adapters.web.path", "no trailing '/'"),
        ({"path": "/a b"}, {}, "adapters.web.path", "must be a path"),
        ({"max_message_chars": 0}, {}, "adapters.web.max_message_chars", "at least 1"),
        ({"max_connections_per_visitor": 0}, {},
         "adapters.web.max_connections_per_visitor", "at least 1"),
        ({"allowed_origins": ["chat.example.com"]}, {},
         "adapters.web.allowed_origins", "is not an origin"),
        ({}, {"BOTKIT_WEB_SECRET": "short"}, "adapters.web.secret", "at least 32 characters"),
        ({"secret": "in the file"}, {}, "adapters.web.secret", "secrets are not written"),
    ],
)  # fmt: skip
def test_bad_settings_name_the_key(
    table: dict[str, object], environ: dict[str, str], key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _parsed(table, environ)
    assert caught.value.key == key
    assert problem in str(caught.value)
    assert all(secret not in str(caught.value) for secret in environ.values())
