"""Tx verbs: namespaces, workflows (filters, dispatch, leases), events."""

from __future__ import annotations

from typing import Any

from assay.protocol import WorkflowStatus
from assay.store.base import Record
from assay.store.buckets import SEARCH_MAX
from assay.store.sql import paging
from assay.store.sql.core import TERMINAL_SQL as _TERMINAL_SQL
from assay.store.sql.core import SqlBase, opt_float
from assay.store.sql.paging import bucket_filter

#: what leasing a workflow task sets (parameters: worker id, now, worker id)
_LEASE_SET = (
    "dispatch_claimed_by = ?, dispatch_last_heartbeat = ?, needs_dispatch = 0, claimed_by = ?, "
    "dispatch_count = dispatch_count + 1"
)


#: a workflow's columns holding the caller's JSON (get_workflow(payloads=False) leaves them out)
_PAYLOADS = ("input", "result")


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

    def status_counts(self, namespace: str) -> dict[str, int]:
        """Workflows per status in a namespace."""
        sql = (  # counters kept with the writes (SQLite: migration 4; Postgres: 6, in shards)
            "SELECT status, SUM(n) FROM workflow_counts WHERE namespace = ? GROUP BY status HAVING SUM(n) > 0"
        )
        return {st: int(n) for st, n in self._exec(sql, (namespace,)).fetchall()}

    def namespace_stats(self, name: str) -> Record:
        counts = self.status_counts(name)
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
    def insert_workflow(self, rec: Record, *, first_event: tuple[str, Any] | None = None) -> bool:
        if first_event is None:
            return self._insert("workflows", rec, on_conflict_nothing=True) == 1
        if self._insert("workflows", {**rec, "last_seq": 1}, on_conflict_nothing=True) != 1:
            return False
        event_type, payload = first_event
        self._insert_event(rec["id"], 1, event_type, payload, rec["created_at"])
        return True

    def get_workflow(self, wf_id: str, *, payloads: bool = True) -> Record | None:
        return self._row(
            "workflows", f"SELECT {self._workflow_columns(payloads)} FROM workflows WHERE id = ?", (wf_id,)
        )

    #: the workflows table's columns without the caller's payloads, per Tx class (read once from the schema)
    _lean_columns: dict[type, str] = {}

    def _workflow_columns(self, payloads: bool) -> str:
        if payloads:
            return "*"
        cols = self._lean_columns.get(type(self))
        if cols is None:
            names = [d[0] for d in self._exec("SELECT * FROM workflows LIMIT 0").description]
            cols = self._lean_columns[type(self)] = ", ".join(n for n in names if n not in _PAYLOADS)
        return cols

    def update_workflow(self, wf_id: str, **fields: Any) -> None:
        self._update("workflows", {"id": wf_id}, fields)

    #: SQL that holds when search_attributes is a JSON object
    search_object_condition = "search_attributes IS NOT NULL AND json_type(search_attributes) = 'object'"
    # a run closed by continue-as-new: COMPLETED with result {"continued_as_new": "<new id>"}
    continued_condition = (
        f"(status = '{WorkflowStatus.COMPLETED.value}' AND json_valid(result) AND json_type(result) = 'object'"
        " AND json_type(result, '$.continued_as_new') IS NOT NULL)"
    )

    def build_id_condition(self, build_id: str) -> tuple[str, list[Any]]:
        """SQL for "build_id is one of the build ids that ran this workflow's tasks"."""
        return ("EXISTS (SELECT 1 FROM json_each(build_ids) j WHERE j.value = ?)", [build_id])

    def search_condition(self, key: str, value: Any) -> tuple[str, list[Any]]:
        """SQL for `search_attributes[key] == value` with JSON-typed equality. The key is a top-level
        literal (no JSON-path interpretation: dots, quotes and brackets are just characters)."""
        typed = _side_value(value)
        if typed is None:
            return ("(0 = 1)", [])  # null / arrays / objects never match
        return (
            "EXISTS (SELECT 1 FROM workflow_search s WHERE s.workflow_id = workflows.id AND s.key = ? "
            "AND s.vtype = ? AND s.value = ?)",
            [key, *typed],
        )

    def _search_rows(self, namespace: str, key: str, vtype: str, value: Any, cap: int) -> int:
        return int(
            self._scalar(
                "SELECT COUNT(*) FROM (SELECT 1 FROM workflow_search WHERE namespace = ? AND key = ? "
                "AND vtype = ? AND value = ? LIMIT ?)",
                (namespace, key, vtype, value, cap),
            )
        )

    def list_workflows(
        self,
        *,
        namespace: str | None = None,
        status: str | list[str] | None = None,
        workflow_type: str | None = None,
        search: dict[str, Any] | None = None,
        parent_id: str | None = None,
        claimed_by: str | None = None,
        task_queue: str | None = None,
        build_id: str | None = None,
        stuck: bool | None = None,
        limit: int | None = 50,
        offset: int = 0,
        workflow_id: str | None = None,
        terminated: bool | None = None,
        continued: bool | None = None,
        after: tuple[float, str] | None = None,
    ) -> list[Record]:
        """`after`: a keyset cursor (created_at, id) of the last row of the previous page."""
        bucketed = (  # a filter the page buckets count: a deep offset jumps to the nearest bucket edge
            None
            if namespace is None or after is not None or offset <= paging.SHALLOW or not self.snapshot_reads
            else bucket_filter(
                status, workflow_type, task_queue,
                (terminated, continued, parent_id, claimed_by, build_id, stuck, workflow_id),
            )
        )  # fmt: skip
        if search and bucketed is not None:  # one search attribute alone: its own buckets
            key, value = next(iter(search.items()))
            if len(search) == 1 and bucketed == ("", "") and search_bucketed(key, value):
                assert namespace is not None
                return paging.page_by_buckets(
                    self, self.search_buckets(namespace, key, value), self.search_walk(namespace, key, value),
                    limit, offset,
                )  # fmt: skip
            bucketed = None
        conds: list[str] = []
        params: list[Any] = []
        if terminated is not None:
            conds.append("terminated = ?")
            params.append(self.encode_bool(terminated))
        if continued is not None:
            cond = self.continued_condition
            conds.append(cond if continued else f"NOT COALESCE({cond}, 0 = 1)")
        if isinstance(status, list | tuple):
            conds.append("status IN (" + ",".join("?" for _ in status) + ")")
            params.extend(status)
            status = None
        for col, val in (
            ("id", workflow_id),
            ("namespace", namespace),
            ("status", status),
            ("workflow_type", workflow_type),
            ("parent_id", parent_id),
            ("claimed_by", claimed_by),
            ("task_queue", task_queue),
        ):
            if val is not None:
                conds.append(f"workflows.{col} = ?")
                params.append(val)
        if build_id is not None:
            c, p = self.build_id_condition(build_id)
            conds.append(c)
            params.extend(p)
        if stuck is not None:
            conds.append("stuck_reason IS NOT NULL" if stuck else "stuck_reason IS NULL")
        drive = None
        if search:
            items = list(search.items())
            if self.side_tables and namespace is not None:
                typed = [(k, _side_value(v)) for k, v in items]
                if any(t is None for _, t in typed):
                    return []
                # walk the side-table index of the most selective key, in (created_at, id) order
                sizes = [self._search_rows(namespace, k, t[0], t[1], 2000) for k, t in typed]  # type: ignore[index]
                i = sizes.index(min(sizes))
                if sizes[i] == 0:
                    return []
                drive = (items[i][0], *typed[i][1])  # type: ignore[misc]
                items = items[:i] + items[i + 1 :]
            else:
                conds.append(self.search_object_condition)
            for k, v in items:
                c, p = self.search_condition(k, v)
                conds.append(c)
                params.extend(p)
        if drive is not None:
            return self._list_by_search(drive, conds, params, limit, offset, after, namespace)
        if after is not None:
            conds.append("(workflows.created_at, workflows.id) < (?, ?)")  # a range on the list index
            params += [after[0], after[1]]
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        order = " ORDER BY created_at DESC, id DESC"
        if bucketed is not None:  # counts read in the page's snapshot: the page OFFSET gives
            counts = ("workflow_buckets", "namespace = ? AND dim = ? AND val = ?", [namespace, *bucketed])
            walk = ("SELECT id FROM workflows" + where, params, "workflows.created_at", "workflows.id")
            return paging.page_by_buckets(self, counts, walk, limit, offset)
        if offset:  # skip along the covering list index, then fetch only the page's rows
            inner = "SELECT id FROM workflows" + where + order + self._limit_sql(limit, offset, params)
            return self._rows("workflows", f"SELECT * FROM workflows WHERE id IN ({inner})" + order, params)
        return self._rows(
            "workflows", "SELECT * FROM workflows" + where + order + self._limit_sql(limit, 0, params), params
        )

    def search_buckets(self, namespace: str, key: str, value: Any) -> paging.Counts:
        """The page buckets of `search_attributes[key] == value` (a scalar)."""
        typed = _side_value(value)
        assert typed is not None
        return (
            "search_buckets",
            "namespace = ? AND key = ? AND vtype = ? AND value = ?",
            [namespace, key, *typed],
        )

    def search_walk(self, namespace: str, key: str, value: Any) -> paging.Walk:
        """The ids of `search_attributes[key] == value` along an index in (created_at, id) order: here the
        side table's."""
        typed = _side_value(value)
        assert typed is not None
        sql = (
            "SELECT s.workflow_id FROM workflow_search s WHERE s.namespace = ? AND s.key = ? AND s.vtype = ?"
        )
        return (sql + " AND s.value = ?", [namespace, key, *typed], "s.created_at", "s.workflow_id")

    def rows_of_page_sql(self, ids_sql: str) -> str:
        """The workflows whose ids `ids_sql` selects (one page), newest first."""
        return f"SELECT * FROM workflows WHERE id IN ({ids_sql}) ORDER BY created_at DESC, id DESC"

    def _limit_sql(self, limit: int | None, offset: int, params: list[Any]) -> str:
        if limit is not None:
            params += [int(limit), int(offset)]
            return " LIMIT ? OFFSET ?"
        if offset:
            params.append(int(offset))
            return " LIMIT -1 OFFSET ?" if self.q("?") == "?" else " OFFSET ?"
        return ""

    def _list_by_search(
        self,
        drive: tuple[str, str, Any],
        conds: list[str],
        params: list[Any],
        limit: int | None,
        offset: int,
        after: Any,
        namespace: str | None,
    ) -> list[Record]:
        key, vtype, value = drive
        sql = (
            "SELECT workflows.* FROM workflow_search s JOIN workflows ON workflows.id = s.workflow_id "
            "WHERE s.namespace = ? AND s.key = ? AND s.vtype = ? AND s.value = ?"
        )
        p: list[Any] = [namespace, key, vtype, value]
        if after is not None:
            sql += " AND (s.created_at, s.workflow_id) < (?, ?)"
            p += [after[0], after[1]]
        if conds:
            sql += " AND " + " AND ".join(conds)
            p += params
        sql += " ORDER BY s.created_at DESC, s.workflow_id DESC" + self._limit_sql(limit, offset, p)
        return self._rows("workflows", sql, p)

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

    def _dispatch_sql(self, namespace: str | None, cols: str = "id") -> str:
        sql = f"""SELECT {cols} FROM workflows WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL
                  AND task_queue = ? AND status NOT IN {_TERMINAL_SQL} AND (ready_at IS NULL OR ready_at <= ?)"""
        return sql + (" AND namespace = ?" if namespace is not None else "")

    def claim_workflow_task(
        self, queue: str, namespace: str | None, worker_id: str, now: float
    ) -> Record | None:
        got = self.claim_workflow_tasks(queue, namespace, worker_id, now, 1)
        return got[0] if got else None

    def claim_workflow_tasks(
        self, queue: str, namespace: str | None, worker_id: str, now: float, limit: int
    ) -> list[Record]:
        # one UPDATE ... RETURNING of the picked rows (a materialized CTE: evaluated once; on Postgres its
        # rows are locked and rows another claim holds are skipped)
        pick = self._dispatch_sql(namespace) + " ORDER BY ready_at, id LIMIT ?" + self.lock_clause
        params: list[Any] = [queue, now] + ([namespace] if namespace is not None else []) + [int(limit)]
        rows = self._rows(
            "workflows",
            f"WITH picked AS MATERIALIZED ({pick}) UPDATE workflows SET {_LEASE_SET} "
            "WHERE id IN (SELECT id FROM picked) RETURNING *",
            [*params, worker_id, now, worker_id],
        )
        rows.sort(key=lambda r: (r["ready_at"] is not None, r["ready_at"] or 0.0, r["id"]))
        return self._leased(rows, now)

    def claim_workflow_by_id(self, wf_id: str, worker_id: str, now: float) -> Record | None:
        # one conditional UPDATE: on Postgres it waits for a concurrent writer of the row and re-checks
        rows = self._rows(
            "workflows",
            f"""UPDATE workflows SET {_LEASE_SET} WHERE id = ? AND needs_dispatch = 1
                AND dispatch_claimed_by IS NULL AND status NOT IN {_TERMINAL_SQL}
                AND (ready_at IS NULL OR ready_at <= ?) RETURNING *""",
            (worker_id, now, worker_id, wf_id, now),
        )
        return self._leased(rows, now)[0] if rows else None

    def has_ready_workflow_task(self, queue: str, namespace: str | None, now: float) -> bool:
        params: list[Any] = [queue, now] + ([namespace] if namespace is not None else [])
        return self._scalar(self._dispatch_sql(namespace) + " LIMIT 1", params) is not None

    def _leased(self, rows: list[Record], now: float) -> list[Record]:
        """Rows just leased (RETURNING): a workflow's first task moves it from PENDING to RUNNING (once in
        its life, so a second UPDATE then and only then); each record carries `previous_status`."""
        for rec in rows:
            rec["previous_status"] = rec["status"]
            if rec["status"] == WorkflowStatus.PENDING:
                self._exec(
                    "UPDATE workflows SET status = ?, updated_at = ? WHERE id = ?",
                    (WorkflowStatus.RUNNING.value, now, rec["id"]),
                )
                rec.update(status=WorkflowStatus.RUNNING, updated_at=now)
        return rows

    def release_lease(self, wf_id: str, worker_id: str) -> Record | None:
        return self._row(
            "workflows",
            "UPDATE workflows SET dispatch_claimed_by = NULL, dispatch_last_heartbeat = NULL "
            "WHERE id = ? AND dispatch_claimed_by = ? RETURNING status, needs_dispatch",
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
    def append_event(
        self,
        wf_id: str,
        event_type: str,
        payload: Any,
        now: float,
        *,
        fields: Record | None = None,
        dispatchable: bool = False,
    ) -> int:
        sets = ["last_seq = last_seq + 1"]
        params: list[Any] = []
        if fields:  # the workflow's own changes ride on the seq's UPDATE
            enc = self._encode("workflows", fields)
            sets += [f"{c} = ?" for c in enc]
            params += list(enc.values())
        if dispatchable:  # mark_dispatchable in the same UPDATE (CASE sees the row before it)
            assert not fields or not {"needs_dispatch", "ready_at", "status"} & set(fields)
            live = f"status NOT IN {_TERMINAL_SQL}"
            sets.append(f"ready_at = CASE WHEN {live} AND needs_dispatch = 0 THEN ? ELSE ready_at END")
            sets.append(f"needs_dispatch = CASE WHEN {live} THEN 1 ELSE needs_dispatch END")
            params.append(now)
        seq = self._scalar(
            f"UPDATE workflows SET {', '.join(sets)} WHERE id = ? RETURNING last_seq", [*params, wf_id]
        )
        if seq is None:
            raise KeyError(wf_id)
        self._insert_event(wf_id, int(seq), event_type, payload, now)
        return int(seq)

    def _insert_event(self, wf_id: str, seq: int, event_type: str, payload: Any, now: float) -> None:
        text = self.encode_json(payload)
        self._exec(
            "INSERT INTO workflow_events (workflow_id, seq, event_type, payload, timestamp) VALUES (?, ?, ?, ?, ?)",
            (wf_id, seq, event_type, text, now),
        )
        if self.keeps_written:
            ev = {  # as a read returns it: plain str, REAL timestamp (payload decoded by written_events)
                "workflow_id": wf_id,
                "seq": seq,
                "event_type": str.__str__(event_type),
                "payload": text,
                "timestamp": float(now),
            }
            self._written.setdefault(wf_id, []).append(ev)

    def list_events(
        self,
        wf_id: str,
        after_seq: int = 0,
        *,
        upto: int | None = None,
        limit: int | None = None,
        event_type: str | None = None,
    ) -> list[Record]:
        sql = (
            "SELECT id, workflow_id, seq, event_type, payload, timestamp "
            "FROM workflow_events WHERE workflow_id = ? AND seq > ?"
        )
        params: list[Any] = [wf_id, after_seq]
        if upto is not None:
            sql += " AND seq <= ?"
            params.append(upto)
        if event_type is not None:
            sql += " AND event_type = ?"
            params.append(event_type)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return self._rows("workflow_events", sql, params)


def search_bucketed(key: str, value: Any) -> bool:
    """Whether search_buckets count the workflows whose attribute `key` equals `value`."""
    short = len(key) <= SEARCH_MAX and (not isinstance(value, str) or len(value) <= SEARCH_MAX)
    return short and _side_value(value) is not None


def _side_value(value: Any) -> tuple[str, Any] | None:
    """A search value as stored in workflow_search: (vtype, value); None when it can never match."""
    if isinstance(value, bool):
        return ("b", 1 if value else 0)
    if isinstance(value, (int, float)):
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            value = float(value)  # SQLite reads such JSON numbers as reals too (and cannot bind the int)
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    return None
