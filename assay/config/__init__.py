"""Every setting of every component, declared once as data.

Each component (scope) has one frozen dataclass whose fields ARE the declarations: the field's name and
annotation give the name and type, `setting(...)` gives the default, the environment variable, the
help line and, where there is one, the command-line flag. `SETTINGS` is the table built from them, in
declaration order; everything else derives from it:

* typed objects: `load_settings()` -> `Settings` (server), `load_scope(ClientSettings)` (CLI), ...
  (values are parsed to the declared type once, so use sites never cast);
* the README's settings table (`python -m assay.config`) and the global-options table of docs/cli.md
  (both freshness-tested), and the help text of options that set them (`option_help`);
* the CLI's env/config lookups, the dashboard's whitelabel variables, the Lua worker's defaults, the
  zipapp's cache switches.

Precedence, wherever a component has these sources: flag > environment > config file (CLI) > default.
An empty environment variable counts as unset, except for the few dashboard texts whose help says that
the empty string is taken literally. A value that does not parse is a ConfigError naming the variable.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import Any, TypeVar

from assay.errors import ConfigError
from assay.protocol import DEFAULT_NAMESPACE

SERVER, CLIENT, WORKER, DASHBOARD, ZIPAPP = "server", "client", "worker", "dashboard", "zipapp"
SCOPES = (SERVER, CLIENT, WORKER, DASHBOARD, ZIPAPP)
SCOPE_TITLES = {
    SERVER: "engine (`assay serve`)",
    CLIENT: "CLI client",
    WORKER: "workers (Lua and Python, `assay run`)",
    DASHBOARD: "dashboard branding",
    ZIPAPP: "zipapp (`assay.pyz`)",
}
OUTPUT_CHOICES = ("table", "json", "jsonl", "yaml")  # assay.output.FORMATS is this tuple
OUTPUT_ALIASES = {"ndjson": "jsonl", "yml": "yaml"}
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in TRUE_WORDS:
        return True
    if t in FALSE_WORDS:
        return False
    raise ValueError(f"not a boolean (use one of {', '.join(TRUE_WORDS + FALSE_WORDS)})")


@dataclass(frozen=True)
class Setting:
    """One row of the table: everything a component, a help text or a doc needs about a setting."""

    name: str
    scope: str
    type: type  # int, float, str or bool
    optional: bool  # None is a valid value (unset)
    default: Any
    env: str | None
    help: str
    flag: str | None = None  # the command-line option that sets it, as shown in help ("-o, --output")
    choices: tuple[str, ...] | None = None
    aliases: Mapping[str, str] | None = None
    empty_is_value: bool = False  # "" in the environment is a value, not "unset"
    config_key: bool = False  # may be set in the CLI's config file
    shown_default: str | None = None  # the default as docs show it, when it is computed
    also: tuple[str, ...] = ()  # other scopes that read the same variable
    empty_doc: str | None = (
        None  # what "" means, when docs need more than "same as unset" / "taken literally"
    )

    def parse(self, raw: str) -> Any:
        """Text (environment, config file) -> a value of the declared type; ValueError if it is not one."""
        if self.type is bool:
            return parse_bool(raw)
        if self.type is int:
            return int(raw.strip())
        if self.type is float:
            value = float(raw.strip())
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("not a finite number")
            return value
        text = raw.strip() if self.choices else raw
        if self.choices:
            low = text.lower()
            low = (self.aliases or {}).get(low, low)
            for c in self.choices:
                if c.lower() == low:
                    return c
            raise ValueError(f"expected one of {', '.join(self.choices)}")
        return text

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "unset"
        if self.type is bool:
            return "on" if self.default else "off"
        return str(self.default) if self.default != "" else '""'

    def type_text(self) -> str:
        if self.choices:
            return " \\| ".join(self.choices)
        return {bool: "bool", int: "integer", float: "number", str: "text"}[self.type]

    @property
    def scopes(self) -> tuple[str, ...]:
        return (self.scope, *self.also)


def setting(
    default: Any,
    env: str | None,
    help: str,
    *,
    flag: str | None = None,
    choices: tuple[str, ...] | None = None,
    aliases: Mapping[str, str] | None = None,
    empty_is_value: bool = False,
    config_key: bool = False,
    shown_default: str | None = None,
    also: tuple[str, ...] = (),
    empty_doc: str | None = None,
) -> Any:
    """Declare one setting as a dataclass field (its annotation gives the type)."""
    meta = dict(
        env=env,
        help=help,
        flag=flag,
        choices=choices,
        aliases=aliases,
        empty_is_value=empty_is_value,
        config_key=config_key,
        shown_default=shown_default,
        also=also,
        empty_doc=empty_doc,
    )
    return field(default=default, metadata={"assay.setting": meta})


# -- the declarations ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """The engine's settings (`assay serve`)."""

    host: str = setting(
        "127.0.0.1", "ASSAY_HOST", "Address to bind (use 0.0.0.0 explicitly to expose).", flag="--host"
    )
    port: int = setting(8080, "ASSAY_PORT", "TCP port to listen on.", flag="--port")
    backend: str | None = setting(
        None,
        "DATABASE_URL",
        "Database URL: sqlite:///path/to.db or postgres://... (the variable keeps credentials out of argv). "
        "An existing database that is not an assay database is refused, never migrated over.",
        flag="--backend",
        shown_default="sqlite:///$XDG_DATA_HOME/assay/assay.db",
    )
    threads: int = setting(
        64,
        "ASSAY_THREADS",
        "HTTP worker threads at start (long-polls and SSE streams each hold one; the pool grows for held "
        "polls up to ASSAY_MAX_THREADS).",
        flag="--threads",
    )
    reserve_threads: int | None = setting(
        None,
        "ASSAY_RESERVE_THREADS",
        "Threads kept free for ordinary calls (/health, starts, results): held polls and SSE streams never "
        "take them.",
        shown_default="threads/8, at least 4",
    )
    max_threads: int | None = setting(
        None,
        "ASSAY_MAX_THREADS",
        "Most HTTP worker threads: the pool grows up to this while long-polls are held; past it a long-poll "
        "answers at once, empty, with retry_after.",
        shown_default="16 x threads, at least 1024",
    )
    inline_requests: bool | None = setting(
        None,
        "ASSAY_INLINE_REQUESTS",
        "Serve quick protocol requests (start, describe, commands, results, heartbeats, health) on the "
        "connection loop's thread, without a hand-off to a task thread and back. 0: every request goes to "
        "a task thread. Off by default on Postgres, where a request waits on the network.",
        shown_default="on with SQLite, off with Postgres",
    )
    max_body_bytes: int = setting(2 * 1024 * 1024, "ASSAY_MAX_BODY_BYTES", "Largest accepted request body.")
    dispatch_timeout_secs: float = setting(
        30.0,
        "ASSAY_WF_DISPATCH_TIMEOUT_SECS",
        "Workflow-task lease: a worker silent this long loses the task to another worker.",
    )
    worker_reap_secs: float = setting(
        90.0, "ASSAY_WORKER_REAP_SECS", "Workers silent this long are removed from the registry."
    )
    long_poll_max_secs: float = setting(
        60.0, "ASSAY_LONG_POLL_MAX_SECS", "Cap on a poll request's wait_secs."
    )
    sse_keepalive_secs: float = setting(
        15.0, "ASSAY_SSE_KEEPALIVE_SECS", "Idle interval between SSE keep-alive comments."
    )
    sse_max_streams: int = setting(
        32, "ASSAY_SSE_MAX_STREAMS", "Most SSE streams held open at once (503 beyond)."
    )
    sqlite_synchronous: str = setting(
        "FULL",
        "ASSAY_SQLITE_SYNCHRONOUS",
        "SQLite synchronous pragma: FULL (durable) or NORMAL (faster, may lose the last commits on power "
        "loss).",
        choices=("FULL", "NORMAL"),
    )
    loop_max_sleep_secs: float = setting(
        5.0,
        "ASSAY_LOOP_MAX_SLEEP_SECS",
        "Longest a background loop sleeps before re-checking (they wake earlier when work is due).",
    )
    schedule_catchup_secs: float = setting(
        60.0,
        "ASSAY_SCHEDULE_CATCHUP_SECS",
        "A schedule fire missed while the engine was down by less than this still fires once at start-up.",
    )
    auth_api_key: bool = setting(
        False,
        "ASSAY_AUTH_API_KEY",
        "Require API keys (Authorization: Bearer <key>).",
        flag="--auth-api-key",
    )
    auth_issuer: str | None = setting(
        None,
        "ASSAY_AUTH_ISSUER",
        "OIDC issuer URL: require JWTs signed by its JWKS (fetched and cached).",
        flag="--auth-issuer",
    )
    auth_audience: str | None = setting(
        None, "ASSAY_AUTH_AUDIENCE", "Required JWT audience (with the issuer).", flag="--auth-audience"
    )
    archive_s3_bucket: str | None = setting(
        None,
        "ASSAY_ARCHIVE_S3_BUCKET",
        "Archive finished workflows to this S3 bucket (needs the s3 extra); unset: no archival.",
    )
    archive_s3_prefix: str = setting(
        "assay/", "ASSAY_ARCHIVE_S3_PREFIX", "Key prefix for archived workflows."
    )
    archive_retention_days: float = setting(
        30.0,
        "ASSAY_ARCHIVE_RETENTION_DAYS",
        "Archive terminal workflows finished more than this many days ago.",
    )
    archive_poll_secs: float = setting(3600.0, "ASSAY_ARCHIVE_POLL_SECS", "How often the archiver runs.")
    archive_batch_size: int = setting(50, "ASSAY_ARCHIVE_BATCH_SIZE", "Most workflows archived per run.")
    retention_days: float | None = setting(
        None,
        "ASSAY_RETENTION_DAYS",
        "Delete terminal workflows finished more than this many days ago (local retention, without S3; "
        "unset: keep forever).",
    )
    metrics: bool = setting(
        True,
        "ASSAY_METRICS",
        "Collect metrics: GET /metrics (Prometheus) and the dashboard charts. 0 turns every hook off.",
    )
    log_level: str = setting(
        "info",
        "ASSAY_LOG_LEVEL",
        "Log level.",
        choices=("debug", "info", "warning", "error"),
        aliases={"warn": "warning"},
        also=(WORKER,),
    )

    def replace(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def reserve(self) -> int:
        """Threads never given to a held request: ASSAY_RESERVE_THREADS, or threads/8 (at least 4, and
        always leaving one thread a long-poll can take)."""
        if self.reserve_threads is not None:
            return max(0, self.reserve_threads)
        return max(0, min(max(4, self.threads // 8), self.threads - 1))

    @property
    def thread_ceiling(self) -> int:
        """The most threads the HTTP pool may grow to (never below `threads`)."""
        top = self.max_threads if self.max_threads is not None else max(1024, 16 * self.threads)
        return max(self.threads, top)

    @property
    def database(self) -> str:
        """The backend URL, with the default (a file in the user data dir) filled in."""
        return self.backend or "sqlite:///" + default_db_path()


@dataclass(frozen=True)
class ClientSettings:
    """The operator CLI's global options (and the Lua client's connection)."""

    engine_url: str = setting(
        "http://127.0.0.1:8080",
        "ASSAY_ENGINE_URL",
        "Engine base URL.",
        flag="--engine-url",
        config_key=True,
        also=(WORKER,),
    )
    api_key: str | None = setting(
        None,
        "ASSAY_API_KEY",
        "API key sent as a Bearer token.",
        flag="--api-key",
        config_key=True,
        also=(WORKER,),
    )
    api_key_file: str | None = setting(
        None,
        "ASSAY_API_KEY_FILE",
        "File holding the API key (whitespace trimmed); beats a key given at the same level.",
        config_key=True,
    )
    namespace: str = setting(
        DEFAULT_NAMESPACE, "ASSAY_NAMESPACE", "Namespace.", flag="-n, --namespace", config_key=True
    )
    output: str | None = setting(
        None,
        "ASSAY_OUTPUT",
        "Output format: " + ", ".join(OUTPUT_CHOICES) + ".",
        flag="-o, --output",
        choices=OUTPUT_CHOICES,
        aliases=OUTPUT_ALIASES,
        config_key=True,
        shown_default="table on a terminal, json when piped",
    )
    config: str | None = setting(
        None, "ASSAY_CONFIG_FILE", "Config file (YAML).", flag="--config", shown_default="discovered"
    )
    traceback: bool = setting(
        False, "ASSAY_TRACEBACK", "Show the Python traceback when a command fails.", flag="--traceback"
    )


@dataclass(frozen=True)
class WorkerSettings:
    """Defaults of `workflow.listen` in Lua and Python workers (an option given in the code wins)."""

    concurrency: int = setting(1, "ASSAY_WORKER_CONCURRENCY", "Tasks a worker runs at once.")
    poll_wait_secs: float = setting(
        50.0,
        "ASSAY_WORKER_POLL_WAIT_SECS",
        "Long-poll wait per poll request (capped at 60). An idle worker costs the engine one poll per wait.",
    )
    heartbeat_secs: float = setting(5.0, "ASSAY_WORKER_HEARTBEAT_SECS", "Interval of the worker's heartbeat.")
    idle_heartbeat_secs: float = setting(
        300.0,
        "ASSAY_WORKER_IDLE_HEARTBEAT_SECS",
        "Interval of the heartbeat of a worker that holds no work, on an engine that counts polls as heartbeats.",
    )
    max_backoff_secs: float = setting(
        10.0, "ASSAY_WORKER_MAX_BACKOFF_SECS", "Longest wait between retries while the engine is unreachable."
    )
    max_tasks: int = setting(
        4, "ASSAY_WORKER_MAX_TASKS", "Tasks claimed per poll when the engine offers batches (1-100)."
    )
    sticky_cache: int = setting(
        500,
        "ASSAY_WORKER_STICKY_CACHE",
        "Workflows whose replay state a Lua or Python worker keeps between tasks (least recently used "
        "dropped first); 0 turns sticky workflows off.",
    )
    build_id: str | None = setting(
        None,
        "ASSAY_BUILD_ID",
        "Build id the worker registers with (at most 128 characters).",
        shown_default="first 12 hex digits of the sha256 of the worker file",
    )
    debug: bool = setting(
        False,
        "ASSAY_DEBUG",
        "`assay run`: on an error also print the Lua and Python tracebacks (ASSAY_TRACEBACK too).",
        flag="--traceback",
    )


@dataclass(frozen=True)
class DashboardSettings:
    """Dashboard branding, read once at start-up; every value is HTML-escaped into the page. The help is
    where a value shows; docs/dashboard.md's table is generated from these."""

    name: str = setting(
        "Assay",
        "ASSAY_WHITELABEL_NAME",
        "sidebar brand text (and the logo's `alt`)",
        empty_is_value=True,
        empty_doc="empty name",
    )
    mark: str = setting(
        "",
        "ASSAY_WHITELABEL_MARK",
        "glyph in the brand badge",
        shown_default="first letter of NAME, upper-cased (`A` if NAME is empty)",
        empty_doc="same as unset",
    )
    subtitle: str = setting(
        "", "ASSAY_WHITELABEL_SUBTITLE", "small line under the name", shown_default="no subtitle"
    )
    logo_url: str = setting(
        "", "ASSAY_WHITELABEL_LOGO_URL", "image shown before the badge", shown_default="no image"
    )
    page_title: str = setting(
        "Assay Workflow Dashboard",
        "ASSAY_WHITELABEL_PAGE_TITLE",
        "browser tab title",
        empty_is_value=True,
        empty_doc="empty title",
    )
    parent_url: str = setting(
        "", "ASSAY_WHITELABEL_PARENT_URL", "back link in the sidebar footer", shown_default="no back link"
    )
    parent_name: str = setting(
        "Back",
        "ASSAY_WHITELABEL_PARENT_NAME",
        "label of that back link",
        empty_is_value=True,
        empty_doc="empty label",
    )
    api_docs_url: str = setting(
        "/api/v1/engine/workflow/docs",
        "ASSAY_WHITELABEL_API_DOCS_URL",
        '"API Docs" link target',
        empty_is_value=True,
        empty_doc="**link hidden**",
    )
    css_url: str = setting(
        "",
        "ASSAY_WHITELABEL_CSS_URL",
        "extra stylesheet, loaded last in `<head>` with `?v=<start time>` (or `&v=`)",
        shown_default="none",
    )
    favicon_url: str = setting(
        "", "ASSAY_WHITELABEL_FAVICON_URL", "browser tab icon", shown_default="built-in SVG"
    )
    default_namespace: str = setting(
        DEFAULT_NAMESPACE, "ASSAY_WHITELABEL_DEFAULT_NAMESPACE", "namespace the dashboard opens on"
    )


@dataclass(frozen=True)
class ZipappSettings:
    """The one-file build's cache of extracted native code and bytecode (docs/zipapp.md)."""

    cache: str | None = setting(
        None,
        "ASSAY_CACHE",
        "Cache directory for extracted native modules and bytecode.",
        shown_default="$XDG_CACHE_HOME/assay",
    )
    bytecode_cache: bool = setting(
        True, "ASSAY_BYTECODE_CACHE", "Cache compiled bytecode (off: compile in memory)."
    )


SCOPE_CLASSES: dict[str, type] = {
    SERVER: Settings,
    CLIENT: ClientSettings,
    WORKER: WorkerSettings,
    DASHBOARD: DashboardSettings,
    ZIPAPP: ZipappSettings,
}
S = TypeVar("S")


def _rows(scope: str, cls: type) -> list[Setting]:
    hints = typing.get_type_hints(cls)
    rows = []
    for f in fields(cls):
        meta = f.metadata["assay.setting"]
        hint = hints[f.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if args else hint
        rows.append(
            Setting(name=f.name, scope=scope, type=base, optional=optional, default=f.default, **meta)
        )
    return rows


SETTINGS: tuple[Setting, ...] = tuple(r for scope, cls in SCOPE_CLASSES.items() for r in _rows(scope, cls))
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS if s.scope == SERVER}  # the server's, by field name


@cache
def declared(cls: type) -> dict[str, Setting]:
    """A scope class's rows by field name (a subclass of a scope class has its rows)."""
    scope = next(k for base in cls.__mro__ for k, v in SCOPE_CLASSES.items() if v is base)
    return {s.name: s for s in SETTINGS if s.scope == scope}


def env_text(s: Setting, environ: Mapping[str, str]) -> str | None:
    """The variable's raw text, or None when it is unset (or empty, unless empty is a value)."""
    if s.env is None:
        return None
    raw = environ.get(s.env)
    if raw is None or (raw == "" and not s.empty_is_value):
        return None
    return raw


def from_env(s: Setting, environ: Mapping[str, str] | None = None, *, strict: bool = True) -> Any:
    """One setting from the environment (else its default). Not strict: a bad value gives the default."""
    raw = env_text(s, os.environ if environ is None else environ)
    if raw is None:
        return s.default
    try:
        return s.parse(raw)
    except ValueError as e:
        if not strict:
            return s.default
        raise ConfigError(f"invalid value for {s.env}: {raw!r} ({e})") from None


def load_scope(
    cls: type[S], overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> S:
    """A scope's typed settings: explicit override (not None) > environment > default."""
    env = os.environ if environ is None else environ
    overrides = overrides or {}
    rows = declared(typing.cast(type, cls))
    unknown = set(overrides) - set(rows)
    if unknown:
        raise TypeError(f"unknown setting(s) for {cls.__name__}: {', '.join(sorted(unknown))}")
    values = {}
    for name, s in rows.items():
        given = overrides.get(name)
        values[name] = given if given is not None else from_env(s, env)
    return cls(**values)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """The engine's settings (flags of `assay serve` as overrides)."""
    s = load_scope(Settings, overrides, environ)
    if s.backend is None:
        s = s.replace(backend=s.database)
    return s


def default_db_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "assay", "assay.db")


# -- derived text ----------------------------------------------------------------------------------------
def option_help(
    cls: type, name: str, lead: str | None = None, *, env: bool = True, default: bool = True
) -> str:
    """An option's help from its declaration: "<help> [env VAR; default X]"."""
    s = declared(cls)[name]
    notes = []
    if env and s.env:
        notes.append(f"env {s.env}")
    if default and not (s.type is bool and s.default is False) and s.default_text() != "unset":
        notes.append(f"default {s.default_text()}")
    text = lead if lead is not None else s.help
    return text + (f" [{'; '.join(notes)}]" if notes else "")
