"""``Bot``: builds everything from the config, starts it in order and stops it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import text

from botkit._routes import route_problems
from botkit._settings import parse_settings
from botkit.adapter import Adapter, CommandInfo
from botkit.claims import Claims
from botkit.clock import Clock, SystemClock
from botkit.config import Config
from botkit.context import PluginRuntime
from botkit.discovery import load_adapter_class, load_plugin
from botkit.dispatch import Dispatcher
from botkit.exceptions import ConfigError, PluginError, StoreError
from botkit.gctuning import CollectorSettings, restore_gc, tune_gc
from botkit.history_cache import ReadAhead
from botkit.inbox import Inbox
from botkit.jobs import Jobs
from botkit.leases import Singletons
from botkit.llm import ChatModel, ModelTable, OpenAIChatClient, StandInModel, TokenCounter
from botkit.llm.models import ModelInfo, unknown_model_note
from botkit.metrics import Metrics
from botkit.outbox import Outbox, OutboxPolicy
from botkit.plugin import ModelGuardEntry, Plugin, PromptContextEntry
from botkit.preflight import auto_migrates, safe_url
from botkit.routing import Pipeline
from botkit.runtime import ChatSettings, Runtime
from botkit.scheduler import Scheduler
from botkit.store import Database, Store, is_sqlite
from botkit.store.models import utcnow
from botkit.tools import tool_choice_problems
from botkit.web import WebServer

__all__ = [
    "STAND_IN_NOTICE",
    "Bot",
    "build_adapters",
    "build_components",
    "build_model",
    "build_plugins",
]

log = logging.getLogger(__name__)
PRUNE_STATE_EVERY = 600.0  # seconds between prunes of expired state keys

STAND_IN_NOTICE = (
    "No model is configured (set OPENAI_API_KEY, or llm.base_url for a local server): "
    "answers come from botkit's built-in stand-in, which is not a real model."
)
MAX_POOL = 10  # PostgreSQL connections a bot keeps open, at most
DEFAULT_API = "https://api.openai.com/v1"


# where the model client's learnt facts are kept between starts
LLM_STATE = "botkit.llm"
STRUCTURED_MODES = "structured_output"


def build_model(config: Config) -> ChatModel:
    """The configured model client, or the offline stand-in when none is configured."""
    models = ModelTable.from_config(config.llm.models)
    if config.llm.stand_in:
        return StandInModel()
    llm = config.llm
    return OpenAIChatClient(
        llm.base_url or DEFAULT_API,
        llm.api_key,
        llm.model,
        models=models,
        timeout=llm.timeout,
        stream_idle_timeout=llm.stream_idle_timeout,
        max_retries=llm.max_retries,
        organization=llm.organization,
        connections=max(config.bot.max_in_flight, 10),
    )


def build_adapters(config: Config) -> dict[str, Adapter]:
    """Every enabled adapter, with its settings parsed (secrets from the environment).

    Raises:
        ConfigError: every adapter's faults at once.
        PluginError: an adapter that cannot be loaded.
    """
    adapters: dict[str, Adapter] = {}
    errors: list[ConfigError] = []
    for section in config.adapters:
        cls = load_adapter_class(section.name, section.use)
        if cls.settings_class is None:
            if section.settings:
                raise PluginError(f"adapter {section.name!r} takes no settings ({section.key})")
            adapters[section.name] = cls(section.name)
            continue
        try:  # an adapter checks what its settings' types cannot when it is made
            settings = parse_settings(
                cls.settings_class, section.settings, prefix=section.key, environ=config.environ
            )
            adapters[section.name] = cls(section.name, settings)  # type: ignore[call-arg]
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigError.together(errors)
    return adapters


def build_plugins(config: Config) -> tuple[list[Plugin], dict[str, Any]]:
    """Every enabled plugin and its parsed settings, checked for duplicates.

    Raises:
        ConfigError: every plugin's faults at once.
        PluginError: a plugin that cannot be loaded, or is enabled twice.
    """
    errors: list[ConfigError] = []
    plugins, settings = _build_plugins(config, errors)
    if errors:
        raise ConfigError.together(errors)
    return plugins, settings


def _build_plugins(
    config: Config, errors: list[ConfigError]
) -> tuple[list[Plugin], dict[str, Any]]:
    """:func:`build_plugins`, adding the faults to ``errors``: the settings returned are
    those that parsed."""
    plugins: list[Plugin] = []
    settings: dict[str, Any] = {}
    model = _configured_model(config)
    for section in config.plugins:
        plugin = load_plugin(section.name, section.use)
        if any(p.name == plugin.name for p in plugins):
            raise PluginError(f"plugin {plugin.name!r} is enabled twice ({section.key})")
        if plugin.settings_class is not None:
            try:
                settings[plugin.name] = parse_settings(
                    plugin.settings_class,
                    section.settings,
                    prefix=section.key,
                    environ=config.environ,
                )
            except ConfigError as exc:
                errors.append(exc)
            else:
                for check in plugin.model_checks:
                    if model is not None:
                        errors.extend(check(settings[plugin.name], section.key, model))
        elif section.settings:
            raise PluginError(f"plugin {section.name!r} takes no settings ({section.key})")
        plugins.append(plugin)
    return plugins, settings


def _configured_model(config: Config) -> ModelInfo | None:
    """What the model table says of the configured model (``None`` with the stand-in,
    or when the table itself is at fault: that is reported on its own)."""
    if config.llm.stand_in:
        return None
    try:
        return ModelTable.from_config(config.llm.models).lookup(config.llm.model)
    except ConfigError:
        return None


def build_components(config: Config) -> tuple[dict[str, Adapter], list[Plugin], dict[str, Any]]:
    """The adapters, the plugins and their settings (as :func:`build_adapters` and
    :func:`build_plugins`), with the model table and every route checked too: all the
    faults at once, before anything is created.

    Raises:
        ConfigError: every fault found (``ConfigErrors`` when there are several).
        PluginError: an adapter or plugin that cannot be loaded.
    """
    errors: list[ConfigError] = []
    adapters: dict[str, Adapter] = {}
    try:
        adapters = build_adapters(config)
    except ConfigError as exc:
        errors.append(exc)
    plugins, settings = _build_plugins(config, errors)
    try:
        ModelTable.from_config(config.llm.models)
    except ConfigError as exc:
        errors.append(exc)
    errors += route_problems(settings, {section.name for section in config.adapters})
    errors += tool_choice_problems(plugins, settings)
    if errors:
        raise ConfigError.together(errors)
    return adapters, plugins, settings


class Bot:
    """A running bot: store, model, adapters, plugins, dispatcher, outbox, web server.

    Use it as ``async with Bot(config) as bot: ...`` or call :meth:`start` and
    :meth:`stop`. Adapters, plugins and the model can be passed in instead of built
    from the config (tests, embedding botkit in another program).

    Args:
        config: the loaded configuration.
        adapters: use these adapters (by channel name) instead of the configured ones.
        plugins: use these plugins instead of the configured ones.
        plugin_settings: settings objects for ``plugins``, by plugin name.
        model: use this model instead of the configured one.
        clock: the clock scheduled jobs are timed by (a test's, ``botkit.testing.FakeClock``);
            the system's by default.
    """

    def __init__(
        self,
        config: Config,
        *,
        adapters: Mapping[str, Adapter] | None = None,
        plugins: Sequence[Plugin] | None = None,
        plugin_settings: Mapping[str, Any] | None = None,
        model: ChatModel | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else SystemClock()
        if plugins is None:
            loaded, parsed = build_plugins(config)
        else:
            loaded, parsed = list(plugins), dict(plugin_settings or {})
            for plugin in loaded:  # a plugin given no settings gets its defaults
                if plugin.settings_class is not None and plugin.name not in parsed:
                    parsed[plugin.name] = parse_settings(
                        plugin.settings_class, {}, prefix=f"plugins.{plugin.name}", environ={}
                    )
        self.plugins = loaded
        self.pipeline = Pipeline(self.plugins)
        self.adapters = dict(adapters) if adapters is not None else build_adapters(config)
        # routes may name the configured channels and those handed in (`botkit chat`)
        channels = {*self.adapters, *(section.name for section in config.adapters)}
        routes = list(route_problems(parsed, channels))
        if routes:
            raise ConfigError.together(routes)
        self.model = model if model is not None else build_model(config)
        self.metrics = Metrics()
        db = config.database
        self.database = Database(
            db.url,
            busy_timeout=db.busy_timeout,
            synchronous=db.synchronous,
            # kept open: a pool that a burst overflows opens and closes a PostgreSQL
            # backend per message; at most 10 (15 for a moment), as several processes
            # share the server's connections (100 by default)
            connections=min(config.bot.max_in_flight + 2, MAX_POOL),
            # frozen mid-transaction, this process's row locks lapse with its claims
            # (give or take the floor), not when it wakes
            idle_transaction_timeout=max(config.bot.claim_lease, 5.0),
        )
        self.store = Store(self.database)
        bot = config.bot
        self.claims = Claims(bot.claim_lease)
        self.outbox = Outbox(
            self.store,
            self.adapters,
            self.metrics,
            OutboxPolicy(**{f: getattr(config.outbox, f) for f in config.outbox.__slots__}),
            claims=self.claims,
        )
        self.runtime = Runtime(
            store=self.store,
            model=self.model,
            tokens=TokenCounter(self.model.model_info().encoding),
            outbox=self.outbox,
            adapters=self.adapters,
            metrics=self.metrics,
            chat=ChatSettings(
                system_prompt=bot.system_prompt,
                reserve_output_tokens=config.llm.reserve_output_tokens,
                temperature=config.llm.temperature,
                history_limit=bot.history_limit,
                summarize=bot.summarize,
                stream=bot.stream,
                burst=bot.burst,
            ),
            plugin_settings=parsed,
            commands=self.pipeline.command_list(),
            claims=self.claims,
            shared=not is_sqlite(self.database.url),
            clock=self.clock,
        )
        handlers = [handler for p in self.plugins for handler in p.job_handlers]
        self.runtime.jobs = Jobs(self.store, self.clock, [(h.plugin, h.name) for h in handlers])
        self.runtime.model_guards = [
            ModelGuardEntry(p.name, g, PluginRuntime(self.runtime, p.name))
            for p in self.plugins
            for g in p.model_guards
        ]
        self.runtime.prompt_contexts = [
            PromptContextEntry(p.name, f) for p in self.plugins for f in p.prompt_contexts
        ]
        self.dispatcher = Dispatcher(
            self.runtime,
            self.pipeline,
            max_in_flight=bot.max_in_flight,
            burst=bot.burst,
            outage_horizon=bot.outage_horizon,
            outage_retry=bot.outage_retry,
            delay_notice=bot.delay_notice,
        )
        self.runtime.submit = self.dispatcher.submit
        self.singletons = Singletons(
            self.store.leases,
            holder=self.runtime.owner,
            lease=bot.singleton_lease if bot.singleton_lease is not None else bot.claim_lease,
            on_takeover=lambda _name: self.metrics.takeovers.labels("singleton").inc(),
        )
        self.inbox = Inbox(
            self.store,
            self.dispatcher.submit,
            self.dispatcher.wait_done,
            self.metrics,
            claim=self.runtime.claim,
            singletons=self.singletons,
            # SQLite: an answer's new turns are read as its message is accepted (ids
            # follow commit order there, which the read relies on; see HistoryCache.plan)
            read_ahead=(
                ReadAhead(self.runtime.history, self.runtime.chat.history_limit)
                if self.database.sqlite
                else None
            ),
        )
        self.scheduler = Scheduler(
            self.runtime,
            [job for p in self.plugins for job in p.jobs],
            self.singletons,
            handlers=handlers,
            clock=self.clock,
        )
        self.web: WebServer | None = None
        self._started: list[str] = []
        self._stop_requested = asyncio.Event()
        self._ready = False  # every adapter started, and not stopping
        self._draining = False
        self._signals: set[signal.Signals] = set()
        self._maintenance: asyncio.Task[None] | None = None
        self._pruned_at: float | None = None  # monotonic time of the last state prune
        self._collector: CollectorSettings | None = None  # what tune_gc changed

    @property
    def uses_stand_in(self) -> bool:
        """Whether answers come from the offline stand-in rather than a real model."""
        return isinstance(self.model, StandInModel)

    async def start(self) -> None:
        """Migrate (SQLite), resume unfinished work, start plugins, the web server, adapters."""
        if self.uses_stand_in:
            log.warning(STAND_IN_NOTICE)
        elif isinstance(self.model, OpenAIChatClient):  # a model given in code knows itself
            table = ModelTable.from_config(self.config.llm.models)
            note = unknown_model_note(self.model.model_info(), table)
            if note is not None:  # one line: what is assumed, and what to set
                log.warning(note)
        if auto_migrates(self.config.database):
            await self.database.upgrade()
        else:  # one line with what to do, not a missing table's traceback later
            current, head = await self.database.revisions()
            if current != head:
                found = f"is at {current}" if current else "has no botkit schema"
                raise StoreError(
                    f"database {safe_url(self.database.url)} {found}, this botkit needs "
                    f"{head}: run `botkit db upgrade`"
                )
        self._started.append("database")
        if isinstance(self.model, OpenAIChatClient):
            await self._remember_structured_modes(self.model)
        for plugin in self.plugins:
            for hook in plugin.startup_hooks:
                await hook(PluginRuntime(self.runtime, plugin.name))
        self._started.append("plugins")
        routes = [route for adapter in self.adapters.values() for route in adapter.web_routes()]
        if self.config.web.enabled or routes:
            # listening before the adapters start: /healthz answers during a long start-up,
            # and a webhook's early requests wait for their adapter (WebhookGate)
            self.web = WebServer(
                self.config.web.host,
                self.config.web.port,
                self.metrics,
                self._readiness,
                max_body_size=self.config.web.max_body_size,
            )
            self.web.add_routes(routes)
            admin_token = self.config.web.admin_token
            if admin_token is not None:
                # imported here: a bot without the operations page never loads it
                from botkit.admin import admin_app

                self.web.mount("/admin", admin_app(self.runtime, admin_token))
            await self.web.start()
            if admin_token is not None:
                log.info(
                    "operations page: http://%s:%d/admin", self.config.web.host, self.web.port
                )
        elif self.config.web.admin_token is not None:
            log.warning(
                "%s is set but [web] is not enabled: the operations page is not served",
                self.config.web.admin_token.source or "the admin token",
            )
        # the tokenizer is not loaded here: most prompts fit by their byte bound, and
        # its tables (130 MiB for o200k_base) are loaded only when a prompt must be counted
        # this process holds no claim yet: whatever it claims from now on is live for at
        # least a lease from now (in the database's time, learnt first)
        await self._read_clock()
        sent = time.monotonic()
        self.claims.renewal()
        self.claims.renewal_sent(sent)
        await self.outbox.resume()
        await self.dispatcher.resume()
        self._maintenance = asyncio.create_task(self._maintain(), name="botkit-claims")
        self.scheduler.start()
        commands = [CommandInfo(c.name, c.description) for c in self.runtime.commands]
        for adapter in self.adapters.values():
            await adapter.start(self.inbox)
            self._started.append(f"adapter:{adapter.name}")
            try:
                await adapter.publish_commands(commands)
            except Exception as exc:  # a command menu is a nicety, never fatal
                log.warning("adapter %s could not publish commands: %s", adapter.name, exc)
        self._ready = not self._draining
        log.info("bot ready: %s", ", ".join(self.adapters) or "no adapters")

    async def stop(self) -> None:
        """Stop intake, let work in flight finish (up to ``bot.shutdown_grace`` s), close.

        In this order: ``/readyz`` turns 503; every adapter stops taking events
        (:meth:`Adapter.stop_intake`: pollers and sockets stop, webhooks answer 503);
        the inbox refuses anything else; work in flight finishes and its replies are
        sent; claims are released; only then are the adapters' connections closed.
        Work that does not finish in time stays stored and is resumed on the next start.
        """
        self._ready = False
        self._draining = True
        started = [a for a in self.adapters.values() if f"adapter:{a.name}" in self._started]
        for adapter in started:
            try:
                await adapter.stop_intake()
            except Exception:
                log.exception("adapter %s failed to stop taking events", adapter.name)
        self.inbox.close()
        log.info(
            "intake stopped; finishing work in flight (up to %gs)", self.config.bot.shutdown_grace
        )
        await self.dispatcher.stop(self.config.bot.shutdown_grace)
        await self.scheduler.stop()
        await self.outbox.close()
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        if "database" in self._started:
            try:
                await self.store.claims.release_all(self.runtime.owner)
            except Exception:
                log.exception("could not release claims; they lapse in %.0fs", self.runtime.lease)
        for adapter in started:  # after the drain: replies in flight needed their connections
            try:
                await adapter.stop()
            except Exception:
                log.exception("adapter %s failed to stop", adapter.name)
        if "plugins" in self._started:
            for plugin in self.plugins:
                for hook in plugin.shutdown_hooks:
                    try:
                        await hook(PluginRuntime(self.runtime, plugin.name))
                    except Exception:
                        log.exception("plugin %s failed to shut down", plugin.name)
        if self.web is not None:
            await self.web.stop()
        await self.model.close()
        await self.database.close()
        self._started.clear()
        self._draining = False
        self._stop_requested.clear()  # a stopped bot may be started again
        loop = asyncio.get_running_loop()
        for sig in self._signals:  # only now: a second signal must not kill the stop
            loop.remove_signal_handler(sig)
        self._signals.clear()
        if self._collector is not None:  # thawed, so this bot can be freed once dropped
            restore_gc(self._collector)
            self._collector = None

    def request_stop(self) -> None:
        """Ask :meth:`run_until_stopped` to return (from a signal handler)."""
        self._stop_requested.set()

    def handle_signals(self) -> None:
        """Make SIGTERM and SIGINT request a clean stop (call before :meth:`start`, so a
        signal during start-up is clean too); a second one ends the process at once.

        Ending at once loses nothing: whatever the bot acknowledged to a channel is
        committed in the database, and the next start (of this or another process)
        answers what was left unfinished.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._signals.add(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stop_requested.is_set():
            log.info("%s: stopping (send it again to exit at once)", sig.name)
            self.request_stop()
            return
        log.warning("%s again: exiting at once; unfinished work resumes next start", sig.name)
        logging.shutdown()  # flush the handlers: os._exit skips every cleanup
        os._exit(128 + sig.value)

    def tune_collector(self) -> None:
        """Tune the process's garbage collector for this bot, once start-up is done (see
        :func:`botkit.gctuning.tune_gc`), unless ``bot.tune_gc = false``; :meth:`stop`
        puts it back. Calling it again changes nothing."""
        if self.config.bot.tune_gc and self._collector is None:
            self._collector = tune_gc()

    async def run_until_stopped(self) -> None:
        """Run until SIGTERM/SIGINT, or until every adapter's input has ended.

        This is the process's main loop, so it also tunes the process's garbage
        collector (:meth:`tune_collector`).
        """
        self.handle_signals()
        self.tune_collector()
        finished: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*(a.finished() for a in self.adapters.values()))
        )
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait([finished, stop], return_when=asyncio.FIRST_COMPLETED)
            if finished.done():
                await self.dispatcher.idle()
        finally:
            finished.cancel()
            stop.cancel()
            await asyncio.gather(finished, stop, return_exceptions=True)

    async def _maintain(self) -> None:
        """Keep this process's claims alive, and take over work whose process died (or
        that this process left behind: a stream cut off by a lost database)."""
        while True:
            await asyncio.sleep(self.runtime.lease / 3)
            try:
                sent = time.monotonic()
                held = await self.store.claims.renew(self.claims.renewal())
                self.metrics.claims_held.set(held)
                self.claims.renewal_sent(sent)
                await self._read_clock()
                await self.outbox.resume()  # streams first: their messages are answered anew
                await self.dispatcher.resume()
                await self._prune_state()
            except StoreError as exc:  # the database is away: one line, and try again
                log.warning("renewing claims failed (%s); retrying", exc)
            except Exception:  # a bug must not end the loop
                log.exception("renewing claims failed; retrying")

    async def _prune_state(self) -> None:
        """Delete expired state keys (adapters' per-delivery bookkeeping, say) every
        ``PRUNE_STATE_EVERY`` seconds; until then they are invisible, not gone."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_STATE_EVERY:
            return
        self._pruned_at = now
        pruned = await self.store.prune_state()
        if pruned:
            log.debug("%d expired state keys pruned", pruned)

    async def _remember_structured_modes(self, model: OpenAIChatClient) -> None:
        """Structured-output modes learnt by earlier processes are used from the start,
        and each one learnt now is stored (the state table, namespace ``botkit.llm``)."""
        state = self.store.state(LLM_STATE)
        stored = await state.get(STRUCTURED_MODES, {})
        if isinstance(stored, dict):
            model.remember_modes(stored)

        async def store_mode(name: str, mode: str) -> None:
            with contextlib.suppress(StoreError):  # learnt for this process all the same
                await state.set(STRUCTURED_MODES, {**model.learnt_modes(), name: mode})

        model.on_learnt_mode = store_mode

    async def _read_clock(self) -> None:
        """Learn how far the database's clock is from this process's: claims are written
        in the database's time, since the other processes judge them by it."""
        before = utcnow()
        database_now = await self.store.claims.database_now()
        after = utcnow()
        self.claims.clock_read(database_now, before, after)

    async def _readiness(self) -> str | None:
        """Why the bot takes no work now (``/readyz``), or ``None`` when it does."""
        if self._draining or self._stop_requested.is_set():  # from the signal on
            return "draining"
        if not self._ready:
            return "starting"
        try:
            await self.database.read(lambda conn: conn.execute(text("SELECT 1")))
        except Exception:
            return "database unavailable"
        return None

    async def __aenter__(self) -> Bot:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
