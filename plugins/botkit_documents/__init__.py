"""Summaries of what people send: links, and text, Markdown or PDF files.

A page is fetched within limits of size, time and redirects, from public addresses only
unless configured; its text (or a file's) is summarised map-reduce when it is longer
than one window, and kept as a document of the conversation, so that later questions
are answered from its most relevant passages.
"""

from botkit_documents.addresses import AddressPolicy, AddressRefused, PublicResolver
from botkit_documents.fetch import Fetched, FetchError, FetchLimits, PageFetcher
from botkit_documents.plugin import plugin
from botkit_documents.settings import DocumentsSettings

__all__ = [
    "AddressPolicy",
    "AddressRefused",
    "DocumentsSettings",
    "FetchError",
    "FetchLimits",
    "Fetched",
    "PageFetcher",
    "PublicResolver",
    "plugin",
]
