"""The chat-completions vocabulary: requests, replies, usage, call records, ``ChatModel``.

Messages stay in OpenAI's wire format (plain dicts) so a conversation stored by the core
can be sent as is; everything else is a frozen dataclass.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from botkit.exceptions import InvalidResponseError, error_kind
from botkit.llm.encoded import EncodedMessages

if TYPE_CHECKING:
    from botkit.llm.models import ModelInfo

__all__ = [
    "CallRecord",
    "CallRecorder",
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "Completion",
    "JsonSchema",
    "ResponseFormat",
    "TextDelta",
    "ToolCall",
    "Usage",
    "message_text",
]

ChatMessage = dict[str, Any]
"""One message in OpenAI's wire format.

``{"role": "system" | "user" | "assistant" | "tool", "content": ..., "name": ...,
"tool_calls": [...], "tool_call_id": ...}``; ``content`` is a string, ``None`` (an
assistant turn that only calls tools) or a list of parts (``{"type": "text", ...}``).
"""


def message_text(message: ChatMessage, *, separator: str = "\n") -> str:
    """A message's text: its string content, or its text parts joined by ``separator``
    (image and other parts are left out); ``""`` when it has none."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return separator.join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call consumed, as the server reported them.

    Attributes:
        prompt_tokens: tokens in the request (messages, tools, overhead).
        completion_tokens: tokens the model generated.
        estimated: the server said nothing (llama.cpp's server in a stream, some
            proxies): botkit counted both with the model's tokenizer.
    """

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        """``prompt_tokens + completion_tokens``."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for.

    Attributes:
        id: the call's id; the ``tool`` message answering it repeats it as ``tool_call_id``.
        name: the function's name.
        arguments: the arguments exactly as the model wrote them (JSON text, possibly bad).
    """

    id: str
    name: str
    arguments: str

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments decoded.

        Returns:
            The JSON object the model wrote (``{}`` for empty arguments).

        Raises:
            InvalidResponseError: the arguments are not valid JSON or not a JSON object.
        """
        if not self.arguments.strip():
            return {}
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError as exc:
            raise InvalidResponseError(
                "llm",
                f"tool call {self.name!r} ({self.id}) has arguments that are not valid JSON: "
                f"{exc.msg} at character {exc.pos}",
                code="invalid_tool_arguments",
            ) from exc
        if not isinstance(value, dict):
            raise InvalidResponseError(
                "llm",
                f"tool call {self.name!r} ({self.id}) has arguments that are not a JSON object",
                code="invalid_tool_arguments",
            )
        return value

    def as_wire(self) -> dict[str, Any]:
        """This call in the wire format of an assistant message's ``tool_calls`` list."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True, slots=True)
class JsonSchema:
    """Structured output: the reply must be JSON matching ``schema``.

    Attributes:
        name: the schema's name (letters, digits, ``_`` and ``-``), sent to the server.
        schema: a JSON Schema; the reply is validated against it locally too.
        strict: ask the server to enforce the schema exactly (OpenAI structured outputs).
    """

    name: str
    schema: Mapping[str, Any]
    strict: bool = True


ResponseFormat = Literal["text", "json_object"] | JsonSchema


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One request for a reply; immutable, so a retry resends exactly the same thing.

    ``messages`` and ``tools`` are copied into tuples on creation: appending to the list
    the request was built from does not change the request. (Messages that are
    ``EncodedMessages``, immutable already, are kept as they are, with their JSON.)

    Attributes:
        messages: the conversation, oldest first, in wire format.
        model: the model to ask; ``None`` means the client's default.
        max_tokens: the most tokens the reply may have (sent as the model's
            ``token_parameter``, ``max_tokens`` or ``max_completion_tokens``).
        temperature: sampling temperature; ``None`` leaves the server's default.
        response_format: ``"text"``, ``"json_object"`` (the messages must mention JSON)
            or a :class:`JsonSchema`.
        tools: function tools in wire format (``{"type": "function", "function": {...}}``).
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a named-function mapping.
        purpose: what the call is for (``"chat"``, ``"summary"``...), for cost
            attribution only; never sent.
    """

    messages: Sequence[ChatMessage]
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    response_format: ResponseFormat = "text"
    tools: Sequence[Mapping[str, Any]] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    purpose: str = "chat"

    def __post_init__(self) -> None:
        if not isinstance(self.messages, EncodedMessages):
            object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "tools", tuple(self.tools))


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole reply.

    Attributes:
        content: the text (``None`` when the model only called tools).
        tool_calls: the function calls the model asked for, in order.
        finish_reason: ``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"``...
        usage: tokens consumed, when the server said.
        model: the model that answered, as the server named it.
        parsed: the decoded JSON in ``json_object`` and schema modes, else ``None``.
        refusal: the model's refusal text. In JSON modes a refusal raises
            ``InvalidResponseError`` instead, so this is only ever set in text mode.
    """

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str | None
    usage: Usage | None
    model: str
    parsed: Any = None
    refusal: str | None = None

    def as_message(self) -> ChatMessage:
        """This reply as an assistant message, ready to append to the conversation.

        Its content is a string even when the model only called tools (``""``, not
        ``null``): llama.cpp's server, among others, refuses a null content.
        """
        message: ChatMessage = {"role": "assistant", "content": self.content or ""}
        if self.tool_calls:
            message["tool_calls"] = [call.as_wire() for call in self.tool_calls]
        return message


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A streamed fragment of the reply's text.

    Attributes:
        text: the fragment, to append to what came before.
    """

    text: str


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One HTTP attempt at a completion, successful or not (retries make several).

    Attributes:
        model: the model asked for.
        purpose: the request's ``purpose``.
        prompt_tokens: from the server's usage, ``None`` when it did not say.
        completion_tokens: likewise.
        cost: in US dollars, priced from the model table (from botkit's own count when
            the server sent no usage: see ``estimated``); ``None`` when the model's price
            is unknown or the attempt failed before any usage.
        latency_s: seconds from sending the request to the end of the reply.
        ok: whether this attempt produced the completion.
        error: the error's text when it did not (never holds a secret).
        error_kind: its category (``rate_limit``, ``unavailable``, ``context_length``...;
            see :func:`botkit.exceptions.error_kind`).
        attempt: 1 for the first try, 2 for the first retry...
        estimated: the tokens (and the cost) are botkit's count, the server sent none.
    """

    model: str
    purpose: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: Decimal | None
    latency_s: float
    ok: bool
    error: str | None
    attempt: int
    estimated: bool = False
    error_kind: str | None = None

    @classmethod
    def of_attempt(
        cls,
        info: ModelInfo,
        model: str,
        request: ChatRequest,
        usage: Usage | None,
        started: float,
        *,
        attempt: int = 1,
        error: Exception | None = None,
    ) -> CallRecord:
        """The record of an attempt that began at ``started`` (``time.monotonic()``) and
        ends now, priced from ``info``."""
        return cls(
            model=model,
            purpose=request.purpose,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            cost=info.cost(usage),
            latency_s=time.monotonic() - started,
            ok=error is None,
            error=str(error) if error is not None else None,
            attempt=attempt,
            estimated=usage.estimated if usage else False,
            error_kind=error_kind(error) if error is not None else None,
        )


CallRecorder = Callable[[CallRecord], Awaitable[None]]
"""Called once per attempt with its :class:`CallRecord`; exceptions it raises propagate."""


@runtime_checkable
class ChatModel(Protocol):
    """What the core needs from a chat model: the real client or the offline stand-in."""

    @property
    def name(self) -> str:
        """The default model's name, used when a request names none."""
        ...

    def model_info(self, model: str | None = None) -> ModelInfo:
        """Window, output limit and prices of ``model`` (default: :attr:`name`)."""
        ...

    async def complete(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> Completion:
        """Ask for a whole reply.

        Args:
            request: what to ask.
            record: called once per HTTP attempt with a :class:`CallRecord`.

        Returns:
            The reply.

        Raises:
            ServiceError: a subclass saying what went wrong, after any retries.
        """
        ...

    def stream(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> AsyncIterator[TextDelta | Completion]:
        """Ask for a reply as it is written.

        Yields:
            :class:`TextDelta` fragments, then exactly one :class:`Completion` (the
            assembled whole, with usage).

        Raises:
            ServiceError: as for :meth:`complete`; retried only before the first
                fragment was yielded.
        """
        ...

    async def close(self) -> None:
        """Release connections; the model is unusable afterwards."""
        ...
