"""Socket Mode: envelopes are acknowledged only after the inbox accepted them, and a
dropped connection is opened again without losing or doubling an event."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import botkit_slack.adapter as slack_adapter
from botkit import AuthenticationError, ConversationRef, Reply, Secret
from tests.adapters.slack.recording_inbox import RecordingInbox
from tests.adapters.slack.slack_helpers import StartAdapter, corpus, event
from tests.fakes.slack_api import FakeSlack


async def test_an_envelope_is_acknowledged_only_after_the_inbox_accepted_it(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox
) -> None:
    await start_adapter(transport="socket")
    await slack.wait_connected()
    inbox.gate = asyncio.Event()  # a slow commit

    envelope = await slack.send_envelope(corpus("02-app_mention-channel-authed_users.json"))
    await asyncio.wait_for(inbox.entered.wait(), 5)
    await asyncio.sleep(0.2)
    assert slack.acked(envelope) is None  # still committing: no ack yet

    inbox.gate.set()
    ack = await slack.wait_ack(envelope)

    assert ack == {"envelope_id": envelope}
    assert [m.text for m in inbox.messages] == ["Hi there!"]


async def test_an_envelope_the_inbox_could_not_store_is_never_acknowledged(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox
) -> None:
    await start_adapter(transport="socket")
    await slack.wait_connected()
    inbox.fail_with_store_error()

    envelope = await slack.send_envelope(corpus("02-app_mention-channel-authed_users.json"))
    await asyncio.wait_for(inbox.entered.wait(), 5)
    await asyncio.sleep(0.3)

    assert slack.acked(envelope) is None
    assert inbox.messages == []


async def test_a_redelivered_envelope_is_acknowledged_and_accepted_once(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox
) -> None:
    await start_adapter(transport="socket")
    await slack.wait_connected()
    body = corpus("02-app_mention-channel-authed_users.json")

    first = await slack.send_envelope(body)
    await slack.wait_ack(first)
    second = await slack.send_envelope(body, retry_attempt=1)
    await slack.wait_ack(second)
    ignored = await slack.send_envelope(event(text="mine", user="W111", channel="D1"))
    await slack.wait_ack(ignored)

    assert len(inbox.messages) == 1
    assert len(inbox.duplicates) == 1


async def test_a_slash_command_over_socket_mode_is_acknowledged_with_an_ephemeral_note(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox
) -> None:
    await start_adapter(transport="socket", slash_command="/ask")
    await slack.wait_connected()

    envelope = await slack.send_envelope(
        {
            "command": "/ask",
            "text": "reset",
            "user_id": "W222",
            "user_name": "ada",
            "channel_id": "D123",
            "channel_name": "directmessage",
            "team_id": "T111",
            "trigger_id": "trig-1",
            "response_url": "https://hooks.slack.com/commands/T111/2/y",
        },
        kind="slash_commands",
    )
    ack = await slack.wait_ack(envelope)

    assert ack["payload"]["text"].startswith("Working on it")
    [message] = inbox.messages
    assert message.text == "/reset"
    assert message.metadata["channel_type"] == "im"


async def test_a_refused_app_token_fails_start_with_an_authentication_error(
    start_adapter: StartAdapter, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "xapp-1-wrong-app-token"

    with pytest.raises(AuthenticationError) as raised:
        await start_adapter(transport="socket", app_token=Secret(wrong, source="SLACK_APP_TOKEN"))

    assert raised.value.code == "invalid_auth"
    assert "apps.connections.open" in str(raised.value)
    assert wrong not in caplog.text + str(raised.value)


async def test_a_refused_bot_token_fails_start_with_an_authentication_error(
    start_adapter: StartAdapter, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "xoxb-wrong-bot-token"

    with pytest.raises(AuthenticationError) as raised:
        await start_adapter(bot_token=Secret(wrong, source="SLACK_BOT_TOKEN"))

    assert "auth.test" in str(raised.value)
    assert wrong not in caplog.text + str(raised.value)


async def test_socket_mode_logs_carry_no_token_even_at_debug_level(
    start_adapter: StartAdapter,
    slack: FakeSlack,
    inbox: RecordingInbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await start_adapter(transport="socket")
    await slack.wait_connected()

    envelope = await slack.send_envelope(corpus("02-app_mention-channel-authed_users.json"))
    await slack.wait_ack(envelope)

    assert "Running listener" in caplog.text  # debug logging really was on
    assert slack.bot_token not in caplog.text
    assert slack.app_token not in caplog.text


async def test_stop_intake_closes_the_socket_and_replies_still_go_out(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox
) -> None:
    adapter = await start_adapter(transport="socket")
    await slack.wait_connected()

    await adapter.stop_intake()
    sent = await adapter.send(
        ConversationRef("slack", "C111", "1.0"), Reply("still here"), delivery_id="d-1"
    )

    assert all(ws.closed for ws in slack._sockets)  # no more envelopes can arrive
    assert sent.text == "still here"
    assert [p["text"] for p in slack.posted("C111")] == ["still here"]


# reconnecting: Slack closes connections when it moves them, and a URL can be refused


@pytest.fixture
def quick_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ping (and retry a lost connection) every 0.3 s instead of every 10 s."""
    monkeypatch.setattr(slack_adapter, "SOCKET_PING_INTERVAL", 0.3)


def dm(**fields: Any) -> dict[str, Any]:
    """A direct message to the bot (answered without a mention)."""
    return event(channel="D123", **fields)


async def test_a_dropped_connection_is_opened_again_and_no_event_is_lost(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox, quick_pings: None
) -> None:
    await start_adapter(transport="socket")
    await slack.wait_connections(1)
    before = await slack.send_envelope(dm(text="before", event_id="Ev1", ts="1.000001"))
    await slack.wait_ack(before)

    await slack.drop_socket()
    # sent around the drop: Slack holds it for the next connection if none is open
    await slack.send_envelope(dm(text="during", event_id="Ev2", ts="1.000002"))
    await slack.wait_connections(2)
    await slack.send_envelope(dm(text="after", event_id="Ev3", ts="1.000003"))

    await slack.wait_settled()  # acknowledged only once the inbox accepted them
    assert [m.text for m in inbox.messages] == ["before", "during", "after"]
    assert inbox.duplicates == []
    assert len(slack.calls_to("apps.connections.open")) >= 2  # a new URL for the new link


async def test_a_url_that_refuses_the_websocket_is_replaced_by_a_new_one(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox, quick_pings: None
) -> None:
    await start_adapter(transport="socket")
    await slack.wait_connections(1)
    slack.refuse_sockets(1)  # the next URL is dead, and stays dead
    waiting_from = len(slack.deliveries)

    await slack.drop_socket()
    await slack.send_envelope(dm(text="while away", event_id="Ev1"))
    await slack.wait_connections(2)

    assert slack.refused_sockets >= 1
    # refused URLs stay refused: the second connection came through a new one
    assert len(slack.calls_to("apps.connections.open")) >= 3
    await slack.wait_settled()
    assert [m.text for m in inbox.messages] == ["while away"]
    # it waited for the new connection: delivered once, then acknowledged
    assert [d["retry_attempt"] for d in slack.deliveries[waiting_from:]] == [0]


async def test_a_refused_connections_open_is_asked_again(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox, quick_pings: None
) -> None:
    await start_adapter(transport="socket")
    await slack.wait_connections(1)
    slack.fail("apps.connections.open", "internal_error")

    await slack.drop_socket()
    await slack.send_envelope(dm(text="while away", event_id="Ev1"))
    await slack.wait_connections(2)

    assert len(slack.calls_to("apps.connections.open")) >= 3  # refused once, then a URL
    await slack.wait_settled()
    assert [m.text for m in inbox.messages] == ["while away"]


async def test_an_event_whose_ack_was_lost_with_the_connection_is_redelivered_and_kept_once(
    start_adapter: StartAdapter, slack: FakeSlack, inbox: RecordingInbox, quick_pings: None
) -> None:
    await start_adapter(transport="socket")
    await slack.wait_connections(1)
    inbox.gate = asyncio.Event()  # the commit is still running when the link drops

    first = await slack.send_envelope(dm(text="slow", event_id="Ev1"))
    await asyncio.wait_for(inbox.entered.wait(), 5)
    await slack.drop_socket()
    await slack.wait_connections(2)  # Slack delivers the unacknowledged event again
    inbox.gate.set()

    await slack.wait_settled()
    again = [d for d in slack.deliveries if d["envelope_id"] != first]
    assert [d["retry_attempt"] for d in again] == [1]
    await slack.wait_ack(again[0]["envelope_id"])
    assert [m.text for m in inbox.duplicates] == ["slow"]  # seen twice, kept once
    assert [m.text for m in inbox.messages] == ["slow"]
