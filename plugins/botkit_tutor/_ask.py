"""One JSON request to the model, for the tutor's planning, teaching and grading."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botkit import ChatRequest, ConversationLLM, InvalidResponseError, JsonSchema

__all__ = ["Unusable", "ask_json", "object_schema", "text_of"]


class Unusable(Exception):
    """The model's answer cannot be used, even after the client asked once more naming
    what was wrong (``botkit.llm.structured``); the message says why."""


def object_schema(name: str, properties: Mapping[str, Any]) -> JsonSchema:
    """A strict schema of an object with exactly these properties, all required (what
    OpenAI's strict structured outputs demand)."""
    return JsonSchema(
        name,
        {
            "type": "object",
            "properties": dict(properties),
            "required": list(properties),
            "additionalProperties": False,
        },
    )


async def ask_json(
    llm: ConversationLLM,
    schema: JsonSchema,
    *,
    system: str,
    user: str,
    purpose: str,
    max_tokens: int,
    temperature: float | None = None,
) -> dict[str, Any]:
    """The model's answer to ``user``, decoded and valid against ``schema``.

    Raises:
        Unusable: the answer is not JSON or misses the schema, after the corrective try.
        ServiceError: the model could not be reached or refused (the bot's own outage
            handling takes it from there).
    """
    try:
        completion = await llm.complete(
            ChatRequest(
                [
                    {"role": "system", "content": f"{system}\nAnswer in JSON."},
                    {"role": "user", "content": user},
                ],
                response_format=schema,
                max_tokens=max_tokens,
                temperature=temperature,
                purpose=purpose,
            )
        )
    except InvalidResponseError as exc:
        raise Unusable(exc.reason) from exc
    if not isinstance(completion.parsed, dict):
        raise Unusable("the answer is not a JSON object")
    return completion.parsed


def text_of(value: Any, what: str, *, limit: int = 4000) -> str:
    """``value`` as one non-blank string, cut to ``limit`` characters.

    Raises:
        Unusable: it is not a string, or blank.
    """
    if not isinstance(value, str) or not value.strip():
        raise Unusable(f"{what} is empty")
    return value.strip()[:limit]
