"""Ordered, append-only schema migrations. Each is applied and recorded in its own transaction.

Never edit a migration that has shipped: append a new one. Each dialect has its own list with the
same version numbers.
"""

from __future__ import annotations

from assay.store.buckets import MIGRATION_NAME as BUCKETS_MIGRATION_NAME
from assay.store.buckets import SQLITE_DDL as BUCKETS_SQLITE_DDL

TERMINAL_SQL = "('COMPLETED','FAILED','CANCELLED','TIMED_OUT')"  # == store.sql.core.TERMINAL_SQL (tested)

#: list indexes that end in (created_at, id): newest-first pages and keyset cursors walk them in order
KEYSET_INDEXES = [
    "DROP INDEX wf_ns_created",
    "DROP INDEX wf_ns_status",
    "DROP INDEX wf_ns_type",
    "DROP INDEX wf_ns_queue",
    "CREATE INDEX wf_ns_created ON workflows(namespace, created_at, id)",
    "CREATE INDEX wf_ns_status ON workflows(namespace, status, created_at, id)",
    "CREATE INDEX wf_ns_type ON workflows(namespace, workflow_type, created_at, id)",
    "CREATE INDEX wf_ns_queue ON workflows(namespace, task_queue, created_at, id)",
]

#: live workflows per queue, covering what queue stats count (ready / leased)
LIVE_QUEUE_INDEX = (
    "CREATE INDEX wf_live_queue ON workflows(namespace, task_queue, needs_dispatch, dispatch_claimed_by) "
    f"WHERE status NOT IN {TERMINAL_SQL}"
)

#: count NEW (a workflow_activities row) in activity_counts when its status is live
_ACT_COUNT_ADD = """INSERT INTO activity_counts (namespace, task_queue, status, n)
            SELECT namespace, NEW.task_queue, NEW.status, 1 FROM workflows
            WHERE id = NEW.workflow_id AND NEW.status IN ('PENDING', 'RUNNING')
            ON CONFLICT (namespace, task_queue, status) DO UPDATE SET n = n + 1"""

#: search_attributes JSON -> side-table rows: vtype s (text), n (number), b (boolean, value 1/0)
_SEARCH_ROWS = (
    "SELECT {new}.id, {new}.namespace, j.key, CASE j.type WHEN 'text' THEN 's' WHEN 'true' THEN 'b' "
    "WHEN 'false' THEN 'b' ELSE 'n' END, j.value, {new}.created_at"
)

# Migration 3 (Temporal-era API): schedule_to_close deadline on activities, terminated flag on workflows.
STICKY_MIGRATION_NAME = (
    "sticky workers: partial histories for the worker that keeps a workflow's replay state"
)
STICKY_DDL = [
    "ALTER TABLE workflow_workers ADD COLUMN sticky INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE workflows ADD COLUMN sticky_worker_id TEXT",
    "ALTER TABLE workflows ADD COLUMN sticky_seq INTEGER",
]
TEMPORAL_MIGRATION_NAME = "activity schedule_to_close deadline; terminated flag on workflows"
TEMPORAL_DDL = [
    "ALTER TABLE workflow_activities ADD COLUMN schedule_to_close_secs REAL",
    "ALTER TABLE workflow_activities ADD COLUMN deadline_at REAL",
    "CREATE INDEX act_deadline ON workflow_activities(deadline_at) WHERE deadline_at IS NOT NULL"
    " AND status IN ('PENDING', 'RUNNING')",
    "ALTER TABLE workflows ADD COLUMN terminated INTEGER NOT NULL DEFAULT 0",
]
TERMINATED_BACKFILL_SQLITE = """UPDATE workflows SET terminated = 1 WHERE status = 'FAILED' AND EXISTS (
    SELECT 1 FROM workflow_events e WHERE e.workflow_id = workflows.id
    AND e.event_type = 'WorkflowFailed' AND json_extract(e.payload, '$.terminated') = 1)"""

SQLITE: list[tuple[int, str, list[str]]] = [
    (
        1,
        "initial schema",
        [
            """CREATE TABLE namespaces (
            name TEXT PRIMARY KEY,
            created_at REAL NOT NULL)""",
            """CREATE TABLE workflows (
            id TEXT PRIMARY KEY,
            namespace TEXT NOT NULL,
            run_id TEXT NOT NULL,
            workflow_type TEXT NOT NULL,
            task_queue TEXT NOT NULL,
            status TEXT NOT NULL,
            input TEXT,
            result TEXT,
            error TEXT,
            parent_id TEXT,
            child_ref TEXT,
            claimed_by TEXT,
            search_attributes TEXT,
            archived_at REAL,
            archive_uri TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            completed_at REAL,
            needs_dispatch INTEGER NOT NULL DEFAULT 0,
            ready_at REAL,
            dispatch_claimed_by TEXT,
            dispatch_last_heartbeat REAL,
            dispatch_count INTEGER NOT NULL DEFAULT 0,
            dispatch_failures INTEGER NOT NULL DEFAULT 0,
            last_seq INTEGER NOT NULL DEFAULT 0,
            state_seq INTEGER,
            cancel_requested INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX wf_ns_created ON workflows(namespace, created_at DESC)",
            "CREATE INDEX wf_ns_status ON workflows(namespace, status, created_at DESC)",
            "CREATE INDEX wf_ns_type ON workflows(namespace, workflow_type, created_at DESC)",
            "CREATE INDEX wf_ns_queue ON workflows(namespace, task_queue)",
            "CREATE INDEX wf_parent ON workflows(parent_id, created_at)",
            "CREATE INDEX wf_claimed ON workflows(claimed_by) WHERE claimed_by IS NOT NULL",
            """CREATE INDEX wf_dispatch ON workflows(task_queue, ready_at)
            WHERE needs_dispatch = 1 AND dispatch_claimed_by IS NULL""",
            "CREATE INDEX wf_lease ON workflows(dispatch_last_heartbeat) WHERE dispatch_claimed_by IS NOT NULL",
            "CREATE INDEX wf_lease_holder ON workflows(dispatch_claimed_by) WHERE dispatch_claimed_by IS NOT NULL",
            "CREATE INDEX wf_terminal ON workflows(completed_at) WHERE completed_at IS NOT NULL",
            """CREATE TABLE workflow_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            event_type TEXT NOT NULL,
            payload TEXT,
            timestamp REAL NOT NULL,
            UNIQUE (workflow_id, seq))""",
            """CREATE TABLE workflow_activities (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            name TEXT NOT NULL,
            task_queue TEXT NOT NULL,
            input TEXT,
            status TEXT NOT NULL,
            result TEXT,
            error TEXT,
            attempt INTEGER NOT NULL DEFAULT 1,
            max_attempts INTEGER NOT NULL DEFAULT 3,
            initial_interval_secs REAL NOT NULL DEFAULT 1.0,
            backoff_coefficient REAL NOT NULL DEFAULT 2.0,
            maximum_interval_secs REAL,
            start_to_close_secs REAL NOT NULL DEFAULT 300.0,
            heartbeat_timeout_secs REAL,
            non_retryable_errors TEXT,
            claimed_by TEXT,
            scheduled_at REAL NOT NULL,
            started_at REAL,
            completed_at REAL,
            last_heartbeat REAL,
            heartbeat_details TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            UNIQUE (workflow_id, seq))""",
            "CREATE INDEX act_claim ON workflow_activities(task_queue, scheduled_at) WHERE status = 'PENDING'",
            "CREATE INDEX act_running ON workflow_activities(claimed_by) WHERE status = 'RUNNING'",
            """CREATE TABLE workflow_timers (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            fire_at REAL NOT NULL,
            fired INTEGER NOT NULL DEFAULT 0,
            UNIQUE (workflow_id, seq))""",
            "CREATE INDEX timer_due ON workflow_timers(fire_at) WHERE fired = 0",
            """CREATE TABLE workflow_signals (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            payload TEXT,
            received_at REAL NOT NULL)""",
            "CREATE INDEX signal_wf ON workflow_signals(workflow_id)",
            """CREATE TABLE workflow_side_effects (
            workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            name TEXT NOT NULL,
            value TEXT,
            PRIMARY KEY (workflow_id, seq))""",
            """CREATE TABLE workflow_snapshots (
            workflow_id TEXT PRIMARY KEY REFERENCES workflows(id) ON DELETE CASCADE,
            event_seq INTEGER NOT NULL,
            state_json TEXT,
            created_at REAL NOT NULL)""",
            """CREATE TABLE workflow_schedules (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            workflow_type TEXT NOT NULL,
            cron_expr TEXT NOT NULL,
            timezone TEXT NOT NULL DEFAULT 'UTC',
            input TEXT,
            task_queue TEXT NOT NULL,
            overlap_policy TEXT NOT NULL DEFAULT 'skip',
            paused INTEGER NOT NULL DEFAULT 0,
            last_run_at REAL,
            next_run_at REAL,
            last_workflow_id TEXT,
            queued_fires INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (namespace, name))""",
            "CREATE INDEX sched_due ON workflow_schedules(next_run_at) WHERE paused = 0",
            """CREATE TABLE workflow_workers (
            id TEXT PRIMARY KEY,
            namespace TEXT NOT NULL,
            identity TEXT NOT NULL,
            task_queue TEXT NOT NULL,
            workflows TEXT,
            activities TEXT,
            max_concurrent_workflows INTEGER NOT NULL DEFAULT 10,
            max_concurrent_activities INTEGER NOT NULL DEFAULT 10,
            active_tasks INTEGER NOT NULL DEFAULT 0,
            heartbeat_interval_secs REAL,
            lost_after_secs REAL,
            last_heartbeat REAL NOT NULL,
            registered_at REAL NOT NULL)""",
            "CREATE INDEX worker_ns ON workflow_workers(namespace, registered_at)",
            """CREATE TABLE api_keys (
            key_hash TEXT PRIMARY KEY,
            prefix TEXT NOT NULL,
            label TEXT,
            created_at REAL NOT NULL,
            last_used_at REAL)""",
            "CREATE INDEX api_key_prefix ON api_keys(prefix)",
            """CREATE TABLE engine_lock (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            instance_id TEXT NOT NULL,
            pid INTEGER,
            hostname TEXT,
            started_at REAL NOT NULL,
            last_heartbeat REAL NOT NULL)""",
        ],
    ),
    (
        2,
        "safe deploys: build ids, stuck runs, reset links",
        [
            "ALTER TABLE workflows ADD COLUMN build_ids TEXT",
            "ALTER TABLE workflows ADD COLUMN stuck_reason TEXT",
            "ALTER TABLE workflows ADD COLUMN stuck_since REAL",
            "ALTER TABLE workflows ADD COLUMN reset_to TEXT",
            "ALTER TABLE workflows ADD COLUMN reset_from TEXT",
            "ALTER TABLE workflow_workers ADD COLUMN build_id TEXT",
            "CREATE INDEX wf_stuck ON workflows(namespace, stuck_since) WHERE stuck_reason IS NOT NULL",
        ],
    ),
    (3, TEMPORAL_MIGRATION_NAME, TEMPORAL_DDL + [TERMINATED_BACKFILL_SQLITE]),
    (
        4,
        "scale: keyset list indexes, live-queue index, status and activity counters, search-attribute side table",
        KEYSET_INDEXES
        + [
            LIVE_QUEUE_INDEX,
            # per (namespace, status) counts kept by triggers with every write (namespace stats)
            """CREATE TABLE workflow_counts (
            namespace TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (namespace, status)) WITHOUT ROWID""",
            """INSERT INTO workflow_counts (namespace, status, n)
            SELECT namespace, status, COUNT(*) FROM workflows GROUP BY namespace, status""",
            """CREATE TRIGGER wf_count_ins AFTER INSERT ON workflows BEGIN
            INSERT INTO workflow_counts (namespace, status, n) VALUES (NEW.namespace, NEW.status, 1)
            ON CONFLICT (namespace, status) DO UPDATE SET n = n + 1; END""",
            """CREATE TRIGGER wf_count_upd AFTER UPDATE OF namespace, status ON workflows
            WHEN OLD.status IS NOT NEW.status OR OLD.namespace IS NOT NEW.namespace BEGIN
            UPDATE workflow_counts SET n = n - 1 WHERE namespace = OLD.namespace AND status = OLD.status;
            INSERT INTO workflow_counts (namespace, status, n) VALUES (NEW.namespace, NEW.status, 1)
            ON CONFLICT (namespace, status) DO UPDATE SET n = n + 1; END""",
            """CREATE TRIGGER wf_count_del AFTER DELETE ON workflows BEGIN
            UPDATE workflow_counts SET n = n - 1 WHERE namespace = OLD.namespace AND status = OLD.status; END""",
            # live (PENDING / RUNNING) activities per (namespace, queue, status), kept by triggers (queue stats)
            """CREATE TABLE activity_counts (
            namespace TEXT NOT NULL,
            task_queue TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (namespace, task_queue, status)) WITHOUT ROWID""",
            """INSERT INTO activity_counts (namespace, task_queue, status, n)
            SELECT w.namespace, a.task_queue, a.status, COUNT(*) FROM workflow_activities a
            JOIN workflows w ON w.id = a.workflow_id WHERE a.status IN ('PENDING', 'RUNNING')
            GROUP BY w.namespace, a.task_queue, a.status""",
            """CREATE TRIGGER act_count_ins AFTER INSERT ON workflow_activities
            WHEN NEW.status IN ('PENDING', 'RUNNING') BEGIN """
            + _ACT_COUNT_ADD
            + """; END""",
            """CREATE TRIGGER act_count_upd AFTER UPDATE OF status, task_queue ON workflow_activities
            WHEN OLD.status IS NOT NEW.status OR OLD.task_queue IS NOT NEW.task_queue BEGIN
            UPDATE activity_counts SET n = n - 1 WHERE task_queue = OLD.task_queue AND status = OLD.status
            AND namespace = (SELECT namespace FROM workflows WHERE id = OLD.workflow_id); """
            + _ACT_COUNT_ADD
            + """; END""",
            """CREATE TRIGGER act_count_del AFTER DELETE ON workflow_activities
            WHEN OLD.status IN ('PENDING', 'RUNNING') BEGIN
            UPDATE activity_counts SET n = n - 1 WHERE task_queue = OLD.task_queue AND status = OLD.status
            AND namespace = (SELECT namespace FROM workflows WHERE id = OLD.workflow_id); END""",
            # one row per scalar top-level search attribute, kept by triggers (Postgres uses its GIN index)
            """CREATE TABLE workflow_search (
            workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            vtype TEXT NOT NULL,
            value,
            created_at REAL NOT NULL)""",
            "CREATE INDEX wf_search_kv ON workflow_search(namespace, key, vtype, value, created_at, workflow_id)",
            "CREATE INDEX wf_search_wf ON workflow_search(workflow_id, key)",
            "INSERT INTO workflow_search (workflow_id, namespace, key, vtype, value, created_at) "
            + _SEARCH_ROWS.format(new="w")
            + " FROM workflows w, json_each(w.search_attributes) j WHERE w.search_attributes IS NOT NULL"
            " AND json_type(w.search_attributes) = 'object' AND j.type IN ('integer','real','text','true','false')",
            """CREATE TRIGGER wf_search_ins AFTER INSERT ON workflows
            WHEN NEW.search_attributes IS NOT NULL AND json_type(NEW.search_attributes) = 'object' BEGIN
            INSERT INTO workflow_search (workflow_id, namespace, key, vtype, value, created_at) """
            + _SEARCH_ROWS.format(new="NEW")
            + """ FROM json_each(NEW.search_attributes) j
            WHERE j.type IN ('integer','real','text','true','false'); END""",
            """CREATE TRIGGER wf_search_upd AFTER UPDATE OF search_attributes, namespace, created_at ON workflows
            BEGIN
            DELETE FROM workflow_search WHERE workflow_id = OLD.id;
            INSERT INTO workflow_search (workflow_id, namespace, key, vtype, value, created_at) """
            + _SEARCH_ROWS.format(new="NEW")
            + """ FROM json_each(CASE WHEN json_type(NEW.search_attributes) = 'object'
                                  THEN NEW.search_attributes ELSE '{}' END) j
            WHERE j.type IN ('integer','real','text','true','false'); END""",
        ],
    ),
    (5, STICKY_MIGRATION_NAME, STICKY_DDL),
    (6, "counters for namespace and queue stats kept with the writes (Postgres; SQLite: migration 4)", []),
    (7, BUCKETS_MIGRATION_NAME, BUCKETS_SQLITE_DDL),
]

# Postgres: the same DDL (translated) and this backfill (JSONB instead of json_extract).
PG_TERMINATED_BACKFILL = """UPDATE workflows SET terminated = 1 WHERE status = 'FAILED' AND EXISTS (
            SELECT 1 FROM workflow_events e WHERE e.workflow_id = workflows.id
            AND e.event_type = 'WorkflowFailed' AND e.payload->>'terminated' = 'true')"""

# Migration 6 (Postgres): the counters SQLite keeps since migration 4 (namespace stats, queue stats, deep
# offsets), kept by triggers with every write. Each counter is spread over COUNT_SHARDS rows picked by the
# writing connection, so concurrent transactions do not queue on one hot row lock; readers sum the shards.
COUNTERS_MIGRATION_NAME = "counters for namespace and queue stats kept with the writes (Postgres)"
COUNT_SHARDS = 16
_PG_UPSERT = """INSERT INTO {table} ({cols}, shard, n) VALUES ({vals}, s, {d})
            ON CONFLICT ({cols}, shard) DO UPDATE SET n = {table}.n + {d};"""
PG_COUNTERS = [
    # no write of another instance (an older version, during a rolling upgrade) between the backfill and the
    # triggers: it waits for this migration's commit, then fires the triggers
    "LOCK TABLE workflows, workflow_activities IN SHARE ROW EXCLUSIVE MODE",
    """CREATE TABLE workflow_counts (
    namespace TEXT NOT NULL,
    status TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (namespace, status, shard))""",
    """INSERT INTO workflow_counts (namespace, status, shard, n)
    SELECT namespace, status, 0, COUNT(*) FROM workflows GROUP BY namespace, status""",
    f"""CREATE FUNCTION assay_wf_count() RETURNS trigger LANGUAGE plpgsql AS $body$
    DECLARE s INTEGER := mod(pg_backend_pid(), {COUNT_SHARDS});
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            """
    + _PG_UPSERT.format(
        table="workflow_counts", cols="namespace, status", vals="OLD.namespace, OLD.status", d="-1"
    )
    + """
        END IF;
        IF TG_OP <> 'DELETE' THEN
            """
    + _PG_UPSERT.format(
        table="workflow_counts", cols="namespace, status", vals="NEW.namespace, NEW.status", d="1"
    )
    + """
        END IF;
        RETURN NULL;
    END $body$""",
    "CREATE TRIGGER wf_count_ins_del AFTER INSERT OR DELETE ON workflows FOR EACH ROW EXECUTE FUNCTION assay_wf_count()",
    """CREATE TRIGGER wf_count_upd AFTER UPDATE OF namespace, status ON workflows FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.namespace IS DISTINCT FROM NEW.namespace)
    EXECUTE FUNCTION assay_wf_count()""",
    """CREATE TABLE activity_counts (
    namespace TEXT NOT NULL,
    task_queue TEXT NOT NULL,
    status TEXT NOT NULL,
    shard INTEGER NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (namespace, task_queue, status, shard))""",
    """INSERT INTO activity_counts (namespace, task_queue, status, shard, n)
    SELECT w.namespace, a.task_queue, a.status, 0, COUNT(*) FROM workflow_activities a
    JOIN workflows w ON w.id = a.workflow_id WHERE a.status IN ('PENDING', 'RUNNING')
    GROUP BY w.namespace, a.task_queue, a.status""",
    f"""CREATE FUNCTION assay_act_count() RETURNS trigger LANGUAGE plpgsql AS $body$
    DECLARE s INTEGER := mod(pg_backend_pid(), {COUNT_SHARDS}); ns TEXT;
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.status IN ('PENDING', 'RUNNING') THEN
            SELECT namespace INTO ns FROM workflows WHERE id = OLD.workflow_id;
            IF ns IS NOT NULL THEN
                """
    + _PG_UPSERT.format(
        table="activity_counts",
        cols="namespace, task_queue, status",
        vals="ns, OLD.task_queue, OLD.status",
        d="-1",
    )
    + """
            END IF;
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status IN ('PENDING', 'RUNNING') THEN
            SELECT namespace INTO ns FROM workflows WHERE id = NEW.workflow_id;
            IF ns IS NOT NULL THEN
                """
    + _PG_UPSERT.format(
        table="activity_counts",
        cols="namespace, task_queue, status",
        vals="ns, NEW.task_queue, NEW.status",
        d="1",
    )
    + """
            END IF;
        END IF;
        RETURN NULL;
    END $body$""",
    "CREATE TRIGGER act_count_ins_del AFTER INSERT OR DELETE ON workflow_activities FOR EACH ROW "
    "EXECUTE FUNCTION assay_act_count()",
    """CREATE TRIGGER act_count_upd AFTER UPDATE OF status, task_queue ON workflow_activities FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.task_queue IS DISTINCT FROM NEW.task_queue)
    EXECUTE FUNCTION assay_act_count()""",
]
#: recount every counter from the rows (after a bulk load with triggers off, or to repair)
PG_RECOUNT = [
    PG_COUNTERS[0],
    "DELETE FROM workflow_counts",
    PG_COUNTERS[2],
    "DELETE FROM activity_counts",
    PG_COUNTERS[7],
]
