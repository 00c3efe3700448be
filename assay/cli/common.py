"""Helpers every command module uses: settings, the client, output, JSON arguments, completion."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from assay.cli.options import FLAGS
from assay.errors import UsageError
from assay.protocol import OverlapPolicy, WorkflowStatus

if TYPE_CHECKING:
    from assay.cli.settings import CliSettings
    from assay.output import Column, Console
    from assay.sdk import Client

STATUSES: tuple[str, ...] = tuple(WorkflowStatus)
OVERLAP_POLICIES: tuple[str, ...] = tuple(OverlapPolicy)
COMPLETION_TIMEOUT = 0.5
_SETTINGS = "assay.settings"
_STDIN_USED = "assay.stdin_used"


def console() -> Console:
    from assay.output import Console

    return Console()


def settings(ctx: click.Context | None = None) -> CliSettings:
    """Resolve the global options once per invocation (flag > env > config > default)."""
    from assay.cli.settings import resolve_settings

    ctx = ctx or click.get_current_context()
    cached = ctx.meta.get(_SETTINGS)
    if cached is None:
        cached = resolve_settings(ctx.meta.get(FLAGS, {}), stdout_is_tty=console().out_is_tty)
        for w in cached.warnings:
            click.echo(f"Warning: {w}", err=True)
        ctx.meta[_SETTINGS] = cached
    return cached


def client(ctx: click.Context | None = None, timeout: float = 30.0) -> Client:
    from assay.sdk import Client

    s = settings(ctx)
    try:
        return Client(s.engine_url, s.api_key, s.namespace, timeout=timeout)
    except ValueError as e:
        from assay.cli.settings import ENV

        origin = {"flag": "--engine-url", "env": ENV["engine_url"]}.get(
            s.sources.get("engine_url", ""), "engine_url"
        )
        raise UsageError(f"{origin}: {e}") from None


def output_format(ctx: click.Context | None = None) -> str:
    return settings(ctx).output


def emit(data: Any, columns: Sequence[Column] | None = None, ctx: click.Context | None = None) -> None:
    from assay import output

    output.emit(data, output_format(ctx), columns)


def message(
    text: str, data: dict | None = None, *, record: Any = None, ctx: click.Context | None = None
) -> None:
    """Result of an action: the sentence on a table; otherwise the engine's `record` when it answered
    one, else `{"ok": true, "message": ..., **data}`."""
    fmt = output_format(ctx)
    if fmt == "table":
        click.echo(text)
        return
    from assay import output

    if record is not None:
        output.emit(record, fmt)
    else:
        output.emit({"ok": True, "message": text, **(data or {})}, fmt)


def read_json_arg(value: str | None, what: str, ctx: click.Context | None = None) -> Any:
    """Resolve JSON indirection: `-` reads stdin, `@PATH` reads a file, anything else is literal JSON.

    Unreadable files and invalid JSON are usage errors (exit 64).
    """
    if value is None:
        return None
    ctx = ctx or click.get_current_context()
    if value in ("-", "@-"):
        if ctx.meta.get(_STDIN_USED):
            raise UsageError(f"{what}: standard input was already read by another argument")
        ctx.meta[_STDIN_USED] = True
        text = sys.stdin.read()
        origin = "stdin"
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(
                f"{what}: cannot read {value[1:]}: {getattr(e, 'strerror', None) or e}"
            ) from None
        origin = value[1:]
    else:
        text, origin = value, None
    try:
        return json.loads(text)
    except ValueError as e:
        where = f" in {origin}" if origin else ""
        detail = (
            f"{e.msg} at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
        )
        raise UsageError(f"{what}: invalid JSON{where}: {detail}") from None


# -- dynamic shell completion ----------------------------------------------------------------------------
def _completion_client(ctx: click.Context) -> Client | None:
    try:
        from assay.cli.settings import resolve_settings
        from assay.sdk import Client

        s = resolve_settings(ctx.meta.get(FLAGS, {}))
        return Client(s.engine_url, s.api_key, s.namespace, timeout=COMPLETION_TIMEOUT)
    except Exception:  # noqa: BLE001 - completion must stay silent
        return None


def _items(values: list[tuple[str, str | None]], incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    seen: set[str] = set()
    out = []
    for value, help_text in values:
        if value.startswith(incomplete) and value not in seen:
            seen.add(value)
            out.append(CompletionItem(value, help=help_text))
    return out


def complete_workflow_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    c = _completion_client(ctx)
    if c is None:
        return []
    try:
        rows = c.list_workflows(limit=200, timeout=COMPLETION_TIMEOUT)
        return _items(
            [(r["id"], f"{r.get('workflow_type', '')} {r.get('status', '')}".strip()) for r in rows],
            incomplete,
        )
    except Exception:  # noqa: BLE001
        return []


def complete_schedule_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    c = _completion_client(ctx)
    if c is None:
        return []
    try:
        rows = c.list_schedules(timeout=COMPLETION_TIMEOUT)
        return _items(
            [(r["name"], f"{r.get('workflow_type', '')} {r.get('cron_expr', '')}".strip()) for r in rows],
            incomplete,
        )
    except Exception:  # noqa: BLE001
        return []


def complete_namespaces(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    c = _completion_client(ctx)
    if c is None:
        return []
    try:
        return _items([(r["name"], None) for r in c.list_namespaces(timeout=COMPLETION_TIMEOUT)], incomplete)
    except Exception:  # noqa: BLE001
        return []


class CaseFreeChoice(click.Choice):
    """A case-insensitive choice that completes (and shows) the values as spelled, e.g. RUNNING."""

    def __init__(self, choices: Sequence[str]) -> None:
        super().__init__(list(choices), case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:  # click lists the choices case-folded: name them as spelled
            self.fail(f"{value!r} is not one of {', '.join(map(str, self.choices))}.", param, ctx)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
        from click.shell_completion import CompletionItem

        return [CompletionItem(c) for c in self.choices if str(c).lower().startswith(incomplete.lower())]
