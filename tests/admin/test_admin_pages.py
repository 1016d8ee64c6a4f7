"""What the operations page shows: conversations (keyset pages, search), one conversation
with its calls and cost, spend as `botkit usage` counts it, what needs a person, work."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from botkit.cli import main
from botkit.store import nanos
from botkit.store.models import Base
from tests.admin import seed
from tests.admin.conftest import AdminSite


def conversation_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-conversation="(\d+)"', page)]


def older_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)">older →</a>', page)
    return html.unescape(found.group(1)) if found else None


async def test_conversations_are_listed_newest_first_in_keyset_pages(any_site: AdminSite) -> None:
    site = any_site
    ids = await seed.conversations(site.bot.database, 120)
    await site.login()
    status, first = await site.get("/admin/conversations")
    assert status == 200
    assert conversation_ids(first) == ids[::-1][:50]
    link = older_link(first)
    assert link == f"/admin/conversations?before={ids[70]}"
    # a conversation started meanwhile shifts nothing: the next page is keyed by id
    await seed.conversations(site.bot.database, 1, start=500)
    _, second = await site.get(link)
    assert conversation_ids(second) == ids[::-1][50:100]
    second_link = older_link(second)
    assert second_link is not None
    _, third = await site.get(second_link)
    assert conversation_ids(third) == ids[::-1][100:]
    assert older_link(third) is None
    assert "← newest" in third


async def test_conversations_are_searched_by_user_and_by_text(any_site: AdminSite) -> None:
    site = any_site
    ids = await seed.conversations(site.bot.database, 30)
    await seed.messages(
        site.bot.database,
        [
            seed.message(ids[3], "Where is my REFUND?", sender="alice"),
            seed.message(ids[3], "It is on its way.", direction="out", status="delivered"),
            seed.message(ids[7], "refund please, 100% of it", sender="bob_smith"),
            seed.message(ids[9], "hello", sender="alice"),
        ],
    )
    await site.login()
    _, page = await site.get("/admin/conversations", q="refund")
    assert conversation_ids(page) == [ids[7], ids[3]]
    _, page = await site.get("/admin/conversations", user="ALICE")
    assert conversation_ids(page) == [ids[9], ids[3]]
    _, page = await site.get("/admin/conversations", user="alice", q="refund")
    assert conversation_ids(page) == [ids[3]]
    _, page = await site.get("/admin/conversations", user="user-12")  # a sender id
    assert conversation_ids(page) == [ids[11]]
    # LIKE's wildcards are searched for as themselves
    _, page = await site.get("/admin/conversations", q="100%")
    assert conversation_ids(page) == [ids[7]]
    _, page = await site.get("/admin/conversations", user="bob_")
    assert conversation_ids(page) == [ids[7]]
    _, page = await site.get("/admin/conversations", q="%")
    assert conversation_ids(page) == [ids[7]]
    _, page = await site.get("/admin/conversations", q="nobody wrote this")
    assert conversation_ids(page) == []
    assert "No conversation matches." in page
    status, _ = await site.get("/admin/conversations", before="x")
    assert status == 400


async def test_conversations_are_filtered_by_channel(any_site: AdminSite) -> None:
    site = any_site
    mail = await seed.conversations(site.bot.database, 2, channel="email")
    chat = await seed.conversations(site.bot.database, 2, channel="slack", start=10)
    await site.login()
    _, page = await site.get("/admin/conversations", channel="email")
    assert conversation_ids(page) == mail[::-1]
    assert '<option value="slack">slack</option>' in page
    _, page = await site.get("/admin/conversations")
    assert conversation_ids(page) == [*chat[::-1], *mail[::-1]]


async def test_a_conversation_shows_its_messages_statuses_calls_tokens_and_cost(
    any_site: AdminSite,
) -> None:
    site = any_site
    site.model.reply("Paris, of course.", usage=(1200, 300))
    await site.channel.exchange("Capital of France?", user="u42", name="Marie")
    [cid] = await seed_ids(site, "conversations")
    [inbound_id] = await seed_ids(site, "messages", direction="in")
    await seed.calls(
        site.bot.database,
        [
            seed.call(conversation_id=cid, message_id=inbound_id, estimated=True, cost_nanos=7),
            seed.call(conversation_id=cid, message_id=None, model="unpriced", cost_nanos=None),
        ],
    )
    await site.login()
    status, page = await site.get(f"/admin/conversations/{cid}")
    assert status == 200
    assert "Capital of France?" in page
    assert "Paris, of course." in page
    assert "Marie" in page
    assert '<span class="status st-done">done</span>' in page
    assert '<span class="status st-delivered">delivered</span>' in page
    # 1200 prompt tokens at $0.01/1K + 300 at $0.03/1K = $0.021, plus the seeded 7 nanos
    assert 'chat · gpt-test · 1200 + 300 tokens · <span class="cost">$0.021000</span>' in page
    assert '100 + 20 tokens <span class="est" title="counted by botkit">(estimated)</span>' in page
    assert '<td class="cost total">$0.021000</td>' in page  # 21,000,007 nanos shown rounded
    assert "1 call(s) estimated" in page
    assert "1 call(s) unpriced" in page
    assert "Calls tied to no message" in page
    assert "unpriced" in page
    _, listed = await site.get("/admin/conversations")
    assert '<td class="num cost">$0.021000</td>' in listed
    status, _ = await site.get("/admin/conversations/999999")
    assert status == 404


async def test_a_long_conversation_is_shown_a_page_of_messages_at_a_time(
    any_site: AdminSite,
) -> None:
    site = any_site
    [cid] = await seed.conversations(site.bot.database, 1)
    await seed.messages(site.bot.database, [seed.message(cid, f"turn {n}") for n in range(1, 150)])
    await site.login()
    _, page = await site.get(f"/admin/conversations/{cid}")
    assert "turn 149" in page
    assert "turn 50<" in page
    assert "turn 49<" not in page
    found = re.search(r'<a href="([^"]+)">← older</a>', page)
    assert found is not None
    _, older = await site.get(html.unescape(found.group(1)))
    assert "turn 49<" in older
    assert "turn 50<" not in older
    assert "← older" not in older


async def test_markup_in_messages_and_names_is_shown_as_text(any_site: AdminSite) -> None:
    site = any_site
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    site.model.reply(f"Here: {evil}")
    await site.channel.exchange(evil, user='"><b>u</b>', name='<i onmouseover="x">n</i>')
    await site.login()
    [cid] = await seed_ids(site, "conversations")
    for path in ["/admin/conversations", f"/admin/conversations/{cid}", "/admin/work"]:
        status, page = await site.get(path)
        assert status == 200
        assert "<script>" not in page
        assert "<img" not in page
        assert "<i onmouseover" not in page
    _, page = await site.get(f"/admin/conversations/{cid}")
    assert html.escape(evil) in page
    assert f"Here: {html.escape(evil)}" in page
    _, page = await site.get("/admin/conversations", q='<script>alert("x")')
    assert conversation_ids(page) == [cid]
    assert 'value="&lt;script&gt;alert(&quot;x&quot;)"' in page


@pytest.mark.parametrize("by", ["model", "channel", "user"])
async def test_spend_shows_the_same_figures_as_botkit_usage(
    any_site: AdminSite, by: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = any_site
    await seed.calls(
        site.bot.database,
        [
            seed.call(days_ago=0, model="gpt-4o", cost_nanos=2_500_000),
            seed.call(days_ago=0, model="gpt-4o", user="u2", cost_nanos=1_000_000),
            seed.call(days_ago=0, model="gpt-4o-mini", channel="slack", cost_nanos=300),
            seed.call(days_ago=1, model="gpt-4o", channel=None, user=None, cost_nanos=None),
            seed.call(days_ago=3, model="gpt-4o-mini", estimated=True),
            seed.call(days_ago=12, model="o1", channel="email", cost_nanos=99_000_000),
            seed.call(days_ago=40, model="gpt-4o", cost_nanos=5),  # older than 30 days
        ],
    )
    await site.login()
    status, page = await site.get("/admin/spend", by=by)
    assert status == 200
    shown = {
        (day, html.unescape(key)): (int(calls), int(cost), int(p), int(o))
        for day, key, calls, cost, p, o in re.findall(
            r'<tr class="spend" data-day="([^"]*)" data-key="([^"]*)" data-calls="(\d+)" '
            r'data-cost-nanos="(\d+)" data-prompt="(\d+)" data-completion="(\d+)">',
            page,
        )
    }
    config = tmp_path / "usage.toml"
    config.write_text(f"[database]\nurl = {json.dumps(site.bot.database.url)}\n")
    assert await asyncio.to_thread(main, ["-c", str(config), "usage", "--json"]) == 0
    usage = json.loads(capsys.readouterr().out)
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in usage:
        figures = expected[(row["day"], row[by] or "")]
        figures[0] += row["calls"]
        figures[1] += nanos(Decimal(row["cost_usd"])) or 0
        figures[2] += row["prompt_tokens"]
        figures[3] += row["completion_tokens"]
    assert shown == {key: tuple(figures) for key, figures in expected.items()}
    assert len(shown) >= 4
    # the bars draw the same figures
    drawn: dict[str, int] = defaultdict(int)
    for day, value in re.findall(r'<rect [^>]*data-day="([^"]+)"[^>]*data-value="(\d+)"', page):
        drawn[day] += int(value)
    per_day: dict[str, int] = defaultdict(int)
    for (day, _), (_, cost, _, _) in shown.items():
        per_day[day] += cost
    assert {d: v for d, v in per_day.items() if v} == dict(drawn)
    assert "<svg" in page
    total = sum(cost for _, cost, _, _ in shown.values())
    assert f'<strong class="total">${Decimal(total) / 10**9:.6f}</strong>' in page


async def test_spend_can_be_drawn_in_tokens_or_calls_over_other_spans(site: AdminSite) -> None:
    await seed.calls(
        site.bot.database,
        [seed.call(days_ago=0, prompt=10, completion=5), seed.call(days_ago=50)],
    )
    await site.login()
    _, page = await site.get("/admin/spend", metric="tokens", days="7")
    assert re.search(r'<rect [^>]*data-value="15"', page)
    assert page.count('<tr class="spend"') == 1
    _, page = await site.get("/admin/spend", metric="calls", days="90")
    assert page.count('<tr class="spend"') == 2
    _, page = await site.get("/admin/spend", days="366")
    assert page.count('<tr class="spend"') == 2
    # drawn in the page: nothing to fetch (the SVG namespace is a name, not a request)
    assert not re.search(r"<(script|link|img|iframe)\b|\bsrc=|url\(", page)
    for bad in [
        {"days": "0"},
        {"days": "367"},
        {"days": "abc"},
        {"by": "planet"},
        {"metric": "joy"},
    ]:
        status, _ = await site.get("/admin/spend", **bad)
        assert status == 400, bad


async def test_the_chart_draws_the_biggest_series_apart_and_the_rest_together(
    site: AdminSite,
) -> None:
    await seed.calls(
        site.bot.database,
        [seed.call(model=f"model-{n}", cost_nanos=(n + 1) * 1000) for n in range(10)],
    )
    await site.login()
    _, page = await site.get("/admin/spend")
    keys = re.findall(r'<rect [^>]*data-key="([^"]+)"', page)
    assert keys == [*(f"model-{n}" for n in range(9, 2, -1)), "(other)"]
    assert re.search(r'data-key="\(other\)" data-value="6000"', page)  # 1000 + 2000 + 3000


async def seed_ids(site: AdminSite, table: str, **where: str) -> list[int]:
    """The ids of the rows of ``table`` (matching ``where``), in order."""
    rows = Base.metadata.tables[table]
    query = select(rows.c.id).where(*(rows.c[k] == v for k, v in where.items()))
    return await site.bot.database.read(
        lambda conn: [int(i) for i in conn.execute(query.order_by(rows.c.id)).scalars()]
    )
