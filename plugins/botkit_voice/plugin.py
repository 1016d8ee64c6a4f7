"""The voice plugin: transcribe voice messages in, speak replies out, ``/voice``.

In: a message's audio attachments (a Telegram voice note, a Slack audio file, an
email's audio attachment) are fetched from the channel (``ctx.fetch_attachment``) and
transcribed; the transcript replaces the message's text (``ctx.rewrite``, so history
shows it and every handler after this one reads it as if typed) and is kept in its
metadata under ``voice``. A file over the API's 25 MB gets an answer saying so, and
nothing is fetched or sent.

Out: the answer is spoken when the sender turned spoken replies on (``/voice on``) or
spoke the message. The text is still sent: a whole answer and its audio go out as one
reply (the adapter sends the text, then the audio); an answer that was streamed is
followed by a reply that is only the audio. Replies to commands are never spoken. When
speech fails (the offline stand-in, a budget, an answer too long to speak), the text
goes out with a short note saying why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botkit import (
    Attachment,
    ConfigError,
    Context,
    Message,
    Next,
    Plugin,
    QuotaExceededError,
    Reply,
    RequestRejectedError,
)
from botkit.llm import SpeechFormat, SpeechRequest, TranscriptionRequest
from botkit.llm.audio import MAX_SPEECH_CHARACTERS, MAX_TRANSCRIPTION_BYTES, SPEECH_FORMATS

__all__ = ["VoiceSettings", "plugin"]

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer")
_MB = 1024 * 1024
# file extensions the transcription endpoint reads the format from, by MIME type
_EXTENSIONS = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/m4a": "m4a",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/webm": "webm",
    "audio/flac": "flac",
}
_KNOWN_EXTENSIONS = frozenset(
    {"flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm"}
)


@dataclass(frozen=True, slots=True)
class VoiceSettings:
    """``[plugins.voice]``.

    Attributes:
        transcription_model: the model that listens (``whisper-1``,
            ``gpt-4o-mini-transcribe``).
        language: the language people speak (ISO-639-1, ``"de"``); unset: detected.
        speech_model: the model that speaks (``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts``).
        voice: the bot's voice; each person may pick their own with ``/voice NAME``.
        speed: 0.25 to 4.0; unset: 1.0.
        instructions: how to speak (``gpt-4o-mini-tts`` only).
        format: the audio format replies are spoken in (``"opus"`` is Ogg/Opus, what a
            Telegram voice note must be).
        channel_formats: a format per channel name, overriding ``format``.
        answer_voice_with_voice: speak the answer to a voice message even when the
            sender has not turned spoken replies on.
        max_file_mb: the largest voice message listened to, in MB (at most the API's 25).
    """

    transcription_model: str = "whisper-1"
    language: str | None = None
    speech_model: str = "tts-1"
    voice: str = "alloy"
    speed: float | None = None
    instructions: str | None = None
    format: str = "opus"
    channel_formats: dict[str, str] = field(
        default_factory=lambda: {"slack": "mp3", "email": "mp3"}
    )
    answer_voice_with_voice: bool = True
    max_file_mb: float = MAX_TRANSCRIPTION_BYTES / _MB

    def problems(self, key: str) -> Iterator[ConfigError]:
        """Settings that cannot work, found when the config is read."""
        for name, fmt in {"format": self.format, **self.channel_formats}.items():
            if fmt not in SPEECH_FORMATS:
                where = f"{key}.format" if name == "format" else f"{key}.channel_formats.{name}"
                yield ConfigError(where, f"must be one of {', '.join(SPEECH_FORMATS)}")
        if self.voice not in VOICES:
            yield ConfigError(f"{key}.voice", f"must be one of {', '.join(VOICES)}")
        if not 0 < self.max_file_mb <= MAX_TRANSCRIPTION_BYTES / _MB:
            yield ConfigError(f"{key}.max_file_mb", "must be above 0 and at most 25")
        if self.speed is not None and not 0.25 <= self.speed <= 4.0:
            yield ConfigError(f"{key}.speed", "must be between 0.25 and 4.0")


plugin = Plugin(
    "voice", description="Voice messages in, spoken replies out", settings_class=VoiceSettings
)


def is_audio(attachment: Attachment) -> bool:
    """Whether an attachment is a recording to listen to."""
    if attachment.content_type.startswith("audio/"):
        return True
    return attachment.name.rsplit(".", 1)[-1].lower() in ("ogg", "oga", "opus", "mp3", "m4a")


@plugin.middleware
async def listen_and_speak(message: Message, ctx: Context, call_next: Next) -> Any:
    """Transcribe a voice message before the handlers run; speak their answer after."""
    settings = ctx.settings_as(VoiceSettings)
    recordings = [a for a in message.attachments if is_audio(a)]
    spoken_to = bool(recordings) or "voice" in ctx.annotations
    if recordings and "voice" not in ctx.annotations:  # not yet heard (not a retry)
        refusal = await _listen(ctx, settings, recordings)
        if refusal is not None:
            return Reply(refusal, markup="plain")
    result = await call_next()
    if ctx.message.text.lstrip().startswith("/"):
        return result  # command replies are not read aloud
    prefs = await _preferences(ctx)
    wanted = prefs.get("on") is True or (spoken_to and settings.answer_voice_with_voice)
    if not wanted:
        return result
    return await _spoken(ctx, settings, prefs, result)


async def _listen(
    ctx: Context, settings: VoiceSettings, recordings: list[Attachment]
) -> str | None:
    """Transcribe the recordings into the message's text; what to answer instead when
    that cannot be done."""
    limit = int(settings.max_file_mb * _MB)
    heard: list[str] = []
    seconds = 0.0
    for recording in recordings:
        if recording.size is not None and recording.size > limit:
            return _too_large(recording.size, limit)
        try:
            data = await ctx.fetch_attachment(recording, max_bytes=limit)
        except NotImplementedError:
            return "I cannot fetch voice messages on this channel; please type instead."
        except RequestRejectedError as exc:
            if exc.code == "too_large":
                return _too_large(None, limit)
            raise
        if len(data) > limit:
            return _too_large(len(data), limit)
        request = TranscriptionRequest(
            data,
            _filename(recording),
            settings.transcription_model,
            content_type=recording.content_type,
            language=settings.language,
        )
        try:
            transcript = await ctx.llm.transcribe(request)
        except QuotaExceededError:
            raise
        except RequestRejectedError as exc:
            if exc.code == "stand_in":
                return f"I cannot listen to voice messages here: {exc.reason}."
            return f"I could not listen to that recording: {exc.reason}"
        heard.append(transcript.text)
        seconds += transcript.seconds or 0.0
    said = " ".join(t for t in heard if t)
    if not said:
        return "I could not hear any words in that voice message."
    caption = ctx.message.text.strip()
    text = f"{caption}\n\n{said}" if caption else said
    await ctx.rewrite(
        text,
        voice={"transcript": said, "seconds": seconds, "model": settings.transcription_model},
    )
    return None


async def _spoken(
    ctx: Context, settings: VoiceSettings, prefs: dict[str, Any], result: Any
) -> Any:
    """The answer with its audio, or the audio after a streamed answer."""
    streamed = result is None
    if streamed:
        text = "\n\n".join(t for t in ctx.turn.said if t.strip())
        if not text:
            return None
    else:
        text = result if isinstance(result, str) else result.text
        if not text.strip():
            return result
    reply = Reply(text) if isinstance(result, str) or streamed else result
    fmt = settings.channel_formats.get(ctx.message.channel, settings.format)
    words = _speakable(text)
    note: str | None = None
    if len(words) > MAX_SPEECH_CHARACTERS:
        note = "too long to read aloud"
    else:
        request = SpeechRequest(
            words,
            settings.speech_model,
            voice=str(prefs.get("voice") or settings.voice),
            format=_format(fmt),
            speed=settings.speed,
            instructions=settings.instructions,
        )
        try:
            speech = await ctx.llm.speak(request)
        except (RequestRejectedError, QuotaExceededError) as exc:
            note = exc.reason
        else:
            audio = Attachment(
                speech.filename, speech.content_type, len(speech.audio), data=speech.audio
            )
            if streamed:
                return Reply("", markup="plain", attachments=(audio,))
            return Reply(reply.text, reply.markup, reply.reply_to, reply.metadata, (audio,))
    if streamed:
        return Reply(f"(Not spoken: {note})", markup="plain")
    return Reply(
        f"{reply.text}\n\n(Not spoken: {note})", reply.markup, reply.reply_to, reply.metadata
    )


def _format(name: str) -> SpeechFormat:
    formats: dict[str, SpeechFormat] = {
        "opus": "opus",
        "mp3": "mp3",
        "aac": "aac",
        "flac": "flac",
        "wav": "wav",
        "pcm": "pcm",
    }
    return formats.get(name, "opus")


def _too_large(size: int | None, limit: int) -> str:
    what = f"That recording is {size / _MB:.1f} MB" if size else "That recording is too large"
    return f"{what}; I can listen to at most {limit / _MB:g} MB. Please send a shorter one."


def _filename(recording: Attachment) -> str:
    """A name whose extension tells the endpoint the format."""
    name = recording.name or "audio"
    if name.rsplit(".", 1)[-1].lower() in _KNOWN_EXTENSIONS:
        return name
    extension = _EXTENSIONS.get(recording.content_type.split(";")[0].strip().lower(), "ogg")
    return f"{name}.{extension}"


_FENCE = re.compile(r"```.*?```", re.DOTALL)
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")
_MARKS = re.compile(r"(\*\*|__|~~|`|^#{1,6}\s+|^\s*[-*]\s+|^>\s?)", re.MULTILINE)


def _speakable(text: str) -> str:
    """Markdown as words to say: no code blocks, link targets or markup characters."""
    text = _FENCE.sub(" (code omitted) ", text)
    text = _LINK.sub(r"\1", text)
    return _MARKS.sub("", text).strip()


def _key(message: Message) -> str:
    return f"user:{message.channel}:{message.sender.id}"


async def _preferences(ctx: Context) -> dict[str, Any]:
    found = await ctx.state.get(_key(ctx.message))
    return dict(found) if isinstance(found, dict) else {}


@plugin.on_command("voice", description="Spoken replies: /voice on, /voice off, /voice NAME")
async def voice_command(message: Message, ctx: Context) -> Reply:
    """Turn spoken replies on or off for the sender, or pick their voice."""
    settings = ctx.settings_as(VoiceSettings)
    prefs = await _preferences(ctx)
    word = ctx.args.strip().lower()
    if word in ("on", "off"):
        prefs["on"] = word == "on"
    elif word in VOICES:
        prefs.update(on=True, voice=word)
    elif word:
        return Reply(f"Unknown voice {word!r}. Voices: {', '.join(VOICES)}.", markup="plain")
    if word:
        await ctx.state.set(_key(message), prefs)
    voice = prefs.get("voice") or settings.voice
    state = "on" if prefs.get("on") else "off"
    text = f"Spoken replies are {state} (voice: {voice})."
    if not word:
        text += f" Send /voice on, /voice off or /voice NAME ({', '.join(VOICES)})."
    if prefs.get("on") and ctx.uses_stand_in:
        text += " Note: the offline stand-in model cannot speak; replies stay text."
    return Reply(text, markup="plain")
