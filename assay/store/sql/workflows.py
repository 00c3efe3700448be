"""Tx verbs: namespaces, workflows (filters, dispatch, leases), events."""

from __future__ import annotations

from typing import Any

from assay.protocol import WorkflowStatus
from assay.store.base import Record
from assay.store.sql.core import TERMINAL_SQL as _TERMINAL_SQL
from assay.store.sql.core import SqlBase, opt_float


class WorkflowVerbs(SqlBase):
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
            "running": counts.get(WorkflowStatus.RUNNING, 0),
            "pending": counts.get(WorkflowStatus.PENDING, 0),
            "completed": counts.get(WorkflowStatus.COMPLETED, 0),
            "failed": counts.get(WorkflowStatus.FAILED, 0),
            "cancelled": counts.get(WorkflowStatus.CANCELLED, 0),
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

    def build_id_condition(self, build_id: str) -> tuple[str, list[Any]]:
        """SQL for "build_id is one of the build ids that ran this workflow's tasks"."""
        return ("EXISTS (SELECT 1 FROM json_each(build_ids) j WHERE j.value = ?)", [build_id])

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
        namespace: str | None = None,
        status: str | None = None,
        workflow_type: str | None = None,
        search: dict[str, Any] | None = None,
        parent_id: str | None = None,
        claimed_by: str | None = None,
        task_queue: str | None = None,
        build_id: str | None = None,
        stuck: bool | None = None,
        limit: int | None = 50,
        offset: int = 0,
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
        if build_id is not None:
            c, p = self.build_id_condition(build_id)
            conds.append(c)
            params.extend(p)
        if stuck is not None:
            conds.append("stuck_reason IS NOT NULL" if stuck else "stuck_reason IS NULL")
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

    def claim_workflow_task(
        self, queue: str, namespace: str | None, worker_id: str, now: float
    ) -> Record | None:
        sql = f"""SELECT id FROM workflows WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL
                  AND task_queue = ? AND status NOT IN {_TERMINAL_SQL} AND (ready_at IS NULL OR ready_at <= ?)"""
        params: list[Any] = [queue, now]
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
        if prev == WorkflowStatus.PENDING:
            fields.update(status=WorkflowStatus.RUNNING, updated_at=now)
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

    def delay_dispatch(self, wf_id: str, not_before: float) -> int:
        n = self._scalar(
            f"""UPDATE workflows SET needs_dispatch = 1, ready_at = ?, dispatch_failures = dispatch_failures + 1
                WHERE id = ? AND status NOT IN {_TERMINAL_SQL} RETURNING dispatch_failures""",
            (not_before, wf_id),
        )
        return int(n or 0)

    def delayed_workflow_queues(self, after: float, now: float) -> list[str]:
        rows = self._exec(
            """SELECT DISTINCT task_queue FROM workflows WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL
               AND ready_at > ? AND ready_at <= ?""",
            (after, now),
        ).fetchall()
        return [r[0] for r in rows]

    def next_delayed_dispatch(self, after: float) -> float | None:
        return opt_float(
            self._scalar(
                """SELECT MIN(ready_at) FROM workflows WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL
               AND ready_at > ?""",
                (after,),
            )
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

    def oldest_lease(self) -> float | None:
        return opt_float(
            self._scalar(
                "SELECT MIN(dispatch_last_heartbeat) FROM workflows WHERE dispatch_claimed_by IS NOT NULL"
            )
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
