"""``botkit check-config --probe``: what the model's server supports, found by asking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from botkit.cli import main
from botkit.llm import ModelTable, OpenAIChatClient
from botkit.llm.probe import probe
from botkit.secrets import Secret
from tests.core import conftest_llm
from tests.core.conftest_llm import KEY
from tests.fakes.openai_server import FakeOpenAI, completion, stream

fake_openai = conftest_llm.fake_openai


@pytest_asyncio.fixture
async def client(fake_openai: FakeOpenAI) -> AsyncIterator[OpenAIChatClient]:
    async with OpenAIChatClient(
        fake_openai.url, Secret(KEY), "tiny-llama", models=ModelTable(), max_retries=0
    ) as chat:
        yield chat


async def test_the_probe_reports_what_a_llama_cpp_like_server_supports(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.refused_formats = {"json_schema"}
    fake_openai.script(
        stream(("OK",), usage=None),
        completion('{"ok": true}'),
        completion(None, tool_calls=[("call_1", "ping", "{}")]),
    )
    report = await probe(client)
    assert dict(report.lines) == {
        "streaming": "works; no usage from the server: botkit counts tokens",
        "structured output": "json_object",
        "tools": "work",
    }
    assert not report.failed


async def test_the_probe_reports_a_server_that_answers_tools_in_words(
    fake_openai: FakeOpenAI, client: OpenAIChatClient
) -> None:
    fake_openai.script(stream(("OK",)), completion('{"ok": true}'), completion("pong"))
    report = await probe(client)
    assert dict(report.lines) == {
        "streaming": "works; the server reports usage",
        "structured output": "json_schema",
        "tools": "asked for, but the model answered in words",
    }


async def test_check_config_probe_fails_for_an_unreachable_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "BOTKIT_MODEL", "BOTKIT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOTKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'bot.db'}")
    (tmp_path / "bot.toml").write_text(
        '[llm]\nbase_url = "http://127.0.0.1:9/v1"\nmax_retries = 0\n'
    )
    code = await asyncio.to_thread(main, ["-c", "bot.toml", "check-config", "--probe"])
    out = capsys.readouterr().out
    assert code == 1
    assert "probe: streaming: failed: cannot talk to http://127.0.0.1:9/v1" in out
    assert "\nok\n" not in out
