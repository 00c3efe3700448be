"""`assay serve`: run the engine, or manage API keys on its database."""

from __future__ import annotations

import os
import sys

import click

from assay.config import SETTINGS_BY_NAME, Settings, env_text, load_settings, option_help
from assay.errors import AssayError

UPSTREAM_DB = "assay-workflow.db"  # upstream's default SQLite file, in the working directory


def _fail(msg: str, code: int = 1) -> None:
    click.echo(f"Error: {msg}", err=True)
    sys.exit(code)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--port", type=int, default=None, help=option_help(Settings, "port"))
@click.option("--host", default=None, help=option_help(Settings, "host"))
@click.option("--backend", default=None, metavar="URL", help=option_help(Settings, "backend"))
@click.option("--threads", type=int, default=None, help=option_help(Settings, "threads"))
@click.option("--no-auth", is_flag=True, help="Open access (the default). Use only behind a trusted gateway.")
@click.option("--auth-api-key", is_flag=True, default=None, help=option_help(Settings, "auth_api_key"))
@click.option("--auth-issuer", default=None, metavar="URL", help=option_help(Settings, "auth_issuer"))
@click.option("--auth-audience", default=None, metavar="AUD", help=option_help(Settings, "auth_audience"))
@click.option("--generate-api-key", is_flag=True, help="Mint an API key, print it on stdout, exit.")
@click.option("--label", default=None, help="Label for --generate-api-key.")
@click.option(
    "--list-api-keys", is_flag=True, help="List API keys (prefix, label, created, last used), exit."
)
@click.option(
    "--revoke-api-key", default=None, metavar="PREFIX", help="Revoke the API key with this prefix, exit."
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def serve(
    port,
    host,
    backend,
    threads,
    no_auth,
    auth_api_key,
    auth_issuer,
    auth_audience,
    generate_api_key,
    label,
    list_api_keys,
    revoke_api_key,
    verbose,
) -> None:
    """Run the workflow engine: REST API, SSE stream, dashboard, background loops.

    \b
    Example:
      assay serve                                  # SQLite in the user data dir, port 8080
      assay serve --port 8085 --backend sqlite:///var/lib/assay/w.db
      assay serve --auth-api-key                   # then: assay serve --generate-api-key
      DATABASE_URL=postgres://u:p@db/assay assay serve --host 0.0.0.0 --auth-api-key
    """
    from assay.server import Server, is_loopback, mask_url, setup_logging

    try:
        settings = load_settings(
            {
                "port": port,
                "host": host,
                "backend": backend,
                "threads": threads,
                "auth_api_key": auth_api_key,
                "auth_issuer": auth_issuer,
                "auth_audience": auth_audience,
                "log_level": "debug" if verbose else None,
            }
        )
    except AssayError as e:
        _fail(e.message)
    backend_defaulted = backend is None and env_text(SETTINGS_BY_NAME["backend"], os.environ) is None
    setup_logging(settings.log_level)
    if generate_api_key or list_api_keys or revoke_api_key:
        _manage_keys(settings, generate_api_key, label, list_api_keys, revoke_api_key)
        return
    if no_auth and (settings.auth_api_key or settings.auth_issuer):
        click.echo("Warning: --no-auth is ignored because an auth mode is set", err=True)
    if settings.auth_audience and not settings.auth_issuer:
        _fail("--auth-audience needs --auth-issuer", 64)
    authed = bool(settings.auth_api_key or settings.auth_issuer)
    if not is_loopback(settings.host) and not authed:
        click.echo(
            f"Warning: binding {settings.host} with no authentication: anyone who can reach this port "
            "controls the engine.",
            err=True,
        )
    try:
        server = Server(settings)  # binds the port before it opens (creates, migrates) the database
    except AssayError as e:
        _fail(e.message)
    click.echo(
        f"assay engine: http://{settings.host}:{server.port}/  database: {mask_url(server.store.describe())}",
        err=True,
    )
    if backend_defaulted and os.path.exists(UPSTREAM_DB):
        click.echo(
            f"Note: ./{UPSTREAM_DB} (upstream assay's default database) is not used: this engine keeps its "
            f"data in {mask_url(server.store.describe())} (choose another with --backend or DATABASE_URL).",
            err=True,
        )
    if server.store.dialect == "sqlite":
        click.echo(
            "Note: SQLite runs one engine instance; use --backend postgres://... for several.", err=True
        )
    server.serve_forever()


def _manage_keys(settings, generate: bool, label, list_: bool, revoke) -> None:
    import time

    from assay import auth
    from assay.store import open_store

    try:
        store = open_store(settings.backend, synchronous=settings.sqlite_synchronous)
    except AssayError as e:
        _fail(e.message)
    try:
        if generate:
            rec = auth.mint_api_key(store, label, time.time())
            click.echo(rec["plaintext"])
            click.echo(f"created API key {rec['prefix']} (store it now: it is not shown again)", err=True)
        elif list_:
            keys = auth.list_api_keys(store)
            if not keys:
                click.echo("No API keys configured.")
            for k in keys:
                click.echo(
                    f"  {k['prefix']}  {k['label'] or '-'}  created {_ts(k['created_at'])}  "
                    f"last used {_ts(k['last_used_at'])}"
                )
        else:
            rec = auth.revoke_api_key(store, revoke)
            click.echo(f"revoked {rec['prefix']}", err=True)
    except AssayError as e:
        _fail(e.message)
    finally:
        store.close()


def _ts(t) -> str:
    import time

    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z"
