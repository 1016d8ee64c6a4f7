"""The spam filter: heuristics first, the model only when unsure, spam never answered."""

from __future__ import annotations

import json
from typing import Any

import pytest

from botkit import ConfigError
from botkit.llm import OpenAIChatClient
from botkit.testing import FakeModel
from botkit_chat import plugin as chat
from botkit_sentiment import plugin as sentiment
from botkit_spam import SpamSettings, score_text
from botkit_spam import plugin as spam
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.plugins.conftest import StartBot

NO_STREAM = {"bot": {"stream": False}}
OBVIOUS = (
    "EARN $500 PER DAY!!! Click here for a FREE prize http://a.xyz/1 http://b.xyz/2 http://c.xyz/3"
)
UNSURE = "Interesting article: https://example.com/post"  # one link and nothing else


def _settings(**extra: Any) -> dict[str, Any]:
    return {"spam": {"admins": ["boss"], "unsure_score": 0.2, **extra}}


def test_heuristics_score_links_patterns_capitals_and_repeats() -> None:
    settings = SpamSettings()
    assert score_text("How do I reset my password?", settings).score == 0
    obvious = score_text(OBVIOUS, settings)
    assert obvious.score >= settings.spam_score
    assert "3 links" in obvious.reasons
    assert "capitals" in score_text("WIN BIG TODAY, THE OFFER ENDS AT MIDNIGHT", settings).reason
    assert any("known spam phrase" in r for r in obvious.reasons)
    assert score_text("hello again", settings, repeats=3).reasons == ("the same text 3 times",)
    assert 0 < score_text(UNSURE, settings).score < settings.spam_score


async def test_obvious_spam_is_held_without_a_single_model_call(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    async with start_bot(
        plugins=[spam, sentiment, chat], model=openai_model, settings=_settings(), config=NO_STREAM
    ) as bot:
        assert await bot.send(OBVIOUS, user="spammer") == []
        held = await bot.stored()
        usage = await bot.store.usage.report()
    assert fake_openai.requests == []  # neither sentiment nor chat nor the spam check
    assert usage == []
    assert held.status == "skipped"
    assert held.meta["spam"] is True
    assert held.meta["spam_by"] == "heuristics"
    assert "3 links" in held.meta["spam_reason"]
    assert "sentiment" not in held.meta


async def test_an_unsure_message_costs_only_the_classification_call(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.script(completion(json.dumps({"spam": True, "reason": "link drop by a stranger"})))
    async with start_bot(
        plugins=[spam, chat], model=openai_model, settings=_settings(), config=NO_STREAM
    ) as bot:
        assert await bot.send(UNSURE, user="stranger") == []
        held = await bot.stored()
    [request] = fake_openai.requests
    assert request.json["response_format"]["type"] == "json_schema"
    assert "1 link" in request.messages[-1]["content"]
    assert held.meta["spam"] is True
    assert held.meta["spam_by"] == "model"
    assert held.meta["spam_reason"] == "link drop by a stranger"


async def test_a_message_the_model_clears_is_answered(start_bot: StartBot) -> None:
    model = FakeModel().reply_json({"spam": False, "reason": "a genuine share"}, purpose="spam")
    model.reply("Thanks for the link!", purpose="chat")
    async with start_bot(plugins=[spam, chat], model=model, settings=_settings()) as bot:
        assert await bot.ask(UNSURE) == "Thanks for the link!"
        stored = await bot.stored()
    assert stored.meta["spam"] is False
    assert stored.meta["spam_reason"] == "a genuine share"


async def test_an_invalid_model_verdict_lets_the_message_through(start_bot: StartBot) -> None:
    model = FakeModel().reply("I think it's fine", purpose="spam")  # not JSON
    async with start_bot(plugins=[spam, chat], model=model, settings=_settings()) as bot:
        assert await bot.ask(UNSURE) == f"echo: {UNSURE}"
        stored = await bot.stored()
    assert stored.meta["spam"] == "unknown"
    assert "not valid JSON" in stored.meta["spam_reason"]


async def test_without_the_model_unsure_messages_pass_and_allowed_senders_are_trusted(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    settings = _settings(use_model=False, allow_senders=["test:partner"])
    async with start_bot(plugins=[spam, chat], model=model, settings=settings) as bot:
        assert await bot.ask(UNSURE) == f"echo: {UNSURE}"
        assert await bot.ask(OBVIOUS, user="partner", chat="p") == f"echo: {OBVIOUS}"
    assert model.requests_for("spam") == []


async def test_flooding_the_same_text_is_caught(start_bot: StartBot) -> None:
    model = FakeModel().reply_json({"spam": True, "reason": "flooding"}, purpose="spam")
    settings = _settings(unsure_score=0.5)
    async with start_bot(plugins=[spam, chat], model=model, settings=settings) as bot:
        assert await bot.ask("buy my course") == "echo: buy my course"
        assert await bot.ask("buy my  course") == "echo: buy my  course"
        assert await bot.send("Buy my course") == []
    [check] = model.requests_for("spam")
    assert "the same text 3 times" in check.messages[-1]["content"]


async def test_an_admin_releases_a_false_positive_which_is_then_answered(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    settings = _settings(notify={"channel": "test", "chat_id": "mods"})
    async with start_bot(plugins=[spam, chat], model=model, settings=settings) as bot:
        assert await bot.send(OBVIOUS, user="fan") == []
        held_id = bot.last_message_id
        [notice] = [s.text for s in bot.channel.sent if s.conversation.chat_id == "mods"]
        assert f"/release {held_id}" in notice
        assert await bot.ask(f"/release {held_id}", user="fan", chat="dm") == (
            "Only an admin can release held messages."
        )
        assert await bot.ask("/release 999", user="boss", chat="mods") == (
            "Message 999 is not held as spam."
        )
        assert await bot.ask(f"/release {held_id}", user="boss", chat="mods") == (
            f"Released message {held_id}; it will be answered now."
        )
        await bot.idle()
        released = await bot.stored(held_id)
        assert await bot.ask(f"/release {held_id}", user="boss", chat="mods") == (
            f"Message {held_id} was already released."
        )
    answers = [s.text for s in bot.channel.sent if s.conversation.chat_id == "chat"]
    assert answers == [f"echo: {OBVIOUS}"]
    assert released.status == "done"
    assert released.meta["spam_released"] is True
    assert released.meta["spam_released_by"] == "boss"


async def test_a_bad_pattern_stops_the_bot_at_start(start_bot: StartBot) -> None:
    with pytest.raises(ConfigError, match=r"plugins\.spam\.patterns\[0\]"):
        async with start_bot(plugins=[spam], settings={"spam": {"patterns": ["(unclosed"]}}):
            pass
