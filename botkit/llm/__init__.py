"""The chat-completions side of botkit: client, stand-in, model table, tokens, fitting.

``OpenAIChatClient`` talks to any OpenAI-compatible server (chat, and speech and
transcription: ``AudioModel``); ``StandInModel`` answers
offline when none is configured. Both are ``ChatModel``\\ s. ``ModelTable`` knows windows
and prices, ``TokenCounter`` counts tokens, and ``fit_messages`` fits a conversation
into a model's window.
"""

from botkit.llm.audio import (
    AudioModel,
    Speech,
    SpeechFormat,
    SpeechRequest,
    Transcript,
    TranscriptionRequest,
)
from botkit.llm.client import OpenAIChatClient
from botkit.llm.fitting import FitResult, fit_messages
from botkit.llm.models import ModelInfo, ModelKind, ModelTable, TokenParameter
from botkit.llm.standin import StandInModel
from botkit.llm.structured import StructuredMode
from botkit.llm.tokens import TokenCounter
from botkit.llm.types import (
    CallRecord,
    CallRecorder,
    ChatMessage,
    ChatModel,
    ChatRequest,
    Completion,
    JsonSchema,
    ResponseFormat,
    TextDelta,
    ToolCall,
    Usage,
)

__all__ = [
    "AudioModel",
    "CallRecord",
    "CallRecorder",
    "ChatMessage",
    "ChatModel",
    "ChatRequest",
    "Completion",
    "FitResult",
    "JsonSchema",
    "ModelInfo",
    "ModelKind",
    "ModelTable",
    "OpenAIChatClient",
    "ResponseFormat",
    "Speech",
    "SpeechFormat",
    "SpeechRequest",
    "StandInModel",
    "StructuredMode",
    "TextDelta",
    "TokenCounter",
    "TokenParameter",
    "ToolCall",
    "Transcript",
    "TranscriptionRequest",
    "Usage",
    "fit_messages",
]
