"""`assay db backup|check|vacuum` on real SQLite files (in-process CLI), and a backup taken under a
running write load that restores to a working engine (real processes)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading

import pytest
from click.testing import CliRunner

from assay.cli import cli
from assay.store import open_store
from tests.helpers import assay_cmd, http, start_engine, subprocess_env, wait_until


def run(*args, env=None):
    return CliRunner().invoke(cli, list(args), env=env, prog_name="assay", catch_exceptions=False)


def make_db(path, workflows: int = 3) -> str:
    url = "sqlite:///" + str(path)
    store = open_store(url)
    with store.tx() as tx:
        for i in range(workflows):
            tx.insert_workflow(
                {
                    "id": f"wf-{i}",
                    "namespace": "main",
                    "run_id": f"r-{i}",
                    "workflow_type": "T",
                    "task_queue": "default",
                    "status": "PENDING",
                    "input": {"blob": "x" * 2000},
                    "created_at": 1.0,
                    "updated_at": 1.0,
                    "needs_dispatch": 1,
                    "ready_at": 1.0,
                    "last_seq": 0,
                }
            )
    store.close()
    return url


def test_check_reports_a_healthy_database(tmp_path):
    url = make_db(tmp_path / "a.db")
    r = run("db", "check", "--backend", url, "-o", "json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["ok"] is True and report["problems"] == [] and report["integrity"] == "ok"
    assert report["rows"]["workflows"] == 3 and report["rows"]["namespaces"] == 1
    assert report["schema_version"] == report["latest_schema_version"] >= 1
    assert report["journal_mode"] == "wal" and report["engine_lock"] is None
    table = run("db", "check", "--backend", url, "-o", "table")
    assert (
        table.exit_code == 0 and "integrity       ok" in table.output and "status          ok" in table.output
    )


def test_check_fails_on_a_schema_from_the_future_and_on_corruption(tmp_path):
    url = make_db(tmp_path / "future.db")
    conn = sqlite3.connect(tmp_path / "future.db")
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    conn.commit()
    conn.close()
    r = run("db", "check", "--backend", url, "-o", "json")
    assert r.exit_code == 1
    assert any("newer than this assay knows" in p for p in json.loads(r.output)["problems"])

    path = tmp_path / "broken.db"
    url = make_db(path, workflows=40)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'wf_ns_created'").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(path, "r+b") as f:  # scribble over an index page: the table data stays readable
        f.seek((root - 1) * page)
        f.write(b"\x0a" + b"\xff" * (page - 1))
    r = run("db", "check", "--backend", url, "-o", "json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.output)["problems"]


def test_refuses_what_is_not_an_assay_database(tmp_path):
    foreign = tmp_path / "other.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    for cmd in (("check",), ("vacuum",), ("backup", str(tmp_path / "b.db"))):
        r = run("db", *cmd, "--backend", "sqlite:///" + str(foreign))
        assert r.exit_code == 1 and "not an assay database" in r.output, (cmd, r.output)
    r = run("db", "check", "--backend", "sqlite:///" + str(tmp_path / "missing.db"))
    assert r.exit_code == 1 and "no database at" in r.output
    assert not (tmp_path / "missing.db").exists()  # never created


def test_backup_postgres_points_at_pg_dump():
    r = run("db", "backup", "out.dump", "--backend", "postgres://u:secret@127.0.0.1:1/assay")
    assert r.exit_code == 69
    assert "pg_dump" in r.output and "secret" not in r.output


def test_backup_uses_the_database_serve_would_use(tmp_path):
    url = make_db(tmp_path / "env.db")
    dest = tmp_path / "copy.db"
    r = run("db", "backup", str(dest), "-o", "json", env={"DATABASE_URL": url})
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert (
        info["workflows"] == 3 and info["file"] == str(dest) and info["database"] == str(tmp_path / "env.db")
    )
    conn = sqlite3.connect(dest)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    assert conn.execute("SELECT COUNT(*) FROM workflows").fetchone()[0] == 3
    conn.close()
    r = run("db", "backup", str(dest), "--backend", url)
    assert r.exit_code == 1 and "--force" in r.output
    assert run("db", "backup", str(dest), "--backend", url, "--force").exit_code == 0
    r = run("db", "backup", str(tmp_path / "env.db"), "--backend", url, "--force")
    assert r.exit_code == 1 and "database itself" in r.output


def test_vacuum_returns_free_pages(tmp_path):
    path = tmp_path / "v.db"
    url = make_db(path, workflows=200)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM workflows")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = json.loads(run("db", "check", "--backend", url, "-o", "json").output)
    assert before["free_bytes"] > 200_000
    r = run("db", "vacuum", "--backend", url, "-o", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["bytes_after"] < out["bytes_before"] - 200_000
    assert json.loads(run("db", "check", "--backend", url, "-o", "json").output)["free_bytes"] == 0


@pytest.mark.e2e
def test_backup_under_write_load_restores_to_a_working_engine(tmp_path):
    (tmp_path / "live").mkdir()
    eng = start_engine(tmp_path / "live")
    committed: list[str] = []
    stop = threading.Event()
    errors: list[str] = []

    def load(n: int) -> None:
        i = 0
        while not stop.is_set():
            wf_id = f"load-{n}-{i}"
            status, body, _ = http(
                "POST", eng.api + "/workflows", {"workflow_type": "Load", "workflow_id": wf_id}
            )
            if status != 201:
                errors.append(f"{status} {body}")
                return
            committed.append(wf_id)  # acknowledged: durable from here on
            i += 1

    threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(3)]
    restored = None
    try:
        for t in threads:
            t.start()
        wait_until(lambda: len(committed) >= 30, 30, what="some committed starts")
        before = list(committed)  # every start acknowledged before the backup began
        backup = tmp_path / "backup.db"
        proc = subprocess.run(
            [*assay_cmd(), "db", "backup", str(backup), "--backend", "sqlite:///" + eng.db, "-o", "json"],
            capture_output=True,
            text=True,
            env=subprocess_env(None),
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: len(committed) >= len(before) + 10, 30, what="writes going on after the backup")
        stop.set()
        for t in threads:
            t.join(30)
        assert not errors, errors
        # restore: a fresh location, while the original engine still runs (and holds its own lock)
        restore_dir = tmp_path / "restored"
        restore_dir.mkdir()
        os.replace(backup, restore_dir / "engine.db")
        restored = start_engine(restore_dir, db=str(restore_dir / "engine.db"))
        status, rows, _ = http("GET", restored.api + "/workflows?limit=1000")
        assert status == 200
        ids = {r["id"] for r in rows}  # the first page; anything beyond it is looked up one by one
        missing = [
            w for w in before if w not in ids and http("GET", f"{restored.api}/workflows/{w}")[0] != 200
        ]
        assert not missing, f"{len(missing)} acknowledged workflows missing from the backup: {missing[:5]}"
        status, _, _ = http(
            "POST", restored.api + "/workflows", {"workflow_type": "Load", "workflow_id": "after-restore"}
        )
        assert status == 201
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        if restored is not None:
            restored.stop()
        eng.stop()


def behind_the_engines_back(url: str, sql: str) -> None:
    """Run `sql` on the database directly (no engine, no triggers' help)."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :])
        conn.execute(sql)
        conn.commit()
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_check_finds_counters_that_disagree_with_the_rows(tmp_path, backend):
    """The counters behind namespace and queue stats (and deep offsets) are kept by triggers; a bulk load
    with the triggers off, or a bug, would make the stats lie: `db check` recounts and says so."""
    if backend == "sqlite":
        url = make_db(tmp_path / "c.db")
    else:
        from tests import pg

        if not pg.available():
            pytest.skip("no PostgreSQL here")
        url = pg.fresh_database()
        url_store = open_store(url)  # migrates
        with url_store.tx() as tx:
            tx.insert_workflow(
                {"id": "wf-0", "namespace": "main", "run_id": "r", "workflow_type": "T", "task_queue": "default",
                 "status": "PENDING", "input": None, "created_at": 1.0, "updated_at": 1.0, "needs_dispatch": 1,
                 "ready_at": 1.0, "last_seq": 0}
            )  # fmt: skip
        url_store.close()
    r = run("db", "check", "--backend", url, "-o", "json")
    assert r.exit_code == 0 and json.loads(r.output)["problems"] == [], r.output
    behind_the_engines_back(
        url, "UPDATE workflow_counts SET n = n + 5 WHERE namespace = 'main' AND status = 'PENDING'"
    )
    r = run("db", "check", "--backend", url, "-o", "json")
    assert r.exit_code == 1, r.output
    (problem,) = json.loads(r.output)["problems"]
    assert problem.startswith("workflow_counts (namespace stats") and "main, PENDING: counted" in problem
    assert ("counted 8, actually 3" if backend == "sqlite" else "counted 6, actually 1") in problem
    behind_the_engines_back(url, "UPDATE workflow_buckets SET n = n - 1 WHERE dim = 't'")  # counts by type
    r = run("db", "check", "--backend", url, "-o", "json")
    problems = json.loads(r.output)["problems"]
    assert r.exit_code == 1 and len(problems) == 2, r.output
    assert problems[1].startswith("workflow_buckets (deep offsets) disagrees with the rows for 2 key(s)")
