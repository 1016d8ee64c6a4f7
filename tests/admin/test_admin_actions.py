"""What needs a person, and the two actions: retry a failed reply, release held spam;
and the work each process holds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from botkit import ConversationRef, Message, RequestRejectedError, Sender
from botkit.store.models import Base
from botkit_chat import plugin as chat
from botkit_spam import plugin as spam
from tests.admin import seed
from tests.admin.conftest import AdminSite, running_site

SPAM = (
    "EARN $500 PER DAY!!! Click here for a FREE prize http://a.xyz/1 http://b.xyz/2 http://c.xyz/3"
)


@pytest.fixture
async def spam_site(database_url: str) -> AsyncIterator[AdminSite]:
    """The operations page of a bot whose spam filter runs before the chat skill."""
    async with running_site(database_url, plugins=[spam, chat]) as found:
        yield found


async def failed_reply(site: AdminSite, text: str = "hello") -> int:
    """A reply the channel refused for good; returns its id."""
    site.channel.fail_sends(RequestRejectedError("test", "chat not found"))
    await site.channel.exchange(text)
    rows = await site.bot.store.history.messages(list(range(1, 100)))
    [reply] = [m for m in rows if m.direction == "out" and m.status == "failed"]
    return reply.id


async def until_sent(site: AdminSite, count: int) -> None:
    """Wait until the channel has received ``count`` messages and the last is recorded."""
    async with asyncio.timeout(10):
        while True:  # polls the store: nothing signals a delivery being recorded
            last = await site.bot.store.history.messages([await last_reply(site)])
            if len(site.channel.sent) >= count and last[0].status == "delivered":
                return
            await asyncio.sleep(0.02)


async def last_reply(site: AdminSite) -> int:
    rows = await site.bot.store.history.messages(list(range(1, 100)))
    return max(m.id for m in rows if m.direction == "out")


def section(page: str, css: str) -> str:
    found = re.search(rf'<section class="{css}">(.*?)</section>', page, re.S)
    assert found is not None, css
    return found.group(1)


async def test_a_failed_reply_is_listed_with_its_reason_and_retried_through_the_outbox(
    any_site: AdminSite,
) -> None:
    site = any_site
    reply_id = await failed_reply(site)
    assert site.channel.sent == []
    await site.login()
    _, page = await site.get("/admin/attention")
    failed = section(page, "failed-replies")
    assert '<span class="count">1</span>' in failed
    assert "chat not found" in failed
    assert f'action="/admin/replies/{reply_id}/retry"' in failed
    csrf = await site.csrf()
    status, location, _ = await site.post(
        f"/admin/replies/{reply_id}/retry", {"csrf": csrf, "back": "/admin/attention"}
    )
    assert (status, location) == (303, f"/admin/attention?done=retried&id={reply_id}")
    await until_sent(site, 1)
    assert site.channel.sent[0].text == "echo: hello"
    [row] = await site.bot.store.history.messages([reply_id])
    assert row.status == "delivered"
    _, page = await site.get(location)
    assert f"Reply {reply_id} was set back to pending" in page
    assert '<span class="count">0</span>' in section(page, "failed-replies")
    # a second press changes nothing and sends nothing more
    status, location, _ = await site.post(f"/admin/replies/{reply_id}/retry", {"csrf": csrf})
    assert location == f"/admin/attention?done=not-failed&id={reply_id}"
    await asyncio.sleep(0.1)
    assert len(site.channel.sent) == 1


async def test_a_reply_retried_from_its_conversation_returns_there(site: AdminSite) -> None:
    reply_id = await failed_reply(site)
    [row] = await site.bot.store.history.messages([reply_id])
    await site.login()
    _, page = await site.get(f"/admin/conversations/{row.conversation_id}")
    assert f'action="/admin/replies/{reply_id}/retry"' in page
    csrf = await site.csrf()
    back = f"/admin/conversations/{row.conversation_id}"
    _, location, _ = await site.post(
        f"/admin/replies/{reply_id}/retry", {"csrf": csrf, "back": back}
    )
    assert location == f"{back}?done=retried&id={reply_id}"
    await until_sent(site, 1)
    _, page = await site.get(location)
    assert '<span class="status st-delivered">delivered</span>' in page


async def test_held_spam_is_listed_with_its_reason_and_released_as_the_plugin_does(
    spam_site: AdminSite,
) -> None:
    site = spam_site
    assert await site.channel.exchange(SPAM, user="stranger") == []
    ok = await site.channel.exchange("what time is it?")
    assert ok == ["echo: what time is it?"]
    rows = await site.bot.store.history.messages(list(range(1, 100)))
    [held] = [m for m in rows if m.meta.get("spam") is True]
    [fine] = [m for m in rows if m.direction == "in" and m.id != held.id]
    await site.login()
    _, page = await site.get("/admin/attention")
    listed = section(page, "held-spam")
    assert '<span class="count">1</span>' in listed
    assert "3 links" in listed
    assert f'action="/admin/messages/{held.id}/release"' in listed
    csrf = await site.csrf()
    status, location, _ = await site.post(f"/admin/messages/{held.id}/release", {"csrf": csrf})
    assert (status, location) == (303, f"/admin/attention?done=released&id={held.id}")
    await until_sent(site, 2)
    assert site.channel.sent[-1].text == f"echo: {SPAM}"
    [released] = await site.bot.store.history.messages([held.id])
    assert released.status == "done"
    assert released.meta["spam_released"] is True
    assert released.meta["spam_released_by"] == "operations page"
    _, page = await site.get(location)
    assert f"Message {held.id} was released" in page
    assert '<span class="count">0</span>' in section(page, "held-spam")
    for message_id, code in [
        (held.id, "released-already"),
        (fine.id, "not-held"),
        (9999, "not-held"),
    ]:
        _, location, _ = await site.post(f"/admin/messages/{message_id}/release", {"csrf": csrf})
        assert location == f"/admin/attention?done={code}&id={message_id}"
    await asyncio.sleep(0.1)
    assert len(site.channel.sent) == 2


async def test_mail_skipped_at_intake_and_failed_answers_are_listed_with_their_reasons(
    any_site: AdminSite,
) -> None:
    site = any_site
    await site.channel.deliver(
        Message(
            conversation=ConversationRef("test", "mailbox"),
            sender=Sender("noreply@example.com", "No Reply"),
            text="Out of office until Monday",
            external_id="<auto@example.com>",
        ),
        skip="auto-submitted: auto-replied (RFC 3834)",
    )
    site.model.fail(RequestRejectedError("llm", "model not found", status=404))
    await site.channel.exchange("are you there?")
    await site.login()
    _, page = await site.get("/admin/attention")
    skipped = section(page, "skipped")
    assert "auto-submitted: auto-replied (RFC 3834)" in skipped
    assert "Out of office until Monday" in skipped
    assert "No Reply" in skipped
    failed = section(page, "failed-messages")
    assert "are you there?" in failed
    assert "model not found" in failed
    assert '<span class="count">0</span>' in section(page, "failed-replies")


async def test_an_action_notice_says_only_what_botkit_wrote(site: AdminSite) -> None:
    await site.login()
    _, page = await site.get("/admin/attention", done="retried", id="7")
    assert "Reply 7 was set back to pending" in page
    for params in [{"done": "<b>hacked</b>", "id": "7"}, {"done": "retried", "id": "<b>"}]:
        _, page = await site.get("/admin/attention", **params)
        assert 'class="notice"' not in page
        assert "<b>" not in page


async def test_work_shows_pending_and_claimed_work_per_process_and_the_leases(
    any_site: AdminSite,
) -> None:
    site = any_site
    [cid] = await seed.conversations(site.bot.database, 1, channel="gone")
    later = seed.NOW + timedelta(hours=1)
    lapsed = seed.NOW - timedelta(minutes=5)
    held: dict[str, Any] = {"channel": "gone", "claimed_until": later}
    # replies not due before an hour from now: no sweep of the running bot touches them
    await seed.messages(
        site.bot.database,
        [
            seed.message(cid, "a", status="processing", claimed_by="host-a:1", **held),
            seed.message(cid, "b", status="pending", claimed_by="host-a:1", **held),
            seed.message(cid, "c", status="pending", claimed_by="host-a:1", **held),
            seed.message(
                cid, "d", direction="out", status="sending", channel="gone",
                claimed_by="host-b:2", claimed_until=lapsed, next_attempt_at=later,
            ),
            seed.message(
                cid, "e", direction="out", status="pending", channel="gone", next_attempt_at=later
            ),
        ],
    )  # fmt: skip
    leases = Base.metadata.tables["leases"]
    await site.bot.database.write(
        lambda conn: conn.execute(
            insert(leases),
            [{"name": "telegram:poller", "holder": "host-b:2", "token": 3, "until": later}],
        )
    )
    await site.login()
    _, page = await site.get("/admin/work")
    rows = [
        re.sub(r"<[^>]+>", "|", row)
        for row in re.findall(r'<tr class="work">(.*?)</tr>', page, re.S)
    ]
    assert any("host-a:1||inbound||pending||2|" in r and "|live|" in r for r in rows), rows
    assert any("host-a:1||inbound||processing||1|" in r for r in rows), rows
    assert any("host-b:2||reply||sending||1|" in r and "|lapsed|" in r for r in rows), rows
    assert any("nobody (unclaimed)||reply||pending||1|" in r for r in rows), rows
    assert "telegram:poller" in page
    assert later.strftime("%Y-%m-%d %H:%M:%S UTC") in page


async def test_a_database_that_fails_is_a_503_page_not_a_traceback(site: AdminSite) -> None:
    await site.login()
    await site.bot.database.write(lambda conn: conn.exec_driver_sql("DROP TABLE leases"))
    status, page = await site.get("/admin/work")
    assert status == 503
    assert "The database failed: could not list leases" in page
    assert "Traceback" not in page
