"""Sentiment: classified with a JSON schema, stored with the message, shared, escalated."""

from __future__ import annotations

import json

from botkit import Context, Message, Plugin, ServiceUnavailableError
from botkit.llm import OpenAIChatClient
from botkit.testing import FakeModel
from botkit_chat import plugin as chat
from botkit_sentiment import plugin as sentiment
from botkit_sentiment import report_of
from tests.fakes.openai_server import FakeOpenAI, completion
from tests.plugins.conftest import StartBot


async def test_each_message_is_classified_with_a_schema_and_stored_with_it(
    start_bot: StartBot, fake_openai: FakeOpenAI, openai_model: OpenAIChatClient
) -> None:
    fake_openai.script(
        completion(json.dumps({"label": "positive", "score": 0.8})), completion("Glad to hear!")
    )
    async with start_bot(
        plugins=[sentiment, chat], model=openai_model, config={"bot": {"stream": False}}
    ) as bot:
        assert await bot.ask("I love this product") == "Glad to hear!"
        stored = await bot.stored()
    classify, answer = fake_openai.requests
    schema = classify.json["response_format"]["json_schema"]
    assert schema["name"] == "sentiment"
    assert schema["schema"]["properties"]["label"]["enum"] == ["positive", "neutral", "negative"]
    assert classify.messages[-1]["content"] == "I love this product"
    assert answer.messages[-1]["content"] == "I love this product"
    assert stored.meta["sentiment"] == "positive"
    assert stored.meta["sentiment_score"] == 0.8


async def test_an_invalid_reply_marks_the_message_unknown_and_never_blocks_it(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    model.reply("positive, I'd say", purpose="sentiment")  # not JSON
    model.reply_json({"label": "ecstatic", "score": 1}, purpose="sentiment")  # off schema
    async with start_bot(plugins=[sentiment, chat], model=model) as bot:
        assert await bot.ask("great stuff") == "echo: great stuff"
        first = await bot.stored()
        assert await bot.ask("really great") == "echo: really great"
        second = await bot.stored()
    assert first.meta["sentiment"] == "unknown"
    assert first.meta["sentiment_score"] is None
    assert second.meta["sentiment"] == "unknown"
    assert len(model.requests_for("sentiment")) == 2


async def test_later_handlers_read_the_sentiment_from_the_annotations(
    start_bot: StartBot,
) -> None:
    support = Plugin("support")

    @support.on_message()
    async def answer(message: Message, ctx: Context) -> str:
        if ctx.annotations.get("sentiment") == "negative":
            return "I'm sorry to hear that. Let me help."
        return "Great!"

    model = FakeModel()
    model.reply_json({"label": "negative", "score": 0.9}, purpose="sentiment")
    model.reply_json({"label": "neutral", "score": 0}, purpose="sentiment")
    async with start_bot(plugins=[sentiment, support], model=model) as bot:
        assert await bot.ask("this is broken again") == "I'm sorry to hear that. Let me help."
        # a confidence instead of a polarity: the label decides the sign
        assert (await bot.stored()).meta["sentiment_score"] == -0.9
        assert await bot.ask("what time is it") == "Great!"


async def test_strongly_negative_messages_are_escalated_to_a_person(start_bot: StartBot) -> None:
    model = FakeModel()
    model.reply_json({"label": "negative", "score": -0.95}, purpose="sentiment")
    model.reply_json({"label": "negative", "score": -0.3}, purpose="sentiment")
    settings = {
        "sentiment": {
            "escalate_to": {"channel": "ops", "chat_id": "escalations"},
            "escalate_below": -0.7,
        }
    }
    async with start_bot(
        plugins=[sentiment, chat], model=model, settings=settings, channels=["test", "ops"]
    ) as bot:
        await bot.ask("This is the worst service ever, I want a refund NOW", name="Dana")
        assert (await bot.stored()).meta["sentiment_escalated"] is True
        await bot.ask("meh, slightly annoying")
    [notice] = [s.text for s in bot.channels["ops"].sent]
    assert notice.startswith("Strongly negative message (-0.95) from Dana in test:chat:")
    assert "worst service ever" in notice


async def test_commands_and_short_texts_are_not_classified(start_bot: StartBot) -> None:
    model = FakeModel()
    settings = {"sentiment": {"min_chars": 4}}
    async with start_bot(plugins=[sentiment, chat], model=model, settings=settings) as bot:
        await bot.send("ok")
        await bot.send("/help")
    assert model.requests_for("sentiment") == []


async def test_the_report_counts_labels_and_names_the_most_negative_message(
    start_bot: StartBot,
) -> None:
    model = FakeModel()
    for label, score in [("positive", 0.6), ("negative", -0.8), ("neutral", 0.0)]:
        model.reply_json({"label": label, "score": score}, purpose="sentiment")
    model.fail(ServiceUnavailableError("llm", "down"), purpose="sentiment")
    async with start_bot(plugins=[sentiment, chat], model=model) as bot:
        await bot.send("nice work", user="ann")
        await bot.send("this keeps crashing", user="bob")
        await bot.send("what about Tuesday", user="ann")
        await bot.send("anyone there", user="cid")
        report = await bot.ask("/sentiment")
    assert report.splitlines() == [
        "Sentiment of the last 4 messages: 1 positive, 1 neutral, 1 negative, 1 unknown.",
        "Average score: -0.07 (-1 very negative, +1 very positive).",
        "By person: bob -0.80, ann +0.30.",
        "Most negative (-0.80, bob): this keeps crashing",
    ]


def test_reports_skip_messages_without_a_sentiment() -> None:
    report = report_of(
        [("a", {}, "x"), ("b", {"sentiment": "positive", "sentiment_score": 1}, "y")]
    )
    assert report.total == 1
    assert report.average == 1.0
