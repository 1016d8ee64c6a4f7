"""Speech and transcription through OpenAIChatClient, against the fake's audio endpoints:
the wire format (JSON in, audio out; a real multipart upload), prices per character and
per minute, retries, errors, and what is refused before sending."""

from __future__ import annotations

import json
import struct
from decimal import Decimal

import pytest

from botkit.exceptions import QuotaExceededError, RequestRejectedError
from botkit.llm import (
    AudioModel,
    ModelTable,
    SpeechRequest,
    StandInModel,
    TranscriptionRequest,
)
from botkit.llm.audio import MAX_TRANSCRIPTION_BYTES
from botkit.llm.audio_length import audio_seconds, ogg_seconds, wav_seconds
from tests.core import conftest_llm
from tests.core.conftest_llm import KEY, MakeClient, Records, Sleeps
from tests.fakes.audio_files import comments_of, mp3_silence, ogg_opus
from tests.fakes.openai_server import (
    FakeOpenAI,
    UploadedFile,
    error,
    insufficient_quota,
    rate_limited,
)

fake_openai = conftest_llm.fake_openai
make_client = conftest_llm.make_client
sleeps = conftest_llm.sleeps


async def test_speech_posts_json_and_returns_the_ogg_opus_audio_priced_per_character(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    client = make_client()
    records = Records()
    text = "Hello there, this is a spoken reply."
    speech = await client.speak(
        SpeechRequest(text, "tts-1", voice="nova", format="opus", speed=1.25), record=records
    )
    [sent] = fake_openai.audio_requests
    assert sent.path == "/v1/audio/speech"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json == {
        "model": "tts-1",
        "input": text,
        "voice": "nova",
        "response_format": "opus",
        "speed": 1.25,
    }
    assert speech.audio.startswith(b"OggS")
    assert comments_of(speech.audio)["SPOKEN"] == text
    assert (speech.content_type, speech.filename) == ("audio/ogg", "reply.ogg")
    assert speech.seconds == pytest.approx(len(text) / 15, abs=0.02)
    [record] = records
    assert (record.model, record.purpose, record.ok) == ("tts-1", "speech", True)
    assert record.prompt_tokens is None
    assert record.completion_tokens is None
    assert record.cost == Decimal("0.015") * len(text) / 1000


async def test_gpt_4o_mini_tts_is_priced_per_minute_of_the_audio_it_returned(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    records = Records()
    text = "x" * 900  # the fake speaks 15 characters a second: one minute
    await make_client().speak(SpeechRequest(text, "gpt-4o-mini-tts"), record=records)
    assert records[0].cost == Decimal("0.015")


async def test_transcription_uploads_a_multipart_form_and_prices_the_seconds_reported(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    audio = ogg_opus(2.5, comments={"TRANSCRIPT": "remind me to call Bob"})
    records = Records()
    transcript = await make_client().transcribe(
        TranscriptionRequest(
            audio,
            "voice.ogg",
            "whisper-1",
            content_type="audio/ogg",
            language="en",
            prompt="Bob",
        ),
        record=records,
    )
    [sent] = fake_openai.audio_requests
    assert sent.path == "/v1/audio/transcriptions"
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert sent.form is not None
    assert sent.form["file"] == UploadedFile("voice.ogg", "audio/ogg", audio)
    assert {k: v for k, v in sent.form.items() if k != "file"} == {
        "model": "whisper-1",
        "response_format": "json",
        "language": "en",
        "prompt": "Bob",
    }
    assert transcript.text == "remind me to call Bob"
    # whisper-1 reports whole seconds (3); that is what is billed
    assert transcript.seconds == 3
    assert records[0].cost == Decimal("0.006") * 3 / 60
    assert records[0].purpose == "transcription"


async def test_transcription_without_a_reported_length_is_priced_from_the_ogg_granule(
    make_client: MakeClient,
) -> None:
    records = Records()
    transcript = await make_client().transcribe(
        TranscriptionRequest(ogg_opus(2.5), "voice.ogg", "gpt-4o-mini-transcribe"),
        record=records,
    )
    assert transcript.seconds == 2.5
    assert records[0].cost == Decimal("0.003") * Decimal("2.5") / 60


async def test_a_rate_limited_audio_call_is_retried_and_each_attempt_recorded(
    fake_openai: FakeOpenAI, make_client: MakeClient, sleeps: Sleeps
) -> None:
    fake_openai.script_audio(rate_limited(retry_after="2"))
    records = Records()
    speech = await make_client().speak(SpeechRequest("hi", "tts-1"), record=records)
    assert speech.audio.startswith(b"OggS")
    assert sleeps == [2.0]
    assert [(r.attempt, r.ok) for r in records] == [(1, False), (2, True)]
    assert records[0].cost is None


async def test_a_file_that_is_not_audio_is_refused_with_the_servers_reason_and_not_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    with pytest.raises(RequestRejectedError, match="Invalid file format") as caught:
        await make_client().transcribe(
            TranscriptionRequest(b"%PDF-1.7 not audio", "notes.ogg", "whisper-1")
        )
    assert caught.value.status == 400
    assert len(fake_openai.audio_requests) == 1


async def test_the_servers_413_for_a_too_large_upload_is_a_rejection(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script_audio(
        error(413, "Maximum content size limit (26214400) exceeded", type="server_error")
    )
    with pytest.raises(RequestRejectedError, match="Maximum content size") as caught:
        await make_client().transcribe(TranscriptionRequest(ogg_opus(1), "v.ogg", "whisper-1"))
    assert caught.value.status == 413


async def test_a_file_over_25_mb_is_refused_before_anything_is_sent(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    big = b"OggS" + bytes(MAX_TRANSCRIPTION_BYTES)
    with pytest.raises(RequestRejectedError, match="at most 25 MB") as caught:
        await make_client().transcribe(TranscriptionRequest(big, "v.ogg", "whisper-1"))
    assert caught.value.code == "too_large"
    assert fake_openai.audio_requests == []


async def test_text_over_4096_characters_is_refused_before_anything_is_sent(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    with pytest.raises(RequestRejectedError, match="at most 4,096") as caught:
        await make_client().speak(SpeechRequest("a" * 4097, "tts-1"))
    assert caught.value.code == "too_long"
    assert fake_openai.audio_requests == []


async def test_an_unknown_voice_is_the_servers_400(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    with pytest.raises(RequestRejectedError, match="Invalid voice"):
        await make_client().speak(SpeechRequest("hi", "tts-1", voice="robot"))


async def test_an_exhausted_quota_on_speech_is_not_retried(
    fake_openai: FakeOpenAI, make_client: MakeClient
) -> None:
    fake_openai.script_audio(insufficient_quota())
    with pytest.raises(QuotaExceededError):
        await make_client().speak(SpeechRequest("hi", "tts-1"))
    assert len(fake_openai.audio_requests) == 1


async def test_mp3_speech_is_returned_as_audio_mpeg(make_client: MakeClient) -> None:
    speech = await make_client().speak(SpeechRequest("hello", "tts-1", format="mp3"))
    assert speech.content_type == "audio/mpeg"
    assert speech.filename == "reply.mp3"
    assert speech.audio[:2] == b"\xff\xfb"


async def test_the_stand_in_says_it_cannot_speak_or_listen() -> None:
    stand_in = StandInModel()
    assert isinstance(stand_in, AudioModel)
    with pytest.raises(RequestRejectedError, match="stand-in model cannot speak") as spoken:
        await stand_in.speak(SpeechRequest("hi", "tts-1"))
    with pytest.raises(RequestRejectedError, match="cannot transcribe") as heard:
        await stand_in.transcribe(TranscriptionRequest(ogg_opus(1), "v.ogg", "whisper-1"))
    assert spoken.value.code == heard.value.code == "stand_in"


def test_the_model_table_prices_audio_models_as_the_api_does() -> None:
    table = ModelTable()
    assert table.lookup("tts-1").audio_cost(characters=1_000_000) == Decimal("15")
    assert table.lookup("tts-1-hd").audio_cost(characters=1_000_000) == Decimal("30")
    assert table.lookup("gpt-4o-mini-tts").audio_cost(seconds=60) == Decimal("0.015")
    assert table.lookup("whisper-1").audio_cost(seconds=60) == Decimal("0.006")
    assert table.lookup("gpt-4o-mini-transcribe").audio_cost(seconds=120) == Decimal("0.006")
    assert table.lookup("gpt-4o-mini-tts").kind == "speech"
    assert table.lookup("gpt-4o-mini").kind == "chat"  # not caught by the longer names
    assert table.lookup("whisper-1").audio_cost(characters=10) is None  # no such price


def test_audio_prices_can_be_overridden_in_the_config() -> None:
    table = ModelTable.from_config(
        {
            "whisper-1": {"price_per_minute": "0.01"},
            "my-tts": {"kind": "speech", "price_per_1k_characters": 1},
        }
    )
    assert table.lookup("whisper-1").audio_cost(seconds=30) == Decimal("0.005")
    assert table.lookup("my-tts").audio_cost(characters=500) == Decimal("0.5")


def test_ogg_opus_length_is_the_last_granule_less_the_pre_skip() -> None:
    assert ogg_seconds(ogg_opus(3.2)) == pytest.approx(3.2)
    assert audio_seconds(ogg_opus(0.02)) == pytest.approx(0.02)
    assert audio_seconds(b"OggS broken") is None
    assert audio_seconds(mp3_silence(1)) is None  # not measured: the server's word counts


def test_wav_length_is_the_data_chunk_over_the_byte_rate() -> None:
    rate, seconds = 16_000, 1.5
    data = bytes(int(rate * seconds) * 2)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    wav = (
        b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", len(data)) + data
    )  # fmt: skip
    assert wav_seconds(wav) == pytest.approx(1.5)
    assert audio_seconds(wav) == pytest.approx(1.5)


def test_the_speech_body_leaves_out_what_was_not_asked_for() -> None:
    from botkit.llm.audio import speech_body

    assert json.loads(speech_body(SpeechRequest("hi", "tts-1"))) == {
        "model": "tts-1",
        "input": "hi",
        "voice": "alloy",
        "response_format": "opus",
    }
