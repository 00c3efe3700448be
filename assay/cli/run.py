"""`assay run`: run a Lua script (a worker, a management script, any automation) with the assay stdlib."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback as tb_mod

import click

from assay.config import WorkerSettings, option_help
from assay.protocol import ExitStatus


class _Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.localtime(record.created)
        return time.strftime("%H:%M:%S", t) + f".{int(record.msecs):03d}"

    def format(self, record: logging.LogRecord) -> str:
        s = f"{self.formatTime(record)} {record.levelname:<5} {record.getMessage()}"
        if record.exc_info:
            s += "\n" + self.formatException(record.exc_info)
        return s


def setup_logging(level: int | None = None) -> None:
    if level is None:
        from assay.lua.std_sys import log_level_from_env

        level = log_level_from_env()
    logger = logging.getLogger("assay")
    if not any(getattr(h, "_assay_run", False) for h in logger.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(_Formatter())
        h._assay_run = True  # type: ignore[attr-defined]
        logger.addHandler(h)
        logger.propagate = False
    logger.setLevel(level)


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
    """Run a Lua script with the assay stdlib (http, json, log, fs, shell, ...), or a Python worker.

    FILE is a .lua script; the remaining ARGS are available to it as `arg[1]`, `arg[2]`, ...
    A FILE ending in .py runs as a Python program (`sys.argv[1:]` = ARGS) that can use
    `from assay import workflow` (see docs/python.md).
    `require("assay.workflow")` gives the workflow client: a script that calls
    `workflow.listen{...}` is a worker (stop it with Ctrl-C or SIGTERM: it finishes the task in
    hand first). Lua errors print `file:line: message` on stderr and exit with code 1.
    See docs/lua.md for every function.

    \b
    Example:
      assay run worker.lua
      assay run worker.py
      assay run report.lua --since 2024-01-01
      assay run -e 'print(json.encode({ok = true}))'
    """
    from assay.config import SETTINGS_BY_NAME, ClientSettings, declared, from_env

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
            sys.exit(ExitStatus.FAILURE)
    else:
        path, rest = None, list(args)
    if path is not None and path.endswith(".py"):
        # a Python worker needs no Lua runtime (nothing native is loaded, even from the zipapp)
        level = logging.getLevelName(str(from_env(SETTINGS_BY_NAME["log_level"], strict=False)).upper())
        setup_logging(level if isinstance(level, int) else logging.INFO)
        sys.exit(run_python(path, rest, debug))
    setup_logging()
    from assay.lua import Runtime, ScriptError

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
        sys.exit(ExitStatus.INTERRUPTED)
    except Exception as e:  # a bug in assay itself: one line unless debugging
        click.echo(f"assay run: internal error: {type(e).__name__}: {e}", err=True)
        if debug:
            tb_mod.print_exc()
        sys.exit(ExitStatus.FAILURE)
    sys.stdout.flush()
    sys.exit(status)


def run_python(path: str, args: list[str], debug: bool) -> int:
    """Run a Python file as __main__ (its folder first on sys.path); exit status as `python FILE` would."""
    import runpy

    sys.argv = [path, *args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        click.echo(str(e.code), err=True)
        return 1
    except KeyboardInterrupt:
        sys.stdout.flush()
        click.echo("interrupted", err=True)
        return 130
    except Exception as e:
        sys.stdout.flush()
        if debug:
            tb_mod.print_exc()
        else:
            # the user's own frames (not runpy's); ASSAY_DEBUG=1 shows the whole traceback
            tb = e.__traceback__
            while tb is not None and (
                "runpy" in tb.tb_frame.f_code.co_filename or tb.tb_frame.f_code.co_filename == __file__
            ):
                tb = tb.tb_next
            click.echo("".join(tb_mod.format_exception(type(e), e, tb)).rstrip(), err=True)
        return 1
    sys.stdout.flush()
    return 0
