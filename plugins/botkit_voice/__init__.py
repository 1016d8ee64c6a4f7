"""Voice: voice messages in are transcribed and answered as if typed; replies are spoken
when the user asks (``/voice on``) or spoke first.

Transcription and speech are model calls like any other: recorded with their cost (per
minute of audio, per character spoken) and refused by budgets. List ``voice`` before the
plugins that read a message's text (spam, sentiment): its middleware puts the
transcript in the text first.
"""

from botkit_voice.plugin import VoiceSettings, plugin

__all__ = ["VoiceSettings", "plugin"]
