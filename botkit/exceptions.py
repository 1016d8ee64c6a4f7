"""The botkit error hierarchy.

Every error botkit raises on purpose is a ``BotkitError``::

    BotkitError
    ├── ConfigError           bad or missing settings, raised at start, names the TOML key
    │   └── ConfigErrors      several at once: every fault in a file, each in .errors
    ├── PluginError           an entry point missing, broken, duplicated, or of the wrong type
    ├── StoreError            wraps the database driver's errors
    │   ├── StoreUnavailableError  the database cannot be reached (down, restarting)
    │   └── ClaimLostError    this process's claim lapsed and another took the work over
    └── ServiceError          .service ("llm", "slack", "telegram", "imap", "smtp"), .retryable
        ├── ServiceUnavailableError   network, timeout, 5xx                retryable
        ├── RateLimitError            429 / flood control, .retry_after    retryable
        ├── QuotaExceededError        quota or budget exhausted            not retryable
        ├── AuthenticationError       bad key, token or password           not retryable
        └── RequestRejectedError      other 4xx, ok:false, invalid JSON    not retryable
            ├── ContextLengthError    the prompt does not fit the model's window
            └── InvalidResponseError  a reply that is not what was asked for (bad JSON, refusal)

Adapters catch their vendor's errors at the edge and re-raise these ``from exc``; the
retry policy lives in the core and reads ``retryable``. No message here ever contains a
secret: callers pass descriptions, never credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "AuthenticationError",
    "BotkitError",
    "ClaimLostError",
    "ConfigError",
    "ConfigErrors",
    "ContextLengthError",
    "InvalidResponseError",
    "PluginError",
    "QuotaExceededError",
    "RateLimitError",
    "RequestRejectedError",
    "ServiceError",
    "ServiceUnavailableError",
    "StoreError",
    "StoreUnavailableError",
    "error_kind",
]


class BotkitError(Exception):
    """Base of every error botkit raises on purpose."""


class ConfigError(BotkitError):
    """Bad or missing settings.

    Args:
        key: the dotted TOML key at fault, e.g. ``"llm.timeout"``.
        problem: what is wrong with it, in words a user can act on.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Each fault this error stands for: itself, or (``ConfigErrors``) every one."""
        return (self,)

    @staticmethod
    def together(errors: Sequence[ConfigError]) -> ConfigError:
        """One error for all of ``errors`` (at least one; flattened): the error itself
        when there is one, else a ``ConfigErrors``."""
        flat = [one for error in errors for one in error.errors]
        return flat[0] if len(flat) == 1 else ConfigErrors(flat)

    @staticmethod
    def raise_any(errors: Iterable[ConfigError]) -> None:
        """Raise ``errors`` together (:meth:`together`), if there are any."""
        found = list(errors)
        if found:
            raise ConfigError.together(found)


class ConfigErrors(ConfigError):
    """Several faults found together, so that one run shows every one of them.

    ``key`` and ``problem`` are the first fault's; ``str()`` is one line per fault.

    Args:
        errors: the faults, at least two, in the order they were found.
    """

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self._errors = tuple(one for error in errors for one in error.errors)
        first = self._errors[0]
        super().__init__(first.key, first.problem)
        self.args = ("\n".join(str(error) for error in self._errors),)

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Every fault, one ``ConfigError`` each."""
        return self._errors


class PluginError(BotkitError):
    """An adapter or plugin that cannot be loaded: missing, broken, duplicated or mistyped."""


class StoreError(BotkitError):
    """A database operation failed; the driver's error is the ``__cause__``."""


class StoreUnavailableError(StoreError):
    """The database cannot be reached (down, restarting, the connection lost): what
    failed can be tried again once it is back."""


class ClaimLostError(StoreError):
    """This process's claim on a message lapsed (a stall past its lease) and the fencing
    token moved on: the change was not made, and the process that holds the work now
    answers it."""


class ServiceError(BotkitError):
    """A remote service (the model, a channel's API, a mail server) refused or failed.

    Args:
        service: which service: ``"llm"``, ``"slack"``, ``"telegram"``, ``"imap"``, ``"smtp"``,
            or ``"budget"`` for a spending limit...
        message: what happened, without any secret (kept as ``reason``).
        status: the HTTP status or protocol code, when there was one.
        code: the service's own error code (``"insufficient_quota"``, ``"channel_not_found"``).
    """

    retryable: bool = False

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        self.service = service
        self.status = status
        self.code = code
        self.reason = message
        super().__init__(f"{service}: {message}")


class ServiceUnavailableError(ServiceError):
    """The network failed, the request timed out, or the server answered 5xx."""

    retryable = True


class RateLimitError(ServiceError):
    """The service asked us to slow down (HTTP 429, Telegram flood control).

    Args:
        retry_after: seconds the service asked us to wait, when it said.
    """

    retryable = True

    def __init__(
        self,
        service: str,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        code: str | None = None,
    ) -> None:
        super().__init__(service, message, status=status, code=code)
        self.retry_after = retry_after


class QuotaExceededError(ServiceError):
    """A quota or budget is used up; waiting a few seconds will not help."""


class AuthenticationError(ServiceError):
    """A key, token or password was refused."""


class RequestRejectedError(ServiceError):
    """The service refused this request as it stands (other 4xx, ``ok: false``, bad JSON)."""


class ContextLengthError(RequestRejectedError):
    """The prompt does not fit the model's context window."""


class InvalidResponseError(RequestRejectedError):
    """The service answered, but not with what was asked for (invalid or truncated JSON,
    a schema mismatch, a refusal)."""


# an exception's class to its kind, subclasses before their bases
_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (RateLimitError, "rate_limit"),
    (ServiceUnavailableError, "unavailable"),
    (QuotaExceededError, "quota"),
    (AuthenticationError, "auth"),
    (ContextLengthError, "context_length"),
    (InvalidResponseError, "invalid_response"),
    (RequestRejectedError, "rejected"),
    (ServiceError, "service"),
)


def error_kind(error: BaseException | None) -> str:
    """An error's kind, as metrics label it: ``rate_limit``, ``unavailable``, ``quota``,
    ``auth``, ``context_length``, ``invalid_response``, ``rejected``, ``service``, or
    ``other`` for anything that is not a :class:`ServiceError`."""
    for cls, kind in _KINDS:
        if isinstance(error, cls):
            return kind
    return "other"
