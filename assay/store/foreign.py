"""Refuse a database that is not assay's: the store never migrates over another application's tables.

A database is assay's when it is empty (a new one), or when it holds assay's schema record: the
`schema_migrations` table whose version 1 is assay's first migration, next to assay's core tables. Anything
else that holds tables (upstream assay's `assay-workflow.db`, which has no versioned migrations; another
application's file or schema) is refused before anything is written: for SQLite the check runs on a
read-only connection opened before the engine's own (which would switch the file to WAL).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from assay.errors import ConfigError

SCHEMA_TABLE = "schema_migrations"
CORE_TABLES = ("workflows", "workflow_events", "engine_lock")
SHOWN = 8  # table names listed in the error


def verdict(
    tables: Iterable[str], record: Sequence[tuple[Any, Any]] | None, first_migration: str
) -> str | None:
    """None when the database is assay's (or empty); else what was found, for the error message.

    `record` is the (version, name) rows of `schema_migrations`, or None when that table is missing or is
    not shaped like assay's.
    """
    names = sorted(t for t in tables if not t.startswith("sqlite_"))
    if not names:
        return None
    if names == [SCHEMA_TABLE] and record == []:
        return None  # the record table of a first start that stopped before migration 1 committed
    if record and tuple(record[0]) == (1, first_migration) and set(CORE_TABLES) <= set(names):
        return None
    shown = ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    found = f"{len(names)} table{'s' if len(names) != 1 else ''} ({shown})"
    if "workflows" in names and SCHEMA_TABLE not in names:
        found += "; it looks like upstream assay's database (same table names, no schema_migrations record)"
    elif SCHEMA_TABLE in names:
        found += "; its schema_migrations table is not assay's"
    return found


def refusal(where: str, found: str) -> ConfigError:
    return ConfigError(
        f"{where} is not an assay database: it holds {found}. assay never migrates over another "
        "application's data, and nothing in it was changed. Use a new SQLite file or an empty Postgres "
        "database (--backend / DATABASE_URL)."
    )


def check_sqlite_file(path: str, first_migration: str) -> None:
    """Raise ConfigError when the file at `path` exists and is not an assay database. Writes nothing."""
    if path == ":memory:" or not os.path.exists(path):
        return
    if os.path.isdir(path):
        raise ConfigError(f"{path} is a directory, not a SQLite database file")
    if os.path.getsize(path) == 0:
        return  # SQLite treats an empty file as a new database
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as e:
        raise ConfigError(f"cannot open SQLite database {path}: {e}") from None
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        record = None
        if SCHEMA_TABLE in tables:
            try:
                record = conn.execute(f"SELECT version, name FROM {SCHEMA_TABLE} ORDER BY version").fetchall()
            except sqlite3.Error:
                record = None  # not shaped like assay's
    except sqlite3.DatabaseError as e:
        raise ConfigError(
            f"{path} is not an assay database: it is not a SQLite database at all ({e}); nothing in it was "
            "changed."
        ) from None
    finally:
        conn.close()
    found = verdict(tables, record, first_migration)
    if found is not None:
        raise refusal(path, found)
