"""Plumbing of the portable-SQL Tx: JSON/bool column codecs and the execute helpers."""

from __future__ import annotations

import json
from typing import Any

from assay.store.base import TERMINAL, Record, Tx

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
    "workflows": ("needs_dispatch", "cancel_requested"),
    "workflow_activities": ("cancel_requested",),
}
TERMINAL_SQL = "(" + ",".join(f"'{s}'" for s in TERMINAL) + ")"


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


class SqlBase(Tx):
    """Plumbing shared by the verb mixins. `conn` is a DB-API connection inside an open transaction."""

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
