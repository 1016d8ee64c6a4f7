"""Sentiment of each inbound message, stored with it, shared and reported.

A middleware classifies every inbound text (JSON schema: ``label`` and ``score``) and
stores the result with the message (``sentiment``, ``sentiment_score``), where later
middlewares and handlers read it from ``ctx.annotations``. A model failure or an invalid
reply never holds a message up: it is logged and the message is marked ``unknown``.
Strongly negative messages can be escalated to a person; ``/sentiment`` reports.
"""

from botkit_sentiment.plugin import (
    LABELS,
    SentimentReport,
    SentimentSettings,
    plugin,
    report_of,
)

__all__ = ["LABELS", "SentimentReport", "SentimentSettings", "plugin", "report_of"]
