"""The audio files the fakes serve are real: Chromium's own decoders play them."""

from __future__ import annotations

import base64

from playwright.async_api import Page

from tests.fakes.audio_files import mp3_silence, ogg_opus


async def test_the_test_ogg_opus_file_decodes_in_chromium_with_its_length(page: Page) -> None:
    data = base64.b64encode(ogg_opus(2.5, comments={"TRANSCRIPT": "hi"})).decode()
    seconds = await page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const context = new OfflineAudioContext(1, 48000, 48000);
            const decoded = await context.decodeAudioData(bytes.buffer);
            return decoded.duration;
        }""",
        data,
    )
    assert abs(seconds - 2.5) < 0.03


async def test_the_test_mp3_file_decodes_in_chromium(page: Page) -> None:
    data = base64.b64encode(mp3_silence(2.0)).decode()
    seconds = await page.evaluate(
        """async (b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const context = new OfflineAudioContext(1, 44100, 44100);
            const decoded = await context.decodeAudioData(bytes.buffer);
            return decoded.duration;
        }""",
        data,
    )
    assert abs(seconds - 2.0) < 0.1
