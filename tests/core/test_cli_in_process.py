"""The ``botkit`` command's subcommands, called in-process (fast, and measured)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
from pathlib import Path

import pytest

import botkit.store
from botkit import Bot, StoreError
from botkit.cli import main
from botkit.config import parse_config
from botkit.store import is_sqlite

# the newest migration's revision: what a current schema is at
HEAD = max(
    p.name[:4]
    for p in (Path(botkit.store.__file__).parent / "migrations" / "versions").glob("0*.py")
)


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
    assert capsys.readouterr().out.endswith(f": applied 0001 → {HEAD} (it had no schema)\n")
    assert main(["db", "upgrade"]) == 0
    assert capsys.readouterr().out.endswith(f": already at {HEAD}, nothing to apply\n")
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
    assert main(["check-config"]) == 2  # nothing listens there: it says so, in one line
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
    [line] = err.splitlines()
    assert line.startswith(
        "botkit: config error: database.url: cannot open postgresql://bot:***@127.0.0.1:9/db: "
    )


async def _annotated_database(url: str) -> None:
    from botkit import ConversationRef, Message, Sender
    from botkit.store import Database, Store

    database = Database(url)
    await database.upgrade()
    store = Store(database)
    for i, label in enumerate(["negative", "negative", "positive"]):
        accepted, _ = await store.inbound.accept(
            Message(ConversationRef("slack", "C1"), Sender("u"), f"m{i}", f"e{i}")
        )
        await store.history.annotate(accepted.message_id, {"sentiment": label})
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
        await store.usage.record_call(
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


EVERY_FAULT = """
[adapters.console]
[plugins.budget]
timezone = "Europe/Berln"
limits = [{ scope = "user", period = "day", tokens = 300, usd = 1.0 }]
[[plugins.summary.digests]]
name = "daily"
source = { channel = "console", chat_id = "c" }
to = { channel = "console", chat_id = "c" }
cron = "0 25 * * *"
[plugins.spam]
notify = { channel = "telegram", chat_id = "1" }
[plugins.sentiment]
escalate_to = { channel = "email", chat_id = "ops@example.com" }
[plugins.autoreply]
rules = [
  { name = "triage", reply = "ok", classify = "route it" },
  { name = "orders", reply = "ok", pattern = "(unclosed" },
]
"""


def test_check_config_reports_every_fault_at_once_one_line_each(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTKIT_DATABASE_URL", "mysql://bot@127.0.0.1/bot")
    (workdir / "bot.toml").write_text(EVERY_FAULT)
    assert main(["-c", "bot.toml", "check-config"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    faults = [line.removeprefix("botkit: config error: ") for line in err.splitlines()]
    assert [fault.split(": ")[0] for fault in faults] == [
        "database.url",
        "plugins.budget.limits[0]",
        "plugins.budget.timezone",
        "plugins.summary.digests[0].cron",
        "plugins.autoreply.rules[0].handoff_to",
        "plugins.autoreply.rules[1].pattern",
        "plugins.spam.notify.channel",
        "plugins.sentiment.escalate_to.channel",
    ]
    assert faults[0] == (
        "database.url: mysql: botkit runs on SQLite (sqlite:///botkit.db) or PostgreSQL "
        "(postgresql://user@host/db)"
    )
    assert faults[1] == "plugins.budget.limits[0]: give exactly one of tokens and usd"
    assert faults[2] == "plugins.budget.timezone: 'Europe/Berln' is not a known time zone"
    assert "'25' is out of range" in faults[3]
    assert faults[-1] == (
        "plugins.sentiment.escalate_to.channel: 'email' is not a configured channel "
        "(configured: console)"
    )


def test_hand_offs_and_digests_must_go_to_a_configured_channel(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bot.toml").write_text(
        "[adapters.console]\n"
        "[[plugins.summary.digests]]\n"
        'name = "daily"\n'
        'source = { channel = "console", chat_id = "c" }\n'
        'to = { channel = "slack", chat_id = "C1" }\n'
        "[[plugins.autoreply.rules]]\n"
        'name = "triage"\n'
        'reply = "ok"\n'
        'classify = "route it"\n'
        'handoff_to = { channel = "slak", chat_id = "C2" }\n'
    )
    assert main(["-c", "bot.toml", "check-config"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "botkit: config error: plugins.summary.digests[0].to.channel: 'slack' is not a "
        "configured channel (configured: console)",
        "botkit: config error: plugins.autoreply.rules[0].handoff_to.channel: 'slak' is not "
        "a configured channel (configured: console)",
    ]


def test_run_refuses_a_bad_plugin_setting_before_it_creates_the_database(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "bot.toml").write_text('[plugins.spam]\npatterns = ["(unclosed"]\n')
    assert main(["-c", "bot.toml", "run"]) == 2
    assert capsys.readouterr().err.startswith("botkit: config error: plugins.spam.patterns[0]: ")
    assert sorted(p.name for p in workdir.iterdir()) == ["bot.toml"]


def test_check_config_opens_the_database_and_never_creates_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config"]) == 0
    assert "cli.db (does not exist yet: botkit run creates it)" in capsys.readouterr().out
    assert not (workdir / "cli.db").exists()
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["check-config"]) == 0
    assert f"cli.db (schema {HEAD}, current)" in capsys.readouterr().out
    (workdir / "cli.db").unlink()
    (workdir / "cli.db").write_text("not a database")
    assert main(["check-config"]) == 2
    assert "database.url: cannot open sqlite:///" in capsys.readouterr().err


def test_check_config_and_run_refuse_a_web_port_in_use(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (workdir / "bot.toml").write_text(f"[web]\nenabled = true\nport = {port}\n")
        for command in ("check-config", "run"):
            assert main(["-c", "bot.toml", command]) == 2
            assert capsys.readouterr().err.startswith(
                f"botkit: config error: web.port: cannot listen on 127.0.0.1:{port}: "
            )
    assert not (workdir / "cli.db").exists()
    assert main(["-c", "bot.toml", "check-config"]) == 0  # free again


@pytest.mark.postgres
async def test_a_postgres_database_without_the_schema_says_to_run_db_upgrade(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if is_sqlite(database_url):
        pytest.skip("PostgreSQL only: SQLite is migrated by run")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOTKIT_DATABASE_URL", database_url)
    hint = "has no botkit schema: run `botkit db upgrade`"
    for command in ("check-config", "run"):
        code, out, err = await asyncio.to_thread(_main_captured, [command])
        assert (code, out) == (2, "")
        [line] = err.splitlines()
        assert line.startswith("botkit: config error: database.url: postgresql")
        assert line.endswith(hint)
    (tmp_path / "auto.toml").write_text("[database]\nauto_migrate = true\n")
    code, out, _ = await asyncio.to_thread(_main_captured, ["-c", "auto.toml", "check-config"])
    assert code == 0
    assert f"(empty: botkit run migrates it to {HEAD})" in out
    config = parse_config({"database": {"url": database_url}, "adapters": {}}, environ={})
    with pytest.raises(StoreError, match=rf"has no botkit schema, this botkit needs {HEAD}: run"):
        async with Bot(config):
            pass
    code, out, _ = await asyncio.to_thread(_main_captured, ["db", "upgrade"])
    assert (code, out.split(": ", 1)[1]) == (0, f"applied 0001 → {HEAD} (it had no schema)\n")
    code, out, _ = await asyncio.to_thread(_main_captured, ["check-config"])
    assert code == 0
    assert f"(schema {HEAD}, current)" in out


def _main_captured(argv: list[str]) -> tuple[int, str, str]:
    """``main`` in a thread of its own (it runs its own event loop), with its output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()
