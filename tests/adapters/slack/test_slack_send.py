"""Sending, editing and the typing reaction: splitting, escaping, pacing and Slack's errors."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

import botkit_slack._api as slack_api_module
from botkit import (
    AuthenticationError,
    ClaimLostError,
    ConversationRef,
    RateLimitError,
    Reply,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit.claims import Claims, sending_under
from botkit_slack import MAX_TEXT
from botkit_slack.adapter import DELIVERY_MEMO_TTL
from tests.adapters.slack.recording_inbox import RecordingInbox
from tests.adapters.slack.slack_helpers import HttpEvents, StartAdapter, event
from tests.fakes.slack_api import FakeSlack

THREAD = ConversationRef("slack", "C111", "1700000000.000001")


def _long_reply() -> str:
    """About 45,000 characters of numbered paragraphs full of characters Slack escapes."""
    paragraphs = [
        f"Paragraph {i:04d}: Tom & Jerry say 1 < 2 and 3 > 2, **bold {i}** and a "
        f"[link](https://example.com/?a={i}&b=2). " + "Lorem ipsum dolor sit amet. " * 3
        for i in range(300)
    ]
    text = "\n\n".join(paragraphs)
    assert len(text) > 45_000
    return text


async def test_a_45000_character_reply_is_split_in_order_and_escaped_once(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()

    sent = await adapter.send(THREAD, Reply(_long_reply()), delivery_id="d-long")

    posted = slack.posted("C111")
    texts = [m["text"] for m in posted]
    assert len(texts) >= 12
    assert all(len(t) <= MAX_TEXT for t in texts)
    assert all(m["thread_ts"] == THREAD.thread_id for m in posted)
    numbers = [int(n) for t in texts for n in re.findall(r"Paragraph (\d{4})", t)]
    assert numbers == list(range(300))  # every paragraph, once, in order
    joined = "\n".join(texts)
    assert "&amp;amp;" not in joined
    assert "&lt;" in joined
    assert "&gt;" in joined
    assert "Tom &amp; Jerry" in joined
    assert "<https://example.com/?a=7&amp;b=2|link>" in joined
    assert "*bold 7*" in joined
    assert sent.parts == tuple(m["ts"] for m in posted)
    assert sent.external_id == posted[-1]["ts"]


async def test_neither_the_model_nor_a_user_can_inject_mentions_or_links(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()

    await adapter.send(
        THREAD,
        Reply("Hey <!channel> and <@U999>, see [this](javascript:alert(1)) or <http://evil|ok>"),
        delivery_id="d-1",
    )

    [posted] = slack.posted()
    text = posted["text"]
    assert "<!" not in text
    assert "<@" not in text
    assert "<http://evil" not in text
    assert "&lt;!channel&gt;" in text


async def test_a_short_retry_after_is_waited_out_and_the_post_retried(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    slack.rate_limit("chat.postMessage", retry_after=0.3)

    started = time.monotonic()
    sent = await adapter.send(THREAD, Reply("hi"), delivery_id="d-1")

    assert time.monotonic() - started >= 0.3
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert sent.text == "hi"


async def test_a_long_retry_after_is_raised_not_slept_and_holds_the_channel(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    slack.rate_limit("chat.postMessage", retry_after=120)

    started = time.monotonic()
    with pytest.raises(RateLimitError) as first:
        await adapter.send(THREAD, Reply("hi"), delivery_id="d-1")
    with pytest.raises(RateLimitError) as second:
        await adapter.send(THREAD, Reply("hi"), delivery_id="d-1")
    other_channel = await adapter.send(
        ConversationRef("slack", "C222", None), Reply("elsewhere"), delivery_id="d-2"
    )

    assert time.monotonic() - started < 30  # not the 120 s, on however loaded a machine
    assert first.value.retry_after == 120
    assert first.value.retryable is True
    assert second.value.retry_after is not None
    assert 100 < second.value.retry_after <= 120
    # the held channel was not asked again; another channel was not held
    assert [c.params["channel"] for c in slack.calls_to("chat.postMessage")] == ["C111", "C222"]
    assert other_channel.text == "elsewhere"


@pytest.mark.parametrize("code", ["channel_not_found", "not_in_channel", "msg_too_long"])
async def test_ok_false_is_not_retried_and_is_logged_with_the_conversation(
    start_adapter: StartAdapter, slack: FakeSlack, caplog: pytest.LogCaptureFixture, code: str
) -> None:
    adapter = await start_adapter()
    slack.fail("chat.postMessage", code)

    with pytest.raises(RequestRejectedError) as raised:
        await adapter.send(THREAD, Reply("hi"), delivery_id="d-1")

    assert raised.value.code == code
    assert raised.value.retryable is False
    assert raised.value.service == "slack"
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert THREAD.key in caplog.text
    assert code in caplog.text


async def test_a_refused_token_and_a_server_error_map_to_their_errors(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    slack.fail("chat.postMessage", "token_revoked")
    slack.http_error("chat.postMessage", 503)

    with pytest.raises(AuthenticationError) as auth:
        await adapter.send(THREAD, Reply("hi"), delivery_id="d-1")
    with pytest.raises(ServiceUnavailableError) as down:
        await adapter.send(THREAD, Reply("hi"), delivery_id="d-1")

    assert (auth.value.code, auth.value.retryable) == ("token_revoked", False)
    assert (down.value.status, down.value.retryable) == (503, True)


async def test_an_unreachable_slack_is_a_retryable_service_error(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    await slack.close()  # started against the fake; now the fake goes away

    with pytest.raises(ServiceUnavailableError) as raised:
        await adapter.send(THREAD, Reply("hi"), delivery_id="d-1")

    assert raised.value.retryable is True


async def test_a_retried_delivery_does_not_post_the_pieces_that_went_out_before(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    text = "\n\n".join(f"part {i} " + "x" * 3000 for i in range(3))
    slack.fail("chat.postMessage", "internal_error", after=1)  # the second piece fails

    with pytest.raises(ServiceUnavailableError):
        await adapter.send(THREAD, Reply(text), delivery_id="d-3")
    sent = await adapter.send(THREAD, Reply(text), delivery_id="d-3")

    texts = [m["text"] for m in slack.posted()]
    assert [t.split()[1] for t in texts] == ["0", "1", "2"]
    assert len(sent.parts) == 3


async def test_posts_to_one_channel_are_spaced_by_the_post_interval(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter(post_interval=0.25)

    started = time.monotonic()
    await adapter.send(THREAD, Reply("one"), delivery_id="d-1")
    await adapter.send(THREAD, Reply("two"), delivery_id="d-2")
    await adapter.send(ConversationRef("slack", "C222", None), Reply("x"), delivery_id="d-3")

    # the second post waited its interval (a lower bound: load only adds to it); an upper
    # bound tighter than "nothing slept for long" would fail on a loaded machine
    assert 0.25 <= time.monotonic() - started < 10.0
    assert [m["text"] for m in slack.posted("C111")] == ["one", "two"]


async def test_streaming_edits_update_in_place_and_grow_into_more_messages(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    sent = await adapter.send(THREAD, Reply("Hello"), delivery_id="d-1")

    sent = await adapter.edit(sent, "Hello **world**")
    unchanged = await adapter.edit(sent, "Hello **world**")
    long_text = "Hello **world**\n\n" + "word " * 1000
    grown = await adapter.edit(unchanged, long_text)
    shrunk = await adapter.edit(grown, "Bye")

    updates = slack.calls_to("chat.update")
    assert [u.params["text"] for u in updates][:1] == ["Hello *world*"]
    assert len(updates) == 3  # the unchanged edit sent nothing; the grown one kept piece 1
    assert len(grown.parts) == 2
    assert slack.calls_to("chat.delete")[0].params["ts"] == grown.parts[1]
    assert [m["text"] for m in slack.posted()] == ["Bye"]
    assert shrunk.parts == (sent.external_id,)


async def test_the_typing_reaction_goes_on_the_message_and_comes_off_after_the_reply(
    http_events: HttpEvents, slack: FakeSlack, inbox: RecordingInbox
) -> None:
    adapter, poster = await http_events()
    await poster.post(event("app_mention", text="<@W111> hi"))
    [message] = inbox.messages

    await adapter.typing(message.conversation)
    await adapter.typing(message.conversation)  # the core repeats it; Slack sees it once
    await adapter.send(
        message.conversation, Reply("hello", reply_to=message.external_id), delivery_id="d"
    )

    assert slack.reactions == [
        ("add", "C111", "1700000100.000100", "eyes"),
        ("remove", "C111", "1700000100.000100", "eyes"),
    ]


async def test_a_failing_reaction_never_fails_the_reply(
    http_events: HttpEvents,
    slack: FakeSlack,
    inbox: RecordingInbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    adapter, poster = await http_events()
    await poster.post(event(text="hi", channel="D1"))
    [message] = inbox.messages
    slack.fail("reactions.add", "missing_scope")

    await adapter.typing(message.conversation)
    sent = await adapter.send(
        message.conversation, Reply("hello", reply_to=message.external_id), delivery_id="d"
    )

    assert "missing_scope" in caplog.text
    assert sent.text == "hello"
    assert [r[0] for r in slack.reactions] == []  # refused, and nothing left to remove


async def test_a_reply_posted_by_an_earlier_try_is_found_by_its_delivery_id(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    sent = await adapter.send(THREAD, Reply(_long_reply()), delivery_id="botkit-7")
    await adapter.send(THREAD, Reply("another reply"), delivery_id="botkit-8")

    found = await adapter.find_sent(THREAD, "botkit-7")

    assert found is not None
    assert found.parts == sent.parts  # every piece, in order
    assert found.external_id == sent.external_id
    assert await adapter.find_sent(THREAD, "botkit-9") is None  # never posted
    in_channel = ConversationRef("slack", "C111")
    top = await adapter.send(in_channel, Reply("top level"), delivery_id="botkit-10")
    found_top = await adapter.find_sent(in_channel, "botkit-10")
    assert found_top is not None
    assert found_top.external_id == top.external_id


async def test_a_reply_is_not_found_when_a_piece_is_missing_or_history_is_refused(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    adapter = await start_adapter()
    sent = await adapter.send(THREAD, Reply(_long_reply()), delivery_id="botkit-7")
    slack.messages["C111"] = [m for m in slack.messages["C111"] if m["ts"] != sent.parts[3]]
    assert await adapter.find_sent(THREAD, "botkit-7") is None  # partly posted: not whole

    slack.fail("conversations.replies", "missing_scope")
    assert await adapter.find_sent(THREAD, "botkit-8") is None  # cannot tell: not found


async def test_a_send_under_lapsed_claims_posts_nothing(
    start_adapter: StartAdapter, slack: FakeSlack
) -> None:
    """A process frozen mid-send (its claims lapsed meanwhile) posts nothing once it wakes:
    the check comes after the pacing wait, right before the request."""
    adapter = await start_adapter()
    lapsed = Claims(lease=0.05)
    taken = time.monotonic()
    await asyncio.sleep(0.06)
    with sending_under(lapsed, taken), pytest.raises(ClaimLostError):
        await adapter.send(THREAD, Reply("too late"), delivery_id="botkit-1")
    assert slack.posted("C111") == []


async def test_a_send_whose_claims_lapse_after_the_adapters_own_check_posts_nothing(
    start_adapter: StartAdapter, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claims trace on the adapter's session checks again as the request's first
    byte is about to go (after the HTTP client's own waits): refused there, Slack gets
    nothing and the outbox gets the ClaimLostError, not a network error."""
    adapter = await start_adapter()
    checks: list[bool] = []
    # the adapter's own check passes, as if the process froze right after it
    monkeypatch.setattr(slack_api_module, "ensure_claims_live", lambda: checks.append(True))
    lapsed = Claims(lease=0.05)
    taken = time.monotonic()
    await asyncio.sleep(0.06)
    with sending_under(lapsed, taken), pytest.raises(ClaimLostError):
        await adapter.send(THREAD, Reply("too late"), delivery_id="botkit-2")
    assert checks
    assert slack.posted("C111") == []


async def test_the_memo_of_what_a_delivery_posted_expires_instead_of_piling_up(
    start_adapter: StartAdapter, inbox: RecordingInbox
) -> None:
    adapter = await start_adapter()
    await adapter.send(THREAD, Reply("hi"), delivery_id="d-9")

    [state] = inbox.states.values()
    assert state.ttls["delivery:d-9"] == DELIVERY_MEMO_TTL
    assert all(ttl is not None for key, ttl in state.ttls.items() if key.startswith("delivery:"))
