"""A database that is not assay's is refused before anything in it is written (SQLite and Postgres)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess

import pytest

from assay.errors import ConfigError
from assay.store import open_store
from assay.store.foreign import verdict
from assay.store.migrations import SQLITE
from tests import pg
from tests.helpers import assay_cmd, free_port, http, stop_process, subprocess_env, wait_until

FIRST = SQLITE[0][1]

UPSTREAM_SCHEMA = [  # upstream assay's tables (no versioned migrations), with a row of its data
    "CREATE TABLE namespaces (name TEXT PRIMARY KEY, created_at REAL NOT NULL)",
    "CREATE TABLE workflows (id TEXT PRIMARY KEY, namespace TEXT NOT NULL DEFAULT 'main', workflow_type TEXT, "
    "status TEXT, input TEXT, created_at REAL)",
    "CREATE TABLE workflow_events (id INTEGER PRIMARY KEY, workflow_id TEXT, seq INTEGER, event_type TEXT)",
    "CREATE TABLE engine_lock (id INTEGER PRIMARY KEY, instance_id TEXT, last_heartbeat REAL)",
    "INSERT INTO namespaces VALUES ('main', 1700000000.0)",
    "INSERT INTO workflows VALUES ('wf-upstream-1', 'main', 'Report', 'RUNNING', '{\"a\": 1}', 1700000000.0)",
]
OTHER_APP = [
    "CREATE TABLE schema_migrations (version TEXT PRIMARY KEY)",  # e.g. a Rails application's
    "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)",
    "INSERT INTO schema_migrations VALUES ('20240101000000')",
    "INSERT INTO users VALUES (1, 'ada@example.com')",
]


def make_sqlite(path, statements) -> None:
    conn = sqlite3.connect(path)
    for stmt in statements:
        conn.execute(stmt)
    conn.commit()
    conn.close()


def snapshot(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.iterdir()}


@pytest.mark.parametrize(
    "statements,expect",
    [
        (
            UPSTREAM_SCHEMA,
            ["4 tables (engine_lock, namespaces, workflow_events, workflows)", "upstream assay"],
        ),
        (OTHER_APP, ["2 tables (schema_migrations, users)", "schema_migrations table is not assay's"]),
    ],
)
def test_a_foreign_sqlite_file_is_refused_and_left_byte_for_byte(tmp_path, statements, expect):
    db = tmp_path / "assay-workflow.db"
    make_sqlite(db, statements)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as e:
        open_store(f"sqlite:///{db}")
    msg = e.value.message
    assert msg.startswith(f"{db} is not an assay database: it holds ")
    for part in expect:
        assert part in msg
    assert "nothing in it was changed" in msg
    assert snapshot(tmp_path) == before  # same files (no -wal/-shm), same bytes


def test_a_file_that_is_not_sqlite_is_refused_unchanged(tmp_path):
    f = tmp_path / "notes.db"
    f.write_text("not a database\n" * 300)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as e:
        open_store(f"sqlite:///{f}")
    assert "not a SQLite database" in e.value.message
    assert snapshot(tmp_path) == before


def test_assay_databases_new_empty_and_existing_are_accepted(tmp_path):
    db = tmp_path / "a.db"
    s = open_store(f"sqlite:///{db}")
    s.close()
    s = open_store(f"sqlite:///{db}")  # our own, reopened (WAL, closed cleanly)
    s.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    open_store(f"sqlite:///{empty}").close()
    interrupted = tmp_path / "interrupted.db"  # a first start that stopped before migration 1 committed
    make_sqlite(
        interrupted,
        [
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        ],
    )
    open_store(f"sqlite:///{interrupted}").close()


def test_verdict_rules():
    assert verdict([], None, FIRST) is None
    assert verdict(["sqlite_sequence"], None, FIRST) is None
    assert verdict(["schema_migrations"], [], FIRST) is None
    ours = ["schema_migrations", "workflows", "workflow_events", "engine_lock", "namespaces"]
    assert verdict(ours, [(1, FIRST), (2, "later")], FIRST) is None
    assert verdict(ours, [(1, "someone else's first")], FIRST) is not None
    assert verdict(ours, None, FIRST) is not None  # a schema_migrations of another shape
    assert verdict(["schema_migrations", "users"], [(1, FIRST)], FIRST) is not None  # no core tables
    many = verdict([f"t{i:02d}" for i in range(12)], None, FIRST)
    assert many.startswith("12 tables (t00, t01") and "and 4 more" in many


# -- Postgres ---------------------------------------------------------------------------------------------
needs_pg = pytest.mark.skipif(
    not pg.available() or os.environ.get("ASSAY_TEST_POSTGRES", "1") == "0", reason="no PostgreSQL server"
)


def _pg_exec(url, statements):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for stmt in statements:
            conn.execute(stmt)


def _pg_tables(url):
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
        data = (
            conn.execute("SELECT * FROM workflows ORDER BY id").fetchall() if ("workflows",) in rows else None
        )
    return sorted(r[0] for r in rows), data


@pytest.mark.postgres
@needs_pg
def test_a_foreign_postgres_database_is_refused_and_untouched():
    url = pg.fresh_database()
    _pg_exec(url, [s.replace("REAL", "DOUBLE PRECISION") for s in UPSTREAM_SCHEMA])
    before = _pg_tables(url)
    with pytest.raises(ConfigError) as e:
        open_store(url, min_size=1, max_size=2)
    msg = e.value.message
    assert "is not an assay database" in msg and "(schema public)" in msg
    assert "engine_lock, namespaces, workflow_events, workflows" in msg and "upstream assay" in msg
    assert _pg_tables(url) == before  # no schema_migrations created, rows unchanged
    assert before[1] == [("wf-upstream-1", "main", "Report", "RUNNING", '{"a": 1}', 1700000000.0)]


@pytest.mark.postgres
@needs_pg
def test_postgres_other_app_refused_and_own_database_reopens():
    other = pg.fresh_database()
    _pg_exec(other, OTHER_APP)
    with pytest.raises(ConfigError) as e:
        open_store(other, min_size=1, max_size=2)
    assert "schema_migrations table is not assay's" in e.value.message
    assert _pg_tables(other)[0] == ["schema_migrations", "users"]
    ours = pg.fresh_database()
    open_store(ours, min_size=1, max_size=2).close()
    s = open_store(ours, min_size=1, max_size=2)
    s.close()


# -- assay serve ------------------------------------------------------------------------------------------
@pytest.mark.e2e
def test_serve_refuses_a_foreign_backend_with_one_line(tmp_path):
    db = tmp_path / "assay-workflow.db"
    make_sqlite(db, UPSTREAM_SCHEMA)
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [*assay_cmd(), "serve", "--port", str(free_port()), "--backend", f"sqlite:///{db}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"Error: {db} is not an assay database") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.e2e
def test_serve_without_backend_says_where_its_data_is_when_upstreams_file_is_here(tmp_path):
    make_sqlite(tmp_path / "assay-workflow.db", UPSTREAM_SCHEMA)
    before = (tmp_path / "assay-workflow.db").read_bytes()
    data = tmp_path / "xdg-data"
    port = free_port()
    log = tmp_path / "serve.log"
    env = subprocess_env({"XDG_DATA_HOME": str(data)})
    env.pop("DATABASE_URL", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*assay_cmd(), "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        wait_until(lambda: "Note: ./assay-workflow.db" in log.read_text(), 30, what="the start-up note")
        assert http("GET", f"http://127.0.0.1:{port}/api/v1/health")[0] == 200
    finally:
        stop_process(proc)
    text = log.read_text()
    assert f"keeps its data in sqlite:///{data / 'assay' / 'assay.db'}" in text
    assert (tmp_path / "assay-workflow.db").read_bytes() == before
    assert (data / "assay" / "assay.db").exists()
