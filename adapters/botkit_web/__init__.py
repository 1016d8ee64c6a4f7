"""The web chat channel: a page on botkit's web server where people talk to the bot."""

from botkit_web._settings import WebChatSettings
from botkit_web.adapter import WebChatAdapter

__all__ = ["WebChatAdapter", "WebChatSettings"]
