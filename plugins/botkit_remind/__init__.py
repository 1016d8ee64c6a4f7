"""Reminders and follow-ups: ``/remind``, the ``remind`` and ``follow_up`` tools,
``/reminders`` and ``/timezone``, on the core scheduler's jobs."""

from botkit_remind.plugin import FollowUpArgs, RemindArgs, RemindSettings, plugin
from botkit_remind.when import WhenError, resolve, split_when

__all__ = [
    "FollowUpArgs",
    "RemindArgs",
    "RemindSettings",
    "WhenError",
    "plugin",
    "resolve",
    "split_when",
]
