"""The default chat skill: the model conversation itself, plus /start, /help and /reset."""

from botkit_chat.plugin import ChatPluginSettings, plugin

__all__ = ["ChatPluginSettings", "plugin"]
