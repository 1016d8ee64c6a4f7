"""Socket Mode: envelopes are acknowledged only after the inbox accepted them."""

from __future__ import annotations

import asyncio
import logging

import pytest

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
