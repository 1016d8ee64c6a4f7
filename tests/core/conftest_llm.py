"""Fixtures and helpers shared by the ``test_llm_*`` modules (imported by each of them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from botkit.llm import CallRecord, ModelTable, OpenAIChatClient
from botkit.secrets import Secret
from tests.fakes.openai_server import FakeOpenAI, fake_openai

__all__ = ["KEY", "MakeClient", "Records", "Sleeps", "fake_openai", "make_client", "sleeps"]

MakeClient = Callable[..., OpenAIChatClient]

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"
"""The API key the tests give clients; no error or log line may ever contain it."""


class Records(list[CallRecord]):
    """A ``CallRecorder`` that keeps every record it is given."""

    async def __call__(self, record: CallRecord) -> None:
        self.append(record)


class Sleeps(list[float]):
    """The client's ``sleep`` seam: notes each wait and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    """The waits a client made, noted instead of slept."""
    return Sleeps()


@pytest_asyncio.fixture
async def make_client(fake_openai: FakeOpenAI, sleeps: Sleeps) -> AsyncIterator[MakeClient]:
    """Makes clients of the fake server (gpt-4-turbo, the test key, no real waits)."""
    made: list[OpenAIChatClient] = []

    def make(**options: object) -> OpenAIChatClient:
        settings: dict[str, object] = {"models": ModelTable(), "sleep": sleeps, **options}
        client = OpenAIChatClient(fake_openai.url, Secret(KEY), "gpt-4-turbo", **settings)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
