"""Plumbing of the portable-SQL Tx: JSON/bool column codecs and the execute helpers."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from assay.protocol import TERMINAL_STATUSES, ActivityStatus, WorkflowStatus
from assay.store.base import Record, Tx

JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "workflows": ("input", "result", "search_attributes", "build_ids"),
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
    "workflows": ("needs_dispatch", "cancel_requested", "terminated"),
    "workflow_activities": ("cancel_requested",),
}
#: SQL literals of the protocol's statuses, for queries whose text must name them (partial indexes match
#: on the literal): `TERMINAL_SQL` is the parenthesised list of terminal workflow statuses
TERMINAL_SQL = "(" + ",".join(f"'{s}'" for s in WorkflowStatus if s in TERMINAL_STATUSES) + ")"
ACT_PENDING_SQL = f"'{ActivityStatus.PENDING}'"
ACT_RUNNING_SQL = f"'{ActivityStatus.RUNNING}'"


class Cursor(Protocol):
    """What the verbs use of a DB-API cursor."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


Params = Sequence[Any]


def opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


#: allow_nan=False: never store text that is not JSON (SQLite's JSON functions would reject the row). One
#: encoder for every value (json.dumps with options builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True, allow_nan=False)


def dump_json(value: Any) -> str | None:
    if value is None:
        return None
    return _ENCODER.encode(value)


def load_json(text: Any) -> Any:
    if text is None:
        return None
    if not isinstance(text, str):  # already decoded by the driver (Postgres JSONB)
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None


class SqlBase(Tx):
    """Plumbing shared by the verb mixins. `conn` is a DB-API connection inside an open transaction."""

    #: appended to single-row claim selects (Postgres: FOR UPDATE SKIP LOCKED)
    lock_clause = ""
    #: SQLite keeps a search-attribute side table with triggers (migration 4); Postgres filters with its GIN
    #: index. (Both keep per-status and per-queue counters with triggers: SQLite migration 4, Postgres 6.)
    side_tables = True
    #: every statement of this transaction sees one snapshot (SQLite: always; Postgres: read transactions)
    snapshot_reads = True

    #: keep the events this transaction writes (`written_events`): a dialect whose JSON read back is
    #: exactly json.loads of the text written (SQLite; Postgres' JSONB reorders object keys)
    keeps_written = False

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        #: workflow id -> events this transaction wrote (payload as the encoded JSON text), when kept
        self._written: dict[str, list[Record]] = {}

    # --- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested step of this transaction: an exception undoes only what the step did."""
        self._exec("SAVEPOINT step")
        try:
            yield
        except BaseException:
            self._written.clear()  # (some were undone: the histories are read instead)
            self._exec("ROLLBACK TO SAVEPOINT step")
            self._exec("RELEASE SAVEPOINT step")
            raise
        self._exec("RELEASE SAVEPOINT step")

    def q(self, sql: str) -> str:
        return sql

    def _exec(self, sql: str, params: Params = ()) -> Cursor:
        cur: Cursor = self.conn.execute(self.q(sql), tuple(params))
        return cur

    def _rows(self, table: str, sql: str, params: Params = ()) -> list[Record]:
        cur = self._exec(sql, params)
        cols = [d[0] for d in cur.description]
        return [self._decode(table, dict(zip(cols, row, strict=True))) for row in cur.fetchall()]

    def _row(self, table: str, sql: str, params: Params = ()) -> Record | None:
        rows = self._rows(table, sql, params)
        return rows[0] if rows else None

    def _scalar(self, sql: str, params: Params = ()) -> Any:
        row = self._exec(sql, params).fetchone()
        return None if row is None else row[0]

    def written_events(self, wf_id: str, after_seq: int, upto: int) -> list[Record] | None:
        evs = self._written.get(wf_id)
        if not evs:
            return None
        got = [e for e in evs if after_seq < e["seq"] <= upto]
        if [e["seq"] for e in got] != list(range(after_seq + 1, upto + 1)):
            return None
        return [{**e, "payload": load_json(e["payload"])} for e in got]

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
    ) -> int | None:
        """Rows inserted, or the `returning` column (an integer id) of the inserted row (None: nothing
        inserted)."""
        f = self._encode(table, fields)
        cols = ",".join(f)
        marks = ",".join("?" for _ in f)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
        if on_conflict_nothing:
            sql += " ON CONFLICT DO NOTHING"
        if returning:
            sql += f" RETURNING {returning}"
            row = self._exec(sql, list(f.values())).fetchone()
            return None if row is None else int(row[0])
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

    def _release_for_redispatch(self, ids: list[str]) -> None:
        for wf_id in ids:
            self._exec(
                f"""UPDATE workflows SET dispatch_claimed_by = NULL, dispatch_last_heartbeat = NULL,
                    needs_dispatch = CASE WHEN status IN {TERMINAL_SQL} THEN 0 ELSE 1 END,
                    ready_at = COALESCE(ready_at, updated_at) WHERE id = ?""",
                (wf_id,),
            )
