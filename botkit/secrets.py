"""``Secret``: a string that never shows itself in logs, reprs or error messages."""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """Holds an API key, token or password read from the environment.

    ``str()``, ``repr()`` and f-strings print ``***``; call :meth:`reveal` where the
    value must really be used (an ``Authorization`` header).

    Args:
        value: the secret itself.
        source: where it came from (an environment variable's name), safe to show.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, *, source: str | None = None) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The secret's value; never log what this returns."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r})" if self.source else "Secret(***)"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
