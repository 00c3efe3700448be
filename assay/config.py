"""Engine settings, declared once as data.

Each setting has a name, a default, an environment variable, a type and a help line. Precedence:
explicit value (CLI flag) > environment > default. `assay serve --help` and the README table are
generated from this list, so a setting cannot exist undocumented.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assay.errors import ConfigError


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    env: str | None
    help: str
    parse: Callable[[str], Any] = str


def default_db_path() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "assay", "assay.db")


SETTINGS: list[Setting] = [
    Setting("host", "127.0.0.1", "ASSAY_HOST", "Address to bind (use 0.0.0.0 explicitly to expose)."),
    Setting("port", 8080, "ASSAY_PORT", "TCP port to listen on.", int),
    Setting(
        "backend",
        None,
        "DATABASE_URL",
        "Database URL: sqlite:///path/to.db or postgres://... (default: a file in the user data dir).",
    ),
    Setting(
        "threads", 64, "ASSAY_THREADS", "HTTP worker threads (long-polls and SSE streams each hold one).", int
    ),
    Setting(
        "reserve_threads",
        8,
        "ASSAY_RESERVE_THREADS",
        "Threads kept free for ordinary calls; long-polls answer at once and SSE is refused past it.",
        int,
    ),
    Setting("max_body_bytes", 2 * 1024 * 1024, "ASSAY_MAX_BODY_BYTES", "Largest accepted request body.", int),
    Setting(
        "dispatch_timeout_secs",
        30.0,
        "ASSAY_WF_DISPATCH_TIMEOUT_SECS",
        "Workflow-task lease: a worker silent this long loses the task to another worker.",
        float,
    ),
    Setting(
        "worker_reap_secs",
        90.0,
        "ASSAY_WORKER_REAP_SECS",
        "Workers silent this long are removed from the registry.",
        float,
    ),
    Setting(
        "long_poll_max_secs", 60.0, "ASSAY_LONG_POLL_MAX_SECS", "Cap on a poll request's wait_secs.", float
    ),
    Setting(
        "sse_keepalive_secs",
        15.0,
        "ASSAY_SSE_KEEPALIVE_SECS",
        "Idle interval between SSE keep-alive comments.",
        float,
    ),
    Setting(
        "sse_max_streams",
        32,
        "ASSAY_SSE_MAX_STREAMS",
        "Most SSE streams held open at once (503 beyond).",
        int,
    ),
    Setting(
        "sqlite_synchronous",
        "FULL",
        "ASSAY_SQLITE_SYNCHRONOUS",
        "SQLite synchronous pragma: FULL (durable, default) or NORMAL (faster, may lose the last commits "
        "on power loss).",
        lambda s: s.strip().upper(),
    ),
    Setting(
        "loop_max_sleep_secs",
        5.0,
        "ASSAY_LOOP_MAX_SLEEP_SECS",
        "Longest a background loop sleeps before re-checking (they wake earlier when work is due).",
        float,
    ),
    Setting(
        "schedule_catchup_secs",
        60.0,
        "ASSAY_SCHEDULE_CATCHUP_SECS",
        "A schedule fire missed while the engine was down by less than this still fires once at start-up.",
        float,
    ),
    Setting(
        "auth_api_key", False, "ASSAY_AUTH_API_KEY", "Require API keys (Authorization: Bearer <key>).", _bool
    ),
    Setting("auth_issuer", None, "ASSAY_AUTH_ISSUER", "OIDC issuer URL: require JWTs signed by its JWKS."),
    Setting("auth_audience", None, "ASSAY_AUTH_AUDIENCE", "Required JWT audience (with the issuer)."),
    Setting(
        "archive_s3_bucket",
        None,
        "ASSAY_ARCHIVE_S3_BUCKET",
        "Archive finished workflows to this S3 bucket (needs the s3 extra); unset: no archival.",
    ),
    Setting("archive_s3_prefix", "assay/", "ASSAY_ARCHIVE_S3_PREFIX", "Key prefix for archived workflows."),
    Setting(
        "archive_retention_days",
        30.0,
        "ASSAY_ARCHIVE_RETENTION_DAYS",
        "Archive terminal workflows finished more than this many days ago.",
        float,
    ),
    Setting("archive_poll_secs", 3600.0, "ASSAY_ARCHIVE_POLL_SECS", "How often the archiver runs.", float),
    Setting("archive_batch_size", 50, "ASSAY_ARCHIVE_BATCH_SIZE", "Most workflows archived per run.", int),
    Setting(
        "retention_days",
        None,
        "ASSAY_RETENTION_DAYS",
        "Delete terminal workflows finished more than this many days ago (local retention, without S3; "
        "unset: keep forever).",
        float,
    ),
    Setting(
        "metrics",
        True,
        "ASSAY_METRICS",
        "Collect metrics: GET /metrics (Prometheus) and the dashboard charts. 0 turns every hook off.",
        _bool,
    ),
    Setting(
        "log_level",
        "info",
        "ASSAY_LOG_LEVEL",
        "Log level: debug, info, warning, error.",
        lambda s: s.strip().lower(),
    ),
]

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass
class Settings:
    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Settings:
        v = dict(self.values)
        v.update(changes)
        return Settings(v)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every setting: explicit override (not None) > environment > default."""
    env = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for s in SETTINGS:
        if overrides.get(s.name) is not None:
            values[s.name] = overrides[s.name]
            continue
        raw = env.get(s.env) if s.env else None
        if raw is not None and raw != "":
            try:
                values[s.name] = s.parse(raw)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"invalid value for {s.env}: {raw!r} ({e})") from None
        else:
            values[s.name] = s.default
    if values["backend"] is None:
        values["backend"] = "sqlite:///" + default_db_path()
    for extra, val in overrides.items():
        if extra not in values:
            values[extra] = val
    return Settings(values)


def settings_markdown() -> str:
    """The README's settings table, generated from SETTINGS (a test keeps the README in sync)."""
    rows = ["| Environment variable | Default | Meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "(unset)" if s.default is None else f"`{s.default}`"
        if s.name == "backend":
            default = "`sqlite:///$XDG_DATA_HOME/assay/assay.db`"
        rows.append(f"| `{s.env}` | {default} | {s.help} |")
    return "\n".join(rows)


if __name__ == "__main__":  # python -m assay.config  -> the settings table
    print(settings_markdown())
