"""Who may see /admin: off without BOTKIT_ADMIN_TOKEN, a login with the token, a signed
session cookie, CSRF on every action, and the token in no log and no page."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from botkit import ConfigError, RequestRejectedError
from botkit.admin.auth import COOKIE, Sessions, safe_next
from botkit.config import parse_config
from botkit.secrets import Secret
from botkit.testing import InMemoryChannel, run_bot
from tests.admin.conftest import TOKEN, AdminSite, start_site

PAGES = [
    "/admin",
    "/admin/",
    "/admin/conversations",
    "/admin/conversations/1",
    "/admin/spend",
    "/admin/attention",
    "/admin/work",
    "/admin/no-such-page",
]
ACTIONS = ["/admin/replies/1/retry", "/admin/messages/1/release", "/admin/logout"]


async def test_without_the_token_variable_there_is_no_admin_page(tmp_path: Path) -> None:
    bot, _, _ = await start_site(f"sqlite:///{tmp_path}/bot.db", environ={})
    try:
        assert bot.web is not None
        async with aiohttp.ClientSession() as http:
            for path in [*PAGES, "/admin/login"]:
                async with http.get(f"http://127.0.0.1:{bot.web.port}{path}") as response:
                    assert response.status == 404, path
            async with http.post(
                f"http://127.0.0.1:{bot.web.port}/admin/login", data={"token": TOKEN}
            ) as response:
                assert response.status == 404
                assert COOKIE not in response.cookies
    finally:
        await bot.stop()


async def test_the_start_log_says_where_the_page_is_or_that_web_is_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    bot, _, _ = await start_site(f"sqlite:///{tmp_path}/on.db")
    try:
        assert bot.web is not None
        assert f"operations page: http://127.0.0.1:{bot.web.port}/admin" in caplog.text
    finally:
        await bot.stop()
    off = run_bot(
        database_url=f"sqlite:///{tmp_path}/off.db",
        channels=[InMemoryChannel()],
        environ={"BOTKIT_ADMIN_TOKEN": TOKEN},
        model="config",
    ).bot
    async with off:
        assert off.web is None
    assert (
        "BOTKIT_ADMIN_TOKEN is set but [web] is not enabled: the operations page is not served"
        in caplog.text
    )
    assert TOKEN not in caplog.text


async def test_every_admin_url_without_a_session_goes_to_the_login_or_is_401(
    site: AdminSite,
) -> None:
    for path in PAGES:
        status, _ = await site.get(path)
        assert status == 302, path
    async with site.http.get(site.url("/admin/spend?by=user"), allow_redirects=False) as r:
        location = URL(r.headers["Location"])
    assert location.path == "/admin/login"
    assert location.query["next"] == "/admin/spend?by=user"
    for path in ACTIONS:
        status, _, body = await site.post(path, {"csrf": "x"})
        assert status == 401, path
        assert "log in" in body
    status, page = await site.get("/admin/login")
    assert status == 200
    assert 'type="password" name="token"' in page


async def test_a_wrong_token_is_refused_and_sets_no_cookie(site: AdminSite) -> None:
    for wrong in ["", "nope", TOKEN[:-1], TOKEN + "x", TOKEN.upper()]:
        response = await site.login(wrong)
        assert response.status == 401, wrong
        assert COOKIE not in response.cookies
    status, _ = await site.get("/admin/conversations")
    assert status == 302


async def test_the_right_token_sets_a_signed_httponly_samesite_strict_cookie(
    site: AdminSite,
) -> None:
    response = await site.login()
    assert response.status == 303
    assert response.headers["Location"] == "/admin/conversations"
    cookie = response.cookies[COOKIE]
    assert cookie["max-age"] == str(12 * 3600)
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/admin"
    assert TOKEN not in cookie.value
    for path in PAGES[:-1]:  # "/admin" redirects to the list; there is no conversation 1
        async with site.http.get(site.url(path)) as r:
            assert r.status == (404 if path == "/admin/conversations/1" else 200), path
    status, _ = await site.get("/admin/no-such-page")
    assert status == 404


async def test_after_login_the_page_asked_for_is_shown_but_never_another_site(
    site: AdminSite,
) -> None:
    async with site.http.post(
        site.url("/admin/login"),
        data={"token": TOKEN, "next": "/admin/spend?by=user"},
        allow_redirects=False,
    ) as r:
        assert r.headers["Location"] == "/admin/spend?by=user"
    for target in [
        "//evil.example/admin/",
        "https://evil.example/",
        "/admin/..//x",
        "/other",
        "/admin/x\r\nSet-Cookie: a=b",
        "/admin\\evil",
    ]:
        assert safe_next(target) == "/admin/conversations", target


async def test_a_forged_or_foreign_cookie_is_refused(site: AdminSite) -> None:
    await site.login()
    [good] = [c for c in site.http.cookie_jar if c.key == COOKIE]
    body, _, signature = good.value.rpartition(".")
    other = Sessions(Secret("another-token-another-bot-0000"))
    forged = [
        f"{body}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}",  # signature changed
        f"sessionid.{body.split('.')[1]}.{signature}",  # session id swapped
        other.new_cookie(),  # signed with another token
        "garbage",
        "",
    ]
    for value in forged:
        site.http.cookie_jar.clear()
        site.http.cookie_jar.update_cookies({COOKIE: value})
        status, _ = await site.get("/admin/conversations")
        assert status == 302, value
        status, _, _ = await site.post("/admin/logout", {"csrf": "x"})
        assert status == 401, value


def test_a_session_lapses_after_its_lifetime() -> None:
    now = [1_000_000.0]
    sessions = Sessions(Secret(TOKEN), ttl=3600, clock=lambda: now[0])
    cookie = sessions.new_cookie()
    assert sessions.read(cookie) is not None
    now[0] += 3599
    assert sessions.read(cookie) is not None
    now[0] += 2
    assert sessions.read(cookie) is None


def test_sessions_of_another_token_are_refused_and_csrf_tokens_differ_by_session() -> None:
    one, two = Sessions(Secret(TOKEN)), Sessions(Secret(TOKEN + "-rotated"))
    a, b = one.new_cookie(), one.new_cookie()
    assert two.read(a) is None
    first, second = one.read(a), one.read(b)
    assert first is not None
    assert second is not None
    assert first.csrf != second.csrf
    assert one.token_matches(TOKEN)
    assert not one.token_matches(TOKEN[:-1])
    assert not one.token_matches("")


async def test_an_action_without_the_right_csrf_token_is_403_and_changes_nothing(
    site: AdminSite,
) -> None:
    site.channel.fail_sends(RequestRejectedError("test", "chat not found"))
    await site.channel.exchange("hello")
    await site.login()
    csrf = await site.csrf()
    [(reply_id, status)] = await _replies(site)
    assert status == "failed"
    for form in [{}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": csrf[:-1]}, {"csrf": "é"}]:
        code, _, body = await site.post(f"/admin/replies/{reply_id}/retry", form)
        assert code == 403, form
        assert "CSRF" in body
    assert await _replies(site) == [(reply_id, "failed")]
    code, location, _ = await site.post(f"/admin/replies/{reply_id}/retry", {"csrf": csrf})
    assert code == 303
    assert location == f"/admin/attention?done=retried&id={reply_id}"


async def test_logging_out_ends_the_session(site: AdminSite) -> None:
    await site.login()
    csrf = await site.csrf()
    status, location, _ = await site.post("/admin/logout", {"csrf": csrf})
    assert (status, location) == (303, "/admin/login")
    status, _ = await site.get("/admin/conversations")
    assert status == 302


async def test_admin_pages_forbid_scripts_framing_and_caching(site: AdminSite) -> None:
    await site.login()
    for path in ["/admin/login", "/admin/conversations", "/admin/spend"]:
        async with site.http.get(site.url(path)) as response:
            headers = response.headers
            assert "script-src" not in headers["Content-Security-Policy"]
            assert "default-src 'none'" in headers["Content-Security-Policy"]
            assert headers["X-Frame-Options"] == "DENY"
            assert headers["Cache-Control"] == "no-store"
            assert "<script" not in await response.text()


async def test_the_token_is_in_no_log_line_and_no_page(
    site: AdminSite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await site.login("wrong-" + TOKEN)
    await site.login(TOKEN)
    await site.csrf()
    await site.post("/admin/replies/999/retry", {"csrf": "bad", "token": TOKEN})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "admin login refused" in logged
    assert "admin login from" in logged
    assert TOKEN not in logged
    assert all(TOKEN not in page for page in site.pages)


def test_a_short_admin_token_is_a_config_error_that_does_not_show_it() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({}, environ={"BOTKIT_ADMIN_TOKEN": "short-secret"})
    assert "web.admin_token" in str(caught.value)
    assert "BOTKIT_ADMIN_TOKEN must be at least 16 characters" in str(caught.value)
    assert "short-secret" not in str(caught.value)
    config = parse_config({"web": {"admin_token_env": "OPS_TOKEN"}}, environ={"OPS_TOKEN": TOKEN})
    assert config.web.admin_token is not None
    assert config.web.admin_token.reveal() == TOKEN
    assert TOKEN not in repr(config)


async def _replies(site: AdminSite) -> list[tuple[int, str]]:
    """Every reply stored, with its status."""
    rows = await site.bot.store.history.messages(list(range(1, 100)))
    return [(m.id, m.status) for m in rows if m.direction == "out"]
