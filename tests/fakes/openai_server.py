"""A fake OpenAI chat-completions server: scripted per test, recording every request.

It speaks the real wire format (plain JSON, server-sent events, OpenAI error bodies) on
127.0.0.1, port 0. With nothing scripted it echoes::

    async with FakeOpenAI() as fake:                       # or the `fake_openai` fixture
        client = OpenAIChatClient(fake.url, None, "gpt-4o-mini", models=ModelTable())
        reply = await client.complete(ChatRequest([{"role": "user", "content": "hi"}]))
        assert reply.content == "echo: hi"
        assert fake.requests[0].json["model"] == "gpt-4o-mini"

Script replies in order with :meth:`FakeOpenAI.script` and the builders below
(:func:`completion`, :func:`stream`, :func:`error`, :func:`raw` and presets such as
:func:`rate_limited`); each request takes the next one, and the echo answers once the
queue is empty. A :func:`completion` served to a request with ``"stream": true`` is
streamed word by word, so scripts work for both kinds of call.

For outages that last a while rather than a number of requests, set
:attr:`FakeOpenAI.default` (what answers once the queue is empty, instead of the echo):
``fake.default = server_error()`` for a 500 burst, ``fake.default = hang(60)`` for a model
that accepts requests and says nothing, ``fake.default = echo(pad_words=40, interval=0.1)``
for long, slow streamed answers; ``None`` brings the echo back.

The audio endpoints answer as OpenAI's do. ``POST /v1/audio/speech`` (JSON) returns real
audio: Ogg/Opus for ``"opus"`` (its ``OpusTags`` carry ``SPOKEN=<the input>``), MP3
otherwise, a second per 15 characters. ``POST /v1/audio/transcriptions`` reads the
multipart form with aiohttp's reader and answers ``{"text": ...}`` with the text an
Ogg/Opus upload carries in its ``TRANSCRIPT`` comment (see ``tests.fakes.audio_files``),
and ``usage`` as OpenAI reports it (seconds for ``whisper-1``, tokens for the
``gpt-4o-*-transcribe`` models). Both refuse what OpenAI refuses: an unknown model,
voice or format, an empty or over-long input (400), a file that is not audio (400), a
file over 25 MB (413). Script them with :meth:`FakeOpenAI.script_audio` and the same
builders (``rate_limited()``, ``error(...)``).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pytest_asyncio
from aiohttp import BodyPartReader, web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from tests.fakes.audio_files import comments_of, mp3_silence, ogg_opus

__all__ = [
    "FakeOpenAI",
    "RecordedRequest",
    "Responder",
    "ToolCallSpec",
    "UploadedFile",
    "bad_gateway_html",
    "completion",
    "context_length_exceeded",
    "echo",
    "error",
    "fake_openai",
    "format_refused",
    "hang",
    "insufficient_quota",
    "model_not_found",
    "rate_limited",
    "raw",
    "server_error",
    "stream",
    "unauthorized",
    "validation_error",
]

ToolCallSpec = tuple[str, str, str]
"""A tool call to answer with: ``(id, function name, arguments JSON text)``."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received.

    Attributes:
        method: ``"POST"``...
        path: ``"/v1/chat/completions"``...
        headers: case-insensitive.
        body: the raw bytes.
        json: the decoded body, ``None`` if it was not JSON.
        form: a multipart upload's fields, as read by aiohttp's multipart reader: text
            fields as ``str``, files as :class:`UploadedFile`.
    """

    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any
    form: dict[str, Any] | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's ``messages``."""
        if not isinstance(self.json, dict):
            return []
        messages: list[dict[str, Any]] = self.json.get("messages", [])
        return messages

    @property
    def wants_stream(self) -> bool:
        """Whether the request asked for a stream."""
        return isinstance(self.json, dict) and self.json.get("stream") is True


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart upload."""

    filename: str | None
    content_type: str
    data: bytes


SPEECH_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts"})
VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer"}
)
SPEECH_FORMATS = frozenset({"mp3", "opus", "aac", "flac", "wav", "pcm"})
TRANSCRIPTION_MODELS = frozenset({"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"})
MAX_UPLOAD = 26_214_400  # 25 MB, as OpenAI counts it
_AUDIO_FORMATS = "['flac', 'm4a', 'mp3', 'mp4', 'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"

Responder = Callable[[web.Request, RecordedRequest, "FakeOpenAI"], Awaitable[web.StreamResponse]]
"""One scripted reply: builds the response to a request."""


class FakeOpenAI:
    """The fake server. Start it with ``async with`` (or :meth:`start`/:meth:`close`).

    Attributes:
        requests: every request received, in order.
        model: the model named in echo replies when the request names none.
        default: what answers once the scripted queue is empty; ``None``: the echo.
        strict_content: like llama.cpp's server, refuse (500) a request with a message
            whose ``content`` is null (an assistant turn that only calls tools).
        refused_formats: ``response_format`` types it answers 500 to, as servers that
            do not support them do (``{"json_schema"}``, ``{"json_schema", "json_object"}``),
            with llama-cpp-python's body: a validation error (:func:`format_refused`).
    """

    def __init__(self, *, model: str = "gpt-4o-mini") -> None:
        self.model = model
        self.requests: list[RecordedRequest] = []
        self.default: Responder | None = None
        self.strict_content = False
        self.refused_formats: set[str] = set()
        self._queue: deque[Responder] = deque()
        self._audio_queue: deque[Responder] = deque()
        self._closing = asyncio.Event()
        # room for uploads past OpenAI's 25 MB, so the fake itself answers 413
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_get("/v1/models", self._models)
        self._server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        """The base URL to give a client: ``http://127.0.0.1:PORT/v1``."""
        return str(self._server.make_url("/v1"))

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        return len(self._queue)

    @property
    def closing(self) -> asyncio.Event:
        """Set when the server is closing; stalled replies give up on it."""
        return self._closing

    def script(self, *responders: Responder) -> None:
        """Queue replies; each request takes the next one."""
        self._queue.extend(responders)

    def script_audio(self, *responders: Responder) -> None:
        """Queue replies to the audio endpoints; each audio request takes the next one,
        and the real behaviour answers once the queue is empty."""
        self._audio_queue.extend(responders)

    @property
    def audio_requests(self) -> list[RecordedRequest]:
        """The requests to the audio endpoints, in order."""
        return [r for r in self.requests if r.path.startswith("/v1/audio/")]

    async def start(self) -> None:
        """Start listening."""
        await self._server.start_server()

    async def close(self) -> None:
        """Stop listening; stalled replies end at once."""
        self._closing.set()
        await self._server.close()

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            decoded: Any = json.loads(body)
        except ValueError:
            decoded = None
        recorded = RecordedRequest(
            request.method,
            request.path,
            CIMultiDictProxy(CIMultiDict(request.headers)),
            body,
            decoded,
        )
        self.requests.append(recorded)
        if self.strict_content and any(m.get("content") is None for m in recorded.messages):
            return web.json_response(
                {
                    "error": {
                        "code": 500,
                        "message": "Expected 'content' to be a string or an array",
                        "type": "server_error",
                    }
                },
                status=500,
            )
        fmt = _format_type(recorded)
        if fmt in self.refused_formats:
            return await format_refused(fmt, self.refused_formats)(request, recorded, self)
        responder = self._queue.popleft() if self._queue else (self.default or _echo)
        try:
            return await responder(request, recorded, self)
        except ConnectionError:
            # the client hung up (an idle timeout, say); nothing left to answer
            return web.Response(status=499)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            decoded: Any = json.loads(body)
        except ValueError:
            decoded = None
        recorded = RecordedRequest(
            request.method,
            request.path,
            CIMultiDictProxy(CIMultiDict(request.headers)),
            body,
            decoded,
        )
        self.requests.append(recorded)
        if self._audio_queue:
            return await self._audio_queue.popleft()(request, recorded, self)
        return _speak(recorded)

    async def _transcription(self, request: web.Request) -> web.StreamResponse:
        form: dict[str, Any] = {}
        if request.content_type != "multipart/form-data":
            form_error = "Content-Type must be multipart/form-data"
        else:
            form_error = ""
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    data = bytes(await part.read())
                    content_type = part.headers.get("Content-Type", "application/octet-stream")
                    form[part.name] = UploadedFile(part.filename, content_type, data)
                else:
                    form[part.name] = await part.text()
        recorded = RecordedRequest(
            request.method,
            request.path,
            CIMultiDictProxy(CIMultiDict(request.headers)),
            b"",
            None,
            form,
        )
        self.requests.append(recorded)
        if form_error:
            return _openai_error(400, form_error)
        if self._audio_queue:
            return await self._audio_queue.popleft()(request, recorded, self)
        return _transcribe(form)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "fake"}]}
        )


@pytest_asyncio.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A started :class:`FakeOpenAI`, closed after the test."""
    async with FakeOpenAI() as server:
        yield server


# --- the audio endpoints' real behaviour ------------------------------------------------


def _openai_error(status: int, message: str, *, param: str | None = None) -> web.Response:
    kind = "server_error" if status >= 500 or status == 413 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return web.json_response(body, status=status)


def _speak(recorded: RecordedRequest) -> web.Response:
    body = recorded.json if isinstance(recorded.json, dict) else {}
    model, text = body.get("model"), body.get("input")
    voice, fmt = body.get("voice"), body.get("response_format", "mp3")
    if model not in SPEECH_MODELS:
        return _openai_error(400, f"Invalid model: {model!r}", param="model")
    if not isinstance(text, str) or not text:
        return _openai_error(400, "Input must not be empty.", param="input")
    if len(text) > 4096:
        return _openai_error(
            400,
            "[{'type': 'string_too_long', 'loc': ('body', 'input'), 'msg': 'String should "
            "have at most 4096 characters'}]",
            param="input",
        )
    if voice not in VOICES:
        return _openai_error(400, f"Invalid voice: {voice!r}", param="voice")
    if fmt not in SPEECH_FORMATS:
        return _openai_error(400, f"Invalid response_format: {fmt!r}", param="response_format")
    seconds = max(len(text) / 15, 0.2)
    if fmt == "opus":
        return web.Response(
            body=ogg_opus(seconds, comments={"SPOKEN": text, "VOICE": voice}),
            content_type="audio/ogg",
        )
    return web.Response(body=mp3_silence(seconds), content_type="audio/mpeg")


def _audio_kind(data: bytes) -> str | None:
    """The container a file's first bytes say it is, as the API sniffs it."""
    if data.startswith(b"OggS"):
        return "ogg"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "mp3"
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return "wav"
    if data.startswith(b"fLaC"):
        return "flac"
    if data[4:8] == b"ftyp":
        return "m4a"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return None


def _transcribe(form: dict[str, Any]) -> web.Response:
    model, upload = form.get("model"), form.get("file")
    if not isinstance(upload, UploadedFile):
        return _openai_error(400, "you must provide a file", param="file")
    if len(upload.data) > MAX_UPLOAD:
        return _openai_error(
            413,
            f"Maximum content size limit ({MAX_UPLOAD}) exceeded ({len(upload.data)} bytes read)",
        )
    if model not in TRANSCRIPTION_MODELS:
        return _openai_error(400, f"Invalid model: {model!r}", param="model")
    if form.get("response_format", "json") not in ("json", "text", "verbose_json"):
        return _openai_error(400, "Invalid response_format", param="response_format")
    kind = _audio_kind(upload.data)
    if kind is None:
        return _openai_error(
            400, f"Invalid file format. Supported formats: {_AUDIO_FORMATS}", param="file"
        )
    text = comments_of(upload.data).get("TRANSCRIPT", "") if kind == "ogg" else ""
    seconds = _seconds_of(upload.data) if kind == "ogg" else 1.0
    usage: dict[str, Any]
    if model == "whisper-1":
        usage = {"type": "duration", "seconds": math.ceil(seconds)}
    else:
        audio_tokens = math.ceil(seconds * 10)
        usage = {
            "type": "tokens",
            "input_tokens": audio_tokens,
            "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
            "output_tokens": len(text.split()),
            "total_tokens": audio_tokens + len(text.split()),
        }
    return web.json_response({"text": text, "usage": usage})


def _seconds_of(data: bytes) -> float:
    """An Ogg/Opus file's length from its last page's granule position."""
    last = data.rfind(b"OggS")
    granule = int.from_bytes(data[last + 6 : last + 14], "little", signed=True)
    return max(granule - 312, 0) / 48_000


# --- builders -------------------------------------------------------------------------


def completion(
    content: str | None = "Hello from the fake model.",
    *,
    tool_calls: Sequence[ToolCallSpec] = (),
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = (12, 7),
    model: str | None = None,
    refusal: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Responder:
    """A normal reply (``finish_reason`` defaults to ``"stop"``, or ``"tool_calls"``).

    Served to a streaming request, the same reply is streamed word by word.
    """
    reason = finish_reason or ("tool_calls" if tool_calls else "stop")

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        if recorded.wants_stream:
            pieces = _words(content) if content else []
            inner = stream(
                pieces,
                tool_calls=tool_calls,
                finish_reason=reason,
                usage=usage,
                model=model,
                refusal=refusal,
            )
            return await inner(request, recorded, fake)
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
        if tool_calls:
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}}
                for i, n, a in tool_calls
            ]
        body = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": _model(recorded, fake, model),
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
            ],
            "usage": _usage(usage),
        }
        return web.json_response(body, headers=headers)

    return respond


def stream(
    pieces: Sequence[str] = ("Hello", " from", " the", " fake."),
    *,
    tool_calls: Sequence[ToolCallSpec] = (),
    finish_reason: str | None = "stop",
    usage: tuple[int, int] | None = (12, 4),
    model: str | None = None,
    refusal: str | None = None,
    done: bool = True,
    error_after: int | None = None,
    error_body: Mapping[str, Any] | None = None,
    chunk_size: int | None = None,
    interval: float = 0.0,
    stall_after: int | None = None,
    stall_for: float = 30.0,
    crlf: bool = False,
    comment: bool = True,
) -> Responder:
    """A streamed reply (server-sent events, as OpenAI sends them).

    Args:
        pieces: the content fragments, one event each.
        tool_calls: calls streamed after the content: a first fragment with id and name,
            then the arguments in three fragments, all by ``index``.
        finish_reason: in the last choice chunk; ``None`` sends no finish chunk at all.
        usage: the usage-only chunk (empty ``choices``) before ``[DONE]``; ``None`` omits it.
        model: the model named in the chunks (default: the request's).
        refusal: refusal text streamed in ``delta.refusal``.
        done: end with ``data: [DONE]``.
        error_after: after this many content events, send an error event and stop.
        error_body: that event's ``{"error": {...}}`` (default: a ``server_error``).
        chunk_size: write the stream in pieces of this many bytes (splitting lines and
            UTF-8 characters); default: events written as they come, all at once.
        interval: seconds to wait between writes (events, or pieces with ``chunk_size``;
            pieces are always written one event-loop turn apart).
        stall_after: after this many events, go silent for ``stall_for`` seconds (or
            until the client hangs up or the server closes), then send the rest.
        stall_for: see ``stall_after``.
        crlf: end lines with ``\\r\\n`` instead of ``\\n``.
        comment: start with a ``: keep-alive`` comment line.
    """

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        name = _model(recorded, fake, model)
        events = _stream_events(name, pieces, tool_calls, finish_reason, usage, refusal)
        if error_after is not None:
            body = error_body or {
                "error": {"message": "The server had an error.", "type": "server_error"}
            }
            events = [*events[: error_after + 1], json.dumps(body)]
            ended = False
        else:
            ended = done
        nl = "\r\n" if crlf else "\n"
        texts = [f"data: {event}{nl}{nl}" for event in events]
        if ended:
            texts.append(f"data: [DONE]{nl}{nl}")
        if comment:
            texts.insert(0, f": keep-alive{nl}")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        writes: list[bytes]
        if chunk_size is None:
            writes = [t.encode() for t in texts]
            if interval == 0 and stall_after is None:
                writes = [b"".join(writes)]  # several events in one write
        else:
            whole = "".join(texts).encode()
            writes = [whole[i : i + chunk_size] for i in range(0, len(whole), chunk_size)]
        stall_at = None if stall_after is None else stall_after + (1 if comment else 0)
        for index, data in enumerate(writes):
            if index == stall_at:
                await _stall(request, fake, stall_for)
            if index and interval:
                await asyncio.sleep(interval)
            elif index and chunk_size is not None:
                await asyncio.sleep(0)  # let the client read each piece on its own
            await response.write(data)
        await response.write_eof()
        return response

    return respond


def error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Responder:
    """An OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return raw(status, json.dumps(body), content_type="application/json", headers=headers)


def raw(
    status: int,
    body: str | bytes,
    *,
    content_type: str = "text/plain",
    headers: Mapping[str, str] | None = None,
) -> Responder:
    """Any status and body, as is (an HTML error page from a proxy, say)."""

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        data = body.encode() if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type, **(headers or {})}
        return web.Response(status=status, body=data, headers=all_headers)

    return respond


def rate_limited(
    *,
    retry_after: str | None = None,
    retry_after_ms: str | None = None,
    message: str | None = None,
) -> Responder:
    """429 ``rate_limit_exceeded``, with ``Retry-After`` / ``retry-after-ms`` if given."""
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    if retry_after_ms is not None:
        headers["retry-after-ms"] = retry_after_ms
    text = message or "Rate limit reached for requests. Please slow down."
    return error(429, text, type="requests", code="rate_limit_exceeded", headers=headers)


def insufficient_quota() -> Responder:
    """429 ``insufficient_quota``: the account is out of credit."""
    return error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        type="insufficient_quota",
        code="insufficient_quota",
    )


def server_error(status: int = 500) -> Responder:
    """A 5xx with OpenAI's ``server_error`` body."""
    return error(
        status, "The server had an error while processing your request.", type="server_error"
    )


def bad_gateway_html() -> Responder:
    """A proxy's 502 page: HTML, not JSON."""
    page = (
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return raw(502, page, content_type="text/html")


def context_length_exceeded() -> Responder:
    """400 ``context_length_exceeded``, as OpenAI words it."""
    return error(
        400,
        "This model's maximum context length is 8192 tokens. However, your messages resulted "
        "in 9001 tokens. Please reduce the length of the messages.",
        param="messages",
        code="context_length_exceeded",
    )


def unauthorized(*, echo_key: bool = False) -> Responder:
    """401 ``invalid_api_key``; with ``echo_key`` the message repeats the whole key sent
    (real servers mask it; this checks that the client never passes it on)."""

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        key = recorded.headers.get("Authorization", "").removeprefix("Bearer ")
        shown = key if echo_key else f"{key[:3]}***{key[-4:]}"
        inner = error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
        return await inner(request, recorded, fake)

    return respond


def model_not_found() -> Responder:
    """404 ``model_not_found`` for the model the request named."""

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        name = _model(recorded, fake, None)
        inner = error(
            404,
            f"The model `{name}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
        return await inner(request, recorded, fake)

    return respond


def validation_error(*errors: tuple[str, tuple[str | int, ...], str, Any]) -> Responder:
    """A request-validation failure as llama-cpp-python's server reports it: status 500,
    pydantic's errors (``(type, loc, msg, input)``, ``loc`` under ``"body"``) and a bit of
    the server's traceback in one multi-line message."""
    lines = [
        f"  {{'type': {kind!r}, 'loc': {('body', *loc)!r}, 'msg': {msg!r}, 'input': {value!r}}}"
        for kind, loc, msg, value in errors
    ]
    count = f"{len(errors)} validation error{'s' if len(errors) != 1 else ''}:"
    where = (
        '  File "/srv/llama_cpp/server/app.py", line 376, in create_chat_completion\n'
        "    POST /v1/chat/completions"
    )
    message = "\n".join([count, *lines, "", where])
    return error(500, message, type="internal_server_error")


def format_refused(fmt: str, refused: Collection[str] = ("json_schema",)) -> Responder:
    """How llama-cpp-python's server answers a ``response_format`` type it does not
    support (it knows ``text`` and ``json_object``): a 500 with the validation error."""
    known = [f"'{t}'" for t in ("text", "json_object", "json_schema") if t not in refused]
    return validation_error(
        (
            "literal_error",
            ("response_format", "type"),
            f"Input should be {' or '.join(known)}",
            fmt,
        )
    )


def hang(seconds: float, *, then: Responder | None = None) -> Responder:
    """Accept the request and send nothing for ``seconds`` (or until the client hangs up or
    the server closes), then answer with ``then`` (default: the echo)."""

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        await _stall(request, fake, seconds)
        return await (then or _echo)(request, recorded, fake)

    return respond


def echo(
    *,
    pad_words: int = 0,
    interval: float = 0.0,
    stall_after: int | None = None,
    stall_for: float = 30.0,
) -> Responder:
    """The echo (``"echo: <last user text>"``), followed by ``pad_words`` words
    ``" w0 w1 ..."``; streamed word by word ``interval`` seconds apart to a streaming
    request, going silent after ``stall_after`` events (see :func:`stream`)."""

    async def respond(
        request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
    ) -> web.StreamResponse:
        said = _last_user_text(recorded)
        content = f"echo: {said}" + "".join(f" w{i}" for i in range(pad_words))
        if not recorded.wants_stream:
            return await completion(content)(request, recorded, fake)
        inner = stream(
            _words(content), interval=interval, stall_after=stall_after, stall_for=stall_for
        )
        return await inner(request, recorded, fake)

    return respond


# --- helpers ---------------------------------------------------------------------------


def _last_user_text(recorded: RecordedRequest) -> str:
    """The last user message's text (JSON text for structured content)."""
    for message in reversed(recorded.messages):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


async def _echo(
    request: web.Request, recorded: RecordedRequest, fake: FakeOpenAI
) -> web.StreamResponse:
    """The reply when nothing is scripted: "echo: <last user text>" (JSON in JSON modes)."""
    said = ""
    for message in reversed(recorded.messages):
        if message.get("role") == "user":
            content = message.get("content")
            said = content if isinstance(content, str) else json.dumps(content)
            break
    fmt = recorded.json.get("response_format") if isinstance(recorded.json, dict) else None
    wants_json = isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")
    content = json.dumps({"echo": said}) if wants_json else f"echo: {said}"
    prompt = sum(3 + len(str(m.get("content") or "").split()) for m in recorded.messages) + 3
    inner = completion(content, usage=(prompt, len(content.split())))
    return await inner(request, recorded, fake)


async def _stall(request: web.Request, fake: FakeOpenAI, seconds: float) -> None:
    """Go silent until ``seconds`` pass, the client hangs up, or the server closes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not fake.closing.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away")
        await asyncio.sleep(0.02)


def _format_type(recorded: RecordedRequest) -> str | None:
    """The request's ``response_format.type``, if any."""
    if not isinstance(recorded.json, dict):
        return None
    fmt = recorded.json.get("response_format")
    return str(fmt.get("type")) if isinstance(fmt, dict) else None


def _model(recorded: RecordedRequest, fake: FakeOpenAI, model: str | None) -> str:
    """The model to name in a reply."""
    if model is not None:
        return model
    if isinstance(recorded.json, dict) and isinstance(recorded.json.get("model"), str):
        return str(recorded.json["model"])
    return fake.model


def _usage(usage: tuple[int, int] | None) -> dict[str, int] | None:
    if usage is None:
        return None
    prompt, completion_tokens = usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _words(text: str) -> list[str]:
    """``text`` cut before each space, so the pieces join back exactly."""
    pieces: list[str] = []
    start = 0
    for index in range(1, len(text)):
        if text[index] == " " and text[index - 1] != " ":
            pieces.append(text[start:index])
            start = index
    pieces.append(text[start:])
    return pieces


def _stream_events(
    model: str,
    pieces: Sequence[str],
    tool_calls: Sequence[ToolCallSpec],
    finish_reason: str | None,
    usage: tuple[int, int] | None,
    refusal: str | None,
) -> list[str]:
    """The JSON text of every chunk of a streamed reply, in order."""
    created = int(time.time())

    def chunk(delta: dict[str, Any], reason: str | None = None) -> str:
        return json.dumps(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
                ],
                "usage": None,
            },
            ensure_ascii=False,
        )

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in pieces]
    if refusal is not None:
        events += [chunk({"refusal": part}) for part in _words(refusal)]
    for index, (call_id, name, arguments) in enumerate(tool_calls):
        first = {"index": index, "id": call_id, "type": "function"}
        events.append(
            chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]})
        )
        third = max(1, len(arguments) // 3)
        parts = [arguments[:third], arguments[third : 2 * third], arguments[2 * third :]]
        events += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            for part in parts
            if part
        ]
    if finish_reason is not None:
        events.append(chunk({}, finish_reason))
    if usage is not None:
        events.append(
            json.dumps(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _usage(usage),
                }
            )
        )
    return events
