"""API test fixtures: a client per URL prefix, a populated engine, and a dump of every table."""

from __future__ import annotations

import pytest

from tests.wsgi import Client

PREFIXES = ["/api/v1", "/api/v1/engine/workflow"]


@pytest.fixture(params=PREFIXES, ids=["v1", "engine-workflow"])
def api(app, request):
    return Client(app, prefix=request.param)


def dump(store) -> dict[str, list]:
    """Every row of every table (SQLite: via the connection of a read transaction)."""
    out: dict[str, list] = {}
    with store.read() as tx:
        conn = tx.conn
        if store.dialect == "sqlite":
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        else:  # pragma: no cover - postgres
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                ).fetchall()
            ]
        for t in sorted(tables):
            rows = conn.execute(f"SELECT * FROM {t}").fetchall()
            out[t] = sorted((tuple(r) for r in rows), key=repr)
    return out


class World:
    """A small populated engine: ids the API tests refer to."""

    def __init__(self, engine) -> None:
        from tests.engine.support import Worker, act, start

        self.engine = engine
        w = Worker(engine)
        self.worker_id = w.id
        start(engine, "wf-1", input={"n": 1}, search_attributes={"tier": "gold", "n": 1})
        w.run(
            "wf-1",
            act("x", 1, input={"a": [1, 2]}),
            act("y", 2),
            {"type": "RecordSnapshot", "state": {"q": 1}},
        )
        self.running_activity = w.claim_activity()["id"]
        self.completed_activity = w.claim_activity()["id"]
        engine.complete_activity(self.completed_activity, {"ok": True}, w.id)
        w.run("wf-1", act("z", 3))
        self.pending_activity = engine.list_events("wf-1")[-1]["payload"]["activity_id"]
        start(engine, "done")
        w.run("done", {"type": "CompleteWorkflow", "result": [1]})
        engine.create_schedule({"name": "s1", "workflow_type": "R", "cron_expr": "0 0 * * * *"})
        engine.create_namespace("team")


@pytest.fixture
def world(engine):
    return World(engine)
