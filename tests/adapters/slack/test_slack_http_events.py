"""The HTTP Events API: signatures, url_verification, retries, and which events count."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from botkit import AuthenticationError, ConversationRef, Reply
from botkit_slack import SlackAdapter
from tests.adapters.slack.recording_inbox import RecordingInbox
from tests.adapters.slack.slack_helpers import (
    EVENTS_PATH,
    SIGNING_SECRET,
    HttpEvents,
    SignedPoster,
    corpus,
    event,
    settings_for,
    sign,
)
from tests.fakes.slack_api import FakeSlack


async def test_url_verification_is_answered_with_the_challenge(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    response = await http.post(corpus("01-url_verification.json"))

    assert response.status == 200
    assert await response.json() == {"challenge": "valid_challenge_token"}
    assert inbox.messages == []


async def test_a_bad_signature_is_refused_and_nothing_is_accepted(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    body = corpus("02-app_mention-channel-authed_users.json")

    wrong_secret = await http.post(body, secret="not-the-signing-secret")
    raw = json.dumps(body).encode()
    ts = int(time.time())
    tampered = await http.client.post(
        "/slack/events",
        data=raw.replace(b"Hi there", b"Hi thera"),
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(raw, ts),
        },
    )
    unsigned = await http.client.post("/slack/events", data=raw)

    assert [wrong_secret.status, tampered.status, unsigned.status] == [401, 401, 401]
    assert inbox.messages == []


async def test_a_stale_timestamp_is_refused_even_when_correctly_signed(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    six_minutes_ago = int(time.time()) - 6 * 60

    response = await http.post(corpus("01-url_verification.json"), timestamp=six_minutes_ago)
    mention = await http.post(
        corpus("02-app_mention-channel-authed_users.json"), timestamp=six_minutes_ago
    )

    assert (response.status, mention.status) == (401, 401)
    assert inbox.messages == []


async def test_a_retried_event_is_acknowledged_and_accepted_once(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    body = corpus("02-app_mention-channel-authed_users.json")

    first = await http.post(body)
    retry = await http.post(
        body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )

    assert (first.status, retry.status) == (200, 200)
    assert len(inbox.messages) == 1
    assert len(inbox.duplicates) == 1


async def test_the_app_mention_and_message_pair_for_one_message_is_accepted_once(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    mention = corpus("02-app_mention-channel-authed_users.json")
    message = corpus("02-app_mention-channel-authed_users.json")
    message["event_id"] = "Ev112"
    message["event"]["type"] = "message"
    message["event"]["channel_type"] = "channel"

    # Slack does not promise an order: the message event may come first
    assert (await http.post(message)).status == 200
    assert (await http.post(mention)).status == 200

    assert len(inbox.messages) == 1
    accepted = inbox.messages[0]
    assert accepted.external_id == inbox.duplicates[0].external_id == "C111:1595926230.009600"
    assert accepted.conversation == ConversationRef("slack", "C111", "1595926230.009600")
    assert accepted.text == "Hi there!"
    assert accepted.metadata["is_mention"] is True
    assert accepted.sender.id == "W222"
    assert accepted.sender.name == "Ada Lovelace"
    assert "token" not in (accepted.raw or {})


async def test_a_mention_inside_a_thread_is_answered_in_that_thread(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    body = corpus("06-message-thread-reply-in-channel.json")
    body["event"]["text"] = "<@W111> When was Slack released?"

    assert (await http.post(body)).status == 200

    [message] = inbox.messages
    assert message.conversation == ConversationRef("slack", "C111", "1726133698.626339")
    assert message.metadata["thread_ts"] == "1726133698.626339"


async def test_the_reply_to_a_threaded_mention_goes_into_that_thread(
    http_events: HttpEvents, inbox: RecordingInbox, slack: FakeSlack
) -> None:
    adapter, poster = await http_events()
    body = corpus("06-message-thread-reply-in-channel.json")
    body["event"]["text"] = "<@W111> When was Slack released?"
    await poster.post(body)
    [message] = inbox.messages

    await adapter.send(
        message.conversation,
        Reply("In 2013.", reply_to=message.external_id),
        delivery_id="d-1",
    )

    [call] = slack.calls_to("chat.postMessage")
    assert call.params["channel"] == "C111"
    assert call.params["thread_ts"] == "1726133698.626339"
    assert call.params["text"] == "In 2013."


async def test_a_top_level_dm_is_its_own_conversation_without_a_thread(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    await http.post(event(text="what is 2+2?", channel="D123"))
    await http.post(
        event(text="in a thread", channel="D123", ts="1700000200.000200", thread_ts="1700000100.0")
    )

    top, threaded = inbox.messages
    assert top.conversation == ConversationRef("slack", "D123", None)
    assert top.metadata["channel_type"] == "im"
    assert threaded.conversation == ConversationRef("slack", "D123", "1700000100.0")


async def test_the_bots_own_messages_are_ignored(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    by_user_id = event(text="my own answer", user="W111", channel="D123")
    by_bot_id = event(
        text="my own answer", user=None, channel="C111", bot_id="B111", subtype="bot_message"
    )

    responses = [await http.post(by_user_id), await http.post(by_bot_id)]

    assert [r.status for r in responses] == [200, 200]
    assert inbox.messages == []


async def test_channel_chatter_not_for_the_bot_is_counted_as_ignored(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    chatter = event(text="humans talking", channel="C111")

    assert (await http.post(chatter)).status == 200

    assert inbox.messages == []
    metrics = inbox.metrics.render().decode()
    assert 'botkit_messages_ignored_total{channel="slack",reason="not_addressed"} 1.0' in metrics
    assert 'botkit_messages_received_total{channel="slack"} 1.0' in metrics


async def test_a_thread_broadcast_by_the_bot_never_loops(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    mine = event(
        text="<@W111> said in thread and channel",
        user="W111",
        subtype="thread_broadcast",
        thread_ts="1700000000.000001",
    )
    theirs = event(
        text="<@W111> also to the channel",
        user="W222",
        ts="1700000300.000300",
        subtype="thread_broadcast",
        thread_ts="1700000000.000001",
    )

    await http.post(mine)
    await http.post(theirs)

    [message] = inbox.messages
    assert message.sender.id == "W222"
    assert message.conversation.thread_id == "1700000000.000001"


@pytest.mark.parametrize("subtype", ["message_changed", "message_deleted", "channel_join"])
async def test_edits_deletions_and_joins_are_ignored(
    http: SignedPoster, inbox: RecordingInbox, subtype: str
) -> None:
    response = await http.post(event(text="<@W111> hi", channel="D123", subtype=subtype))

    assert response.status == 200
    assert inbox.messages == []


async def test_other_bots_are_ignored_unless_allowed(
    http_events: HttpEvents, inbox: RecordingInbox
) -> None:
    body = corpus("08-message-bot_message-subtype.json")
    body["event"]["text"] = "<@W111> Hi there! Thanks for sharing the info!"
    _, default = await http_events()
    _, allowing = await http_events(allow_bots=True)

    await default.post(body)
    assert inbox.messages == []
    await allowing.post(body)

    [message] = inbox.messages
    assert message.sender.id == "B888"
    assert message.sender.is_bot is True
    assert message.sender.name == "classic-bot"


async def test_an_inbox_failure_is_not_acknowledged_so_slack_delivers_again(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    body = corpus("02-app_mention-channel-authed_users.json")
    inbox.fail_with_store_error()

    failed = await http.post(body)
    inbox.failure = None
    retried = await http.post(body, headers={"X-Slack-Retry-Num": "1"})

    assert failed.status >= 500
    assert retried.status == 200
    assert len(inbox.messages) == 1


@pytest.mark.parametrize(
    ("policy", "answered"),
    [
        ("mentions", ["<@W111> start", "<@W111> again"]),
        ("all", ["<@W111> start", "no mention", "<@W111> again"]),
    ],
)
async def test_later_messages_in_a_thread_follow_the_configured_policy(
    http_events: HttpEvents, inbox: RecordingInbox, policy: str, answered: list[str]
) -> None:
    _, poster = await http_events(reply_in_threads=policy)
    root = "1700000100.000100"
    await poster.post(event("app_mention", text="<@W111> start", ts=root))
    await poster.post(event(text="no mention", ts="1700000101.0", thread_ts=root))
    await poster.post(event(text="<@W111> again", ts="1700000102.0", thread_ts=root))
    await poster.post(event(text="elsewhere", ts="1700000103.0", thread_ts="1700000000.0"))

    texts = [m.text for m in inbox.messages]
    assert texts == [a.replace("<@W111> ", "") for a in answered]
    assert {m.conversation.thread_id for m in inbox.messages} == {root}


async def test_in_all_mode_a_thread_the_bot_wrote_in_is_found_through_conversations_replies(
    http_events: HttpEvents, inbox: RecordingInbox, slack: FakeSlack
) -> None:
    _, poster = await http_events(reply_in_threads="all")
    root = "1690000000.000001"
    slack.add_message("C111", {"type": "message", "user": "W222", "text": "q", "ts": root})
    slack.add_message(
        "C111",
        {"type": "message", "user": "W111", "text": "a", "ts": "1690000001.0", "thread_ts": root},
    )

    await poster.post(event(text="thanks!", ts="1700000101.0", thread_ts=root))
    await poster.post(event(text="one more", ts="1700000102.0", thread_ts=root))

    assert [m.text for m in inbox.messages] == ["thanks!", "one more"]
    assert len(slack.calls_to("conversations.replies")) == 1


async def test_a_reply_under_the_bots_own_message_addresses_the_bot(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    await http.post(
        event(text="follow-up", ts="1700000101.0", thread_ts="1700000000.5", parent_user_id="W111")
    )

    [message] = inbox.messages
    assert message.conversation.thread_id == "1700000000.5"


async def test_allowed_channels_and_users_limit_who_is_answered(
    http_events: HttpEvents, inbox: RecordingInbox
) -> None:
    _, poster = await http_events(allowed_channels=("C111",), allowed_users=("W222",))

    await poster.post(event("app_mention", text="<@W111> here", channel="C999"))
    await poster.post(event("app_mention", text="<@W111> who", user="W333", ts="1.2"))
    await poster.post(event("app_mention", text="<@W111> ok", ts="1.3"))
    await poster.post(event(text="dm", channel="D555", ts="1.4"))

    assert [m.text for m in inbox.messages] == ["ok", "dm"]


async def test_display_names_are_looked_up_once_and_cached(
    http: SignedPoster, inbox: RecordingInbox, slack: FakeSlack
) -> None:
    await http.post(event(text="one", channel="D1", ts="1.1"))
    await http.post(event(text="two", channel="D1", ts="1.2"))

    assert [m.sender.name for m in inbox.messages] == ["Ada Lovelace", "Ada Lovelace"]
    assert len(slack.calls_to("users.info")) == 1


async def test_the_slash_command_reaches_the_core_as_a_command_and_is_acknowledged(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    command = {
        "token": "verification-token",
        "team_id": "T111",
        "channel_id": "C111",
        "channel_name": "general",
        "user_id": "W222",
        "user_name": "ada",
        "command": "/botkit",
        "text": "summary last week",
        "response_url": "https://hooks.slack.com/commands/T111/1/x",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "api_app_id": "A111",
    }

    response = await http.post(command, form=True)
    again = await http.post({**command, "text": "", "trigger_id": "t-2"}, form=True)

    assert response.status == 200
    # an ephemeral answer only the caller sees (Slack takes plain text for it)
    assert "Working on it" in await response.text()
    assert again.status == 200
    first, empty = inbox.messages
    assert first.text == "/summary last week"
    assert first.conversation == ConversationRef("slack", "C111", None)
    assert first.metadata["command"] == "/botkit"
    assert empty.text == "/help"


async def test_secrets_never_reach_the_logs(
    http_events: HttpEvents,
    inbox: RecordingInbox,
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, poster = await http_events()
    body = corpus("02-app_mention-channel-authed_users.json")
    await poster.post(body)
    await poster.post(body, secret="wrong")
    inbox.fail_with_store_error()
    await poster.post(event(text="<@W111> fail", ts="9.9"))
    slack.fail("chat.postMessage", "invalid_auth")
    with pytest.raises(AuthenticationError) as raised:
        await adapter.send(ConversationRef("slack", "C111", "1.0"), Reply("x"), delivery_id="d")

    logged = caplog.text + str(raised.value) + repr(adapter.settings)
    for secret in (slack.bot_token, slack.app_token, SIGNING_SECRET):
        assert secret not in logged
    assert "database is locked" in caplog.text  # the failure itself is logged


async def test_files_shared_with_a_message_come_as_attachments(
    http: SignedPoster, inbox: RecordingInbox
) -> None:
    await http.post(
        event(
            text="what is in this?",
            channel="D123",
            subtype="file_share",
            files=[
                {
                    "id": "F1",
                    "name": "report.pdf",
                    "mimetype": "application/pdf",
                    "size": 1234,
                    "url_private": "https://files.slack.com/files-pri/T1-F1/report.pdf",
                }
            ],
        )
    )

    [message] = inbox.messages
    [attachment] = message.attachments
    assert (attachment.name, attachment.content_type, attachment.size) == (
        "report.pdf",
        "application/pdf",
        1234,
    )
    assert attachment.data is None  # not downloaded: the core decides whether it wants it


async def test_a_slash_command_from_someone_not_allowed_is_declined_quietly(
    http_events: HttpEvents, inbox: RecordingInbox
) -> None:
    _, poster = await http_events(allowed_users=("W999",))

    response = await poster.post(
        {
            "command": "/botkit",
            "text": "summary",
            "user_id": "W222",
            "channel_id": "C111",
            "trigger_id": "t-1",
        },
        form=True,
    )

    assert response.status == 200
    assert "not available" in await response.text()
    assert inbox.messages == []


# Bad input is answered, never raised: a 4xx and one log line, whatever the signature.


def _logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What botkit and bolt logged: aiohttp's access log is the test server's, not ours."""
    return [r for r in caplog.records if r.name != "aiohttp.access"]


def _one_line_no_traceback(caplog: pytest.LogCaptureFixture) -> str:
    records = _logged(caplog)
    assert len(records) == 1, [r.getMessage() for r in records]
    [record] = records
    assert record.exc_info is None
    assert record.levelno <= logging.WARNING
    return record.getMessage()


NOT_UTF8 = b'{"type": "event_callback", "text": "\xff\xfe caf\xe9"}'


@pytest.mark.parametrize(
    ("raw", "content_type", "reason"),
    [
        (NOT_UTF8, "application/json", "not UTF-8"),
        (b'{"type": "event_callback", "event": {', "application/json", "not JSON"),
        (b'[{"type": "event_callback"}]', "application/json", "not a JSON object"),
        (b'"url_verification"', "application/json", "not a JSON object"),
        (b"[" * 50_000 + b"]" * 50_000, "application/json", "not JSON"),
        (b"payload=%7Bnot+json", "application/x-www-form-urlencoded", "not JSON"),
        (b"payload=%5B1%2C2%5D", "application/x-www-form-urlencoded", "not a JSON object"),
        (b'{"type": "event_callback", "event": "hi"}', "application/json", "not a Slack request"),
        (b'{"type": "event_callback", "event": {"type": 5}}', "application/json", "not a Slack"),
    ],
    ids=[
        "not-utf8",
        "malformed-json",
        "array",
        "string",
        "nested-too-deep",
        "bad-payload",
        "payload-array",
        "event-not-object",
        "event-type-not-text",
    ],
)
async def test_a_signed_body_that_cannot_be_read_is_a_400_with_one_log_line(
    http: SignedPoster,
    inbox: RecordingInbox,
    caplog: pytest.LogCaptureFixture,
    raw: bytes,
    content_type: str,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)

    response = await http.post(raw, headers={"Content-Type": content_type})

    assert response.status == 400
    assert reason in await response.text()
    assert reason in _one_line_no_traceback(caplog)
    assert inbox.messages == []


@pytest.mark.parametrize("raw", [NOT_UTF8, b"{not json", b"[1, 2]"])
async def test_an_unreadable_body_with_a_bad_signature_is_a_401_with_one_log_line(
    http: SignedPoster, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    caplog.set_level(logging.INFO)

    forged = await http.post(raw, secret="not-the-signing-secret")
    assert forged.status == 401
    assert "signature" in _one_line_no_traceback(caplog)
    caplog.clear()
    absurd = await http.client.post(
        EVENTS_PATH,
        data=raw,
        headers={"X-Slack-Request-Timestamp": "9" * 5000, "X-Slack-Signature": "v0=00"},
    )
    assert absurd.status == 401
    assert "signature" in _one_line_no_traceback(caplog)
    assert inbox.messages == []


async def test_a_body_over_the_limit_is_a_413_before_it_is_read(
    http: SignedPoster, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    raw = json.dumps(event(text="x" * (1024 * 1024))).encode()
    ts = int(time.time())
    signed = {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sign(raw, ts)}
    sent = 0

    async def endless() -> AsyncIterator[bytes]:  # chunked: no Content-Length to go by
        nonlocal sent
        while sent < 64 * 1024 * 1024:
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    declared = await http.client.post(EVENTS_PATH, data=io.BytesIO(raw), headers=signed)
    assert declared.status == 413
    assert "over 1048576 bytes" in _one_line_no_traceback(caplog)
    caplog.clear()
    streamed = await http.client.post(
        EVENTS_PATH, data=endless(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status == 413
    assert "over 1048576 bytes" in _one_line_no_traceback(caplog)
    assert sent < 8 * 1024 * 1024  # refused long before the sender was done
    assert inbox.messages == []


# Every state of the adapter: a bad signature is 401; a good one waits for the adapter.


async def _mounted(adapter: SlackAdapter) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app.add_routes(adapter.web_routes())
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


async def test_before_start_a_bad_signature_is_401_and_a_good_one_waits_for_the_start(
    slack: FakeSlack, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    adapter = SlackAdapter("slack", settings_for(slack, transport="http"))
    client = await _mounted(adapter)
    poster = SignedPoster(client)
    body = corpus("02-app_mention-channel-authed_users.json")
    try:
        stale = await poster.post(body, timestamp=int(time.time()) - 6 * 60)
        forged = await poster.post(body, secret="not-the-signing-secret")
        unreadable = await poster.post(NOT_UTF8)
        assert (stale.status, forged.status, unreadable.status) == (401, 401, 400)

        held = asyncio.create_task(poster.post(body))
        await asyncio.sleep(0.2)
        assert not held.done()  # waiting, not processed, not refused
        await adapter.start(inbox)
        response = await held
        assert response.status == 200
        assert [m.text for m in inbox.messages] == ["Hi there!"]
    finally:
        await adapter.stop()
        await client.close()
    assert not [r for r in _logged(caplog) if r.exc_info]


async def test_an_adapter_that_never_starts_answers_503_with_retry_after_after_a_short_wait(
    slack: FakeSlack, inbox: RecordingInbox
) -> None:
    adapter = SlackAdapter("slack", settings_for(slack, transport="http"))
    client = await _mounted(adapter)
    try:
        began = time.monotonic()
        response = await SignedPoster(client).post(corpus("01-url_verification.json"))
        waited = time.monotonic() - began
    finally:
        await client.close()
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    assert 1.5 < waited < 3.0  # held, but answered within Slack's 3-second deadline
    assert inbox.messages == []


async def test_while_draining_a_bad_signature_is_401_and_a_good_one_503_with_retry_after(
    http_events: HttpEvents, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    adapter, poster = await http_events()
    body = corpus("02-app_mention-channel-authed_users.json")
    inbox.gate = asyncio.Event()  # a slow commit: the first event is in flight
    in_flight = asyncio.create_task(poster.post(body))
    await inbox.entered.wait()

    stopping = asyncio.create_task(adapter.stop_intake())
    await asyncio.sleep(0.1)
    assert not stopping.done()  # waits for the event being accepted
    caplog.set_level(logging.INFO)
    forged = await poster.post(event(text="later", ts="2.0"), secret="wrong")
    later = await poster.post(event(text="later", ts="2.0"))
    unreadable = await poster.post(b"[1, 2]")
    inbox.gate.set()
    await stopping

    assert (await in_flight).status == 200
    assert (forged.status, later.status, unreadable.status) == (401, 503, 400)
    assert later.headers["Retry-After"].isdigit()
    assert [m.text for m in inbox.messages] == ["Hi there!"]
    assert len(_logged(caplog)) == 3
    assert not [r for r in _logged(caplog) if r.exc_info]
