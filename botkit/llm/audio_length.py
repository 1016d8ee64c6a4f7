"""How long a recording lasts, read from its container without decoding it.

Transcription is billed per minute and some speech per minute too, but the endpoints
do not always say how long the audio was: an Ogg stream says it in the granule position
of its last page (Opus counts 48 kHz samples after a pre-skip; Vorbis counts samples
at its own rate), a WAV file in its header.
"""

from __future__ import annotations

import struct

__all__ = ["audio_seconds", "ogg_seconds", "wav_seconds"]

_OGG = b"OggS"
_OPUS_RATE = 48_000


def audio_seconds(data: bytes) -> float | None:
    """The length of an Ogg (Opus or Vorbis) or WAV recording; ``None`` for anything
    else, or a file too broken to tell."""
    if data.startswith(_OGG):
        return ogg_seconds(data)
    if data.startswith(b"RIFF") and data[8:12] == b"WAVE":
        return wav_seconds(data)
    return None


def ogg_seconds(data: bytes) -> float | None:
    """The length of an Ogg Opus or Ogg Vorbis stream (its first logical stream).

    The first page's packet says the codec (``OpusHead``: pre-skip at byte 10;
    ``\\x01vorbis``: the sample rate at byte 12); the last page with a granule position
    says how many samples came before its end.
    """
    pages = list(_pages(data))
    if not pages:
        return None
    serial, _, first = pages[0]
    if first.startswith(b"OpusHead") and len(first) >= 19:
        rate, skip = _OPUS_RATE, int(struct.unpack_from("<H", first, 10)[0])
    elif first.startswith(b"\x01vorbis") and len(first) >= 16:
        rate, skip = int(struct.unpack_from("<I", first, 12)[0]), 0
    else:
        return None
    granules = [g for s, g, _ in pages if s == serial and g >= 0]
    if not granules or rate <= 0:
        return None
    return max(granules[-1] - skip, 0) / rate


def _pages(data: bytes) -> list[tuple[int, int, bytes]]:
    """Each page's (serial, granule position, first bytes of its data), in order; stops
    at the first byte that is not a page."""
    found: list[tuple[int, int, bytes]] = []
    at = 0
    while at + 27 <= len(data) and data[at : at + 4] == _OGG:
        granule, serial = (int(v) for v in struct.unpack_from("<qI", data, at + 6))
        count = data[at + 26]
        table = data[at + 27 : at + 27 + count]
        if len(table) < count:
            break
        start = at + 27 + count
        end = start + sum(table)
        if end > len(data):
            break
        found.append((serial, granule, data[start : min(end, start + 32)]))
        at = end
    return found


def wav_seconds(data: bytes) -> float | None:
    """The length of a PCM WAV file: its ``data`` chunk's size over the byte rate."""
    at = 12
    byte_rate = 0
    while at + 8 <= len(data):
        chunk, size = data[at : at + 4], int(struct.unpack_from("<I", data, at + 4)[0])
        if chunk == b"fmt " and size >= 16 and at + 20 <= len(data):
            byte_rate = int(struct.unpack_from("<I", data, at + 16)[0])
        elif chunk == b"data":
            if byte_rate <= 0:
                return None
            # a streamed WAV may say 0 or 0xFFFFFFFF: count what is there
            available = len(data) - at - 8
            return min(size, available) / byte_rate
        at += 8 + size + (size & 1)
    return None
