"""SQLite store: WAL, synchronous=FULL by default, one locked writer with BEGIN IMMEDIATE, per-thread readers."""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

from assay.errors import ConfigError, EngineLocked, StoreError
from assay.store.base import Store
from assay.store.foreign import check_sqlite_file
from assay.store.migrations import SQLITE
from assay.store.sql import SqlTx

log = logging.getLogger("assay.store")

BUSY_TIMEOUT_MS = 30_000
#: page cache per connection, KiB (SQLite's default is 2 MB: a million-row database's index pages would
#: be read from the OS again on nearly every insert)
CACHE_KIB = 65_536


def sqlite_path(url: str) -> str:
    """`sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite::memory:`, or a bare path -> a file path."""
    if url in ("sqlite::memory:", "sqlite://:memory:", ":memory:"):
        return ":memory:"
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:") :]
        if rest.startswith("//"):
            parts = urlsplit(url)
            path = unquote((parts.netloc or "") + parts.path)
        else:
            path = rest.split("?", 1)[0]
        path = path.split("?", 1)[0]
    elif "://" in url:
        raise ConfigError(
            f"unsupported database URL scheme: {url.split('://', 1)[0]}:// "
            "(use sqlite:///path/to/file.db or postgres://...)"
        )
    else:
        path = url
    if not path:
        raise ConfigError(f"database URL has no file path: {url}")
    while path.startswith("//"):  # sqlite:////abs/path (four slashes) means /abs/path
        path = path[1:]
    return path


class SqliteTx(SqlTx):
    keeps_written = True


class SqliteStore(Store):
    dialect = "sqlite"
    multi_instance = False

    def __init__(self, url: str, synchronous: str = "FULL", **_: object) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.synchronous = synchronous if synchronous in ("FULL", "NORMAL", "EXTRA", "OFF") else "FULL"
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as e:
                raise ConfigError(f"cannot create database directory {parent}: {e}") from None
        self._write_lock = threading.RLock()
        self._in_tx = False  # a physical transaction is open on the writer
        self._depth = 0  # nesting of logical transactions
        self._pending = 0  # logical transactions waiting for the next COMMIT
        self._gen = 0  # incremented by every COMMIT
        self._failed: set[int] = set()
        self.commits = 0
        check_sqlite_file(self.path, SQLITE[0][1])  # before our connection touches the file
        self._writer = self._connect()
        self._readers: list[sqlite3.Connection] = []  # every reader connection (closed by close())
        self._idle: list[sqlite3.Connection] = []  # readers not in a read transaction; last used last
        self._readers_lock = threading.Lock()
        self._closed = False
        self.migrate()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open SQLite database {self.path}: {e}") from None
        return conn

    def _take_reader(self) -> sqlite3.Connection:
        """An idle reader connection (the one used last: a pool, not one per thread), or a new one.

        Not one per thread: the HTTP pool hands requests to its threads in turn (64 by default), so
        per-thread readers cost a connection (~1 ms of CPU) on each thread's first read, and as many open
        connections as threads ever read."""
        with self._readers_lock:
            if self._idle:
                return self._idle.pop()
        conn = self._connect()
        conn.execute("PRAGMA query_only = ON")
        with self._readers_lock:
            self._readers.append(conn)
        return conn

    @contextmanager
    def tx(self) -> Iterator[SqliteTx]:
        """A logical write transaction with group commit.

        Each logical transaction is a SAVEPOINT inside a shared physical transaction (the first one of a
        physical transaction needs none: undoing it is ROLLBACK, nothing else rides on it). On exit the caller
        waits until a COMMIT (one fsync) covers it: whoever flushes first commits every transaction that
        joined meanwhile. Nothing returns before its changes are durable, but N concurrent writers cost
        far fewer than N fsyncs. An exception rolls back only this logical transaction.
        """
        with self._write_lock:
            if self._closed:
                raise StoreError("store is closed")
            conn = self._writer
            fresh = not self._in_tx  # (then nothing is pending: every flush and rollback ends the tx)
            if fresh:
                self._begin(conn)
                self._in_tx = True
            self._depth += 1
            # The first logical transaction of a physical one needs no savepoint: undoing it is ROLLBACK.
            sp = None if fresh and self._depth == 1 else f"sp{self._depth}"
            if sp is not None:
                conn.execute(f"SAVEPOINT {sp}")
            try:
                yield SqliteTx(conn)
            except BaseException:
                if sp is not None:
                    conn.execute(f"ROLLBACK TO {sp}")
                    conn.execute(f"RELEASE {sp}")
                self._depth -= 1
                if self._depth == 0 and self._pending == 0:  # nothing else rides on it: free the file lock
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self._in_tx = False
                raise
            if sp is not None:
                conn.execute(f"RELEASE {sp}")
            self._depth -= 1
            if self._depth > 0:  # nested: the outermost transaction commits
                return
            self._pending += 1
            gen = self._gen
        self._flush(gen)

    def _flush(self, gen: int) -> None:
        with self._write_lock:
            if self._gen != gen:  # a COMMIT by another thread already covered this transaction
                if gen in self._failed:
                    raise StoreError("database commit failed")
                return
            conn = self._writer
            covered, t0 = self._pending, time.perf_counter()
            try:
                self._commit(conn)
            except sqlite3.Error as e:
                self._failed.add(gen)
                if len(self._failed) > 1000:
                    self._failed = set(sorted(self._failed)[-100:])
                raise StoreError(f"database commit failed: {e}") from None
            finally:
                self._in_tx = False
                self._pending = 0
                self._gen += 1
            self.commits += 1
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - t0, covered)

    def _begin(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:  # another process holds the write lock past busy_timeout
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise StoreError(f"database busy: {e}") from None
                time.sleep(0.01)

    def _commit(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise

    @contextmanager
    def read(self) -> Iterator[SqliteTx]:
        if self.path == ":memory:":
            with self._write_lock:
                yield SqliteTx(self._writer)
            return
        conn = self._take_reader()
        try:
            conn.execute("BEGIN")
            try:
                yield SqliteTx(conn)
            finally:
                conn.execute("ROLLBACK")
        finally:
            with self._readers_lock:  # back to the pool (not when its ROLLBACK failed)
                if not self._closed and not conn.in_transaction:
                    self._idle.append(conn)

    def migrate(self) -> list[int]:
        applied: list[int] = []
        with self._write_lock:
            conn = self._writer
            conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)""")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, statements in SQLITE:
                if version in done:
                    continue
                self._begin(conn)
                try:
                    for stmt in statements:
                        conn.execute(stmt)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (version, name, time.time()),
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                applied.append(version)
                log.info("applied migration %s: %s", version, name)
        self.seed()
        return applied

    # --- engine lock ------------------------------------------------------------------------
    def acquire_engine_lock(self, instance_id: str, now: float, stale_after: float) -> None:
        with self.tx() as tx:
            row = tx.conn.execute(
                "SELECT instance_id, pid, hostname, last_heartbeat FROM engine_lock WHERE id = 1"
            ).fetchone()
            host = socket.gethostname()
            if row is not None:
                holder, pid, holder_host, beat = row
                alive = _pid_alive(pid) if holder_host == host and pid else None
                if alive is False or (alive is None and now - beat > stale_after):
                    log.warning(
                        "taking over a stale engine lock held by %s (pid %s on %s)", holder, pid, holder_host
                    )
                else:
                    raise EngineLocked(
                        f"another assay engine (pid {pid} on {holder_host}) is using {self.path}; "
                        "SQLite supports one engine instance. Stop it, give this engine its own file "
                        "(--backend sqlite:///other.db), or use --backend postgres://... to run several "
                        "instances on one database."
                    )
            tx.conn.execute(
                """INSERT INTO engine_lock (id, instance_id, pid, hostname, started_at, last_heartbeat)
                               VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET
                               instance_id = excluded.instance_id, pid = excluded.pid, hostname = excluded.hostname,
                               started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat""",
                (instance_id, os.getpid(), host, now, now),
            )

    def refresh_engine_lock(self, instance_id: str, now: float) -> bool:
        with self.tx() as tx:
            cur = tx.conn.execute(
                "UPDATE engine_lock SET last_heartbeat = ? WHERE id = 1 AND instance_id = ?",
                (now, instance_id),
            )
            return bool(cur.rowcount == 1)

    def release_engine_lock(self, instance_id: str) -> None:
        with self.tx() as tx:
            tx.conn.execute("DELETE FROM engine_lock WHERE id = 1 AND instance_id = ?", (instance_id,))

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            if self._in_tx:
                self._flush(self._gen)
            self._closed = True
            with self._readers_lock:
                for c in self._readers:
                    try:
                        c.close()
                    except sqlite3.Error:
                        pass
                self._readers.clear()
                self._idle.clear()
            self._writer.close()

    def describe(self) -> str:
        return f"sqlite:///{os.path.abspath(self.path)}" if self.path != ":memory:" else "sqlite::memory:"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
