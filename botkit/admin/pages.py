"""The operations page's pages, built from what :mod:`botkit.admin.queries` read.

Every value goes through :func:`botkit.admin.templates.fill`, so it is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from botkit.admin.queries import SPAM, SPAM_REASON, SPAM_RELEASED
from botkit.admin.records import (
    CallLine,
    ConversationPage,
    ConversationView,
    LeaseLine,
    MessageLine,
    WorkLine,
)
from botkit.admin.templates import Html, fill, join, link, money, post_button, query, when

__all__ = [
    "attention_page",
    "conversation_page",
    "conversations_page",
    "login_page",
    "work_page",
]

EXCERPT = 300  # characters of a message shown in lists
BACK = "/admin/attention"


def login_page(next_url: str, *, wrong: bool = False) -> Html:
    """The login form (saying the token was wrong, after a wrong one)."""
    return fill(
        '$wrong<form method="post" action="/admin/login" class="login">'
        '<input type="hidden" name="next" value="$next">'
        '<label>Admin token <input type="password" name="token" '
        'autocomplete="current-password" autofocus required></label> '
        '<button type="submit">Log in</button></form>'
        '<p class="muted">The token is the value of <code>BOTKIT_ADMIN_TOKEN</code> where '
        "the bot runs.</p>",
        wrong=fill('<p class="error">That token is not right.</p>') if wrong else Html(""),
        next=next_url,
    )


def conversations_page(
    page: ConversationPage,
    channels: Sequence[str],
    *,
    user: str,
    text: str,
    channel: str,
    before: int | None,
) -> Html:
    """The conversation list: a search form, a page of conversations, the next page's link."""
    options = join(
        fill(
            '<option value="$v"$sel>$name</option>',
            v=c,
            name=c or "every channel",
            sel=Html(" selected") if c == channel else Html(""),
        )
        for c in ["", *channels]
    )
    search = fill(
        '<form method="get" action="/admin/conversations" class="search">'
        '<input name="user" value="$user" placeholder="user id or name">'
        '<input name="q" value="$text" placeholder="text">'
        '<select name="channel">$options</select><button type="submit">Search</button></form>',
        user=user,
        text=text,
        options=options,
    )
    rows = join(
        fill(
            '<tr data-conversation="$id"><td>$idlink</td><td>$channel</td><td>$where</td>'
            '<td class="num">$messages</td><td>$last_at</td>'
            '<td><span class="muted">$sender</span> <span class="text">$excerpt</span></td>'
            '<td class="num">$calls</td><td class="num">$tokens</td>'
            '<td class="num cost">$cost</td></tr>',
            id=line.id,
            idlink=link(f"/admin/conversations/{line.id}", f"#{line.id}"),
            channel=line.channel,
            where=line.chat_id + (f" / {line.thread_id}" if line.thread_id else ""),
            messages=line.messages,
            last_at=when(line.last_at),
            sender=f"{line.last_sender}:" if line.last_sender else "",
            excerpt=line.last_text[:EXCERPT],
            calls=line.calls,
            tokens=f"{line.tokens:,}",
            cost=money(line.cost_nanos),
        )
        for line in page.lines
    )
    filters = {"user": user, "q": text, "channel": channel}
    pager = []
    if before is not None:
        pager.append(link(query("/admin/conversations", **filters), "← newest"))
    if page.next_before is not None:
        older = query("/admin/conversations", **filters, before=page.next_before)
        pager.append(link(older, "older →"))
    table = (
        fill(
            "<table><thead><tr><th>conversation</th><th>channel</th><th>chat / thread</th>"
            '<th class="num">messages</th><th>last message at</th><th>last message</th>'
            '<th class="num">model calls</th><th class="num">tokens</th>'
            '<th class="num">cost</th></tr></thead><tbody>$rows</tbody></table>',
            rows=rows,
        )
        if page.lines
        else fill('<p class="muted">No conversation matches.</p>')
    )
    return fill(
        '$search$table<p class="pager">$pager</p>',
        search=search,
        table=table,
        pager=join(pager, " "),
    )


def conversation_page(view: ConversationView, csrf: str) -> Html:
    """One conversation: its totals, then a page of its messages with their model calls."""
    line = view.line
    notes = []
    if view.estimated_calls:
        notes.append(
            f"{view.estimated_calls} call(s) estimated: the server sent no usage, so botkit "
            "counted the tokens"
        )
    if view.unpriced_calls:
        notes.append(f"{view.unpriced_calls} call(s) unpriced: the model has no price")
    summary = fill(
        '<table class="summary"><tr><th>channel</th><td>$channel</td><th>chat</th>'
        "<td>$chat</td><th>thread</th><td>$thread</td><th>started</th><td>$started</td></tr>"
        "<tr><th>messages</th><td>$messages</td><th>model calls</th><td>$calls</td>"
        '<th>tokens</th><td>$tokens</td><th>cost</th><td class="cost total">$cost</td></tr>'
        "</table>$notes",
        channel=line.channel,
        chat=line.chat_id,
        thread=line.thread_id or "",
        started=when(line.created_at),
        messages=line.messages,
        calls=line.calls,
        tokens=f"{line.tokens:,}",
        cost=money(line.cost_nanos),
        notes=join(fill('<p class="est">$n</p>', n=n) for n in notes),
    )
    older = (
        link(query(f"/admin/conversations/{line.id}", before=view.older_before), "← older")
        if view.older_before is not None
        else Html("")
    )
    rows = join(_message_row(m, view.calls.get(m.id, []), csrf) for m in view.messages)
    loose = (
        fill("<h2>Calls tied to no message</h2>$calls", calls=_calls(view.unattached))
        if view.unattached
        else Html("")
    )
    return fill(
        '$summary<p>$older</p><table class="messages"><thead><tr><th>#</th><th>at</th>'
        "<th>from</th><th>status</th><th>text</th><th>model calls</th></tr></thead>"
        "<tbody>$rows</tbody></table>$loose",
        summary=summary,
        older=older,
        rows=rows,
        loose=loose,
    )


def attention_page(
    failed_replies: tuple[list[MessageLine], int],
    held: tuple[list[MessageLine], int],
    skipped: tuple[list[MessageLine], int],
    failed_messages: tuple[list[MessageLine], int],
    csrf: str,
) -> Html:
    """Everything that waits for a person, one table each, with its actions."""
    return join(
        [
            _section(
                "Failed replies",
                "The outbox gave up on these after its retries; Retry sends one again.",
                failed_replies,
                lambda m: m.error or "",
                lambda m: post_button(f"/admin/replies/{m.id}/retry", "Retry", csrf, back=BACK),
                "failed-replies",
            ),
            _section(
                "Held as spam",
                "The spam filter held these; Release answers one as if it had just arrived.",
                held,
                lambda m: str(m.meta.get(SPAM_REASON) or ""),
                lambda m: post_button(
                    f"/admin/messages/{m.id}/release", "Release", csrf, back=BACK
                ),
                "held-spam",
            ),
            _section(
                "Skipped at intake",
                "Stored but never answered, for the reason their channel gave: mail the "
                "loop guard stopped (auto-replies, bounces, lists, no-reply senders), mail "
                "too large.",
                skipped,
                lambda m: m.error or "",
                None,
                "skipped",
            ),
            _section(
                "Messages whose answer failed",
                "The model or a plugin failed after its retries; the person was told.",
                failed_messages,
                lambda m: m.error or "",
                None,
                "failed-messages",
            ),
        ]
    )


def work_page(work: Sequence[WorkLine], leases: Sequence[LeaseLine], now: datetime) -> Html:
    """Unfinished work by process, and the singleton leases, judged by the database's clock."""
    rows = join(
        fill(
            '<tr class="work"><td>$owner</td><td>$direction</td><td>$status</td>'
            '<td class="num">$count</td><td>$until</td><td>$lapsed</td><td>$oldest</td></tr>',
            owner=w.owner or "nobody (unclaimed)",
            direction="inbound" if w.direction == "in" else "reply",
            status=w.status,
            count=w.count,
            until=_span(w.earliest_until, w.latest_until),
            lapsed=_lapsed(w.owner, w.earliest_until, now),
            oldest=when(w.oldest),
        )
        for w in work
    )
    lease_rows = join(
        fill(
            "<tr><td>$name</td><td>$holder</td><td>$until</td><td>$lapsed</td></tr>",
            name=lease.name,
            holder=lease.holder or "nobody",
            until=when(lease.until),
            lapsed=_lapsed(lease.holder, lease.until, now),
        )
        for lease in leases
    )
    return fill(
        '<p class="muted">Database time: $now. A claim that lapsed is taken over by the '
        "next process that looks.</p><h2>Pending and claimed work</h2>$work"
        "<h2>Singleton leases</h2>$leases",
        now=when(now),
        work=_table(
            ["process (claimed_by)", "kind", "status", "count", "claimed_until", "", "oldest"],
            rows,
            "Nothing is pending: every message is answered and every reply delivered.",
        ),
        leases=_table(["lease", "holder", "until", ""], lease_rows, "No lease is held."),
    )


def _message_row(m: MessageLine, calls: Sequence[CallLine], csrf: str) -> Html:
    back = f"/admin/conversations/{m.conversation_id}"
    action = Html("")
    if m.direction == "out" and m.status == "failed":
        action = post_button(f"/admin/replies/{m.id}/retry", "Retry", csrf, back=back)
    elif (
        m.direction == "in"
        and m.status == "skipped"
        and m.meta.get(SPAM) is True
        and not m.meta.get(SPAM_RELEASED)
    ):
        action = post_button(f"/admin/messages/{m.id}/release", "Release", csrf, back=back)
    reason = m.error or (str(m.meta.get(SPAM_REASON)) if m.meta.get(SPAM) is True else "")
    return fill(
        '<tr id="m$id" class="$direction"><td>$id</td><td>$at</td><td>$sender</td>'
        '<td><span class="status st-$status">$status</span> $action<div class="muted">'
        '$reason</div></td><td class="text">$text</td><td>$calls</td></tr>',
        id=m.id,
        direction=m.direction,
        at=when(m.created_at),
        sender="bot" if m.direction == "out" else (m.sender_name or m.sender_id or ""),
        status=m.status,
        action=action,
        reason=reason,
        text=m.text,
        calls=_calls(calls) if calls else Html(""),
    )


def _calls(calls: Sequence[CallLine]) -> Html:
    return fill(
        '<ul class="calls">$items</ul>',
        items=join(
            fill(
                '<li class="call">$purpose · $model · $p + $o tokens$est · <span class="cost">'
                "$cost</span> · $latency ms$error</li>",
                purpose=c.purpose,
                model=c.model,
                p=c.prompt_tokens if c.prompt_tokens is not None else "?",
                o=c.completion_tokens if c.completion_tokens is not None else "?",
                est=fill(' <span class="est" title="counted by botkit">(estimated)</span>')
                if c.estimated
                else Html(""),
                cost=money(c.cost_nanos),
                latency=f"{c.latency_ms:.0f}",
                error=fill(' · <span class="st-failed">$e</span>', e=c.error or "failed")
                if not c.ok
                else Html(""),
            )
            for c in calls
        ),
    )


def _section(
    title: str,
    about: str,
    found: tuple[list[MessageLine], int],
    reason: Callable[[MessageLine], str],
    action: Callable[[MessageLine], Html] | None,
    css: str,
) -> Html:
    lines, total = found
    rows = join(
        fill(
            '<tr data-message="$id"><td>$id</td><td>$conv</td><td>$channel</td><td>$sender</td>'
            '<td>$at</td><td>$reason</td><td class="text">$text</td><td>$action</td></tr>',
            id=m.id,
            conv=link(
                f"/admin/conversations/{m.conversation_id}#m{m.id}", f"#{m.conversation_id}"
            ),
            channel=m.channel,
            sender="bot" if m.direction == "out" else (m.sender_name or m.sender_id or ""),
            at=when(m.created_at),
            reason=reason(m),
            text=m.text[:EXCERPT],
            action=action(m) if action is not None else Html(""),
        )
        for m in lines
    )
    shown = f" (newest {len(lines)} shown)" if total > len(lines) else ""
    return fill(
        '<section class="$css"><h2>$title: <span class="count">$total</span>$shown</h2>'
        '<p class="muted">$about</p>$table</section>',
        css=css,
        title=title,
        total=total,
        shown=shown,
        about=about,
        table=_table(
            ["#", "conversation", "channel", "from", "at", "reason", "text", ""], rows, "None."
        ),
    )


def _table(headers: Sequence[str], rows: Html, empty: str) -> Html:
    if not rows:
        return fill('<p class="muted">$e</p>', e=empty)
    head = join(fill("<th>$h</th>", h=h) for h in headers)
    return fill(
        "<table><thead><tr>$head</tr></thead><tbody>$rows</tbody></table>", head=head, rows=rows
    )


def _span(first: datetime | None, last: datetime | None) -> str:
    if first is None:
        return ""
    return when(first) if first == last else f"{when(first)} to {when(last)}"


def _lapsed(owner: str | None, until: datetime | None, now: datetime) -> str:
    if owner is None or until is None:
        return ""
    return "lapsed" if until <= now else "live"
