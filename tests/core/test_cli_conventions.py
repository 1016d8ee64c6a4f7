"""The ``botkit`` command's conventions: --version, options after the command, help,
quiet start-up, and ``botkit chat`` in a real terminal (a pty) and through a pipe."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from botkit.cli import main

COMMANDS = [["run"], ["chat"], ["db"], ["db", "upgrade"], ["usage"], ["check-config"]]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOTKIT_", "OPENAI_"))}
    env["BOTKIT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    return env


def _botkit(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
        timeout=60,
    )


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == "botkit 0.1.0"


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_each_command_has_a_one_line_description_and_takes_c_after_its_name(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    shown = capsys.readouterr().out
    description = shown.split("\n\n")[1]
    assert "\n" not in description.strip()
    assert description.strip().endswith(".")
    assert "-c CONFIG, --config CONFIG" in shown


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "BOTKIT_MODEL", "BOTKIT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return tmp_path


def test_config_after_the_command_is_the_file_used(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bot.toml").write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert main(["check-config", "-c", "bot.toml"]) == 0
    assert "config: bot.toml" in capsys.readouterr().out
    # before the command too, and the one after it wins over the one before
    (workdir / "other.toml").write_text("[bogus]\n")
    assert main(["-c", "other.toml", "check-config", "--config", "bot.toml"]) == 0
    assert main(["-c", "bot.toml", "check-config"]) == 0
    assert main(["usage", "-c", "other.toml"]) == 2
    assert "bogus: unknown section" in capsys.readouterr().err


def test_a_bad_since_or_by_is_a_usage_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (
        ["--since", "yesterday"],
        ["--by", "model,colour"],
        ["--since", "7d", "--days", "3"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(["usage", *args])
        assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "'yesterday' is not a span like 7d, 12h or 2w" in err
    assert "group by one or more of day, model, channel, user" in err
    assert "not allowed with argument" in err


@pytest.mark.slow
def test_start_up_is_quiet_and_says_the_stand_in_notice_once(tmp_path: Path) -> None:
    result = _botkit(tmp_path, "chat", "--log-format", "text", stdin="hi\n")
    assert result.returncode == 0, result.stderr
    assert "alembic" not in result.stderr
    assert result.stderr.count("not a real model") == 1
    assert result.stderr.startswith("botkit: No model is configured")
    verbose = _botkit(tmp_path / "..", "db", "upgrade", "-v", "--log-format", "text")
    assert "alembic.runtime.migration: Running upgrade" in verbose.stderr
    quiet_dir = tmp_path / "quiet"
    quiet_dir.mkdir()
    quiet = _botkit(quiet_dir, "db", "upgrade")
    assert quiet.returncode == 0
    assert quiet.stderr == ""


@pytest.mark.slow
def test_usage_groups_by_what_is_asked_since_when_asked(tmp_path: Path) -> None:
    assert _botkit(tmp_path, "chat", stdin="one\ntwo\n").returncode == 0
    by_model = _botkit(tmp_path, "usage", "--by", "model", "--since", "7d", "--json")
    assert json.loads(by_model.stdout) == [
        {
            "model": "stand-in",
            "calls": 2,
            "prompt_tokens": json.loads(by_model.stdout)[0]["prompt_tokens"],
            "completion_tokens": json.loads(by_model.stdout)[0]["completion_tokens"],
            "cost_usd": "0",
            "unpriced_calls": 0,
            "estimated_calls": 0,
        }
    ]
    table = _botkit(tmp_path, "usage", "--by", "channel,model", "--days", "7")
    head, row, total = table.stdout.splitlines()
    assert head.split() == ["model", "channel", "calls", "prompt", "output", "cost", "$"]
    assert row.split()[:3] == ["stand-in", "console", "2"]
    assert total == "total: $0.000000"
    future = _botkit(tmp_path, "usage", "--since", "2999-01-01")
    assert future.stdout == "no model calls since 2999-01-01\n"


@pytest.mark.slow
def test_piped_chat_output_holds_the_replies_only(tmp_path: Path) -> None:
    result = _botkit(tmp_path, "chat", stdin="hello\nbye\n")
    assert result.returncode == 0
    assert result.stdout == (
        "[stand-in model, not a real LLM] You said: hello\n"
        "[stand-in model, not a real LLM] You said: bye\n"
    )


@pytest.fixture
def silent_model() -> Iterator[str]:
    """A model server that accepts connections and never answers: the bot keeps working."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"


def _read_until(fd: int, wanted: str, seconds: float) -> str:
    seen = b""
    deadline = time.monotonic() + seconds
    while wanted.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
    return seen.decode(errors="replace")


@pytest.mark.slow
def test_chat_in_a_terminal_spins_while_waiting_and_a_second_ctrl_c_quits_at_once(
    tmp_path: Path, silent_model: str
) -> None:
    (tmp_path / "bot.toml").write_text(
        f'[llm]\nbase_url = "{silent_model}"\nmax_retries = 0\n[bot]\nshutdown_grace = 60\n'
    )
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "botkit", "chat", "-c", "bot.toml"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=tmp_path,
        env=_env(tmp_path),
        start_new_session=True,
    )
    os.close(secondary)
    try:
        assert "you> " in _read_until(primary, "you> ", 30)
        os.write(primary, b"hello\r")
        assert "⠙" in _read_until(primary, "⠙", 10)  # the spinner turns
        process.send_signal(signal.SIGINT)  # the first: stop, finishing the answer
        time.sleep(1)
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 128 + signal.SIGINT
        assert time.monotonic() - started < 5
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)


@pytest.mark.slow
def test_chat_in_a_terminal_ends_on_a_fresh_line_at_ctrl_d(tmp_path: Path) -> None:
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "botkit", "chat"],
        stdin=secondary,
        stdout=secondary,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=_env(tmp_path),
        start_new_session=True,
    )
    os.close(secondary)
    try:
        _read_until(primary, "you> ", 30)
        os.write(primary, b"\x04")  # Ctrl-D at the prompt
        assert process.wait(timeout=30) == 0
        assert _read_until(primary, "\n", 5).endswith("\n")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(primary)
