"""Answering without a server: what a model that runs in-process shares with the real client.

The offline stand-in (:class:`~botkit.llm.StandInModel`) and the test kit's
``FakeModel`` (``botkit.testing``) answer without a network. To behave as
:class:`~botkit.llm.OpenAIChatClient` does, they refuse the same requests before
"sending" (:func:`check_request`), check and decode a reply the same way
(:func:`check_reply`), make the simplest document a JSON schema accepts
(:func:`schema_example`) and stream a reply in the same pieces (:func:`stream_words`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from botkit.llm._wire import check_request
from botkit.llm._wire import finish as check_reply

__all__ = ["check_reply", "check_request", "schema_example", "stream_words"]

_WORDS = re.compile(r"\s*\S+\s*|\s+")


def schema_example(schema: Mapping[str, Any]) -> Any:
    """The simplest value ``schema`` describes: required properties only.

    Strings are ``"stand-in"``, numbers ``0``, booleans ``false``, arrays empty; a
    ``const`` or the first value of an ``enum`` wins, and of ``anyOf``/``oneOf`` the
    first option is taken. The value is not checked against the schema.
    """
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options and isinstance(options[0], Mapping):
            return schema_example(options[0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {
            name: schema_example(properties.get(name) or {})
            for name in schema.get("required") or ()
        }
    defaults: dict[str, Any] = {
        "string": "stand-in",
        "number": 0,
        "integer": 0,
        "boolean": False,
        "array": [],
        "null": None,
    }
    return defaults.get(kind if isinstance(kind, str) else "string", "stand-in")


def stream_words(text: str) -> list[str]:
    """``text`` in the pieces an offline model streams: each word with the spaces around
    it, so that the pieces joined are ``text`` again."""
    return _WORDS.findall(text)
