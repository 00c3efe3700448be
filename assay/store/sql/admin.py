"""Tx verbs: schedules, workers and queue stats, API keys, archival."""

from __future__ import annotations

from typing import Any

from assay.protocol import ActivityStatus
from assay.store.base import Record
from assay.store.sql.core import ACT_RUNNING_SQL as _RUNNING
from assay.store.sql.core import TERMINAL_SQL as _TERMINAL_SQL
from assay.store.sql.core import SqlBase, opt_float


class AdminVerbs(SqlBase):
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
        return opt_float(self._scalar("SELECT MIN(next_run_at) FROM workflow_schedules WHERE paused = 0"))

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

    def touch_workers(self, seen: list[tuple[str, float]]) -> int:
        """Heartbeats the engine noted in memory (polls), written together; never moves a heartbeat back."""
        n = 0
        for i in range(0, len(seen), 200):  # one statement per 200 workers
            part = seen[i : i + 200]
            values = ", ".join(["(CAST(? AS TEXT), CAST(? AS DOUBLE PRECISION))"] * len(part))
            n += self._exec(
                f"UPDATE workflow_workers SET last_heartbeat = v.column2 FROM (VALUES {values}) AS v "
                "WHERE workflow_workers.id = v.column1 AND workflow_workers.last_heartbeat < v.column2",
                [x for pair in part for x in pair],
            ).rowcount
        return n

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
            f"""DELETE FROM workflow_workers WHERE last_heartbeat < ? AND NOT (lost_after_secs IS NOT NULL AND (
                EXISTS (SELECT 1 FROM workflow_activities a WHERE a.status = {_RUNNING}
                        AND a.claimed_by = workflow_workers.id)
                OR EXISTS (SELECT 1 FROM workflows wf WHERE wf.dispatch_claimed_by = workflow_workers.id)))""",
            (cutoff,),
        ).rowcount

    def oldest_worker_heartbeat(self) -> float | None:
        return opt_float(self._scalar("SELECT MIN(last_heartbeat) FROM workflow_workers"))

    def activity_counts(self, namespace: str) -> list[tuple[str, str, int]]:
        """(queue, status, n) of the namespace's PENDING and RUNNING activities."""
        rows = self._exec(  # counters kept with the writes (SQLite: migration 4; Postgres: 6, in shards)
            "SELECT task_queue, status, SUM(n) FROM activity_counts WHERE namespace = ? "
            "GROUP BY task_queue, status HAVING SUM(n) > 0",
            (namespace,),
        ).fetchall()
        return [(q, st, int(n)) for q, st, n in rows]

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

        keys: dict[str, str] = {
            ActivityStatus.PENDING: "pending_activities",
            ActivityStatus.RUNNING: "running_activities",
        }
        for q, st, n in self.activity_counts(namespace):
            row(q)[keys[st]] += n
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
