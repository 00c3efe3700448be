"""Database maintenance for `assay db`: online backup, health check, vacuum (SQLite; check and vacuum
also on Postgres). Works on the file directly, never through an engine, and never migrates anything."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from typing import Any
from urllib.parse import quote

from assay.errors import AssayError, ConfigError
from assay.protocol import ActivityStatus
from assay.store.buckets import DIMS as BUCKET_DIMS
from assay.store.buckets import SPANS as BUCKET_SPANS
from assay.store.migrations import SQLITE
from assay.store.sqlite import BUSY_TIMEOUT_MS, sqlite_path

#: the tables whose row counts `assay db check` reports
TABLES = (
    "namespaces",
    "workflows",
    "workflow_events",
    "workflow_activities",
    "workflow_timers",
    "workflow_signals",
    "workflow_schedules",
    "workflow_workers",
    "api_keys",
)
LATEST_SCHEMA = max(v for v, _, _ in SQLITE)

_LIVE = (ActivityStatus.PENDING.value, ActivityStatus.RUNNING.value)
#: counters the engine keeps with its writes (triggers): (table, what reads them, what they stand for,
#: the recount from the rows). `?` is the parameter mark (Postgres: %s); Postgres sums its shards.
COUNTERS: list[tuple[str, str, str, str, tuple[Any, ...]]] = [
    (
        "workflow_counts",
        "namespace stats, status filters, deep offsets",
        "SELECT namespace, status, SUM(n) FROM workflow_counts GROUP BY namespace, status",
        "SELECT namespace, status, COUNT(*) FROM workflows GROUP BY namespace, status",
        (),
    ),
    (
        "activity_counts",
        "queue stats",
        "SELECT namespace, task_queue, status, SUM(n) FROM activity_counts GROUP BY namespace, task_queue, status",
        "SELECT w.namespace, a.task_queue, a.status, COUNT(*) FROM workflow_activities a"
        " JOIN workflows w ON w.id = a.workflow_id WHERE a.status IN (?, ?)"
        " GROUP BY w.namespace, a.task_queue, a.status",
        _LIVE,
    ),
    (
        "workflow_buckets",
        "deep offsets",
        "SELECT namespace, dim, val, span, SUM(n) FROM workflow_buckets GROUP BY namespace, dim, val, span",
        " UNION ALL ".join(
            f"SELECT namespace, '{dim}', {col or repr('')}, {span}, COUNT(*) FROM workflows "
            f"GROUP BY namespace{', ' + col if col else ''}"
            for dim, col in BUCKET_DIMS
            for span in BUCKET_SPANS
        ),
        (),
    ),
]


def counter_drift(conn: Any, tables: set[str], mark: str = "?") -> list[str]:
    """Problems for every counter table that disagrees with a recount of the rows it counts."""
    problems: list[str] = []
    for table, used_by, counted_sql, recount_sql, params in COUNTERS:
        if table not in tables:
            continue
        counted = {tuple(r[:-1]): int(r[-1]) for r in conn.execute(counted_sql).fetchall()}
        actual = {
            tuple(r[:-1]): int(r[-1]) for r in conn.execute(recount_sql.replace("?", mark), params).fetchall()
        }
        wrong = sorted(k for k in set(counted) | set(actual) if counted.get(k, 0) != actual.get(k, 0))
        if wrong:
            k = wrong[0]
            problems.append(
                f"{table} ({used_by}) disagrees with the rows for {len(wrong)} key(s), e.g. "
                f"{', '.join(map(str, k))}: counted {counted.get(k, 0)}, actually {actual.get(k, 0)}"
            )
    return problems


class Unsupported(AssayError):
    """The operation does not exist for this backend (`assay db backup` on Postgres)."""

    status = 400
    exit_code = 69  # EX_UNAVAILABLE


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def _open_sqlite(url: str) -> tuple[str, sqlite3.Connection]:
    """The existing assay database of `url` (never created, never migrated)."""
    path = sqlite_path(url)
    if path == ":memory:":
        raise ConfigError("an in-memory database has nothing to back up or check")
    if not os.path.isfile(path):
        raise ConfigError(f"no database at {path}")
    try:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=rw", uri=True, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error as e:
        raise ConfigError(f"cannot open SQLite database {path}: {e}") from None
    if not {"schema_migrations", "workflows", "engine_lock"} <= tables:
        conn.close()
        raise ConfigError(f"{path} is not an assay database (no assay tables)")
    return path, conn


def backup(url: str, dest: str, *, force: bool = False) -> dict[str, Any]:
    """Copy a SQLite database to `dest` with SQLite's online backup API: one consistent snapshot, taken
    while the engine keeps running (WAL readers never block its writer). The copy is a single file
    (journal_mode=DELETE) without the engine lock row, so an engine started on it is not refused by the
    lock of the engine still running on the original. Written to a temporary name, then renamed."""
    if is_postgres(url):
        raise Unsupported(
            "assay db backup copies SQLite databases only; back up Postgres with its own tools: "
            "pg_dump --format=custom --file FILE 'postgres://...' (restore with pg_restore --dbname URL FILE)"
        )
    path, src = _open_sqlite(url)
    dest = os.path.abspath(os.path.expanduser(dest))
    try:
        if os.path.exists(dest) and os.path.samefile(dest, path):
            raise ConfigError("the backup file must not be the database itself")
        if os.path.exists(dest) and not force:
            raise ConfigError(f"{dest} exists; pass --force to replace it")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = f"{dest}.partial-{os.getpid()}"
        t0 = time.monotonic()
        try:
            dst = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(dst)  # pages=-1: every page in one step, under one read snapshot
                dst.execute("DELETE FROM engine_lock")
                dst.execute("PRAGMA journal_mode = DELETE")
                workflows = int(dst.execute("SELECT COUNT(*) FROM workflows").fetchone()[0])
                version = dst.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
                ok = dst.execute("PRAGMA quick_check").fetchone()[0]
            finally:
                dst.close()
            if ok != "ok":
                raise ConfigError(f"the backup failed its integrity check: {ok}")
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        except sqlite3.Error as e:
            raise ConfigError(f"backup failed: {e}") from None
        except OSError as e:
            raise ConfigError(f"cannot write {dest}: {e.strerror or e}") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    finally:
        src.close()
    return {
        "database": path,
        "file": dest,
        "bytes": os.path.getsize(dest),
        "workflows": workflows,
        "schema_version": version,
        "seconds": round(time.monotonic() - t0, 3),
    }


def check(url: str) -> dict[str, Any]:
    """Integrity, schema version, row counts and WAL size; `problems` lists what is wrong (empty: healthy)."""
    if is_postgres(url):
        return _check_postgres(url)
    path, conn = _open_sqlite(url)
    problems: list[str] = []
    try:
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            problems += [f"integrity: {line}" for line in integrity[:20]]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fk:
            problems.append(f"{len(fk)} row(s) violate a foreign key (first in table {fk[0][0]})")
        version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        counts = {t: _count(conn, t) for t in TABLES}
        lock = conn.execute("SELECT instance_id, pid, hostname, last_heartbeat FROM engine_lock").fetchone()
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        free_pages = conn.execute("PRAGMA freelist_count").fetchone()[0]
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        problems += counter_drift(conn, have)
    except sqlite3.Error as e:
        problems.append(f"cannot read the database: {e}")
        version, counts, lock, journal, page_size, free_pages = None, {}, None, None, 0, 0
    finally:
        conn.close()
    _schema_problems(version, LATEST_SCHEMA, problems)
    wal = path + "-wal"
    return {
        "backend": "sqlite",
        "database": path,
        "ok": not problems,
        "problems": problems,
        "integrity": "ok" if not any(p.startswith("integrity") for p in problems) else "FAILED",
        "schema_version": version,
        "latest_schema_version": LATEST_SCHEMA,
        "rows": counts,
        "file_bytes": os.path.getsize(path),
        "wal_bytes": os.path.getsize(wal) if os.path.exists(wal) else 0,
        "free_bytes": int(free_pages) * int(page_size),
        "journal_mode": journal,
        "engine_lock": None
        if lock is None
        else {"instance_id": lock[0], "pid": lock[1], "hostname": lock[2], "last_heartbeat": lock[3]},
    }


def vacuum(url: str) -> dict[str, Any]:
    """Rebuild the database to return free pages to the file system, then truncate the WAL (SQLite);
    VACUUM ANALYZE (Postgres). Safe while the engine runs: it waits for the write lock."""
    if is_postgres(url):
        conn = _pg_connect(url)
        try:
            t0 = time.monotonic()
            for t in TABLES:
                conn.execute(f"VACUUM (ANALYZE) {t}")
            return {
                "backend": "postgres",
                "database": _pg_safe(url),
                "seconds": round(time.monotonic() - t0, 3),
            }
        finally:
            conn.close()
    path, conn = _open_sqlite(url)
    try:
        before = os.path.getsize(path)
        t0 = time.monotonic()
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as e:
        raise ConfigError(f"vacuum failed: {e}") from None
    finally:
        conn.close()
    return {
        "backend": "sqlite",
        "database": path,
        "bytes_before": before,
        "bytes_after": os.path.getsize(path),
        "seconds": round(time.monotonic() - t0, 3),
    }


def _count(conn: Any, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _schema_problems(version: Any, latest: int, problems: list[str]) -> None:
    if version is None:
        problems.append("no schema version recorded (schema_migrations is empty)")
    elif int(version) > latest:
        problems.append(
            f"schema version {version} is newer than this assay knows ({latest}): upgrade assay before using it"
        )


def _pg_connect(url: str) -> Any:
    from assay.store.postgres import _clean, _import_psycopg

    psycopg, _pool = _import_psycopg()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except Exception as e:
        raise ConfigError(f"cannot connect to Postgres: {_clean(str(e), url)}") from None


def _pg_safe(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"^([a-z]+://[^:/@]+:)[^@]*@", r"\1***@", url)


def _check_postgres(url: str) -> dict[str, Any]:
    latest = LATEST_SCHEMA  # one migrations list, translated per dialect
    conn = _pg_connect(url)
    problems: list[str] = []
    try:
        have = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        }
        if not {"schema_migrations", "workflows"} <= have:
            raise ConfigError(f"{_pg_safe(url)} is not an assay database (no assay tables)")
        version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        counts = {t: _count(conn, t) for t in TABLES if t in have}
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        problems += counter_drift(conn, have, "%s")
    finally:
        conn.close()
    _schema_problems(version, latest, problems)
    return {
        "backend": "postgres",
        "database": _pg_safe(url),
        "ok": not problems,
        "problems": problems,
        "integrity": "n/a (Postgres checks its own pages; use amcheck for a deep check)",
        "schema_version": version,
        "latest_schema_version": latest,
        "rows": counts,
        "database_bytes": int(size),
    }
