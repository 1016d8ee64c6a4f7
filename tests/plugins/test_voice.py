"""The voice plugin: voice messages transcribed and answered as if typed, replies spoken
on request or in kind, through a real bot, the real client and the fake OpenAI server."""

from __future__ import annotations

from botkit import Attachment, Capabilities
from botkit.llm import OpenAIChatClient, StandInModel
from botkit.testing import InMemoryChannel
from botkit_budget import plugin as budget
from botkit_chat import plugin as chat
from botkit_voice import plugin as voice
from tests.fakes.audio_files import comments_of, ogg_opus
from tests.fakes.openai_server import FakeOpenAI
from tests.plugins.conftest import StartBot


def voice_note(said: str, seconds: float = 2.0) -> Attachment:
    data = ogg_opus(seconds, comments={"TRANSCRIPT": said})
    return Attachment("voice.ogg", "audio/ogg", len(data), data=data)


async def test_a_voice_note_is_transcribed_answered_as_typed_and_spoken_back(
    start_bot: StartBot, openai_model: OpenAIChatClient, fake_openai: FakeOpenAI
) -> None:
    async with start_bot(plugins=[voice, chat], model=openai_model) as bot:
        await bot.send("", attachments=[voice_note("what is the capital of France")])
        [sent] = bot.sent
        stored = await bot.stored()
        usage = await bot.store.usage.report()
    # answered as if typed: the fake's echo of the transcript
    assert sent.text == "echo: what is the capital of France"
    # the transcript is the message's text (history shows it) and kept in its metadata
    assert stored.text == "what is the capital of France"
    assert stored.meta["voice"]["transcript"] == "what is the capital of France"
    assert stored.meta["voice"]["model"] == "whisper-1"
    # spoken in kind: the same reply carries the audio of its text
    [audio] = sent.reply.attachments
    assert (audio.name, audio.content_type) == ("reply.ogg", "audio/ogg")
    assert audio.data is not None
    assert comments_of(audio.data)["SPOKEN"] == "echo: what is the capital of France"
    paths = [r.path for r in fake_openai.requests]
    assert paths == [
        "/v1/audio/transcriptions",
        "/v1/chat/completions",
        "/v1/audio/speech",
    ]
    assert {row.model for row in usage} == {"whisper-1", "gpt-4o-mini", "tts-1"}
    spent = {row.model: row for row in usage}
    assert spent["whisper-1"].cost_nanos > 0
    assert spent["tts-1"].cost_nanos > 0


async def test_the_next_question_sees_the_transcript_in_history(
    start_bot: StartBot, openai_model: OpenAIChatClient, fake_openai: FakeOpenAI
) -> None:
    async with start_bot(plugins=[voice, chat], model=openai_model) as bot:
        await bot.send("", attachments=[voice_note("my name is Ada")])
        await bot.send("what is my name?")
    chats = [r for r in fake_openai.requests if r.path == "/v1/chat/completions"]
    contents = [m["content"] for m in chats[-1].messages]
    assert "my name is Ada" in contents


async def test_voice_on_speaks_typed_questions_and_voice_off_stops_it(
    start_bot: StartBot, openai_model: OpenAIChatClient, fake_openai: FakeOpenAI
) -> None:
    async with start_bot(plugins=[voice, chat], model=openai_model) as bot:
        assert "Spoken replies are on" in await bot.ask("/voice on")
        await bot.send("hello")
        spoken = bot.sent[-1]
        await bot.ask("/voice off")
        await bot.send("hello again")
        unspoken = bot.sent[-1]
    assert spoken.text == "echo: hello"
    assert len(spoken.reply.attachments) == 1
    assert unspoken.reply.attachments == ()
    # the command replies themselves were not read aloud
    assert len(fake_openai.audio_requests) == 1


async def test_each_person_may_pick_a_voice_and_others_keep_the_bots(
    start_bot: StartBot, openai_model: OpenAIChatClient, fake_openai: FakeOpenAI
) -> None:
    async with start_bot(
        plugins=[voice, chat], model=openai_model, settings={"voice": {"voice": "onyx"}}
    ) as bot:
        await bot.ask("/voice nova", user="ann")
        await bot.send("hi", user="ann")
        await bot.ask("/voice on", user="bob")
        await bot.send("hi", user="bob")
        assert "Unknown voice 'robot'" in await bot.ask("/voice robot")
    voices = [r.json["voice"] for r in fake_openai.audio_requests]
    assert voices == ["nova", "onyx"]


async def test_a_streamed_answer_is_followed_by_its_audio(
    start_bot: StartBot, openai_model: OpenAIChatClient
) -> None:
    channel = InMemoryChannel("test", capabilities=Capabilities(edits=True))
    async with start_bot(plugins=[voice, chat], model=openai_model, channels=[channel]) as bot:
        await bot.send("", attachments=[voice_note("tell me a story")])
    text, audio = channel.sent
    assert text.text == "echo: tell me a story"
    assert text.reply.attachments == ()
    assert audio.text == ""
    [file] = audio.reply.attachments
    assert file.data is not None
    assert comments_of(file.data)["SPOKEN"] == "echo: tell me a story"


async def test_a_recording_over_the_limit_gets_a_clear_answer_without_any_call(
    start_bot: StartBot, openai_model: OpenAIChatClient, fake_openai: FakeOpenAI
) -> None:
    huge = Attachment("voice.ogg", "audio/ogg", size=26 * 1024 * 1024)  # never fetched
    async with start_bot(plugins=[voice, chat], model=openai_model) as bot:
        answer = await bot.ask("", attachments=[huge])
    assert answer == (
        "That recording is 26.0 MB; I can listen to at most 25 MB. Please send a shorter one."
    )
    assert fake_openai.requests == []


async def test_audio_the_api_cannot_read_gets_its_reason(
    start_bot: StartBot, openai_model: OpenAIChatClient
) -> None:
    junk = Attachment("voice.ogg", "audio/ogg", 10, data=b"not audio!")
    async with start_bot(plugins=[voice, chat], model=openai_model) as bot:
        answer = await bot.ask("", attachments=[junk])
    assert answer.startswith("I could not listen to that recording: Invalid file format")


async def test_the_stand_in_says_clearly_it_cannot_listen_or_speak(
    start_bot: StartBot,
) -> None:
    async with start_bot(plugins=[voice, chat], model=StandInModel()) as bot:
        heard = await bot.ask("", attachments=[voice_note("hello")])
        switched = await bot.ask("/voice on")
        answer = await bot.ask("hello")
        last = bot.sent[-1]
    assert heard == (
        "I cannot listen to voice messages here: the offline stand-in model cannot transcribe"
        " voice messages: configure a real model ([llm] base_url and api_key_env), or send"
        " text."
    )
    assert "the offline stand-in model cannot speak" in switched
    assert answer.endswith(
        "(Not spoken: the offline stand-in model cannot speak: configure a real model"
        " ([llm] base_url and api_key_env) to hear replies)"
    )
    assert last.reply.attachments == ()


async def test_a_budget_can_refuse_the_speech_and_the_text_still_arrives(
    start_bot: StartBot, openai_model: OpenAIChatClient, fake_openai: FakeOpenAI
) -> None:
    limits = [{"scope": "user", "period": "day", "usd": 0.000000001}]
    async with start_bot(
        plugins=[budget, voice, chat],
        model=openai_model,
        settings={"budget": {"limits": limits}},
    ) as bot:
        await bot.ask("/voice on")
        # the chat call is allowed (nothing spent yet) and spends past the limit
        answer = await bot.ask("hello")
    assert answer.startswith("echo: hello\n\n(Not spoken: your daily limit of $0.00 is spent")
    assert fake_openai.audio_requests == []
