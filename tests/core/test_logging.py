"""Logs: JSON lines or text, the ids of the work under way, no bodies unless asked, no secrets."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from botkit import Context, Message, Plugin, Secret
from botkit.logs import configured_logging
from botkit.testing import InMemoryChannel, run_bot

log = logging.getLogger("botkit.tests")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_unless_a_terminal_and_either_when_asked() -> None:
    piped, terminal, forced = io.StringIO(), _Terminal(), _Terminal()
    with configured_logging(stream=piped):
        log.warning("to a file")
    with configured_logging(stream=terminal):
        log.warning("to a person")
    with configured_logging(stream=forced, log_format="json"):
        log.warning("json anyway")
    [line] = _lines(piped)
    assert line["message"] == "to a file"
    assert line["level"] == "WARNING"
    assert line["logger"] == "botkit.tests"
    assert "WARNING botkit.tests: to a person" in terminal.getvalue()
    assert _lines(forced)[0]["message"] == "json anyway"
    text = io.StringIO()
    with configured_logging(stream=text, log_format="text"):
        log.warning("text anyway")
    assert text.getvalue().rstrip().endswith("WARNING botkit.tests: text anyway")


def test_the_level_hides_what_is_below_it_and_the_handler_goes_away_after() -> None:
    out = io.StringIO()
    with configured_logging(stream=out, level=logging.ERROR):
        log.warning("hidden")
        log.error("shown")
    log.error("after")  # the block's handler is gone
    assert [line["message"] for line in _lines(out)] == ["shown"]


def test_debug_is_botkits_own_detail_not_other_libraries() -> None:
    out = io.StringIO()
    with configured_logging(stream=out, level=logging.DEBUG):
        log.debug("botkit detail")
        logging.getLogger("slack_sdk.web").debug("POST body: the user's words")
    assert [line["message"] for line in _lines(out)] == ["botkit detail"]


def test_secrets_show_as_stars_in_json_and_text() -> None:
    key = Secret("sk-live-abcdef123456", source="OPENAI_API_KEY")
    for log_format in ("json", "text"):
        out = io.StringIO()
        with configured_logging(stream=out, log_format=log_format):
            log.warning("calling with %s", key, extra={"api_key": key})
            try:
                raise RuntimeError(f"refused key {key}")
            except RuntimeError:
                log.exception("failed")
        assert "sk-live" not in out.getvalue()
        assert "***" in out.getvalue()


def test_bodies_are_dropped_unless_asked_for() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    with configured_logging(stream=quiet):
        log.warning("a message", extra={"body": "my bank PIN is 1234"})
    with configured_logging(stream=loud, bodies=True):
        log.warning("a message", extra={"body": "my bank PIN is 1234"})
    assert "1234" not in quiet.getvalue()
    assert _lines(loud)[0]["body"] == "my bank PIN is 1234"


def _plugin() -> Plugin:
    plugin = Plugin("noisy")

    @plugin.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        logging.getLogger("botkit.tests.plugin").warning("answering")
        return "ok"

    return plugin


@pytest.mark.parametrize("bodies", [False, True])
async def test_lines_carry_the_conversation_and_message_ids_and_bodies_only_when_asked(
    database_url: str, bodies: bool
) -> None:
    adapter = InMemoryChannel()
    out = io.StringIO()
    with configured_logging(stream=out, verbose=True, bodies=bodies):
        async with run_bot(
            database_url=database_url, channels=[adapter], plugins=[_plugin()], model="config"
        ).bot as bot:
            message_id = await adapter.receive("the secret recipe")
            await bot.inbox.wait_done(message_id)
            [stored] = await bot.store.history.messages([message_id])
    lines = _lines(out)
    [answering] = [line for line in lines if line["message"] == "answering"]
    assert answering["message_id"] == message_id
    assert answering["conversation_id"] == stored.conversation_id
    sent = [line for line in lines if str(line["message"]).startswith("reply ")]
    assert sent
    assert sent[0]["conversation_id"] == stored.conversation_id
    assert ("the secret recipe" in out.getvalue()) is bodies


def test_the_command_logs_json_when_stderr_is_a_pipe(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTKIT_", "OPENAI_"))}
    env["BOTKIT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    run = subprocess.run(
        [sys.executable, "-m", "botkit", "chat"],
        input="hi\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert [line["level"] for line in lines] == ["WARNING"]
    assert "not a real model" in str(lines[0]["message"])
    quiet = subprocess.run(
        [sys.executable, "-m", "botkit", "chat", "--log-level", "error"],
        input="hi\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert quiet.stderr == ""
