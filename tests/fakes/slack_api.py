"""A local fake of Slack's Web API and Socket Mode, for tests.

An aiohttp app on 127.0.0.1, port 0, that speaks the wire format slack_sdk uses: JSON
bodies (``chat.postMessage``, ``chat.update``), query strings and form bodies for the
rest, the token in ``Authorization: Bearer``; answers ``{"ok": false, "error": ...}``
the way Slack does, and 429 with ``Retry-After``. Every request is recorded. Tests
script failures per method (:meth:`FakeSlack.fail`, :meth:`FakeSlack.rate_limit`,
:meth:`FakeSlack.http_error`), which are served before the normal answer, and can hold
a method's answer back after carrying the call out (:meth:`FakeSlack.hold`: the message
is posted, but the client hears nothing for a while).

Native streams (``chat.startStream``, ``chat.appendStream``, ``chat.stopStream``) as
Slack documents them: a stream is a message from its start, in a thread (``thread_ts``),
``recipient_team_id`` and ``recipient_user_id`` required outside DMs, ``markdown_text``
(standard Markdown, at most 12,000 characters per call) appended to what it shows; appends
and stops to a message no longer streaming answer ``message_not_in_streaming_state``
(Slack ends a stream on its own after a while: :attr:`FakeSlack.stream_timeout`, or at
once with :meth:`FakeSlack.expire_stream`), to another app's ``message_not_owned_by_app``.
Their rate tiers are enforced per minute (:attr:`FakeSlack.tier_limits`: Tier 2 for start
and stop, Tier 4 for append), answering 429 with ``Retry-After`` beyond them. What is not
documented is marked where it is assumed (the error past 12,000 characters).

Files: :meth:`FakeSlack.add_file` keeps a file and gives its object as a message event's
``files`` carries it; its ``url_private`` and ``url_private_download`` serve the bytes to a
request with the bot token in ``Authorization: Bearer``, and, as Slack does without it (or
without the ``files:read`` scope), redirect anyone else to the workspace's sign-in page,
an HTML page answered 200. Every download is recorded in :attr:`FakeSlack.downloads`.

Uploads, Slack's external upload flow as documented: ``files.getUploadURLExternal``
(``filename`` and ``length`` required; a missing or zero ``length`` answers
``missing_argument``, as the docs say; one that is not a positive integer answers
``invalid_arguments``, assumed) gives an ``upload_url`` on this server and a ``file_id``;
a POST of the bytes (raw, or multipart with a ``file`` field) to that URL answers 200
``OK - <bytes>``, a POST to an unknown URL 404; ``files.completeUploadExternal``
(``files``: a JSON list of ``{"id", "title"}``, ``channel_id``, ``thread_ts``,
``initial_comment``) shares them, as a message from the bot carrying the files, and
answers ``file_not_found`` for an id it never issued or whose bytes never arrived
(assumed), ``invalid_arguments`` for a ``files`` that is not such a list. Every file
shared is recorded in :attr:`FakeSlack.uploaded`.

Socket Mode: ``apps.connections.open`` (with the app token) answers a ``ws://`` URL on
this same server, with a new ticket each time; a connection gets ``hello``, then whatever
:meth:`FakeSlack.send_envelope` pushes, and every ``{"envelope_id": ...}`` it sends back is
recorded in ``acks``. As Slack does, an Events API envelope not acknowledged when its
connection ends is delivered again on the next one, as a new envelope with
``retry_attempt`` one higher; one pushed while no connection is open waits for the next.
Tests drop the connection (:meth:`FakeSlack.drop_socket`) and make URLs refuse the
WebSocket handshake (:meth:`FakeSlack.refuse_sockets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestServer

__all__ = ["Call", "FakeSlack", "Scripted"]

APP_ONLY = frozenset({"apps.connections.open"})
#: the longest ``markdown_text`` one call carries
MARKDOWN_LIMIT = 12_000
#: calls a minute per method, as Slack's tiers document them (Tier 2: 20+, Tier 4: 100+)
STREAM_TIERS = {"chat.startStream": 20, "chat.appendStream": 100, "chat.stopStream": 20}
_STREAM_CLOSED = "message_not_in_streaming_state"


@dataclass(frozen=True, slots=True)
class Call:
    """One request the fake received."""

    method: str
    params: dict[str, Any]
    authorization: str | None
    content_type: str


@dataclass(slots=True)
class Scripted:
    """A scripted answer: an HTTP status, a JSON body and headers."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    #: served only after this many more calls were answered normally
    after: int = 0


class FakeSlack:
    """Slack's Web API and Socket Mode server, faked. Use ``async with FakeSlack() as slack``.

    Args:
        bot_token: the bot token it accepts.
        app_token: the app-level token it accepts for ``apps.connections.open``.
        bot_user_id: the bot's user id, answered by ``auth.test``.
        bot_id: the bot's bot id.
        team_id: the workspace id.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        bot_user_id: str = "W111",
        bot_id: str = "B111",
        team_id: str = "T111",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.calls: list[Call] = []
        #: every answer's JSON body, with its method, in order
        self.answers: list[tuple[str, dict[str, Any]]] = []
        self.users: dict[str, dict[str, Any]] = {}
        #: every message in the fake workspace, by channel, in posting order
        self.messages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        #: every text each message showed, by (channel, ts): posted, then each edit
        self.shown: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.reactions: list[tuple[str, str, str, str]] = []  # (add|remove, channel, ts, name)
        self.acks: list[dict[str, Any]] = []
        self._scripts: dict[str, deque[Scripted]] = defaultdict(deque)
        self._holds: dict[str, deque[float]] = defaultdict(deque)
        self._closing = asyncio.Event()
        #: calls carried out whose answer is being held back now
        self.holding = 0
        self._ts = itertools.count(1)
        #: per-minute call limits, by method (the stream methods' rate tiers)
        self.tier_limits: dict[str, int] = dict(STREAM_TIERS)
        self._tier_calls: dict[str, deque[float]] = defaultdict(deque)
        #: seconds after its start when Slack ends a stream nobody stopped (undocumented;
        #: SDK users report about five minutes)
        self.stream_timeout = 300.0
        self._stream_started: dict[tuple[str, str], float] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._connected = asyncio.Event()
        self._acked = asyncio.Condition()
        self._called = asyncio.Condition()
        self._envelopes = itertools.count(1)
        self._tickets = itertools.count(1)
        self._refusals = 0
        self._dead_tickets: set[str] = set()
        #: every envelope pushed to a client, in order (redeliveries included)
        self.deliveries: list[dict[str, Any]] = []
        #: Events API envelopes not acknowledged yet, by the id of their first envelope
        self._unacked: dict[str, dict[str, Any]] = {}
        self._chain: dict[str, str] = {}  # every envelope id -> its first envelope's id
        self._waiting: set[str] = set()  # pushed while no connection was open
        #: WebSocket connections opened, and handshakes refused
        self.connections = 0
        self.refused_sockets = 0
        self._connections_changed = asyncio.Condition()
        #: files users shared, by file id: (the file object, the bytes)
        self.files: dict[str, tuple[dict[str, Any], bytes]] = {}
        #: every request for a file's bytes: (path, the Authorization header sent)
        self.downloads: list[tuple[str, str | None]] = []
        #: uploads begun (files.getUploadURLExternal), by file id: name, length, bytes
        self._uploads: dict[str, dict[str, Any]] = {}
        #: every file shared by files.completeUploadExternal: id, title, name, data,
        #: channel, thread_ts, initial_comment
        self.uploaded: list[dict[str, Any]] = []
        self._upload_ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/upload/v1/{ticket}", self._upload)
        app.router.add_get("/files-pri/{team_file}/download/{name}", self._file)
        app.router.add_get("/files-pri/{team_file}/{name}", self._file)
        app.router.add_get("/", self._sign_in)
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_get("/link/", self._socket)
        self._server = TestServer(app, host="127.0.0.1", port=0)

    async def __aenter__(self) -> Self:
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close sockets and stop the server; held answers end at once."""
        self._closing.set()
        for ws in self._sockets:
            await ws.close()
        await self._server.close()

    @property
    def base_url(self) -> str:
        """The Web API base URL to give slack_sdk (``api_url``)."""
        return f"http://127.0.0.1:{self._server.port}/api/"

    # scripting

    def script(self, method: str, *answers: Scripted) -> None:
        """Queue answers for ``method``, served before its normal behaviour."""
        self._scripts[method].extend(answers)

    def fail(self, method: str, error: str, *, times: int = 1, after: int = 0) -> None:
        """Answer ``method`` with ``{"ok": false, "error": error}`` (HTTP 200), ``times``
        times, once ``after`` more calls were answered normally."""
        self.script(
            method,
            *(
                Scripted(body={"ok": False, "error": error}, after=after if i == 0 else 0)
                for i in range(times)
            ),
        )

    def rate_limit(self, method: str, retry_after: float, *, times: int = 1) -> None:
        """Answer ``method`` with a 429 and ``Retry-After``."""
        self.script(
            method,
            *(
                Scripted(
                    status=429,
                    body={"ok": False, "error": "ratelimited"},
                    headers={"Retry-After": f"{retry_after:g}"},
                )
                for _ in range(times)
            ),
        )

    def http_error(self, method: str, status: int, *, times: int = 1) -> None:
        """Answer ``method`` with a bare HTTP error status (a 5xx from a proxy)."""
        self.script(
            method,
            *(
                Scripted(status=status, body={"ok": False, "error": "internal_error"})
                for _ in range(times)
            ),
        )

    def hold(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Carry out the next ``times`` calls of ``method``, then wait ``seconds`` (or until
        the server closes) before answering: the effect happened, the client does not know."""
        self._holds[method].extend([seconds] * times)

    def add_user(self, user_id: str, display_name: str, *, is_bot: bool = False) -> None:
        """Make ``users.info`` know a user."""
        self.users[user_id] = {
            "id": user_id,
            "name": display_name.lower().replace(" ", "."),
            "real_name": display_name,
            "is_bot": is_bot,
            "profile": {"display_name": display_name, "real_name": display_name},
        }

    def add_file(self, data: bytes, name: str, mimetype: str) -> dict[str, Any]:
        """Keep a file a user shares; its object as an event's ``files`` list carries it."""
        file_id = f"F{len(self.files) + 1:010d}"
        root = f"http://127.0.0.1:{self._server.port}/files-pri/{self.team_id}-{file_id}"
        obj = {
            "id": file_id,
            "created": int(time.time()),
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1] if "." in name else "binary",
            "user": "U222",
            "size": len(data),
            "mode": "hosted",
            "is_external": False,
            "url_private": f"{root}/{name}",
            "url_private_download": f"{root}/download/{name}",
        }
        self.files[file_id] = (obj, data)
        return obj

    async def _file(self, request: web.Request) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        self.downloads.append((request.path, authorization))
        file_id = request.match_info["team_file"].rpartition("-")[2]
        found = self.files.get(file_id)
        if found is None or found[0]["name"] != request.match_info["name"]:
            return web.Response(status=404, text="file not found")
        if authorization != f"Bearer {self.bot_token}":
            raise web.HTTPFound(f"/?redir={request.path}")
        obj, data = found
        return web.Response(body=data, content_type=obj["mimetype"])

    async def _upload(self, request: web.Request) -> web.Response:
        ticket = request.match_info["ticket"]
        pending = next((u for u in self._uploads.values() if u["ticket"] == ticket), None)
        if pending is None:
            return web.Response(status=404, text="Not Found")
        if request.content_type == "multipart/form-data":
            form = await request.post()
            field = form.get("file") or form.get("filename")
            data = field.file.read() if isinstance(field, web.FileField) else b""
        else:
            data = await request.read()
        pending["data"] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _sign_in(self, request: web.Request) -> web.Response:
        page = "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body></html>"
        return web.Response(text=page, content_type="text/html")

    def add_message(self, channel: str, message: dict[str, Any]) -> None:
        """Put a message into the workspace (for ``conversations.replies``)."""
        self.messages[channel].append(dict(message))

    def expire_stream(self, channel: str, ts: str) -> None:
        """End a stream the way Slack's own timeout does: it keeps what it shows."""
        message = self._find(channel, ts)
        assert message is not None, (channel, ts)
        message["streaming"] = False

    # inspection

    def calls_to(self, method: str) -> list[Call]:
        """The requests for one method, in order."""
        return [c for c in self.calls if c.method == method]

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages posted through ``chat.postMessage`` (and still there), in order."""
        return [
            m
            for ch, messages in self.messages.items()
            if channel is None or ch == channel
            for m in messages
            if m.get("bot_id") == self.bot_id
        ]

    # Socket Mode

    async def wait_connected(self) -> None:
        """Wait until a Socket Mode client has connected (up to 5 s)."""
        async with asyncio.timeout(5):
            await self._connected.wait()

    async def wait_connections(self, count: int) -> None:
        """Wait until ``count`` Socket Mode connections have opened in all (up to 15 s)."""
        async with asyncio.timeout(15), self._connections_changed:
            await self._connections_changed.wait_for(lambda: self.connections >= count)

    def refuse_sockets(self, times: int = 1) -> None:
        """Refuse the WebSocket handshake (HTTP 410) of the next ``times`` connection
        attempts; the URLs refused stay refused, as a spent or expired ticket does."""
        self._refusals += times

    async def drop_socket(self) -> None:
        """Close the open connection from Slack's side (``going away``), as Slack does when
        it moves a connection; envelopes not acknowledged yet are delivered again on the
        next connection."""
        for ws in self._sockets:
            if not ws.closed:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"going away")

    async def send_envelope(
        self,
        payload: dict[str, Any],
        *,
        kind: str = "events_api",
        envelope_id: str | None = None,
        retry_attempt: int = 0,
    ) -> str:
        """Push one envelope to the connected client (or, with none connected, to the
        next one); its ``envelope_id``."""
        envelope_id = envelope_id or f"env-{next(self._envelopes)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if kind == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = "timeout" if retry_attempt else ""
            self._unacked[envelope_id] = envelope
            self._chain[envelope_id] = envelope_id
        open_socket = self._open_socket()
        if open_socket is not None:
            await self._deliver(open_socket, envelope)
        elif kind == "events_api":
            self._waiting.add(envelope_id)
        return envelope_id

    @property
    def unacknowledged(self) -> list[str]:
        """The Events API envelopes (by their first id) no delivery of was acknowledged."""
        return list(self._unacked)

    def _open_socket(self) -> web.WebSocketResponse | None:
        return next((ws for ws in reversed(self._sockets) if not ws.closed), None)

    async def _deliver(self, ws: web.WebSocketResponse, envelope: dict[str, Any]) -> None:
        self.deliveries.append(envelope)
        await ws.send_str(json.dumps(envelope))

    async def _redeliver(self, ws: web.WebSocketResponse) -> None:
        """Deliver every unacknowledged Events API envelope again, each as a new envelope
        one retry further (a never-delivered one as it was)."""
        for first, envelope in list(self._unacked.items()):
            if first in self._waiting:
                self._waiting.discard(first)
                again = envelope
            else:
                again = {
                    **envelope,
                    "envelope_id": f"env-{next(self._envelopes)}",
                    "retry_attempt": int(envelope["retry_attempt"]) + 1,
                    "retry_reason": "timeout",
                }
            self._chain[again["envelope_id"]] = first
            self._unacked[first] = again
            await self._deliver(ws, again)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (up to 15 s) until ``predicate`` holds, checked after every API call."""
        async with asyncio.timeout(15), self._called:
            await self._called.wait_for(predicate)

    async def wait_settled(self) -> None:
        """Wait (up to 5 s) until every Events API envelope has been acknowledged."""
        async with asyncio.timeout(5), self._acked:
            await self._acked.wait_for(lambda: not self._unacked)

    def acked(self, envelope_id: str) -> dict[str, Any] | None:
        """The ack sent for an envelope, if any."""
        return next((a for a in self.acks if a.get("envelope_id") == envelope_id), None)

    async def wait_ack(self, envelope_id: str) -> dict[str, Any]:
        """Wait for the client's ack of an envelope (up to 5 s)."""
        async with asyncio.timeout(5), self._acked:
            await self._acked.wait_for(lambda: self.acked(envelope_id) is not None)
        ack = self.acked(envelope_id)
        assert ack is not None
        return ack

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if self._refusals or ticket in self._dead_tickets:
            self._refusals = max(self._refusals - 1, 0)
            self._dead_tickets.add(ticket)
            self.refused_sockets += 1
            return web.Response(status=410, text="this link is no longer valid")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                    "connection_info": {"app_id": "A111"},
                }
            )
        )
        self._connected.set()
        async with self._connections_changed:
            self.connections += 1
            self._connections_changed.notify_all()
        await self._redeliver(ws)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                data = json.loads(msg.data)
                first = self._chain.get(str(data.get("envelope_id")))
                if first is not None:
                    self._unacked.pop(first, None)  # any delivery's ack settles the event
                async with self._acked:
                    self.acks.append(data)
                    self._acked.notify_all()
        return ws

    # the Web API

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if raw:
            if request.content_type == "application/json":
                params.update(json.loads(raw))
            else:
                params.update(parse_qsl(raw.decode("utf-8")))
        authorization = request.headers.get("Authorization")
        self.calls.append(Call(method, params, authorization, request.content_type))
        scripted = self._scripts[method]
        if scripted and scripted[0].after > 0:
            scripted[0].after -= 1
        elif scripted:
            answer = scripted.popleft()
            self.answers.append((method, answer.body))
            return web.json_response(answer.body, status=answer.status, headers=answer.headers)
        expected = self.app_token if method in APP_ONLY else self.bot_token
        if authorization is None:
            return web.json_response({"ok": False, "error": "not_authed"})
        if authorization != f"Bearer {expected}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_api_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        wait = self._over_tier(method)
        if wait is not None:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(wait)},
            )
        body: dict[str, Any] = handler(params, request)
        self.answers.append((method, body))
        async with self._called:
            self._called.notify_all()
        holds = self._holds[method]
        if holds:
            self.holding += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), holds.popleft())
            finally:
                self.holding -= 1
        return web.json_response(body)

    def _api_auth_test(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Workspace",
            "user": "botkit",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _api_apps_connections_open(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        ticket = f"t-{next(self._tickets)}"
        return {"ok": True, "url": f"ws://127.0.0.1:{self._server.port}/link/?ticket={ticket}"}

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, ()) if m["ts"] == ts), None)

    def _api_chat_postMessage(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        channel, text = params.get("channel"), params.get("text")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not text:
            return {"ok": False, "error": "no_text"}
        if len(text) > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        n = next(self._ts)
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": text,
            "ts": f"1700000000.{n:06d}",
        }
        if params.get("thread_ts"):
            message["thread_ts"] = params["thread_ts"]
        metadata = params.get("metadata")
        if isinstance(metadata, str):  # form-encoded: a JSON string
            metadata = json.loads(metadata)
        if isinstance(metadata, dict):
            message["metadata"] = metadata
        self.messages[channel].append(message)
        self.shown[(channel, message["ts"])].append(text)
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": message}

    def _api_chat_update(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        message = self._find(str(params.get("channel")), str(params.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message["text"] = params.get("markdown_text") or params.get("text", "")
        message["edited"] = message.get("edited", 0) + 1
        self.shown[(str(params["channel"]), str(params["ts"]))].append(message["text"])
        return {
            "ok": True,
            "channel": params["channel"],
            "ts": params["ts"],
            "text": message["text"],
        }

    def _over_tier(self, method: str) -> int | None:
        """Seconds to wait when ``method`` is past its per-minute limit, else ``None``."""
        limit = self.tier_limits.get(method)
        if limit is None:
            return None
        now, calls = time.monotonic(), self._tier_calls[method]
        while calls and calls[0] <= now - 60.0:
            calls.popleft()
        if len(calls) >= limit:
            return max(1, int(calls[0] + 60.0 - now + 0.999))
        calls.append(now)
        return None

    def _streaming(self, params: dict[str, Any]) -> dict[str, Any] | str:
        """The stream an append or stop names, or the error Slack answers."""
        channel, ts = params.get("channel"), params.get("ts")
        if not channel:
            return "channel_not_found"
        message = self._find(str(channel), str(ts))
        if message is None:
            return "message_not_found"
        if message.get("bot_id") != self.bot_id:
            return "message_not_owned_by_app"
        started = self._stream_started.get((str(channel), str(ts)), 0.0)
        if message.get("streaming") and time.monotonic() - started > self.stream_timeout:
            message["streaming"] = False  # Slack's own timeout ended it
        if not message.get("streaming"):
            return _STREAM_CLOSED
        return message

    def _api_chat_startStream(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        channel, thread_ts = params.get("channel"), params.get("thread_ts")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not thread_ts:  # streamed messages are replies to a user's request
            return {"ok": False, "error": "invalid_arguments"}  # assumed wording
        if str(channel)[:1] in ("C", "G"):  # outside DMs the recipient must be named
            if not params.get("recipient_team_id"):
                return {"ok": False, "error": "missing_recipient_team_id"}
            if not params.get("recipient_user_id"):
                return {"ok": False, "error": "missing_recipient_user_id"}
        text = params.get("markdown_text") or ""
        if params.get("chunks") is not None and text:
            return {"ok": False, "error": "cannot_provide_both_markdown_text_and_chunks"}
        if len(text) > MARKDOWN_LIMIT:
            return {"ok": False, "error": "msg_too_long"}  # assumed: undocumented here
        n = next(self._ts)
        message = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "text": text,
            "ts": f"1700000000.{n:06d}",
            "thread_ts": thread_ts,
            "streaming": True,
        }
        self._stream_started[(str(channel), message["ts"])] = time.monotonic()
        self.messages[str(channel)].append(message)
        self.shown[(str(channel), message["ts"])].append(text)
        return {"ok": True, "channel": channel, "ts": message["ts"]}

    def _api_chat_appendStream(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        found = self._streaming(params)
        if isinstance(found, str):
            return {"ok": False, "error": found}
        text = params.get("markdown_text")
        if not text:
            return {"ok": False, "error": "markdown_text_required"}
        if len(text) > MARKDOWN_LIMIT:
            return {"ok": False, "error": "msg_too_long"}  # assumed: undocumented here
        found["text"] += text
        self.shown[(str(params["channel"]), found["ts"])].append(found["text"])
        return {"ok": True, "channel": params["channel"], "ts": found["ts"]}

    def _api_chat_stopStream(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        found = self._streaming(params)
        if isinstance(found, str):
            return {"ok": False, "error": found}
        text = params.get("markdown_text") or ""
        if len(text) > MARKDOWN_LIMIT:
            return {"ok": False, "error": "msg_too_long"}  # assumed: undocumented here
        found["text"] += text
        found["streaming"] = False
        metadata = params.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        if isinstance(metadata, dict):
            found["metadata"] = metadata
        if text:
            self.shown[(str(params["channel"]), found["ts"])].append(found["text"])
        return {"ok": True, "channel": params["channel"], "ts": found["ts"], "message": found}

    def _api_chat_delete(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        channel = str(params.get("channel"))
        message = self._find(channel, str(params.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        self.messages[channel].remove(message)
        return {"ok": True, "channel": channel, "ts": params["ts"]}

    def _api_conversations_replies(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        channel, ts = str(params.get("channel")), str(params.get("ts"))
        thread = [
            m for m in self.messages.get(channel, ()) if m["ts"] == ts or m.get("thread_ts") == ts
        ]
        if not thread:
            return {"ok": False, "error": "thread_not_found"}
        return {"ok": True, "messages": _listed(thread, params), "has_more": False}

    def _api_conversations_history(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        """A channel's top-level messages, newest first, as Slack lists them."""
        channel = str(params.get("channel"))
        limit = int(params.get("limit") or 100)
        top = [m for m in self.messages.get(channel, ()) if m.get("thread_ts") in (None, m["ts"])]
        newest = list(reversed(top))[:limit]
        return {"ok": True, "messages": _listed(newest, params), "has_more": len(top) > limit}

    def _api_files_getUploadURLExternal(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename:
            return {"ok": False, "error": "invalid_arguments"}
        if length in (None, "", "0", 0):
            return {"ok": False, "error": "missing_argument"}
        if not str(length).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        n = next(self._upload_ids)
        file_id = f"F9{n:09d}"
        ticket = f"u{n}-ticket"
        self._uploads[file_id] = {
            "ticket": ticket,
            "name": filename,
            "length": int(length),
            "data": None,
        }
        url = f"http://127.0.0.1:{self._server.port}/upload/v1/{ticket}"
        return {"ok": True, "upload_url": url, "file_id": file_id}

    def _api_files_completeUploadExternal(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        try:
            files = json.loads(str(params.get("files") or ""))
        except ValueError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(files, list) or not files:
            return {"ok": False, "error": "invalid_arguments"}
        for item in files:
            if not isinstance(item, dict) or not item.get("id"):
                return {"ok": False, "error": "invalid_arguments"}
            found = self._uploads.get(str(item["id"]))
            if found is None or found["data"] is None:
                return {"ok": False, "error": "file_not_found"}
        channel, thread_ts = params.get("channel_id"), params.get("thread_ts")
        shared = []
        for item in files:
            upload = self._uploads.pop(str(item["id"]))
            record = {
                "id": item["id"],
                "title": item.get("title") or upload["name"],
                "name": upload["name"],
                "data": upload["data"],
                "channel": channel,
                "thread_ts": thread_ts,
                "initial_comment": params.get("initial_comment"),
            }
            self.uploaded.append(record)
            shared.append({"id": item["id"], "title": record["title"]})
        if channel:
            n = next(self._ts)
            message: dict[str, Any] = {
                "type": "message",
                "subtype": "file_share",
                "user": self.bot_user_id,
                "bot_id": self.bot_id,
                "text": params.get("initial_comment") or "",
                "ts": f"1700000000.{n:06d}",
                "files": shared,
            }
            if thread_ts:
                message["thread_ts"] = thread_ts
            self.messages[str(channel)].append(message)
        return {"ok": True, "files": shared}

    def _api_users_info(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def _reaction(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        self.reactions.append(
            (
                kind,
                str(params.get("channel")),
                str(params.get("timestamp")),
                str(params.get("name")),
            )
        )
        return {"ok": True}

    def _api_reactions_add(self, params: dict[str, Any], request: web.Request) -> dict[str, Any]:
        return self._reaction("add", params)

    def _api_reactions_remove(
        self, params: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        return self._reaction("remove", params)


def _listed(messages: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages as a listing returns them: metadata only with ``include_all_metadata``."""
    if str(params.get("include_all_metadata")).lower() in ("1", "true"):
        return [dict(m) for m in messages]
    return [{k: v for k, v in m.items() if k != "metadata"} for m in messages]
