"""Fixtures for the Slack adapter: the fake Slack, a recording inbox, started adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from botkit_slack import SlackAdapter
from tests.adapters.slack.recording_inbox import RecordingInbox
from tests.adapters.slack.slack_helpers import (
    HttpEvents,
    SignedPoster,
    StartAdapter,
    settings_for,
)
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The fake Slack, with one human user."""
    async with FakeSlack() as fake:
        fake.add_user("W222", "Ada Lovelace")
        yield fake


@pytest.fixture
def inbox() -> RecordingInbox:
    """An inbox that records what it accepted."""
    return RecordingInbox()


@pytest.fixture
async def start_adapter(slack: FakeSlack, inbox: RecordingInbox) -> AsyncIterator[StartAdapter]:
    """Start a ``SlackAdapter`` against the fake with settings overrides; stopped after."""
    started: list[SlackAdapter] = []

    async def start(**overrides: Any) -> SlackAdapter:
        adapter = SlackAdapter("slack", settings_for(slack, **overrides))
        await adapter.start(inbox)
        started.append(adapter)
        return adapter

    yield start
    for adapter in started:
        await adapter.stop()


@pytest.fixture
async def http_events(start_adapter: StartAdapter) -> AsyncIterator[HttpEvents]:
    """Start an adapter in HTTP mode with its routes on a local server."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(**overrides: Any) -> tuple[SlackAdapter, SignedPoster]:
        adapter = await start_adapter(transport="http", **overrides)
        app = web.Application()
        app.add_routes(adapter.web_routes())
        client = TestClient(TestServer(app, host="127.0.0.1", port=0))
        await client.start_server()
        clients.append(client)
        return adapter, SignedPoster(client)

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def http(http_events: HttpEvents) -> SignedPoster:
    """An HTTP-mode adapter with default settings, ready for signed posts."""
    _adapter, poster = await http_events()
    return poster
