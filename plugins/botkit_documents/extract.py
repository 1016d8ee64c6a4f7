"""The text of what someone sent: a web page, a text or Markdown file, a PDF.

Text is decoded by the charset its sender declared, else by a byte-order mark, else
as UTF-8 when it is valid UTF-8, else by detection (charset-normalizer). PDFs are read
with pypdf, page by page, up to a page limit; a PDF without a text layer (a scan) or
one locked with a password gets a clear refusal, not an empty summary.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from dataclasses import dataclass

import charset_normalizer
from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError

from botkit_documents.html_text import html_text

__all__ = [
    "PDF_TYPES",
    "TEXT_TYPES",
    "ExtractError",
    "Extracted",
    "decode_text",
    "extract",
    "kind_of",
]

log = logging.getLogger(__name__)

TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})
_EXTENSIONS = {".txt": "text", ".text": "text", ".md": "text", ".markdown": "text", ".pdf": "pdf"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_MIN_PDF_TEXT = 20  # characters a PDF must yield to count as having text


class ExtractError(Exception):
    """No text could be read; the message says why, for the person who sent it."""


@dataclass(frozen=True, slots=True)
class Extracted:
    """Readable text.

    Attributes:
        title: a title it names (a page's ``<title>``, a PDF's metadata), or ``""``.
        lines: its text, a block or paragraph a line.
    """

    title: str
    lines: tuple[str, ...]


def kind_of(content_type: str, name: str = "") -> str | None:
    """``"html"``, ``"text"`` or ``"pdf"`` for what can be read, else ``None``; a file
    sent as ``application/octet-stream`` is judged by its name's extension."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in HTML_TYPES:
        return "html"
    if media in TEXT_TYPES:
        return "text"
    if media in PDF_TYPES:
        return "pdf"
    if media in ("", "application/octet-stream", "binary/octet-stream"):
        dot = name.rfind(".")
        return _EXTENSIONS.get(name[dot:].lower()) if dot >= 0 else None
    return None


def extract(
    data: bytes, kind: str, *, charset: str | None = None, max_pages: int = 300
) -> Extracted:
    """The text of ``data`` read as ``kind`` (see :func:`kind_of`).

    Raises:
        ExtractError: nothing readable (an empty file, a scanned or locked PDF...).
    """
    if kind == "pdf":
        return _pdf(data, max_pages)
    if kind == "html":
        page = html_text(decode_text(data, charset or _meta_charset(data)))
        if not page.lines:
            raise ExtractError("the page has no readable text")
        return Extracted(page.title, page.lines)
    text = decode_text(data, charset)
    lines = tuple(line.rstrip() for line in text.splitlines() if line.strip())
    if not lines:
        raise ExtractError("the file is empty")
    return Extracted("", lines)


def decode_text(data: bytes, declared: str | None = None) -> str:
    """``data`` as text: by the ``declared`` charset when Python knows it, else by a
    byte-order mark, else UTF-8 if it is valid, else the charset detection finds
    (windows-1252 when it cannot tell)."""
    if declared:
        try:
            codecs.lookup(declared)
        except LookupError:
            log.debug("unknown charset %r declared; detecting", declared)
        else:
            return data.decode(declared, errors="replace")
    for mark, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(mark):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    found = list(charset_normalizer.from_bytes(data))  # best first
    if not found:
        return data.decode("cp1252", errors="replace")
    best = found[0]
    # short Western text reads as well in cp1250 as in cp1252: a tie goes to cp1252,
    # the web's default legacy charset
    tied = [m for m in found if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    return str(next((m for m in tied if m.encoding == "cp1252"), best))


def _meta_charset(data: bytes) -> str | None:
    found = _META_CHARSET.search(data[:4096])
    return found.group(1).decode("ascii") if found else None


def _pdf(data: bytes, max_pages: int) -> Extracted:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:  # many PDFs are "encrypted" with an empty password, to set permissions
                opened = bool(reader.decrypt(""))
            except (NotImplementedError, PdfReadError):  # a cipher pypdf cannot run here
                opened = False
            if not opened:
                raise ExtractError(
                    "the PDF is locked with a password; send it without the password"
                )
        pages = reader.pages
        texts = [(page.extract_text() or "") for page in pages[:max_pages]]
        title = _pdf_title(reader)
    except ExtractError:
        raise
    except FileNotDecryptedError:
        raise ExtractError("the PDF is locked with a password") from None
    except Exception as exc:  # pypdf raises many kinds on a damaged file
        log.info("pypdf could not read a PDF: %s: %s", type(exc).__name__, exc)
        raise ExtractError("the PDF could not be read (it may be damaged)") from None
    lines = tuple(line.rstrip() for text in texts for line in text.splitlines() if line.strip())
    if sum(len(line.strip()) for line in lines) < _MIN_PDF_TEXT:
        raise ExtractError(
            "the PDF has no text layer (a scanned document?); I can only read PDFs with "
            "text in them"
        )
    if len(pages) > max_pages:
        lines += (f"[only the first {max_pages} of {len(pages)} pages were read]",)
    return Extracted(title, lines)


def _pdf_title(reader: PdfReader) -> str:
    try:
        metadata = reader.metadata
    except Exception:  # a damaged info dictionary must not cost the text
        return ""
    title = metadata.title if metadata is not None else None
    return title.strip() if isinstance(title, str) else ""
