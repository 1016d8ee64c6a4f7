"""``OpenAIChatClient``: chat completions from any OpenAI-compatible server, over aiohttp.

Plain and streamed replies, JSON mode and JSON schema, tools, typed errors, and retries
with jittered exponential backoff that honour ``Retry-After``; speech and transcription
(``botkit.llm.audio``) with the same retries. Every HTTP attempt is reported to the
caller's recorder with its tokens (or characters, or minutes) and cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, NoReturn

import aiohttp

from botkit.exceptions import (
    ContextLengthError,
    InvalidResponseError,
    ServiceError,
    ServiceUnavailableError,
)
from botkit.llm._errors import SERVICE, error_from_response, retry_after_from
from botkit.llm._retry import Failed, RetryPolicy
from botkit.llm._sse import SSEParser
from botkit.llm._wire import (
    StreamAssembler,
    build_body,
    check_request,
    finish,
    load_json,
    parse_completion,
)
from botkit.llm.audio import (
    SPEECH_FORMATS,
    Speech,
    SpeechRequest,
    Transcript,
    TranscriptionRequest,
    check_speech,
    check_transcription,
    parse_transcript,
    speech_body,
    speech_cost,
    transcription_fields,
)
from botkit.llm.audio_length import audio_seconds
from botkit.llm.models import ModelInfo, ModelTable, stated_window
from botkit.llm.structured import (
    MODES,
    StructuredMode,
    lower_mode,
    refuses_structure,
    shaped,
    unfenced,
    wants_structure,
)
from botkit.llm.tokens import TokenCounter
from botkit.llm.types import CallRecord, CallRecorder, ChatRequest, Completion, TextDelta, Usage
from botkit.secrets import Secret

__all__ = ["OpenAIChatClient"]

logger = logging.getLogger("botkit.llm")

_USER_AGENT = "botkit/0.1 (aiohttp)"
_ERROR_BODY_LIMIT = 64 * 1024


class OpenAIChatClient:
    """A :class:`~botkit.llm.types.ChatModel` talking to ``POST {base_url}/chat/completions``.

    Works with OpenAI (``https://api.openai.com/v1``) and compatible servers such as
    Ollama (``http://localhost:11434/v1``, no key) or vLLM.

    Retries: ``ServiceUnavailableError`` and ``RateLimitError`` are retried up to
    ``max_retries`` times, waiting what ``retry-after-ms`` or ``Retry-After`` says when
    the server says (even above ``backoff_max``, up to 60 seconds; longer, and the
    error is raised), else ``backoff_base * 2**n`` capped at ``backoff_max``, half of it
    random. Every attempt resends the same bytes. A stream is retried only until its
    first text fragment was yielded. Other errors are raised at once.

    Args:
        base_url: the API root, ending in ``/v1`` for OpenAI; a trailing slash is fine.
        api_key: sent as a Bearer token; ``None`` for servers that need none.
        model: the default model.
        models: prices and limits; unknown models get no price.
        timeout: seconds for a whole plain request, and for a stream's response headers.
        stream_idle_timeout: seconds a stream may go without any data; a long answer
            that keeps coming is never cut.
        max_retries: retries after the first attempt.
        backoff_base: the first backoff, in seconds.
        backoff_max: the longest backoff, in seconds.
        session: an aiohttp session to use (not closed by :meth:`close`); by default the
            client makes its own on first use.
        organization: sent as ``OpenAI-Organization``.
        sleep: waits between attempts; tests pass a fake.
        connections: the most connections open to the server at once (the bot passes
            ``bot.max_in_flight``); ignored when ``session`` is given.
    """

    def __init__(
        self,
        base_url: str,
        api_key: Secret | None,
        model: str,
        *,
        models: ModelTable,
        timeout: float = 60.0,
        stream_idle_timeout: float = 30.0,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        organization: str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        connections: int = 100,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must not be negative")
        self.name = model
        self.base_url = base_url.rstrip("/")
        self._url = f"{self.base_url}/chat/completions"
        self._counters: dict[str | None, TokenCounter] = {}  # by encoding, for estimates
        # structured output: the mode learnt per model, and the models it worked for
        self._structured: dict[str, StructuredMode] = {}
        self._windows: dict[str, int] = {}  # context windows servers stated in errors
        # told each structured-output mode learnt (the bot stores it for its next start)
        self.on_learnt_mode: Callable[[str, StructuredMode], Awaitable[None]] | None = None
        self._confirmed: set[str] = set()
        self._api_key = api_key
        self._models = models
        self._timeout = timeout
        self._idle_timeout = stream_idle_timeout
        self._retry = RetryPolicy(max_retries, backoff_base, backoff_max)
        self._session = session
        self._owns_session = session is None
        self._organization = organization
        self._sleep = sleep
        self._connections = connections

    def model_info(self, model: str | None = None) -> ModelInfo:
        """Limits and prices of ``model`` (default: the client's model), with the window
        its server stated in a context-length error, once one did."""
        name = model or self.name
        info = self._models.lookup(name)
        window = self._windows.get(name)
        if window is None or window >= info.context_window:
            return info
        # a learnt window smaller than assumed: leave most of it to the prompt
        output = min(info.max_output_tokens, max(window // 4, 1))
        return dataclasses.replace(info, context_window=window, max_output_tokens=output)

    def _learn_window(self, model: str, error: ServiceError) -> None:
        """Remember the window a context-length error states, so every later call (chat,
        summaries, skills) is fitted to it instead of failing first."""
        if not isinstance(error, ContextLengthError):
            return
        window = stated_window(error.reason)
        if window is None or window >= self.model_info(model).context_window:
            return
        logger.warning(
            "model %s: its server's context window is %d tokens (%d were assumed); fitting"
            " to it from now on",
            model,
            window,
            self.model_info(model).context_window,
        )
        self._windows[model] = window

    async def complete(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> Completion:
        """Ask for a whole reply; see :meth:`ChatModel.complete`.

        Raises:
            RequestRejectedError: before any request, for JSON mode without the word
                "JSON" in the messages; or the server refused the request.
            InvalidResponseError: the reply is not what the response format asked for
                (bad or cut-off JSON, a schema mismatch, a refusal in a JSON mode).
            ServiceError: the mapped error of the last attempt (see the class).
        """
        check_request(request)
        model = request.model or self.name
        if not wants_structure(request):
            return await self._complete(request, request, model, record, mode=None)
        while True:
            mode = self.structured_mode(model)
            try:
                completion = await self._complete(
                    request, shaped(request, mode), model, record, mode=mode
                )
            except _StructureRefused as refused:
                await self._downgrade(model, mode, refused.error)
                continue
            self._confirmed.add(model)
            return completion

    async def _downgrade(self, model: str, mode: StructuredMode, error: ServiceError) -> None:
        """The server refused ``mode``: ask for the next one down from now on (raise
        ``error`` when there is none), say so once, and tell whoever stores it."""
        lower = lower_mode(mode)
        if lower is None:
            raise error from None
        logger.warning(
            "model %s: the server refused %s output (%s); asking for %s from now on",
            model,
            mode,
            error.reason,
            lower,
        )
        self._structured[model] = lower
        if self.on_learnt_mode is not None:
            await self.on_learnt_mode(model, lower)

    def learnt_modes(self) -> dict[str, StructuredMode]:
        """The structured-output modes learnt so far, by model."""
        return dict(self._structured)

    def remember_modes(self, modes: Mapping[str, object]) -> None:
        """Take modes learnt by an earlier process (unknown values are ignored), so its
        first structured call is not refused again."""
        for model, mode in modes.items():
            if mode in MODES:
                self._structured[model] = mode

    def structured_mode(self, model: str | None = None) -> StructuredMode:
        """How JSON replies are asked of ``model``: as configured, else as learnt from the
        server's refusals (``botkit.llm.structured``), else ``json_schema``."""
        name = model or self.name
        return (
            self.model_info(name).structured_output or self._structured.get(name) or "json_schema"
        )

    async def _complete(
        self,
        request: ChatRequest,
        sent: ChatRequest,
        model: str,
        record: CallRecorder | None,
        *,
        mode: StructuredMode | None,
    ) -> Completion:
        """:meth:`complete` of ``sent`` (``request`` in ``mode``), checked against
        ``request``. A reply that does not match the schema is asked for once more, the
        error named; a refusal of a mode not yet seen to work ends at once
        (``_StructureRefused``), without the retries an outage gets."""
        probing = mode is not None and self._probing(model)
        body = build_body(sent, model, self.model_info(model), stream=False)
        attempt = 0
        corrected = False
        while True:
            attempt += 1
            started = time.monotonic()
            usage: Usage | None = None
            try:
                plain = await self._post_plain(body, model)
                completion = await self._with_usage(sent, model, plain)
                usage = completion.usage
                completion = finish(request, unfenced(completion) if mode else completion)
            except Failed as failed:
                await self._record(record, request, model, usage, started, attempt, failed.error)
                if probing and refuses_structure(failed.error):
                    raise _StructureRefused(failed.error) from None
                await self._backoff(failed, attempt)
                continue
            except InvalidResponseError as error:
                await self._record(record, request, model, usage, started, attempt, error)
                if mode is None or corrected or error.code not in _CORRECTABLE:
                    raise
                # one corrective try, the mistake named: not retried as if the server were down
                corrected = True
                sent = _corrective(sent, completion, error)
                body = build_body(sent, model, self.model_info(model), stream=False)
                continue
            except ServiceError as error:
                await self._record(record, request, model, usage, started, attempt, error)
                if probing and refuses_structure(error):
                    raise _StructureRefused(error) from None
                raise
            await self._record(record, request, model, usage, started, attempt, None)
            return completion

    async def stream(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """Ask for a reply as it is written; see :meth:`ChatModel.stream`.

        Close the generator (``aclose()``) to abandon the reply early; the attempt is
        then recorded as failed.

        Yields:
            ``TextDelta`` for each fragment of text, then the whole ``Completion``.

        Raises:
            ServiceUnavailableError: the stream stalled for ``stream_idle_timeout``, or
                ended before the reply was finished; retried only if no text was yielded.
            ServiceError: as for :meth:`complete`, including an error event mid-stream.
        """
        check_request(request)
        model = request.model or self.name
        structured = wants_structure(request)
        while True:
            mode = self.structured_mode(model) if structured else None
            try:
                # closed with this generator: an abandoned stream is recorded at once
                async with contextlib.aclosing(
                    self._stream(request, model, record, mode=mode)
                ) as events:
                    async for event in events:
                        yield event
            except _StructureRefused as refused:
                assert mode is not None
                await self._downgrade(model, mode, refused.error)
                continue
            if mode is not None:
                self._confirmed.add(model)
            return

    async def _stream(
        self,
        request: ChatRequest,
        model: str,
        record: CallRecorder | None,
        *,
        mode: StructuredMode | None,
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """:meth:`stream` in one structured-output ``mode`` (``None``: plain text); a
        refusal of a mode not yet seen to work ends at once (``_StructureRefused``)."""
        probing = mode is not None and self._probing(model)
        sent = shaped(request, mode) if mode is not None else request
        body = build_body(sent, model, self.model_info(model), stream=True)
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            assembler = StreamAssembler(model)
            yielded = False
            try:
                async with contextlib.aclosing(self._post_stream(body, model, assembler)) as texts:
                    async for text in texts:
                        yielded = True
                        yield TextDelta(text)
                whole = await self._with_usage(sent, model, assembler.completion())
                completion = finish(request, unfenced(whole) if mode is not None else whole)
            except Failed as failed:
                await self._record(
                    record, request, model, assembler.usage, started, attempt, failed.error
                )
                if yielded:
                    raise failed.error from failed.__cause__
                if probing and refuses_structure(failed.error):
                    raise _StructureRefused(failed.error) from None
                if failed.error.code == "empty_stream":
                    # the server said nothing at all (llama.cpp's, to a prompt past its
                    # window): asked once without streaming, it says why, or answers
                    whole_reply = self._stream_of(self.complete(request, record=record))
                    async with contextlib.aclosing(whole_reply) as events:
                        async for event in events:
                            yield event
                    return
                await self._backoff(failed, attempt)
                continue
            except ServiceError as error:
                await self._record(
                    record, request, model, assembler.usage, started, attempt, error
                )
                if probing and not yielded and refuses_structure(error):
                    raise _StructureRefused(error) from None
                raise
            except (GeneratorExit, asyncio.CancelledError):
                abandoned = ServiceUnavailableError(SERVICE, "the stream was abandoned")
                await self._record(
                    record, request, model, assembler.usage, started, attempt, abandoned
                )
                raise
            await self._record(record, request, model, completion.usage, started, attempt, None)
            yield completion
            return

    def _probing(self, model: str) -> bool:
        """Whether ``model``'s structured-output mode is still to be learnt."""
        return model not in self._confirmed and self.model_info(model).structured_output is None

    @staticmethod
    async def _stream_of(
        whole: Awaitable[Completion],
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """A whole reply as a stream: its text in one fragment, then the completion."""
        completion = await whole
        if completion.content:
            yield TextDelta(completion.content)
        yield completion

    async def close(self) -> None:
        """Close the HTTP session if this client made it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> OpenAIChatClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"OpenAIChatClient(base_url={self.base_url!r}, model={self.name!r})"

    # --- audio -------------------------------------------------------------------

    async def speak(self, request: SpeechRequest, *, record: CallRecorder | None = None) -> Speech:
        """Speak ``request.text`` with ``POST {base_url}/audio/speech``; see
        :class:`~botkit.llm.audio.AudioModel`. Retried as chat calls are; each attempt
        is recorded, the one that spoke priced per character (or per minute of the
        audio, for a model priced so)."""
        check_speech(request)
        body = speech_body(request)
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                audio = await self._post_audio("/audio/speech", body, request.model)
            except Failed as failed:
                await self._record_audio(
                    record, request.model, request.purpose, None, started, attempt, failed.error
                )
                await self._backoff(failed, attempt)
                continue
            seconds = audio_seconds(audio)
            cost = speech_cost(self.model_info(request.model), request, seconds)
            await self._record_audio(
                record, request.model, request.purpose, cost, started, attempt, None
            )
            content_type = SPEECH_FORMATS[request.format][0]
            return Speech(audio, request.format, content_type, request.model, seconds)

    async def transcribe(
        self, request: TranscriptionRequest, *, record: CallRecorder | None = None
    ) -> Transcript:
        """Write down ``request.audio`` with ``POST {base_url}/audio/transcriptions`` (a
        multipart upload); see :class:`~botkit.llm.audio.AudioModel`. Priced per minute
        of audio: the length the server reports, else the one read from the file."""
        check_transcription(request)

        def form() -> aiohttp.FormData:  # a form is spent once sent: one per attempt
            data = aiohttp.FormData()
            data.add_field(
                "file",
                request.audio,
                filename=request.filename,
                content_type=request.content_type,
            )
            for name, value in transcription_fields(request):
                data.add_field(name, value)
            return data

        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                raw = await self._post_audio("/audio/transcriptions", form, request.model)
                transcript = parse_transcript(raw, request)
            except Failed as failed:
                await self._record_audio(
                    record, request.model, request.purpose, None, started, attempt, failed.error
                )
                await self._backoff(failed, attempt)
                continue
            except ServiceError as error:
                await self._record_audio(
                    record, request.model, request.purpose, None, started, attempt, error
                )
                raise
            cost = self.model_info(request.model).audio_cost(seconds=transcript.seconds)
            await self._record_audio(
                record, request.model, request.purpose, cost, started, attempt, None
            )
            return transcript

    async def _post_audio(
        self, path: str, body: bytes | Callable[[], aiohttp.FormData], model: str
    ) -> bytes:
        """Send one audio request and read the whole reply; failures become ``Failed``."""
        session = self._get_session()
        headers = self._headers(stream=False)
        if not isinstance(body, bytes):
            del headers["Content-Type"]  # the form sets its own, with the boundary
        headers["Accept"] = "*/*"
        try:
            async with (
                asyncio.timeout(self._timeout),
                session.post(
                    f"{self.base_url}{path}",
                    data=body if isinstance(body, bytes) else body(),
                    headers=headers,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as response,
            ):
                raw = await response.read()
                if not 200 <= response.status < 300:
                    self._fail(response.status, raw, response.headers, model)
                return raw
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._unreachable(exc)

    async def _record_audio(
        self,
        record: CallRecorder | None,
        model: str,
        purpose: str,
        cost: Decimal | None,
        started: float,
        attempt: int,
        error: ServiceError | None,
    ) -> None:
        """Report one audio attempt: no tokens, its price per character or minute."""
        if record is None:
            return
        await record(
            CallRecord(
                model=model,
                purpose=purpose,
                prompt_tokens=None,
                completion_tokens=None,
                cost=cost,
                latency_s=time.monotonic() - started,
                ok=error is None,
                error=str(error) if error is not None else None,
                attempt=attempt,
            )
        )

    # --- one attempt -------------------------------------------------------------

    async def _post_plain(self, body: bytes, model: str) -> Completion:
        """Send once and read the whole reply; failures become ``Failed``.

        A kept-alive connection the server had closed meanwhile (llama.cpp's server
        closes one after a stream it cut short) is tried once more, on a new one.
        """
        session = self._get_session()
        for last in (False, True):
            try:
                async with (
                    asyncio.timeout(self._timeout),
                    session.post(
                        self._url,
                        data=body,
                        headers=self._headers(stream=False),
                        allow_redirects=False,
                        timeout=aiohttp.ClientTimeout(total=None),
                    ) as response,
                ):
                    raw = await response.read()
                    if not 200 <= response.status < 300:
                        self._fail(response.status, raw, response.headers, model)
                    break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # a connection refused is not a stale one: no second try for it
                if last or isinstance(exc, aiohttp.ClientConnectorError):
                    self._unreachable(exc)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._unreachable(exc)
        return _parse_plain(raw, model)

    async def _post_stream(
        self, body: bytes, model: str, assembler: StreamAssembler
    ) -> AsyncGenerator[str, None]:
        """Send once and yield text as it streams in; failures become ``Failed``."""
        session = self._get_session()
        response: aiohttp.ClientResponse | None = None
        ended_early = False
        try:
            whole: bytes | None = None
            async with asyncio.timeout(self._timeout):
                response = await session.post(
                    self._url,
                    data=body,
                    headers=self._headers(stream=True),
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None),
                )
                if not 200 <= response.status < 300:
                    self._fail(response.status, await response.read(), response.headers, model)
                if response.content_type == "application/json":
                    whole = await response.read()
            if whole is not None:
                # a server that ignored "stream": the whole reply in one piece
                text = assembler.absorb(_parse_plain(whole, model))
                if text:
                    yield text
                return
            content = response.content
            parser = SSEParser()
            events = 0
            while not parser.done:
                async with asyncio.timeout(self._idle_timeout):
                    chunk = await content.readany()
                for event in parser.feed(chunk) if chunk else parser.close():
                    events += 1
                    text = self._take(event.data, assembler, model)
                    if text:
                        yield text
                if not chunk:
                    break
            if not parser.done and assembler.finish_reason is None:
                ended_early = True
                raise Failed(
                    ServiceUnavailableError(
                        SERVICE,
                        "the stream ended before the reply was finished",
                        # nothing at all: how llama.cpp's server refuses some requests
                        code="empty_stream" if events == 0 else None,
                    )
                )
        except TimeoutError as exc:
            if response is None:
                message = f"no response from {self.base_url} within {self._timeout:g} s"
            else:
                message = f"the stream stalled: no data for {self._idle_timeout:g} s"
            raise Failed(ServiceUnavailableError(SERVICE, message)) from exc
        except aiohttp.ClientError as exc:
            self._unreachable(exc)
        finally:
            if response is not None and ended_early:
                response.close()  # a server that cut its stream short: not a connection to reuse
            elif response is not None:
                # back to the pool if the body was read to the end, else the connection closes
                response.release()

    def _take(self, data: str, assembler: StreamAssembler, model: str) -> str | None:
        """Apply one event's data to the assembler; an error event raises."""
        try:
            chunk = load_json(data)
        except ValueError as exc:
            raise InvalidResponseError(
                SERVICE, f"a stream event is not JSON: {data[:80]!r}"
            ) from exc
        if isinstance(chunk, dict) and ("error" in chunk or chunk.get("object") == "error"):
            # OpenAI sends {"error": {...}}; vLLM sends {"object": "error", "code": 400, ...}
            error = error_from_response(None, chunk, model=model, redact=self._secret())
            raise Failed(error)
        return assembler.add(chunk)

    # --- helpers -----------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        """The session, made on first use (it must be made inside the event loop)."""
        if self._session is None:
            # as many connections as requests the bot may have in flight at once
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(connector=connector)
            self._owns_session = True
        return self._session

    def _headers(self, *, stream: bool) -> dict[str, str]:
        """Request headers; the only place the key is revealed."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "User-Agent": _USER_AGENT,
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if self._organization:
            headers["OpenAI-Organization"] = self._organization
        return headers

    def _secret(self) -> str | None:
        """The key's value, to redact from server messages that might echo it."""
        return self._api_key.reveal() if self._api_key else None

    def _fail(self, status: int, raw: bytes, headers: Any, model: str) -> NoReturn:
        """Raise the mapped error of an HTTP failure."""
        retry_after = retry_after_from(headers)
        error = error_from_response(
            status, raw, model=model, retry_after=retry_after, redact=self._secret()
        )
        raise Failed(error, retry_after)

    def _unreachable(self, exc: BaseException) -> NoReturn:
        """Raise a retryable error for a network failure or a timeout."""
        if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ClientError):
            message = f"no reply from {self.base_url} within {self._timeout:g} s"
        else:
            message = f"cannot talk to {self.base_url}: {type(exc).__name__}"
        raise Failed(ServiceUnavailableError(SERVICE, message)) from exc

    async def _backoff(self, failed: Failed, attempt: int) -> None:
        """Wait before the next attempt, or raise the error when there is none."""
        delay = self._retry.delay(failed, attempt)
        if delay is None:
            raise failed.error from failed.__cause__
        logger.warning(
            "llm call failed (attempt %d of %d), retrying in %.2f s: %s",
            attempt,
            self._retry.max_retries + 1,
            delay,
            failed.error,
        )
        await self._sleep(delay)

    async def _with_usage(
        self, request: ChatRequest, model: str, completion: Completion
    ) -> Completion:
        """``completion`` with its usage: the server's, or, when it sent none (llama.cpp's
        server in a stream, some proxies), botkit's own count, marked as an estimate, so
        usage reports and token budgets still add up."""
        if completion.usage is not None:
            return completion
        info = self.model_info(model)
        counter = self._counters.get(info.encoding)
        if counter is None:
            counter = self._counters[info.encoding] = TokenCounter.for_model(info)
        if not counter.loaded:  # loading its tables takes up to a second: not on the loop
            await asyncio.to_thread(counter.warm)
        prompt = counter.count_messages(request.messages)
        if request.tools:
            prompt += counter.count(json.dumps(list(request.tools), default=str))
        output = counter.count(completion.content or "") + sum(
            counter.count(call.name) + counter.count(call.arguments)
            for call in completion.tool_calls
        )
        return dataclasses.replace(completion, usage=Usage(prompt, output, estimated=True))

    async def _record(
        self,
        record: CallRecorder | None,
        request: ChatRequest,
        model: str,
        usage: Usage | None,
        started: float,
        attempt: int,
        error: ServiceError | None,
    ) -> None:
        """Report one attempt to the caller's recorder (and learn from its error)."""
        if error is not None:
            self._learn_window(model, error)
        if record is None:
            return
        await record(
            CallRecord.of_attempt(
                self.model_info(model),
                model,
                request,
                usage,
                started,
                attempt=attempt,
                error=error,
            )
        )


_CORRECTABLE = frozenset({"invalid_json", "schema_mismatch"})


class _StructureRefused(Exception):
    """The server refused the structured-output mode asked for (see ``complete``)."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(str(error))
        self.error = error


def _corrective(sent: ChatRequest, completion: Completion, error: ServiceError) -> ChatRequest:
    """``sent`` again, with the reply that failed and what was wrong with it."""
    return dataclasses.replace(
        sent,
        messages=[
            *sent.messages,
            {"role": "assistant", "content": completion.content or ""},
            {
                "role": "user",
                "content": f"That reply was not valid: {error.reason}. Answer again with "
                "only the corrected JSON.",
            },
        ],
    )


def _parse_plain(raw: bytes, model: str) -> Completion:
    """A plain reply's body, decoded.

    Raises:
        InvalidResponseError: the body is not JSON or not a chat completion.
    """
    try:
        data = load_json(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidResponseError(
            SERVICE, f"the server's reply is not JSON: {raw[:80]!r}"
        ) from exc
    return parse_completion(data, model=model)
