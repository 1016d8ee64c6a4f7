"""The chat plugin: answers every message no other handler took, from the model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from botkit import ConfigError, Context, Message, Plugin, Reply

__all__ = ["ChatPluginSettings", "plugin"]

_TOOL_CHOICE = re.compile(r"[a-z0-9_][a-z0-9_-]{0,31}")  # a mode, or a command's name


@dataclass(frozen=True, slots=True)
class ChatPluginSettings:
    """``[plugins.chat]``.

    Attributes:
        system_prompt: overrides ``bot.system_prompt`` for this skill.
        channel_prompts: a system prompt per channel (``{telegram = "..."}``).
        greeting: the answer to ``/start``.
        non_text_reply: the answer to a message with no text (a sticker, a voice note).
        tool_rounds: the most rounds of tool calls (plugin commands offered to the model)
            before the model must answer in words.
        tool_choice: whether the model may call tools when it starts an answer:
            ``"auto"``, ``"none"``, ``"required"`` or a tool's name (it must call that
            one first); unset leaves it to the server. Never forced again later in the
            answer.
    """

    system_prompt: str | None = None
    channel_prompts: dict[str, str] = field(default_factory=dict)
    greeting: str = "Hello! Ask me anything. Send /help to see the commands, /reset to start over."
    non_text_reply: str = "I can only read text here."
    tool_rounds: int = 4
    tool_choice: str | None = None

    def __post_init__(self) -> None:
        choice = self.tool_choice
        if choice is not None and not _TOOL_CHOICE.fullmatch(choice):
            raise ConfigError(
                "plugins.chat.tool_choice",
                f'must be "auto", "none", "required" or a tool\'s name, not {choice!r}',
            )


plugin = Plugin("chat", description="Talk with the model", settings_class=ChatPluginSettings)


@plugin.on_command("start", description="Say hello")
async def start(message: Message, ctx: Context) -> str:
    """Greet the user."""
    return ctx.settings_as(ChatPluginSettings).greeting


@plugin.on_command("help", description="List the commands")
async def help_(message: Message, ctx: Context) -> Reply:
    """List every command the bot answers."""
    lines = [
        f"/{c.name} — {c.description}" if c.description else f"/{c.name}" for c in ctx.commands
    ]
    return Reply("Commands:\n" + "\n".join(lines), markup="plain")


@plugin.on_command("reset", description="Start a new conversation")
async def reset(message: Message, ctx: Context) -> str:
    """Forget the conversation so far."""
    await ctx.reset()
    return "Started a new conversation."


@plugin.on_message()
async def chat(message: Message, ctx: Context) -> Reply | str | None:
    """Answer from the model, with the conversation's history."""
    settings = ctx.settings_as(ChatPluginSettings)
    if not message.text.strip():
        return settings.non_text_reply
    prompt = settings.channel_prompts.get(message.channel) or settings.system_prompt
    return await ctx.llm.respond(
        system_prompt=prompt,
        max_tool_rounds=settings.tool_rounds,
        tool_choice=settings.tool_choice,
    )
