"""botkit's Slack adapter: DMs, mentions and threads over Socket Mode or the Events API.

Enable it with an ``[adapters.slack]`` table (see :class:`SlackSettings`); botkit finds
it through the ``botkit.adapters`` entry point ``slack = "botkit_slack:SlackAdapter"``.
"""

from botkit_slack.adapter import EDIT_INTERVAL, MAX_TEXT, SlackAdapter
from botkit_slack.settings import SlackSettings

__all__ = ["EDIT_INTERVAL", "MAX_TEXT", "SlackAdapter", "SlackSettings"]
