"""When to retry a failed chat-completions attempt, and how long to wait first."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from botkit.exceptions import RateLimitError, ServiceError

__all__ = ["MAX_HONOURED_RETRY_AFTER", "Failed", "RetryPolicy"]

MAX_HONOURED_RETRY_AFTER = 60.0
"""A ``Retry-After`` longer than this (and than ``backoff_max``) is not waited out: the
error is raised so the caller can answer now."""


class Failed(Exception):
    """One attempt failed with ``error``; the server may have said how long to wait."""

    def __init__(self, error: ServiceError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


@dataclass(slots=True)
class RetryPolicy:
    """Jittered exponential backoff that honours the server's ``Retry-After``.

    Attributes:
        max_retries: retries after the first attempt.
        backoff_base: the first backoff's ceiling, in seconds.
        backoff_max: the largest backoff ceiling, in seconds.
    """

    max_retries: int
    backoff_base: float
    backoff_max: float
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failed: Failed, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

        Gives up on errors that are not retryable, after ``max_retries`` retries, and
        when the server asks for a wait longer than ``backoff_max`` and a minute.
        Without a hint from the server the wait is ``backoff_base * 2**(attempt - 1)``
        capped at ``backoff_max``, its second half random.
        """
        error = failed.error
        if not error.retryable or attempt > self.max_retries:
            return None
        hint = failed.retry_after
        if hint is None and isinstance(error, RateLimitError):
            hint = error.retry_after
        if hint is not None:
            if hint > max(self.backoff_max, MAX_HONOURED_RETRY_AFTER):
                return None
            return hint
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
