"""The chat-completions wire format: request bodies, replies, stream chunks, JSON modes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from botkit.exceptions import InvalidResponseError, RequestRejectedError
from botkit.llm._errors import SERVICE
from botkit.llm.encoded import EncodedMessages, encode
from botkit.llm.models import ModelInfo
from botkit.llm.types import ChatMessage, ChatRequest, Completion, JsonSchema, ToolCall, Usage

__all__ = [
    "StreamAssembler",
    "build_body",
    "check_request",
    "finish",
    "load_json",
    "parse_completion",
    "parse_usage",
]


def check_request(request: ChatRequest) -> None:
    """Refuse, before sending, a request the server would refuse.

    Raises:
        RequestRejectedError: ``json_object`` mode without the word "JSON" in any
            message, a ``JsonSchema`` that is not a valid schema, or no messages.
    """
    if not request.messages:
        raise RequestRejectedError(SERVICE, "a chat request needs at least one message")
    fmt = request.response_format
    if fmt == "json_object" and not any("json" in _text(m).lower() for m in request.messages):
        raise RequestRejectedError(
            SERVICE,
            'JSON mode (response_format "json_object") requires the messages to contain '
            'the word "JSON"; say in the system prompt that the answer is JSON',
            code="json_word_missing",
        )
    if isinstance(fmt, JsonSchema):
        # imported here: only a JSON-schema request needs it (~3 MiB resident)
        import jsonschema.exceptions
        import jsonschema.validators

        try:
            jsonschema.validators.validator_for(fmt.schema).check_schema(dict(fmt.schema))
        except jsonschema.exceptions.SchemaError as exc:
            raise RequestRejectedError(
                SERVICE, f"JSON schema {fmt.name!r} is not a valid schema: {exc.message}"
            ) from exc


def build_body(request: ChatRequest, model: str, info: ModelInfo, *, stream: bool) -> bytes:
    """The request's JSON body, encoded once so every retry sends the same bytes."""
    messages = request.messages
    # a long history's turns come encoded already (``EncodedMessages``): copied, not redone
    wire = (
        orjson.Fragment(messages.json) if isinstance(messages, EncodedMessages) else list(messages)
    )
    body: dict[str, Any] = {"model": model, "messages": wire}
    if request.max_tokens is not None:
        body[info.token_parameter] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    fmt = request.response_format
    if fmt == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, JsonSchema):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.name, "schema": dict(fmt.schema), "strict": fmt.strict},
        }
    if request.tools:
        body["tools"] = [dict(tool) for tool in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = (
            request.tool_choice
            if isinstance(request.tool_choice, str)
            else dict(request.tool_choice)
        )
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return encode(body)


def load_json(raw: bytes | str) -> Any:
    """A reply body or stream event, decoded: with orjson (several times quicker), and
    the standard module where orjson refuses what it accepts (NaN, integers past 64
    bits), so no server's reply reads differently.

    Raises:
        ValueError: it is not JSON (or not UTF-8).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def parse_completion(data: Any, *, model: str) -> Completion:
    """A non-streamed reply's body, decoded.

    Raises:
        InvalidResponseError: the body is not a chat completion.
    """
    try:
        choice = data["choices"][0]
        message = choice["message"]
        calls = tuple(
            ToolCall(
                str(call.get("id", "")),
                str(call["function"]["name"]),
                str(call["function"].get("arguments") or ""),
            )
            for call in message.get("tool_calls") or ()
        )
        content = message.get("content")
        return Completion(
            content=content if isinstance(content, str) else None,
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
            usage=parse_usage(data.get("usage")),
            model=str(data.get("model") or model),
            refusal=message.get("refusal") or None,
        )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise InvalidResponseError(
            SERVICE, f"the server's reply is not a chat completion ({_describe(exc)})"
        ) from exc


def parse_usage(data: Any) -> Usage | None:
    """The ``usage`` object, or ``None`` when absent or malformed."""
    if not isinstance(data, Mapping):
        return None
    prompt = data.get("prompt_tokens")
    completion = data.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(prompt, completion)


@dataclass(slots=True)
class _PartialCall:
    """A tool call being streamed: id and name arrive first, arguments in fragments."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class StreamAssembler:
    """Builds the whole :class:`Completion` from stream chunks."""

    model: str
    text: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: Usage | None = None

    def add(self, chunk: Any) -> str | None:
        """Take one chunk; return its new text, if any.

        Raises:
            InvalidResponseError: the chunk is not a chat-completion chunk.
        """
        if not isinstance(chunk, Mapping):
            raise InvalidResponseError(SERVICE, "a stream chunk is not a JSON object")
        if chunk.get("model"):
            self.model = str(chunk["model"])
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self.usage = usage
        text: str | None = None
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.text.append(content)
                text = content if text is None else text + content
            if isinstance(delta.get("refusal"), str):
                self.refusal.append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                self._add_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return text

    def _add_call(self, fragment: Any) -> None:
        """Merge one tool-call fragment, by its ``index``."""
        if not isinstance(fragment, Mapping):
            return
        index = fragment.get("index", len(self.calls))
        partial = self.calls.setdefault(int(index), _PartialCall())
        if fragment.get("id"):
            partial.id = str(fragment["id"])
        function = fragment.get("function") or {}
        name = str(function.get("name") or "")
        if name and name != partial.name:
            # OpenAI sends the name once; llama-cpp-python repeats it in every fragment
            partial.name += name
        if function.get("arguments"):
            partial.arguments.append(str(function["arguments"]))

    def absorb(self, reply: Completion) -> str | None:
        """Take a whole non-streamed reply (from a server that ignored ``stream``)."""
        self.model = reply.model
        self.finish_reason = reply.finish_reason
        self.usage = reply.usage
        if reply.refusal:
            self.refusal.append(reply.refusal)
        for index, call in enumerate(reply.tool_calls):
            self.calls[index] = _PartialCall(call.id, call.name, [call.arguments])
        if reply.content:
            self.text.append(reply.content)
        return reply.content or None

    def completion(self) -> Completion:
        """The assembled reply."""
        calls = tuple(
            ToolCall(c.id, c.name, "".join(c.arguments)) for _, c in sorted(self.calls.items())
        )
        return Completion(
            content="".join(self.text) if self.text else (None if calls else ""),
            tool_calls=calls,
            finish_reason=self.finish_reason,
            usage=self.usage,
            model=self.model,
            refusal="".join(self.refusal) or None,
        )


def finish(request: ChatRequest, completion: Completion) -> Completion:
    """Check the reply against what was asked for; decode JSON in the JSON modes.

    In text mode a refusal is returned in ``Completion.refusal``; in the JSON modes it
    is an error, because the caller expects a document.

    Raises:
        InvalidResponseError: in a JSON mode: a refusal, a reply cut off at the token
            limit, text that is not JSON (or not an object in ``json_object`` mode), or a
            document that does not match the schema.
    """
    fmt = request.response_format
    if fmt == "text" or completion.tool_calls:
        return completion
    if completion.refusal:
        raise InvalidResponseError(
            SERVICE, f"the model refused to answer: {completion.refusal}", code="refusal"
        )
    if completion.finish_reason == "length":
        raise InvalidResponseError(
            SERVICE,
            "the JSON reply was cut off at the token limit (finish_reason 'length'); "
            "raise max_tokens",
            code="truncated",
        )
    if completion.content is None:
        raise InvalidResponseError(SERVICE, "a JSON reply was asked for; the reply was empty")
    try:
        parsed = json.loads(completion.content)
    except json.JSONDecodeError as exc:
        raise InvalidResponseError(
            SERVICE,
            f"the reply is not valid JSON ({exc.msg} at character {exc.pos})",
            code="invalid_json",
        ) from exc
    if fmt == "json_object" and not isinstance(parsed, dict):
        raise InvalidResponseError(
            SERVICE, "the reply is JSON but not an object", code="invalid_json"
        )
    if isinstance(fmt, JsonSchema):
        import jsonschema.exceptions
        import jsonschema.validators

        validator = jsonschema.validators.validator_for(fmt.schema)(fmt.schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(parsed))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise InvalidResponseError(
                SERVICE,
                f"the reply does not match schema {fmt.name!r} at {where}: {error.message}",
                code="schema_mismatch",
            )
    return replace(completion, parsed=parsed)


def _text(message: ChatMessage) -> str:
    """All the text in a message: content (string or text parts), for the JSON check."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _describe(exc: Exception) -> str:
    """A short description of a parsing failure."""
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r} field"
    return type(exc).__name__
