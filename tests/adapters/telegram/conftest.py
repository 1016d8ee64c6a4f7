"""Fixtures for the Telegram adapter's tests: a fake Bot API and an adapter pointed at it.

No ``__init__.py`` here on purpose: with one, pytest would import this folder as a
package named ``telegram`` and shadow python-telegram-bot.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[3]
if str(_ROOT) not in sys.path:  # so ``tests.fakes`` imports under plain ``pytest`` too
    sys.path.insert(0, str(_ROOT))
try:
    import botkit_telegram  # noqa: F401
except ImportError:  # an editable install made before the package existed does not map it
    sys.path.insert(0, str(_ROOT / "adapters"))

from botkit_telegram import TelegramAdapter  # noqa: E402
from botkit_telegram._limits import FloodLimiter  # noqa: E402
from tests.adapters.telegram.support import (  # noqa: E402
    RecordingInbox,
    fast_limiter,
    make_settings,
)
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402

AdapterFactory = Callable[..., Awaitable[TelegramAdapter]]


@pytest.fixture(autouse=True)
def ptb_timedelta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt into PTB's timedelta periods: its int form warns on every ``RetryAfter``, and
    warnings are errors here."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    """The fake Bot API, on 127.0.0.1 and a free port."""
    async with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def inbox() -> RecordingInbox:
    """A recording inbox."""
    return RecordingInbox()


@pytest.fixture
async def make_adapter(
    api: FakeTelegramAPI, inbox: RecordingInbox
) -> AsyncIterator[AdapterFactory]:
    """Build (and optionally start) adapters; every one is stopped after the test."""
    built: list[TelegramAdapter] = []

    async def factory(
        *, start: bool = True, limiter: FloodLimiter | None = None, **overrides: Any
    ) -> TelegramAdapter:
        adapter = TelegramAdapter(
            "telegram", make_settings(api, **overrides), limiter=limiter or fast_limiter()
        )
        built.append(adapter)
        if start:
            await adapter.start(inbox)
        return adapter

    yield factory
    for adapter in built:
        await adapter.stop()
