"""Long polling against the fake Bot API: offsets, redelivery, conflicts, backoff."""

from __future__ import annotations

import asyncio
import copy
import logging
import traceback
from typing import Any

import pytest

from botkit import AuthenticationError, ConversationRef, Reply, Secret, ServiceError
from botkit_telegram import TelegramAdapter
from tests.adapters.telegram.conftest import AdapterFactory
from tests.adapters.telegram.support import RecordingInbox, corpus, eventually, make_settings
from tests.fakes.telegram_api import TOKEN, FakeTelegramAPI, ScriptedError


def offsets(api: FakeTelegramAPI) -> list[object]:
    return [r.params.get("offset") for r in api.calls("getUpdates")]


async def test_offset_advances_only_after_the_inbox_accepted(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    update = corpus("01-private-text")
    inbox.failures_left = 2  # the database is locked twice
    await api.push_update(update)
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    assert inbox.attempts == 3
    # fetched three times, never acknowledged while accept failed
    calls_before_accept = offsets(api)[:3]
    assert calls_before_accept == [None, None, None]
    await eventually(lambda: api.confirmed_offset == update["update_id"] + 1)
    assert api.pending_updates == []
    assert len(inbox.accepted) == 1


async def test_get_updates_asks_through_the_public_request_path_with_every_parameter(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    update = await api.push_update(corpus("01-private-text"))
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    await eventually(lambda: len(api.calls("getUpdates")) >= 2)
    first, second = api.calls("getUpdates")[:2]
    assert "offset" not in first.params  # nothing acknowledged yet: no offset is sent
    assert second.params["offset"] == str(update["update_id"] + 1)
    assert first.params["allowed_updates"] == ["message"]
    assert first.params["limit"] == "100"
    assert first.params["timeout"] == "1"


async def test_update_committed_but_not_acknowledged_is_accepted_once(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    inbox.crash_after_commit = True  # commit, then fail before the adapter could ack
    await api.push_update(corpus("01-private-text"))
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.duplicates) == 1)
    assert len(inbox.accepted) == 1
    await eventually(lambda: api.pending_updates == [])


async def test_redelivery_after_a_restart_is_answered_once(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    update = corpus("90-DERIVED-supergroup-mention-of-bot")
    first = await make_adapter()
    await api.push_update(update)
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    await first.stop()
    # Telegram never saw the offset past the update (the process died): it sends it again
    await api.push_update(update)
    if api.pending_updates == []:
        await api.push_update(update)
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.duplicates) >= 1)
    assert [m.external_id for m in inbox.accepted] == [f"{-1001417735217}:16"]


async def test_ignored_updates_are_acknowledged(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    edited = copy.deepcopy(corpus("01-private-text"))
    edited["update_id"] = 500
    edited["edited_message"] = edited.pop("message")
    chatter = copy.deepcopy(corpus("90-DERIVED-supergroup-mention-of-bot"))
    chatter["update_id"] = 501
    chatter["message"]["text"] = "humans talking"
    del chatter["message"]["entities"]
    wanted = copy.deepcopy(corpus("01-private-text"))
    wanted["update_id"] = 502
    for update in (edited, chatter, wanted):
        await api.push_update(update)
    adapter = await make_adapter()
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    assert inbox.accepted[0].raw is not None
    # counted by reason: the metrics say what the bot did not answer, and why
    metrics = inbox.metrics.render().decode()
    for reason in ("update_type", "group_chatter"):
        labels = f'channel="{adapter.name}",reason="{reason}"'
        assert f"botkit_messages_ignored_total{{{labels}}} 1.0" in metrics
    assert inbox.accepted[0].raw["update_id"] == 502
    await eventually(lambda: api.confirmed_offset == 503)


async def test_409_conflict_is_reported_once_and_backed_off(
    api: FakeTelegramAPI,
    inbox: RecordingInbox,
    make_adapter: AdapterFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="botkit_telegram")
    api.fail_always("getUpdates", ScriptedError.conflict())
    await make_adapter()  # backoff 0.1 s doubling up to 1 s
    await asyncio.sleep(2.0)
    calls = len(api.calls("getUpdates"))
    assert 2 <= calls <= 8, f"{calls} getUpdates in 2 s"
    conflicts = [r for r in caplog.records if "409 Conflict" in r.getMessage()]
    assert len(conflicts) == 1
    assert conflicts[0].levelno == logging.ERROR
    # the other poller went away: updates flow again
    api.fail_always("getUpdates", None)
    await api.push_update(corpus("01-private-text"))
    await inbox.wait_for(lambda i: len(i.accepted) == 1, within=5.0)
    assert any("works again" in r.getMessage() for r in caplog.records)


async def test_server_errors_on_get_updates_are_retried(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    api.fail("getUpdates", ScriptedError.bad_gateway(), times=2)
    await api.push_update(corpus("01-private-text"))
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.accepted) == 1)


async def test_flood_control_on_get_updates_waits_retry_after(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    api.fail("getUpdates", ScriptedError.flood(1))
    await api.push_update(corpus("01-private-text"))
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.accepted) == 1, within=5.0)
    first, second = api.calls("getUpdates")[:2]
    assert second.at - first.at >= 0.9


async def test_polling_removes_a_stale_webhook_first(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    api.webhook = {"url": "https://old.example.com/hook"}
    await make_adapter()
    assert len(api.calls("deleteWebhook")) == 1
    await api.push_update(corpus("01-private-text"))
    await inbox.wait_for(lambda i: len(i.accepted) == 1)


async def test_sticker_is_answered_by_the_adapter_and_not_accepted(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    update = copy.deepcopy(corpus("01-private-text"))
    del update["message"]["text"]
    update["message"]["sticker"] = {"file_id": "CAAC", "file_unique_id": "AgAD", "type": "regular"}
    await api.push_update(update)
    await make_adapter()
    await eventually(lambda: len(api.sent) == 1)
    assert api.sent[0].text == "Sorry, I can only read text here."
    assert api.sent[0].chat_id == 12345678
    await eventually(lambda: api.confirmed_offset == update["update_id"] + 1)
    assert inbox.accepted == []


async def test_photo_with_caption_from_the_corpus_is_accepted_over_polling(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    await api.push_update(corpus("05-photo-with-caption-private"))
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    message = inbox.accepted[0]
    assert message.text == "photo description"
    assert message.attachments[0].size == 47844


async def test_refused_token_fails_start_without_showing_the_token(
    api: FakeTelegramAPI, inbox: RecordingInbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "999999:WRONG-token_secret-value"
    adapter = TelegramAdapter(
        "telegram",
        make_settings(api, token=Secret(wrong, source="TELEGRAM_BOT_TOKEN")),
    )
    with pytest.raises(AuthenticationError) as raised:
        await adapter.start(inbox)
    await adapter.stop()
    rendered = "".join(traceback.format_exception(raised.value))
    assert wrong not in rendered
    assert wrong not in caplog.text


async def test_token_never_reaches_logs_or_errors(
    api: FakeTelegramAPI,
    inbox: RecordingInbox,
    make_adapter: AdapterFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: PTB, aiohttp, asyncio, ours
    adapter = await make_adapter()
    await api.push_update(corpus("01-private-text"))
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    api.fail("sendMessage", ScriptedError.blocked())
    errors: list[BaseException] = []
    from botkit import ConversationRef, Reply

    where = ConversationRef("telegram", "12345678")
    with pytest.raises(ServiceError) as blocked:
        await adapter.send(where, Reply("hi"), delivery_id="d1")
    errors.append(blocked.value)
    await adapter.send(where, Reply("**hello**"), delivery_id="d2")
    # a network failure: nothing listens on the port any more
    await api.close()
    with pytest.raises(ServiceError) as unreachable:
        await adapter.send(where, Reply("hi"), delivery_id="d3")
    errors.append(unreachable.value)
    assert TOKEN not in caplog.text
    for error in errors:
        assert TOKEN not in "".join(traceback.format_exception(error))
    assert TOKEN not in repr(adapter.settings)


async def test_an_update_the_adapter_cannot_read_is_skipped_not_retried_forever(
    api: FakeTelegramAPI,
    inbox: RecordingInbox,
    make_adapter: AdapterFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from botkit_telegram._updates import read_update as real

    def flaky(update: dict[str, Any], **kwargs: Any) -> Any:
        if update["update_id"] == 1:
            raise KeyError("a payload shape nobody expected")
        return real(update, **kwargs)

    monkeypatch.setattr("botkit_telegram.adapter.read_update", flaky)
    poison = copy.deepcopy(corpus("01-private-text"))
    poison["update_id"] = 1
    good = copy.deepcopy(corpus("01-private-text"))
    good["update_id"] = 2
    good["message"]["message_id"] = 2
    await api.push_update(poison)
    await api.push_update(good)
    await make_adapter()
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    assert inbox.accepted[0].external_id == "12345678:2"
    assert any("could not read Telegram update 1" in r.getMessage() for r in caplog.records)


async def test_polling_survives_an_unexpected_error(
    api: FakeTelegramAPI,
    inbox: RecordingInbox,
    make_adapter: AdapterFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botkit_telegram._request import RawBot

    real = RawBot.get_raw_updates
    calls = 0

    async def broken_once(self: RawBot, **kwargs: Any) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("surprise")
        return await real(self, **kwargs)

    monkeypatch.setattr(RawBot, "get_raw_updates", broken_once)
    await make_adapter()
    await api.push_update(corpus("01-private-text"))
    await inbox.wait_for(lambda i: len(i.accepted) == 1)
    assert calls >= 2


async def test_starting_twice_is_refused(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    with pytest.raises(RuntimeError):
        await adapter.start(inbox)


async def test_stop_intake_stops_polling_and_replies_still_go_out(
    api: FakeTelegramAPI, inbox: RecordingInbox, make_adapter: AdapterFactory
) -> None:
    adapter = await make_adapter()
    await eventually(lambda: len(api.calls("getUpdates")) >= 1)

    await adapter.stop_intake()
    polls = len(api.calls("getUpdates"))
    await api.push_update(corpus("01-private-text"))
    await asyncio.sleep(0.3)
    await adapter.send(ConversationRef("telegram", "12345"), Reply("still here"), delivery_id="d")

    assert len(api.calls("getUpdates")) == polls
    assert inbox.attempts == 0  # Telegram keeps the update for the next start
    assert [c.params["text"] for c in api.calls("sendMessage")] == ["still here"]
