"""botkit: async chat bots for Slack, Telegram and email, backed by an OpenAI-compatible model.

The names below are the public API; adapters and plugins import only these.
"""

from botkit.adapter import Adapter, Capabilities, CommandInfo, MarkupDialect
from botkit.exceptions import (
    AuthenticationError,
    BotkitError,
    ConfigError,
    ContextLengthError,
    InvalidResponseError,
    PluginError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
    StoreError,
)
from botkit.inbox import Accepted, Inbox, KeyValueState
from botkit.messages import (
    Attachment,
    ConversationRef,
    Markup,
    Message,
    Reply,
    Sender,
    SentMessage,
)
from botkit.secrets import Secret
from botkit.text import split_text

__all__ = [
    "Accepted",
    "Adapter",
    "Attachment",
    "AuthenticationError",
    "BotkitError",
    "Capabilities",
    "CommandInfo",
    "ConfigError",
    "ContextLengthError",
    "ConversationRef",
    "Inbox",
    "InvalidResponseError",
    "KeyValueState",
    "Markup",
    "MarkupDialect",
    "Message",
    "PluginError",
    "QuotaExceededError",
    "RateLimitError",
    "Reply",
    "RequestRejectedError",
    "Secret",
    "Sender",
    "SentMessage",
    "ServiceError",
    "ServiceUnavailableError",
    "StoreError",
    "split_text",
]
