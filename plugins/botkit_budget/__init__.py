"""Spending limits: per user, channel or bot, in tokens or dollars, per day or month.

Checked before every model call (``before_model_call``): a call over a limit is refused
before anything is sent, and the user is told which limit and when it resets.
"""

from botkit_budget.plugin import BudgetSettings, Limit, plugin

__all__ = ["BudgetSettings", "Limit", "plugin"]
