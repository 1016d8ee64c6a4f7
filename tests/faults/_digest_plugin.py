"""A scheduled digest for the fault scenarios: every minute (cron), one message to
``DIGEST_TO``. It goes through the same scheduler and outbox as the summary plugin's
digests, which check only every 60 s and send their first digest two minutes after start."""

from __future__ import annotations

from datetime import UTC, datetime

from botkit import ConversationRef, Plugin, PluginRuntime

__all__ = ["DIGEST_TO", "plugin"]

DIGEST_TO = ConversationRef("slack", "CDIGEST")

plugin = Plugin("faults_digest", description="A digest every minute, for the fault tests.")


@plugin.on_schedule(cron="* * * * *")
async def digest(job: PluginRuntime) -> None:
    """Send the minute's digest."""
    minute = datetime.now(UTC).strftime("%H:%M")
    await job.send(DIGEST_TO, f"digest for {minute}")
