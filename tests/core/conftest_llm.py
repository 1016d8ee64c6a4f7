"""Fixtures and helpers shared by the ``test_llm_*`` modules (imported by each of them)."""

from __future__ import annotations

from botkit.llm import CallRecord
from tests.fakes.openai_server import fake_openai

__all__ = ["KEY", "Records", "Sleeps", "fake_openai"]

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
