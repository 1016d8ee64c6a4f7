"""How the web chat is turned on: its entry point, its documented table, scripts/run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from botkit._settings import parse_settings
from botkit.config import load_config, parse_config
from botkit.discovery import import_path
from botkit_web import WebChatAdapter, WebChatSettings
from tests.fakes.example_config import example_table

ROOT = Path(__file__).resolve().parents[3]


def test_the_web_entry_point_names_the_adapter() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    value = project["project"]["entry-points"]["botkit.adapters"]["web"]
    assert import_path(value, what="adapter 'web'") is WebChatAdapter


def test_the_documented_table_is_valid_and_complete() -> None:
    table = tomllib.loads(example_table("[adapters.web]"))["adapters"]["web"]
    secrets = {"secret_env"}
    fields = set(WebChatSettings.__dataclass_fields__) - {"secret"}
    assert set(table) == fields | secrets
    settings = parse_settings(WebChatSettings, table, prefix="adapters.web", environ={})
    assert settings.secret is None  # the variable is not set: a secret kept in the database
    # the values shown are the defaults (the README quotes them too)
    documented = {k: v for k, v in table.items() if k not in ("secret_env", "allowed_origins")}
    defaults = WebChatSettings()
    assert {k: getattr(defaults, k) for k in documented} == documented
    assert (defaults.path, defaults.max_message_chars) == ("/chat", 4000)
    assert (defaults.max_connections_per_visitor, defaults.max_connections) == (8, 1000)


def test_scripts_run_config_has_the_console_and_the_web_chat_it_prints() -> None:
    config = load_config(ROOT / "scripts" / "run.toml", environ={})
    assert [a.name for a in config.adapters] == ["console", "web"]
    assert [p.name for p in config.plugins] == ["chat"]  # the built-in default
    assert config.llm.stand_in
    [web] = [a for a in config.adapters if a.name == "web"]
    path = parse_settings(WebChatSettings, web.settings, prefix=web.key, environ={}).path
    printed = f"http://{config.web.host}:{config.web.port}{path}"
    assert printed in (ROOT / "scripts" / "run").read_text()
    # the rest is botkit's defaults, as `botkit run` without a config has them, which
    # stays console-only
    defaults = parse_config({}, environ={})
    assert [a.name for a in defaults.adapters] == ["console"]
    assert (config.bot, config.database, config.llm) == (
        defaults.bot, defaults.database, defaults.llm,
    )  # fmt: skip


def _run_script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """scripts/run in a copy of the tree whose .venv's python and botkit are stubs: the
    botkit stub prints the config it would read and its arguments."""
    (tmp_path / "scripts").mkdir(exist_ok=True)
    shutil.copy(ROOT / "scripts" / "run", tmp_path / "scripts" / "run")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, body in (
        ("python", "exit 0"),
        ("botkit", 'echo "config=${BOTKIT_CONFIG:-} args=$*"'),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k != "BOTKIT_CONFIG"}
    return subprocess.run(
        ["bash", str(tmp_path / "scripts" / "run"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )


def test_scripts_run_without_a_config_starts_the_web_chat_and_prints_its_address(
    tmp_path: Path,
) -> None:
    done = _run_script(tmp_path)
    assert done.stdout.strip() == "config=scripts/run.toml args=run"
    assert "web chat: open http://127.0.0.1:8080/chat in a browser" in done.stderr
    done = _run_script(tmp_path, "-v")  # options that name no config change nothing
    assert done.stdout.strip() == "config=scripts/run.toml args=-v run"


@pytest.mark.parametrize(
    ("args", "env", "botkit_toml"),
    [
        (("-c", "mine.toml"), {}, False),
        (("--config=mine.toml",), {}, False),
        ((), {"BOTKIT_CONFIG": "mine.toml"}, False),
        ((), {}, True),
    ],
)
def test_scripts_run_with_a_config_of_your_own_runs_that_as_it_is(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], botkit_toml: bool
) -> None:
    if botkit_toml:
        (tmp_path / "botkit.toml").write_text("")
    done = _run_script(tmp_path, *args, **env)
    given = " ".join([*args, "run"])
    assert done.stdout.strip() == f"config={env.get('BOTKIT_CONFIG', '')} args={given}"
    assert "web chat" not in done.stderr
