"""The `assay` command line. Subcommands are imported lazily so `assay --version` stays fast.

Errors end here: one `Error: ...` line on stderr and the exit codes of the docs
(0 ok, 1 HTTP error / unreachable / not found, 2 `workflow wait` timeout, 64 usage error).
No Python traceback unless `--traceback` (or ASSAY_TRACEBACK=1).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from assay import __version__
from assay.cli.options import AssayGroup
from assay.protocol import ExitStatus

# name -> "module:attribute"; each module owns one command or group.
COMMANDS: dict[str, str] = {
    "serve": "assay.cli.serve:serve",
    "run": "assay.cli.run:run",
    "replay": "assay.cli.replay:replay",
    "workflow": "assay.cli.workflow:workflow",
    "schedule": "assay.cli.schedule:schedule",
    "namespace": "assay.cli.namespace:namespace",
    "worker": "assay.cli.worker:worker",
    "queue": "assay.cli.queue:queue",
    "completion": "assay.cli.completion:completion",
    "db": "assay.cli.db:db",
}

# Short descriptions for the top-level help, so listing commands does not import them all.
SHORT_HELP: dict[str, str] = {
    "serve": "Run the engine (REST API, SSE, dashboard).",
    "run": "Run a Lua script (for example a workflow worker).",
    "replay": "Replay workflow histories through a worker file (deploy gate).",
    "workflow": "Start, inspect, signal, cancel and wait for workflows.",
    "schedule": "Manage cron schedules.",
    "namespace": "Manage namespaces.",
    "worker": "List registered workers.",
    "queue": "Show task queue statistics.",
    "completion": "Print a shell completion script.",
    "db": "Back up, check and compact the engine's database.",
}

EXIT_USAGE = ExitStatus.USAGE
UNREACHABLE_HINT = (
    "Start the engine with `assay serve`, or point at yours with --engine-url URL (env ASSAY_ENGINE_URL)"
)


class LazyGroup(AssayGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in COMMANDS:
            mod, attr = COMMANDS[name].split(":")
            try:
                module = importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name == mod:  # a command that is not built yet
                    return None
                raise
            return getattr(module, attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text("Run 'assay COMMAND --help' for a command's options and examples.")
            url = docs_url()
            if url:
                formatter.write_text(f"Documentation: {url}")

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # the reader of stdout went away (`| head`): not an error (click itself would exit 1)
            _quiet_broken_pipe()
            raise click.exceptions.Exit(0) from None

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        if os.environ.get("_ASSAY_COMPLETE"):
            import assay.cli.completion  # noqa: F401 - registers the powershell and elvish completers
        show_tb = "--traceback" in args or _traceback_from_env()
        try:
            rv = super().main(args, prog_name or "assay", complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help() if e.ctx else self.get_help(click.Context(self)))
            code = 0
        except click.exceptions.Abort:
            click.echo("Error: aborted", err=True)
            code = ExitStatus.INTERRUPTED
        except click.ClickException as e:
            code = _report_click(e, show_tb)
        except BrokenPipeError:
            _quiet_broken_pipe()
            code = 0
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            code = ExitStatus.INTERRUPTED
        except Exception as e:  # noqa: BLE001 - the one place errors become an exit code
            code = _report(e, show_tb)
        if not standalone_mode:
            return code
        sys.exit(code)


def _traceback_from_env() -> bool:
    from assay.config import ClientSettings, declared, from_env

    return bool(from_env(declared(ClientSettings)["traceback"], strict=False))  # errors end here: lenient


def docs_url() -> str | None:
    """The Documentation URL of the package metadata ([project.urls] in pyproject.toml): from the
    installed distribution, else from the zipapp's build record; None from a bare checkout."""
    import importlib.metadata

    try:
        for entry in importlib.metadata.metadata("assay-workflow").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() == "documentation" and url.strip():
                return url.strip()
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        from assay import _build  # type: ignore[attr-defined]

        return getattr(_build, "DOCS_URL", None)
    except ImportError:
        return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _report_click(e: click.ClickException, show_tb: bool) -> int:
    if show_tb:
        import traceback

        traceback.print_exc()
    msg = _one_line(e.format_message())
    if isinstance(e, click.UsageError):
        hint = ""
        if e.ctx is not None:
            hint = f" (see '{e.ctx.command_path} --help')"
        click.echo(f"Error: {msg}{hint}", err=True)
        return EXIT_USAGE
    click.echo(f"Error: {msg}", err=True)
    return e.exit_code or ExitStatus.FAILURE


def _report(e: BaseException, show_tb: bool) -> int:
    from assay.errors import AssayError

    if show_tb:
        import traceback

        traceback.print_exc()
    if isinstance(e, AssayError):
        status = getattr(e, "http_status", None)
        text = _one_line(e.message)
        if type(e).__name__ == "EngineUnreachable":
            text += f". {UNREACHABLE_HINT}"
        if status is not None:
            click.echo(f"Error: {text} (HTTP {status})", err=True)
            return ExitStatus.FAILURE
        click.echo(f"Error: {text}", err=True)
        return e.exit_code
    hint = "" if show_tb else " (run with --traceback for details)"
    click.echo(f"Error: unexpected {type(e).__name__}: {_one_line(str(e))}{hint}", err=True)
    return ExitStatus.FAILURE


def _quiet_broken_pipe() -> None:
    # stdout's reader went away (e.g. `| head`): silence the flush at interpreter exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="\b\nExamples:\n  assay serve                      # engine on http://127.0.0.1:8080 (SQLite)\n"
    '  assay workflow start --type Hello --input \'{"name": "ada"}\'\n'
    "  assay workflow list --status RUNNING",
)
@click.version_option(__version__, "-V", "--version", prog_name="assay", message="%(prog)s %(version)s")
def cli() -> None:
    """assay: a durable workflow engine in one file.

    Operator commands talk to a running engine over its REST API; the global options below say
    which engine, namespace and output format.
    """


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="assay")
