"""Files shared in Slack: downloaded with the bot token from Slack's file URLs only,
within the size limit, a sign-in page taken for the refusal it is; and summarised by
the documents plugin inside a real bot."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from botkit import Attachment, RequestRejectedError, Secret
from botkit.testing import run_bot
from botkit_chat import plugin as chat
from botkit_documents import plugin as documents
from botkit_slack import SlackAdapter
from tests.adapters.slack.slack_helpers import corpus, settings_for
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.fakes.slack_api import FakeSlack


async def test_a_text_file_shared_in_a_dm_is_summarised(
    database_url: str, fake_openai: FakeOpenAI, slack: FakeSlack
) -> None:
    fake_openai.script(completion("- Deploys happen on Tuesdays."))
    shared = slack.add_file(
        b"# Runbook\nDeploys happen on Tuesdays at 10.\n", "runbook.md", "text/markdown"
    )
    dm = corpus("02-app_mention-channel-authed_users.json")
    dm["event"].update(
        type="message",
        subtype="file_share",
        channel="D111",
        channel_type="im",
        text="",
        files=[shared],
    )
    adapter = SlackAdapter("slack", settings_for(slack, transport="socket"))
    async with run_bot(
        database_url=database_url,
        channels=[adapter],
        plugins=[documents, chat],
        model="config",
        config={
            "llm": {"base_url": fake_openai.url, "model": "gpt-4o-mini"},
            "bot": {"stream": False},
        },
    ).bot:
        await slack.wait_connected()
        await slack.send_envelope(dm)
        await slack.wait_for(lambda: bool(slack.posted("D111")))
        await asyncio.sleep(0.2)
    [reply] = slack.posted("D111")
    assert reply["text"].startswith("Summary of runbook.md:")
    assert "Deploys happen on Tuesdays." in reply["text"]
    [request] = fake_openai.requests
    assert request.messages[-1]["content"] == "# Runbook\nDeploys happen on Tuesdays at 10."
    assert slack.downloads == [
        (f"/files-pri/T111-{shared['id']}/download/runbook.md", f"Bearer {slack.bot_token}")
    ]


def _attachment(shared: dict[str, object], **changes: object) -> Attachment:
    attachment = Attachment(
        str(shared["name"]),
        str(shared["mimetype"]),
        int(str(shared["size"])),
        str(shared["url_private_download"]),
    )
    return dataclasses.replace(attachment, **changes)  # type: ignore[arg-type]


async def test_fetch_attachment_sends_the_token_only_to_slack_and_within_the_limit(
    slack: FakeSlack,
) -> None:
    adapter = SlackAdapter("slack", settings_for(slack))
    shared = slack.add_file(b"%PDF-1.4 not really", "a.pdf", "application/pdf")
    assert await adapter.fetch_attachment(_attachment(shared)) == b"%PDF-1.4 not really"

    with pytest.raises(RequestRejectedError) as small:
        await adapter.fetch_attachment(_attachment(shared, size=None), max_bytes=5)
    assert small.value.code == "too_large"

    with pytest.raises(RequestRejectedError) as elsewhere:
        await adapter.fetch_attachment(_attachment(shared, url="https://evil.example/a.pdf"))
    assert elsewhere.value.code == "unknown_attachment"

    gone = _attachment(shared, url=str(shared["url_private_download"]).replace("a.pdf", "b.pdf"))
    with pytest.raises(RequestRejectedError) as missing:
        await adapter.fetch_attachment(gone)
    assert missing.value.code == "attachment_gone"
    assert len(slack.downloads) == 3  # the foreign URL was never asked


async def test_a_sign_in_page_instead_of_the_file_is_a_refusal(slack: FakeSlack) -> None:
    wrong = settings_for(slack, bot_token=Secret("xoxb-other-workspace", source="SLACK_BOT_TOKEN"))
    adapter = SlackAdapter("slack", wrong)
    shared = slack.add_file(b"data", "notes.txt", "text/plain")
    with pytest.raises(RequestRejectedError) as refused:
        await adapter.fetch_attachment(_attachment(shared))
    assert refused.value.code == "file_access_denied"
    assert "files:read" in str(refused.value)
    assert "xoxb-other-workspace" not in str(refused.value)
    assert [path for path, _ in slack.downloads] == [
        f"/files-pri/T111-{shared['id']}/download/notes.txt"
    ]  # the redirect to the sign-in page was not followed
