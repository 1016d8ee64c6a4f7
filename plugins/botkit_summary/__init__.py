"""Summaries: ``/summary`` of a conversation, of a channel's last hours, and digests.

Inputs longer than the model's window are summarised map-reduce: cut into chunks that
fit (counted with the model's tokenizer), each chunk summarised, then the summaries
combined, as many levels as needed. Every call is recorded with purpose ``"summary"``.
"""

from botkit_summary.mapreduce import chunk_lines, summarize
from botkit_summary.plugin import Digest, SummarySettings, parse_hours, plugin

__all__ = [
    "Digest",
    "SummarySettings",
    "chunk_lines",
    "parse_hours",
    "plugin",
    "summarize",
]
