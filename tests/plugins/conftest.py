"""Fixtures for the skill tests: bots from the plugin test kit, on every store backend."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from botkit.llm import ModelTable, OpenAIChatClient
from botkit.testing import TestBot, run_bot
from tests.fakes.openai_server import FakeOpenAI

StartBot = Callable[..., AbstractAsyncContextManager[TestBot]]


@pytest.fixture
def start_bot(database_url: str) -> StartBot:
    """``run_bot`` on the test's database (SQLite, and PostgreSQL when configured)."""

    def start(**kwargs: Any) -> AbstractAsyncContextManager[TestBot]:
        return run_bot(database_url=database_url, **kwargs)

    return start


@pytest.fixture
def openai_model(fake_openai: FakeOpenAI) -> OpenAIChatClient:
    """The real chat-completions client, pointed at the fake OpenAI server."""
    return OpenAIChatClient(
        fake_openai.url, None, "gpt-4o-mini", models=ModelTable(), max_retries=0
    )
