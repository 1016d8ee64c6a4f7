"""Real audio files for tests: Ogg/Opus written page by page (RFC 3533 pages, RFC 7845
headers), and MP3 made of silent MPEG-1 Layer III frames.

:func:`ogg_opus` makes a valid mono 48 kHz stream of silent 20 ms Opus frames: an
``OpusHead`` page, an ``OpusTags`` page (its comments can carry what a fake should "hear":
``{"TRANSCRIPT": "hello"}``), then audio pages whose granule positions count samples,
the last one flagged end-of-stream. Every page has its CRC.
"""

from __future__ import annotations

import struct

__all__ = ["SILENT_FRAME", "comments_of", "mp3_silence", "ogg_crc", "ogg_opus"]

SILENT_FRAME = b"\xf8\xff\xfe"  # TOC: CELT fullband 20 ms mono, then a silent frame
PRE_SKIP = 312
SAMPLES_PER_FRAME = 960  # 20 ms at 48 kHz
FRAMES_PER_PAGE = 50  # one second per page


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def ogg_crc(data: bytes) -> int:
    """Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, initial 0, no final xor."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[((crc >> 24) ^ byte) & 0xFF]
    return crc


def _page(packets: list[bytes], *, granule: int, serial: int, sequence: int, flags: int) -> bytes:
    lacing = bytearray()
    for packet in packets:
        size = len(packet)
        lacing += b"\xff" * (size // 255) + bytes([size % 255])
    header = struct.pack(
        "<4sBBqIIIB", b"OggS", 0, flags, granule, serial, sequence, 0, len(lacing)
    )
    page = bytearray(header + bytes(lacing) + b"".join(packets))
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


def ogg_opus(
    seconds: float = 1.0, *, comments: dict[str, str] | None = None, serial: int = 0x1D0B07
) -> bytes:
    """A valid Ogg/Opus file of ``seconds`` of silence (rounded to 20 ms frames)."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, PRE_SKIP, 48_000, 0, 0)
    vendor = b"botkit tests"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor
    entries = [f"{k}={v}".encode() for k, v in (comments or {}).items()]
    tags += struct.pack("<I", len(entries))
    for entry in entries:
        tags += struct.pack("<I", len(entry)) + entry
    pages = [
        _page([head], granule=0, serial=serial, sequence=0, flags=0x02),
        _page([tags], granule=0, serial=serial, sequence=1, flags=0),
    ]
    frames = max(1, round(seconds * 1000 / 20))
    done = 0
    while done < frames:
        count = min(FRAMES_PER_PAGE, frames - done)
        done += count
        pages.append(
            _page(
                [SILENT_FRAME] * count,
                granule=PRE_SKIP + done * SAMPLES_PER_FRAME,
                serial=serial,
                sequence=len(pages),
                flags=0x04 if done == frames else 0,
            )
        )
    return b"".join(pages)


def comments_of(data: bytes) -> dict[str, str]:
    """The ``OpusTags`` comments of an Ogg/Opus file (``{}`` if there are none)."""
    at = data.find(b"OpusTags")
    if at < 0:
        return {}
    at += 8
    (vendor_length,) = struct.unpack_from("<I", data, at)
    at += 4 + vendor_length
    (count,) = struct.unpack_from("<I", data, at)
    at += 4
    found: dict[str, str] = {}
    for _ in range(count):
        (length,) = struct.unpack_from("<I", data, at)
        key, _, value = data[at + 4 : at + 4 + length].decode().partition("=")
        found[key] = value
        at += 4 + length
    return found


# MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no CRC, no padding, mono: 417-byte frames of
# 1152 samples; all-zero side information and data decode as silence
_MP3_HEADER = b"\xff\xfb\x90\xc4"
_MP3_FRAME = 144 * 128_000 // 44_100


def mp3_silence(seconds: float = 1.0) -> bytes:
    """An MP3 file of ``seconds`` of silence (whole frames)."""
    frames = max(1, round(seconds * 44_100 / 1152))
    frame = _MP3_HEADER + bytes(_MP3_FRAME - len(_MP3_HEADER))
    return frame * frames
