"""Bad webhook bodies (malformed, not UTF-8, oversized, unsigned) get a 4xx; the process
stays up, and the next real message is answered."""

from __future__ import annotations

import json

from tests.faults.harness import BotProcess, Cluster, SlackEvents, wait_until

OVERSIZED = 3 * 1024 * 1024  # bytes: well past what a webhook should read


def _unsigned_slack_bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    """name -> (body, headers) of requests refused before their body is looked at."""
    good = SlackEvents.body("D1", "hello", "1700009999.000001")
    big = b'{"type": "event_callback", "pad": "' + b"x" * OVERSIZED + b'"}'
    return {
        "unsigned": (good, {"Content-Type": "application/json"}),
        "wrongly signed": (good, SlackEvents.headers(good, secret="not-the-secret")),
        "oversized": (big, SlackEvents.headers(big)),
    }


def _malformed_slack_bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    """name -> (body, headers) of correctly signed bodies that are not an event."""
    bodies = {
        "malformed JSON": b'{"type": "event_callback", "event": {',
        "not UTF-8": b'{"type": "event_callback", "text": "\xff\xfe\xfa"}',
        "JSON but not an event": b'["a", "list"]',
    }
    return {name: (body, SlackEvents.headers(body)) for name, body in bodies.items()}


def _telegram_bodies() -> dict[str, tuple[bytes, str | None]]:
    """name -> (body, secret token) of each bad webhook request."""
    good = json.dumps({"update_id": 99, "message": {"text": "hi"}}).encode()
    return {
        "malformed JSON": (b'{"update_id": 1, "message": {', "faults-webhook-secret"),
        "not UTF-8": (b'{"update_id": 2, "text": "\xff\xfe"}', "faults-webhook-secret"),
        "JSON but not an update": (b'{"hello": "world"}', "faults-webhook-secret"),
        "oversized": (
            b'{"update_id": 3, "pad": "' + b"x" * OVERSIZED + b'"}',
            "faults-webhook-secret",
        ),
        "unsigned": (good, None),
        "wrong secret": (good, "not-the-secret"),
    }


async def _ready(cluster: Cluster, database: str, channel: str) -> BotProcess:
    bot = cluster.config("bot", database=database, channel=channel).start()
    await bot.wait_ready()
    return bot


async def _check_slack_bodies(
    cluster: Cluster, database: str, requests: dict[str, tuple[bytes, dict[str, str]]]
) -> None:
    bot = await _ready(cluster, database, "slack")
    # botkit answers 503 until the adapter started; wait for a real acknowledgement
    await cluster.slack_events.post(bot, "D0", "first")

    statuses = {
        name: await cluster.slack_events.post_raw(bot, body, headers)
        for name, (body, headers) in requests.items()
    }
    await cluster.slack_events.post(bot, "D1", "still there?")

    assert {n: s for n, s in statuses.items() if s is None or not 400 <= s < 500} == {}
    await wait_until(
        lambda: cluster.slack_answered("D1", "echo: still there?"),
        what="the next message answered",
        watch=[bot],
    )
    assert bot.running


async def test_unsigned_or_oversized_slack_bodies_get_a_4xx_and_the_next_message_is_answered(
    cluster: Cluster, sqlite_url: str
) -> None:
    await _check_slack_bodies(cluster, sqlite_url, _unsigned_slack_bodies())


async def test_malformed_signed_slack_bodies_get_a_4xx_and_the_next_message_is_answered(
    cluster: Cluster, sqlite_url: str
) -> None:
    await _check_slack_bodies(cluster, sqlite_url, _malformed_slack_bodies())


async def test_bad_telegram_webhook_bodies_get_a_4xx_and_the_next_update_is_answered(
    cluster: Cluster, sqlite_url: str
) -> None:
    bot = await _ready(cluster, sqlite_url, "telegram")
    await cluster.telegram_webhook.post(bot, cluster.telegram_webhook.update(5001, "first"))

    statuses = {
        name: await cluster.telegram_webhook.post_raw(bot, body, secret=secret)
        for name, (body, secret) in _telegram_bodies().items()
    }
    await cluster.telegram_webhook.post(bot, cluster.telegram_webhook.update(5002, "hi again"))

    assert {n: s for n, s in statuses.items() if s is None or not 400 <= s < 500} == {}
    await wait_until(
        lambda: cluster.telegram_texts(5002) == ["echo: hi again"],
        what="the next update answered",
        watch=[bot],
    )
    assert bot.running
