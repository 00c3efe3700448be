"""Migration 7: page buckets, a skip structure for deep `?offset=` pages.

`workflow_buckets` counts the workflows of a namespace per `created_at` bucket, for the whole namespace
(dim '') and per status ('s'), workflow type ('t') and task queue ('q'), at two widths: 2**FINE_SPAN and
2**COARSE_SPAN seconds. Triggers keep the counts with every insert, delete and change of a counted column,
so a read that sums them in its snapshot knows exactly how many rows of a filter are newer than any bucket
edge: an offset then jumps to the nearest edge and walks the list index only from there (store/sql/paging.py).

Bucket of a row: trunc(created_at / 2**span) (SQLite CAST AS INTEGER, Postgres trunc: the same for every
float; division by a power of two is exact). The edge k * 2**span (k >= 1) splits the rows exactly:
bucket >= k <=> created_at >= k * 2**span. Postgres spreads each count over COUNT_SHARDS rows (like the
counters of migration 6) so concurrent writers do not queue on one row lock; readers sum the shards.
"""

from __future__ import annotations

FINE_SPAN = 8  # 256 s
COARSE_SPAN = 16  # 65,536 s (~18 h): 256 fine buckets
SPANS = (FINE_SPAN, COARSE_SPAN)
#: (dim, column): the list filters that have bucket counts
DIMS = (("", None), ("s", "status"), ("t", "workflow_type"), ("q", "task_queue"))
MIGRATION_NAME = "page buckets: per-filter row counts by created_at for deep offsets"
#: search attributes whose key or string value is longer (characters) have no buckets (a btree entry of
#: Postgres holds at most ~2.7 kB): their deep offsets walk from the newest end
SEARCH_MAX = 256
_SPAN_ROWS = [(span, float(2**span)) for span in SPANS]


def _rows(rec: str, dims: tuple[tuple[str, str | None], ...], bucket_sql: str) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for dim, col in dims:
        for span in SPANS:
            out.append(
                (f"{rec}.namespace", f"'{dim}'", f"{rec}.{col}" if col else "''", str(span),
                 bucket_sql.format(x=f"{rec}.created_at", w=float(2**span)))
            )  # fmt: skip
    return out


def _same_place(is_same: str) -> str:
    """OLD and NEW count in the same buckets (`is_same`: the dialect's null-safe equality)."""
    return " AND ".join(
        f"OLD.{c} {is_same} NEW.{c}" for c in ("namespace", "created_at", "workflow_type", "task_queue")
    )


def _backfill(bucket_sql: str, cols: str, shard: str = "") -> list[str]:
    """Fill workflow_buckets from the workflows already there (`shard`: Postgres's extra value)."""
    out = []
    for dim, col in DIMS:
        for span in SPANS:
            b, val = bucket_sql.format(x="created_at", w=float(2**span)), col or "''"
            grp = f", {col}" if col else ""
            out.append(
                f"INSERT INTO workflow_buckets ({cols}, n) SELECT namespace, '{dim}', "
                f"{val}, {span}, {b}, {shard}COUNT(*) FROM workflows GROUP BY namespace{grp}, {b}"
            )
    return out


# --- SQLite --------------------------------------------------------------------------------------
_SQ_BUCKET = "CAST({x} / {w} AS INTEGER)"
_SQ_COLS = "namespace, dim, val, span, bucket"


def _sq_upsert(rec: str, delta: int, dims: tuple[tuple[str, str | None], ...] = DIMS) -> str:
    values = ", ".join("(" + ", ".join((*r, str(delta))) + ")" for r in _rows(rec, dims, _SQ_BUCKET))
    return (
        f"INSERT INTO workflow_buckets ({_SQ_COLS}, n) VALUES {values} "
        f"ON CONFLICT ({_SQ_COLS}) DO UPDATE SET n = n + excluded.n;"
    )


_SAME_PLACE = _same_place("IS")


def _sq_backfill() -> list[str]:
    return _backfill(_SQ_BUCKET, _SQ_COLS)


SQLITE_DDL = [
    """CREATE TABLE workflow_buckets (
    namespace TEXT NOT NULL,
    dim TEXT NOT NULL,
    val TEXT NOT NULL,
    span INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (namespace, dim, val, span, bucket)) WITHOUT ROWID""",
    *_sq_backfill(),
    f"CREATE TRIGGER wf_bucket_ins AFTER INSERT ON workflows BEGIN {_sq_upsert('NEW', 1)} END",
    f"CREATE TRIGGER wf_bucket_del AFTER DELETE ON workflows BEGIN {_sq_upsert('OLD', -1)} END",
    # a status change (the frequent update) moves only the status counts
    f"""CREATE TRIGGER wf_bucket_status AFTER UPDATE OF status ON workflows
    WHEN OLD.status IS NOT NEW.status AND {_SAME_PLACE} BEGIN
    {_sq_upsert("OLD", -1, DIMS[1:2])} {_sq_upsert("NEW", 1, DIMS[1:2])} END""",
    f"""CREATE TRIGGER wf_bucket_move AFTER UPDATE OF namespace, created_at, workflow_type, task_queue, status
    ON workflows WHEN NOT ({_SAME_PLACE}) BEGIN {_sq_upsert("OLD", -1)} {_sq_upsert("NEW", 1)} END""",
]

# search_buckets: the same per scalar top-level search attribute (key, vtype, value as in workflow_search),
# kept by triggers on the side table (whose rows follow the workflows' own triggers and cascades)
_SQ_SEARCH_COLS = "namespace, key, vtype, value, span, bucket"


def _sq_short(rec: str) -> str:
    return (
        f"length({rec}.key) <= {SEARCH_MAX} AND ({rec}.vtype <> 's' OR length({rec}.value) <= {SEARCH_MAX})"
    )


def _sq_search_upsert(delta: int) -> str:
    rec = "NEW" if delta > 0 else "OLD"
    values = ", ".join(
        f"({rec}.namespace, {rec}.key, {rec}.vtype, {rec}.value, {span}, "
        f"{_SQ_BUCKET.format(x=rec + '.created_at', w=w)}, {delta})"
        for span, w in _SPAN_ROWS
    )
    return (
        f"INSERT INTO search_buckets ({_SQ_SEARCH_COLS}, n) VALUES {values} "
        f"ON CONFLICT ({_SQ_SEARCH_COLS}) DO UPDATE SET n = n + excluded.n;"
    )


SQLITE_DDL += [
    """CREATE TABLE search_buckets (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    vtype TEXT NOT NULL,
    value,
    span INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (namespace, key, vtype, value, span, bucket)) WITHOUT ROWID""",
    *(
        f"INSERT INTO search_buckets ({_SQ_SEARCH_COLS}, n) SELECT namespace, key, vtype, value, {span}, "
        f"{_SQ_BUCKET.format(x='created_at', w=w)}, COUNT(*) FROM workflow_search AS r WHERE {_sq_short('r')} "
        f"GROUP BY namespace, key, vtype, value, {_SQ_BUCKET.format(x='created_at', w=w)}"
        for span, w in _SPAN_ROWS
    ),
    f"CREATE TRIGGER search_bucket_ins AFTER INSERT ON workflow_search WHEN {_sq_short('NEW')} "
    f"BEGIN {_sq_search_upsert(1)} END",
    f"CREATE TRIGGER search_bucket_del AFTER DELETE ON workflow_search WHEN {_sq_short('OLD')} "
    f"BEGIN {_sq_search_upsert(-1)} END",
]

# --- Postgres ------------------------------------------------------------------------------------
_PG_BUCKET = "trunc({x} / {w})::bigint"
_PG_COLS = "namespace, dim, val, span, bucket, shard"


def _pg_upsert(rec: str, delta: int, dims: tuple[tuple[str, str | None], ...] = DIMS) -> str:
    values = ", ".join("(" + ", ".join((*r, "s", str(delta))) + ")" for r in _rows(rec, dims, _PG_BUCKET))
    return (
        f"INSERT INTO workflow_buckets AS b ({_PG_COLS}, n) VALUES {values} "
        f"ON CONFLICT ({_PG_COLS}) DO UPDATE SET n = b.n + excluded.n;"
    )


_PG_SAME_PLACE = _same_place("IS NOT DISTINCT FROM")


def _pg_backfill() -> list[str]:
    return _backfill(_PG_BUCKET, _PG_COLS, shard="0, ")


_PG_SEARCH_COLS = "namespace, key, value, span, bucket, shard"
#: (key, value) of a workflow's scalar top-level search attributes, at both widths
_PG_SEARCH_ROWS = (
    "SELECT {rec}.namespace, j.key, j.value, p.span, "
    + _PG_BUCKET.format(x="{rec}.created_at", w="p.w")
    + ", {shard}, {n} FROM jsonb_each(CASE WHEN jsonb_typeof({rec}.search_attributes) = 'object' "
    "THEN {rec}.search_attributes ELSE '{{}}'::jsonb END) j, (VALUES "
    + ", ".join(f"({span}, {w}::float8)" for span, w in _SPAN_ROWS)
    + ") p(span, w) WHERE jsonb_typeof(j.value) IN ('string', 'number', 'boolean') AND length(j.key) <= "
    + f"{SEARCH_MAX} AND (jsonb_typeof(j.value) <> 'string' OR length(j.value #>> '{{{{}}}}') <= {SEARCH_MAX})"
)


def _pg_search_upsert(rec: str, delta: int) -> str:
    return (
        f"INSERT INTO search_buckets AS b ({_PG_SEARCH_COLS}, n) "
        + _PG_SEARCH_ROWS.format(rec=rec, shard="s", n=delta)
        + f" ON CONFLICT ({_PG_SEARCH_COLS}) DO UPDATE SET n = b.n + excluded.n;"
    )


_PG_SEARCH_TABLE = """CREATE TABLE search_buckets (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value JSONB NOT NULL,
    span INTEGER NOT NULL,
    bucket BIGINT NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (namespace, key, value, span, bucket, shard))"""
_PG_SEARCH_BACKFILL = (
    f"INSERT INTO search_buckets ({_PG_SEARCH_COLS}, n) SELECT namespace, key, value, span, bucket, 0, "
    "COUNT(*) FROM ("
    + _PG_SEARCH_ROWS.format(rec="w", shard=0, n=1).replace("jsonb_each(", "workflows w, jsonb_each(", 1)
    + ") r(namespace, key, value, span, bucket, shard, n) "
    "GROUP BY namespace, key, value, span, bucket"
)


def postgres_ddl(shards: int) -> list[str]:
    """Migration 7 on Postgres; `shards`: COUNT_SHARDS of the counters (migration 6)."""
    return [
        # no write of an older instance between the backfill and the trigger (see migration 6)
        "LOCK TABLE workflows IN SHARE ROW EXCLUSIVE MODE",
        """CREATE TABLE workflow_buckets (
    namespace TEXT NOT NULL,
    dim TEXT NOT NULL,
    val TEXT NOT NULL,
    span INTEGER NOT NULL,
    bucket BIGINT NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (namespace, dim, val, span, bucket, shard))""",
        *_pg_backfill(),
        _PG_SEARCH_TABLE,
        _PG_SEARCH_BACKFILL,
        f"""CREATE FUNCTION assay_wf_buckets() RETURNS trigger LANGUAGE plpgsql AS $body$
    DECLARE s INTEGER := mod(pg_backend_pid(), {shards});
    BEGIN
        IF TG_OP = 'UPDATE' AND {_PG_SAME_PLACE} THEN
            {_pg_upsert("OLD", -1, DIMS[1:2])}
            {_pg_upsert("NEW", 1, DIMS[1:2])}
            RETURN NULL;
        END IF;
        IF TG_OP <> 'INSERT' THEN
            {_pg_upsert("OLD", -1)}
        END IF;
        IF TG_OP <> 'DELETE' THEN
            {_pg_upsert("NEW", 1)}
        END IF;
        RETURN NULL;
    END $body$""",
        f"""CREATE FUNCTION assay_search_buckets() RETURNS trigger LANGUAGE plpgsql AS $body$
    DECLARE s INTEGER := mod(pg_backend_pid(), {shards});
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            {_pg_search_upsert("OLD", -1)}
        END IF;
        IF TG_OP <> 'DELETE' THEN
            {_pg_search_upsert("NEW", 1)}
        END IF;
        RETURN NULL;
    END $body$""",
        "CREATE TRIGGER wf_search_bucket_ins_del AFTER INSERT OR DELETE ON workflows FOR EACH ROW "
        "EXECUTE FUNCTION assay_search_buckets()",
        """CREATE TRIGGER wf_search_bucket_upd AFTER UPDATE OF search_attributes, namespace, created_at ON workflows
    FOR EACH ROW WHEN (OLD.search_attributes IS DISTINCT FROM NEW.search_attributes
    OR OLD.namespace IS DISTINCT FROM NEW.namespace OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION assay_search_buckets()""",
        "CREATE TRIGGER wf_bucket_ins_del AFTER INSERT OR DELETE ON workflows FOR EACH ROW "
        "EXECUTE FUNCTION assay_wf_buckets()",
        """CREATE TRIGGER wf_bucket_upd AFTER UPDATE OF namespace, created_at, workflow_type, task_queue, status
    ON workflows FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.namespace IS DISTINCT FROM
    NEW.namespace OR OLD.created_at IS DISTINCT FROM NEW.created_at OR OLD.workflow_type IS DISTINCT FROM
    NEW.workflow_type OR OLD.task_queue IS DISTINCT FROM NEW.task_queue)
    EXECUTE FUNCTION assay_wf_buckets()""",
    ]


#: recount the buckets from the rows (after a bulk load with triggers off, or to repair)
POSTGRES_RECOUNT = [
    "LOCK TABLE workflows IN SHARE ROW EXCLUSIVE MODE",
    "DELETE FROM workflow_buckets",
    *_pg_backfill(),
    "DELETE FROM search_buckets",
    _PG_SEARCH_BACKFILL,
]
