"""Shared option plumbing: the global options every command accepts, wherever they appear.

`assay --output json workflow list` and `assay workflow list --output json` are the same: every
group and command built from AssayGroup / AssayCommand carries the global options. Their values
are collected (the last one given wins) into `ctx.meta[FLAGS]`, and `assay.cli.common.settings()`
resolves them against the environment, the config file and the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

FLAGS = "assay.flags"
GLOBAL_NAMES = ("engine_url", "api_key", "namespace", "output", "config", "traceback")


def _complete_namespaces(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    from assay.cli.common import complete_namespaces

    return complete_namespaces(ctx, param, incomplete)


def _global_options() -> list[click.Option]:
    from assay.config import ClientSettings, declared, option_help

    s = declared(ClientSettings)
    opts = [
        click.Option(
            ["--engine-url"], metavar="URL", default=None, help=option_help(ClientSettings, "engine_url")
        ),
        click.Option(
            ["--api-key"],
            metavar="KEY",
            default=None,
            help=f"{s['api_key'].help} [env {s['api_key'].env}, {s['api_key_file'].env}]",
        ),
        click.Option(
            ["-n", "--namespace"],
            metavar="NS",
            default=None,
            shell_complete=_complete_namespaces,
            help=option_help(ClientSettings, "namespace"),
        ),
        click.Option(
            ["-o", "--output"],
            default=None,
            metavar="FORMAT",
            type=click.Choice(list(s["output"].choices or ()), case_sensitive=False),
            help=option_help(ClientSettings, "output"),
        ),
        click.Option(["--config"], metavar="PATH", default=None, help=option_help(ClientSettings, "config")),
        click.Option(
            ["--traceback"], is_flag=True, default=False, help=option_help(ClientSettings, "traceback")
        ),
    ]
    for o in opts:
        o.is_global = True  # type: ignore[attr-defined]
    return opts


def is_global(param: click.Parameter) -> bool:
    return bool(getattr(param, "is_global", False))


class GlobalOptionsMixin:
    """Adds the global options to a click command and moves their values into ctx.meta."""

    params: list[click.Parameter]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        taken = {n for p in self.params for n in getattr(p, "opts", [])}
        for opt in _global_options():
            if not taken.intersection(opt.opts):
                self.params.append(opt)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)  # type: ignore[misc]
        flags = ctx.meta.setdefault(FLAGS, {})
        for name in GLOBAL_NAMES:
            if name in ctx.params:
                value = ctx.params.pop(name)
                if value not in (None, False):
                    flags[name] = value
        return rest

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        own, shared = [], []
        for p in self.get_params(ctx):  # type: ignore[attr-defined]
            if not isinstance(p, click.Option):  # arguments are in the usage line
                continue
            rec = p.get_help_record(ctx)
            if rec:
                (shared if is_global(p) else own).append(rec)
        if own:
            with formatter.section("Options"):
                formatter.write_dl(own)
        if isinstance(self, click.Group):
            self.format_commands(ctx, formatter)
        if shared:
            with formatter.section("Global options (accepted before or after the subcommand)"):
                formatter.write_dl(shared)


class AssayCommand(GlobalOptionsMixin, click.Command):
    pass


class AssayGroup(GlobalOptionsMixin, click.Group):
    command_class = AssayCommand
    group_class = type  # subgroups are AssayGroup too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", {})
        kwargs["context_settings"].setdefault("help_option_names", ["-h", "--help"])
        super().__init__(*args, **kwargs)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        """As click's, with "Did you mean" drawn from every command, also the lazily imported ones."""
        name = str(args[0]) if args else ""
        if (
            name
            and not name.startswith("-")
            and not ctx.resilient_parsing
            and self.get_command(ctx, name) is None
        ):
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx))
            msg = f"No such command {name!r}."
            if len(close) == 1:
                msg += f" Did you mean {close[0]!r}?"
            elif close:
                msg += " Did you mean one of: " + ", ".join(repr(c) for c in close) + "?"
            raise click.UsageError(msg, ctx)
        return super().resolve_command(ctx, args)


def examples(*lines: str) -> str:
    """An epilog that ends a command's help with an Example block (kept unwrapped)."""
    head = "Example:" if len(lines) == 1 else "Examples:"
    return "\b\n" + head + "\n" + "\n".join("  " + line for line in lines)


def group(name: str, help_text: str, example_lines: tuple[str, ...]) -> Callable[[Callable], AssayGroup]:
    """Declare a resource group (workflow, schedule, ...)."""

    def deco(fn: Callable) -> AssayGroup:
        return click.group(name, cls=AssayGroup, help=help_text, epilog=examples(*example_lines))(fn)

    return deco
