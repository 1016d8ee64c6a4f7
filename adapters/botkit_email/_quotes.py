"""Strip quoted replies and signatures, so the model reads only what the sender wrote now."""

from __future__ import annotations

import re

__all__ = ["strip_quotes"]

# "On <date>, <name> wrote:" and its translations; they may wrap onto a second line.
_ATTRIBUTION = re.compile(
    r"""^\s*(?:
        (?:On|Le|El|Il|Op|Em|Am|Den|På|Dne|W\ dniu|Quoting|Citando|Zitat\ von)\b.{0,300}?
        (?:wrote|a\ écrit|a\ ecrit|escribió|escribio|ha\ scritto|schreef|escreveu|
           schrieb|skrev|napsal|napisał|pisze|kirjoitti|írta|yazd\u0131|написал|написала|
           написал\(\u0430\)|пишет)\b.{0,200}?[:\uff1a]\s*
      | .{0,300}?\b(?:wrote|schrieb|skrev|kirjoitti|написал\(\u0430\)|написал|написала|пишет)
        \b.{0,200}?[:\uff1a]\s*
      | 在.{0,200}?写道\s*[:\uff1a]\s*
      | .{0,200}?\d{4}年\d{1,2}月\d{1,2}日.{0,200}?[:\uff1a]\s*
    )$""",
    re.IGNORECASE | re.VERBOSE,
)
_SEPARATOR = re.compile(
    r"""^\s*(?:
        -{2,}\s*(?:Original\ Message|Ursprüngliche\ Nachricht|Message\ d'origine|
                   Mensaje\ original|Messaggio\ originale|Oorspronkelijk\ bericht|
                   Mensagem\ original|Originalmeddelande|Oprindelig\ meddelelse|
                   Исходное\ сообщение|Původní\ zpráva|Wiadomość\ oryginalna)\s*-{2,}
      | -{5,}\s*Message\ original\s*-{5,}
      | _{20,}
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
# An Outlook header block: "From: ..." followed by Sent/Date/To/Subject lines.
_HEADER_FROM = re.compile(r"^\s*\**(?:From|Von|De|Da|Van|Från|Fra|От|Od)\s*:\**\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\**(?:Sent|Date|To|Subject|Cc|Gesendet|Datum|An|Betreff|Envoyé|Date|À|Objet|"
    r"Enviado|Para|Asunto|Inviato|Oggetto|Verzonden|Onderwerp|Skickat|Ämne|Sendt|Emne|"
    r"Отправлено|Кому|Тема)\s*:",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(r"^--\s?$")


def strip_quotes(text: str) -> str:
    """The new text of a reply: no quoted earlier mail, no ``-- `` signature.

    Handles top-posting (everything below an "On ... wrote:" line, an "Original Message"
    separator or an Outlook header block), interleaved ``>`` lines, and bottom-posting
    (when cutting would leave nothing, only the quote markers and quoted lines go).
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = _cut_index(lines)
    kept = lines[:cut]
    if not _meaningful(kept):
        # Bottom-posted: the attribution came first. Keep what is not quoted.
        kept = [line for i, line in enumerate(lines) if not _is_marker(lines, i)]
        kept = _before_signature(kept)
    result = [line for line in kept if not line.lstrip().startswith(">")]
    return _tidy(result)


def _cut_index(lines: list[str]) -> int:
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line) or _SEPARATOR.match(line):
            return i
        if _is_attribution(lines, i) or _is_header_block(lines, i):
            return i
    return len(lines)


def _is_attribution(lines: list[str], i: int) -> bool:
    """An "On ... wrote:" line (possibly wrapped onto the next) introducing ``>`` lines."""
    line = lines[i].strip()
    if not line or line.startswith(">") or len(line) > 400:
        return False
    if _ATTRIBUTION.match(line):
        return _followed_by_quote(lines, i + 1)
    # Clients wrap a long attribution: "On Mon, 1 Jan 2024 at 10:00, Ann Example\n<a@b> wrote:"
    if i + 1 < len(lines) and lines[i + 1].strip():
        joined = f"{line} {lines[i + 1].strip()}"
        if _ATTRIBUTION.match(joined):
            return _followed_by_quote(lines, i + 2)
    return False


def _followed_by_quote(lines: list[str], start: int) -> bool:
    """Whether the next non-blank line is quoted ("I wrote:" in prose is not a quote)."""
    for line in lines[start : start + 4]:
        if line.strip():
            return line.lstrip().startswith(">")
    return start >= len(lines)


def _is_header_block(lines: list[str], i: int) -> bool:
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [line for line in lines[i + 1 : i + 6] if line.strip()]
    return sum(1 for line in following[:4] if _HEADER_NEXT.match(line)) >= 2


def _is_marker(lines: list[str], i: int) -> bool:
    return _is_attribution(lines, i) or bool(_SEPARATOR.match(lines[i]))


def _before_signature(lines: list[str]) -> list[str]:
    for i, line in enumerate(lines):
        if _SIGNATURE.match(line):
            return lines[:i]
    return lines


def _meaningful(lines: list[str]) -> bool:
    return any(line.strip() and not line.lstrip().startswith(">") for line in lines)


def _tidy(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)
