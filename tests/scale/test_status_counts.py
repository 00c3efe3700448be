"""Namespace stats come from counts kept with the writes (SQLite: triggers on `workflows`): after every
status transition they equal a full recount."""

from __future__ import annotations

from assay.protocol import CommandType
from tests.engine.support import Worker, start


def recount(engine, ns: str) -> dict[str, int]:
    with engine.store.read() as tx:
        rows = tx._exec("SELECT status, COUNT(*) FROM workflows WHERE namespace = ? GROUP BY status", (ns,))
        return {st: int(n) for st, n in rows.fetchall()}


def check(engine, ns: str = "main") -> dict[str, int]:
    real = recount(engine, ns)
    stats = engine.namespace_stats(ns)
    assert stats["total_workflows"] == sum(real.values())
    for st in ("running", "pending", "completed", "failed", "cancelled"):
        assert stats[st] == real.get(st.upper(), 0), (st, stats, real)
    with engine.store.read() as tx:
        assert tx.status_counts(ns) == {k: v for k, v in real.items() if v}
    return real


def test_counts_follow_every_transition(engine, clock):
    w = Worker(engine)
    assert check(engine) == {}
    for i in range(6):
        start(engine, f"w{i}")
    assert check(engine) == {"PENDING": 6}
    w.run("w0", {"type": CommandType.CompleteWorkflow, "result": 1})
    w.run("w1", {"type": CommandType.FailWorkflow, "error": "boom"})
    assert check(engine) == {"PENDING": 4, "COMPLETED": 1, "FAILED": 1}
    engine.cancel("w2")
    engine.terminate("w3")
    check(engine)
    reset = engine.reset_workflow("w3", to_event=1)  # a new run beside the terminated one
    assert check(engine)[reset["status"]] >= 1
    engine.terminate(reset["id"])
    check(engine)
    task = w.claim()
    assert task is not None
    engine.submit_commands(task["id"], w.id, [{"type": CommandType.ContinueAsNew, "input": {"r": 2}}])
    real = check(engine)
    assert sum(real.values()) == 8  # the reset run and the run continued as new count too
    engine.create_namespace("team")
    start(engine, "t1", namespace="team")
    assert check(engine, "team") == {"PENDING": 1}
    # archival purge keeps the row (and its count); retention delete drops rows and counts
    assert engine.mark_archived("w0", "file:///archive/w0.json")
    assert check(engine)["COMPLETED"] == 2  # w0 and the run that continued as new
    clock.advance(10_000)
    assert engine.delete_expired(1.0) >= 5  # the continued run, w1, w2, w3 and its reset run
    real = check(engine)
    assert real.get("COMPLETED") == 1 and "FAILED" not in real


def recount_queues(engine, ns: str) -> dict[str, tuple[int, int]]:
    with engine.store.read() as tx:
        rows = tx._exec(
            """SELECT a.task_queue, a.status, COUNT(*) FROM workflow_activities a
               JOIN workflows w ON w.id = a.workflow_id WHERE w.namespace = ? GROUP BY 1, 2""",
            (ns,),
        ).fetchall()
    out: dict[str, list[int]] = {}
    for q, st, n in rows:
        slot = out.setdefault(q, [0, 0])
        if st == "PENDING":
            slot[0] += n
        elif st == "RUNNING":
            slot[1] += n
    return {q: (p, r) for q, (p, r) in out.items() if p or r}


def check_queues(engine, ns: str = "main") -> dict[str, tuple[int, int]]:
    real = recount_queues(engine, ns)
    got = {
        s["queue"]: (s["pending_activities"], s["running_activities"])
        for s in engine.queue_stats(ns)
        if s["pending_activities"] or s["running_activities"]
    }
    assert got == real
    return real


def test_activity_counts_follow_every_transition(engine, clock):
    from tests.engine.support import act

    w = Worker(engine)
    start(engine, "a1")
    start(engine, "a2")
    w.run("a1", act("x", 1), act("y", 2, task_queue="other"))
    assert check_queues(engine) == {"default": (1, 0), "other": (1, 0)}
    first = w.claim_activity()
    assert check_queues(engine) == {"default": (0, 1), "other": (1, 0)}
    w.fail(first["id"], "boom")  # retried: back to PENDING (later)
    assert check_queues(engine)["default"] == (1, 0)
    clock.advance(60)
    again = w.claim_activity()
    w.complete(again["id"], 1)
    assert check_queues(engine) == {"other": (1, 0)}
    w.run("a2", act("z", 1))
    engine.terminate("a2")  # its pending activity is cancelled
    check_queues(engine)
    engine.terminate("a1")
    check_queues(engine)
    clock.advance(10_000)
    engine.delete_expired(1.0)
    assert check_queues(engine) == recount_queues(engine, "main")


def test_counts_stay_exact_under_concurrent_writers(engine):
    """Several connections write at once (Postgres spreads each counter over shards; the sums stay exact)."""
    import threading

    from tests.engine.support import start

    def run(t: int) -> None:
        for i in range(15):
            start(engine, f"c{t}-{i}")
            if i % 3 == 0:
                engine.terminate(f"c{t}-{i}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert check(engine) == {"PENDING": 40, "FAILED": 20}
