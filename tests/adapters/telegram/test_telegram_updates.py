"""Reading Bot API updates into messages: private chats, groups, topics, media, commands."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from botkit import Secret
from botkit_telegram import TelegramSettings
from botkit_telegram._updates import Accept, BotIdentity, Ignore, Unsupported, read_update
from tests.adapters.telegram.support import corpus

ME = BotIdentity(id=635392558, username="opsdroid_bot")
GROUP = -1001417735217


def settings(**overrides: Any) -> TelegramSettings:
    return TelegramSettings(token=Secret("1:x"), **overrides)


def read(update: dict[str, Any], **overrides: Any) -> Accept | Ignore | Unsupported:
    return read_update(update, channel="telegram", me=ME, settings=settings(**overrides))


def accepted(update: dict[str, Any], **overrides: Any) -> Any:
    decision = read(update, **overrides)
    assert isinstance(decision, Accept), decision
    return decision.message


def group_text(text: str, **extra: Any) -> dict[str, Any]:
    update = copy.deepcopy(corpus("90-DERIVED-supergroup-mention-of-bot"))
    message = update["message"]
    message["text"] = text
    message.pop("entities", None)
    message.update(extra)
    return update


def test_private_text_becomes_a_message_with_a_per_chat_external_id() -> None:
    message = accepted(corpus("01-private-text"))
    assert message.text == "Hi, world!"
    assert message.conversation.channel == "telegram"
    assert message.conversation.chat_id == "12345678"
    assert message.conversation.thread_id is None
    assert message.external_id == "12345678:11223"
    assert message.sender.id == "12345678"
    assert message.sender.name == "FirstName LastName"
    assert message.sender.is_bot is False
    assert message.metadata["chat_type"] == "private"
    assert message.metadata["message_id"] == 11223
    assert message.raw is not None
    assert message.raw["update_id"] == 128526


def test_start_command_from_the_official_docs_is_read_despite_missing_is_bot() -> None:
    message = accepted(corpus("02-start-command-private-official-docs"))
    assert message.text == "/start"
    assert message.metadata["is_command"] is True
    assert message.sender.name == "Test Firstname Test Lastname"


def test_photo_caption_is_the_text_and_the_largest_photo_an_attachment() -> None:
    message = accepted(corpus("05-photo-with-caption-private"))
    assert message.text == "photo description"
    (attachment,) = message.attachments
    assert attachment.content_type == "image/jpeg"
    assert attachment.size == 47844
    assert message.metadata["files"] == [
        {
            "kind": "photo",
            "file_id": "AgADAgADOagxG8vyeUvsltCem_XPv5A6Sw0ABNXULc5u7jny5VkRAAEC",
            "file_unique_id": None,
        }
    ]
    assert "unsupported" not in message.metadata


def test_group_mention_is_answered_without_the_leading_mention() -> None:
    message = accepted(corpus("90-DERIVED-supergroup-mention-of-bot"))
    assert message.text == "what is on the agenda today?"
    assert message.metadata["is_mention"] is True
    assert message.metadata["chat_type"] == "supergroup"
    assert message.metadata["chat_title"] == "Opsdroid-test Chat"
    assert message.conversation.chat_id == str(GROUP)
    assert message.sender.name == "Dorota Rosado"


def test_reply_to_the_bot_in_a_group_is_answered() -> None:
    message = accepted(corpus("91-DERIVED-supergroup-reply-to-bot"))
    assert message.text == "Dzien dobry"
    assert message.metadata["reply_to_bot"] is True
    assert message.metadata["is_mention"] is False


def test_group_chatter_without_mention_is_ignored() -> None:
    assert isinstance(read(group_text("just talking among humans")), Ignore)


def test_reply_to_another_user_in_a_group_is_ignored() -> None:
    update = copy.deepcopy(corpus("91-DERIVED-supergroup-reply-to-bot"))
    update["message"]["reply_to_message"]["from"] = {
        "id": 42,
        "is_bot": False,
        "first_name": "Someone",
    }
    assert isinstance(read(update), Ignore)


def test_mention_of_another_bot_is_not_a_mention_of_this_one() -> None:
    update = group_text(
        "@other_bot hello", entities=[{"offset": 0, "length": 10, "type": "mention"}]
    )
    assert isinstance(read(update), Ignore)


def test_mention_after_an_emoji_is_found_by_utf16_offsets() -> None:
    text = "👋🏽 hi @opsdroid_bot"  # the emoji take 4 UTF-16 units
    update = group_text(text, entities=[{"offset": 8, "length": 13, "type": "mention"}])
    message = accepted(update)
    assert message.metadata["is_mention"] is True
    assert message.text == text  # only a leading mention is stripped


def test_text_mention_of_the_bot_by_id_counts() -> None:
    update = group_text(
        "opsdroid, help",
        entities=[{"offset": 0, "length": 8, "type": "text_mention", "user": {"id": ME.id}}],
    )
    assert accepted(update).metadata["is_mention"] is True


def test_command_addressed_to_this_bot_loses_its_suffix() -> None:
    message = accepted(group_text("/summary@opsdroid_bot last hour"))
    assert message.text == "/summary last hour"
    assert message.metadata["is_command"] is True


def test_command_suffix_is_matched_case_insensitively() -> None:
    assert accepted(group_text("/help@OpsDroid_Bot")).text == "/help"


def test_command_for_another_bot_is_ignored() -> None:
    assert isinstance(read(group_text("/summary@other_bot last hour")), Ignore)


def test_plain_command_in_a_group_is_answered() -> None:
    assert accepted(group_text("/reset")).text == "/reset"


def test_group_context_accepts_chatter_marked_not_addressed() -> None:
    message = accepted(group_text("just talking"), group_context=True)
    assert message.metadata["addressed"] is False


def test_forum_topic_message_gets_the_topic_as_thread() -> None:
    update = group_text("@opsdroid_bot hi", message_thread_id=77, is_topic_message=True)
    message = accepted(update)
    assert message.conversation.thread_id == "77"


def test_reply_thread_in_a_plain_supergroup_is_not_a_topic() -> None:
    update = copy.deepcopy(corpus("91-DERIVED-supergroup-reply-to-bot"))
    update["message"]["message_thread_id"] = 38  # set on replies outside forums too
    assert accepted(update).conversation.thread_id is None


def test_topic_opening_message_from_the_bot_is_not_a_reply_to_the_bot() -> None:
    update = group_text(
        "chatting in the topic",
        message_thread_id=5,
        is_topic_message=True,
        reply_to_message={
            "message_id": 5,
            "from": {"id": ME.id, "is_bot": True, "first_name": "opsdroid"},
            "chat": {"id": GROUP, "type": "supergroup"},
            "date": 1,
            "forum_topic_created": {"name": "Bot topic", "icon_color": 1},
        },
    )
    assert isinstance(read(update), Ignore)


def sticker_update(chat: dict[str, Any] | None = None) -> dict[str, Any]:
    update = copy.deepcopy(corpus("01-private-text"))
    message = update["message"]
    del message["text"]
    message["sticker"] = {
        "file_id": "CAACAgIAAxkBAAI",
        "file_unique_id": "AgAD",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "file_size": 2048,
    }
    if chat is not None:
        message["chat"] = chat
    return update


def test_sticker_without_text_is_answered_by_the_adapter_by_default() -> None:
    decision = read(sticker_update())
    assert isinstance(decision, Unsupported)
    assert decision.kind == "sticker"
    assert decision.conversation.chat_id == "12345678"


def test_sticker_can_be_accepted_for_plugins_with_empty_text() -> None:
    message = accepted(sticker_update(), media_without_text="accept")
    assert message.text == ""
    assert message.metadata["unsupported"] == "sticker"
    assert message.attachments[0].content_type == "image/webp"


def test_voice_note_becomes_an_attachment() -> None:
    update = copy.deepcopy(corpus("01-private-text"))
    message = update["message"]
    del message["text"]
    message["voice"] = {
        "file_id": "AwACAgIAAxkBAAI",
        "file_unique_id": "AgADvoice",
        "duration": 3,
        "mime_type": "audio/ogg",
        "file_size": 9000,
    }
    read_message = accepted(update, media_without_text="accept")
    assert read_message.attachments[0].name == "voice.ogg"
    assert read_message.attachments[0].size == 9000
    assert read_message.attachments[0].url == "telegram-file:AwACAgIAAxkBAAI"


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        ("voice", {"duration": 3, "mime_type": "audio/ogg"}),
        ("audio", {"duration": 90, "mime_type": "audio/mpeg", "file_name": "talk.mp3"}),
        ("document", {"mime_type": "application/pdf", "file_name": "minutes.pdf"}),
    ],
)
def test_a_file_plugins_read_reaches_the_core_without_text_in_reply_mode(
    kind: str, fields: dict[str, object]
) -> None:
    update = copy.deepcopy(corpus("01-private-text"))
    message = update["message"]
    del message["text"]
    message[kind] = {"file_id": "BQACAgIAAxkB", "file_unique_id": "AgADfile", **fields}
    read_message = accepted(update)  # media_without_text = "reply", the default
    assert read_message.text == ""
    assert read_message.attachments[0].url == "telegram-file:BQACAgIAAxkB"
    assert "unsupported" not in read_message.metadata  # a plugin reads it


def test_sticker_in_group_chatter_is_ignored_not_answered() -> None:
    update = sticker_update(chat={"id": GROUP, "type": "supergroup", "title": "t"})
    assert isinstance(read(update), Ignore)


def test_service_message_is_ignored() -> None:
    update = copy.deepcopy(corpus("01-private-text"))
    del update["message"]["text"]
    update["message"]["new_chat_title"] = "renamed"
    assert isinstance(read(update), Ignore)


def test_edited_message_is_ignored() -> None:
    update = corpus("01-private-text")
    update["edited_message"] = update.pop("message")
    decision = read(update)
    assert isinstance(decision, Ignore)
    assert "edited_message" in decision.reason


def test_channel_posts_are_ignored() -> None:
    update = copy.deepcopy(corpus("01-private-text"))
    update["message"]["chat"] = {"id": -100123, "type": "channel", "title": "news"}
    assert isinstance(read(update), Ignore)


@pytest.mark.parametrize(
    ("users", "chats", "expected"),
    [
        ((), (), True),
        ((12345678,), (), True),
        ((99,), (), False),
        ((), (12345678,), True),
        ((99,), (12345678,), True),
        ((99,), (98,), False),
    ],
)
def test_allowlists_admit_a_listed_user_or_a_listed_chat(
    users: tuple[int, ...], chats: tuple[int, ...], expected: bool
) -> None:
    decision = read(corpus("01-private-text"), allowed_users=users, allowed_chats=chats)
    assert isinstance(decision, Accept) is expected


def test_anonymous_group_admin_speaks_as_the_group() -> None:
    update = group_text("@opsdroid_bot hi")
    update["message"]["sender_chat"] = {"id": GROUP, "type": "supergroup", "title": "Ops"}
    message = accepted(update)
    assert message.sender.id == str(GROUP)
    assert message.sender.name == "Ops"


def test_garbage_update_is_ignored_not_raised() -> None:
    assert isinstance(read({"update_id": 1, "message": {"text": "no chat"}}), Ignore)
    assert isinstance(read({"update_id": 2}), Ignore)
