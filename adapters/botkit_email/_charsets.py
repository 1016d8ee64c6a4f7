"""Decoding mail text whatever charset it claims: declared, guessed, never an exception."""

from __future__ import annotations

import codecs

__all__ = ["clean", "decode_bytes", "normalise_charset"]

# Labels seen in real mail that Python does not know, mapped to what was meant.
_TYPOS = {
    "uft8": "utf-8",
    "utf": "utf-8",
    "utf8mb4": "utf-8",
    "unicode11utf8": "utf-8",
    "x-unknown": "",
    "unknown": "",
    "unknown8bit": "",
    "xunknown": "",
    "default": "",
    "ansix341968": "ascii",
    "ksc56011987": "euc-kr",
    "ks_c_5601-1987": "euc-kr",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "windows874": "cp874",
    "xsjis": "shift_jis",
    "sjis": "shift_jis",
    "xmacroman": "mac_roman",
}
_NOT_ASCII_COMPATIBLE = ("utf_16", "utf_32", "utf_7", "iso2022", "hz")
# WHATWG: mail labelled Latin-1 or ASCII is very often Windows-1252 (smart quotes).
_WIDEN = {"latin_1": "cp1252", "iso8859_1": "cp1252", "ascii": "cp1252"}


def normalise_charset(label: str | None) -> str | None:
    """The Python codec name for a charset label, or ``None`` when unknown or not text."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    for candidate in (name, _TYPOS.get(name), _TYPOS.get(_squash(name)), _squash(name)):
        if not candidate:
            continue
        try:
            info = codecs.lookup(candidate)
        except (LookupError, ValueError):
            continue
        if getattr(info, "_is_text_encoding", True):
            return info.name.replace("-", "_")
    return None


def _squash(name: str) -> str:
    return "".join(c for c in name if c.isalnum())


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from bytes: UTF-8 if it is valid, else the declared charset, else a guess.

    Bytes that fit nothing become U+FFFD; this never raises.
    """
    declared = normalise_charset(charset)
    if declared is not None and declared.startswith(_NOT_ASCII_COMPATIBLE):
        # ISO-2022 escapes, UTF-7 or UTF-16 are often valid (and wrong) as UTF-8.
        attempts = [declared, "utf-8"]
    else:
        # Valid UTF-8 is almost never an accident, while a single-byte label decodes
        # anything: UTF-8 first, so mislabelled UTF-8 does not become mojibake.
        attempts = ["utf-8", _WIDEN.get(declared, declared) if declared else "cp1252"]
        if declared is not None:
            attempts.append(declared)
    for codec in attempts:
        try:
            return clean(data.decode(codec))
        except (UnicodeError, LookupError):
            continue
    return clean(data.decode(attempts[1] if len(attempts) > 1 else "utf-8", "replace"))


def clean(text: str) -> str:
    """Replace lone surrogates (undecodable bytes kept by the email package) with U+FFFD,
    so the text can be stored and encoded anywhere."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
