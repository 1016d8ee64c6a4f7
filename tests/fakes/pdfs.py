"""Tiny PDF files written by hand, for tests: pages of text (Helvetica, one line each),
a page with only a drawing (what a scan without OCR looks like to a text extractor),
and the same locked with a password (pypdf's RC4, which needs no extra package)."""

from __future__ import annotations

import io

from pypdf import PdfReader, PdfWriter

__all__ = ["drawing_pdf", "locked_pdf", "text_pdf"]


def text_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A PDF whose pages show ``pages`` (lines of text each)."""
    streams = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 760 Td"]
        for line in lines:
            ops.append(f"({_escape(line)}) Tj T*")
        ops.append("ET")
        streams.append("\n".join(ops).encode("latin-1"))
    return _document(streams, title=title)


def drawing_pdf() -> bytes:
    """One page with a filled rectangle and no text at all."""
    return _document([b"0.5 g\n72 72 400 600 re f"])


def locked_pdf(data: bytes, password: str = "s3cret") -> bytes:
    """``data`` encrypted so that it opens only with ``password``."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _document(streams: list[bytes], *, title: str | None = None) -> bytes:
    """A PDF 1.4 file: catalog, page tree, one font, a page and content stream per
    stream, a correct cross-reference table."""
    count = len(streams)
    font = 3
    first_page = 4
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        (
            "<< /Type /Pages /Kids ["
            + " ".join(f"{first_page + 2 * i} 0 R" for i in range(count))
            + f"] /Count {count} >>"
        ).encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, stream in enumerate(streams):
        content = first_page + 2 * i + 1
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R >>"
            ).encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    info = None
    if title is not None:
        objects.append(f"<< /Title ({_escape(title)}) >>".encode("latin-1"))
        info = len(objects)
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R"
    if info is not None:
        trailer += f" /Info {info} 0 R"
    out += f"trailer\n{trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
