"""The confirmation step of side-effect tools: typed pending calls, the pure decision
on the user's answer, and the handler a side-effect tool adds in plain sight."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from botkit import Context, Message, Plugin, Reply, tool
from botkit.cli import main
from botkit.messages import ConversationRef, Sender
from botkit.tools import (
    CONFIRM_TIMEOUT,
    CONFIRMATION_HANDLER,
    PendingCall,
    Step,
    ToolCommand,
    ToolConfirmation,
    decide,
)

plugin = Plugin("doors")


@dataclass(frozen=True)
class DoorArgs:
    door: int


@tool(plugin, "peek")
async def peek(args: DoorArgs, ctx: Context) -> str:
    """Look behind a door."""
    return "a goat"


@tool(plugin, "open", side_effects=True, confirm="Open door {door}?")
async def open_door(args: DoorArgs, ctx: Context) -> str:
    """Open a door."""
    return f"door {args.door} is open"


@tool(plugin, "lock", side_effects=True)
async def lock(args: DoorArgs, ctx: Context) -> str:
    """Lock a door."""
    return f"door {args.door} is locked"


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TOOLS = {
    c.func.tool.name: c.func.tool
    for c in plugin.commands
    if isinstance(c.func, ToolCommand) and c.func.tool.side_effects
}


def _pending(tool: str = "open", arguments: Any = None, at: datetime = NOW) -> PendingCall:
    return PendingCall(tool, {"door": 2} if arguments is None else arguments, "ann", at)


def test_side_effect_tools_add_one_named_confirmation_handler_to_their_plugin() -> None:
    [handler] = plugin.message_handlers
    assert isinstance(handler.func, ToolConfirmation)
    assert handler.func.__name__ == CONFIRMATION_HANDLER == "confirm_tool_call"
    assert set(handler.func.tools) == {"open", "lock"}  # not peek: it asks nothing
    assert not handler.catch_all  # a predicate handler, before the chat skill
    ref = ConversationRef("test", "c")
    assert handler.match(Message(ref, Sender("ann"), "Yes!", "1"))
    assert handler.match(Message(ref, Sender("ann"), "no", "2"))
    assert not handler.match(Message(ref, Sender("ann"), "yes, and open door 3 too", "3"))
    quiet = Plugin("quiet")
    tool(quiet, "peek")(peek)
    assert quiet.message_handlers == []


@pytest.mark.parametrize(
    ("pending", "sender", "text", "now", "step"),
    [
        (None, "ann", "yes", NOW, Step.PASS),
        (_pending(), "bob", "yes", NOW, Step.PASS),  # someone else's "yes"
        (_pending(), "ann", "yes", NOW + CONFIRM_TIMEOUT + timedelta(seconds=1), Step.EXPIRED),
        (_pending(), "ann", "Nope.", NOW, Step.CANCELLED),
        (_pending("gone"), "ann", "yes", NOW, Step.UNAVAILABLE),
        (_pending(arguments={"door": "two"}), "ann", "ok", NOW, Step.INVALID),
        (_pending(), "ann", "Go ahead!", NOW + CONFIRM_TIMEOUT, Step.RUN),
    ],
)
def test_the_answer_to_a_waiting_call_decides_one_step(
    pending: PendingCall | None, sender: str, text: str, now: datetime, step: Step
) -> None:
    decision = decide(pending, sender, text, now, TOOLS)
    assert decision.step is step
    assert decision.drops is (step is not Step.PASS)
    if step is Step.RUN:
        assert decision.tool is TOOLS["open"]
        assert decision.arguments == DoorArgs(2)


def test_what_the_user_is_told_for_each_step_that_runs_nothing() -> None:
    def told(pending: PendingCall, text: str = "yes") -> Reply | None:
        return decide(pending, "ann", text, NOW, TOOLS).reply()

    assert told(_pending(), "no") == Reply("Cancelled: /open was not run.", markup="plain")
    assert told(_pending("gone")) == Reply("/gone is no longer available.", markup="plain")
    assert told(_pending(arguments={"door": "two"})) == Reply(
        "/open cannot run: door: 'two' is not of type 'integer'", markup="plain"
    )
    assert told(_pending()) is None  # it runs: the tool's own result is the answer
    late = NOW - CONFIRM_TIMEOUT - timedelta(minutes=1)
    assert told(_pending(at=late)) is None  # expired: the "yes" goes on as chat


def test_a_pending_call_is_stored_as_the_same_json_and_junk_reads_as_none() -> None:
    pending = _pending()
    stored = pending.to_json()
    assert stored == {
        "tool": "open",
        "arguments": {"door": 2},
        "user": "ann",
        "at": "2026-01-01T12:00:00+00:00",
    }
    assert PendingCall.from_json(stored) == pending
    assert pending.as_call().arguments == '{"door": 2}'
    junk: list[Any] = [None, "open", [], {**stored, "at": "soon"}, {**stored, "at": "2026-01-01"}]
    assert [PendingCall.from_json(j) for j in junk] == [None] * len(junk)


def test_check_config_lists_the_confirmation_handler_with_the_tools_that_ask_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "BOTKIT_MODEL", "BOTKIT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    (tmp_path / "bot.toml").write_text(
        f'[plugins.doors]\nuse = "{__name__}:plugin"\n[plugins.chat]\n'
    )
    assert main(["-c", "bot.toml", "check-config"]) == 0
    out = capsys.readouterr().out
    assert "  doors: tools /peek, /open (asks first), /lock (asks first); " in out
    assert "; message handlers confirm_tool_call\n" in out
    assert "  chat: commands /start, /help, /reset; message handlers chat\n" in out
