"""botkit: async chat bots for Slack, Telegram and email, backed by an OpenAI-compatible model.

The names below are the public API; adapters and plugins import only these.
"""

from botkit.adapter import Adapter, Capabilities, CommandInfo, MarkupDialect, NativeStream
from botkit.bot import Bot
from botkit.claims import claim_lost_cause, claims_trace, ensure_claims_live
from botkit.config import Config, load_config
from botkit.context import Context, JobContext, PluginRuntime
from botkit.conversation import ConversationLLM
from botkit.exceptions import (
    AuthenticationError,
    BotkitError,
    ClaimLostError,
    ConfigError,
    ConfigErrors,
    ContextLengthError,
    InvalidResponseError,
    PluginError,
    QuotaExceededError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
    StoreError,
    StoreUnavailableError,
)
from botkit.gctuning import restore_gc, tune_gc
from botkit.inbox import Accepted, Inbox, KeyValueState
from botkit.job_runner import JobRun
from botkit.jobs import JobInfo
from botkit.leases import Singleton
from botkit.llm import (
    ChatModel,
    ChatRequest,
    Completion,
    JsonSchema,
    TextDelta,
    ToolCall,
    Usage,
)
from botkit.messages import (
    Attachment,
    ConversationRef,
    Markup,
    Message,
    Reply,
    Sender,
    SentMessage,
)
from botkit.metrics import ChannelReport
from botkit.plugin import HandlerResult, ModelCall, Next, Plugin, SkipHandler
from botkit.schedule import CronSchedule
from botkit.secrets import Secret
from botkit.store import StoreView
from botkit.text import split_text
from botkit.tools import Tool, ToolArgumentsError, tool
from botkit.webhooks import (
    WebhookGate,
    parse_json_object,
    read_webhook_body,
    refuse_request,
)

__all__ = [
    "Accepted",
    "Adapter",
    "Attachment",
    "AuthenticationError",
    "Bot",
    "BotkitError",
    "Capabilities",
    "ChannelReport",
    "ChatModel",
    "ChatRequest",
    "ClaimLostError",
    "CommandInfo",
    "Completion",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "Context",
    "ContextLengthError",
    "ConversationLLM",
    "ConversationRef",
    "CronSchedule",
    "HandlerResult",
    "Inbox",
    "InvalidResponseError",
    "JobContext",
    "JobInfo",
    "JobRun",
    "JsonSchema",
    "KeyValueState",
    "Markup",
    "MarkupDialect",
    "Message",
    "ModelCall",
    "NativeStream",
    "Next",
    "Plugin",
    "PluginError",
    "PluginRuntime",
    "QuotaExceededError",
    "RateLimitError",
    "Reply",
    "RequestRejectedError",
    "Secret",
    "Sender",
    "SentMessage",
    "ServiceError",
    "ServiceUnavailableError",
    "Singleton",
    "SkipHandler",
    "StoreError",
    "StoreUnavailableError",
    "StoreView",
    "TextDelta",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "Usage",
    "WebhookGate",
    "claim_lost_cause",
    "claims_trace",
    "ensure_claims_live",
    "load_config",
    "parse_json_object",
    "read_webhook_body",
    "refuse_request",
    "restore_gc",
    "split_text",
    "tool",
    "tune_gc",
]
