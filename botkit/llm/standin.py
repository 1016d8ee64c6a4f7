"""``StandInModel``: an offline, deterministic ``ChatModel`` for bots with no model set up.

It lets ``botkit chat`` and the example config run with no API key and no network: every
reply says plainly that it is not a real model, and echoes the user's last message. It
cannot speak or listen: its speech and transcription calls raise, saying so.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from decimal import Decimal
from typing import Any

from botkit.exceptions import InvalidResponseError, RequestRejectedError
from botkit.llm._errors import SERVICE
from botkit.llm.audio import Speech, SpeechRequest, Transcript, TranscriptionRequest
from botkit.llm.models import ModelInfo
from botkit.llm.offline import check_request, schema_example, stream_words
from botkit.llm.tokens import TokenCounter
from botkit.llm.types import (
    CallRecord,
    CallRecorder,
    ChatRequest,
    Completion,
    JsonSchema,
    TextDelta,
    Usage,
    message_text,
)

__all__ = ["STAND_IN_CANNOT_LISTEN", "STAND_IN_CANNOT_SPEAK", "STAND_IN_PREFIX", "StandInModel"]

STAND_IN_CANNOT_SPEAK = (
    "the offline stand-in model cannot speak: configure a real model ([llm] base_url and"
    " api_key_env) to hear replies"
)
STAND_IN_CANNOT_LISTEN = (
    "the offline stand-in model cannot transcribe voice messages: configure a real model"
    " ([llm] base_url and api_key_env), or send text"
)

STAND_IN_PREFIX = "[stand-in model, not a real LLM] You said: "


class StandInModel:
    """Answers ``"[stand-in model, not a real LLM] You said: <last user text>"``, offline.

    In ``json_object`` mode the reply is ``{"stand_in": true, "echo": "<last user
    text>"}``; for a :class:`JsonSchema` it is the simplest object the schema accepts
    (required properties only: strings ``"stand-in"``, numbers ``0``, booleans
    ``false``, the first value of an enum, nested objects and empty arrays likewise).
    The same local checks as the real client apply (JSON mode needs the word "JSON").
    Streams come word by word. Usage is counted with ``cl100k_base``; the cost is 0.
    Tools are never called.

    Args:
        name: the model name it reports.
    """

    def __init__(self, name: str = "stand-in") -> None:
        self.name = name
        self._counter = TokenCounter("cl100k_base")
        self._info = ModelInfo(
            name, 128_000, 4_096, Decimal(0), Decimal(0), encoding="cl100k_base"
        )

    def model_info(self, model: str | None = None) -> ModelInfo:
        """The stand-in's info whatever ``model`` is asked for: 128K window, price 0."""
        return self._info

    async def complete(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> Completion:
        """The deterministic reply; see the class docstring.

        Raises:
            RequestRejectedError: JSON mode without the word "JSON" in the messages.
            InvalidResponseError: a schema the stand-in cannot satisfy.
        """
        started = time.monotonic()
        check_request(request)
        content, parsed = self._answer(request)
        usage = Usage(self._counter.count_messages(request.messages), self._counter.count(content))
        if record is not None:
            await record(CallRecord.of_attempt(self._info, self.name, request, usage, started))
        return Completion(content, (), "stop", usage, self.name, parsed=parsed)

    async def stream(
        self, request: ChatRequest, *, record: CallRecorder | None = None
    ) -> AsyncGenerator[TextDelta | Completion, None]:
        """The same reply as :meth:`complete`, a word at a time, then the whole."""
        completion = await self.complete(request, record=record)
        for word in stream_words(completion.content or ""):
            yield TextDelta(word)
        yield completion

    async def speak(self, request: SpeechRequest, *, record: CallRecorder | None = None) -> Speech:
        """The stand-in cannot speak.

        Raises:
            RequestRejectedError: always (``code`` ``"stand_in"``), saying so.
        """
        raise RequestRejectedError(SERVICE, STAND_IN_CANNOT_SPEAK, code="stand_in")

    async def transcribe(
        self, request: TranscriptionRequest, *, record: CallRecorder | None = None
    ) -> Transcript:
        """The stand-in cannot listen.

        Raises:
            RequestRejectedError: always (``code`` ``"stand_in"``), saying so.
        """
        raise RequestRejectedError(SERVICE, STAND_IN_CANNOT_LISTEN, code="stand_in")

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"StandInModel(name={self.name!r})"

    def _answer(self, request: ChatRequest) -> tuple[str, Any]:
        """The reply's text and, in JSON modes, its decoded value."""
        said = _last_user_text(request.messages)
        fmt = request.response_format
        if fmt == "text":
            return STAND_IN_PREFIX + said, None
        if isinstance(fmt, JsonSchema):
            value = schema_example(fmt.schema)
            import jsonschema.validators  # only a JSON-schema request needs it

            validator = jsonschema.validators.validator_for(fmt.schema)(dict(fmt.schema))
            if not validator.is_valid(value):
                raise InvalidResponseError(
                    SERVICE,
                    f"the stand-in model cannot produce a document for schema {fmt.name!r}; "
                    "configure a real model",
                    code="schema_mismatch",
                )
        else:
            value = {"stand_in": True, "echo": said}
        return json.dumps(value, ensure_ascii=False), value


def _last_user_text(messages: Any) -> str:
    """The text of the newest user message, or ``""``."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message, separator=" ")
    return ""
