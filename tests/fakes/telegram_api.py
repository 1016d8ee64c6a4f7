"""A fake Telegram Bot API on 127.0.0.1, speaking the real JSON format.

Routes ``/bot<token>/<method>`` like api.telegram.org: answers ``{"ok": true, "result":
...}`` or ``{"ok": false, "error_code": ..., "description": ...}`` (with ``parameters``
for flood control). It implements what botkit's Telegram adapter uses: ``getMe``,
``getUpdates`` (offsets, limit, long-poll timeout), ``sendMessage``,
``editMessageText``, ``deleteMessage``, ``sendChatAction``, ``setMyCommands``,
``setWebhook``, ``getWebhookInfo``, ``deleteWebhook``, ``getFile``, ``sendVoice``,
``sendAudio``, ``sendDocument`` (see Files below) and ``sendMessageDraft`` (Bot API 9.3:
a private chat only, else 400 ``TEXTDRAFT_PEER_INVALID``; a non-zero ``draft_id``;
0-4096 characters after entity parsing, an empty text being the "Thinking..."
placeholder; a draft is no message: it is shown for 30 seconds, or until a message is
sent to its chat, see :meth:`FakeTelegramAPI.draft_shown`). Telegram's own checks are
imitated: HTML must use Telegram's tags, nest and escape ``<>&`` ("can't parse
entities"); explicit ``entities`` must be of a known type, lie within the text in UTF-16
code units, start and end on whole characters, and nest as the Bot API documents
(overlapping entities nest, nothing inside ``pre``/``code``, no quote inside a quote);
text after entity parsing is at most 4096 UTF-16 units ("message is too long"), an edit
that changes nothing is "message is not modified", getUpdates while a webhook is set is
a 409, and a getUpdates that arrives while another is still waiting ends the waiting one
with 409 "Conflict: terminated by other getUpdates request; make sure that only one bot
instance is running", as Telegram does when two processes poll one token
(:attr:`FakeTelegramAPI.overlaps` records each time it happened).

Files: :meth:`FakeTelegramAPI.add_file` keeps a file a user sent (a document, a voice
note) and gives the fields a message carries for it (``file_id``, ``file_unique_id``,
``file_size``); ``getFile`` answers its ``file_path`` (400 "file is too big" past the
20 MB bots may download, "invalid file_id" for an unknown id, as the Bot API does) and
``GET /file/bot<token>/<file_path>`` serves its bytes (each download kept in
:attr:`FakeTelegramAPI.downloads`).
``sendVoice``, ``sendAudio`` and ``sendDocument`` take a multipart upload (read with
aiohttp's multipart reader, up to Telegram's 50 MB) and keep it in
:attr:`FakeTelegramAPI.uploads`; no file is 400 "there is no voice in the request".

Tests script errors per method (:meth:`FakeTelegramAPI.fail`) and read every request
back (:attr:`FakeTelegramAPI.requests`).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NoReturn

from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.web_request import FileField

__all__ = [
    "FakeTelegramAPI",
    "Overlap",
    "RecordedRequest",
    "ScriptedError",
    "SentFile",
    "SentText",
    "ShownDraft",
    "html_text",
    "spans",
]

#: how long Telegram's apps show a draft that is not renewed (the Bot API's "temporary
#: 30-second preview")
DRAFT_TTL = 30.0

TOKEN = "123456:TEST-fake-token_do-not-log"

_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:=\"[^\"]*\"|='[^']*')?)*)\s*>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    }
)


#: The entity types of the Bot API's ``MessageEntity``.
ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)
_QUOTES = frozenset({"blockquote", "expandable_blockquote"})
_FORMATTING = frozenset({"bold", "italic", "underline", "strikethrough", "spoiler"})


class HTMLRefused(ValueError):
    """Telegram would answer "can't parse entities"."""


def html_text(body: str) -> str:
    """The text Telegram shows for Telegram-HTML ``body``, checking it the way Telegram does.

    Raises:
        HTMLRefused: an unknown tag, a tag that does not nest, an unescaped ``<>&``.
    """
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "<":
            m = _TAG.match(body, i)
            offset = len(body[:i].encode())
            if m is None:
                raise HTMLRefused(f"Unexpected end of name token at byte offset {offset}")
            closing, name = m.group(1), m.group(2).lower()
            if name not in _ALLOWED_TAGS:
                raise HTMLRefused(f'Unsupported start tag "{name}" at byte offset {offset}')
            if closing:
                if not stack or stack[-1] != name:
                    raise HTMLRefused(f'Can\'t find end tag corresponding to start tag "{name}"')
                stack.pop()
            else:
                if (
                    stack
                    and stack[-1] in ("code", "pre")
                    and not (stack[-1] == "pre" and name == "code")
                ):
                    raise HTMLRefused(f"Entities can't be nested in {stack[-1]}")
                if name == "blockquote" and "blockquote" in stack:
                    raise HTMLRefused("Blockquotes can't be nested")
                if name == "a" and "href=" not in m.group(3):
                    raise HTMLRefused("Text link without URL")
                stack.append(name)
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(body, i)
            if m is None:
                offset = len(body[:i].encode())
                raise HTMLRefused(f"Unsupported entity at byte offset {offset}")
            out.append(html.unescape(m.group(0)))
            i = m.end()
        elif ch == ">":
            raise HTMLRefused("Unexpected > character")
        else:
            out.append(ch)
            i += 1
    if stack:
        raise HTMLRefused(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class EntitiesRefused(ValueError):
    """Telegram would refuse the ``entities`` sent with a text."""


def check_entities(text: str, entities: Any) -> list[dict[str, Any]]:
    """``entities`` as sent with ``text``, checked the way the Bot API documents them.

    Raises:
        EntitiesRefused: not a list of entities, an unknown type, an offset or length
            outside the text (in UTF-16 code units) or inside a surrogate pair, a text link
            without URL, or entities that do not nest as Telegram allows.
    """
    if not isinstance(entities, list):
        raise EntitiesRefused("entities must be an array")
    units = text.encode("utf-16-le")
    size = len(units) // 2
    checked: list[dict[str, Any]] = []
    for entity in entities:
        if not isinstance(entity, dict):
            raise EntitiesRefused("an entity must be an object")
        kind, offset, length = entity.get("type"), entity.get("offset"), entity.get("length")
        if kind not in ENTITY_TYPES:
            raise EntitiesRefused(f"unsupported entity type {kind!r}")
        if not isinstance(offset, int) or not isinstance(length, int) or offset < 0:
            raise EntitiesRefused("entity offset and length must be non-negative integers")
        if length <= 0 or offset + length > size:
            raise EntitiesRefused(
                f"entity beginning at UTF-16 offset {offset} ends after the end of the text "
                f"at UTF-16 offset {size}"
            )
        for at in (offset, offset + length):
            if (
                at < size
                and 0xDC00 <= int.from_bytes(units[2 * at : 2 * at + 2], "little") <= 0xDFFF
            ):
                raise EntitiesRefused(f"entity begins in a middle of a UTF-16 symbol at {at}")
        if kind == "text_link" and not entity.get("url"):
            raise EntitiesRefused("text link without URL")
        checked.append(entity)
    for a in checked:
        for b in checked:
            if a is not b:
                _check_pair(a, b)
    return checked


def _check_pair(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two entities sharing characters: one contains the other, and may."""
    a0, a1 = a["offset"], a["offset"] + a["length"]
    b0, b1 = b["offset"], b["offset"] + b["length"]
    if a1 <= b0 or b1 <= a0:
        return
    if a0 <= b0 and b1 <= a1 and _may_contain(a["type"], b["type"]):
        return
    if b0 <= a0 and a1 <= b1 and _may_contain(b["type"], a["type"]):
        return
    raise EntitiesRefused(
        f"a {a['type']} entity at {a0} and a {b['type']} entity at {b0} can't be nested so"
    )


def _may_contain(outer: str, inner: str) -> bool:
    """The Bot API's nesting rules: ``pre`` and ``code`` contain nothing; bold, italic,
    underline, strikethrough and spoiler contain and are part of anything else; quotes
    do not nest; all other entities can't contain each other."""
    if outer in ("pre", "code"):
        return False
    if outer in _FORMATTING or inner in _FORMATTING:
        return True
    return outer in _QUOTES and inner not in _QUOTES


def spans(text: str, entities: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(type, covered text)`` for each entity, reading offsets as UTF-16 units."""
    units = text.encode("utf-16-le")
    return [
        (e["type"], units[2 * e["offset"] : 2 * (e["offset"] + e["length"])].decode("utf-16-le"))
        for e in entities
    ]


@dataclass(frozen=True)
class RecordedRequest:
    """One call the fake received."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic()


@dataclass(frozen=True)
class Overlap:
    """A getUpdates that arrived while another was still waiting on the server."""

    at: float  # time.monotonic()
    waiting_since: float  # when the terminated one arrived


@dataclass
class _Poll:
    """A getUpdates request waiting on the server."""

    request: web.Request
    since: float
    terminated: bool = False

    def connected(self) -> bool:
        transport = self.request.transport
        return transport is not None and not transport.is_closing()


@dataclass(frozen=True)
class ScriptedError:
    """An error answer, as the real Bot API words it."""

    status: int
    description: str
    retry_after: int | None = None

    @classmethod
    def flood(cls, retry_after: int) -> ScriptedError:
        """429 flood control."""
        return cls(429, f"Too Many Requests: retry after {retry_after}", retry_after)

    @classmethod
    def cant_parse(cls) -> ScriptedError:
        """400 for HTML Telegram does not accept."""
        return cls(
            400,
            'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 0',
        )

    @classmethod
    def blocked(cls) -> ScriptedError:
        """403: the user blocked the bot."""
        return cls(403, "Forbidden: bot was blocked by the user")

    @classmethod
    def chat_not_found(cls) -> ScriptedError:
        """400: no such chat."""
        return cls(400, "Bad Request: chat not found")

    @classmethod
    def conflict(cls) -> ScriptedError:
        """409: another process polls with the same token."""
        return cls(
            409,
            "Conflict: terminated by other getUpdates request; make sure that only one bot "
            "instance is running",
        )

    @classmethod
    def bad_gateway(cls) -> ScriptedError:
        """502 from Telegram's front end."""
        return cls(502, "Bad Gateway")

    def answer(self) -> web.Response:
        """The HTTP answer."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return web.json_response(body, status=self.status)


@dataclass
class SentUpload:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str
    data: bytes


@dataclass
class SentFile:
    """A voice note, audio file or document the bot uploaded."""

    chat_id: int
    message_id: int
    kind: str  # "voice", "audio", "document"
    filename: str | None
    content_type: str
    data: bytes
    caption: str | None = None
    thread_id: int | None = None


@dataclass
class SentText:
    """A message the bot sent, as the fake stores it."""

    chat_id: int
    message_id: int
    body: str  # what was sent, HTML included
    parse_mode: str | None
    text: str  # what a user sees
    entities: list[dict[str, Any]] = field(default_factory=list)  # as sent, checked
    thread_id: int | None = None
    reply_to: int | None = None
    edits: list[str] = field(default_factory=list)
    deleted: bool = False

    def spans(self) -> list[tuple[str, str]]:
        """``(type, covered text)`` for each entity of the message as it stands."""
        return spans(self.text, list(self.entities))


@dataclass(frozen=True)
class ShownDraft:
    """A draft the bot showed (``sendMessageDraft``), as the fake stores it."""

    chat_id: int
    draft_id: int
    body: str  # what was sent, HTML included
    parse_mode: str | None
    text: str  # what a user sees
    thread_id: int | None
    at: float  # time.monotonic()
    entities: tuple[dict[str, Any], ...] = ()

    def spans(self) -> list[tuple[str, str]]:
        """``(type, covered text)`` for each entity of the draft."""
        return spans(self.text, list(self.entities))


class FakeTelegramAPI:
    """The fake server. Use ``async with FakeTelegramAPI() as api`` and ``api.api_url``.

    Args:
        token: the only token it accepts; others get 401 Unauthorized.
        bot_id: the bot's user id (``getMe``).
        username: the bot's username, without ``@``.
        exclusive_polling: kept for older callers: a waiting getUpdates is always ended
            with 409 when another one arrives, as Telegram does.
    """

    def __init__(
        self,
        *,
        token: str = TOKEN,
        bot_id: int = 635392558,
        username: str = "opsdroid_bot",
        exclusive_polling: bool = False,
    ) -> None:
        self.token = token
        self.exclusive_polling = exclusive_polling
        self.bot_user = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "opsdroid",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentText] = []
        #: every draft shown, oldest first
        self.drafts: list[ShownDraft] = []
        self._sent_at: dict[int, float] = {}  # chat id: when a message was last sent there
        self.commands: list[dict[str, Any]] = []
        #: files users sent, by file_id: ``data``, ``unique_id``, and ``path`` once
        #: getFile gave one
        self.files: dict[str, dict[str, Any]] = {}
        #: every file_path downloaded, in order
        self.downloads: list[str] = []
        self.chat_actions: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {}
        self.confirmed_offset = 0
        #: Every getUpdates that terminated another one still waiting (two pollers).
        self.overlaps: list[Overlap] = []
        self._polls: list[_Poll] = []
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._next_message_id: dict[int, int] = {}
        self._errors: dict[str, deque[ScriptedError | None]] = {}
        self._sticky: dict[str, ScriptedError] = {}
        self._changed = asyncio.Condition()
        self._closing = False
        #: voice notes, audio and documents the bot uploaded, oldest first
        self.uploads: list[SentFile] = []
        # room for Telegram's 50 MB uploads
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        self._server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def conflicts(self) -> int:
        """getUpdates calls ended by a newer one (two pollers at once)."""
        return len(self.overlaps)

    async def __aenter__(self) -> FakeTelegramAPI:
        # no access log: like the real API, the fake must not write the token anywhere
        await self._server.start_server(access_log=None)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Wake every waiting long poll and stop the server."""
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        await self._server.close()

    @property
    def api_url(self) -> str:
        """The root to give the adapter as ``api_url``."""
        return f"http://127.0.0.1:{self._server.port}"

    # -- scripting ---------------------------------------------------------------------

    def fail(self, method: str, error: ScriptedError, *, times: int = 1, after: int = 0) -> None:
        """Answer ``times`` calls of ``method`` with ``error``, after ``after`` normal ones."""
        self._errors.setdefault(method, deque()).extend([None] * after + [error] * times)

    def fail_always(self, method: str, error: ScriptedError | None) -> None:
        """Answer every call of ``method`` with ``error`` until called with ``None``."""
        if error is None:
            self._sticky.pop(method, None)
        else:
            self._sticky[method] = error

    async def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (given an ``update_id`` if it has none) and wake long polls."""
        update = dict(update)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        async with self._changed:
            self._updates.append(update)
            self._changed.notify_all()
        return update

    def add_file(self, data: bytes, *, size: int | None = None) -> dict[str, Any]:
        """Keep a file a user sends; its fields as a message's ``document`` carries them
        (add ``file_name`` and ``mime_type``). ``size`` overrides the stated size."""
        number = len(self.files) + 1
        file_id = f"BQACAgIAAxkBAAI{number:04d}Zm9vYmFy"
        self.files[file_id] = {"data": data, "unique_id": f"AgAD{number:04d}", "path": None}
        return {
            "file_id": file_id,
            "file_unique_id": self.files[file_id]["unique_id"],
            "file_size": len(data) if size is None else size,
        }

    def draft_shown(self, chat_id: int, *, now: float | None = None) -> str | None:
        """What a user of ``chat_id`` sees as a draft now: the newest draft's text, unless
        it is older than :data:`DRAFT_TTL` or a message was sent to the chat after it."""
        now = time.monotonic() if now is None else now
        drafts = [d for d in self.drafts if d.chat_id == chat_id]
        if not drafts:
            return None
        newest = drafts[-1]
        if now - newest.at > DRAFT_TTL or self._sent_at.get(chat_id, -1.0) >= newest.at:
            return None
        return newest.text

    async def _send_file(self, params: dict[str, Any], kind: str) -> Any:
        chat_id = int(params["chat_id"])
        upload = params.get(kind)
        if not isinstance(upload, SentUpload):
            _refuse(400, f"Bad Request: there is no {kind} in the request")
        message_id = self._next_message_id.get(chat_id, 1000)
        self._next_message_id[chat_id] = message_id + 1
        thread = params.get("message_thread_id")
        sent = SentFile(
            chat_id=chat_id,
            message_id=message_id,
            kind=kind,
            filename=upload.filename,
            content_type=upload.content_type,
            data=upload.data,
            caption=params.get("caption"),
            thread_id=int(thread) if thread is not None else None,
        )
        self.uploads.append(sent)
        self._sent_at[chat_id] = time.monotonic()
        described: dict[str, Any] = {
            "file_id": f"SENT{message_id}",
            "file_unique_id": f"USENT{message_id}",
            "file_size": len(upload.data),
            "mime_type": upload.content_type,
        }
        if kind in ("voice", "audio"):
            described["duration"] = _ogg_duration(upload.data)
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
            "from": self.bot_user,
            kind: described,
        }

    async def _api_sendVoice(self, params: dict[str, Any]) -> Any:
        return await self._send_file(params, "voice")

    async def _api_sendAudio(self, params: dict[str, Any]) -> Any:
        return await self._send_file(params, "audio")

    async def _api_sendDocument(self, params: dict[str, Any]) -> Any:
        return await self._send_file(params, "document")

    def calls(self, method: str) -> list[RecordedRequest]:
        """The recorded requests to ``method``, oldest first."""
        return [r for r in self.requests if r.method == method]

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a higher getUpdates offset."""
        return list(self._updates)

    # -- the API -----------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return ScriptedError(401, "Unauthorized").answer()
        method = request.match_info["method"]
        params = await _params(request)
        self.requests.append(RecordedRequest(method, params, time.monotonic()))
        scripted = self._errors.get(method)
        if scripted:
            error = scripted.popleft()
            if error is not None:
                return error.answer()
        if method in self._sticky:
            return self._sticky[method].answer()
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return ScriptedError(404, "Not Found").answer()
        try:
            if method == "getUpdates":
                result = await self._get_updates(request, params)
            else:
                result = await handler(params)
        except ScriptedErrorRaised as exc:
            return exc.error.answer()
        return web.json_response({"ok": True, "result": result})

    async def _api_getMe(self, params: dict[str, Any]) -> Any:
        return self.bot_user

    async def _get_updates(self, request: web.Request, params: dict[str, Any]) -> Any:
        """getUpdates, ending any other one still waiting with 409 as Telegram does."""
        now = time.monotonic()
        for other in self._polls:
            # a poller that hung up (its request cancelled) is no longer polling
            if other.connected() and not other.terminated:
                other.terminated = True
                self.overlaps.append(Overlap(now, other.since))
        poll = _Poll(request, now)
        self._polls.append(poll)
        async with self._changed:
            self._changed.notify_all()
        try:
            return await self._api_getUpdates(params, poll)
        finally:
            self._polls.remove(poll)

    async def _api_getUpdates(self, params: dict[str, Any], poll: _Poll | None = None) -> Any:
        if self.webhook.get("url"):
            _refuse(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = float(params.get("timeout") or 0)
        if offset > 0:
            self.confirmed_offset = max(self.confirmed_offset, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        async with self._changed:
            while not self._updates and not self._closing:
                if poll is not None and poll.terminated:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    break
        if poll is not None and poll.terminated:
            raise ScriptedErrorRaised(ScriptedError.conflict())
        return self._updates[:limit]

    async def _api_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        body = str(params.get("text") or "")
        parse_mode = params.get("parse_mode")
        text = _shown_text(body, parse_mode)
        entities = _entities(text, params)
        message_id = self._next_message_id.get(chat_id, 1000)
        self._next_message_id[chat_id] = message_id + 1
        reply = params.get("reply_parameters") or {}
        thread = params.get("message_thread_id")
        sent = SentText(
            chat_id=chat_id,
            message_id=message_id,
            body=body,
            parse_mode=parse_mode,
            text=text,
            entities=entities,
            thread_id=int(thread) if thread is not None else None,
            reply_to=reply.get("message_id") if isinstance(reply, dict) else None,
        )
        self.sent.append(sent)
        self._sent_at[chat_id] = time.monotonic()
        return self._message_json(sent)

    async def _api_sendMessageDraft(self, params: dict[str, Any]) -> Any:
        chat_id = int(params["chat_id"])
        if chat_id <= 0:  # groups, supergroups and channels: drafts are for private chats
            _refuse(400, "Bad Request: TEXTDRAFT_PEER_INVALID")
        draft_id = int(params.get("draft_id") or 0)
        if draft_id == 0:
            _refuse(400, "Bad Request: DRAFT_ID_INVALID")
        body = str(params.get("text") or "")
        parse_mode = params.get("parse_mode")
        # an empty text is allowed: the apps show a "Thinking..." placeholder
        text = _shown_text(body, parse_mode) if body else ""
        entities = _entities(text, params)
        thread = params.get("message_thread_id")
        self.drafts.append(
            ShownDraft(
                chat_id=chat_id,
                draft_id=draft_id,
                body=body,
                parse_mode=parse_mode,
                text=text,
                thread_id=int(thread) if thread is not None else None,
                at=time.monotonic(),
                entities=tuple(entities),
            )
        )
        return True

    async def _api_editMessageText(self, params: dict[str, Any]) -> Any:
        sent = self._find(int(params["chat_id"]), int(params["message_id"]), "edit")
        body = str(params.get("text") or "")
        parse_mode = params.get("parse_mode")
        text = _shown_text(body, parse_mode)
        entities = _entities(text, params)
        if body == sent.body and parse_mode == sent.parse_mode and entities == sent.entities:
            _refuse(
                400,
                "Bad Request: message is not modified: specified new message content and "
                "reply markup of the submitted message are exactly the same as a current "
                "content and reply markup of the message",
            )
        sent.edits.append(body)
        sent.body, sent.parse_mode, sent.text = body, parse_mode, text
        sent.entities = entities
        return self._message_json(sent)

    async def _api_deleteMessage(self, params: dict[str, Any]) -> Any:
        sent = self._find(int(params["chat_id"]), int(params["message_id"]), "delete")
        sent.deleted = True
        return True

    async def _api_sendChatAction(self, params: dict[str, Any]) -> Any:
        self.chat_actions.append(params)
        return True

    async def _api_setMyCommands(self, params: dict[str, Any]) -> Any:
        self.commands = list(params.get("commands") or [])
        return True

    async def _api_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {
            "url": params.get("url") or "",
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
        }
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = {}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _api_getFile(self, params: dict[str, Any]) -> Any:
        stored = self.files.get(str(params.get("file_id") or ""))
        if stored is None:
            _refuse(400, "Bad Request: invalid file_id")
        if len(stored["data"]) > 20 * 1024 * 1024:
            _refuse(400, "Bad Request: file is too big")
        if stored["path"] is None:
            stored["path"] = f"documents/file_{stored['unique_id'][4:]}"
        return {
            "file_id": str(params["file_id"]),
            "file_unique_id": stored["unique_id"],
            "file_size": len(stored["data"]),
            "file_path": stored["path"],
        }

    async def _download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return ScriptedError(401, "Unauthorized").answer()
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored["path"] == path:
                self.downloads.append(path)
                return web.Response(body=stored["data"], content_type="application/octet-stream")
        return ScriptedError(404, "Not Found").answer()

    def _find(self, chat_id: int, message_id: int, verb: str) -> SentText:
        for sent in self.sent:
            if sent.chat_id == chat_id and sent.message_id == message_id and not sent.deleted:
                return sent
        _refuse(400, f"Bad Request: message to {verb} not found")
        raise AssertionError("unreachable")

    def _message_json(self, sent: SentText) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": sent.message_id,
            "from": self.bot_user,
            "chat": {
                "id": sent.chat_id,
                "type": "private" if sent.chat_id > 0 else "supergroup",
            },
            "date": int(time.time()),
            "text": sent.text,
        }
        if sent.entities:
            message["entities"] = sent.entities
        if sent.thread_id is not None:
            message["message_thread_id"] = sent.thread_id
            message["is_topic_message"] = True
        if sent.edits:
            message["edit_date"] = int(time.time())
        return message


class ScriptedErrorRaised(Exception):
    """Raised inside a method handler to answer with an error."""

    def __init__(self, error: ScriptedError) -> None:
        super().__init__(error.description)
        self.error = error


def _ogg_duration(data: bytes) -> int:
    """Whole seconds of an Ogg/Opus upload (its last granule), as Telegram reports them."""
    last = data.rfind(b"OggS")
    if not data.startswith(b"OggS") or last < 0:
        return 0
    granule = int.from_bytes(data[last + 6 : last + 14], "little", signed=True)
    return max(round((granule - 312) / 48_000), 0)


def _refuse(status: int, description: str) -> NoReturn:
    raise ScriptedErrorRaised(ScriptedError(status, description))


def _shown_text(body: str, parse_mode: Any) -> str:
    if not body.strip():
        _refuse(400, "Bad Request: message text is empty")
    text = body
    if parse_mode == "HTML":
        try:
            text = html_text(body)
        except HTMLRefused as exc:
            _refuse(400, f"Bad Request: can't parse entities: {exc}")
    elif parse_mode is not None:
        _refuse(400, f"Bad Request: unsupported parse_mode {parse_mode!r} in this fake")
    if _utf16_len(text) > 4096:
        _refuse(400, "Bad Request: message is too long")
    return text


def _entities(text: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The explicit ``entities`` of a text, checked (none when ``parse_mode`` is used)."""
    if "entities" not in params:
        return []
    if params.get("parse_mode") is not None:
        _refuse(400, "Bad Request: can't use parse_mode together with entities in this fake")
    try:
        return check_entities(text, params["entities"])
    except EntitiesRefused as exc:
        _refuse(400, f"Bad Request: can't parse entities: {exc}")
        raise AssertionError("unreachable") from exc


async def _params(request: web.Request) -> dict[str, Any]:
    """Parameters from the query string, a JSON body or a form, as Telegram accepts them."""
    params: dict[str, Any] = {key: _value(value) for key, value in request.query.items()}
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()  # multipart bodies through aiohttp's multipart reader
    for key, value in form.items():
        if isinstance(value, str):
            params[key] = _value(value)
        elif isinstance(value, FileField):
            params[key] = SentUpload(value.filename, value.content_type, value.file.read())
    return params


def _value(value: str) -> Any:
    """A query or form value: Telegram reads objects, arrays and booleans in them as JSON."""
    if value[:1] in ("[", "{") or value in ("true", "false"):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value
