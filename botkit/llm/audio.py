"""Speech and transcription: the requests, the results, the checks made before sending.

``POST /v1/audio/speech`` takes JSON (``model``, ``input``, ``voice``,
``response_format``, ``speed``) and answers with the audio's bytes;
``POST /v1/audio/transcriptions`` takes a multipart form (``file``, ``model``,
``language``, ``prompt``, ``response_format``) and answers ``{"text": ...}``. Both are
priced by the model table: speech per character (``tts-1``) or per minute of audio
(``gpt-4o-mini-tts``), transcription per minute of audio.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, runtime_checkable

from botkit.exceptions import InvalidResponseError, RequestRejectedError
from botkit.llm._errors import SERVICE
from botkit.llm.audio_length import audio_seconds
from botkit.llm.models import ModelInfo
from botkit.llm.types import CallRecorder

__all__ = [
    "MAX_SPEECH_CHARACTERS",
    "MAX_TRANSCRIPTION_BYTES",
    "SPEECH_FORMATS",
    "AudioModel",
    "Speech",
    "SpeechFormat",
    "SpeechRequest",
    "Transcript",
    "TranscriptionRequest",
    "check_speech",
    "check_transcription",
    "parse_transcript",
    "speech_body",
    "speech_cost",
    "transcription_fields",
]

SpeechFormat = Literal["opus", "mp3", "aac", "flac", "wav", "pcm"]

SPEECH_FORMATS: dict[str, tuple[str, str]] = {
    # format: (content type, file extension); "opus" is Ogg/Opus, a Telegram voice note
    "opus": ("audio/ogg", "ogg"),
    "mp3": ("audio/mpeg", "mp3"),
    "aac": ("audio/aac", "aac"),
    "flac": ("audio/flac", "flac"),
    "wav": ("audio/wav", "wav"),
    "pcm": ("audio/pcm", "pcm"),
}

MAX_SPEECH_CHARACTERS = 4096
"""The most characters the speech endpoint speaks in one request."""

MAX_TRANSCRIPTION_BYTES = 25 * 1024 * 1024
"""The largest file the transcription endpoint takes (OpenAI's 25 MB)."""


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """Text to speak.

    Attributes:
        text: what to say; at most :data:`MAX_SPEECH_CHARACTERS` characters.
        model: ``"tts-1"``, ``"tts-1-hd"``, ``"gpt-4o-mini-tts"``...
        voice: ``"alloy"``, ``"nova"``...
        format: the audio's format; ``"opus"`` is Ogg/Opus.
        speed: 0.25 to 4.0; ``None`` leaves the server's 1.0.
        instructions: how to speak (``gpt-4o-mini-tts`` only).
        purpose: what the call is for, for cost attribution; never sent.
    """

    text: str
    model: str
    voice: str = "alloy"
    format: SpeechFormat = "opus"
    speed: float | None = None
    instructions: str | None = None
    purpose: str = "speech"


@dataclass(frozen=True, slots=True)
class Speech:
    """Spoken audio.

    Attributes:
        audio: the file's bytes.
        format: its format, as asked for.
        content_type: its MIME type (``audio/ogg`` for ``opus``).
        model: the model that spoke.
        seconds: its length, when botkit could read it from the audio.
    """

    audio: bytes
    format: str
    content_type: str
    model: str
    seconds: float | None = None

    @property
    def filename(self) -> str:
        """A file name for it: ``reply.ogg``, ``reply.mp3``..."""
        return f"reply.{SPEECH_FORMATS.get(self.format, ('', 'bin'))[1]}"


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """Audio to write down.

    Attributes:
        audio: the file's bytes; at most :data:`MAX_TRANSCRIPTION_BYTES`.
        filename: its name; the server reads the format from its extension.
        model: ``"whisper-1"``, ``"gpt-4o-mini-transcribe"``...
        content_type: its MIME type.
        language: the spoken language (ISO-639-1, ``"de"``), if known.
        prompt: text that guides the transcription (names, spelling).
        purpose: what the call is for, for cost attribution; never sent.
    """

    audio: bytes
    filename: str
    model: str
    content_type: str = "application/octet-stream"
    language: str | None = None
    prompt: str | None = None
    purpose: str = "transcription"


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said.

    Attributes:
        text: the transcript.
        model: the model that listened.
        seconds: the audio's length: as the server reported it (what it bills), else
            read from the audio (Ogg, WAV), else ``None``.
    """

    text: str
    model: str
    seconds: float | None = None


@runtime_checkable
class AudioModel(Protocol):
    """A model client that can speak and listen (the real client; not the stand-in)."""

    async def speak(self, request: SpeechRequest, *, record: CallRecorder | None = None) -> Speech:
        """Speak ``request.text``.

        Raises:
            RequestRejectedError: the text is empty or too long, or the server refused.
            ServiceError: as for chat calls, after any retries.
        """
        ...

    async def transcribe(
        self, request: TranscriptionRequest, *, record: CallRecorder | None = None
    ) -> Transcript:
        """Write down what ``request.audio`` says.

        Raises:
            RequestRejectedError: the file is empty or too large, or the server refused.
            ServiceError: as for chat calls, after any retries.
        """
        ...


def check_speech(request: SpeechRequest) -> None:
    """Refuse, before sending, what the speech endpoint would refuse.

    Raises:
        RequestRejectedError: no text (``code`` ``"empty"``), more than
            :data:`MAX_SPEECH_CHARACTERS` (``"too_long"``), an unknown format or a speed
            outside 0.25 to 4.
    """
    if not request.text.strip():
        raise RequestRejectedError(SERVICE, "there is no text to speak", code="empty")
    if len(request.text) > MAX_SPEECH_CHARACTERS:
        raise RequestRejectedError(
            SERVICE,
            f"the text is {len(request.text):,} characters; the speech endpoint speaks at "
            f"most {MAX_SPEECH_CHARACTERS:,} at once",
            code="too_long",
        )
    if request.format not in SPEECH_FORMATS:
        raise RequestRejectedError(
            SERVICE, f"unknown speech format {request.format!r}; use one of {SPEECH_FORMATS}"
        )
    if request.speed is not None and not 0.25 <= request.speed <= 4.0:
        raise RequestRejectedError(SERVICE, "the speed must be between 0.25 and 4.0")


def check_transcription(request: TranscriptionRequest) -> None:
    """Refuse, before sending, a file the transcription endpoint would refuse.

    Raises:
        RequestRejectedError: an empty file (``code`` ``"empty"``) or one over
            :data:`MAX_TRANSCRIPTION_BYTES` (``"too_large"``).
    """
    if not request.audio:
        raise RequestRejectedError(SERVICE, "the audio file is empty", code="empty")
    if len(request.audio) > MAX_TRANSCRIPTION_BYTES:
        raise RequestRejectedError(
            SERVICE,
            f"the audio file is {len(request.audio) / 1_048_576:.1f} MB; the transcription "
            f"endpoint takes at most {MAX_TRANSCRIPTION_BYTES // 1_048_576} MB",
            code="too_large",
        )


def speech_body(request: SpeechRequest) -> bytes:
    """The speech request's JSON body, encoded once so every retry sends the same bytes."""
    body: dict[str, Any] = {
        "model": request.model,
        "input": request.text,
        "voice": request.voice,
        "response_format": request.format,
    }
    if request.speed is not None:
        body["speed"] = request.speed
    if request.instructions:
        body["instructions"] = request.instructions
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def transcription_fields(request: TranscriptionRequest) -> list[tuple[str, str]]:
    """The form's text fields, in order (the file goes first, separately)."""
    fields = [("model", request.model), ("response_format", "json")]
    if request.language:
        fields.append(("language", request.language))
    if request.prompt:
        fields.append(("prompt", request.prompt))
    return fields


def parse_transcript(raw: bytes, request: TranscriptionRequest) -> Transcript:
    """A transcription reply (``response_format`` json), decoded.

    The length billed is the server's when it says (``usage`` of type ``"duration"``, or
    a ``duration`` field), else read from the audio.

    Raises:
        InvalidResponseError: the body is not JSON with a ``text``.
    """
    try:
        data = json.loads(raw)
        text = data["text"]
        if not isinstance(text, str):
            raise TypeError("text is not a string")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidResponseError(
            SERVICE, f"the transcription reply is not JSON with a text: {raw[:80]!r}"
        ) from exc
    seconds = _reported_seconds(data)
    if seconds is None:
        seconds = audio_seconds(request.audio)
    return Transcript(text.strip(), request.model, seconds)


def _reported_seconds(data: Any) -> float | None:
    usage = data.get("usage") if isinstance(data, dict) else None
    if isinstance(usage, dict) and usage.get("type") == "duration":
        value = usage.get("seconds")
    else:
        value = data.get("duration") if isinstance(data, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(float(value), 0.0)
    return None


def speech_cost(info: ModelInfo, request: SpeechRequest, seconds: float | None) -> Decimal | None:
    """What speaking ``request`` cost (``None`` when the model has no audio price)."""
    return info.audio_cost(characters=len(request.text), seconds=seconds)
