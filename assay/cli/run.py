"""`assay run`: run a Lua script (a worker, a management script, any automation) with the assay stdlib."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback as tb_mod

import click

from assay.config import WorkerSettings, option_help


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.localtime(record.created)
        return time.strftime("%H:%M:%S", t) + f".{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        s = f"{self.formatTime(record)} {record.levelname:<5} {record.getMessage()}"
        if record.exc_info:
            s += "\n" + self.formatException(record.exc_info)
        return s


def setup_logging() -> None:
    from assay.lua.std_sys import log_level_from_env

    logger = logging.getLogger("assay")
    if not any(getattr(h, "_assay_run", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(_Formatter())
        h._assay_run = True  # type: ignore[attr-defined]
        logger.addHandler(h)
        logger.propagate = False
    logger.setLevel(log_level_from_env())


@click.command(
    "run",
    context_settings={
        "ignore_unknown_options": True,
        "allow_interspersed_args": False,
        "help_option_names": ["-h", "--help"],
    },
)
@click.option(
    "-e", "code", metavar="CODE", help="Run this Lua code instead of a file (all ARGS go to `arg`)."
)
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help=option_help(WorkerSettings, "debug", "On an error also print the Lua and Python tracebacks."),
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(code: str | None, show_traceback: bool, args: tuple[str, ...]) -> None:
    """Run a Lua script with the assay stdlib (http, json, log, fs, shell, ...).

    FILE is a .lua script; the remaining ARGS are available to it as `arg[1]`, `arg[2]`, ...
    `require("assay.workflow")` gives the workflow client: a script that calls
    `workflow.listen{...}` is a worker (stop it with Ctrl-C or SIGTERM: it finishes the task in
    hand first). Lua errors print `file:line: message` on stderr and exit with code 1.
    See docs/lua.md for every function.

    \b
    Example:
      assay run worker.lua
      assay run report.lua --since 2024-01-01
      assay run -e 'print(json.encode({ok = true}))'
    """
    from assay.config import ClientSettings, declared, from_env
    from assay.lua import Runtime, ScriptError

    debug = show_traceback or any(
        from_env(s, strict=False)
        for s in (declared(WorkerSettings)["debug"], declared(ClientSettings)["traceback"])
    )
    if code is None:
        if not args:
            raise click.UsageError("give a FILE to run, or -e CODE")
        path, rest = args[0], list(args[1:])
        if not os.path.isfile(path):
            click.echo(
                f"assay run: cannot open {path}: "
                + ("is a directory" if os.path.isdir(path) else "No such file or directory"),
                err=True,
            )
            sys.exit(1)
    else:
        path, rest = None, list(args)
    setup_logging()
    try:
        rt = Runtime(path=path, code=code, args=rest)
        status = rt.run()
    except ScriptError as e:
        sys.stdout.flush()
        click.echo(e.message, err=True)
        if debug and e.lua_traceback:
            click.echo(e.lua_traceback, err=True)
        if debug:
            tb_mod.print_exc()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.stdout.flush()
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug in assay itself: one line unless debugging
        click.echo(f"assay run: internal error: {type(e).__name__}: {e}", err=True)
        if debug:
            tb_mod.print_exc()
        sys.exit(1)
    sys.stdout.flush()
    sys.exit(status)
