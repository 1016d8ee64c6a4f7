"""Configuration: one TOML file, conventional environment overrides, secrets from the env.

``load_config()`` is the only place botkit reads the environment. Secrets are never
written in the file: a setting like ``api_key_env = "OPENAI_API_KEY"`` names the variable
that holds it. Every error names the TOML key at fault.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from botkit._settings import parse_settings
from botkit.exceptions import ConfigError
from botkit.secrets import Secret

__all__ = [
    "BotSection",
    "Config",
    "DatabaseSection",
    "LLMSection",
    "LoggingSection",
    "OutboxSection",
    "WebSection",
    "load_config",
    "read_config",
]

DEFAULT_DATABASE_URL = "sqlite:///botkit.db"
# the operations page's token is all that guards it: long enough not to be guessed
MIN_ADMIN_TOKEN = 16


@dataclass(frozen=True, slots=True)
class BotSection:
    """``[bot]``: the bot's name and how it handles conversations."""

    name: str = "botkit"
    system_prompt: str = "You are a helpful assistant. Answer concisely."
    burst: Literal["queue", "coalesce"] = "queue"
    max_in_flight: int = 32
    stream: bool = True
    history_limit: int = 200
    summarize: bool = True
    shutdown_grace: float = 20.0
    claim_lease: float = 30.0
    # while the model (or the database) is down, a message waits and is retried with
    # growing backoff for this long after it arrived, then fails
    outage_horizon: float = 3600.0
    outage_retry: float = 5.0  # the first wait; doubled at each try, at most 300 s
    # told once per conversation per outage while an answer waits ("" says nothing)
    delay_notice: str = (
        "Your answer is delayed: the assistant is unavailable right now. Your message is "
        "kept and answered as soon as it is back."
    )
    # the lease on what runs in one process cluster-wide (None: claim_lease)
    singleton_lease: float | None = None
    # run_until_stopped freezes the start-up heap and collects young objects less often
    tune_gc: bool = True
    # the loop the botkit commands run on: uvloop where installed ("auto"), or asyncio's
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"


@dataclass(frozen=True, slots=True)
class DatabaseSection:
    """``[database]``: where conversations are kept."""

    url: str = DEFAULT_DATABASE_URL
    busy_timeout: float = 30.0
    # SQLite only. "full": a commit is on disk before it returns, so nothing acknowledged
    # to a channel can be lost to a power cut; "normal": faster, and a power cut (not a
    # crash of the process) may undo the last commits.
    synchronous: Literal["full", "normal"] = "full"
    # None: migrate SQLite automatically, leave PostgreSQL to `botkit db upgrade`.
    auto_migrate: bool | None = None


@dataclass(frozen=True, slots=True)
class LLMSection:
    """``[llm]``: the OpenAI-compatible server and model."""

    base_url: str | None = None
    api_key: Secret | None = field(default=None, metadata={"env": "OPENAI_API_KEY"})
    model: str = "gpt-4o-mini"
    organization: str | None = None
    timeout: float = 60.0
    stream_idle_timeout: float = 30.0
    max_retries: int = 4
    reserve_output_tokens: int = 1024
    temperature: float | None = None
    models: dict[str, Any] = field(default_factory=dict)

    @property
    def stand_in(self) -> bool:
        """True when neither a key nor a server is configured: the offline stand-in answers."""
        return self.api_key is None and self.base_url is None


@dataclass(frozen=True, slots=True)
class WebSection:
    """``[web]``: the HTTP server for webhooks, ``/healthz``, ``/readyz``, ``/metrics`` and
    the operations page (``/admin``)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    # the largest request body a webhook reads (bytes); larger ones are answered 413
    max_body_size: int = 1024 * 1024
    # the operations page's login token; without it /admin is not served at all
    admin_token: Secret | None = field(default=None, metadata={"env": "BOTKIT_ADMIN_TOKEN"})


@dataclass(frozen=True, slots=True)
class LoggingSection:
    """``[logging]``: how the process logs (the command line's flags win over these)."""

    # "auto": JSON lines when stderr is not a terminal, text when it is
    format: Literal["auto", "json", "text"] = "auto"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = None  # None: the command's
    # what people write appears in no log unless this is true
    bodies: bool = False


@dataclass(frozen=True, slots=True)
class OutboxSection:
    """``[outbox]``: how hard replies are retried."""

    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 300.0
    inline_wait_max: float = 10.0


@dataclass(frozen=True, slots=True)
class ComponentSection:
    """One ``[adapters.NAME]`` or ``[plugins.NAME]`` table, before its own settings parse."""

    name: str
    use: str | None
    enabled: bool
    settings: Mapping[str, Any]
    key: str


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, resolved."""

    bot: BotSection = BotSection()
    database: DatabaseSection = DatabaseSection()
    llm: LLMSection = LLMSection()
    web: WebSection = WebSection()
    outbox: OutboxSection = OutboxSection()
    logging: LoggingSection = LoggingSection()
    adapters: tuple[ComponentSection, ...] = ()
    plugins: tuple[ComponentSection, ...] = ()
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    path: Path | None = None


_SECTIONS: dict[str, type[Any]] = {
    "bot": BotSection,
    "database": DatabaseSection,
    "llm": LLMSection,
    "web": WebSection,
    "outbox": OutboxSection,
    "logging": LoggingSection,
}
_ENV_OVERRIDES = {
    "OPENAI_BASE_URL": ("llm", "base_url"),
    "BOTKIT_MODEL": ("llm", "model"),
    "BOTKIT_DATABASE_URL": ("database", "url"),
}
DEFAULT_ADAPTERS = ("console",)
DEFAULT_PLUGINS = ("chat",)


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the config file (if any) and apply the environment.

    Args:
        path: the TOML file; ``None`` uses ``$BOTKIT_CONFIG``, else ``./botkit.toml`` if
            it exists, else the built-in defaults (SQLite, the console, the stand-in
            model unless ``OPENAI_API_KEY`` or ``OPENAI_BASE_URL`` is set).
        environ: the environment to read (default: ``os.environ``).

    Raises:
        ConfigError: naming the key and what is wrong with it (``ConfigErrors``: every
            fault in the file).
    """
    config, errors = read_config(path, environ=environ)
    if errors:
        raise ConfigError.together(errors)
    return config


def read_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[Config, tuple[ConfigError, ...]]:
    """``load_config``, returning the faults instead of raising them: a faulty section
    is left at its defaults, so a caller can add the faults of what it builds from the
    rest (adapters, plugins) and report every one at once.

    Raises:
        ConfigError: the file is missing or is not TOML (nothing else can be read).
    """
    env = dict(os.environ if environ is None else environ)
    file = _find_file(path, env)
    data = _read_toml(file) if file is not None else {}
    return _parse(data, env, file)


def parse_config(
    data: Mapping[str, Any], *, environ: Mapping[str, str], path: Path | None = None
) -> Config:
    """Build a ``Config`` from an already parsed TOML document.

    Raises:
        ConfigError: every fault at once (``ConfigErrors`` when there are several).
    """
    config, errors = _parse(data, environ, path)
    if errors:
        raise ConfigError.together(errors)
    return config


def _parse(
    data: Mapping[str, Any], environ: Mapping[str, str], path: Path | None
) -> tuple[Config, tuple[ConfigError, ...]]:
    errors: list[ConfigError] = []
    unknown = set(data) - set(_SECTIONS) - {"adapters", "plugins"}
    known = ", ".join(sorted([*_SECTIONS, "adapters", "plugins"]))
    errors += [ConfigError(name, f"unknown section (known: {known})") for name in sorted(unknown)]
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        try:
            table = dict(_table(data, name))
            for variable, (section, key) in _ENV_OVERRIDES.items():
                if section == name and environ.get(variable):
                    table[key] = environ[variable]
            sections[name] = parse_settings(cls, table, prefix=name, environ=environ)
        except ConfigError as exc:
            errors.append(exc)
            sections[name] = cls()
    errors += _check(sections)
    adapters = _components(data, "adapters", DEFAULT_ADAPTERS, errors)
    plugins = _components(data, "plugins", DEFAULT_PLUGINS, errors)
    config = Config(
        **sections,
        adapters=adapters,
        plugins=plugins,
        environ=environ,
        path=path,
    )
    return config, tuple(one for error in errors for one in error.errors)


def _find_file(path: str | Path | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        return Path(path)
    if env.get("BOTKIT_CONFIG"):
        return Path(env["BOTKIT_CONFIG"])
    default = Path("botkit.toml")
    return default if default.is_file() else None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("", f"config file {file} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{file} is not valid TOML: {exc}") from None


def _backend(url: str) -> str | None:
    """The database's kind in ``url`` (``"sqlite"``, ``"postgresql"``), or ``None``."""
    try:
        return make_url(url).get_backend_name()
    except ArgumentError:
        return None


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(key, "must be a table")
    return value


def _check(sections: Mapping[str, Any]) -> Iterator[ConfigError]:
    bot: BotSection = sections["bot"]
    llm: LLMSection = sections["llm"]
    web: WebSection = sections["web"]
    database: DatabaseSection = sections["database"]
    backend = _backend(database.url)
    if backend not in ("sqlite", "postgresql", "postgres"):
        yield ConfigError(
            "database.url",
            ("is not a database URL; " if backend is None else f"{backend}: ")
            + "botkit runs on SQLite (sqlite:///botkit.db) or PostgreSQL "
            "(postgresql://user@host/db)",
        )
    if bot.max_in_flight < 1:
        yield ConfigError("bot.max_in_flight", "must be at least 1")
    if bot.claim_lease < 1:
        yield ConfigError("bot.claim_lease", "must be at least 1 second")
    if bot.outage_horizon < 0:
        yield ConfigError("bot.outage_horizon", "must not be negative")
    if bot.outage_retry <= 0:
        yield ConfigError("bot.outage_retry", "must be more than 0 seconds")
    if bot.singleton_lease is not None and bot.singleton_lease < 1:
        yield ConfigError("bot.singleton_lease", "must be at least 1 second")
    if bot.history_limit < 1:
        yield ConfigError("bot.history_limit", "must be at least 1")
    for key, value in (
        ("llm.timeout", llm.timeout),
        ("llm.stream_idle_timeout", llm.stream_idle_timeout),
    ):
        if value <= 0:
            yield ConfigError(key, "must be a positive number of seconds")
    if llm.max_retries < 0:
        yield ConfigError("llm.max_retries", "must not be negative")
    if llm.reserve_output_tokens < 1:
        yield ConfigError("llm.reserve_output_tokens", "must be at least 1")
    if llm.base_url is not None and not llm.base_url.startswith(("http://", "https://")):
        yield ConfigError(
            "llm.base_url", f"must start with http:// or https://, not {llm.base_url!r}"
        )
    if not 0 <= web.port <= 65535:
        yield ConfigError("web.port", "must be a port number (0-65535)")
    if web.max_body_size < 1024:
        yield ConfigError("web.max_body_size", "must be at least 1024 bytes")
    if web.admin_token is not None and len(web.admin_token.reveal()) < MIN_ADMIN_TOKEN:
        where = web.admin_token.source or "the admin token"
        yield ConfigError(
            "web.admin_token",
            f"{where} must be at least {MIN_ADMIN_TOKEN} characters (make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )


def _components(
    data: Mapping[str, Any], section: str, defaults: tuple[str, ...], errors: list[ConfigError]
) -> tuple[ComponentSection, ...]:
    """The enabled ``[section.NAME]`` tables; their faults are added to ``errors``."""
    if section not in data:
        return tuple(ComponentSection(n, None, True, {}, f"{section}.{n}") for n in defaults)
    if not isinstance(data[section], dict):
        errors.append(ConfigError(section, "must be a table"))
        return ()
    result = []
    for name, table in data[section].items():
        key = f"{section}.{name}"
        if not isinstance(table, dict):
            errors.append(ConfigError(key, "must be a table"))
            continue
        settings = dict(table)
        use = settings.pop("use", None)
        enabled = settings.pop("enabled", True)
        if use is not None and (not isinstance(use, str) or ":" not in use):
            errors.append(
                ConfigError(f"{key}.use", 'must be an import path like "package.module:Name"')
            )
            continue
        if not isinstance(enabled, bool):
            errors.append(ConfigError(f"{key}.enabled", "must be true or false"))
            continue
        result.append(ComponentSection(name, use, enabled, settings, key))
    return tuple(c for c in result if c.enabled)
