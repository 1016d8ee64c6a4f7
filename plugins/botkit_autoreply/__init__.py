"""Automatic replies by rule: channel, sender, keywords or a regex, and time windows.

A rule answers from a template or lets the model draft the answer from the rule's
instruction; it can also have the model classify the message first (JSON mode) and
route it: answer, hand it to a person, or ignore it. Mail the email adapter marked as
not to be answered (RFC 3834: auto-submitted, lists, bounces...) is never answered.
"""

from botkit_autoreply.plugin import plugin
from botkit_autoreply.rules import AutoreplySettings, DateRange, Rule, matches

__all__ = ["AutoreplySettings", "DateRange", "Rule", "matches", "plugin"]
