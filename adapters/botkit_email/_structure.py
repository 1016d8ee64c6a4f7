"""A mail's MIME tree as the server describes it in ``BODYSTRUCTURE`` (RFC 3501 7.4.2),
with the IMAP part number (section) of every part, so parts can be fetched one by one.

Only what intake needs is kept: the tree's shape, each part's type, parameters, transfer
encoding, encoded size and disposition. A ``message/rfc822`` part is a leaf here: the
mail inside it is an attachment, never read during intake.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from botkit_email._imapwire import Value

__all__ = ["BodyPart", "BodyStructureError", "parse_bodystructure"]


class BodyStructureError(ValueError):
    """A ``BODYSTRUCTURE`` that does not follow RFC 3501's grammar."""


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One MIME part.

    Attributes:
        section: its IMAP part number (``"1"``, ``"2.3"``); ``""`` for a multipart mail's
            top level, which has none.
        content_type: ``maintype/subtype``, lower case.
        params: its Content-Type parameters (names in lower case).
        encoding: its Content-Transfer-Encoding, lower case (``"7bit"`` when absent).
        size: its encoded size in octets (0 for a multipart).
        disposition: its Content-Disposition type, lower case, or ``None``.
        parts: a multipart's children, in order.
    """

    section: str
    content_type: str
    params: dict[str, str] = field(default_factory=dict)
    encoding: str = "7bit"
    size: int = 0
    disposition: str | None = None
    parts: tuple[BodyPart, ...] = ()

    @property
    def is_multipart(self) -> bool:
        """Whether this part holds other parts."""
        return self.content_type.startswith("multipart/")

    def walk(self) -> Iterator[BodyPart]:
        """This part and every part below it, depth first, in order."""
        yield self
        for part in self.parts:
            yield from part.walk()

    def find(self, section: str) -> BodyPart | None:
        """The part with this section number, or ``None``."""
        return next((part for part in self.walk() if part.section == section), None)


def parse_bodystructure(value: Value) -> BodyPart:
    """The tree a ``BODYSTRUCTURE`` item's value (as :mod:`._imapwire` parses it) describes.

    Raises:
        BodyStructureError: the value does not follow the grammar; says where.
    """
    if not isinstance(value, list):
        raise BodyStructureError(f"BODYSTRUCTURE is not a list: {value!r:.80}")
    return _body(value, "")


def _body(value: list[Value], section: str) -> BodyPart:
    if not value:
        raise BodyStructureError(f"empty body at part {section or 'top'}")
    if isinstance(value[0], list):
        return _multipart(value, section)
    return _single(value, section or "1")


def _multipart(value: list[Value], section: str) -> BodyPart:
    children: list[BodyPart] = []
    for child in value:
        if not isinstance(child, list):
            break
        number = len(children) + 1
        children.append(_body(child, f"{section}.{number}" if section else str(number)))
    index = len(children)
    where = f"multipart {section or 'top'}"
    if index >= len(value):
        raise BodyStructureError(f"{where}: no subtype after its parts")
    subtype = _text(value[index], f"{where} subtype")
    extension = value[index + 1 :]
    params = _params(extension[0], where) if extension else {}
    disposition = _disposition(extension[1], where) if len(extension) > 1 else None
    return BodyPart(
        section,
        f"multipart/{subtype.lower()}",
        params,
        disposition=disposition,
        parts=tuple(children),
    )


def _single(value: list[Value], section: str) -> BodyPart:
    where = f"part {section}"
    if len(value) < 7:
        raise BodyStructureError(f"{where}: {len(value)} fields, at least 7 expected")
    maintype = _text(value[0], f"{where} type").lower()
    subtype = _text(value[1], f"{where} subtype").lower()
    params = _params(value[2], where)
    encoding = (_text(value[5], f"{where} encoding") if value[5] is not None else "7bit").lower()
    size = _number(value[6], f"{where} size")
    content_type = f"{maintype}/{subtype}"
    rest = 7
    if content_type in ("message/rfc822", "message/global"):
        # envelope, the enclosed mail's body, its line count
        if len(value) < 10 or not isinstance(value[7], list) or not isinstance(value[8], list):
            raise BodyStructureError(f"{where}: a message part needs an envelope and a body")
        _body(value[8], f"{section}.1")  # checked, not kept: it is never read in parts
        _number(value[9], f"{where} line count")
        rest = 10
    elif maintype == "text":
        if len(value) < 8:
            raise BodyStructureError(f"{where}: a text part needs a line count")
        _number(value[7], f"{where} line count")
        rest = 8
    extension = value[rest:]  # md5, disposition, language, location, more
    disposition = _disposition(extension[1], where) if len(extension) > 1 else None
    return BodyPart(section, content_type, params, encoding, size, disposition)


def _text(value: Value, what: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):  # an atom where a string belongs: lenient
        return value
    raise BodyStructureError(f"{what}: a string was expected, not {value!r:.60}")


def _number(value: Value, what: str) -> int:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise BodyStructureError(f"{what}: a number was expected, not {value!r:.60}")


def _params(value: Value, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list) or len(value) % 2:
        raise BodyStructureError(f"{where}: parameters must be name/value pairs: {value!r:.80}")
    return {
        _text(name, f"{where} parameter").lower(): _text(content, f"{where} parameter")
        for name, content in zip(value[::2], value[1::2], strict=True)
    }


def _disposition(value: Value, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2:
        raise BodyStructureError(f"{where}: malformed disposition: {value!r:.80}")
    _params(value[1], where)
    return _text(value[0], f"{where} disposition").lower()
