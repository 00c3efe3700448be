"""Tx verb: the cluster-wide gauges of /metrics, in a few grouped reads (no ids, bounded labels)."""

from __future__ import annotations

from assay.protocol import ActivityStatus, WorkflowStatus
from assay.store.base import Record
from assay.store.sql.core import TERMINAL_SQL as _TERMINAL_SQL
from assay.store.sql.core import SqlBase


class MetricsVerbs(SqlBase):
    def metrics_gauges(self, now: float) -> Record:
        workflows = [
            (ns, q, t, st, int(n))
            for ns, q, t, st, n in self._exec(
                # NOT IN TERMINAL: walk the partial index of live rows (wf_live_queue), not every workflow
                f"""SELECT namespace, task_queue, workflow_type, status, COUNT(*) FROM workflows
                   WHERE status NOT IN {_TERMINAL_SQL} AND status IN (?, ?)
                   GROUP BY namespace, task_queue, workflow_type, status""",
                (WorkflowStatus.PENDING.value, WorkflowStatus.RUNNING.value),
            ).fetchall()
        ]
        ready: list[tuple[str, str, str, int, float | None]] = []
        for ns, q, n, oldest in self._exec(
            f"""SELECT namespace, task_queue, COUNT(*), MIN(ready_at) FROM workflows
                WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL AND status NOT IN {_TERMINAL_SQL}
                AND (ready_at IS NULL OR ready_at <= ?) GROUP BY namespace, task_queue""",
            (now,),
        ).fetchall():
            ready.append((ns, q, "workflow", int(n), oldest))
        for ns, q, n, oldest in self._exec(
            """SELECT w.namespace, a.task_queue, COUNT(*), MIN(a.scheduled_at) FROM workflow_activities a
               JOIN workflows w ON w.id = a.workflow_id WHERE a.status = ? AND a.scheduled_at <= ?
               GROUP BY w.namespace, a.task_queue""",
            (ActivityStatus.PENDING.value, now),
        ).fetchall():
            ready.append((ns, q, "activity", int(n), oldest))
        workers = [
            (ns, q, int(n))
            for ns, q, n in self._exec(
                "SELECT namespace, task_queue, COUNT(*) FROM workflow_workers GROUP BY namespace, task_queue"
            ).fetchall()
        ]
        return {"workflows": workflows, "ready": ready, "workers": workers}
