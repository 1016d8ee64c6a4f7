"""The ``botkit`` command, run as a user runs it: in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTKIT_", "OPENAI_"))}
    env["BOTKIT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env.update(extra)
    return env


def _botkit(
    tmp_path: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        timeout=60,
    )


@pytest.mark.slow
def test_chat_reads_one_message_per_line_and_prints_each_reply(tmp_path: Path) -> None:
    result = _botkit(tmp_path, "chat", stdin="hello\n\n/reset\nbye\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[stand-in model, not a real LLM] You said: hello",
        "Started a new conversation.",
        "[stand-in model, not a real LLM] You said: bye",
    ]
    assert "not a real model" in result.stderr


@pytest.mark.slow
def test_usage_reports_what_chat_spent_as_text_and_json(tmp_path: Path) -> None:
    assert _botkit(tmp_path, "chat", stdin="one\ntwo\n").returncode == 0
    text = _botkit(tmp_path, "usage")
    assert text.returncode == 0, text.stderr
    assert "stand-in" in text.stdout
    assert "console" in text.stdout
    as_json = _botkit(tmp_path, "usage", "--json")
    [row] = json.loads(as_json.stdout)
    assert row["calls"] == 2
    assert row["model"] == "stand-in"
    assert row["channel"] == "console"
    assert row["cost_usd"] == "0"


@pytest.mark.slow
def test_a_bad_config_fails_with_the_key_and_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "botkit.toml").write_text('[llm]\ntimeout = "forever"\n')
    result = _botkit(tmp_path, "check-config")
    assert result.returncode == 2
    assert "llm.timeout: must be a number" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_unknown_adapter_fails_at_start_naming_it(tmp_path: Path) -> None:
    (tmp_path / "botkit.toml").write_text("[adapters.carrier-pigeon]\n")
    result = _botkit(tmp_path, "check-config")
    assert result.returncode == 2
    assert "no adapter named 'carrier-pigeon'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_check_config_and_db_upgrade_succeed_on_defaults(tmp_path: Path) -> None:
    checked = _botkit(tmp_path, "check-config")
    assert checked.returncode == 0, checked.stderr
    assert "adapters: console" in checked.stdout
    assert "plugins: chat" in checked.stdout
    upgraded = _botkit(tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "cli.db").exists()


@pytest.mark.slow
def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "botkit.toml").write_text("[adapters.console]\n[web]\nenabled = true\nport = 0\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "botkit", "run"],
        stdin=subprocess.PIPE,  # open but silent: the console waits for input
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=_env(tmp_path),
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        log = ""
        assert process.stderr is not None
        while "web server listening" not in log and time.monotonic() < deadline:
            log += process.stderr.readline()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        for stream in (process.stdin, process.stderr):
            if stream is not None:
                stream.close()


def test_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "botkit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("run", "chat", "db", "usage", "check-config"):
        assert command in result.stdout
