"""The Tx verbs in portable SQL (`?` placeholders). Dialects override the few places that differ."""

from __future__ import annotations

import json
from typing import Any

from assay.store.base import TERMINAL, Record, Tx

JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "workflows": ("input", "result", "search_attributes"),
    "workflow_activities": ("input", "result", "non_retryable_errors", "heartbeat_details"),
    "workflow_events": ("payload",),
    "workflow_signals": ("payload",),
    "workflow_schedules": ("input",),
    "workflow_workers": ("workflows", "activities"),
    "workflow_snapshots": ("state_json",),
    "workflow_side_effects": ("value",),
}
BOOL_COLUMNS: dict[str, tuple[str, ...]] = {
    "workflow_schedules": ("paused",),
    "workflows": ("needs_dispatch", "cancel_requested"),
    "workflow_activities": ("cancel_requested",),
}
_TERMINAL_SQL = "(" + ",".join(f"'{s}'" for s in TERMINAL) + ")"


def dump_json(value: Any) -> str | None:
    if value is None:
        return None
    # allow_nan=False: never store text that is not JSON (SQLite's JSON functions would reject the row)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)


def load_json(text: Any) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):  # already decoded by the driver (Postgres JSONB)
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


class SqlTx(Tx):
    """Shared implementation. `conn` is a DB-API connection inside an open transaction."""

    #: appended to single-row claim selects (Postgres: FOR UPDATE SKIP LOCKED)
    lock_clause = ""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    # --- plumbing -----------------------------------------------------------------------------
    def q(self, sql: str) -> str:
        return sql

    def _exec(self, sql: str, params: tuple | list = ()) -> Any:
        return self.conn.execute(self.q(sql), tuple(params))

    def _rows(self, table: str, sql: str, params: tuple | list = ()) -> list[Record]:
        cur = self._exec(sql, params)
        cols = [d[0] for d in cur.description]
        return [self._decode(table, dict(zip(cols, row, strict=True))) for row in cur.fetchall()]

    def _row(self, table: str, sql: str, params: tuple | list = ()) -> Record | None:
        rows = self._rows(table, sql, params)
        return rows[0] if rows else None

    def _scalar(self, sql: str, params: tuple | list = ()) -> Any:
        row = self._exec(sql, params).fetchone()
        return None if row is None else row[0]

    def _decode(self, table: str, rec: Record) -> Record:
        for c in JSON_COLUMNS.get(table, ()):
            if c in rec:
                rec[c] = load_json(rec[c])
        for c in BOOL_COLUMNS.get(table, ()):
            if c in rec and rec[c] is not None:
                rec[c] = bool(rec[c])
        return rec

    def _encode(self, table: str, fields: dict[str, Any]) -> dict[str, Any]:
        out = dict(fields)
        for c in JSON_COLUMNS.get(table, ()):
            if c in out:
                out[c] = self.encode_json(out[c])
        for c in BOOL_COLUMNS.get(table, ()):
            if c in out and out[c] is not None:
                out[c] = self.encode_bool(out[c])
        return out

    def encode_json(self, value: Any) -> Any:
        return dump_json(value)

    def encode_bool(self, value: Any) -> Any:
        return 1 if value else 0

    def _insert(
        self,
        table: str,
        fields: dict[str, Any],
        returning: str | None = None,
        on_conflict_nothing: bool = False,
    ) -> Any:
        f = self._encode(table, fields)
        cols = ",".join(f)
        marks = ",".join("?" for _ in f)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
        if on_conflict_nothing:
            sql += " ON CONFLICT DO NOTHING"
        if returning:
            sql += f" RETURNING {returning}"
            row = self._exec(sql, list(f.values())).fetchone()
            return None if row is None else row[0]
        cur = self._exec(sql, list(f.values()))
        return cur.rowcount

    def _update(self, table: str, where: dict[str, Any], fields: dict[str, Any]) -> int:
        if not fields:
            return 0
        f = self._encode(table, fields)
        sets = ",".join(f"{c} = ?" for c in f)
        conds = " AND ".join(f"{c} = ?" for c in where)
        cur = self._exec(f"UPDATE {table} SET {sets} WHERE {conds}", [*f.values(), *where.values()])
        return cur.rowcount

    # --- namespaces -------------------------------------------------------------------------
    def insert_namespace(self, name: str, now: float) -> bool:
        return self._insert("namespaces", {"name": name, "created_at": now}, on_conflict_nothing=True) == 1

    def get_namespace(self, name: str) -> Record | None:
        return self._row("namespaces", "SELECT name, created_at FROM namespaces WHERE name = ?", (name,))

    def list_namespaces(self) -> list[Record]:
        return self._rows("namespaces", "SELECT name, created_at FROM namespaces ORDER BY name")

    def delete_namespace(self, name: str) -> bool:
        return self._exec("DELETE FROM namespaces WHERE name = ?", (name,)).rowcount == 1

    def namespace_stats(self, name: str) -> Record:
        counts = dict(
            self._exec(
                "SELECT status, COUNT(*) FROM workflows WHERE namespace = ? GROUP BY status", (name,)
            ).fetchall()
        )
        return {
            "namespace": name,
            "total_workflows": sum(counts.values()),
            "running": counts.get("RUNNING", 0),
            "pending": counts.get("PENDING", 0),
            "completed": counts.get("COMPLETED", 0),
            "failed": counts.get("FAILED", 0),
            "cancelled": counts.get("CANCELLED", 0),
            "schedules": self._scalar("SELECT COUNT(*) FROM workflow_schedules WHERE namespace = ?", (name,)),
            "workers": self._scalar("SELECT COUNT(*) FROM workflow_workers WHERE namespace = ?", (name,)),
        }

    # --- workflows ----------------------------------------------------------------------------
    def insert_workflow(self, rec: Record) -> bool:
        return self._insert("workflows", rec, on_conflict_nothing=True) == 1

    def get_workflow(self, wf_id: str) -> Record | None:
        return self._row("workflows", "SELECT * FROM workflows WHERE id = ?", (wf_id,))

    def update_workflow(self, wf_id: str, **fields: Any) -> None:
        self._update("workflows", {"id": wf_id}, fields)

    #: SQL that holds when search_attributes is a JSON object
    search_object_condition = "search_attributes IS NOT NULL AND json_type(search_attributes) = 'object'"

    def search_condition(self, key: str, value: Any) -> tuple[str, list[Any]]:
        """SQL for `search_attributes[key] == value` with JSON-typed equality. The key is a top-level
        literal (no JSON-path interpretation: dots, quotes and brackets are just characters)."""
        each = "EXISTS (SELECT 1 FROM json_each(search_attributes) j WHERE j.key = ? AND "
        if isinstance(value, bool):
            return (each + "j.type = ?)", [key, "true" if value else "false"])
        if isinstance(value, (int, float)):
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                value = float(value)  # SQLite reads such JSON numbers as reals too (and cannot bind the int)
            return (each + "j.type IN ('integer','real') AND j.value = ?)", [key, value])
        if isinstance(value, str):
            return (each + "j.type = 'text' AND j.value = ?)", [key, value])
        return ("(0 = 1)", [])  # null / arrays / objects never match

    def list_workflows(
        self,
        *,
        namespace=None,
        status=None,
        workflow_type=None,
        search=None,
        parent_id=None,
        claimed_by=None,
        task_queue=None,
        limit=50,
        offset=0,
    ) -> list[Record]:
        conds: list[str] = []
        params: list[Any] = []
        for col, val in (
            ("namespace", namespace),
            ("status", status),
            ("workflow_type", workflow_type),
            ("parent_id", parent_id),
            ("claimed_by", claimed_by),
            ("task_queue", task_queue),
        ):
            if val is not None:
                conds.append(f"{col} = ?")
                params.append(val)
        if search:
            conds.append(self.search_object_condition)
            for k, v in search.items():
                c, p = self.search_condition(k, v)
                conds.append(c)
                params.extend(p)
        sql = "SELECT * FROM workflows"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            params += [int(limit), int(offset)]
        elif offset:
            sql += " LIMIT -1 OFFSET ?" if self.q("?") == "?" else " OFFSET ?"
            params.append(int(offset))
        return self._rows("workflows", sql, params)

    def list_children(self, parent_id: str) -> list[Record]:
        return self._rows(
            "workflows", "SELECT * FROM workflows WHERE parent_id = ? ORDER BY created_at, id", (parent_id,)
        )

    def mark_dispatchable(self, wf_id: str, now: float) -> None:
        self._exec(
            f"""UPDATE workflows SET ready_at = CASE WHEN needs_dispatch = 1 THEN ready_at ELSE ? END,
                       needs_dispatch = 1 WHERE id = ? AND status NOT IN {_TERMINAL_SQL}""",
            (now, wf_id),
        )

    def claim_workflow_task(self, queue, namespace, worker_id, now) -> Record | None:
        sql = f"""SELECT id FROM workflows WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL
                  AND task_queue = ? AND status NOT IN {_TERMINAL_SQL}"""
        params: list[Any] = [queue]
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        sql += " ORDER BY ready_at, id LIMIT 1" + self.lock_clause
        wf_id = self._scalar(sql, params)
        if wf_id is None:
            return None
        rec = self.get_workflow(wf_id)
        assert rec is not None
        prev = rec["status"]
        fields: dict[str, Any] = {
            "dispatch_claimed_by": worker_id,
            "dispatch_last_heartbeat": now,
            "needs_dispatch": False,
            "claimed_by": worker_id,
            "dispatch_count": rec["dispatch_count"] + 1,
        }
        if prev == "PENDING":
            fields.update(status="RUNNING", updated_at=now)
        self.update_workflow(wf_id, **fields)
        rec.update(fields)
        rec["needs_dispatch"] = False
        rec["previous_status"] = prev
        return rec

    def release_lease(self, wf_id: str, worker_id: str) -> None:
        self._exec(
            "UPDATE workflows SET dispatch_claimed_by = NULL, dispatch_last_heartbeat = NULL "
            "WHERE id = ? AND dispatch_claimed_by = ?",
            (wf_id, worker_id),
        )

    def extend_leases(self, worker_id: str, now: float) -> int:
        return self._exec(
            "UPDATE workflows SET dispatch_last_heartbeat = ? WHERE dispatch_claimed_by = ?", (now, worker_id)
        ).rowcount

    def recover_stale_leases(self, cutoff: float) -> list[str]:
        ids = [
            r[0]
            for r in self._exec(
                "SELECT id FROM workflows WHERE dispatch_claimed_by IS NOT NULL AND dispatch_last_heartbeat <= ?",
                (cutoff,),
            ).fetchall()
        ]
        self._release_for_redispatch(ids)
        return ids

    def _release_for_redispatch(self, ids: list[str]) -> None:
        for wf_id in ids:
            self._exec(
                f"""UPDATE workflows SET dispatch_claimed_by = NULL, dispatch_last_heartbeat = NULL,
                    needs_dispatch = CASE WHEN status IN {_TERMINAL_SQL} THEN 0 ELSE 1 END,
                    ready_at = COALESCE(ready_at, updated_at) WHERE id = ?""",
                (wf_id,),
            )

    def oldest_lease(self) -> float | None:
        return self._scalar(
            "SELECT MIN(dispatch_last_heartbeat) FROM workflows WHERE dispatch_claimed_by IS NOT NULL"
        )

    def dispatchable_queues(self) -> list[str]:
        return [
            r[0]
            for r in self._exec(
                f"""SELECT DISTINCT task_queue FROM workflows WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL
                AND status NOT IN {_TERMINAL_SQL}"""
            ).fetchall()
        ]

    # --- events -----------------------------------------------------------------------------
    def append_event(self, wf_id: str, event_type: str, payload: Any, now: float) -> int:
        seq = self._scalar(
            "UPDATE workflows SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq", (wf_id,)
        )
        if seq is None:
            raise KeyError(wf_id)
        self._insert(
            "workflow_events",
            {
                "workflow_id": wf_id,
                "seq": seq,
                "event_type": event_type,
                "payload": payload,
                "timestamp": now,
            },
        )
        return int(seq)

    def list_events(self, wf_id: str, after_seq: int = 0) -> list[Record]:
        return self._rows(
            "workflow_events",
            "SELECT id, workflow_id, seq, event_type, payload, timestamp "
            "FROM workflow_events WHERE workflow_id = ? AND seq > ? ORDER BY seq",
            (wf_id, after_seq),
        )

    # --- activities ---------------------------------------------------------------------------
    def insert_activity(self, rec: Record) -> int:
        return int(self._insert("workflow_activities", rec, returning="id"))

    def get_activity(self, act_id: int) -> Record | None:
        return self._row("workflow_activities", "SELECT * FROM workflow_activities WHERE id = ?", (act_id,))

    def get_activity_by_seq(self, wf_id: str, seq: int) -> Record | None:
        return self._row(
            "workflow_activities",
            "SELECT * FROM workflow_activities WHERE workflow_id = ? AND seq = ?",
            (wf_id, seq),
        )

    def update_activity(self, act_id: int, **fields: Any) -> None:
        self._update("workflow_activities", {"id": act_id}, fields)

    def list_activities(self, wf_id: str, statuses=None) -> list[Record]:
        sql = "SELECT * FROM workflow_activities WHERE workflow_id = ?"
        params: list[Any] = [wf_id]
        if statuses:
            sql += " AND status IN (" + ",".join("?" for _ in statuses) + ")"
            params += list(statuses)
        return self._rows("workflow_activities", sql + " ORDER BY seq", params)

    def claim_activity(self, queue, namespace, worker_id, now) -> Record | None:
        if namespace is None:
            sql = """SELECT a.id FROM workflow_activities a WHERE a.status = 'PENDING' AND a.task_queue = ?
                     AND a.scheduled_at <= ? ORDER BY a.scheduled_at, a.id LIMIT 1"""
            params: list[Any] = [queue, now]
        else:
            sql = """SELECT a.id FROM workflow_activities a JOIN workflows w ON w.id = a.workflow_id
                     WHERE a.status = 'PENDING' AND a.task_queue = ? AND a.scheduled_at <= ? AND w.namespace = ?
                     ORDER BY a.scheduled_at, a.id LIMIT 1"""
            params = [queue, now, namespace]
        act_id = self._scalar(sql + self.lock_clause.replace("FOR UPDATE", "FOR UPDATE OF a"), params)
        if act_id is None:
            return None
        self.update_activity(
            act_id, status="RUNNING", claimed_by=worker_id, started_at=now, last_heartbeat=None
        )
        return self.get_activity(act_id)

    def expired_activities(self, now: float, grace_since: float, limit: int = 200) -> list[Record]:
        return self._rows(
            "workflow_activities",
            """SELECT * FROM workflow_activities WHERE status = 'RUNNING' AND (
                started_at + start_to_close_secs <= ?
                OR (heartbeat_timeout_secs IS NOT NULL AND COALESCE(last_heartbeat, started_at) + heartbeat_timeout_secs <= ?
                    AND ? + heartbeat_timeout_secs <= ?)) ORDER BY id LIMIT ?""",
            (now, now, grace_since, now, limit),
        )

    def next_activity_deadline(self, grace_since: float) -> float | None:
        a = self._scalar(
            "SELECT MIN(started_at + start_to_close_secs) FROM workflow_activities WHERE status = 'RUNNING'"
        )
        rows = self._exec("""SELECT COALESCE(last_heartbeat, started_at), heartbeat_timeout_secs FROM workflow_activities
                             WHERE status = 'RUNNING' AND heartbeat_timeout_secs IS NOT NULL""").fetchall()
        cands = [x for x in [a] if x is not None]
        cands += [max(t, grace_since) + h for t, h in rows if t is not None]
        return min(cands) if cands else None

    def next_pending_activity(self, after: float) -> Record | None:
        return self._row(
            "workflow_activities",
            """SELECT id, task_queue, scheduled_at FROM workflow_activities
                         WHERE status = 'PENDING' AND scheduled_at > ? ORDER BY scheduled_at LIMIT 1""",
            (after,),
        )

    def pending_queues_due(self, after: float, now: float) -> list[str]:
        return [
            r[0]
            for r in self._exec(
                """SELECT DISTINCT task_queue FROM workflow_activities
                   WHERE status = 'PENDING' AND scheduled_at > ? AND scheduled_at <= ?""",
                (after, now),
            ).fetchall()
        ]

    def lost_worker_activities(self, now: float, grace_since: float) -> list[Record]:
        return self._rows(
            "workflow_activities",
            """SELECT a.* FROM workflow_activities a
                JOIN workflow_workers w ON w.id = a.claimed_by
                WHERE a.status = 'RUNNING' AND w.lost_after_secs IS NOT NULL
                AND w.last_heartbeat + w.lost_after_secs < ? AND ? + w.lost_after_secs < ?""",
            (now, grace_since, now),
        )

    def release_lost_worker_leases(self, now: float, grace_since: float) -> list[str]:
        ids = [
            r[0]
            for r in self._exec(
                """SELECT wf.id FROM workflows wf JOIN workflow_workers w
                ON w.id = wf.dispatch_claimed_by WHERE w.lost_after_secs IS NOT NULL
                AND w.last_heartbeat + w.lost_after_secs < ? AND ? + w.lost_after_secs < ?""",
                (now, grace_since, now),
            ).fetchall()
        ]
        self._release_for_redispatch(ids)
        return ids

    def release_worker_leases(self, worker_id: str, now: float) -> list[str]:
        ids = [r[0] for r in self._exec("SELECT id FROM workflows WHERE dispatch_claimed_by = ?",
                                        (worker_id,)).fetchall()]
        self._release_for_redispatch(ids)
        return ids

    def delete_worker(self, worker_id: str) -> bool:
        return self._exec("DELETE FROM workflow_workers WHERE id = ?", (worker_id,)).rowcount == 1

    def activities_held_by(self, worker_id: str) -> list[int]:
        return [
            r[0]
            for r in self._exec(
                "SELECT id FROM workflow_activities WHERE status = 'RUNNING' AND claimed_by = ?", (worker_id,)
            ).fetchall()
        ]

    # --- timers, signals, side effects, snapshots ------------------------------------------------
    def insert_timer(self, wf_id: str, seq: int, fire_at: float) -> int | None:
        return self._insert(
            "workflow_timers",
            {"workflow_id": wf_id, "seq": seq, "fire_at": fire_at, "fired": 0},
            returning="id",
            on_conflict_nothing=True,
        )

    def due_timers(self, now: float, limit: int = 500) -> list[Record]:
        return self._rows(
            "workflow_timers",
            """SELECT id, workflow_id, seq, fire_at FROM workflow_timers
                          WHERE fired = 0 AND fire_at <= ? ORDER BY fire_at, id LIMIT ?""",
            (now, limit),
        )

    def mark_timer_fired(self, timer_id: int) -> bool:
        return (
            self._exec(
                "UPDATE workflow_timers SET fired = 1 WHERE id = ? AND fired = 0", (timer_id,)
            ).rowcount
            == 1
        )

    def cancel_timers(self, wf_id: str) -> int:
        return self._exec(
            "UPDATE workflow_timers SET fired = 1 WHERE workflow_id = ? AND fired = 0", (wf_id,)
        ).rowcount

    def next_timer_due(self) -> float | None:
        return self._scalar("SELECT MIN(fire_at) FROM workflow_timers WHERE fired = 0")

    def insert_signal(self, wf_id: str, name: str, payload: Any, now: float) -> None:
        self._insert(
            "workflow_signals", {"workflow_id": wf_id, "name": name, "payload": payload, "received_at": now}
        )

    def insert_side_effect(self, wf_id: str, seq: int, name: str, value: Any) -> bool:
        return (
            self._insert(
                "workflow_side_effects",
                {"workflow_id": wf_id, "seq": seq, "name": name, "value": value},
                on_conflict_nothing=True,
            )
            == 1
        )

    def upsert_snapshot(self, wf_id: str, event_seq: int, state: Any, now: float) -> None:
        self._exec(
            """INSERT INTO workflow_snapshots (workflow_id, event_seq, state_json, created_at)
                      VALUES (?, ?, ?, ?) ON CONFLICT (workflow_id) DO UPDATE SET event_seq = excluded.event_seq,
                      state_json = excluded.state_json, created_at = excluded.created_at""",
            (wf_id, event_seq, self.encode_json(state), now),
        )
        self._exec("UPDATE workflows SET state_seq = ? WHERE id = ?", (event_seq, wf_id))

    def get_snapshot(self, wf_id: str) -> Record | None:
        return self._row(
            "workflow_snapshots", "SELECT * FROM workflow_snapshots WHERE workflow_id = ?", (wf_id,)
        )

    # --- schedules ----------------------------------------------------------------------------
    def insert_schedule(self, rec: Record) -> bool:
        return self._insert("workflow_schedules", rec, on_conflict_nothing=True) == 1

    def get_schedule(self, namespace: str, name: str) -> Record | None:
        return self._row(
            "workflow_schedules",
            "SELECT * FROM workflow_schedules WHERE namespace = ? AND name = ?",
            (namespace, name),
        )

    def list_schedules(self, namespace: str | None) -> list[Record]:
        if namespace is None:
            return self._rows(
                "workflow_schedules", "SELECT * FROM workflow_schedules ORDER BY namespace, name"
            )
        return self._rows(
            "workflow_schedules",
            "SELECT * FROM workflow_schedules WHERE namespace = ? ORDER BY name",
            (namespace,),
        )

    def update_schedule(self, namespace: str, name: str, **fields: Any) -> None:
        self._update("workflow_schedules", {"namespace": namespace, "name": name}, fields)

    def delete_schedule(self, namespace: str, name: str) -> bool:
        return (
            self._exec(
                "DELETE FROM workflow_schedules WHERE namespace = ? AND name = ?", (namespace, name)
            ).rowcount
            == 1
        )

    def due_schedules(self, now: float) -> list[Record]:
        return self._rows(
            "workflow_schedules",
            """SELECT * FROM workflow_schedules WHERE paused = 0
                          AND next_run_at IS NOT NULL AND next_run_at <= ? ORDER BY next_run_at, namespace, name""",
            (now,),
        )

    def next_schedule_due(self) -> float | None:
        return self._scalar("SELECT MIN(next_run_at) FROM workflow_schedules WHERE paused = 0")

    def schedules_with_queued_fires(self) -> list[Record]:
        return self._rows(
            "workflow_schedules",
            "SELECT * FROM workflow_schedules WHERE queued_fires > 0 AND paused = 0 ORDER BY namespace, name",
        )

    # --- workers and queues --------------------------------------------------------------------
    def insert_worker(self, rec: Record) -> None:
        self._insert("workflow_workers", rec)

    def get_worker(self, worker_id: str) -> Record | None:
        return self._row("workflow_workers", "SELECT * FROM workflow_workers WHERE id = ?", (worker_id,))

    def touch_worker(self, worker_id: str, now: float) -> bool:
        return (
            self._exec(
                "UPDATE workflow_workers SET last_heartbeat = ? WHERE id = ?", (now, worker_id)
            ).rowcount
            == 1
        )

    def list_workers(self, namespace: str | None) -> list[Record]:
        if namespace is None:
            return self._rows("workflow_workers", "SELECT * FROM workflow_workers ORDER BY registered_at, id")
        return self._rows(
            "workflow_workers",
            "SELECT * FROM workflow_workers WHERE namespace = ? ORDER BY registered_at, id",
            (namespace,),
        )

    def reap_workers(self, cutoff: float) -> int:
        # A worker that declared a heartbeat interval keeps its row while it still holds work: the
        # lost-worker recovery (which needs the row) re-queues that work first.
        return self._exec(
            """DELETE FROM workflow_workers WHERE last_heartbeat < ? AND NOT (lost_after_secs IS NOT NULL AND (
                EXISTS (SELECT 1 FROM workflow_activities a WHERE a.status = 'RUNNING'
                        AND a.claimed_by = workflow_workers.id)
                OR EXISTS (SELECT 1 FROM workflows wf WHERE wf.dispatch_claimed_by = workflow_workers.id)))""",
            (cutoff,),
        ).rowcount

    def oldest_worker_heartbeat(self) -> float | None:
        return self._scalar("SELECT MIN(last_heartbeat) FROM workflow_workers")

    def queue_stats(self, namespace: str) -> list[Record]:
        stats: dict[str, Record] = {}

        def row(q: str) -> Record:
            return stats.setdefault(
                q,
                {
                    "queue": q,
                    "pending_activities": 0,
                    "running_activities": 0,
                    "pending_workflows": 0,
                    "running_workflows": 0,
                    "workers": 0,
                },
            )

        for q, st, n in self._exec(
            """SELECT a.task_queue, a.status, COUNT(*) FROM workflow_activities a
                JOIN workflows w ON w.id = a.workflow_id WHERE w.namespace = ?
                GROUP BY a.task_queue, a.status""",
            (namespace,),
        ).fetchall():
            r = row(q)
            if st == "PENDING":
                r["pending_activities"] += n
            elif st == "RUNNING":
                r["running_activities"] += n
        for q, n_ready, n_held in self._exec(
            f"""SELECT task_queue,
                SUM(CASE WHEN needs_dispatch = 1 AND dispatch_claimed_by IS NULL THEN 1 ELSE 0 END),
                SUM(CASE WHEN dispatch_claimed_by IS NOT NULL THEN 1 ELSE 0 END)
                FROM workflows WHERE namespace = ? AND status NOT IN {_TERMINAL_SQL} GROUP BY task_queue""",
            (namespace,),
        ).fetchall():
            r = row(q)
            r["pending_workflows"] += int(n_ready or 0)
            r["running_workflows"] += int(n_held or 0)
        for q, n in self._exec(
            "SELECT task_queue, COUNT(*) FROM workflow_workers WHERE namespace = ? GROUP BY task_queue",
            (namespace,),
        ).fetchall():
            row(q)["workers"] += n
        return [stats[k] for k in sorted(stats)]

    # --- api keys ---------------------------------------------------------------------------
    def insert_api_key(self, key_hash: str, prefix: str, label: str | None, now: float) -> None:
        self._insert("api_keys", {"key_hash": key_hash, "prefix": prefix, "label": label, "created_at": now})

    def list_api_keys(self) -> list[Record]:
        return self._rows("api_keys", "SELECT * FROM api_keys ORDER BY created_at DESC, prefix")

    def find_api_key(self, key_hash: str) -> Record | None:
        return self._row("api_keys", "SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,))

    def touch_api_key(self, key_hash: str, now: float) -> None:
        self._exec("UPDATE api_keys SET last_used_at = ? WHERE key_hash = ?", (now, key_hash))

    def api_keys_by_prefix(self, prefix: str) -> list[Record]:
        return self._rows("api_keys", "SELECT * FROM api_keys WHERE prefix = ?", (prefix,))

    def delete_api_key(self, key_hash: str) -> bool:
        return self._exec("DELETE FROM api_keys WHERE key_hash = ?", (key_hash,)).rowcount == 1

    def count_api_keys(self) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM api_keys"))

    # --- archival -------------------------------------------------------------------------------
    def archivable_workflows(self, before: float, limit: int) -> list[Record]:
        return self._rows(
            "workflows",
            f"""SELECT * FROM workflows WHERE status IN {_TERMINAL_SQL}
                          AND completed_at < ? AND archived_at IS NULL ORDER BY completed_at LIMIT ?""",
            (before, limit),
        )

    def purge_workflow_history(self, wf_id: str, archived_at: float, archive_uri: str | None) -> None:
        for table in (
            "workflow_events",
            "workflow_activities",
            "workflow_timers",
            "workflow_signals",
            "workflow_side_effects",
            "workflow_snapshots",
        ):
            self._exec(f"DELETE FROM {table} WHERE workflow_id = ?", (wf_id,))
        self.update_workflow(wf_id, archived_at=archived_at, archive_uri=archive_uri)

    def delete_workflow(self, wf_id: str) -> None:
        self.purge_workflow_history(wf_id, 0, None)
        self._exec("DELETE FROM workflows WHERE id = ?", (wf_id,))
