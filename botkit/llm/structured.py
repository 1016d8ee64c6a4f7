"""Structured output on any OpenAI-compatible server: the best mode each model's server
supports, learnt from its first refusal.

Three modes, best first:

- ``json_schema``: ``response_format`` carries the schema; the server constrains the
  reply to it (OpenAI, vLLM, recent llama.cpp);
- ``json_object``: ``response_format`` asks for any JSON object; the schema goes into
  the system prompt;
- ``prompt``: no ``response_format`` at all; the schema goes into the system prompt and
  the reply is parsed strictly (a Markdown code fence around it is taken off).

Whatever the mode, the reply is validated against the schema the caller gave.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Literal, get_args

from botkit.exceptions import (
    AuthenticationError,
    ContextLengthError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
)
from botkit.llm.types import ChatMessage, ChatRequest, Completion, JsonSchema

__all__ = [
    "MODES",
    "StructuredMode",
    "lower_mode",
    "refuses_structure",
    "shaped",
    "unfenced",
    "wants_structure",
]

StructuredMode = Literal["json_schema", "json_object", "prompt"]
MODES: tuple[StructuredMode, ...] = get_args(StructuredMode)

# statuses a server answers a response_format it does not support with: llama.cpp's
# server 500, others 400 or 422, a few 501
_REFUSAL_STATUSES = frozenset({400, 422, 500, 501})
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL | re.IGNORECASE)


def wants_structure(request: ChatRequest) -> bool:
    """Whether the request asks for JSON (a schema, or any object)."""
    fmt = request.response_format
    return isinstance(fmt, JsonSchema) or fmt == "json_object"


def lower_mode(mode: StructuredMode) -> StructuredMode | None:
    """The next mode down, ``None`` after ``prompt``."""
    index = MODES.index(mode)
    return MODES[index + 1] if index + 1 < len(MODES) else None


def refuses_structure(error: ServiceError) -> bool:
    """Whether ``error``, the answer to a structured request, may be the server refusing
    its ``response_format`` (rather than an outage, a limit or a bad key): a refused
    request (400, 422), or a 5xx that says the request was invalid (llama.cpp's server
    answers its validation errors with a 500). A plain 5xx is an outage, retried as such,
    and never makes botkit ask for less."""
    if isinstance(error, ContextLengthError | AuthenticationError | RateLimitError):
        return False
    return isinstance(error, RequestRejectedError) and error.status in _REFUSAL_STATUSES


def shaped(request: ChatRequest, mode: StructuredMode) -> ChatRequest:
    """``request`` as sent in ``mode`` (unchanged in the mode it asks for)."""
    fmt = request.response_format
    if isinstance(fmt, JsonSchema):
        if mode == "json_schema":
            return request
        schema = json.dumps(dict(fmt.schema), ensure_ascii=False)
        instruction = (
            "Answer with one JSON object and nothing else (no prose, no code fence), "
            f"matching this JSON schema:\n{schema}"
        )
    elif fmt == "json_object":
        if mode != "prompt":
            return request
        instruction = "Answer with one JSON object and nothing else (no prose, no code fence)."
    else:
        return request
    return replace(
        request,
        messages=_with_instruction(list(request.messages), instruction),
        response_format="json_object" if mode == "json_object" else "text",
    )


def unfenced(completion: Completion) -> Completion:
    """The reply without a Markdown code fence around it (models asked in the prompt
    alone often add one)."""
    content = completion.content
    if content is None:
        return completion
    found = _FENCE.match(content)
    return replace(completion, content=found.group(1)) if found else completion


def _with_instruction(messages: list[ChatMessage], instruction: str) -> list[ChatMessage]:
    """The instruction joined to the leading system message, or one put first: many
    servers' chat templates accept a system message only at the start."""
    if messages and messages[0].get("role") == "system":
        first = messages[0]
        content = first.get("content")
        if isinstance(content, str):
            return [{**first, "content": f"{content}\n\n{instruction}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]
