"""``FakeModel``: a chat model that answers from a script and records every request."""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Self

from botkit.exceptions import ServiceError
from botkit.llm import (
    CallRecord,
    CallRecorder,
    ChatRequest,
    Completion,
    ModelInfo,
    TextDelta,
    TokenCounter,
    ToolCall,
    Usage,
)
from botkit.llm.offline import check_reply, check_request, schema_example, stream_words

__all__ = ["FakeModel", "Responder", "Scripted"]

Responder = Callable[[ChatRequest], "str | Completion | Scripted"]
"""Answers a request: reply text, a whole ``Completion``, or a :class:`Scripted` reply."""


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted model reply.

    Attributes:
        content: the reply's text (JSON text in the JSON modes).
        tool_calls: function calls the model makes.
        error: raised instead of answering (a ``ServiceError`` such as
            ``RateLimitError("llm", "slow down")``).
        usage: ``(prompt_tokens, completion_tokens)``; counted when not given.
        finish_reason: ``"stop"``, ``"length"``...; ``"tool_calls"`` when calling tools.
    """

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    error: ServiceError | None = None
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None


class FakeModel:
    """A ``ChatModel`` that answers from a script and records every request.

    Each request takes the next scripted reply for its ``purpose`` (scripted with
    ``purpose=...``), else the next one scripted for any purpose, else the default
    answer: ``"echo: <last user text>"`` in text mode, ``{"echo": ...}`` in JSON mode
    and the simplest valid document for a JSON schema. Replies go through the same
    checks as the real client's: JSON mode needs the word "JSON" in the messages, and
    a reply that is not valid JSON (or does not match the schema) raises
    ``InvalidResponseError``. Every call is reported to the bot's cost recorder, priced
    from ``input_price_per_1k`` and ``output_price_per_1k``.

    Args:
        name: the model's name.
        context_window: its window in tokens (make it small to test long inputs).
        max_output_tokens: the most tokens a reply may have.
        input_price_per_1k: dollars per 1,000 prompt tokens (``None``: the model has no prices).
        output_price_per_1k: dollars per 1,000 completion tokens.

    Attributes:
        requests: every request that reached the model, in order (refused ones and
            those a budget stopped never do).
    """

    def __init__(
        self,
        name: str = "fake-model",
        *,
        context_window: int = 128_000,
        max_output_tokens: int = 4_096,
        input_price_per_1k: Decimal | str | None = "0.001",
        output_price_per_1k: Decimal | str | None = "0.002",
    ) -> None:
        self.name = name
        self._info = ModelInfo(
            name,
            context_window,
            max_output_tokens,
            None if input_price_per_1k is None else Decimal(input_price_per_1k),
            None if output_price_per_1k is None else Decimal(output_price_per_1k),
            encoding="cl100k_base",
        )
        self._counter = TokenCounter("cl100k_base")
        self._queues: dict[str | None, deque[Scripted | Responder]] = {}
        self._defaults: dict[str | None, Responder] = {}
        self._ids = itertools.count(1)
        self.requests: list[ChatRequest] = []

    # scripting

    def reply(
        self,
        content: str,
        *,
        purpose: str | None = None,
        usage: tuple[int, int] | None = None,
        finish_reason: str = "stop",
    ) -> Self:
        """Queue a text reply (JSON text for a JSON-mode request)."""
        return self._queue(purpose, Scripted(content, usage=usage, finish_reason=finish_reason))

    def reply_json(
        self, value: Any, *, purpose: str | None = None, usage: tuple[int, int] | None = None
    ) -> Self:
        """Queue a JSON reply (``value`` encoded)."""
        return self.reply(json.dumps(value), purpose=purpose, usage=usage)

    def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | str = "{}",
        *,
        content: str | None = None,
        purpose: str | None = None,
    ) -> Self:
        """Queue a reply that calls one function (``arguments`` as JSON text, or a mapping
        to encode); ``content`` is text said along with the call."""
        text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
        call = ToolCall(f"call_{next(self._ids)}", name, text)
        return self._queue(purpose, Scripted(content, tool_calls=(call,)))

    def fail(self, error: ServiceError, *, purpose: str | None = None) -> Self:
        """Queue an error (after the real client's retries, this is what a handler sees)."""
        return self._queue(purpose, Scripted(error=error))

    def then(self, responder: Responder, *, purpose: str | None = None) -> Self:
        """Queue a function that builds the next reply from the request."""
        return self._queue(purpose, responder)

    def respond_with(self, responder: Responder, *, purpose: str | None = None) -> Self:
        """Answer every unscripted request (of ``purpose``, or any) with ``responder``."""
        self._defaults[purpose] = responder
        return self

    def _queue(self, purpose: str | None, item: Scripted | Responder) -> Self:
        self._queues.setdefault(purpose, deque()).append(item)
        return self

    # inspection

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return sum(len(q) for q in self._queues.values())

    def requests_for(self, purpose: str) -> list[ChatRequest]:
        """The requests made for one purpose (``"chat"``, ``"summary"``...)."""
        return [r for r in self.requests if r.purpose == purpose]

    # ChatModel

    def model_info(self, model: str | None = None) -> ModelInfo:
        """This model's window and prices, whatever name is asked for."""
        return self._info

    async def complete(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> Completion:
        """The next scripted reply, checked like the real client checks it.

        Raises:
            RequestRejectedError: JSON mode without the word "JSON" (nothing recorded).
            InvalidResponseError: the reply is not the JSON that was asked for.
            ServiceError: the one scripted with :meth:`fail`.
        """
        check_request(request)
        self.requests.append(request)
        started = time.monotonic()
        scripted = self._next(request)
        if scripted.error is not None:
            await self._record(record, request, None, started, scripted.error)
            raise scripted.error
        content = scripted.content
        if scripted.usage is not None:
            usage = Usage(*scripted.usage)
        else:
            said = (content or "") + "".join(c.name + c.arguments for c in scripted.tool_calls)
            usage = Usage(
                self._counter.count_messages(request.messages), self._counter.count(said)
            )
        reason = scripted.finish_reason or ("tool_calls" if scripted.tool_calls else "stop")
        completion = Completion(content, scripted.tool_calls, reason, usage, self.name)
        try:
            completion = check_reply(request, completion)
        except ServiceError as exc:
            await self._record(record, request, usage, started, exc)
            raise
        await self._record(record, request, usage, started, None)
        return completion

    async def stream(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """The same reply as :meth:`complete`, word by word, then the whole."""
        completion = await self.complete(request, record=record)
        for word in stream_words(completion.content or ""):
            yield TextDelta(word)
        yield completion

    async def close(self) -> None:
        """Nothing to release."""

    def _next(self, request: ChatRequest) -> Scripted:
        for key in (request.purpose, None):
            queue = self._queues.get(key)
            if queue:
                return _as_scripted(queue.popleft(), request)
        for key in (request.purpose, None):
            default = self._defaults.get(key)
            if default is not None:
                return _as_scripted(default, request)
        return Scripted(_echo(request))

    async def _record(
        self,
        record: CallRecorder | None,
        request: ChatRequest,
        usage: Usage | None,
        started: float,
        error: ServiceError | None,
    ) -> None:
        if record is None:
            return
        await record(
            CallRecord.of_attempt(self._info, self.name, request, usage, started, error=error)
        )

    def __repr__(self) -> str:
        return f"FakeModel(name={self.name!r}, pending={self.pending})"


def _as_scripted(item: Scripted | Responder, request: ChatRequest) -> Scripted:
    if isinstance(item, Scripted):
        return item
    answer = item(request)
    if isinstance(answer, str):
        return Scripted(answer)
    if isinstance(answer, Completion):
        usage = answer.usage
        return Scripted(
            answer.content,
            answer.tool_calls,
            usage=(usage.prompt_tokens, usage.completion_tokens) if usage else None,
            finish_reason=answer.finish_reason,
        )
    return answer


def _echo(request: ChatRequest) -> str:
    said = ""
    for message in reversed(request.messages):
        if message.get("role") == "user":
            content = message.get("content")
            said = content if isinstance(content, str) else json.dumps(content)
            break
    fmt = request.response_format
    if fmt == "text":
        return f"echo: {said}"
    if fmt == "json_object":
        return json.dumps({"echo": said})
    return json.dumps(schema_example(fmt.schema))
