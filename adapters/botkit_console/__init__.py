"""The console channel: talk to a bot in a terminal, or script it through a pipe."""

from botkit_console.adapter import ConsoleAdapter, ConsoleSettings

__all__ = ["ConsoleAdapter", "ConsoleSettings"]
