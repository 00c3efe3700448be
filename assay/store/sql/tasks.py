"""Tx verbs: activities, timers, signals, side effects, snapshots."""

from __future__ import annotations

from typing import Any

from assay.protocol import ActivityStatus
from assay.store.base import Record
from assay.store.sql.core import ACT_PENDING_SQL as _PENDING
from assay.store.sql.core import ACT_RUNNING_SQL as _RUNNING
from assay.store.sql.core import SqlBase, opt_float

LIVE_ACTIVITY = f"'{ActivityStatus.PENDING.value}', '{ActivityStatus.RUNNING.value}'"


class TaskVerbs(SqlBase):
    # --- activities ---------------------------------------------------------------------------
    def insert_activity(self, rec: Record) -> int:
        act_id = self._insert("workflow_activities", rec, returning="id")
        assert act_id is not None
        return act_id

    def insert_activity_if_new(self, rec: Record) -> Record | None:
        f = self._encode("workflow_activities", rec)
        sql = (
            f"INSERT INTO workflow_activities ({','.join(f)}) VALUES ({','.join('?' for _ in f)}) "
            "ON CONFLICT DO NOTHING RETURNING *"
        )
        return self._row("workflow_activities", sql, list(f.values()))

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

    def update_activity_if(self, seen: Record, **fields: Any) -> bool:
        f = self._encode("workflow_activities", fields)
        sets = ",".join(f"{c} = ?" for c in f)
        held = "claimed_by IS NULL" if seen["claimed_by"] is None else "claimed_by = ?"
        params = [*f.values(), seen["id"], seen["status"], seen["attempt"]]
        params += [] if seen["claimed_by"] is None else [seen["claimed_by"]]
        sql = f"UPDATE workflow_activities SET {sets} WHERE id = ? AND status = ? AND attempt = ? AND {held}"
        return bool(self._exec(sql, params).rowcount == 1)

    def list_activities(self, wf_id: str, statuses: tuple[str, ...] | None = None) -> list[Record]:
        sql = "SELECT * FROM workflow_activities WHERE workflow_id = ?"
        params: list[Any] = [wf_id]
        if statuses:
            sql += " AND status IN (" + ",".join("?" for _ in statuses) + ")"
            params += list(statuses)
        return self._rows("workflow_activities", sql + " ORDER BY seq", params)

    def _claimable_sql(self, namespace: str | None) -> str:
        if namespace is None:
            sql = f"""SELECT a.id FROM workflow_activities a WHERE a.status = {_PENDING} AND a.task_queue = ?
                     AND a.scheduled_at <= ?"""
        else:
            sql = f"""SELECT a.id FROM workflow_activities a JOIN workflows w ON w.id = a.workflow_id
                     WHERE a.status = {_PENDING} AND a.task_queue = ? AND a.scheduled_at <= ? AND w.namespace = ?"""
        # schedule_to_close: an activity past its overall deadline is never handed out (the loop fails it)
        return sql + " AND (a.deadline_at IS NULL OR a.deadline_at > ?)"

    @staticmethod
    def _claimable_params(queue: str, namespace: str | None, now: float) -> list[Any]:
        return [queue, now] + ([namespace] if namespace is not None else []) + [now]

    def claim_activity(self, queue: str, namespace: str | None, worker_id: str, now: float) -> Record | None:
        got = self.claim_activities(queue, namespace, worker_id, now, 1)
        return got[0] if got else None

    def claim_activities(
        self, queue: str, namespace: str | None, worker_id: str, now: float, limit: int
    ) -> list[Record]:
        # one statement: the due rows (locked and skipped when locked, on Postgres: a materialized CTE is
        # evaluated once) become RUNNING and come back whole
        pick = (
            self._claimable_sql(namespace)
            + " ORDER BY a.scheduled_at, a.id LIMIT ?"
            + self.lock_clause.replace("FOR UPDATE", "FOR UPDATE OF a")
        )
        sql = (
            f"WITH picked AS MATERIALIZED ({pick}) UPDATE workflow_activities SET status = ?, claimed_by = ?, "
            "started_at = ?, last_heartbeat = NULL WHERE id IN (SELECT id FROM picked) RETURNING *"
        )
        params = [*self._claimable_params(queue, namespace, now), int(limit)]
        rows = self._rows("workflow_activities", sql, [*params, ActivityStatus.RUNNING.value, worker_id, now])
        rows.sort(key=lambda r: (r["scheduled_at"], r["id"]))  # RETURNING has no order
        return rows

    def claim_activity_by_id(self, act_id: int, worker_id: str, now: float) -> Record | None:
        return self._row(
            "workflow_activities",
            f"""UPDATE workflow_activities SET status = ?, claimed_by = ?, started_at = ?,
               last_heartbeat = NULL WHERE id = ? AND status = {_PENDING} AND scheduled_at <= ?
               AND (deadline_at IS NULL OR deadline_at > ?) RETURNING *""",
            (ActivityStatus.RUNNING.value, worker_id, now, act_id, now, now),
        )

    def has_ready_activity(self, queue: str, namespace: str | None, now: float) -> bool:
        params = self._claimable_params(queue, namespace, now)
        return self._scalar(self._claimable_sql(namespace) + " LIMIT 1", params) is not None

    def expired_activities(self, now: float, grace_since: float, limit: int = 200) -> list[Record]:
        return self._rows(
            "workflow_activities",
            f"""SELECT * FROM workflow_activities WHERE status = {_RUNNING} AND (
                started_at + start_to_close_secs <= ?
                OR (heartbeat_timeout_secs IS NOT NULL AND COALESCE(last_heartbeat, started_at) + heartbeat_timeout_secs <= ?
                    AND ? + heartbeat_timeout_secs <= ?)) ORDER BY id LIMIT ?""",
            (now, now, grace_since, now, limit),
        )

    def activities_past_deadline(self, now: float, limit: int = 200) -> list[Record]:
        """PENDING or RUNNING activities whose schedule_to_close deadline has passed."""
        return self._rows(
            "workflow_activities",
            f"""SELECT * FROM workflow_activities WHERE deadline_at IS NOT NULL AND deadline_at <= ?
               AND status IN ({LIVE_ACTIVITY}) ORDER BY id LIMIT ?""",
            (now, limit),
        )

    def next_activity_deadline(self, grace_since: float) -> float | None:
        a = self._scalar(
            f"SELECT MIN(started_at + start_to_close_secs) FROM workflow_activities WHERE status = {_RUNNING}"
        )
        d = self._scalar(
            f"""SELECT MIN(deadline_at) FROM workflow_activities
               WHERE deadline_at IS NOT NULL AND status IN ({LIVE_ACTIVITY})"""
        )
        if d is not None and (a is None or d < a):
            a = d
        rows = self._exec(f"""SELECT COALESCE(last_heartbeat, started_at), heartbeat_timeout_secs FROM workflow_activities
                             WHERE status = {_RUNNING} AND heartbeat_timeout_secs IS NOT NULL""").fetchall()
        cands = [x for x in [a] if x is not None]
        cands += [max(t, grace_since) + h for t, h in rows if t is not None]
        return min(cands) if cands else None

    def next_pending_activity(self, after: float) -> Record | None:
        return self._row(
            "workflow_activities",
            f"""SELECT id, task_queue, scheduled_at FROM workflow_activities
                         WHERE status = {_PENDING} AND scheduled_at > ? ORDER BY scheduled_at LIMIT 1""",
            (after,),
        )

    def pending_queues_due(self, after: float, now: float) -> list[str]:
        return [
            r[0]
            for r in self._exec(
                f"""SELECT DISTINCT task_queue FROM workflow_activities
                   WHERE status = {_PENDING} AND scheduled_at > ? AND scheduled_at <= ?""",
                (after, now),
            ).fetchall()
        ]

    def lost_worker_activities(self, now: float, grace_since: float) -> list[Record]:
        return self._rows(
            "workflow_activities",
            f"""SELECT a.* FROM workflow_activities a
                JOIN workflow_workers w ON w.id = a.claimed_by
                WHERE a.status = {_RUNNING} AND w.lost_after_secs IS NOT NULL
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
        ids = [
            r[0]
            for r in self._exec(
                "SELECT id FROM workflows WHERE dispatch_claimed_by = ?", (worker_id,)
            ).fetchall()
        ]
        self._release_for_redispatch(ids)
        return ids

    def delete_worker(self, worker_id: str) -> bool:
        return self._exec("DELETE FROM workflow_workers WHERE id = ?", (worker_id,)).rowcount == 1

    def activities_held_by(self, worker_id: str) -> list[int]:
        return [
            r[0]
            for r in self._exec(
                f"SELECT id FROM workflow_activities WHERE status = {_RUNNING} AND claimed_by = ?",
                (worker_id,),
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
        return opt_float(self._scalar("SELECT MIN(fire_at) FROM workflow_timers WHERE fired = 0"))

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
