"""`assay db backup|check|vacuum`: look after the engine's own database (no running engine needed).

The database is resolved as `assay serve` resolves it: --backend, else DATABASE_URL, else the default
file in the user data directory. Exit codes: 0 ok, 1 error or (check) a problem found, 64 usage,
69 not available for this backend (backup on Postgres: use pg_dump).
"""

from __future__ import annotations

import click

from assay.cli import common
from assay.cli.options import examples, group

BACKEND_HELP = (
    "Database URL, as for `assay serve` (default: env DATABASE_URL, else $XDG_DATA_HOME/assay/assay.db)."
)


def _backend(url: str | None) -> str:
    from assay.config import load_settings

    return str(load_settings({"backend": url}).backend)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


@group(
    "db",
    "Back up, check and compact the engine's database (SQLite file or Postgres).",
    (
        "assay db backup ~/assay-backup.db",
        "assay db check",
        "assay db vacuum --backend sqlite:///srv/assay.db",
    ),
)
def db() -> None:
    pass


@db.command(
    "backup",
    epilog=examples(
        "assay db backup ~/backups/assay-$(date +%F).db",
        "assay db backup /tmp/copy.db --backend sqlite:///var/lib/assay/assay.db --force",
    ),
)
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--backend", metavar="URL", default=None, help=BACKEND_HELP)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
def backup(file: str, backend: str | None, force: bool) -> None:
    """Copy the SQLite database to FILE while the engine keeps running.

    Uses SQLite's online backup API: FILE is one consistent snapshot, a single self-contained file,
    without the engine lock (an engine starts on it at once). Restore: stop the engine, replace the
    database file with FILE (remove any -wal and -shm files next to it), start the engine. On Postgres
    this exits 69 and names pg_dump instead.
    """
    from assay.store.maintenance import backup as run

    r = run(_backend(backend), file, force=force)
    common.message(
        f"Backed up {r['database']} to {r['file']} ({_size(r['bytes'])}, {r['workflows']} workflows, "
        f"schema {r['schema_version']}) in {r['seconds']:.2f}s",
        record=r,
    )


@db.command(
    "check", epilog=examples("assay db check", "assay db check --backend postgres://assay@db/assay -o json")
)
@click.option("--backend", metavar="URL", default=None, help=BACKEND_HELP)
def check(backend: str | None) -> None:
    """Check the database: integrity, schema version, row counts, WAL size.

    Exits 1 when a problem is found (failed integrity check, foreign-key violations, a schema newer
    than this assay knows), listing each one.
    """
    from assay.store.maintenance import check as run

    r = run(_backend(backend))
    if common.output_format() == "table":
        lines = [
            f"database        {r['database']} ({r['backend']})",
            f"integrity       {r['integrity']}",
            f"schema version  {r['schema_version']} (this assay: {r['latest_schema_version']})",
        ]
        if "file_bytes" in r:
            lines.append(
                f"file            {_size(r['file_bytes'])}, WAL {_size(r['wal_bytes'])}, "
                f"free {_size(r['free_bytes'])} (assay db vacuum returns it)"
            )
            lock = r["engine_lock"]
            lines.append(
                "engine lock     "
                + ("none (no engine running)" if lock is None else f"pid {lock['pid']} on {lock['hostname']}")
            )
        else:
            lines.append(f"size            {_size(r['database_bytes'])}")
        lines.append("rows            " + ", ".join(f"{k} {v}" for k, v in r["rows"].items()))
        lines += [f"PROBLEM         {p}" for p in r["problems"]] or ["status          ok"]
        click.echo("\n".join(lines))
    else:
        common.emit(r)
    if r["problems"]:
        raise click.exceptions.Exit(1)


@db.command("vacuum", epilog=examples("assay db vacuum", "assay db vacuum --backend sqlite:///srv/assay.db"))
@click.option("--backend", metavar="URL", default=None, help=BACKEND_HELP)
def vacuum(backend: str | None) -> None:
    """Compact the database (SQLite VACUUM + WAL truncate; Postgres VACUUM ANALYZE).

    Safe while the engine runs: it waits for the write lock, which pauses the engine's writes for as
    long as the rebuild takes (seconds for most laptop databases).
    """
    from assay.store.maintenance import vacuum as run

    r = run(_backend(backend))
    if "bytes_before" in r:
        text = f"Vacuumed {r['database']}: {_size(r['bytes_before'])} -> {_size(r['bytes_after'])} in {r['seconds']:.2f}s"
    else:
        text = f"Vacuumed {r['database']} in {r['seconds']:.2f}s"
    common.message(text, record=r)
