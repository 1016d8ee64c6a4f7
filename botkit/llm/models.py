"""What botkit knows about each model: context window, output limit, price, tokenizer.

Prices are US dollars per 1,000 tokens, as :class:`~decimal.Decimal` (never ``float``:
money adds up exactly); the audio models are priced as the API prices them, per 1,000
characters spoken (``tts-1``) or per minute of audio (``whisper-1``, ``gpt-4o-mini-tts``).
The built-in table covers OpenAI's common chat and audio models; the config overrides
or extends it (:meth:`ModelTable.from_config`). A model the table does not know gets no
price at all rather than a guessed one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from botkit.exceptions import ConfigError
from botkit.llm.structured import MODES, StructuredMode
from botkit.llm.types import Usage

__all__ = [
    "BUILTIN_MODELS",
    "ModelInfo",
    "ModelKind",
    "ModelTable",
    "TokenParameter",
    "stated_window",
    "unknown_model_note",
]

TokenParameter = Literal["max_tokens", "max_completion_tokens"]
ModelKind = Literal["chat", "speech", "transcription"]

UNKNOWN_CONTEXT_WINDOW = 8_192
UNKNOWN_MAX_OUTPUT = 2_048

# A name continues a known name only after one of these: "gpt-4-0613" is a gpt-4, but
# "gpt-4.5" and "gpt-4o" are not (prices differ), and "llama3:8b" is a "llama3".
_PREFIX_BOUNDARY = frozenset("-:@_")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model's limits and prices.

    Attributes:
        name: the model's name as the API spells it.
        context_window: tokens the prompt and the reply share.
        max_output_tokens: the most tokens one reply may have.
        input_price_per_1k: dollars per 1,000 prompt tokens, ``None`` if unknown.
        output_price_per_1k: dollars per 1,000 completion tokens, ``None`` if unknown.
        token_parameter: the request field that carries the reply limit; the o-series
            reasoning models want ``max_completion_tokens``.
        encoding: the tokenizer (``"cl100k_base"``, ``"o200k_base"``), ``None`` when the
            model is not an OpenAI one (token counts are then estimates).
        structured_output: how JSON replies are asked for (``"json_schema"``,
            ``"json_object"`` or ``"prompt"``, see ``botkit.llm.structured``); ``None``:
            the best the server accepts, learnt from its first refusal.
        kind: ``"chat"``, or an audio model: ``"speech"`` (``/audio/speech``) or
            ``"transcription"`` (``/audio/transcriptions``).
        price_per_1k_characters: dollars per 1,000 characters of text spoken.
        price_per_minute: dollars per minute of audio heard (or spoken, for a speech
            model priced by its output, as ``gpt-4o-mini-tts`` is).
    """

    name: str
    context_window: int
    max_output_tokens: int
    input_price_per_1k: Decimal | None
    output_price_per_1k: Decimal | None
    token_parameter: TokenParameter = "max_tokens"
    encoding: str | None = None
    structured_output: StructuredMode | None = None
    kind: ModelKind = "chat"
    price_per_1k_characters: Decimal | None = None
    price_per_minute: Decimal | None = None

    def audio_cost(
        self, *, characters: int | None = None, seconds: float | None = None
    ) -> Decimal | None:
        """What an audio call cost in dollars: by characters where the model is priced
        so, else by the audio's length; ``None`` when neither price nor measure is known."""
        if self.price_per_1k_characters is not None and characters is not None:
            return (self.price_per_1k_characters * characters).scaleb(-3)
        if self.price_per_minute is not None and seconds is not None:
            # whole milliseconds: the float's binary noise stays out of the money
            return self.price_per_minute * Decimal(round(seconds * 1000)) / 60_000
        return None

    def cost(self, usage: Usage | None) -> Decimal | None:
        """What ``usage`` cost in dollars.

        Returns:
            The exact price, or ``None`` when there is no usage or either price is
            unknown.
        """
        if usage is None or self.input_price_per_1k is None or self.output_price_per_1k is None:
            return None
        total = (
            self.input_price_per_1k * usage.prompt_tokens
            + self.output_price_per_1k * usage.completion_tokens
        )
        return total.scaleb(-3)

    def prompt_budget(self, reserved_output: int) -> int:
        """Tokens left for the prompt once ``reserved_output`` are kept for the reply.

        The reservation is capped at :attr:`max_output_tokens`; the result is never
        negative.
        """
        return max(0, self.context_window - min(reserved_output, self.max_output_tokens))


def _usd(text: str) -> Decimal:
    return Decimal(text)


def _info(
    name: str,
    window: int,
    output: int,
    price_in: str,
    price_out: str,
    encoding: str,
    token_parameter: TokenParameter = "max_tokens",
) -> ModelInfo:
    return ModelInfo(
        name, window, output, _usd(price_in), _usd(price_out), token_parameter, encoding
    )


def _audio(
    name: str,
    kind: ModelKind,
    *,
    per_1k_characters: str | None = None,
    per_minute: str | None = None,
) -> ModelInfo:
    """An audio model: no window, no token prices; priced per character or minute."""
    return ModelInfo(
        name,
        0,
        0,
        None,
        None,
        kind=kind,
        price_per_1k_characters=_usd(per_1k_characters) if per_1k_characters else None,
        price_per_minute=_usd(per_minute) if per_minute else None,
    )


_CL100K = "cl100k_base"
_O200K = "o200k_base"
_MCT: TokenParameter = "max_completion_tokens"

BUILTIN_MODELS: tuple[ModelInfo, ...] = (
    # The gpt-4 turbo family: 128K window, 4K replies.
    _info("gpt-4-turbo", 128_000, 4_096, "0.01", "0.03", _CL100K),
    _info("gpt-4-turbo-preview", 128_000, 4_096, "0.01", "0.03", _CL100K),
    _info("gpt-4-1106-preview", 128_000, 4_096, "0.01", "0.03", _CL100K),
    _info("gpt-4-0125-preview", 128_000, 4_096, "0.01", "0.03", _CL100K),
    _info("gpt-4-vision-preview", 128_000, 4_096, "0.01", "0.03", _CL100K),
    # The original gpt-4s: prompt and reply share a small window.
    _info("gpt-4-32k", 32_768, 32_768, "0.06", "0.12", _CL100K),
    _info("gpt-4", 8_192, 8_192, "0.03", "0.06", _CL100K),
    _info("gpt-4o", 128_000, 16_384, "0.0025", "0.01", _O200K),
    # The first gpt-4o snapshot kept the launch price.
    _info("gpt-4o-2024-05-13", 128_000, 4_096, "0.005", "0.015", _O200K),
    _info("gpt-4o-mini", 128_000, 16_384, "0.00015", "0.0006", _O200K),
    _info("gpt-4.1", 1_047_576, 32_768, "0.002", "0.008", _O200K),
    _info("gpt-4.1-mini", 1_047_576, 32_768, "0.0004", "0.0016", _O200K),
    _info("gpt-4.1-nano", 1_047_576, 32_768, "0.0001", "0.0004", _O200K),
    _info("gpt-3.5-turbo", 16_385, 4_096, "0.0005", "0.0015", _CL100K),
    # Reasoning models: the reply limit is called max_completion_tokens.
    _info("o1", 200_000, 100_000, "0.015", "0.06", _O200K, _MCT),
    _info("o1-preview", 128_000, 32_768, "0.015", "0.06", _O200K, _MCT),
    _info("o1-mini", 128_000, 65_536, "0.0011", "0.0044", _O200K, _MCT),
    _info("o3-mini", 200_000, 100_000, "0.0011", "0.0044", _O200K, _MCT),
    # Speech (/audio/speech): tts-1 $15 and tts-1-hd $30 per million characters;
    # gpt-4o-mini-tts about $0.015 per minute of audio.
    _audio("tts-1", "speech", per_1k_characters="0.015"),
    _audio("tts-1-hd", "speech", per_1k_characters="0.03"),
    _audio("gpt-4o-mini-tts", "speech", per_minute="0.015"),
    # Transcription (/audio/transcriptions), per minute of audio heard.
    _audio("whisper-1", "transcription", per_minute="0.006"),
    _audio("gpt-4o-transcribe", "transcription", per_minute="0.006"),
    _audio("gpt-4o-mini-transcribe", "transcription", per_minute="0.003"),
)

_FIELDS = {
    "context_window",
    "max_output_tokens",
    "input_price_per_1k",
    "output_price_per_1k",
    "token_parameter",
    "encoding",
    "structured_output",
    "kind",
    "price_per_1k_characters",
    "price_per_minute",
}


class ModelTable:
    """Looks models up by name: exactly, else by the longest known prefix.

    ``gpt-4o-2024-08-06`` finds ``gpt-4o``, ``gpt-4o-mini-x`` finds ``gpt-4o-mini`` and
    ``gpt-4-turbo-2024-04-09`` finds ``gpt-4-turbo``. A prefix only counts when the name
    goes on with ``-``, ``:``, ``@`` or ``_`` (so ``gpt-4.5`` is not a ``gpt-4``). A
    provider prefix such as ``openai/gpt-4o`` is tried without it. Anything else gets a
    :class:`ModelInfo` with no prices, an 8,192-token window, 2,048-token replies and
    no encoding.

    Args:
        models: the entries; later ones replace earlier ones of the same name.
        include_builtins: start from :data:`BUILTIN_MODELS`.
    """

    def __init__(self, models: Iterable[ModelInfo] = (), *, include_builtins: bool = True):
        self._models: dict[str, ModelInfo] = {}
        if include_builtins:
            self._models.update((info.name, info) for info in BUILTIN_MODELS)
        self._models.update((info.name, info) for info in models)
        # longest first, so the first prefix that matches is the longest
        self._by_length = sorted(self._models, key=len, reverse=True)

    @classmethod
    def from_config(
        cls,
        overrides: Mapping[str, Mapping[str, Any]],
        *,
        key: str = "llm.models",
        include_builtins: bool = True,
    ) -> ModelTable:
        """Build a table from a config table such as ``[llm.models."gpt-4o"]``.

        Each entry may give any of ``context_window``, ``max_output_tokens``,
        ``input_price_per_1k``, ``output_price_per_1k`` (write prices as strings,
        ``"0.0025"``, to keep them exact; numbers are accepted), ``token_parameter``,
        ``encoding`` and ``structured_output``; for audio models ``kind``,
        ``price_per_1k_characters`` and ``price_per_minute``. Fields not given come from
        the model the name already resolves to, so ``[llm.models."gpt-4o"]
        input_price_per_1k = "0.002"`` changes only that.

        Args:
            overrides: model name to its fields.
            key: the config key the table came from, for error messages.
            include_builtins: start from :data:`BUILTIN_MODELS`.

        Raises:
            ConfigError: an unknown field or a value of the wrong type, naming the key.
        """
        base = cls(include_builtins=include_builtins)
        entries: list[ModelInfo] = []
        for name, fields in overrides.items():
            entry_key = f'{key}."{name}"'
            if not isinstance(fields, Mapping):
                raise ConfigError(entry_key, "must be a table")
            unknown = set(fields) - _FIELDS
            if unknown:
                raise ConfigError(
                    f"{entry_key}.{sorted(unknown)[0]}",
                    f"unknown setting (known: {', '.join(sorted(_FIELDS))})",
                )
            start = dataclasses.replace(base.lookup(name), name=name)
            changes = {field: _convert(field, value, entry_key) for field, value in fields.items()}
            entries.append(dataclasses.replace(start, **changes))
        return cls(entries, include_builtins=include_builtins)

    def lookup(self, model: str) -> ModelInfo:
        """The model's info; never fails (see the class docstring for unknown models)."""
        found = self._find(model)
        if found is None and "/" in model:
            found = self._find(model.rsplit("/", 1)[1])
        if found is None:
            return ModelInfo(model, UNKNOWN_CONTEXT_WINDOW, UNKNOWN_MAX_OUTPUT, None, None)
        return found

    def is_known(self, model: str) -> bool:
        """Whether :meth:`lookup` finds ``model`` in the table (exactly or by prefix)."""
        return self._find(model) is not None or (
            "/" in model and self._find(model.rsplit("/", 1)[1]) is not None
        )

    def _find(self, model: str) -> ModelInfo | None:
        exact = self._models.get(model)
        if exact is not None:
            return exact
        for name in self._by_length:
            if (
                len(model) > len(name)
                and model.startswith(name)
                and model[len(name)] in _PREFIX_BOUNDARY
            ):
                return self._models[name]
        return None

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and model in self._models


_PRICES = {
    "input_price_per_1k": "per 1K tokens",
    "output_price_per_1k": "per 1K tokens",
    "price_per_1k_characters": "per 1K characters",
    "price_per_minute": "per minute of audio",
}


def _convert(field: str, value: Any, key: str) -> Any:
    """Check and convert one overridden field from its TOML value."""
    where = f"{key}.{field}"
    if field in ("context_window", "max_output_tokens"):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(where, "must be a positive whole number of tokens")
        return value
    if field in _PRICES:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(where, f'must be a price in dollars {_PRICES[field]}, e.g. "0.0025"')
        try:
            # str() first: Decimal(0.0025) would carry the float's binary error
            price = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(where, f"{value!r} is not a number") from None
        if not price.is_finite() or price < 0:
            raise ConfigError(where, "must be a non-negative price")
        return price
    if field == "structured_output":
        if value not in MODES:
            raise ConfigError(where, f"must be one of {', '.join(map(repr, MODES))}")
        return value
    if field == "kind":
        if value not in ("chat", "speech", "transcription"):
            raise ConfigError(where, 'must be "chat", "speech" or "transcription"')
        return value
    if field == "token_parameter":
        if value not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(where, 'must be "max_tokens" or "max_completion_tokens"')
        return value
    if not isinstance(value, str) or value not in (_CL100K, _O200K):
        raise ConfigError(where, f'must be "{_CL100K}" or "{_O200K}"')
    return value


# how servers state their window in a context-length error: OpenAI and vLLM ("maximum
# context length is 8192 tokens"), llama.cpp ("n_ctx": 512, "context size (512 tokens)"),
# others ("context window of 4096", "context length of 4096")
_STATED_WINDOW = re.compile(
    r"maximum context length is (\d+)"
    r"|n_ctx\D{0,4}(\d+)"
    r"|context (?:size|window|length)(?: is| of)?\D{0,3}(\d+)",
    re.IGNORECASE,
)


def stated_window(message: str) -> int | None:
    """The context window a server's context-length error states, if it states one."""
    found = _STATED_WINDOW.search(message)
    if found is None:
        return None
    window = int(next(group for group in found.groups() if group))
    return window if window > 0 else None


def unknown_model_note(info: ModelInfo, table: ModelTable) -> str | None:
    """One line for a configured model the table does not know (or prices only
    partly), saying what is assumed and what to set; ``None`` for a known one."""
    if table.is_known(info.name):
        return None
    prices = (
        "no prices"
        if info.input_price_per_1k is None or info.output_price_per_1k is None
        else "prices set"
    )
    return (
        f"{info.name}: unknown model, {info.context_window:,}-token window assumed, {prices};"
        f' set [llm.models."{info.name}"]'
    )
