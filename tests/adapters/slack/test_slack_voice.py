"""Voice on Slack: an audio file shared in a DM is downloaded with the bot token,
transcribed and answered as if typed; the spoken answer follows its text as a file shared
with Slack's external upload flow (files.getUploadURLExternal, a POST of the bytes,
files.completeUploadExternal), each once, even when a try fails halfway."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError

from botkit import (
    Attachment,
    ConversationRef,
    Reply,
    RequestRejectedError,
    ServiceUnavailableError,
)
from botkit.testing import run_bot
from botkit_chat import plugin as chat
from botkit_slack import SlackAdapter
from botkit_voice import plugin as voice
from tests.adapters.slack.slack_helpers import StartAdapter, event, settings_for
from tests.fakes.audio_files import mp3_silence, ogg_opus
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack

DM = ConversationRef("slack", "D111")


def _voice_event(shared: dict[str, Any]) -> dict[str, Any]:
    return event(text="", channel="D111", channel_type="im", subtype="file_share", files=[shared])


async def test_an_audio_file_in_a_dm_is_transcribed_answered_and_spoken_back(
    database_url: str, fake_openai: FakeOpenAI, slack: FakeSlack
) -> None:
    clip = ogg_opus(2.0, comments={"TRANSCRIPT": "what is the capital of France"})
    shared = slack.add_file(clip, "voice-memo.ogg", "audio/ogg")
    adapter = SlackAdapter("slack", settings_for(slack, transport="socket"))
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[voice, chat],
        model="config",
        config={
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "bot": {"stream": False},
        },
    ).bot as bot:
        await slack.wait_connected()
        await slack.send_envelope(_voice_event(shared))
        await slack.wait_for(lambda: bool(slack.uploaded))
        await asyncio.sleep(0.2)
        [row] = [
            m
            for m in await bot.store.history.turns(1, before_id=None, limit=5)
            if m.direction == "in"
        ]
    # downloaded with the bot token, heard, and the transcript is the message's text
    assert slack.downloads == [
        (f"/files-pri/T111-{shared['id']}/download/voice-memo.ogg", f"Bearer {slack.bot_token}")
    ]
    assert row.text == "what is the capital of France"
    assert row.meta["voice"]["transcript"] == "what is the capital of France"
    # answered as if typed, then the spoken answer shared as a file after the text
    text, audio_message = slack.posted("D111")
    assert text["text"] == "echo: what is the capital of France"
    assert audio_message["subtype"] == "file_share"
    [uploaded] = slack.uploaded
    assert uploaded["channel"] == "D111"
    assert uploaded["name"] == uploaded["title"] == "reply.mp3"  # Slack's format: mp3
    assert uploaded["data"].startswith((b"ID3", b"\xff\xfb"))
    [url_call] = slack.calls_to("files.getUploadURLExternal")
    assert url_call.params["filename"] == "reply.mp3"
    assert int(url_call.params["length"]) == len(uploaded["data"])
    assert url_call.authorization == f"Bearer {slack.bot_token}"
    [complete] = slack.calls_to("files.completeUploadExternal")
    assert complete.params["channel_id"] == "D111"
    assert [c.method for c in slack.calls if c.method.startswith(("chat.post", "files."))] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


def _audio(data: bytes = b"") -> Attachment:
    data = data or mp3_silence(1.0)
    return Attachment("reply.mp3", "audio/mpeg", len(data), data=data)


async def test_a_reply_with_audio_posts_the_text_then_shares_the_file_in_the_thread(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    thread = ConversationRef("slack", "C111", "1700000100.000100")
    sent = await adapter.send(thread, Reply("Paris.", attachments=(_audio(),)), delivery_id="d1")
    [text] = [m for m in slack.posted("C111") if "files" not in m]
    # edits and ids are the text's; the file is shared in the same thread
    assert sent.parts == (text["ts"],)
    [uploaded] = slack.uploaded
    assert (uploaded["channel"], uploaded["thread_ts"]) == ("C111", "1700000100.000100")
    # the upload URL is the permission: the bytes go there without the token
    assert uploaded["data"] == _audio().data


async def test_an_audio_only_reply_shares_just_the_file(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    sent = await adapter.send(
        DM, Reply("", markup="plain", attachments=(_audio(),)), delivery_id="d1"
    )
    assert [m.get("subtype") for m in slack.posted("D111")] == ["file_share"]
    assert sent.parts == (slack.uploaded[0]["id"],)


async def test_a_failed_upload_is_retried_without_posting_the_text_again(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    slack.fail("files.completeUploadExternal", "internal_error")
    reply = Reply("Paris.", attachments=(_audio(),))
    with pytest.raises(ServiceUnavailableError):
        await adapter.send(DM, reply, delivery_id="d1")
    await adapter.send(DM, reply, delivery_id="d1")
    assert [m["text"] for m in slack.posted("D111") if "files" not in m] == ["Paris."]
    assert len(slack.uploaded) == 1


async def test_after_a_crash_the_text_found_is_not_posted_again_and_the_file_still_goes(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    first = await start_adapter()
    slack.fail("files.getUploadURLExternal", "internal_error")
    reply = Reply("Paris.", attachments=(_audio(),))
    with pytest.raises(ServiceUnavailableError):
        await first.send(DM, reply, delivery_id="d1")
    # the memo of what was posted is lost (a crash before it was written): only the
    # message metadata tells that the text is there
    assert first._state is not None
    await first._state.set("delivery:d1", [])
    await first.stop()
    second = await start_adapter()
    assert await second.find_sent(DM, "d1") is None  # the file is still owed
    await second.send(DM, reply, delivery_id="d1")
    assert [m["text"] for m in slack.posted("D111") if "files" not in m] == ["Paris."]
    assert len(slack.uploaded) == 1
    # once everything is there, it is found
    assert await second.find_sent(DM, "d1") is not None


async def test_a_reply_without_files_is_found_by_its_text_alone(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    await adapter.send(DM, Reply("Paris."), delivery_id="d1")
    found = await adapter.find_sent(DM, "d1")
    assert found is not None
    assert found.text == "Paris."


async def test_an_attachment_without_bytes_is_refused_clearly(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    empty = Attachment("reply.mp3", "audio/mpeg", None)
    with pytest.raises(RequestRejectedError) as caught:
        await adapter.send(DM, Reply("", attachments=(empty,)), delivery_id="d1")
    assert caught.value.code == "no_file_data"
    assert slack.calls_to("files.getUploadURLExternal") == []


async def _error_of(call: Awaitable[object]) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call
    return str(caught.value.response["error"])


async def test_the_fake_follows_the_documented_upload_flow_and_its_errors(
    slack: FakeSlack, start_adapter: StartAdapter
) -> None:
    adapter = await start_adapter()
    assert adapter._api is not None
    client = adapter._api.client
    # a zero length is a missing argument, as Slack's docs say
    url_for = "files.getUploadURLExternal"
    zero = client.api_call(url_for, params={"filename": "a.mp3", "length": 0})
    assert await _error_of(zero) == "missing_argument"
    ten = client.api_call(url_for, params={"filename": "a.mp3", "length": "ten"})
    assert await _error_of(ten) == "invalid_arguments"
    issued = await client.files_getUploadURLExternal(filename="a.mp3", length=3)
    url = str(issued["upload_url"])
    async with aiohttp.ClientSession() as session:
        async with session.post(url + "-unknown", data=b"abc") as gone:
            assert gone.status == 404
        # completing before the bytes arrived: the file is not found
        early = client.api_call(
            "files.completeUploadExternal",
            params={"files": f'[{{"id": "{issued["file_id"]}"}}]', "channel_id": "D111"},
        )
        assert await _error_of(early) == "file_not_found"
        async with session.post(url, data=b"abc") as ok:
            assert (ok.status, await ok.text()) == (200, "OK - 3")
    unknown = client.api_call(
        "files.completeUploadExternal",
        params={"files": '[{"id": "F000"}]', "channel_id": "D111"},
    )
    assert await _error_of(unknown) == "file_not_found"
    done = await client.files_completeUploadExternal(
        files=[{"id": str(issued["file_id"]), "title": "A"}], channel_id="D111"
    )
    assert done["files"] == [{"id": issued["file_id"], "title": "A"}]
    assert slack.uploaded[0]["data"] == b"abc"


async def test_an_upload_url_that_is_gone_is_a_clear_refusal(
    slack: FakeSlack, start_adapter: StartAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = await start_adapter()
    original = slack._api_files_getUploadURLExternal

    def wrong_url(params: dict[str, Any], request: Any) -> dict[str, Any]:
        answer = original(params, request)
        return {**answer, "upload_url": answer["upload_url"] + "-expired"}

    monkeypatch.setattr(slack, "_api_files_getUploadURLExternal", wrong_url)
    with pytest.raises(RequestRejectedError) as caught:
        await adapter.send(DM, Reply("", attachments=(_audio(),)), delivery_id="d1")
    assert caught.value.code == "upload_failed"
    assert "-expired" not in str(caught.value)  # the upload URL is never in an error
    assert slack.uploaded == []
