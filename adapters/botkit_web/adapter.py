"""``WebChatAdapter``: a chat page on botkit's web server, for trying a bot in a browser.

A visitor opens the page (``/chat``; ``/`` redirects there) and talks to the bot over a
WebSocket. There is no account: a random visitor id in a signed, HttpOnly, SameSite=Lax
cookie names the visitor's conversation, so it is kept across reloads and restarts.

It is a channel like any other. A message from the page is stored by ``inbox.accept``
before the page is told it arrived (``accepted``); the dispatcher answers it, and the
outbox delivers the answer through :meth:`WebChatAdapter.send` and
:meth:`~WebChatAdapter.edit`, which push it to every page the visitor has open. A
streamed answer is posted once and edited as it grows, so the page shows it growing.

Delivery: a reply is delivered once it is pushed to the visitor's open pages, and also
when none is open: the page shows the conversation's stored history whenever it
connects (``Inbox.transcript``), so a reply sent while the visitor was away, or while
the page reloaded, is there the next time. A page that connects while a reply is being
written sees it as far as it has got, then growing. Pushes reach the pages connected to
the process that sends; with several processes a reply another process sent shows at
the next reconnect or reload.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from botkit import (
    Adapter,
    Capabilities,
    ConversationRef,
    Inbox,
    Message,
    Reply,
    Sender,
    SentMessage,
    StoreError,
    WebhookGate,
)
from botkit_web._hub import Client, Hub, Refused
from botkit_web._page import page_html, security_headers
from botkit_web._protocol import Refusal, bot_frame, read_frame, user_frame
from botkit_web._settings import WebChatSettings
from botkit_web._visitors import VisitorIds, load_secret

__all__ = ["WebChatAdapter"]

log = logging.getLogger(__name__)

#: Seconds between the server's pings; a page that stops answering them is dropped.
HEARTBEAT = 30.0
#: Replies whose markup is remembered for their edits (those being streamed need it).
MARKUPS_KEPT = 1000


class WebChatAdapter(Adapter):
    """The web chat channel: one conversation per visitor (cookie)."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        edits=True,
        threads=False,
        max_length=20_000,
        markup="markdown",
        edit_interval=0.1,  # a push to a local socket: pace it for the eye, not a limit
        typing=True,
    )
    settings_class: ClassVar[type[WebChatSettings]] = WebChatSettings

    def __init__(self, name: str, settings: WebChatSettings | None = None) -> None:
        super().__init__(name)
        self.settings = settings or WebChatSettings()
        self._gate = WebhookGate(f"{name} chat")
        self._hub = Hub(
            per_visitor=self.settings.max_connections_per_visitor,
            total=self.settings.max_connections,
        )
        self._inbox: Inbox | None = None
        self._ids: VisitorIds | None = None
        self._markup: dict[str, str] = {}  # reply id -> markup, for its edits; oldest first
        self.cookie_name = "botkit_" + re.sub(r"[^A-Za-z0-9_-]", "_", name)

    # -- lifecycle ----------------------------------------------------------------------

    def web_routes(self) -> Sequence[web.RouteDef]:
        """The page, its socket, and ``/`` redirecting to the page (unless told not to)."""
        path = self.settings.path
        routes = [
            web.get(path, self._page),
            web.get(path + "/", self._to_page),
            web.get(path + "/ws", self._socket),
        ]
        if self.settings.redirect_root:
            routes.append(web.get("/", self._to_page))
        return routes

    async def start(self, inbox: Inbox) -> None:
        """Load the cookie secret and let visitors in."""
        configured = self.settings.secret
        secret = (
            configured.reveal().encode()
            if configured is not None
            else await load_secret(inbox.state(self.name))
        )
        self._ids = VisitorIds(secret, self.name)
        self._inbox = inbox
        self._gate.open()
        log.info("web chat (adapters.%s) at %s", self.name, self.settings.path)

    async def stop_intake(self) -> None:
        """Refuse new messages and pages; open pages still get the replies in flight."""
        await self._gate.close()

    async def stop(self) -> None:
        """Close every page (each reconnects to whichever process serves it next)."""
        await self._gate.close(wait=0)
        await self._hub.close_all(WSCloseCode.GOING_AWAY, "the bot is restarting")

    # -- delivering ---------------------------------------------------------------------

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Push a reply to the visitor's open pages; delivered whether or not one is open
        (it is in the history every page loads). The delivery id is the message's id, so
        a reply sent again after a crash replaces itself on the page."""
        self._markup[delivery_id] = reply.markup
        while len(self._markup) > MARKUPS_KEPT:
            del self._markup[next(iter(self._markup))]
        self._push_reply(conversation.chat_id, delivery_id, reply.text, reply.markup)
        return SentMessage(conversation, delivery_id, reply.text)

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Show a reply anew on the visitor's open pages (a streamed answer grows)."""
        markup = self._markup.get(sent.external_id, "markdown")
        self._push_reply(sent.conversation.chat_id, sent.external_id, text, markup)
        return SentMessage(sent.conversation, sent.external_id, text, sent.parts)

    async def typing(self, conversation: ConversationRef) -> None:
        """Tell the visitor's pages an answer is being prepared."""
        self._hub.push(conversation.chat_id, {"type": "typing"})

    def _push_reply(self, visitor: str, external_id: str, text: str, markup: str) -> None:
        self._hub.push(visitor, bot_frame(f"b-{external_id}", text, markup))

    # -- the page -----------------------------------------------------------------------

    async def _to_page(self, _request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(self.settings.path)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        async with self._gate.admit(log):
            pass  # answered once started; 503 with Retry-After while stopping
        nonce = secrets.token_urlsafe(16)
        response = web.Response(
            text=page_html(
                title=self.settings.title,
                socket_path=self.settings.path + "/ws",
                max_chars=self.settings.max_message_chars,
                nonce=nonce,
            ),
            content_type="text/html",
            headers=security_headers(nonce),
        )
        if self._visitor(request) is None:  # none yet, or not ours: a new visitor
            self._set_cookie(request, response)
        return response

    def _visitor(self, request: web.Request) -> str | None:
        assert self._ids is not None
        return self._ids.check(request.cookies.get(self.cookie_name))

    def _set_cookie(self, request: web.Request, response: web.StreamResponse) -> str:
        assert self._ids is not None
        visitor, value = self._ids.new()
        response.set_cookie(
            self.cookie_name,
            value,
            max_age=self.settings.cookie_days * 86_400,
            path=self.settings.path,
            httponly=True,
            samesite="Lax",
            secure=request.secure,
        )
        return visitor

    # -- the socket ---------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request):
            log.warning("web chat %s: refused a socket from origin %r", self.name, origin)
            raise web.HTTPForbidden(text="this page may not be used from another site")
        async with self._gate.admit(log):
            pass
        # the largest frame a message within the limit can make (JSON escapes included)
        socket = web.WebSocketResponse(
            heartbeat=HEARTBEAT, max_msg_size=self.settings.max_message_chars * 6 + 4096
        )
        visitor = self._visitor(request) or self._set_cookie(request, socket)
        await socket.prepare(request)
        client = self._hub.join(visitor, socket)
        if isinstance(client, Refused):
            await socket.send_json({"type": "error", "error": str(client)})
            await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=b"refused")
            return socket
        try:
            try:
                history = await self._history(visitor)
            except StoreError as exc:
                log.warning("web chat %s: could not load a history: %s", self.name, exc)
                client.start([_error("the conversation could not be loaded; retrying")])
                client.close_soon(WSCloseCode.TRY_AGAIN_LATER, "the database is unavailable")
            else:
                client.start([{"type": "history", "messages": history}])
            async for frame in socket:
                if frame.type == WSMsgType.TEXT:
                    await self._receive(client, str(frame.data))
                elif frame.type == WSMsgType.BINARY:
                    client.push(_error("frames must be JSON text, not binary"))
        finally:
            self._hub.leave(client)
            await client.stop()
        return socket

    def _origin_allowed(self, origin: str, request: web.Request) -> bool:
        """A browser names the page's origin; only this server's (or a listed one) may
        use the visitor's cookie, so another site cannot talk in their name."""
        if self.settings.allowed_origins:
            return origin in self.settings.allowed_origins
        return urlsplit(origin).netloc == request.host

    async def _history(self, visitor: str) -> list[dict[str, Any]]:
        """The conversation as the page shows it: the stored messages, with the newest
        text this process pushed of each reply (and replies not yet recorded)."""
        assert self._inbox is not None
        conversation = ConversationRef(self.name, visitor)
        rows = await self._inbox.transcript(conversation, limit=self.settings.history_messages)
        recent = self._hub.recent(visitor)
        shown: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.direction == "in":
                _, _, own = (row.external_id or "").partition(":")
                element = f"u-{own or f'm{row.id}'}"
                shown[element] = user_frame(element, row.text)
            elif row.external_id is not None:  # posted (else not shown anywhere yet)
                element = f"b-{row.external_id}"
                newer = recent.pop(element, None)
                shown[element] = (
                    dict(newer) if newer is not None else bot_frame(element, row.text, row.markup)
                )
        for element, frame in recent.items():  # pushed, not yet recorded when read
            shown[element] = dict(frame)
        return list(shown.values())

    async def _receive(self, client: Client, data: str) -> None:
        decided = read_frame(data, max_chars=self.settings.max_message_chars)
        if isinstance(decided, Refusal):
            client.push(_error(decided.error, decided.id))
            return
        assert self._inbox is not None
        visitor = client.visitor
        message = Message(
            conversation=ConversationRef(self.name, visitor),
            sender=Sender(visitor),
            text=decided.text,
            external_id=f"{visitor}:{decided.id}",
        )
        try:
            async with self._gate.admit(log):
                await self._inbox.accept(message)
        except web.HTTPServiceUnavailable:
            client.push(_error("the bot is restarting; sent again when back", decided.id, True))
            return
        except StoreError as exc:
            log.warning("web chat %s: a message was not stored: %s", self.name, exc)
            client.push(_error("not stored (database unavailable); sent again", decided.id, True))
            client.close_soon(WSCloseCode.TRY_AGAIN_LATER, "the database is unavailable")
            return
        # told only now: what the page was told arrived is stored
        client.push({"type": "accepted", "id": decided.id})
        self._hub.push(visitor, user_frame(f"u-{decided.id}", decided.text), skip=client)


def _error(error: str, message_id: str | None = None, retry: bool = False) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "error": error}
    if message_id is not None:
        frame["id"] = message_id
        frame["retry"] = retry
    return frame
