"""The ``botkit`` command's subcommands, called in-process (fast, and measured)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botkit.cli import main


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "BOTKIT_MODEL", "BOTKIT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return tmp_path


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "check-config" in capsys.readouterr().out


def test_db_upgrade_then_usage_on_an_empty_database(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert main(["usage"]) == 0
    assert "no model calls in the last 30 days" in capsys.readouterr().out
    assert main(["usage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_check_config_reports_what_would_run(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bot.toml").write_text('[llm]\nbase_url = "http://127.0.0.1:9/v1"\n')
    assert main(["-c", "bot.toml", "check-config"]) == 0
    out = capsys.readouterr().out
    assert "model: gpt-4o-mini" in out
    assert "adapters: console" in out


def test_errors_are_one_line_with_the_right_exit_status(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bad.toml").write_text("[bot]\nmax_in_flight = 0\n")
    assert main(["-c", "bad.toml", "check-config"]) == 2
    assert capsys.readouterr().err.strip() == (
        "botkit: config error: bot.max_in_flight: must be at least 1"
    )
    (workdir / "plugin.toml").write_text('[plugins.x]\nuse = "nowhere.at_all:plugin"\n')
    assert main(["-c", "plugin.toml", "check-config"]) == 2
    assert "cannot import 'nowhere.at_all'" in capsys.readouterr().err


def test_a_password_in_the_database_url_is_hidden(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTKIT_DATABASE_URL", "postgresql://bot:hunter2@127.0.0.1:9/db")
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out
    assert "postgresql://bot:***@127.0.0.1:9/db" in out


async def _annotated_database(url: str) -> None:
    from botkit import ConversationRef, Message, Sender
    from botkit.store import Database, Store

    database = Database(url)
    await database.upgrade()
    store = Store(database)
    for i, label in enumerate(["negative", "negative", "positive"]):
        accepted, _ = await store.accept(
            Message(ConversationRef("slack", "C1"), Sender("u"), f"m{i}", f"e{i}")
        )
        await store.annotate(accepted.message_id, {"sentiment": label})
    await database.close()


def test_usage_reports_how_often_each_annotation_value_occurred(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    asyncio.run(_annotated_database(f"sqlite:///{workdir / 'cli.db'}"))
    assert main(["usage", "--annotation", "sentiment", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["sentiment"], r["messages"], r["channel"]) for r in rows) == [
        ("negative", 2, "slack"),
        ("positive", 1, "slack"),
    ]
    assert main(["usage", "--annotation", "sentiment"]) == 0
    assert "negative" in capsys.readouterr().out
    assert main(["usage", "--annotation", "mood"]) == 0
    assert "no messages annotated with 'mood'" in capsys.readouterr().out


async def _calls_database(url: str) -> None:
    from botkit.store import CallRow, Database, Store

    database = Database(url)
    await database.upgrade()
    store = Store(database)
    for estimated in (False, True):  # the second server sent no usage: botkit counted
        await store.record_call(
            CallRow("chat", "llama", 100, 20, None, 5.0, True, None, 1, usage_estimated=estimated)
        )
    await database.close()


def test_usage_says_which_figures_are_estimated(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    asyncio.run(_calls_database(f"sqlite:///{workdir / 'cli.db'}"))
    assert main(["usage"]) == 0
    assert "(1 of 2 calls estimated)" in capsys.readouterr().out
    assert main(["usage", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["calls"], row["estimated_calls"], row["prompt_tokens"]) == (2, 1, 200)
