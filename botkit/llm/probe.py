"""``botkit check-config --probe``: ask the model once per feature and say what its
server supports, so an operator learns before the first user does."""

from __future__ import annotations

from dataclasses import dataclass

from botkit.exceptions import InvalidResponseError, ServiceError
from botkit.llm.client import OpenAIChatClient
from botkit.llm.types import ChatRequest, Completion, JsonSchema

__all__ = ["ProbeReport", "probe"]

_SAY_OK = [{"role": "user", "content": "Say OK."}]
_YES_NO = JsonSchema(
    "answer",
    {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
)
_PING_TOOL = {
    "type": "function",
    "function": {
        "name": "ping",
        "description": "Check that tools work.",
        "parameters": {"type": "object", "properties": {}},
    },
}


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """One line per feature: ``(feature, finding)``; ``failed``: the model could not
    be used at all (unreachable, a refused key)."""

    lines: list[tuple[str, str]]
    failed: bool = False


async def probe(client: OpenAIChatClient) -> ProbeReport:
    """Three small calls: a stream, a JSON reply, a tool call (a few dozen tokens)."""
    lines: list[tuple[str, str]] = []
    try:
        whole: Completion | None = None
        async for event in client.stream(ChatRequest(_SAY_OK, max_tokens=5, purpose="probe")):
            if isinstance(event, Completion):
                whole = event
        usage = whole.usage if whole is not None else None
        if usage is not None and not usage.estimated:
            lines.append(("streaming", "works; the server reports usage"))
        else:
            lines.append(("streaming", "works; no usage from the server: botkit counts tokens"))
    except ServiceError as exc:
        lines.append(("streaming", f"failed: {exc.reason}"))
        return ProbeReport(
            lines, failed=True
        )  # the model is not reachable: the rest would fail alike
    try:
        await client.complete(
            ChatRequest(
                [{"role": "user", "content": "Is the sky blue? Answer in JSON."}],
                max_tokens=30,
                response_format=_YES_NO,
                purpose="probe",
            )
        )
        lines.append(("structured output", client.structured_mode()))
    except InvalidResponseError as exc:  # the server took the mode; the model missed
        mode = client.structured_mode()
        lines.append(("structured output", f"{mode} (the test reply missed: {exc.reason})"))
    except ServiceError as exc:
        lines.append(("structured output", f"failed in every mode: {exc.reason}"))
    try:
        called = await client.complete(
            ChatRequest(
                [{"role": "user", "content": "Call the ping tool."}],
                max_tokens=30,
                tools=[_PING_TOOL],
                tool_choice={"type": "function", "function": {"name": "ping"}},
                purpose="probe",
            )
        )
        found = "work" if called.tool_calls else "asked for, but the model answered in words"
        lines.append(("tools", found))
    except ServiceError as exc:
        lines.append(("tools", f"refused: {exc.reason}"))
    return ProbeReport(lines)
