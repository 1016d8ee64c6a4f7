"""The operations page's handlers, and the aiohttp app that mounts them under ``/admin``.

Reads come from :class:`~botkit.admin.queries.AdminQueries` and
:meth:`botkit.store.usage.UsageStore.report`; the two actions go through the bot's own paths: a
failed reply is set back to pending and flushed by the outbox
(:meth:`~botkit.store.outbound.OutboundStore.retry_failed`, :meth:`~botkit.outbox.Outbox.wake`), a
held message is released as the spam plugin's ``/release`` does
(:meth:`~botkit.context.PluginRuntime.requeue`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from aiohttp import web

from botkit.admin.auth import COOKIE, PREFIX, SESSION, SESSION_TTL, Sessions, guard, safe_next
from botkit.admin.pages import (
    attention_page,
    conversation_page,
    conversations_page,
    login_page,
    work_page,
)
from botkit.admin.queries import SPAM, SPAM_RELEASED, AdminQueries
from botkit.admin.spend import METRICS, SPLITS, days_between, spend_cells, spend_page
from botkit.admin.templates import Html, layout, query
from botkit.context import PluginRuntime
from botkit.exceptions import StoreError
from botkit.runtime import Runtime
from botkit.secrets import Secret

__all__ = ["admin_app"]

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_DAYS = 366
# what an action reports back, by code (a link cannot make the page say anything else)
DONE = {
    "retried": "Reply {id} was set back to pending; the outbox is sending it.",
    "released": "Message {id} was released; it is being answered now.",
    "not-failed": "Reply {id} is not a failed reply (retried already?); nothing changed.",
    "not-held": "Message {id} is not held as spam; nothing changed.",
    "released-already": "Message {id} was released already; nothing changed.",
}


def admin_app(
    runtime: Runtime, token: Secret, *, sessions: Sessions | None = None
) -> web.Application:
    """The operations page, to mount at ``/admin`` on the bot's web server.

    Args:
        runtime: the running bot's store, outbox and dispatcher.
        token: the admin token; whoever knows it may log in.
        sessions: signs the session cookies (default: keyed by ``token``).
    """
    views = _Views(runtime, sessions or Sessions(token))
    app = web.Application(middlewares=[guard(views.sessions), _database_errors])
    app.add_routes(
        [
            web.get("", views.home),
            web.get("/", views.home),
            web.get("/login", views.login_form),
            web.post("/login", views.login),
            web.post("/logout", views.logout),
            web.get("/conversations", views.conversations),
            web.get(r"/conversations/{id:\d+}", views.conversation),
            web.get("/spend", views.spend),
            web.get("/attention", views.attention),
            web.get("/work", views.work),
            web.post(r"/replies/{id:\d+}/retry", views.retry),
            web.post(r"/messages/{id:\d+}/release", views.release),
        ]
    )
    return app


class _Views:
    def __init__(self, runtime: Runtime, sessions: Sessions) -> None:
        self.runtime = runtime
        self.sessions = sessions
        self.queries = AdminQueries(runtime.store.db)

    async def home(self, _request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"{PREFIX}/conversations")

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        target = safe_next(request.query.get("next"))
        if self.sessions.read(request.cookies.get(COOKIE)) is not None:
            raise web.HTTPFound(target)
        return _page(layout("Log in", login_page(target)))

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        given, target = form.get("token"), form.get("next")
        target = safe_next(target if isinstance(target, str) else None)
        if not isinstance(given, str) or not self.sessions.token_matches(given):
            log.warning("admin login refused from %s: wrong token", request.remote)
            return _page(layout("Log in", login_page(target, wrong=True)), status=401)
        log.info("admin login from %s", request.remote)
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE,
            self.sessions.new_cookie(),
            path=PREFIX,
            max_age=SESSION_TTL,
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        raise response

    async def logout(self, _request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther(f"{PREFIX}/login")
        response.del_cookie(COOKIE, path=PREFIX)
        raise response

    async def conversations(self, request: web.Request) -> web.StreamResponse:
        before = _number(request, "before")
        user, text = request.query.get("user", ""), request.query.get("q", "")
        channel = request.query.get("channel", "")
        page = await self.queries.conversations(
            before=before, user=user, text=text, channel=channel
        )
        body = conversations_page(
            page,
            await self.queries.channels(),
            user=user,
            text=text,
            channel=channel,
            before=before,
        )
        return self._render(request, "Conversations", body, "conversations")

    async def conversation(self, request: web.Request) -> web.StreamResponse:
        conversation_id = int(request.match_info["id"])
        view = await self.queries.conversation(conversation_id, before=_number(request, "before"))
        if view is None:
            raise web.HTTPNotFound(text=f"no conversation {conversation_id}")
        csrf = request[SESSION].csrf
        title = f"Conversation #{conversation_id}"
        return self._render(request, title, conversation_page(view, csrf), "conversations")

    async def spend(self, request: web.Request) -> web.StreamResponse:
        days = _number(request, "days")
        days = 30 if days is None else days
        by, metric = request.query.get("by", "model"), request.query.get("metric", "cost")
        if not 1 <= days <= MAX_DAYS:
            raise web.HTTPBadRequest(text=f"days must be from 1 to {MAX_DAYS}")
        if by not in SPLITS or metric not in METRICS:
            raise web.HTTPBadRequest(
                text=f"by must be one of {', '.join(SPLITS)}; metric one of {', '.join(METRICS)}"
            )
        now = datetime.now(UTC)
        since = now - timedelta(days=days)  # as `botkit usage --days N` reads it
        rows = await self.runtime.store.usage.report(since=since)
        cells = spend_cells(rows, by)
        body = spend_page(
            cells,
            days_between(since.date(), now.date()),
            by=by,
            metric=metric,
            span=days,
        )
        return self._render(request, "Spend", body, "spend")

    async def attention(self, request: web.Request) -> web.StreamResponse:
        q = self.queries
        body = attention_page(
            await q.failed_replies(),
            await q.held_spam(),
            await q.skipped_at_intake(),
            await q.failed_messages(),
            request[SESSION].csrf,
        )
        return self._render(request, "Needs a person", body, "attention")

    async def work(self, request: web.Request) -> web.StreamResponse:
        now = await self.runtime.store.claims.database_now()
        body = work_page(await self.queries.work(), await self.queries.leases(), now)
        return self._render(request, "Work", body, "work")

    async def retry(self, request: web.Request) -> web.StreamResponse:
        outbound_id = int(request.match_info["id"])
        conversation_id = await self.runtime.store.outbound.retry_failed(outbound_id)
        if conversation_id is None:
            return await _done(request, "not-failed", outbound_id)
        log.info("reply %d retried from the operations page", outbound_id)
        self.runtime.outbox.wake(conversation_id)
        return await _done(request, "retried", outbound_id)

    async def release(self, request: web.Request) -> web.StreamResponse:
        message_id = int(request.match_info["id"])
        found = await self.queries.message(message_id)
        if found is None or found.direction != "in" or found.meta.get(SPAM) is not True:
            return await _done(request, "not-held", message_id)
        if found.meta.get(SPAM_RELEASED) or found.status != "skipped":
            return await _done(request, "released-already", message_id)
        # as the spam plugin's /release: marked released (the filter lets it pass), then
        # handled as if it had just arrived
        await PluginRuntime(self.runtime, "spam").requeue(
            message_id, **{SPAM_RELEASED: True, "spam_released_by": "operations page"}
        )
        log.info("message %d released from the operations page", message_id)
        return await _done(request, "released", message_id)

    def _render(self, request: web.Request, title: str, body: Html, active: str) -> web.Response:
        done, done_id = request.query.get("done", ""), request.query.get("id", "")
        notice = DONE[done].format(id=int(done_id)) if done in DONE and done_id.isdigit() else ""
        page = layout(title, body, active=active, csrf=request[SESSION].csrf, notice=notice)
        return _page(page)


async def _done(request: web.Request, code: str, row_id: int) -> web.StreamResponse:
    """Back to the page the action was taken on, saying what happened."""
    form = await request.post()
    back = form.get("back")
    target = safe_next(back if isinstance(back, str) else f"{PREFIX}/attention")
    path, _, _ = target.partition("?")
    raise web.HTTPSeeOther(query(path, done=code, id=row_id))


def _page(body: Html, *, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def _number(request: web.Request, name: str) -> int | None:
    """A whole-number query parameter; 400 when it is something else."""
    value = request.query.get(name, "")
    if not value:
        return None
    if not value.isdigit():
        raise web.HTTPBadRequest(text=f"{name} must be a whole number")
    return int(value)


@web.middleware
async def _database_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A page the database could not answer for is a 503 saying so, not a traceback."""
    try:
        return await handler(request)
    except StoreError as exc:
        log.warning("operations page %s: %s", request.path, exc)
        page = layout("Database unavailable", Html(""), error=f"The database failed: {exc}")
        return _page(page, status=503)
